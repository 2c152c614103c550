using System;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// torch.cat on quantized tensors: every input is requantized to the output qparams (a plain copy
/// when they are equal, as FX's shared observer makes them) — see <see cref="RequantizeScalar"/>.
/// Logical (NCHW) dimensions whatever the storage layout; quint8 or qint8.
/// </summary>
public sealed class QuantizedCat : IQuantizedLayer
{
    private readonly string _name;

    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Op path (e.g. "cat"), for error messages.</param>
    /// <param name="dim">Dimension to concatenate along; negative counts from the end.</param>
    /// <param name="outputQParams">Per-tensor output scale and zero point (its dtype is the inputs').</param>
    /// <exception cref="ArgumentException">Per-channel or out-of-range output qparams.</exception>
    public QuantizedCat(string model, string layer, int dim, QParams outputQParams)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(outputQParams);
        LayerChecks.ActivationQParams($"{model}.{layer}", "output", outputQParams, nameof(outputQParams));
        Model = model;
        Layer = layer;
        _name = $"{model}.{layer}";
        Dim = dim;
        OutputQParams = outputQParams;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Op path, for error messages.</summary>
    public string Layer { get; }

    /// <summary>The concatenation dimension as given (may be negative).</summary>
    public int Dim { get; }

    /// <summary>Output scale and zero point.</summary>
    public QParams OutputQParams { get; }

    /// <summary>Output scale.</summary>
    public float Scale => OutputQParams.Scale;

    /// <summary>Output zero point.</summary>
    public int ZeroPoint => OutputQParams.ZeroPoint;

    /// <summary>Concatenates along <see cref="Dim"/> (logical dims, negative allowed). The result takes the first input's layout.</summary>
    /// <exception cref="ArgumentException">No inputs, ranks or other dimensions differ, <see cref="Dim"/> is out of range, or a dtype is not the output's.</exception>
    public QTensor Forward(params QTensor[] inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        return Forward(inputs.AsSpan(), null);
    }

    /// <summary>Two inputs into <paramref name="output"/>'s buffer (null: a new tensor), as <see cref="Forward(ReadOnlySpan{QTensor}, Buffers.BufferSlot?)"/>.</summary>
    /// <exception cref="ArgumentException">As the other overloads, or an output slot that holds an input.</exception>
    public QTensor Forward(QTensor a, QTensor b, Buffers.BufferSlot? output) => Forward([a, b], output);

    /// <summary>
    /// Concatenates <paramref name="inputs"/> along <see cref="Dim"/> into <paramref name="output"/>'s
    /// buffer (a steady-state call then allocates nothing; pass the inputs as a collection expression,
    /// <c>cat.Forward([t1, t2, t3], slot)</c>, which lives on the stack); null allocates a new tensor.
    /// The result takes the first input's layout.
    /// </summary>
    /// <exception cref="ArgumentException">No inputs, ranks or other dimensions differ, <see cref="Dim"/> is out of range, a dtype is not the output's, or an output slot that holds an input.</exception>
    public QTensor Forward(ReadOnlySpan<QTensor> inputs, Buffers.BufferSlot? output)
    {
        string name = _name;
        if (inputs.Length == 0)
        {
            throw new ArgumentException($"{name}: cat needs at least one input.", nameof(inputs));
        }

        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is null)
            {
                throw new ArgumentNullException(nameof(inputs), $"{name}: input {i} is null.");
            }

