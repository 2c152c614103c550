using System;
using QuantGen.Modules;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>
/// PyTorch's weight-only quantized <c>Embedding</c> (<c>torch.ao.nn.quantized.Embedding</c>): the table is packed once
/// like <see cref="QuantizedEmbeddingBag"/>'s — 8-bit rows (quint8, float32 scale and bias per row) or 4-bit rows
/// (quint4x2, float16 scale and bias per row) — and a lookup returns the row dequantized in float32,
/// <c>fma(scale, q, bias)</c> per value — what PyTorch computes, as it runs the lookup as one-row bags.
/// </summary>
/// <remarks>
/// PyTorch's <c>nnq.Embedding.from_float</c> accepts only quint8; its kernel (<c>quantized::embedding_4bit</c>) and
/// <c>nnq.EmbeddingBag</c> take 4-bit rows, and QuantGen gives the 4-bit table to both modules (docs/numerics.md §9).
/// </remarks>
/// <remarks>The layer is immutable; any number of threads may call <c>Forward</c> at once.</remarks>
public sealed class QuantizedEmbedding
{
    private readonly RowwiseQuantizedTable _table;
    private readonly string _name;

    private QuantizedEmbedding(string model, string layer, RowwiseQuantizedTable table)
    {
        Model = model;
        Layer = layer;
        _name = $"{model}.{layer}";
        _table = table;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Rows of the table.</summary>
    public int NumEmbeddings => _table.NumEmbeddings;

    /// <summary>Values per row.</summary>
    public int EmbeddingDim => _table.EmbeddingDim;

    /// <summary>Bits per stored value: 8 (quint8) or 4 (quint4x2).</summary>
    public int BitWidth => _table.BitWidth;

    /// <summary>
    /// The packed table in PyTorch's layout (a copy): per row EmbeddingDim bytes, float32 scale, float32 bias (8-bit), or
    /// EmbeddingDim / 2 bytes of two 4-bit values each (low nibble first), float16 scale, float16 bias (4-bit).
    /// </summary>
    public byte[] PackedWeight => _table.Rows.ToArray();

    /// <summary>The table itself (for the model file's description).</summary>
    internal RowwiseQuantizedTable Table => _table;

    /// <summary>Packs a float table [numEmbeddings, embeddingDim] (row-major) into 8-bit or 4-bit rows.</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="weight">Row-major float table.</param>
    /// <param name="numEmbeddings">Rows.</param>
    /// <param name="embeddingDim">Values per row (even for 4-bit rows).</param>
    /// <param name="bitWidth">8 (quint8, PyTorch's float_qparams_weight_only_qconfig) or 4 (quint4x2, its _4bit form).</param>
    /// <exception cref="ArgumentException">Sizes that do not match, or a non-finite weight (the message names the layer).</exception>
    public static QuantizedEmbedding FromWeight(string model, string layer, ReadOnlySpan<float> weight, int numEmbeddings, int embeddingDim, int bitWidth = 8)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        return new QuantizedEmbedding(model, layer, RowwiseQuantizedTable.Pack($"{model}.{layer}", weight, numEmbeddings, embeddingDim, bitWidth));
    }

    /// <summary>Takes a table already packed in PyTorch's layout (<see cref="PackedWeight"/>; copied and checked).</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="packedWeight">Per row the values, then the scale and the bias (little-endian; float32 for 8-bit rows, float16 for 4-bit).</param>
    /// <param name="numEmbeddings">Rows.</param>
    /// <param name="embeddingDim">Values per row.</param>
    /// <param name="bitWidth">8 or 4.</param>
    /// <exception cref="ArgumentException">Sizes that do not match, or a scale or bias that is not finite (the message names the layer).</exception>
    public static QuantizedEmbedding FromPacked(string model, string layer, ReadOnlySpan<byte> packedWeight, int numEmbeddings, int embeddingDim, int bitWidth = 8)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        return new QuantizedEmbedding(model, layer, RowwiseQuantizedTable.FromPacked($"{model}.{layer}", packedWeight, numEmbeddings, embeddingDim, bitWidth));
    }

    /// <summary>Packs a TorchSharp <see cref="Embedding"/>'s weight (the module is only read).</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="embedding">The float32 module.</param>
    /// <param name="bitWidth">8 or 4.</param>
    /// <exception cref="NotSupportedException">A non-float32 weight.</exception>
    public static QuantizedEmbedding FromEmbedding(string model, string layer, Embedding embedding, int bitWidth = 8)
    {
        ArgumentNullException.ThrowIfNull(embedding);
        (float[] weight, int rows, int dim) = QuantizedEmbeddingBag.ReadTable($"{model}.{layer}", embedding.weight);
        return FromWeight(model, layer, weight, rows, dim, bitWidth);
    }

    /// <summary>Looks up each index; writes [indices.Length, EmbeddingDim] to <paramref name="output"/>.</summary>
    /// <param name="indices">Row numbers, each in 0..NumEmbeddings−1.</param>
    /// <param name="output">Row-major [indices.Length, EmbeddingDim].</param>
    /// <exception cref="ArgumentException">An output of the wrong length.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An index outside the table (the message names the layer, the position and the range).</exception>
    public void Forward(ReadOnlySpan<long> indices, Span<float> output)
    {
        int dim = EmbeddingDim;
        if (output.Length != (long)indices.Length * dim)
        {
            throw new ArgumentException($"{_name}: expected an output of [{indices.Length}, {dim}] ({(long)indices.Length * dim} values), got {output.Length}.", nameof(output));
        }

        for (int i = 0; i < indices.Length; i++)
        {
            _table.CheckIndex(indices[i], i);
        }

        for (int i = 0; i < indices.Length; i++)
        {
            _table.DequantizeRow((int)indices[i], output.Slice(i * dim, dim));
        }
    }

    /// <summary>As <see cref="Forward(ReadOnlySpan{long}, Span{float})"/>, returning a new array.</summary>
    /// <param name="indices">Row numbers.</param>
    public float[] Forward(ReadOnlySpan<long> indices)
    {
        var output = new float[(long)indices.Length * EmbeddingDim];
        Forward(indices, output);
        return output;
    }

    /// <summary>An int64/int32 tensor of indices of any shape to a new float32 tensor [..., EmbeddingDim].</summary>
    /// <param name="input">Indices.</param>
    /// <exception cref="ArgumentException">A non-integer dtype (the message names the layer).</exception>
    /// <exception cref="ArgumentOutOfRangeException">An index outside the table.</exception>
    public Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        long[] indices = QuantizedEmbeddingBag.ReadIndices(_name, "input", input);
        float[] result = Forward(indices);
        int[] shape = new int[input.dim() + 1];
        for (int d = 0; d < input.dim(); d++)
        {
            shape[d] = checked((int)input.shape[d]);
        }

        shape[^1] = EmbeddingDim;
        return TensorInterop.FromArray(result, shape);
    }

    /// <summary>PyTorch's repr: <c>QuantizedEmbedding(num_embeddings=10, embedding_dim=3, dtype=torch.quint8, qscheme=torch.per_channel_affine_float_qparams)</c>.</summary>
    public override string ToString() =>
        $"QuantizedEmbedding(num_embeddings={NumEmbeddings}, embedding_dim={EmbeddingDim}, dtype={_table.DTypeName}, qscheme=torch.per_channel_affine_float_qparams)";
}
