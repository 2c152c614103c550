using System;
using System.Text;
using QuantGen.Observers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// A float conv with its fused BatchNorm folded in and an optional fused ReLU (PyTorch's ConvReLU2d /
/// the Conv2d that <c>fuse_conv_bn_eval</c> returns): what the Observed model runs and what
/// <see cref="Convert"/> quantizes. Holds the folded parameters both as arrays and as tensors.
/// </summary>
public sealed class FusedConv2d : IDisposable
{
    private readonly float[] _weight;
    private readonly float[]? _bias;
    private readonly Tensor _weightTensor;
    private readonly Tensor? _biasTensor;
    private bool _disposed;

    private FusedConv2d(string model, string layer, Conv2dOptions options, float[] weight, float[]? bias, bool relu)
    {
        Model = model;
        Layer = layer;
        Options = options;
        Relu = relu;
        _weight = weight;
        _bias = bias;

        // Kept for the module's lifetime, so they must not belong to whatever dispose scope the caller has open.
        _weightTensor = torch.tensor(weight, WeightShapeLong, ScalarType.Float32).DetachFromDisposeScope();
        _biasTensor = bias is null ? null : torch.tensor(bias, [bias.Length], ScalarType.Float32).DetachFromDisposeScope();
    }

    /// <summary>
    /// Reads the conv's weight, bias and hyper-parameters from the TorchSharp module and, when
    /// <paramref name="batchNorm"/> is given, folds it in, in float32 exactly as the numerics contract
    /// says: <c>w' = w * (gamma * rsqrt(var + eps))</c>, <c>b' = (b - mean) * rsqrt(var + eps) * gamma + beta</c>
    /// with <c>rsqrt(x) = 1f / MathF.Sqrt(x)</c>, the BatchNorm's own eps and <c>b = 0</c> when the conv
    /// has no bias. The BatchNorm's running statistics are used (eval-mode semantics) whatever its
    /// training flag. The modules are only read, never changed.
    /// </summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">The conv's member name, for error messages.</param>
    /// <param name="conv">The float conv.</param>
    /// <param name="batchNorm">The BatchNorm2d that follows it in <c>forward</c>, or null.</param>
    /// <param name="relu">True when a ReLU follows and is fused.</param>
    /// <exception cref="ArgumentException">The BatchNorm's channel count differs from the conv's out_channels, or folding gives non-finite values.</exception>
    /// <exception cref="NotSupportedException">A padding mode other than zeros, 'same' padding that would be asymmetric, a non-float32 module, or a BatchNorm without running statistics.</exception>
    public static FusedConv2d Create(string model, string layer, Conv2d conv, BatchNorm2d? batchNorm, bool relu)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(conv);
        string name = $"{model}.{layer}";
        Conv2dOptions options = ReadOptions(name, conv);
        float[] weight = ReadParameter(name, "weight", conv.weight)!;
        float[]? bias = ReadParameter(name, "bias", conv.bias);
        int expectedWeights = options.OutChannels * (options.InChannels / options.Groups) * options.KernelHeight * options.KernelWidth;
        if (weight.Length != expectedWeights || (bias is not null && bias.Length != options.OutChannels))
        {
            throw new ArgumentException($"{name}: the conv's weight ({weight.Length} values) or bias ({bias?.Length ?? 0}) does not match its hyper-parameters {options}.");
        }

        if (batchNorm is not null)
        {
            (weight, bias) = FoldBatchNorm(name, options, weight, bias, batchNorm);
        }