            LayerChecks.PerTensorInput(name, inputs[i], nameof(inputs));
            if (inputs[i].DType != OutputQParams.DType)
            {
                throw new ArgumentException($"{name}: expected {OutputQParams.DType.ToTorchString()} inputs (the output's dtype), input {i} is {inputs[i].DType.ToTorchString()} {TorchText.Shape(inputs[i].ShapeSpan)}.", nameof(inputs));
            }
        }

        ReadOnlySpan<int> first = inputs[0].ShapeSpan;
        int rank = first.Length;
        int dim = Dim < 0 ? Dim + rank : Dim;
        if (rank == 0 || dim < 0 || dim >= rank)
        {
            throw new ArgumentException($"{name}: dim {Dim} is out of range for rank-{rank} inputs (shape {TorchText.Shape(first)}).", nameof(inputs));
        }

        Span<int> outputShape = rank <= 8 ? stackalloc int[rank] : new int[rank];
        first.CopyTo(outputShape);
        outputShape[dim] = 0;
        long catSize = 0;
        foreach (QTensor input in inputs)
        {
            ReadOnlySpan<int> shape = input.ShapeSpan;
            bool sameOutsideDim = shape.Length == rank;
            for (int d = 0; sameOutsideDim && d < rank; d++)
            {
                sameOutsideDim = d == dim || shape[d] == first[d];
            }

            if (!sameOutsideDim)
            {
                throw new ArgumentException($"{name}: inputs must match in every dimension but {dim}: {TorchText.Shape(first)} vs {TorchText.Shape(shape)}.", nameof(inputs));
            }

            catSize += shape[dim];
        }

        // The joined dimension in 64 bits: two inputs of 1.1e9 along it (empty elsewhere) must be refused by
        // name, not overflow.
        if (catSize > int.MaxValue)
        {
            throw new ArgumentException($"{name}: the inputs joined along dim {dim} would have size {catSize}, more than QuantGen's int32 sizes (first input {TorchText.Shape(first)}).", nameof(inputs));
        }

        outputShape[dim] = (int)catSize;

        MemoryFormat format = inputs[0].Format;
        QTensor result = LayerChecks.Output(output, outputShape, OutputQParams, format);
        foreach (QTensor input in inputs)
        {
            LayerChecks.NotAliased(name, result, input, nameof(output));
        }

        // Assemble in the output's storage order: every input is read in that layout, and the cat
        // dimension is located among the storage dimensions ([N, H, W, C] for channels-last, C being
        // logical dimension 1). Input i then fills a block of each outer row.
        int storageDim = format == MemoryFormat.ChannelsLast ? dim switch { 0 => 0, 1 => 3, 2 => 1, _ => 2 } : dim;
        Span<int> storageShape = rank <= 8 ? stackalloc int[rank] : new int[rank];
        if (format == MemoryFormat.ChannelsLast)
        {
            storageShape[0] = outputShape[0];
            storageShape[1] = outputShape[2];
            storageShape[2] = outputShape[3];
            storageShape[3] = outputShape[1];
        }
        else
        {
            outputShape.CopyTo(storageShape);
        }

        int outer = 1, inner = 1;
        for (int d = 0; d < storageDim; d++)
        {
            outer *= storageShape[d];
        }

        for (int d = storageDim + 1; d < rank; d++)
        {
            inner *= storageShape[d];
        }

        Span<byte> assembled = result.StorageBytes;
        LayerScratch scratch = LayerScratch.Current;
        int outputRowLength = outputShape[dim] * inner;
        int outputZeroPoint = LayerChecks.ViewZeroPoint(OutputQParams);
        int offset = 0;
        Span<byte> identity = stackalloc byte[256];
        Span<byte> table = stackalloc byte[256];
        for (int i = 0; i < inputs.Length; i++)
        {
            QTensor input = inputs[i];
            int blockLength = input.Dim(dim) * inner;
            ReadOnlySpan<byte> view = scratch.InputView(i, input, format);
            int inputZeroPoint = LayerChecks.ViewZeroPoint(input.QParams);
            if (blockLength < NarrowBlock)
            {
                // A few bytes per outer row (a detector's heads of 2 channels joined per pixel): one requantization call
                // per row costs more than its bytes. Requantizing is a function of the byte alone, so a 256-entry
                // table built by the same function gives the same bytes, looked up in one loop.
                for (int v = 0; v < 256; v++)
                {
                    identity[v] = (byte)v;
                }

                RequantizeScalar.Apply(identity, input.Scale, inputZeroPoint, table, OutputQParams.Scale, outputZeroPoint);
                for (int o = 0; o < outer; o++)
                {
                    ReadOnlySpan<byte> source = view.Slice(o * blockLength, blockLength);
                    Span<byte> target = assembled.Slice((o * outputRowLength) + (offset * inner), blockLength);
                    for (int j = 0; j < source.Length; j++)
                    {
                        target[j] = table[source[j]];
                    }
                }
            }
            else
            {
                for (int o = 0; o < outer; o++)
                {
                    RequantizeScalar.Apply(
                        view.Slice(o * blockLength, blockLength), input.Scale, inputZeroPoint,
                        assembled.Slice((o * outputRowLength) + (offset * inner), blockLength), OutputQParams.Scale, outputZeroPoint);
                }
            }

            offset += input.Dim(dim);
        }

        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>Blocks shorter than this (bytes per outer row and input) are requantized through a 256-entry table.</summary>
    private const int NarrowBlock = 64;

    /// <summary>Like FX's printout of the op: <c>quantized.cat(dim=1, scale=0.1, zero_point=3)</c>.</summary>
    public override string ToString() =>
        $"quantized.cat(dim={Dim}, scale={TorchText.PythonFloat(Scale)}, zero_point={ZeroPoint})";
}
