using System;
using System.Diagnostics;
using System.Text;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// PyTorch's <c>QuantizedConv2d</c> / <c>QuantizedConvReLU2d</c>: quint8 or qint8 activations (input
/// and output each of their qparams' dtype), qint8 weights packed once at construction, int32
/// accumulation and requantization per the numerics contract of <see cref="Backend"/>, clamped to
/// the output dtype's full range.
/// </summary>
/// <remarks>
/// The weights are packed once, at construction, for the kernel <see cref="KernelDispatch"/> picks
/// (<c>QUANTGEN_ISA=scalar</c> keeps the scalar reference); every kernel is bit-identical to it.
/// <see cref="Forward(QTensor, Buffers.BufferSlot?)"/> may run on many threads at once: its working memory
/// (the kernels' scratch, int32 accumulators) is the calling thread's (<see cref="LayerScratch"/>, grown once
/// per thread, so steady-state inference does not allocate it again), and the cached requantization factors
/// are immutable objects.
/// </remarks>
public sealed class QuantizedConv2d : IQuantizedLayer
{
    private readonly PackedConv2dWeights _packedWeights;
    private readonly string _name;
    private readonly int[] _weightZeroPoints;
    private readonly LayerRequantization _requantization;

    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="options">Hyper-parameters.</param>
    /// <param name="weight">qint8 weight, logical [OutC, InC/groups, KH, KW], per-channel (axis 0) or per-tensor.</param>
    /// <param name="bias">Float bias per output channel, or null.</param>
    /// <param name="inputQParams">The input's qparams seen at calibration (factors are precomputed for them).</param>
    /// <param name="outputQParams">Output scale and zero point.</param>
    /// <param name="fusedRelu">ConvReLU2d.</param>
    /// <param name="backend">Bias/requantization arithmetic.</param>
    /// <exception cref="ArgumentException">Inconsistent hyper-parameters, weight shape, dtype or qparams (the message names the layer).</exception>
    public QuantizedConv2d(string model, string layer, Conv2dOptions options, QTensor weight, float[]? bias, QParams inputQParams, QParams outputQParams, bool fusedRelu, QuantBackend backend)
        : this(model, layer, options, weight, bias, inputQParams, outputQParams, fusedRelu, backend, kernelConfig: null)
    {
    }

    /// <summary>As the other constructor, with the weights packed for an explicit kernel (tests, benchmarks).</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="options">Hyper-parameters.</param>
    /// <param name="weight">qint8 weight, logical [OutC, InC/groups, KH, KW], per-channel (axis 0) or per-tensor.</param>
    /// <param name="bias">Float bias per output channel, or null.</param>
    /// <param name="inputQParams">The input's qparams seen at calibration (factors are precomputed for them).</param>
    /// <param name="outputQParams">Output scale and zero point.</param>
    /// <param name="fusedRelu">ConvReLU2d.</param>
    /// <param name="backend">Bias/requantization arithmetic.</param>
    /// <param name="kernelConfig">The kernel to pack for and run; null → <see cref="KernelDispatch.Config"/>.</param>
    /// <exception cref="ArgumentException">Inconsistent hyper-parameters, weight shape, dtype or qparams (the message names the layer).</exception>
    /// <exception cref="PlatformNotSupportedException"><paramref name="kernelConfig"/> cannot run on this machine.</exception>
    public QuantizedConv2d(string model, string layer, Conv2dOptions options, QTensor weight, float[]? bias, QParams inputQParams, QParams outputQParams, bool fusedRelu, QuantBackend backend, GemmConfig? kernelConfig)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(inputQParams);
        ArgumentNullException.ThrowIfNull(outputQParams);
        string name = $"{model}.{layer}";
        ValidateOptions(name, options);
        int outChannels = options.OutChannels;
        int inPerGroup = options.InChannels / options.Groups;
        int[] expectedShape = [outChannels, inPerGroup, options.KernelHeight, options.KernelWidth];
        if (!weight.Shape.AsSpan().SequenceEqual(expectedShape))
        {
            throw new ArgumentException($"{name}: expected weight {TorchText.Shape(expectedShape)} ([out_channels, in_channels / groups, kH, kW]), got {TorchText.Shape(weight.Shape)}.", nameof(weight));
        }

        (float[] weightScales, _weightZeroPoints) = LayerChecks.WeightQParamsPerOutputChannel(name, weight, outChannels);
        float[]? checkedBias = LayerChecks.Bias(name, bias, outChannels);
        LayerChecks.ActivationQParams(name, "input", inputQParams, nameof(inputQParams));
        LayerChecks.ActivationQParams(name, "output", outputQParams, nameof(outputQParams));

