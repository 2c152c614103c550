using System;
using System.Text;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Modules;
using QuantGen.Observers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>
/// PyTorch's dynamic <c>Linear</c> / <c>LinearReLU</c> (<c>quantize_dynamic</c>, <c>quantized::linear_dynamic</c>):
/// float in, float out. The qint8 weights are packed once, at construction; on every call the input's own
/// min and max give its quint8 qparams (<see cref="DynamicQParams"/>), the input is quantized, multiplied with
/// the weights in int32 by the same GEMM kernels as <see cref="QuantizedLinear"/>, and the accumulators are
/// dequantized to float with the float bias added. docs/numerics.md §8 gives the arithmetic of each
/// <see cref="QuantBackend"/> preset; every step is exact to it.
/// </summary>
/// <remarks>
/// <see cref="Forward(ReadOnlySpan{float}, int, Span{float})"/> may run on many threads at once: the quantized
/// input and the accumulators live in the calling thread's scratch (grown once per thread), and the layer itself
/// holds nothing that a call changes. That overload allocates nothing in steady state; the others allocate only
/// their result.
/// </remarks>
public sealed class DynamicQuantizedLinear : IRecurrentProjection
{
    private readonly PackedGemmWeights _packedWeights;
    private readonly string _name;
    private readonly float[] _weightScales;
    private readonly float[]? _bias;

