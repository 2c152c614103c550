using System;
using QuantGen.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>
/// PyTorch's weight-only quantized <c>EmbeddingBag</c> (<c>torch.ao.nn.quantized.EmbeddingBag</c>): the table is packed
/// once into 8-bit rows with a float32 scale and bias per row (<c>embedding_bag_byte_prepack</c>, quint8) or 4-bit rows
/// with a float16 scale and bias per row (<c>embedding_bag_4bit_prepack</c>, quint4x2), and each bag's rows are
/// dequantized and reduced in float32 by <see cref="Mode"/>. docs/numerics.md §9 gives the arithmetic.
/// </summary>
/// <remarks>
/// <para>
/// Mean and max bags are computed as their names say. PyTorch 1.13's quantized <c>embedding_bag_byte</c> does not:
/// it runs fbgemm's kernel without its normalize-by-lengths option and has no max, so a quantized bag built with
/// mode 'mean' or 'max' silently returns the sum. A model converted there gives different numbers here for those
/// two modes (ours match the float <c>EmbeddingBag</c> up to the 8-bit rounding of the rows).
/// </para>
/// <para>The layer is immutable; any number of threads may call <c>Forward</c> at once.</para>
/// </remarks>
public sealed class QuantizedEmbeddingBag
{
    private readonly RowwiseQuantizedTable _table;
    private readonly string _name;