        Model = model;
        Layer = layer;
        _name = name;
        Options = options;
        Weight = weight;
        InputQParams = inputQParams;
        OutputQParams = outputQParams;
        FusedRelu = fusedRelu;
        Backend = backend;
        GemmConfig config = kernelConfig ?? KernelDispatch.Config;
        config.EnsureSupported();
        sbyte[] weightsOhwi = PackOhwi(weight, outChannels, inPerGroup, options.KernelHeight, options.KernelWidth);
        _packedWeights = PackedConv2dWeights.Pack(weightsOhwi, _weightZeroPoints, outChannels, options.InChannels, options.KernelHeight, options.KernelWidth, options.Groups, config);
        _requantization = new LayerRequantization(name, backend, inputQParams.Scale, weightScales, outputQParams, checkedBias, fusedRelu);
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Hyper-parameters.</summary>
    public Conv2dOptions Options { get; }

    /// <summary>The qint8 weight, logical [OutC, InC/groups, KH, KW] (PyTorch's <c>weight()</c>).</summary>
    public QTensor Weight { get; }

    /// <summary>Float bias per output channel, or null.</summary>
    public float[]? Bias => _requantization.Bias is null ? null : (float[])_requantization.Bias.Clone();

    /// <summary>
    /// Replaces the float bias (bias correction, <c>QuantGen.Calibration.BiasCorrection</c>) and recomputes the
    /// requantization factors that hold it; weights and qparams are unchanged.
    /// </summary>
    /// <param name="bias">One finite value per output channel (copied), or null for no bias.</param>
    /// <exception cref="ArgumentException">A wrong length or a non-finite value (the message names the layer).</exception>
    public void SetBias(float[]? bias)
    {
        _requantization.SetBias(LayerChecks.Bias($"{Model}.{Layer}", bias, Options.OutChannels));
    }

    /// <summary>The input qparams seen at calibration; requantization factors are precomputed for them.</summary>
    public QParams InputQParams { get; }

    /// <summary>Output scale and zero point.</summary>
    public QParams OutputQParams { get; }

    /// <summary>Output scale.</summary>
    public float Scale => OutputQParams.Scale;

    /// <summary>Output zero point.</summary>
    public int ZeroPoint => OutputQParams.ZeroPoint;

    /// <summary>True for ConvReLU2d.</summary>
    public bool FusedRelu { get; }

    /// <summary>The bias/requantization arithmetic.</summary>
    public QuantBackend Backend { get; }

    /// <summary>The kernel the weights are packed for and <see cref="Forward(QTensor)"/> runs.</summary>
    public GemmConfig KernelConfig => _packedWeights.Config;

    /// <summary>
    /// x: [N, InC, H, W] of the calibrated input dtype (any layout, per-tensor qparams); returns a
    /// channels-last [N, OutC, OH, OW] tensor of <see cref="OutputQParams"/>. An input whose scale
    /// differs from the calibrated one is requantized with factors computed for its actual scale, as
    /// PyTorch does.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong dtype, rank, channel count, or a spatial size smaller than the kernel's reach.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>
    /// As <see cref="Forward(QTensor)"/>, writing the result into <paramref name="output"/>'s buffer (a
    /// steady-state call then allocates nothing); null allocates a new tensor. The work is split over
    /// <see cref="KernelThreads.MaxDegreeOfParallelism"/> threads, with the same result for any count.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong dtype, rank, channel count or spatial size, or an output slot that holds the input.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        ValidateInput(input);
        Conv2dOptions o = Options;
        int batch = input.Dim(0);
        (int outHeight, int outWidth) = OutputSize(_name, o, input.ShapeSpan);
        var geometry = new Conv2dGeometry(
            batch, o.InChannels, input.Dim(2), input.Dim(3), o.OutChannels, o.KernelHeight, o.KernelWidth,
            o.StrideHeight, o.StrideWidth, o.PadHeight, o.PadWidth, o.DilationHeight, o.DilationWidth, o.Groups);
        Debug.Assert(geometry.OutHeight == outHeight && geometry.OutWidth == outWidth, "the kernels' int32 output size must agree with the checked 64-bit one");
        ReadOnlySpan<int> outputShape = [batch, o.OutChannels, outHeight, outWidth];
        int accumulatorCount = batch * o.OutChannels * outHeight * outWidth; // within int32: checked by OutputSize
        QTensor result = LayerChecks.Output(output, outputShape, OutputQParams, MemoryFormat.ChannelsLast);
        if (accumulatorCount == 0)
        {
            return result;
        }

