using System;
using System.Text;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// PyTorch's quantized add / add_relu (<c>torch.ops.quantized.add</c>, what FX makes of <c>a + b</c>):
/// dequantize both inputs in float32, add, ReLU, quantize with the output qparams — see
/// <see cref="AddScalar"/> and docs/numerics.md §5. quint8 or qint8 activations.
/// </summary>
public sealed class QuantizedAdd : IQuantizedLayer
{
    private readonly string _name;

    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Op path (e.g. "layer1.0.add"), for error messages.</param>
    /// <param name="outputQParams">Per-tensor output scale and zero point (its dtype is the inputs' and the output's).</param>
    /// <param name="relu">add_relu: ReLU after the add, before quantizing.</param>
    /// <exception cref="ArgumentException">Per-channel or out-of-range output qparams.</exception>
    public QuantizedAdd(string model, string layer, QParams outputQParams, bool relu)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(outputQParams);
        LayerChecks.ActivationQParams($"{model}.{layer}", "output", outputQParams, nameof(outputQParams));
        Model = model;
        Layer = layer;
        _name = $"{model}.{layer}";
        OutputQParams = outputQParams;
        Relu = relu;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Op path, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Output scale and zero point.</summary>
    public QParams OutputQParams { get; }

    /// <summary>Output scale.</summary>
    public float Scale => OutputQParams.Scale;

    /// <summary>Output zero point.</summary>
    public int ZeroPoint => OutputQParams.ZeroPoint;

    /// <summary>True for add_relu.</summary>
    public bool Relu { get; }

    /// <summary>a and b: same logical shape and dtype (any qparams); the result takes a's layout.</summary>
    /// <exception cref="ArgumentException">Shapes or dtypes differ, the dtype is not the output's, or an input is per-channel.</exception>
    public QTensor Forward(QTensor a, QTensor b) => Forward(a, b, null);

    /// <summary>
    /// As <see cref="Forward(QTensor, QTensor)"/>, writing the result into <paramref name="output"/>'s
    /// buffer (a steady-state call then allocates nothing); null allocates a new tensor. The slot may
    /// hold a or b (the add is element for element), so a buffer plan can add in place.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes or dtypes differ, the dtype is not the output's, or an input is per-channel.</exception>
    public QTensor Forward(QTensor a, QTensor b, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        string name = _name;
        LayerChecks.PerTensorInput(name, a, nameof(a));
        LayerChecks.PerTensorInput(name, b, nameof(b));
        if (!a.ShapeSpan.SequenceEqual(b.ShapeSpan))
        {
            throw new ArgumentException($"{name}: inputs differ in shape: {TorchText.Shape(a.ShapeSpan)} vs {TorchText.Shape(b.ShapeSpan)}.");
        }

        if (a.DType != b.DType)
        {
            throw new ArgumentException($"{name}: inputs differ in dtype: {a.DType.ToTorchString()} vs {b.DType.ToTorchString()}.");
        }

        if (a.DType != OutputQParams.DType)
        {
            throw new ArgumentException($"{name}: expected {OutputQParams.DType.ToTorchString()} inputs (the output's dtype), got {a.DType.ToTorchString()} {TorchText.Shape(a.ShapeSpan)}.");
        }

        // Both in a's layout, so the kernel pairs elements by storage offset. An input converted into its
        // scratch is a copy, so the output may then share the other input's storage element for element.
        MemoryFormat format = a.Format;
        LayerScratch scratch = LayerScratch.Current;
        ReadOnlySpan<byte> viewA = scratch.InputView(0, a, format);
        ReadOnlySpan<byte> viewB = scratch.InputView(1, b, format);
        QTensor result = LayerChecks.Output(output, a.ShapeSpan, OutputQParams, format);
        AddKernel.Apply(
            viewA, a.Scale, LayerChecks.ViewZeroPoint(a.QParams),
            viewB, b.Scale, LayerChecks.ViewZeroPoint(b.QParams),
            result.StorageBytes, OutputQParams.Scale, LayerChecks.ViewZeroPoint(OutputQParams), Relu);
        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>Like FX's printout of the op: <c>quantized.add(scale=0.1, zero_point=3)</c> / <c>quantized.add_relu(...)</c>.</summary>
    public override string ToString() =>
        new StringBuilder(Relu ? "quantized.add_relu(" : "quantized.add(")
            .Append("scale=").Append(TorchText.PythonFloat(Scale))
            .Append(", zero_point=").Append(ZeroPoint)
            .Append(')').ToString();
}