    private QuantizedEmbeddingBag(string model, string layer, RowwiseQuantizedTable table, EmbeddingBagMode mode)
    {
        if (mode is not (EmbeddingBagMode.Sum or EmbeddingBagMode.Mean or EmbeddingBagMode.Max))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, $"{model}.{layer}: unknown bag mode; expected Sum, Mean or Max.");
        }

        Model = model;
        Layer = layer;
        _name = $"{model}.{layer}";
        _table = table;
        Mode = mode;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Rows of the table.</summary>
    public int NumEmbeddings => _table.NumEmbeddings;

    /// <summary>Values per row (and per bag of the output).</summary>
    public int EmbeddingDim => _table.EmbeddingDim;

    /// <summary>How a bag's rows are reduced.</summary>
    public EmbeddingBagMode Mode { get; }

    /// <summary>Bits per stored value: 8 (quint8) or 4 (quint4x2).</summary>
    public int BitWidth => _table.BitWidth;

    /// <summary>
    /// The packed table in PyTorch's layout (a copy): per row EmbeddingDim bytes, float32 scale, float32 bias (8-bit), or
    /// EmbeddingDim / 2 bytes of two 4-bit values each (low nibble first), float16 scale, float16 bias (4-bit).
    /// </summary>
    public byte[] PackedWeight => _table.Rows.ToArray();

    /// <summary>Packs a float table [numEmbeddings, embeddingDim] (row-major) into 8-bit or 4-bit rows.</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="weight">Row-major float table.</param>
    /// <param name="numEmbeddings">Rows.</param>
    /// <param name="embeddingDim">Values per row.</param>
    /// <param name="mode">Bag reduction.</param>
    /// <param name="bitWidth">8 (quint8) or 4 (quint4x2; embeddingDim even).</param>
    /// <exception cref="ArgumentException">Sizes that do not match, or a non-finite weight (the message names the layer).</exception>
    public static QuantizedEmbeddingBag FromWeight(string model, string layer, ReadOnlySpan<float> weight, int numEmbeddings, int embeddingDim, EmbeddingBagMode mode, int bitWidth = 8)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        return new QuantizedEmbeddingBag(model, layer, RowwiseQuantizedTable.Pack($"{model}.{layer}", weight, numEmbeddings, embeddingDim, bitWidth), mode);
    }

    /// <summary>Takes a table already packed in <c>embedding_bag_byte_prepack</c>'s layout (copied).</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="packedWeight">numEmbeddings rows of embeddingDim bytes followed by a float32 scale and bias.</param>
    /// <param name="numEmbeddings">Rows.</param>
    /// <param name="embeddingDim">Values per row.</param>
    /// <param name="mode">Bag reduction.</param>
    /// <param name="bitWidth">8 (float32 scale and bias per row) or 4 (float16 scale and bias).</param>
    /// <exception cref="ArgumentException">A length that does not match, or a row with a negative or non-finite scale or bias.</exception>
    public static QuantizedEmbeddingBag FromPacked(string model, string layer, ReadOnlySpan<byte> packedWeight, int numEmbeddings, int embeddingDim, EmbeddingBagMode mode, int bitWidth = 8)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        return new QuantizedEmbeddingBag(model, layer, RowwiseQuantizedTable.FromPacked($"{model}.{layer}", packedWeight, numEmbeddings, embeddingDim, bitWidth), mode);
    }

    /// <summary>
    /// Packs a TorchSharp <see cref="TorchSharp.Modules.EmbeddingBag"/>'s weight (only read). TorchSharp does not expose the
    /// module's mode, so give the one it was built with.
    /// </summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="bag">The float32 module.</param>
    /// <param name="mode">The mode the module was built with.</param>
    /// <param name="bitWidth">8 or 4.</param>
    /// <exception cref="NotSupportedException">A non-float32 weight.</exception>
    public static QuantizedEmbeddingBag FromEmbeddingBag(string model, string layer, EmbeddingBag bag, EmbeddingBagMode mode, int bitWidth = 8)
    {
        ArgumentNullException.ThrowIfNull(bag);
        (float[] weight, int rows, int dim) = ReadTable($"{model}.{layer}", bag.weight);
        return FromWeight(model, layer, weight, rows, dim, mode, bitWidth);
    }

    /// <summary>
    /// Bags of rows: bag b is <c>indices[offsets[b] .. offsets[b+1])</c> (the last runs to the end), as
    /// PyTorch's 1-D input with offsets. Writes [offsets.Length, EmbeddingDim] to <paramref name="output"/>; an
    /// empty bag gives zeros.
    /// </summary>
    /// <param name="indices">Row numbers, each in 0..NumEmbeddings−1.</param>
    /// <param name="offsets">Start of each bag: offsets[0] = 0, non-decreasing, at most indices.Length.</param>
    /// <param name="perSampleWeights">Empty, or one weight per index (mode Sum only), scaling its row.</param>
    /// <param name="output">Row-major [bags, EmbeddingDim].</param>
    /// <exception cref="ArgumentException">Bad offsets, weights or output length (the message names the layer).</exception>
    /// <exception cref="ArgumentOutOfRangeException">An index outside the table.</exception>
    public void Forward(ReadOnlySpan<long> indices, ReadOnlySpan<long> offsets, ReadOnlySpan<float> perSampleWeights, Span<float> output)
    {
        CheckOffsets(indices.Length, offsets);
        if (!perSampleWeights.IsEmpty)
        {
            if (Mode != EmbeddingBagMode.Sum)
            {
                throw new ArgumentException($"{_name}: per_sample_weights are only supported for mode Sum (as in PyTorch), this bag is {Mode}.", nameof(perSampleWeights));
            }

            if (perSampleWeights.Length != indices.Length)
            {
                throw new ArgumentException($"{_name}: expected one per_sample_weight per index ({indices.Length}), got {perSampleWeights.Length}.", nameof(perSampleWeights));
            }
        }

        int dim = EmbeddingDim;
        if (output.Length != (long)offsets.Length * dim)
        {
            throw new ArgumentException($"{_name}: expected an output of [{offsets.Length}, {dim}] ({(long)offsets.Length * dim} values), got {output.Length}.", nameof(output));
        }

        // Every index is checked before any bag is computed, so a bad one leaves the output untouched.
        for (int i = 0; i < indices.Length; i++)
        {
            _table.CheckIndex(indices[i], i);
        }

        for (int b = 0; b < offsets.Length; b++)
        {
            int start = (int)offsets[b];
            int end = b + 1 < offsets.Length ? (int)offsets[b + 1] : indices.Length;
            Span<float> bag = output.Slice(b * dim, dim);
            bag.Clear();
            if (end == start)
            {
                continue;
            }

            if (Mode == EmbeddingBagMode.Max)
            {
                bag.Fill(float.NegativeInfinity);
                for (int i = start; i < end; i++)
                {
                    _table.MaxRow((int)indices[i], bag);
                }

                continue;
            }

            for (int i = start; i < end; i++)
            {
                _table.AccumulateRow((int)indices[i], perSampleWeights.IsEmpty ? 1f : perSampleWeights[i], bag);
            }

            if (Mode == EmbeddingBagMode.Mean)
            {
                float inverseLength = 1f / (end - start);
                for (int j = 0; j < dim; j++)
                {
                    bag[j] *= inverseLength;
                }
            }
        }
    }

    /// <summary>As <see cref="Forward(ReadOnlySpan{long}, ReadOnlySpan{long}, ReadOnlySpan{float}, Span{float})"/>, returning a new array [bags, EmbeddingDim].</summary>
    /// <param name="indices">Row numbers.</param>
    /// <param name="offsets">Start of each bag.</param>
    /// <param name="perSampleWeights">Empty, or one weight per index (mode Sum only).</param>
    public float[] Forward(ReadOnlySpan<long> indices, ReadOnlySpan<long> offsets, ReadOnlySpan<float> perSampleWeights = default)
    {
        var output = new float[(long)offsets.Length * EmbeddingDim];
        Forward(indices, offsets, perSampleWeights, output);
        return output;
    }

    /// <summary>
    /// PyTorch's <c>EmbeddingBag.forward(input, offsets, per_sample_weights)</c>: a 1-D int64/int32
    /// <paramref name="input"/> with 1-D <paramref name="offsets"/>, or a 2-D [B, L] input of B bags of L indices
    /// without offsets. Returns a new float32 tensor [B, EmbeddingDim].
    /// </summary>
    /// <param name="input">Indices.</param>
    /// <param name="offsets">Bag starts for a 1-D input; null for a 2-D input.</param>
    /// <param name="perSampleWeights">Null, or float32 weights of the input's shape (mode Sum only).</param>
    /// <exception cref="ArgumentException">Shapes or dtypes that do not fit (the message names the layer).</exception>
    /// <exception cref="ArgumentOutOfRangeException">An index outside the table.</exception>
    public Tensor Forward(Tensor input, Tensor? offsets = null, Tensor? perSampleWeights = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        long[] indices = ReadIndices(_name, "input", input);
        long[] bagStarts;
        if (input.dim() == 2)
        {
            if (offsets is not null)
            {
                throw new ArgumentException($"{_name}: offsets must be null for a 2-D input [bags, indices_per_bag], got offsets [{string.Join(", ", offsets.shape)}].", nameof(offsets));
            }

            int bags = (int)input.shape[0];
            int perBag = (int)input.shape[1];
            bagStarts = new long[bags];
            for (int b = 0; b < bags; b++)
            {
                bagStarts[b] = (long)b * perBag;
            }
        }
        else if (input.dim() == 1)
        {
            if (offsets is null)
            {
                throw new ArgumentException($"{_name}: a 1-D input needs offsets (the start of each bag).", nameof(offsets));
            }

            if (offsets.dim() != 1)
            {
                throw new ArgumentException($"{_name}: expected 1-D offsets, got [{string.Join(", ", offsets.shape)}].", nameof(offsets));
            }

            bagStarts = ReadIndices(_name, "offsets", offsets);
        }
        else
        {
            throw new ArgumentException($"{_name}: expected a 1-D input with offsets or a 2-D input [bags, indices_per_bag], got [{string.Join(", ", input.shape)}].", nameof(input));
        }

        float[] weights = [];
        if (perSampleWeights is not null)
        {
            if (!perSampleWeights.shape.AsSpan().SequenceEqual(input.shape))
            {
                throw new ArgumentException($"{_name}: expected per_sample_weights of the input's shape [{string.Join(", ", input.shape)}], got [{string.Join(", ", perSampleWeights.shape)}].", nameof(perSampleWeights));
            }

            weights = TensorInterop.ToArray(perSampleWeights, out _);
            if (weights.Length == 0 && indices.Length != 0)
            {
                throw new ArgumentException($"{_name}: per_sample_weights is empty but the input holds {indices.Length} indices.", nameof(perSampleWeights));
            }
        }

        float[] result = Forward(indices, bagStarts, weights);
        return TensorInterop.FromArray(result, [bagStarts.Length, EmbeddingDim]);
    }

    /// <summary>PyTorch's repr: <c>QuantizedEmbeddingBag(num_embeddings=10, embedding_dim=3, dtype=torch.quint8, qscheme=torch.per_channel_affine_float_qparams)</c>.</summary>
    public override string ToString() =>
        $"QuantizedEmbeddingBag(num_embeddings={NumEmbeddings}, embedding_dim={EmbeddingDim}, dtype={_table.DTypeName}, qscheme=torch.per_channel_affine_float_qparams, mode='{Mode.ToString().ToLowerInvariant()}')";

    internal static (float[] Weight, int Rows, int Dim) ReadTable(string name, Tensor? weight)
    {
        if (weight is null)
        {
            throw new ArgumentException($"{name}: the module has no weight.");
        }

        if (weight.dtype != ScalarType.Float32)
        {
            throw new NotSupportedException($"{name}: weight is {weight.dtype}; only Float32 modules are supported.");
        }

        if (weight.dim() != 2)
        {
            throw new ArgumentException($"{name}: expected a weight [num_embeddings, embedding_dim], got [{string.Join(", ", weight.shape)}].");
        }

        float[] values = TensorInterop.ToArray(weight, out int[] shape);
        return (values, shape[0], shape[1]);
    }

    internal static long[] ReadIndices(string name, string what, Tensor tensor)
    {
        if (tensor.dtype is not (ScalarType.Int64 or ScalarType.Int32))
        {
            throw new ArgumentException($"{name}: expected {what} of dtype Int64 or Int32, got {tensor.dtype} [{string.Join(", ", tensor.shape)}].", what);
        }

        long count = tensor.numel();
        if (count == 0)
        {
            return [];
        }

        // One block copy of the storage (TorchSharp's data<long>().ToArray() reads element by element), straight from it
        // for a contiguous CPU int64 tensor (token indices as models hand them on).
        if (tensor.dtype == ScalarType.Int64 && tensor.device_type == DeviceType.CPU && tensor.is_contiguous())
        {
            return TensorInterop.CopyOut<long>(tensor, count);
        }

        using var scope = torch.NewDisposeScope();
        return TensorInterop.CopyOut<long>(tensor.detach().cpu().to(ScalarType.Int64).contiguous(), count);
    }

    private void CheckOffsets(int indexCount, ReadOnlySpan<long> offsets)
    {
        if (offsets.IsEmpty)
        {
            return;
        }

        if (offsets[0] != 0)
        {
            throw new ArgumentException($"{_name}: offsets[0] must be 0 (the first bag starts at the first index), got {offsets[0]}.", nameof(offsets));
        }

        for (int b = 1; b < offsets.Length; b++)
        {
            if (offsets[b] < offsets[b - 1] || offsets[b] > indexCount)
            {
                throw new ArgumentException($"{_name}: offsets must be non-decreasing and at most the number of indices ({indexCount}); offsets[{b}] = {offsets[b]} after {offsets[b - 1]}.", nameof(offsets));
            }
        }
    }
}