        LayerChecks.NotAliased(_name, result, input, nameof(output));
        LayerScratch scratch = LayerScratch.Current;
        ReadOnlySpan<byte> inputView = scratch.InputView(0, input, MemoryFormat.ChannelsLast);
        int inputZeroPoint = LayerChecks.ViewZeroPoint(input.QParams);
        RequantizeParams requantize = _requantization.For(input.Scale);
        Span<byte> outputView = result.StorageBytes;
        if (NeedsDTypeRequantize(Backend, OutputQParams.DType))
        {
            // X86 with a qint8 output: the view's zy + 128 rounds differently (RequantizeToDType), so the
            // kernel only accumulates and the real zero point is applied by a second pass (vectorised like the kernels' own).
            Span<int> accumulators = scratch.Accumulators(accumulatorCount);
            Conv2dKernel.Accumulate(geometry, inputView, inputZeroPoint, _packedWeights, accumulators, scratch.Kernel);
            RequantizeVector.Int32ToDTypeView(accumulators, requantize, OutputQParams.DType, outputView, _packedWeights.Config.VectorBits);
        }
        else
        {
            Conv2dKernel.Run(geometry, inputView, inputZeroPoint, _packedWeights, requantize, outputView, scratch.Kernel);
        }

        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>
    /// PyTorch's repr, e.g. <c>QuantizedConvReLU2d(1, 1, kernel_size=(1, 1), stride=(1, 1), scale=0.006616627331823111, zero_point=0)</c>;
    /// padding, dilation, groups and <c>bias=False</c> appear only when not the default.
    /// </summary>
    public override string ToString()
    {
        Conv2dOptions o = Options;
        var text = new StringBuilder(FusedRelu ? "QuantizedConvReLU2d(" : "QuantizedConv2d(");
        text.Append(o.InChannels).Append(", ").Append(o.OutChannels)
            .Append(", kernel_size=").Append(TorchText.Pair(o.KernelHeight, o.KernelWidth))
            .Append(", stride=").Append(TorchText.Pair(o.StrideHeight, o.StrideWidth))
            .Append(", scale=").Append(TorchText.PythonFloat(Scale))
            .Append(", zero_point=").Append(ZeroPoint);
        TorchText.AppendConvOptions(text, o.PadHeight, o.PadWidth, o.DilationHeight, o.DilationWidth, 0, 0, o.Groups, _requantization.Bias is not null);

        return text.Append(')').ToString();
    }

    /// <summary>Checks hyper-parameters the way PyTorch's Conv2d constructor does, naming the layer.</summary>
    internal static void ValidateOptions(string name, Conv2dOptions options)
    {
        if (options.InChannels < 1 || options.OutChannels < 1 || options.KernelHeight < 1 || options.KernelWidth < 1)
        {
            throw new ArgumentException($"{name}: channels and kernel size must be positive, got {options}.", nameof(options));
        }

        if (options.StrideHeight < 1 || options.StrideWidth < 1 || options.DilationHeight < 1 || options.DilationWidth < 1 || options.PadHeight < 0 || options.PadWidth < 0)
        {
            throw new ArgumentException($"{name}: stride and dilation must be positive and padding non-negative, got {options}.", nameof(options));
        }

        // QuantGen's bounds (LayerLimits): every size the kernels compute from these stays within int32.
        LayerLimits.Field(name, "kernel_size", options.KernelHeight, options.KernelWidth, 1, nameof(options));
        LayerLimits.Field(name, "stride", options.StrideHeight, options.StrideWidth, 1, nameof(options));
        LayerLimits.Field(name, "padding", options.PadHeight, options.PadWidth, 0, nameof(options));
        LayerLimits.Field(name, "dilation", options.DilationHeight, options.DilationWidth, 1, nameof(options));
        LayerLimits.Extent(name, options.KernelHeight, options.KernelWidth, options.DilationHeight, options.DilationWidth, nameof(options));

        if (options.Groups < 1 || options.InChannels % options.Groups != 0 || options.OutChannels % options.Groups != 0)
        {
            throw new ArgumentException($"{name}: in_channels ({options.InChannels}) and out_channels ({options.OutChannels}) must both be divisible by groups ({options.Groups}).", nameof(options));
        }
    }

