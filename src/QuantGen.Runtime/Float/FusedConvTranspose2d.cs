using System;
using System.Text;
using QuantGen.Observers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// A float ConvTranspose2d with its fused BatchNorm2d folded in (PyTorch's <c>fuse_convtranspose_bn</c>) and an
/// optional ReLU: what the Observed model runs and what <see cref="Convert"/> quantizes. Weights are PyTorch's
/// [InC, OutC/groups, KH, KW]; the output channels are axis 1, so the fold and per-channel weights both work
/// along axis 1.
/// </summary>
public sealed class FusedConvTranspose2d : IDisposable
{
    private const string WeightLayout = "[in_channels, out_channels / groups, kH, kW]";
    private readonly float[] _weight;
    private readonly float[]? _bias;
    private readonly Tensor _weightTensor;
    private readonly Tensor? _biasTensor;
    private bool _disposed;

    private FusedConvTranspose2d(string model, string layer, ConvTranspose2dOptions options, float[] weight, float[]? bias, bool relu)
    {
        Model = model;
        Layer = layer;
        Options = options;
        Relu = relu;
        _weight = weight;
        _bias = bias;

        // Kept for the module's lifetime, so they must not belong to whatever dispose scope the caller has open.
        _weightTensor = torch.tensor(weight, Array.ConvertAll(WeightShape, d => (long)d), ScalarType.Float32).DetachFromDisposeScope();
        _biasTensor = bias is null ? null : torch.tensor(bias, [bias.Length], ScalarType.Float32).DetachFromDisposeScope();
    }

    /// <summary>
    /// Reads the conv-transpose's weight, bias and hyper-parameters from the TorchSharp module and, when
    /// <paramref name="batchNorm"/> is given, folds it in over the OUTPUT channels, in float32 as PyTorch's
    /// <c>fuse_conv_bn_weights(..., transpose=True)</c> writes it: with <c>r = 1f / MathF.Sqrt(var_o + eps)</c>,
    /// <c>w'[i, o, :, :] = w[i, o, :, :] * (gamma_o * r)</c> and <c>b'_o = (b_o - mean_o) * r * gamma_o + beta_o</c>
    /// (left to right; <c>b = 0</c> without a bias). With groups, weight column <c>o</c> of input channel
    /// <c>i</c> feeds output channel <c>(i / (InC/groups)) * (OutC/groups) + o</c>, and that channel's factor is
    /// used (PyTorch's own fold reshapes gamma to [1, OutC, 1, 1] and so only handles groups = 1). The
    /// BatchNorm's running statistics are used whatever its training flag; the modules are only read.
    /// </summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">The conv-transpose's member name, for error messages.</param>
    /// <param name="convTranspose">The float ConvTranspose2d.</param>
    /// <param name="batchNorm">The BatchNorm2d that follows it in <c>forward</c>, or null.</param>
    /// <param name="relu">True when a ReLU follows and is fused.</param>
    /// <exception cref="ArgumentException">Inconsistent hyper-parameters, a BatchNorm whose channel count is not out_channels, or a fold giving non-finite values.</exception>
    /// <exception cref="NotSupportedException">A padding mode other than zeros, a non-float32 module, or a BatchNorm without running statistics.</exception>
    public static FusedConvTranspose2d Create(string model, string layer, ConvTranspose2d convTranspose, BatchNorm2d? batchNorm, bool relu)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(convTranspose);
        string name = $"{model}.{layer}";
        ConvTranspose2dOptions options = ReadOptions(name, convTranspose);
        float[] weight = FusedConv2d.ReadParameter(name, "weight", convTranspose.weight)!;
        float[]? bias = FusedConv2d.ReadParameter(name, "bias", convTranspose.bias);
        int expectedWeights = options.InChannels * (options.OutChannels / options.Groups) * options.KernelHeight * options.KernelWidth;
        if (weight.Length != expectedWeights || (bias is not null && bias.Length != options.OutChannels))
        {
            throw new ArgumentException($"{name}: the conv-transpose's weight ({weight.Length} values) or bias ({bias?.Length ?? 0}) does not match its hyper-parameters {options}.");
        }

        if (batchNorm is not null)
        {
            (weight, bias) = FoldBatchNorm(name, options, weight, bias, batchNorm);
        }

