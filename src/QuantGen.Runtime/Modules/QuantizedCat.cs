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
        string name = $"{Model}.{Layer}";
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
                throw new ArgumentException($"{name}: expected {OutputQParams.DType.ToTorchString()} inputs (the output's dtype), input {i} is {inputs[i].DType.ToTorchString()} {TorchText.Shape(inputs[i].Shape)}.", nameof(inputs));
            }
        }

        int[] first = inputs[0].Shape;
        int rank = first.Length;
        int dim = Dim < 0 ? Dim + rank : Dim;
        if (rank == 0 || dim < 0 || dim >= rank)
        {
            throw new ArgumentException($"{name}: dim {Dim} is out of range for rank-{rank} inputs (shape {TorchText.Shape(first)}).", nameof(inputs));
        }

        int[] outputShape = (int[])first.Clone();
        outputShape[dim] = 0;
        foreach (QTensor input in inputs)
        {
            int[] shape = input.Shape;
            bool sameOutsideDim = shape.Length == rank;
            for (int d = 0; sameOutsideDim && d < rank; d++)
            {
                sameOutsideDim = d == dim || shape[d] == first[d];
            }

            if (!sameOutsideDim)
            {
                throw new ArgumentException($"{name}: inputs must match in every dimension but {dim}: {TorchText.Shape(first)} vs {TorchText.Shape(shape)}.", nameof(inputs));
            }

            outputShape[dim] = checked(outputShape[dim] + shape[dim]);
        }

        int outer = 1, inner = 1;
        for (int d = 0; d < dim; d++)
        {
            outer *= first[d];
        }

        for (int d = dim + 1; d < rank; d++)
        {
            inner *= first[d];
        }

        // Row-major (logical) assembly: input i fills rows [offset_i, offset_i + size_i) of dim in every outer block.
        var output = new byte[checked(outer * outputShape[dim] * inner)];
        int outputRowLength = outputShape[dim] * inner;
        int outputZeroPoint = LayerChecks.ViewZeroPoint(OutputQParams);
        int offset = 0;
        foreach (QTensor input in inputs)
        {
            int blockLength = input.Dim(dim) * inner;
            byte[] view = LayerChecks.ViewOf(input, MemoryFormat.Contiguous);
            int inputZeroPoint = LayerChecks.ViewZeroPoint(input.QParams);
            for (int o = 0; o < outer; o++)
            {
                RequantizeScalar.Apply(
                    view.AsSpan(o * blockLength, blockLength), input.Scale, inputZeroPoint,
                    output.AsSpan((o * outputRowLength) + (offset * inner), blockLength), OutputQParams.Scale, outputZeroPoint);
            }

            offset += input.Dim(dim);
        }

        QTensor rowMajor = LayerChecks.FromView(outputShape, OutputQParams, output, MemoryFormat.Contiguous);
        return inputs[0].Format == MemoryFormat.ChannelsLast ? rowMajor.WithFormat(MemoryFormat.ChannelsLast) : rowMajor;
    }

    /// <summary>Like FX's printout of the op: <c>quantized.cat(dim=1, scale=0.1, zero_point=3)</c>.</summary>
    public override string ToString() =>
        $"quantized.cat(dim={Dim}, scale={TorchText.PythonFloat(Scale)}, zero_point={ZeroPoint})";
}