    /// <summary>
    /// The output's height and width for an input that passed <see cref="ValidateSpatialInput"/>,
    /// <c>floor((H + 2p − d(k−1) − 1) / s) + 1</c> in 64-bit arithmetic, within <see cref="LayerLimits"/>.
    /// </summary>
    internal static (int Height, int Width) OutputSize(string name, Conv2dOptions o, ReadOnlySpan<int> shape)
    {
        long outHeight = ((shape[2] + (2L * o.PadHeight) - ((long)o.DilationHeight * (o.KernelHeight - 1)) - 1) / o.StrideHeight) + 1;
        long outWidth = ((shape[3] + (2L * o.PadWidth) - ((long)o.DilationWidth * (o.KernelWidth - 1)) - 1) / o.StrideWidth) + 1;
        if (LayerLimits.OutputPlaneProblem(shape, o.OutChannels, outHeight, outWidth) is string problem)
        {
            throw new ArgumentException(
                $"{name}: {problem} (kernel_size={TorchText.Pair(o.KernelHeight, o.KernelWidth)}, stride={TorchText.Pair(o.StrideHeight, o.StrideWidth)}, padding={TorchText.Pair(o.PadHeight, o.PadWidth)}, dilation={TorchText.Pair(o.DilationHeight, o.DilationWidth)}).", "input");
        }

        return ((int)outHeight, (int)outWidth);
    }

    /// <summary>Rank, channel count and spatial size of an NCHW input, with the layer's message style.</summary>
    internal static void ValidateSpatialInput(string name, Conv2dOptions options, ReadOnlySpan<int> shape)
    {
        if (shape.Length != 4 || shape[1] != options.InChannels)
        {
            throw new ArgumentException($"{name}: expected input [N, {options.InChannels}, H, W] (rank 4, {options.InChannels} channels), got {TorchText.Shape(shape)}.");
        }

        // PyTorch refuses an empty plane; padding alone must not make an output out of no input.
        LayerLimits.NonEmptyPlane(name, shape, "input");
        long reachHeight = ((long)options.DilationHeight * (options.KernelHeight - 1)) + 1;
        long reachWidth = ((long)options.DilationWidth * (options.KernelWidth - 1)) + 1;
        long paddedHeight = shape[2] + (2L * options.PadHeight);
        long paddedWidth = shape[3] + (2L * options.PadWidth);
        if (paddedHeight < reachHeight || paddedWidth < reachWidth)
        {
            throw new ArgumentException(
                $"{name}: input {TorchText.Shape(shape)} is too small: its padded spatial size {paddedHeight}x{paddedWidth} must be at least the kernel's reach {reachHeight}x{reachWidth} " +
                $"(kernel_size={TorchText.Pair(options.KernelHeight, options.KernelWidth)}, dilation={TorchText.Pair(options.DilationHeight, options.DilationWidth)}, padding={TorchText.Pair(options.PadHeight, options.PadWidth)}).");
        }
    }

    private void ValidateInput(QTensor input)
    {
        if (input.DType != InputQParams.DType)
        {
            throw new ArgumentException($"{_name}: expected a {InputQParams.DType.ToTorchString()} input, got {input.DType.ToTorchString()} {TorchText.Shape(input.ShapeSpan)}.", nameof(input));
        }

        if (input.QParams.IsPerChannel)
        {
            throw new ArgumentException($"{_name}: expected an input with per-tensor qparams, got {input.QParams}.", nameof(input));
        }

        ValidateSpatialInput(_name, Options, input.ShapeSpan);
    }

    /// <summary>
    /// True when the output cannot be requantized in the unsigned view by the kernels: X86 adds the
    /// zero point before rounding, and for qint8 the view's <c>zy + 128</c> is a different float32 sum.
    /// </summary>
    internal static bool NeedsDTypeRequantize(QuantBackend backend, QuantDType outputDType) =>
        backend == QuantBackend.X86 && UInt8View.Offset(outputDType) != 0;

    /// <summary>Logical [OC, IC/g, KH, KW] → OHWI, the order the packing (and Conv2dScalar) reads.</summary>
    private static sbyte[] PackOhwi(QTensor weight, int outChannels, int inPerGroup, int kernelHeight, int kernelWidth)
    {
        sbyte[] logical = weight.Int8Logical();
        if (kernelHeight == 1 && kernelWidth == 1)
        {
            return logical; // [OC, IC, 1, 1] is already OHWI
        }

        // Written in order (oc, tap, ic); each tap reads its input channels at a stride of KH·KW.
        var packed = new sbyte[logical.Length];
        int area = kernelHeight * kernelWidth;
        int target = 0;
        for (int oc = 0; oc < outChannels; oc++)
        {
            ReadOnlySpan<sbyte> filter = logical.AsSpan(oc * inPerGroup * area, inPerGroup * area);
            for (int tap = 0; tap < area; tap++)
            {
                for (int ic = 0, source = tap; ic < inPerGroup; ic++, source += area)
                {
                    packed[target++] = filter[source];
                }
            }
        }

        return packed;
    }
}