        return new FusedConvTranspose2d(model, layer, options, weight, bias, relu);
    }

    /// <summary>A fused transposed conv from stored values (a float op read from a <c>.qgen</c> file); the caller has checked the shapes.</summary>
    internal static FusedConvTranspose2d FromValues(string model, string layer, ConvTranspose2dOptions options, float[] weight, float[]? bias, bool relu) =>
        new(model, layer, options, weight, bias, relu);

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>The conv-transpose's member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Hyper-parameters.</summary>
    public ConvTranspose2dOptions Options { get; }

    /// <summary>Folded float weights, logical [InC, OutC/groups, KH, KW] (a copy).</summary>
    public float[] Weight => (float[])_weight.Clone();

    /// <summary>Folded float bias (a copy; null when the module has none and no BN was folded).</summary>
    public float[]? Bias => _bias is null ? null : (float[])_bias.Clone();

    /// <summary>True when a ReLU is fused.</summary>
    public bool Relu { get; }

    /// <summary>The weight's logical shape [InC, OutC/groups, KH, KW].</summary>
    public int[] WeightShape => [Options.InChannels, Options.OutChannels / Options.Groups, Options.KernelHeight, Options.KernelWidth];

    /// <summary>Float forward: conv_transpose2d with the folded parameters, then ReLU if fused.</summary>
    /// <exception cref="ArgumentException">The input is not float32 [N, InC, H, W], or the output would be empty.</exception>
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

        ValidateInputShape(name, Options, shape);
        Tensor output = ConvTranspose(input, _weightTensor, _biasTensor, Options);

        // In place on the op's fresh output: no second tensor to dispose.
        return Relu ? output.relu_() : output;
    }

    /// <summary>
    /// Checks that <paramref name="weightSpec"/> suits this layer (what <see cref="Convert"/> and
    /// <see cref="ToReference"/> will check), so a bad qconfig fails at Prepare rather than after calibration.
    /// </summary>
    /// <remarks>
    /// Per-channel weights are along axis 1, the output channels of the weight [InC, OutC/groups, KH, KW]. With
    /// groups &gt; 1 that axis has OutC/groups entries, so entry <c>j</c> (observed over every input channel of
    /// every group) serves output channels <c>j, j + OutC/groups, ...</c> — what a per-channel observer with
    /// ch_axis=1 computes on that tensor; the int8 layer and the reference layer use it the same way.
    /// </remarks>
    /// <exception cref="ArgumentException">The weight observer is not qint8, or is per-channel along an axis other than 1 (the message names the layer and says why).</exception>
    public void ValidateWeightSpec(ObserverSpec weightSpec) =>
        FusedConv2d.CheckWeightSpec($"{Model}.{Layer}", weightSpec, WeightShape, 1, "ConvTranspose2d", WeightLayout);

    /// <summary>
    /// Observes the folded weights with a fresh <paramref name="weightSpec"/> observer (named
    /// "Model.layer.weight"), quantizes them to qint8 with its qparams (per tensor, or per channel along axis 1 —
    /// one scale per output channel; every value clamps to the full -128..127) and builds the int8 layer.
    /// </summary>
    /// <param name="input">The calibrated qparams of this layer's input.</param>
    /// <param name="output">The calibrated qparams of this layer's output (after the fused ReLU).</param>
    /// <param name="weightSpec">The weight observer recipe (QConfig.Weight). PyTorch's default for ConvTranspose is per tensor; per channel must use ch_axis=1.</param>
    /// <param name="backend">Bias/requantization arithmetic of the int8 layer.</param>
    /// <exception cref="ArgumentException">The weight observer is not qint8 or per-channel along an axis other than 1, or the qparams are not usable.</exception>
    public QuantizedConvTranspose2d Convert(QParams input, QParams output, ObserverSpec weightSpec, QuantBackend backend)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        QTensor weight = QuantizeWeight(weightSpec);
        return new QuantizedConvTranspose2d(Model, Layer, Options, weight, _bias, input, output, Relu, backend);
    }

    /// <summary>
    /// The reference (QDQ) form of this layer, PyTorch's <c>QuantizedConvTranspose2d(Reference)</c>:
    /// conv_transpose2d with the dequantized weights — observed and quantized exactly as <see cref="Convert"/>
    /// does, so they are the same integers — and the float bias, ReLU if fused, its output quantized→dequantized
    /// with <paramref name="output"/>.
    /// </summary>
    /// <param name="output">The calibrated qparams of this layer's output (quint8 or qint8, per tensor).</param>
    /// <param name="weightSpec">The weight observer recipe (QConfig.Weight).</param>
    /// <exception cref="ArgumentException">The weight observer or the output qparams are not usable (messages name the layer).</exception>
    public ReferenceLayer ToReference(QParams output, ObserverSpec weightSpec)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string name = $"{Model}.{Layer}";
        Reference.ReferenceChecks.ActivationQParams(name, "output", output, nameof(output));
        QTensor weight = QuantizeWeight(weightSpec);
        return new Reference.ReferenceConvTranspose2d(Model, Layer, Options, weight, _bias, Relu, output);
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

    /// <summary>
    /// PyTorch-like repr: <c>ConvTranspose2d(256, 256, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))</c>;
    /// padding, dilation, output_padding, groups and <c>bias=False</c> appear only when not the default, and a fused ReLU
    /// as a <c>ConvTransposeReLU2d</c> prefix (PyTorch has no such fused module; FX keeps the ReLU separate).
    /// </summary>
    public override string ToString()
    {
        ConvTranspose2dOptions o = Options;
        var text = new StringBuilder(Relu ? "ConvTransposeReLU2d(" : "ConvTranspose2d(");
        text.Append(o.InChannels).Append(", ").Append(o.OutChannels)
            .Append(", kernel_size=").Append(TorchText.Pair(o.KernelHeight, o.KernelWidth))
            .Append(", stride=").Append(TorchText.Pair(o.StrideHeight, o.StrideWidth));
        TorchText.AppendConvOptions(text, o.PadHeight, o.PadWidth, o.DilationHeight, o.DilationWidth, o.OutputPadHeight, o.OutputPadWidth, o.Groups, _bias is not null);

        return text.Append(')').ToString();
    }

    /// <summary>The float op both forms run: <c>conv_transpose2d</c> with the options' stride, padding, output padding, dilation and groups.</summary>
    internal static Tensor ConvTranspose(Tensor input, Tensor weight, Tensor? bias, ConvTranspose2dOptions o) =>
        nn.functional.conv_transpose2d(
            input, weight, bias,
            strides: [o.StrideHeight, o.StrideWidth],
            padding: [o.PadHeight, o.PadWidth],
            output_padding: [o.OutputPadHeight, o.OutputPadWidth],
            dilation: [o.DilationHeight, o.DilationWidth],
            groups: o.Groups);

    /// <summary>Output size of one spatial dimension: <c>(in - 1) * stride - 2 * pad + dilation * (k - 1) + output_pad + 1</c>.</summary>
    internal static long OutputSize(int input, int stride, int pad, int dilation, int kernel, int outputPad) =>
        ((long)(input - 1) * stride) - (2L * pad) + ((long)dilation * (kernel - 1)) + outputPad + 1;

    /// <summary>Rank, channel count and a non-empty output for an NCHW input, with the layer's message style.</summary>
    internal static void ValidateInputShape(string name, ConvTranspose2dOptions o, ReadOnlySpan<int> shape)
    {
        if (shape.Length != 4 || shape[1] != o.InChannels)
        {
            throw new ArgumentException($"{name}: expected input [N, {o.InChannels}, H, W] (rank 4, {o.InChannels} channels), got {TorchText.Shape(shape)}.", "input");
        }

        long outHeight = OutputSize(shape[2], o.StrideHeight, o.PadHeight, o.DilationHeight, o.KernelHeight, o.OutputPadHeight);
        long outWidth = OutputSize(shape[3], o.StrideWidth, o.PadWidth, o.DilationWidth, o.KernelWidth, o.OutputPadWidth);
        if (shape[2] < 1 || shape[3] < 1 || outHeight < 1 || outWidth < 1)
        {
            throw new ArgumentException(
                $"{name}: input {TorchText.Shape(shape)} gives an empty output {outHeight}x{outWidth} " +
                $"((H - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1 with kernel_size={TorchText.Pair(o.KernelHeight, o.KernelWidth)}, stride={TorchText.Pair(o.StrideHeight, o.StrideWidth)}, padding={TorchText.Pair(o.PadHeight, o.PadWidth)}).",
                "input");
        }
    }

    private QTensor QuantizeWeight(ObserverSpec weightSpec)
    {
        ValidateWeightSpec(weightSpec);
        return FusedConv2d.QuantizeWeight($"{Model}.{Layer}", weightSpec, _weight, WeightShape, 1, "ConvTranspose2d", WeightLayout);
    }

    internal static ConvTranspose2dOptions ReadOptions(string name, ConvTranspose2d convTranspose)
    {
        if (convTranspose.padding_mode != PaddingModes.Zeros)
        {
            throw new NotSupportedException($"{name}: padding_mode={convTranspose.padding_mode} is not supported; ConvTranspose2d supports only padding_mode=Zeros (as in PyTorch).");
        }

        if (convTranspose.padding_type is not null)
        {
            throw new NotSupportedException($"{name}: padding={convTranspose.padding_type} is not supported for ConvTranspose2d; give the padding as numbers.");
        }

        (int kernelHeight, int kernelWidth) = Pair(name, "kernel_size", convTranspose.kernel_size);
        (int strideHeight, int strideWidth) = Pair(name, "stride", convTranspose.stride);
        (int padHeight, int padWidth) = Pair(name, "padding", convTranspose.padding);
        (int outputPadHeight, int outputPadWidth) = Pair(name, "output_padding", convTranspose.output_padding);
        (int dilationHeight, int dilationWidth) = Pair(name, "dilation", convTranspose.dilation);
        var options = new ConvTranspose2dOptions(
            checked((int)convTranspose.in_channels), checked((int)convTranspose.out_channels), kernelHeight, kernelWidth,
            strideHeight, strideWidth, padHeight, padWidth, outputPadHeight, outputPadWidth,
            dilationHeight, dilationWidth, checked((int)convTranspose.groups));
        ValidateOptions(name, options);
        return options;
    }

    /// <summary>Checks hyper-parameters as PyTorch's ConvTranspose2d does (including "output padding must be smaller than either stride or dilation").</summary>
    private static void ValidateOptions(string name, ConvTranspose2dOptions o)
    {
        if (o.InChannels < 1 || o.OutChannels < 1 || o.KernelHeight < 1 || o.KernelWidth < 1)
        {
            throw new ArgumentException($"{name}: channels and kernel size must be positive, got {o}.", "convTranspose");
        }

        if (o.StrideHeight < 1 || o.StrideWidth < 1 || o.DilationHeight < 1 || o.DilationWidth < 1 || o.PadHeight < 0 || o.PadWidth < 0)
        {
            throw new ArgumentException($"{name}: stride and dilation must be positive and padding non-negative, got {o}.", "convTranspose");
        }

        if (o.Groups < 1 || o.InChannels % o.Groups != 0 || o.OutChannels % o.Groups != 0)
        {
            throw new ArgumentException($"{name}: in_channels ({o.InChannels}) and out_channels ({o.OutChannels}) must both be divisible by groups ({o.Groups}).", "convTranspose");
        }

        if (o.OutputPadHeight < 0 || o.OutputPadWidth < 0
            || (o.OutputPadHeight >= o.StrideHeight && o.OutputPadHeight >= o.DilationHeight)
            || (o.OutputPadWidth >= o.StrideWidth && o.OutputPadWidth >= o.DilationWidth))
        {
            throw new ArgumentException($"{name}: output_padding {TorchText.Pair(o.OutputPadHeight, o.OutputPadWidth)} must be non-negative and smaller than either stride {TorchText.Pair(o.StrideHeight, o.StrideWidth)} or dilation {TorchText.Pair(o.DilationHeight, o.DilationWidth)}.", "convTranspose");
        }
    }

    private static (int First, int Second) Pair(string name, string what, long[]? values) => values switch
    {
        [long both] => (checked((int)both), checked((int)both)),
        [long first, long second] => (checked((int)first), checked((int)second)),
        _ => throw new NotSupportedException($"{name}: expected {what} with 1 or 2 values, got {(values is null ? "none" : TorchText.Shape(Array.ConvertAll(values, v => (int)v)))}."),
    };

    private static (float[] Weight, float[] Bias) FoldBatchNorm(string name, ConvTranspose2dOptions o, float[] weight, float[]? bias, BatchNorm2d batchNorm)
    {
        int outChannels = o.OutChannels;
        BatchNormStatistics bn = BatchNormStatistics.Read(name, batchNorm, "BatchNorm2d", outChannels, "the conv-transpose's out_channels", "folded into the conv-transpose");
        var factors = new float[outChannels];
        var foldedBias = new float[outChannels];
        for (int c = 0; c < outChannels; c++)
        {
            float rsqrt = bn.InverseSigma(c);

            // gamma * rsqrt(var + eps), the factor of every weight that feeds output channel c
            factors[c] = bn.Gamma(c) * rsqrt;
            foldedBias[c] = FusedConv2d.FoldedConvBias(bias is null ? 0f : bias[c], bn, c, rsqrt);
            bn.ThrowIfNotFinite(name, "BatchNorm2d", c, factors[c], foldedBias[c]);
        }

        // Weight [InC, OutC/g, KH, KW]: entry [i, j, :, :] feeds output channel (i / inPerGroup) * outPerGroup + j.
        int inPerGroup = o.InChannels / o.Groups;
        int outPerGroup = outChannels / o.Groups;
        int kernelArea = o.KernelHeight * o.KernelWidth;
        var foldedWeight = new float[weight.Length];
        for (int i = 0; i < o.InChannels; i++)
        {
            int firstOutput = (i / inPerGroup) * outPerGroup;
            for (int j = 0; j < outPerGroup; j++)
            {
                float factor = factors[firstOutput + j];
                int start = ((i * outPerGroup) + j) * kernelArea;
                for (int k = start; k < start + kernelArea; k++)
                {
                    foldedWeight[k] = weight[k] * factor;
                }
            }
        }

        return (foldedWeight, foldedBias);
    }
}
