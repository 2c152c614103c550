using System;
using System.Buffers.Binary;
using System.Globalization;

namespace QuantGen.Dynamic;

/// <summary>
/// An embedding table quantized row by row, each row with its own scale and bias (the row minimum), in PyTorch's packed
/// layouts (docs/numerics.md §9):
/// <list type="bullet">
/// <item><description>8-bit (<c>embedding_bag_byte_prepack</c>, quint8): row i is <c>EmbeddingDim</c> bytes, then the scale
/// and the bias as little-endian float32 — <c>EmbeddingDim + 8</c> bytes;</description></item>
/// <item><description>4-bit (<c>embedding_bag_4bit_prepack</c>, quint4x2): row i is <c>EmbeddingDim / 2</c> bytes, two values
/// per byte with the even-indexed one in the low nibble, then the scale and the bias as little-endian float16 —
/// <c>EmbeddingDim / 2 + 4</c> bytes.</description></item>
/// </list>
/// </summary>
/// <remarks>Immutable after construction; any number of threads may read it at once.</remarks>
internal sealed class RowwiseQuantizedTable
{
    private readonly byte[] _rows;

    private RowwiseQuantizedTable(string name, int numEmbeddings, int embeddingDim, int bitWidth, byte[] rows)
    {
        Name = name;
        NumEmbeddings = numEmbeddings;
        EmbeddingDim = embeddingDim;
        BitWidth = bitWidth;
        _rows = rows;
    }

    /// <summary>"Model.layer", for messages.</summary>
    public string Name { get; }

    /// <summary>Rows.</summary>
    public int NumEmbeddings { get; }

    /// <summary>Values per row.</summary>
    public int EmbeddingDim { get; }

    /// <summary>Bits per value: 8 or 4.</summary>
    public int BitWidth { get; }

    /// <summary>PyTorch's name of the value type: torch.quint8 or torch.quint4x2.</summary>
    public string DTypeName => BitWidth == 8 ? "torch.quint8" : "torch.quint4x2";

    /// <summary>Bytes of one row's values.</summary>
    public int ValueBytes => ValueBytesOf(EmbeddingDim, BitWidth);

    /// <summary>Bytes per packed row (values, scale, bias).</summary>
    public int RowStride => StrideOf(EmbeddingDim, BitWidth);

    /// <summary>The packed rows (not a copy).</summary>
    public ReadOnlySpan<byte> Rows => _rows;

    /// <summary>
    /// Packs float rows as PyTorch's prepack does. 8-bit: <c>scale = range / 255f</c>, <c>bias = min</c>,
    /// <c>q = rne((x − min) · (255f / (range + 1e-8f)))</c>. 4-bit (fbgemm's n-bit rowwise): <c>bias = fp16(min)</c>,
    /// <c>scale = fp16((max − bias) / 15f)</c> (1 when that is 0), <c>q = clamp(rne((x − bias) / scale), 0, 15)</c> with
    /// the division as a multiplication by <c>1f / scale</c>.
    /// </summary>
    public static RowwiseQuantizedTable Pack(string name, ReadOnlySpan<float> weight, int numEmbeddings, int embeddingDim, int bitWidth)
    {
        CheckSizes(name, numEmbeddings, embeddingDim, bitWidth);
        if (weight.Length != (long)numEmbeddings * embeddingDim)
        {
            throw new ArgumentException($"{name}: expected weight [{numEmbeddings}, {embeddingDim}] ({(long)numEmbeddings * embeddingDim} values, [num_embeddings, embedding_dim]), got {weight.Length} values.", nameof(weight));
        }

        int stride = StrideOf(embeddingDim, bitWidth);
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
                    throw new ArgumentException($"{name}: weight row {r} holds {value}; a {bitWidth}-bit row needs finite values.", nameof(weight));
                }