    /// <summary>A dynamic linear over already quantized weights.</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="weight">qint8 weight [OutFeatures, InFeatures], per-tensor or per-channel along axis 0.</param>
    /// <param name="bias">Float bias per output feature, or null.</param>
    /// <param name="fusedRelu">LinearReLU: the float output is clamped at 0.</param>
    /// <param name="backend">The arithmetic preset (input range and rounding, docs/numerics.md §8).</param>
    /// <param name="kernelConfig">The kernel to pack for and run; null → <see cref="KernelDispatch.Config"/>.</param>
    /// <exception cref="ArgumentException">Inconsistent sizes, weight shape, dtype, qparams or bias (the message names the layer).</exception>
    /// <exception cref="PlatformNotSupportedException"><paramref name="kernelConfig"/> cannot run on this machine.</exception>
    public DynamicQuantizedLinear(string model, string layer, int inFeatures, int outFeatures, QTensor weight, float[]? bias, bool fusedRelu, QuantBackend backend, GemmConfig? kernelConfig = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(weight);
        string name = $"{model}.{layer}";
        if (inFeatures < 1 || outFeatures < 1)
        {
            throw new ArgumentException($"{name}: in_features ({inFeatures}) and out_features ({outFeatures}) must be positive.");
        }

        _ = DynamicQParams.ReducesRange(backend);
        int[] expectedShape = [outFeatures, inFeatures];
        if (!weight.Shape.AsSpan().SequenceEqual(expectedShape))
        {
            throw new ArgumentException($"{name}: expected weight {TorchText.Shape(expectedShape)} ([out_features, in_features]), got {TorchText.Shape(weight.Shape)}.", nameof(weight));
        }

        (_weightScales, int[] weightZeroPoints) = LayerChecks.WeightQParamsPerOutputChannel(name, weight, outFeatures);
        _bias = LayerChecks.Bias(name, bias, outFeatures);
        Model = model;
        Layer = layer;
        _name = name;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = weight;
        FusedRelu = fusedRelu;
        Backend = backend;
        GemmConfig config = kernelConfig ?? KernelDispatch.Config;
        config.EnsureSupported();
        _packedWeights = LinearKernel.Pack(weight.Int8Logical(), weightZeroPoints, outFeatures, inFeatures, config);
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Input features.</summary>
    public int InFeatures { get; }

    /// <summary>Output features.</summary>
    public int OutFeatures { get; }

    /// <summary>The qint8 weight [OutFeatures, InFeatures] (PyTorch's <c>weight()</c>).</summary>
    public QTensor Weight { get; }

    /// <summary>Float bias per output feature (a copy), or null.</summary>
    public float[]? Bias => (float[]?)_bias?.Clone();

    /// <summary>True for LinearReLU.</summary>
    public bool FusedRelu { get; }

    /// <summary>The arithmetic preset.</summary>
    public QuantBackend Backend { get; }

    /// <summary>The kernel the weights are packed for.</summary>
    public GemmConfig KernelConfig => _packedWeights.Config;

    bool IRecurrentProjection.HasBias => _bias is not null;

    /// <summary>
    /// Quantizes a float <see cref="Linear"/>'s weight as PyTorch's dynamic qconfigs do: per-tensor symmetric qint8
    /// (<c>default_dynamic_qconfig</c>'s MinMaxObserver) or, with <paramref name="perChannel"/>, per-channel
    /// symmetric along the output features (<c>per_channel_dynamic_qconfig</c>); the bias stays float. The module
    /// is only read.
    /// </summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="linear">The float32 linear.</param>
    /// <param name="backend">The arithmetic preset.</param>
    /// <param name="perChannel">One weight scale per output feature instead of one for the whole weight.</param>
    /// <param name="fusedRelu">A ReLU follows and is fused.</param>
    /// <exception cref="NotSupportedException">A non-float32 module.</exception>
    /// <exception cref="ArgumentException">A weight with non-finite values (the message names the layer).</exception>
    public static DynamicQuantizedLinear FromLinear(string model, string layer, Linear linear, QuantBackend backend, bool perChannel = false, bool fusedRelu = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(linear);
        string name = $"{model}.{layer}";
        int inFeatures = checked((int)linear.in_features);
        int outFeatures = checked((int)linear.out_features);
        float[] weight = FusedConv2d.ReadParameter(name, "weight", linear.weight)!;
        float[]? bias = FusedConv2d.ReadParameter(name, "bias", linear.bias);
        return FromWeights(model, layer, weight, outFeatures, inFeatures, bias, backend, perChannel, fusedRelu);
    }

    /// <summary>
    /// As <see cref="FromLinear"/>, from a float weight [outFeatures, inFeatures] that no Linear holds (an attention
    /// layer's packed <c>in_proj_weight</c>).
    /// </summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Layer name for errors.</param>
    /// <param name="weight">Row-major [outFeatures, inFeatures] float32 values (copied).</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="bias">outFeatures values, or null.</param>
    /// <param name="backend">The arithmetic preset.</param>
    /// <param name="perChannel">One weight scale per output feature.</param>
    /// <param name="fusedRelu">A ReLU follows and is fused.</param>
    /// <exception cref="ArgumentException">Sizes that do not match, or non-finite weights (the message names the layer).</exception>
    public static DynamicQuantizedLinear FromWeights(string model, string layer, float[] weight, int outFeatures, int inFeatures, float[]? bias, QuantBackend backend, bool perChannel = false, bool fusedRelu = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(weight);
        string name = $"{model}.{layer}";
        if (outFeatures < 1 || inFeatures < 1 || weight.Length != (long)outFeatures * inFeatures || (bias is not null && bias.Length != outFeatures))
        {
            throw new ArgumentException($"{name}: a weight of {weight.Length} values and a bias of {bias?.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"} for [{outFeatures}, {inFeatures}].", nameof(weight));
        }

        ObserverSpec weightSpec = perChannel
            ? ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric)
            : ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric);
        QTensor quantized = FusedConv2d.QuantizeWeight(name, weightSpec, weight, [outFeatures, inFeatures], 0, "Linear", "[out_features, in_features]");
        return new DynamicQuantizedLinear(model, layer, inFeatures, outFeatures, quantized, bias is null ? null : (float[])bias.Clone(), fusedRelu, backend);
    }

    /// <summary>
    /// The quint8 scale and zero point <see cref="Forward(ReadOnlySpan{float}, int, Span{float})"/> gives this
    /// input (from its min and max, docs/numerics.md §8).
    /// </summary>
    /// <param name="input">Float values, row-major [rows, InFeatures].</param>
    /// <exception cref="ArgumentException">An empty input or a non-finite value (the message names the layer).</exception>
    public (float Scale, int ZeroPoint) InputQParams(ReadOnlySpan<float> input)
    {
        (float min, float max) = FiniteRange(input);
        return DynamicQParams.ForInput(min, max, Backend);
    }

    /// <summary>
    /// y = x·Wᵀ + b for <paramref name="rows"/> rows of <see cref="InFeatures"/> floats, written to
    /// <paramref name="output"/> (<paramref name="rows"/> × <see cref="OutFeatures"/>); allocates nothing once
    /// the calling thread's scratch has grown to the size.
    /// </summary>
    /// <param name="input">Row-major [rows, InFeatures].</param>
    /// <param name="rows">Rows (the product of all but the last dimension), at least 1.</param>
    /// <param name="output">Row-major [rows, OutFeatures].</param>
    /// <exception cref="ArgumentException">No rows, lengths that do not match, or a non-finite input value (the message names the layer).</exception>
    public void Forward(ReadOnlySpan<float> input, int rows, Span<float> output)
    {
        int outputCount = CheckRows(input.Length, rows);
        if (output.Length != outputCount)
        {
            throw new ArgumentException($"{_name}: expected an output of [{rows}, {OutFeatures}] ({outputCount} values), got {output.Length}.", nameof(output));
        }

        (float min, float max) = FiniteRange(input);
        (float inputScale, int inputZeroPoint) = DynamicQParams.ForInput(min, max, Backend);
        float inverseScale = 1.0f / inputScale;

        LayerScratch scratch = LayerScratch.Current;
        Span<byte> quantized = scratch.Bytes(0, input.Length);
        if (Backend == QuantBackend.X86)
        {
            // fbgemm's quantizer (fbgemm::Quantize, its default LEGACY order) adds the zero point before rounding.
            DynamicLinearKernel.QuantizeZeroPointFirst(input, quantized, inverseScale, inputZeroPoint);
        }
        else
        {
            // qnnpack's input goes through at::quantize_per_tensor: rne(x · (1/s)) + zp, as QuantStub does.
            QuantizeKernel.ToView(input, quantized, inverseScale, inputZeroPoint);
        }

        Span<int> accumulators = scratch.Accumulators(outputCount);
        LinearKernel.Accumulate(rows, quantized, inputZeroPoint, _packedWeights, accumulators, scratch.Kernel);
        DynamicLinearKernel.Scale(accumulators, OutFeatures, inputScale, _weightScales, _bias, FusedRelu, output);
    }

    /// <summary>As <see cref="Forward(ReadOnlySpan{float}, int, Span{float})"/>, returning a new array.</summary>
    /// <param name="input">Row-major [rows, InFeatures].</param>
    /// <param name="rows">Rows, at least 1.</param>
    /// <exception cref="ArgumentException">No rows, lengths that do not match, or a non-finite input value.</exception>
    public float[] Forward(ReadOnlySpan<float> input, int rows)
    {
        var output = new float[CheckRows(input.Length, rows)];
        Forward(input, rows, output);
        return output;
    }

    /// <summary>
    /// A float32 tensor [..., InFeatures] (rank 2 or more, as PyTorch's dynamic linear requires) to a new float32
    /// tensor [..., OutFeatures].
    /// </summary>
    /// <param name="input">The float input.</param>
    /// <exception cref="ArgumentException">A wrong dtype, rank or feature count, an empty batch or a non-finite value (the message names the layer).</exception>
    public Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dtype != ScalarType.Float32)
        {
            throw new ArgumentException($"{_name}: expected a Float32 input, got {input.dtype} [{string.Join(", ", input.shape)}].", nameof(input));
        }

        long[] shape = input.shape;
        if (shape.Length < 2 || shape[^1] != InFeatures)
        {
            throw new ArgumentException($"{_name}: expected input [N, {InFeatures}] (rank 2 or more, last dimension in_features={InFeatures}), got [{string.Join(", ", shape)}].", nameof(input));
        }

        float[] values = TensorInterop.ToArray(input, out int[] intShape);
        float[] result = Forward(values, values.Length / InFeatures);
        intShape[^1] = OutFeatures;
        return TensorInterop.FromArray(result, intShape);
    }

    /// <summary>PyTorch's repr: <c>DynamicQuantizedLinear(in_features=4, out_features=2, dtype=torch.qint8, qscheme=torch.per_tensor_affine)</c>.</summary>
    public override string ToString()
    {
        var text = new StringBuilder(FusedRelu ? "DynamicQuantizedLinearReLU(" : "DynamicQuantizedLinear(");
        text.Append("in_features=").Append(InFeatures)
            .Append(", out_features=").Append(OutFeatures)
            .Append(", dtype=").Append(QuantDType.QInt8.ToTorchString())
            .Append(", qscheme=").Append((Weight.QParams.IsPerChannel ? QScheme.PerChannelAffine : QScheme.PerTensorAffine).ToTorchString());
        return text.Append(')').ToString();
    }

    /// <summary>Checks <paramref name="rows"/> against the input length; returns the output length.</summary>
    private int CheckRows(int inputLength, int rows)
    {
        if (rows < 1)
        {
            throw new ArgumentException($"{_name}: expected at least one input row, got {rows}; a dynamic layer takes its input's scale from the values, and an empty batch has none.", nameof(rows));
        }

        if ((long)rows * InFeatures != inputLength)
        {
            throw new ArgumentException($"{_name}: expected input [{rows}, {InFeatures}] ({(long)rows * InFeatures} values, in_features={InFeatures}), got {inputLength} values.", "input");
        }

        long outputCount = (long)rows * OutFeatures;
        if (outputCount > int.MaxValue)
        {
            throw new ArgumentException($"{_name}: {rows} rows would give an output of more than {int.MaxValue} elements (out_features={OutFeatures}).", nameof(rows));
        }

        return (int)outputCount;
    }

    private (float Min, float Max) FiniteRange(ReadOnlySpan<float> input)
    {
        if (input.IsEmpty)
        {
            throw new ArgumentException($"{_name}: the input is empty; a dynamic layer takes its input's scale from the values, and an empty batch has none.", nameof(input));
        }

        (float min, float max, int nonFinite) = DynamicLinearKernel.Range(input);
        if (nonFinite >= 0)
        {
            throw new ArgumentException($"{_name}: input value {input[nonFinite]} at row {nonFinite / InFeatures}, feature {nonFinite % InFeatures} is not finite; a dynamic layer's scale comes from its input's min and max, which must be finite.", nameof(input));
        }

        return (min, max);
    }
}