        return new FusedConv2d(model, layer, options, weight, bias, relu);
    }

    /// <summary>A fused conv from stored values (a float op read from a <c>.qgen</c> file); the caller has checked the shapes.</summary>
    internal static FusedConv2d FromValues(string model, string layer, Conv2dOptions options, float[] weight, float[]? bias, bool relu) =>
        new(model, layer, options, weight, bias, relu);

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>The conv's member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Hyper-parameters (padding resolved to explicit numbers).</summary>
    public Conv2dOptions Options { get; }

    /// <summary>Folded float weights, logical [OutC, InC/groups, KH, KW] (a copy).</summary>
    public float[] Weight => (float[])_weight.Clone();

    /// <summary>Folded float bias (a copy; null when the conv has none and no BN was folded).</summary>
    public float[]? Bias => _bias is null ? null : (float[])_bias.Clone();

    /// <summary>True when a ReLU is fused.</summary>
    public bool Relu { get; }

    /// <summary>The weight's logical shape [OutC, InC/groups, KH, KW].</summary>
    public int[] WeightShape => [Options.OutChannels, Options.InChannels / Options.Groups, Options.KernelHeight, Options.KernelWidth];

    private long[] WeightShapeLong => Array.ConvertAll(WeightShape, d => (long)d);

    /// <summary>Float forward: conv2d with the folded parameters, then ReLU if fused.</summary>
    /// <exception cref="ArgumentException">The input is not float32 [N, InC, H, W] or is smaller than the kernel's reach.</exception>
    public Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        string name = $"{Model}.{Layer}";
        int[] shape = TensorInterop.ToIntShape(input.shape);
        if (input.dtype != ScalarType.Float32)
        {
            throw new ArgumentException($"{name}: expected a Float32 input, got {input.dtype} {TorchText.Shape(shape)}.", nameof(input));
        }

        QuantizedConv2d.ValidateSpatialInput(name, Options, shape);
        Conv2dOptions o = Options;
        Tensor output = nn.functional.conv2d(
            input, _weightTensor, _biasTensor,
            strides: [o.StrideHeight, o.StrideWidth],
            padding: [o.PadHeight, o.PadWidth],
            dilation: [o.DilationHeight, o.DilationWidth],
            groups: o.Groups);

        // In place on the conv's fresh output: no second tensor to dispose.
        return Relu ? output.relu_() : output;
    }

    /// <summary>
    /// Observes the folded weights with a fresh <paramref name="weightSpec"/> observer (named
    /// "Model.layer.weight"), quantizes them to qint8 with its qparams (per-channel along axis 0 or
    /// per-tensor; every value clamps to the full -128..127) and builds the int8 layer.
    /// </summary>
    /// <param name="input">The calibrated qparams of this layer's input.</param>
    /// <param name="output">The calibrated qparams of this layer's output (after the fused ReLU).</param>
    /// <param name="weightSpec">The weight observer recipe (QConfig.Weight).</param>
    /// <param name="backend">Bias/requantization arithmetic of the int8 layer.</param>
    /// <exception cref="ArgumentException">The weight observer is not qint8 or not along axis 0, or the qparams are not usable (messages name the layer).</exception>
    public QuantizedConv2d Convert(QParams input, QParams output, ObserverSpec weightSpec, QuantBackend backend)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        QTensor weight = QuantizeWeight($"{Model}.{Layer}", weightSpec, _weight, WeightShape);
        return new QuantizedConv2d(Model, Layer, Options, weight, _bias, input, output, Relu, backend);
    }

    /// <summary>Releases the folded parameter tensors.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _weightTensor.Dispose();
            _biasTensor?.Dispose();
        }
    }

    /// <summary>PyTorch-like repr: <c>ConvReLU2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))</c>.</summary>
    public override string ToString()
    {
        Conv2dOptions o = Options;
        var text = new StringBuilder(Relu ? "ConvReLU2d(" : "Conv2d(");
        text.Append(o.InChannels).Append(", ").Append(o.OutChannels)
            .Append(", kernel_size=").Append(TorchText.Pair(o.KernelHeight, o.KernelWidth))
            .Append(", stride=").Append(TorchText.Pair(o.StrideHeight, o.StrideWidth));
        TorchText.AppendConvOptions(text, o.PadHeight, o.PadWidth, o.DilationHeight, o.DilationWidth, 0, 0, o.Groups, _bias is not null);

        return text.Append(')').ToString();
    }

    /// <summary>
    /// Checks a weight observer recipe against what the int8 kernels take, naming the layer: qint8, and
    /// per-channel only along the output-channel axis <paramref name="outputChannelAxis"/> (0 for Conv2d and
    /// Linear weights [OutC, ...], 1 for ConvTranspose2d weights [InC, OutC/groups, ...]).
    /// </summary>
    internal static void CheckWeightSpec(string name, ObserverSpec weightSpec, int[] weightShape, int outputChannelAxis, string moduleKind, string weightLayout)
    {
        ArgumentNullException.ThrowIfNull(weightSpec);
        if (weightSpec.DType != QuantDType.QInt8)
        {
            throw new ArgumentException($"{name}: weights must be observed as {QuantDType.QInt8.ToTorchString()} (the int8 kernels multiply by signed 8-bit weights), got {weightSpec}.");
        }

        if (weightSpec.Scheme.IsPerChannel() && weightSpec.ChannelAxis != outputChannelAxis)
        {
            throw new ArgumentException(
                $"{name}: per-channel weights of a {moduleKind} must use ch_axis={outputChannelAxis}, got ch_axis={weightSpec.ChannelAxis} ({weightSpec}). " +
                $"The weight is {weightLayout}, so axis {outputChannelAxis} holds the output channels; the int8 kernel requantizes each output channel with its own weight scale, " +
                $"which needs one scale per output channel.");
        }

        // Weight qparams brought from elsewhere must have one value per output channel of this very layer.
        if (weightSpec.Fixed is { IsPerChannel: true } fixedValues && fixedValues.Count != weightShape[outputChannelAxis])
        {
            throw new ArgumentException(
                $"{name}: the fixed per-channel weight qparams have {fixedValues.Count} channels, but this {moduleKind}'s weight {TorchText.Shape(weightShape)} ({weightLayout}) " +
                $"has {weightShape[outputChannelAxis]} output channels along axis {outputChannelAxis}; give one scale and zero point per output channel.");
        }
    }

    /// <summary>Checks that <paramref name="weightSpec"/> suits this layer (what <see cref="Convert"/> and <see cref="ToReference"/> will check), so a bad qconfig fails at Prepare rather than after calibration.</summary>
    /// <exception cref="ArgumentException">The weight observer is not qint8, or per-channel along an axis other than 0.</exception>
    public void ValidateWeightSpec(ObserverSpec weightSpec) =>
        CheckWeightSpec($"{Model}.{Layer}", weightSpec, WeightShape, 0, "Conv2d", "[out_channels, in_channels / groups, kH, kW]");

    /// <summary>
    /// The reference (QDQ) form of this layer, PyTorch's <c>QuantizedConv2d(Reference)</c>: conv2d with the
    /// dequantized weights — observed and quantized exactly as <see cref="Convert"/> does, so they are the same
    /// integers — and the float bias, ReLU if fused, its output quantized→dequantized with <paramref name="output"/>.
    /// </summary>
    /// <param name="output">The calibrated qparams of this layer's output (quint8 or qint8, per tensor).</param>
    /// <param name="weightSpec">The weight observer recipe (QConfig.Weight).</param>
    /// <exception cref="ArgumentException">The weight observer or the output qparams are not usable (messages name the layer).</exception>
    public ReferenceLayer ToReference(QParams output, ObserverSpec weightSpec)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string name = $"{Model}.{Layer}";
        Reference.ReferenceChecks.ActivationQParams(name, "output", output, nameof(output));
        QTensor weight = QuantizeWeight(name, weightSpec, _weight, WeightShape);
        return new Reference.ReferenceConv2d(Model, Layer, Options, weight, _bias, Relu, output);
    }

    /// <summary>
    /// Observes float weights with a fresh <paramref name="weightSpec"/> observer named "Model.layer.weight" and
    /// quantizes them to qint8 with its qparams (per-channel along <paramref name="outputChannelAxis"/>, or per
    /// tensor; every value clamps to the full -128..127).
    /// </summary>
    internal static QTensor QuantizeWeight(string name, ObserverSpec weightSpec, float[] weight, int[] shape, int outputChannelAxis = 0, string moduleKind = "Conv2d", string weightLayout = "[out_channels, in_channels / groups, kH, kW]")
    {
        CheckWeightSpec(name, weightSpec, shape, outputChannelAxis, moduleKind, weightLayout);
        Observer observer = weightSpec.Create($"{name}.weight");
        observer.Observe(weight, shape);
        QParams qparams = observer.CalculateQParams();
        if (qparams.IsPerChannel && (qparams.Axis != outputChannelAxis || qparams.Scales.Length != shape[outputChannelAxis]))
        {
            // A custom observer may return anything; the kernel needs one scale per output channel.
            throw new ArgumentException(
                $"{name}.weight: {weightSpec} gave {qparams.Scales.Length} per-channel scales along axis {qparams.Axis}, but the {moduleKind} weight {TorchText.Shape(shape)} ({weightLayout}) " +
                $"has {shape[outputChannelAxis]} output channels along axis {outputChannelAxis}.");
        }

        return QTensor.Quantize(weight, shape, qparams, MemoryFormat.Contiguous);
    }

    internal static Conv2dOptions ReadOptions(string name, Conv2d conv)
    {
        if (conv.transposed)
        {
            throw new NotSupportedException($"{name}: transposed convolutions are not handled by FusedConv2d.");
        }

        if (conv.padding_mode != PaddingModes.Zeros)
        {
            throw new NotSupportedException($"{name}: padding_mode={conv.padding_mode} is not supported; the int8 conv pads with the input zero point, which is padding_mode=Zeros only.");
        }

        int inChannels = checked((int)conv.in_channels);
        int outChannels = checked((int)conv.out_channels);
        int groups = checked((int)conv.groups);
        (int kernelHeight, int kernelWidth) = Pair(name, "kernel_size", conv.kernel_size);
        (int strideHeight, int strideWidth) = Pair(name, "stride", conv.stride);
        (int dilationHeight, int dilationWidth) = Pair(name, "dilation", conv.dilation);
        int padHeight;
        int padWidth;
        switch (conv.padding_type)
        {
            case Padding.Valid:
                (padHeight, padWidth) = (0, 0);
                break;
            case Padding.Same:
                // 'same' pads d*(k-1) in total per dimension; split evenly only when that is even. PyTorch
                // pads an odd total asymmetrically (extra on the right/bottom), which the int8 kernel does not do.
                int totalHeight = dilationHeight * (kernelHeight - 1);
                int totalWidth = dilationWidth * (kernelWidth - 1);
                if (totalHeight % 2 != 0 || totalWidth % 2 != 0)
                {
                    throw new NotSupportedException($"{name}: padding='same' with kernel_size={TorchText.Pair(kernelHeight, kernelWidth)} and dilation={TorchText.Pair(dilationHeight, dilationWidth)} needs asymmetric padding, which is not supported; use an odd kernel or explicit padding.");
                }

                (padHeight, padWidth) = (totalHeight / 2, totalWidth / 2);
                break;
            case null:
                (padHeight, padWidth) = Pair(name, "padding", conv.padding);
                break;
            default:
                throw new NotSupportedException($"{name}: padding={conv.padding_type} is not supported; use zeros padding given as numbers, 'same' or 'valid'.");
        }

        var options = new Conv2dOptions(
            inChannels, outChannels, kernelHeight, kernelWidth, strideHeight, strideWidth,
            padHeight, padWidth, dilationHeight, dilationWidth, groups);
        QuantizedConv2d.ValidateOptions(name, options);
        return options;
    }

    private static (int First, int Second) Pair(string name, string what, long[]? values) => values switch
    {
        [long both] => (checked((int)both), checked((int)both)),
        [long first, long second] => (checked((int)first), checked((int)second)),
        _ => throw new NotSupportedException($"{name}: expected {what} with 1 or 2 values, got {(values is null ? "none" : TorchText.Shape(Array.ConvertAll(values, v => (int)v)))}."),
    };

    /// <summary>A float32 parameter's values (null for a null parameter).</summary>
    internal static float[]? ReadParameter(string name, string what, Tensor? parameter)
    {
        if (parameter is null)
        {
            return null;
        }

        if (parameter.dtype != ScalarType.Float32)
        {
            throw new NotSupportedException($"{name}: {what} is {parameter.dtype}; only Float32 modules are supported.");
        }

        return TensorInterop.ToArray(parameter, out _);
    }

    private static (float[] Weight, float[] Bias) FoldBatchNorm(string name, Conv2dOptions options, float[] weight, float[]? bias, BatchNorm2d batchNorm)
    {
        int channels = options.OutChannels;
        BatchNormStatistics bn = BatchNormStatistics.Read(name, batchNorm, "BatchNorm2d", channels, "the conv's out_channels", "folded into the conv");
        int perChannel = weight.Length / channels;
        var foldedWeight = new float[weight.Length];
        var foldedBias = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            float rsqrt = bn.InverseSigma(c);

            // w' = w * (gamma * rsqrt(var + eps))
            float factor = bn.Gamma(c) * rsqrt;
            for (int i = c * perChannel; i < (c + 1) * perChannel; i++)
            {
                foldedWeight[i] = weight[i] * factor;
            }

            foldedBias[c] = FoldedConvBias(bias is null ? 0f : bias[c], bn, c, rsqrt);
            bn.ThrowIfNotFinite(name, "BatchNorm2d", c, factor, foldedBias[c]);
        }

        return (foldedWeight, foldedBias);
    }

    /// <summary>
    /// <c>b' = (b - mean) * rsqrt(var + eps) * gamma + beta</c>, left to right as PyTorch's
    /// <c>fuse_conv_bn_weights</c> writes it (conv and conv-transpose alike); the final add is its own
    /// statement so no fused multiply-add can creep in.
    /// </summary>
    internal static float FoldedConvBias(float bias, BatchNormStatistics bn, int c, float rsqrt)
    {
        float scaled = ((bias - bn.Mean[c]) * rsqrt) * bn.Gamma(c);
        return scaled + bn.Beta(c);
    }
}