                min = value < min ? value : min;
                max = value > max ? value : max;
            }

            Span<byte> target = rows.AsSpan(r * stride, stride);
            if (bitWidth == 8)
            {
                PackByteRow(name, r, source, min, max, target);
            }
            else
            {
                PackNibbleRow(name, r, source, min, max, target);
            }
        }

        return new RowwiseQuantizedTable(name, numEmbeddings, embeddingDim, bitWidth, rows);
    }

    private static void PackByteRow(string name, int r, ReadOnlySpan<float> source, float min, float max, Span<byte> target)
    {
        float range = max - min;
        if (!float.IsFinite(range))
        {
            throw new ArgumentException($"{name}: weight row {r} spans [{min}, {max}], wider than float32 can hold.", "weight");
        }

        int dim = source.Length;
        float inverseScale = 255.0f / (range + 1e-8f);
        for (int j = 0; j < dim; j++)
        {
            // (x - min) * inverse lies in [0, 255]; lrintf rounds half to even.
            target[j] = (byte)MathF.Round((source[j] - min) * inverseScale, MidpointRounding.ToEven);
        }

        BinaryPrimitives.WriteSingleLittleEndian(target.Slice(dim), range / 255.0f);
        BinaryPrimitives.WriteSingleLittleEndian(target.Slice(dim + 4), min);
    }

    private static void PackNibbleRow(string name, int r, ReadOnlySpan<float> source, float min, float max, Span<byte> target)
    {
        // The bias is the minimum rounded to float16 and the range is taken from it, so every value lies at or above
        // the bias (up to that rounding, which the clamp absorbs).
        Half biasHalf = (Half)min;
        float bias = (float)biasHalf;
        float range = max - bias;
        Half scaleHalf = (Half)(range == 0f ? 1.0f : range / 15.0f);
        float scale = (float)scaleHalf;
        if (!float.IsFinite(bias) || !float.IsFinite(scale))
        {
            throw new ArgumentException(
                $"{name}: weight row {r} spans [{min.ToString("R", CultureInfo.InvariantCulture)}, {max.ToString("R", CultureInfo.InvariantCulture)}]; a 4-bit row stores its minimum and its scale (range / 15) as float16, which holds at most ±65504.",
                "weight");
        }

        if (scale == 0f)
        {
            // The range rounds to a float16 zero: any scale gives q = 0 for every value, as fbgemm's corner case does.
            scale = 1.0f;
        }

        float inverseScale = 1.0f / scale;
        if (float.IsInfinity(inverseScale))
        {
            scale = 1.0f;
            inverseScale = 1.0f;
        }

        int dim = source.Length;
        Span<byte> values = target.Slice(0, ValueBytesOf(dim, 4));
        values.Clear();
        for (int j = 0; j < dim; j++)
        {
            int q = Math.Clamp((int)MathF.Round((source[j] - bias) * inverseScale, MidpointRounding.ToEven), 0, 15);
            values[j >> 1] |= (byte)(q << ((j & 1) * 4));
        }

        BinaryPrimitives.WriteHalfLittleEndian(target.Slice(values.Length), (Half)scale);
        BinaryPrimitives.WriteHalfLittleEndian(target.Slice(values.Length + 2), biasHalf);
    }

    /// <summary>Takes rows already packed in the layout of <paramref name="bitWidth"/> (copied and checked).</summary>
    public static RowwiseQuantizedTable FromPacked(string name, ReadOnlySpan<byte> packed, int numEmbeddings, int embeddingDim, int bitWidth)
    {
        CheckSizes(name, numEmbeddings, embeddingDim, bitWidth);
        int stride = StrideOf(embeddingDim, bitWidth);
        if (packed.Length != (long)numEmbeddings * stride)
        {
            string layout = bitWidth == 8 ? $"{embeddingDim} bytes + 8 bytes of float32 scale and bias" : $"{embeddingDim / 2} bytes of 4-bit values + 4 bytes of float16 scale and bias";
            throw new ArgumentException($"{name}: expected {(long)numEmbeddings * stride} packed bytes ({numEmbeddings} rows of {layout}), got {packed.Length}.", nameof(packed));
        }

        var table = new RowwiseQuantizedTable(name, numEmbeddings, embeddingDim, bitWidth, packed.ToArray());
        for (int r = 0; r < numEmbeddings; r++)
        {
            float scale = table.Scale(r);
            float bias = table.Bias(r);
            if (!float.IsFinite(scale) || scale < 0f || !float.IsFinite(bias))
            {
                throw new ArgumentException($"{name}: packed row {r} has scale {scale} and bias {bias}; expected a finite scale ≥ 0 and a finite bias.", nameof(packed));
            }
        }

        return table;
    }

    /// <summary>Row <paramref name="row"/>'s scale.</summary>
    public float Scale(int row) => BitWidth == 8
        ? BinaryPrimitives.ReadSingleLittleEndian(_rows.AsSpan((row * RowStride) + ValueBytes))
        : (float)BinaryPrimitives.ReadHalfLittleEndian(_rows.AsSpan((row * RowStride) + ValueBytes));

    /// <summary>Row <paramref name="row"/>'s bias (its minimum).</summary>
    public float Bias(int row) => BitWidth == 8
        ? BinaryPrimitives.ReadSingleLittleEndian(_rows.AsSpan((row * RowStride) + ValueBytes + 4))
        : (float)BinaryPrimitives.ReadHalfLittleEndian(_rows.AsSpan((row * RowStride) + ValueBytes + 2));

    /// <summary>Value <paramref name="column"/> of row <paramref name="row"/>, as stored (0..255 or 0..15).</summary>
    public int Value(int row, int column)
    {
        int start = row * RowStride;
        return BitWidth == 8 ? _rows[start + column] : (_rows[start + (column >> 1)] >> ((column & 1) * 4)) & 0xF;
    }

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
    /// <c>output[j] = fma(scale·w, q[j], output[j] + bias·w)</c>: fbgemm's SparseLengthsSum step (8-bit and n-bit alike),
    /// which PyTorch's quantized embedding bag runs (w = 1 without per-sample weights). On a zeroed output with w = 1 it is
    /// the row's dequantized values, <c>fma(scale, q, bias)</c>.
    /// </summary>
    public void AccumulateRow(int row, float weight, Span<float> output)
    {
        float scale = weight * Scale(row);
        float bias = weight * Bias(row);
        ReadOnlySpan<byte> values = _rows.AsSpan(row * RowStride, ValueBytes);
        if (BitWidth == 8)
        {
            for (int j = 0; j < output.Length; j++)
            {
                output[j] = MathF.FusedMultiplyAdd(scale, values[j], output[j] + bias);
            }

            return;
        }

        for (int j = 0; j < output.Length; j++)
        {
            int q = (values[j >> 1] >> ((j & 1) * 4)) & 0xF;
            output[j] = MathF.FusedMultiplyAdd(scale, q, output[j] + bias);
        }
    }

    /// <summary>The row's dequantized values, <c>fma(scale, q[j], bias)</c>, written to <paramref name="output"/>.</summary>
    public void DequantizeRow(int row, Span<float> output)
    {
        output.Clear();
        AccumulateRow(row, 1f, output);
    }

    /// <summary><c>output[j] = max(output[j], fma(scale, q[j], bias))</c>: a max bag's step.</summary>
    public void MaxRow(int row, Span<float> output)
    {
        float scale = Scale(row);
        float bias = Bias(row);
        for (int j = 0; j < output.Length; j++)
        {
            // A bag of one row gives the same value in every mode: fma(scale, q, 0 + bias).
            output[j] = MathF.Max(output[j], MathF.FusedMultiplyAdd(scale, Value(row, j), bias));
        }
    }

    private static int ValueBytesOf(int embeddingDim, int bitWidth) => bitWidth == 8 ? embeddingDim : embeddingDim / 2;

    private static int StrideOf(int embeddingDim, int bitWidth) => bitWidth == 8 ? embeddingDim + 8 : (embeddingDim / 2) + 4;

    private static void CheckSizes(string name, int numEmbeddings, int embeddingDim, int bitWidth)
    {
        if (bitWidth is not (8 or 4))
        {
            throw new ArgumentOutOfRangeException(nameof(bitWidth), bitWidth, $"{name}: rows are 8-bit (quint8) or 4-bit (quint4x2).");
        }

        if (numEmbeddings < 1 || embeddingDim < 1)
        {
            throw new ArgumentException($"{name}: num_embeddings ({numEmbeddings}) and embedding_dim ({embeddingDim}) must be positive.");
        }

        if (bitWidth == 4 && embeddingDim % 2 != 0)
        {
            throw new ArgumentException($"{name}: a 4-bit table packs two values per byte, so embedding_dim must be even (PyTorch's embedding_bag_4bit_prepack requires it too); got {embeddingDim}.");
        }

        if ((long)numEmbeddings * StrideOf(embeddingDim, bitWidth) > Array.MaxLength)
        {
            throw new ArgumentException($"{name}: {numEmbeddings} rows of {embeddingDim} values do not fit in one .NET array.");
        }
    }
}
