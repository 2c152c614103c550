using System;
using System.Buffers.Binary;

namespace QuantGen.Dynamic;

/// <summary>
/// An embedding table with 8-bit rows, each with its own float scale and bias (the row minimum), in PyTorch's
/// <c>embedding_bag_byte_prepack</c> layout: row i is <c>EmbeddingDim</c> bytes, then the scale and the bias as
/// little-endian float32 — <c>EmbeddingDim + 8</c> bytes. docs/numerics.md §9 gives the rounding.
/// </summary>
/// <remarks>Immutable after construction; any number of threads may read it at once.</remarks>
internal sealed class ByteRowwiseTable
{
    private readonly byte[] _rows;

    private ByteRowwiseTable(string name, int numEmbeddings, int embeddingDim, byte[] rows)
    {
        Name = name;
        NumEmbeddings = numEmbeddings;
        EmbeddingDim = embeddingDim;
        _rows = rows;
    }

    /// <summary>"Model.layer", for messages.</summary>
    public string Name { get; }

    /// <summary>Rows.</summary>
    public int NumEmbeddings { get; }

    /// <summary>Values per row.</summary>
    public int EmbeddingDim { get; }

    /// <summary>Bytes per packed row (values, scale, bias).</summary>
    public int RowStride => EmbeddingDim + 8;

    /// <summary>The packed rows (not a copy).</summary>
    public ReadOnlySpan<byte> Rows => _rows;

    /// <summary>
    /// Packs float rows as <c>embedding_bag_byte_prepack</c> does: per row <c>scale = range / 255f</c>,
    /// <c>bias = min</c>, <c>q = rne((x − min) · (255f / (range + 1e-8f)))</c>.
    /// </summary>
    public static ByteRowwiseTable Pack(string name, ReadOnlySpan<float> weight, int numEmbeddings, int embeddingDim)
    {
        CheckSizes(name, numEmbeddings, embeddingDim);
        if (weight.Length != (long)numEmbeddings * embeddingDim)
        {
            throw new ArgumentException($"{name}: expected weight [{numEmbeddings}, {embeddingDim}] ({(long)numEmbeddings * embeddingDim} values, [num_embeddings, embedding_dim]), got {weight.Length} values.", nameof(weight));
        }

        int stride = embeddingDim + 8;
        var rows = new byte[(long)numEmbeddings * stride];
        for (int r = 0; r < numEmbeddings; r++)
        {
            ReadOnlySpan<float> source = weight.Slice(r * embeddingDim, embeddingDim);
            float min = source[0];
            float max = source[0];
            foreach (float value in source)
            {
                if (!float.IsFinite(value))
                {
                    throw new ArgumentException($"{name}: weight row {r} holds {value}; an 8-bit row needs finite values.", nameof(weight));
                }

                min = value < min ? value : min;
                max = value > max ? value : max;
            }

            float range = max - min;
            if (!float.IsFinite(range))
            {
                throw new ArgumentException($"{name}: weight row {r} spans [{min}, {max}], wider than float32 can hold.", nameof(weight));
            }

            Span<byte> target = rows.AsSpan(r * stride, stride);
            float inverseScale = 255.0f / (range + 1e-8f);
            for (int j = 0; j < embeddingDim; j++)
            {
                // (x - min) * inverse lies in [0, 255]; lrintf rounds half to even.
                target[j] = (byte)MathF.Round((source[j] - min) * inverseScale, MidpointRounding.ToEven);
            }

            BinaryPrimitives.WriteSingleLittleEndian(target.Slice(embeddingDim), range / 255.0f);
            BinaryPrimitives.WriteSingleLittleEndian(target.Slice(embeddingDim + 4), min);
        }

        return new ByteRowwiseTable(name, numEmbeddings, embeddingDim, rows);
    }

    /// <summary>Takes rows already packed in the byte layout (copied).</summary>
    public static ByteRowwiseTable FromPacked(string name, ReadOnlySpan<byte> packed, int numEmbeddings, int embeddingDim)
    {
        CheckSizes(name, numEmbeddings, embeddingDim);
        int stride = embeddingDim + 8;
        if (packed.Length != (long)numEmbeddings * stride)
        {
            throw new ArgumentException($"{name}: expected {(long)numEmbeddings * stride} packed bytes ({numEmbeddings} rows of {embeddingDim} values + 8 bytes of scale and bias), got {packed.Length}.", nameof(packed));
        }

        byte[] rows = packed.ToArray();
        for (int r = 0; r < numEmbeddings; r++)
        {
            float scale = BinaryPrimitives.ReadSingleLittleEndian(rows.AsSpan((r * stride) + embeddingDim));
            float bias = BinaryPrimitives.ReadSingleLittleEndian(rows.AsSpan((r * stride) + embeddingDim + 4));
            if (!float.IsFinite(scale) || scale < 0f || !float.IsFinite(bias))
            {
                throw new ArgumentException($"{name}: packed row {r} has scale {scale} and bias {bias}; expected a finite scale ≥ 0 and a finite bias.", nameof(packed));
            }
        }

        return new ByteRowwiseTable(name, numEmbeddings, embeddingDim, rows);
    }

    /// <summary>Row <paramref name="row"/>'s scale.</summary>
    public float Scale(int row) => BinaryPrimitives.ReadSingleLittleEndian(_rows.AsSpan((row * RowStride) + EmbeddingDim));

    /// <summary>Row <paramref name="row"/>'s bias (its minimum).</summary>
    public float Bias(int row) => BinaryPrimitives.ReadSingleLittleEndian(_rows.AsSpan((row * RowStride) + EmbeddingDim + 4));

    /// <summary>Row <paramref name="row"/>'s 8-bit values.</summary>
    public ReadOnlySpan<byte> Values(int row) => _rows.AsSpan(row * RowStride, EmbeddingDim);

    /// <summary>The row an index names, or an error naming the layer, the position and the valid range.</summary>
    public int CheckIndex(long index, int position)
    {
        if ((ulong)index >= (ulong)NumEmbeddings)
        {
            throw new ArgumentOutOfRangeException("indices", index, $"{Name}: index {index} at position {position} is out of range; expected 0..{NumEmbeddings - 1} (num_embeddings={NumEmbeddings}).");
        }

        return (int)index;
    }

    /// <summary>
    /// <c>output[j] = fma(scale·w, q[j], output[j] + bias·w)</c>: fbgemm's 8-bit SparseLengthsSum step, which
    /// PyTorch's quantized embedding bag runs (w = 1 without per-sample weights).
    /// </summary>
    public void AccumulateRow(int row, float weight, Span<float> output)
    {
        float scale = weight * Scale(row);
        float bias = weight * Bias(row);
        ReadOnlySpan<byte> values = Values(row);
        for (int j = 0; j < values.Length; j++)
        {
            output[j] = MathF.FusedMultiplyAdd(scale, values[j], output[j] + bias);
        }
    }

    private static void CheckSizes(string name, int numEmbeddings, int embeddingDim)
    {
        if (numEmbeddings < 1 || embeddingDim < 1)
        {
            throw new ArgumentException($"{name}: num_embeddings ({numEmbeddings}) and embedding_dim ({embeddingDim}) must be positive.");
        }

        if ((long)numEmbeddings * (embeddingDim + 8) > Array.MaxLength)
        {
            throw new ArgumentException($"{name}: {numEmbeddings} rows of {embeddingDim} values do not fit in one .NET array.");
        }
    }
}
