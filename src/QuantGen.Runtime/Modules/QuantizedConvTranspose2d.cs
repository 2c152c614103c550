using System;
using System.Diagnostics;
using System.Text;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// PyTorch's QuantizedConvTranspose2d (+ fused ReLU): quint8 or qint8 activations, qint8 weights
/// per-tensor or per-channel on axis 1 (output channels), exact int32 accumulation
/// (<see cref="ConvTranspose2dScalar"/>'s sums) and the same requantization as conv for
/// <see cref="Backend"/> (<see cref="Requantize"/>), clamped to the output dtype's full range.
/// </summary>
/// <remarks>
/// The weights are packed once, at construction, for the kernel <see cref="KernelDispatch"/> picks: a GEMM over
/// the input channels with every tap's columns, then col2im (<see cref="ConvTranspose2dKernel"/>);
/// <c>QUANTGEN_ISA=scalar</c> keeps the scalar reference. Every kernel is bit-identical to it.
/// <see cref="Forward(QTensor, Buffers.BufferSlot?)"/> may run on many threads at once: its working memory (int32
/// accumulators, the GEMM's columns and tiles) is the calling thread's (<see cref="LayerScratch"/>, grown once per
/// thread), and the packed weights and cached requantization factors are immutable objects.
/// </remarks>
public sealed class QuantizedConvTranspose2d : IQuantizedLayer
{
    private readonly PackedConvTranspose2dWeights _packedWeights;
    private readonly LayerRequantization _requantization;
    private readonly string _name;

    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member name, for error messages.</param>
    /// <param name="options">Hyper-parameters.</param>
    /// <param name="weight">qint8 weight, logical [InC, OutC/groups, KH, KW]; per-tensor, or per-channel with axis 1 (one scale per output channel).</param>
    /// <param name="bias">Float bias per output channel, or null.</param>
    /// <param name="inputQParams">The input's qparams seen at calibration (factors are precomputed for them).</param>
    /// <param name="outputQParams">Output scale and zero point.</param>
    /// <param name="fusedRelu">ReLU fused after the transposed convolution.</param>
    /// <param name="backend">Bias/requantization arithmetic.</param>
    /// <exception cref="ArgumentException">Inconsistent hyper-parameters, weight shape, dtype or qparams (the message names the layer).</exception>
    public QuantizedConvTranspose2d(string model, string layer, ConvTranspose2dOptions options, QTensor weight, float[]? bias, QParams inputQParams, QParams outputQParams, bool fusedRelu, QuantBackend backend)
        : this(model, layer, options, weight, bias, inputQParams, outputQParams, fusedRelu, backend, kernelConfig: null)
    {
    }

    /// <summary>As the other constructor, with the weights packed for an explicit kernel (tests, benchmarks).</summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member name, for error messages.</param>
    /// <param name="options">Hyper-parameters.</param>
    /// <param name="weight">qint8 weight, logical [InC, OutC/groups, KH, KW]; per-tensor, or per-channel with axis 1 (one scale per output channel).</param>
    /// <param name="bias">Float bias per output channel, or null.</param>
    /// <param name="inputQParams">The input's qparams seen at calibration (factors are precomputed for them).</param>
    /// <param name="outputQParams">Output scale and zero point.</param>
    /// <param name="fusedRelu">ReLU fused after the transposed convolution.</param>
    /// <param name="backend">Bias/requantization arithmetic.</param>
    /// <param name="kernelConfig">The kernel to pack for and run; null → <see cref="KernelDispatch.Config"/>.</param>
    /// <exception cref="ArgumentException">Inconsistent hyper-parameters, weight shape, dtype or qparams (the message names the layer).</exception>
    /// <exception cref="PlatformNotSupportedException"><paramref name="kernelConfig"/> cannot run on this machine.</exception>
    public QuantizedConvTranspose2d(string model, string layer, ConvTranspose2dOptions options, QTensor weight, float[]? bias, QParams inputQParams, QParams outputQParams, bool fusedRelu, QuantBackend backend, GemmConfig? kernelConfig)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(inputQParams);
        ArgumentNullException.ThrowIfNull(outputQParams);
        string name = $"{model}.{layer}";
        ValidateOptions(name, options);
        int outPerGroup = options.OutChannels / options.Groups;
        int[] expectedShape = [options.InChannels, outPerGroup, options.KernelHeight, options.KernelWidth];
        if (!weight.Shape.AsSpan().SequenceEqual(expectedShape))
        {
            throw new ArgumentException($"{name}: expected weight {TorchText.Shape(expectedShape)} ([in_channels, out_channels / groups, kH, kW]), got {TorchText.Shape(weight.Shape)}.", nameof(weight));
        }

        (float[] weightScales, int[] weightZeroPoints) = WeightQParamsPerOutputChannel(name, weight, options.OutChannels, outPerGroup);
        float[]? checkedBias = LayerChecks.Bias(name, bias, options.OutChannels);
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
        _packedWeights = PackedConvTranspose2dWeights.Pack(weight.Int8Logical(), weightZeroPoints, options.InChannels, options.OutChannels, options.KernelHeight, options.KernelWidth, options.Groups, config);
        _requantization = new LayerRequantization(name, backend, inputQParams.Scale, weightScales, outputQParams, checkedBias, fusedRelu);
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Hyper-parameters.</summary>
    public ConvTranspose2dOptions Options { get; }

    /// <summary>The qint8 weight, logical [InC, OutC/groups, KH, KW] (PyTorch's <c>weight()</c>).</summary>
    public QTensor Weight { get; }

    /// <summary>Float bias per output channel, or null.</summary>
    public float[]? Bias => _requantization.Bias is null ? null : (float[])_requantization.Bias.Clone();

    /// <summary>The input qparams seen at calibration; requantization factors are precomputed for them.</summary>
    public QParams InputQParams { get; }

    /// <summary>Output scale and zero point.</summary>
    public QParams OutputQParams { get; }

    /// <summary>Output scale.</summary>
    public float Scale => OutputQParams.Scale;

    /// <summary>Output zero point.</summary>
    public int ZeroPoint => OutputQParams.ZeroPoint;

    /// <summary>True when a ReLU is fused.</summary>
    public bool FusedRelu { get; }

    /// <summary>The bias/requantization arithmetic.</summary>
    public QuantBackend Backend { get; }

    /// <summary>The kernel the weights are packed for and <see cref="Forward(QTensor)"/> runs.</summary>
    public GemmConfig KernelConfig => _packedWeights.Config;

    /// <summary>
    /// x: [N, InC, H, W] of the calibrated input dtype (any layout, per-tensor qparams); returns a
    /// channels-last [N, OutC, OH, OW] tensor of <see cref="OutputQParams"/>, with
    /// <c>OH = (H - 1)·s - 2p + d(k - 1) + output_padding + 1</c>. An input whose scale differs from
    /// the calibrated one is requantized with factors computed for its actual scale, as PyTorch does.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong dtype, rank or channel count, per-channel input qparams, or an empty output.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>
    /// As <see cref="Forward(QTensor)"/>, writing into <paramref name="output"/>'s buffer (a steady-state
    /// call then allocates nothing); null allocates a new tensor.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong dtype, rank or channel count, per-channel input qparams, an empty output, or an output slot that holds the input.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        string name = _name;
        ConvTranspose2dOptions o = Options;
        if (input.DType != InputQParams.DType)
        {
            throw new ArgumentException($"{name}: expected a {InputQParams.DType.ToTorchString()} input, got {input.DType.ToTorchString()} {TorchText.Shape(input.ShapeSpan)}.", nameof(input));
        }

        LayerChecks.PerTensorInput(name, input, nameof(input));
        if (input.Rank != 4 || input.Dim(1) != o.InChannels)
        {
            throw new ArgumentException($"{name}: expected input [N, {o.InChannels}, H, W] (rank 4, {o.InChannels} channels), got {TorchText.Shape(input.ShapeSpan)}.", nameof(input));
        }

        LayerLimits.NonEmptyPlane(name, input.ShapeSpan, nameof(input));

        // (H − 1)·s − 2p + d(k − 1) + output_padding + 1 in 64-bit arithmetic, then QuantGen's bounds: a
        // stride near 2¹⁶ must be refused here, not overflow or spin in the kernel.
        long outHeight = ((input.Dim(2) - 1L) * o.StrideHeight) - (2L * o.PadHeight) + ((long)o.DilationHeight * (o.KernelHeight - 1)) + o.OutputPadHeight + 1;
        long outWidth = ((input.Dim(3) - 1L) * o.StrideWidth) - (2L * o.PadWidth) + ((long)o.DilationWidth * (o.KernelWidth - 1)) + o.OutputPadWidth + 1;
        if (LayerLimits.OutputPlaneProblem(input.ShapeSpan, o.OutChannels, outHeight, outWidth) is string problem)
        {
            throw new ArgumentException(
                $"{name}: {problem} (kernel_size={TorchText.Pair(o.KernelHeight, o.KernelWidth)}, stride={TorchText.Pair(o.StrideHeight, o.StrideWidth)}, padding={TorchText.Pair(o.PadHeight, o.PadWidth)}, output_padding={TorchText.Pair(o.OutputPadHeight, o.OutputPadWidth)}, dilation={TorchText.Pair(o.DilationHeight, o.DilationWidth)}).", nameof(input));
        }

        var geometry = new ConvTranspose2dGeometry(
            input.Dim(0), o.InChannels, input.Dim(2), input.Dim(3), o.OutChannels, o.KernelHeight, o.KernelWidth,
            o.StrideHeight, o.StrideWidth, o.PadHeight, o.PadWidth, o.OutputPadHeight, o.OutputPadWidth,
            o.DilationHeight, o.DilationWidth, o.Groups);
        Debug.Assert(geometry.OutHeight == outHeight && geometry.OutWidth == outWidth, "the kernel's int32 output size must agree with the checked 64-bit one");

        ReadOnlySpan<int> outputShape = [geometry.Batch, o.OutChannels, geometry.OutHeight, geometry.OutWidth];
        int count = geometry.Batch * o.OutChannels * geometry.OutHeight * geometry.OutWidth; // within int32: checked by OutputPlane
        QTensor result = LayerChecks.Output(output, outputShape, OutputQParams, MemoryFormat.ChannelsLast);
        if (count == 0)
        {
            return result;
        }

        LayerChecks.NotAliased(name, result, input, nameof(output));
        LayerScratch scratch = LayerScratch.Current;
        ReadOnlySpan<byte> inputView = scratch.InputView(0, input, MemoryFormat.ChannelsLast);
        int inputZeroPoint = LayerChecks.ViewZeroPoint(input.QParams);
        RequantizeParams requantize = _requantization.For(input.Scale);
        if (QuantizedConv2d.NeedsDTypeRequantize(Backend, OutputQParams.DType))
        {
            // X86 with a qint8 output: the view's zy + 128 rounds differently (RequantizeToDType), so the
            // kernel only accumulates and the real zero point is applied by a second pass (vectorised like the kernels' own).
            Span<int> accumulators = scratch.Accumulators(count);
            ConvTranspose2dKernel.Accumulate(geometry, inputView, inputZeroPoint, _packedWeights, accumulators, scratch.Kernel);
            RequantizeVector.Int32ToDTypeView(accumulators, requantize, OutputQParams.DType, result.StorageBytes, _packedWeights.Config.VectorBits);
        }
        else
        {
            ConvTranspose2dKernel.Run(geometry, inputView, inputZeroPoint, _packedWeights, requantize, result.StorageBytes, scratch.Kernel);
        }
        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>
    /// PyTorch's repr, e.g. <c>QuantizedConvTranspose2d(4, 8, kernel_size=(3, 3), stride=(2, 2), scale=0.1, zero_point=3, padding=(1, 1), output_padding=(1, 1))</c>;
    /// padding, dilation, output_padding, groups and <c>bias=False</c> appear only when not the default.
    /// </summary>
    public override string ToString()
    {
        ConvTranspose2dOptions o = Options;
        var text = new StringBuilder(FusedRelu ? "QuantizedConvTransposeReLU2d(" : "QuantizedConvTranspose2d(");
        text.Append(o.InChannels).Append(", ").Append(o.OutChannels)
            .Append(", kernel_size=").Append(TorchText.Pair(o.KernelHeight, o.KernelWidth))
            .Append(", stride=").Append(TorchText.Pair(o.StrideHeight, o.StrideWidth))
            .Append(", scale=").Append(TorchText.PythonFloat(Scale))
            .Append(", zero_point=").Append(ZeroPoint);
        TorchText.AppendConvOptions(text, o.PadHeight, o.PadWidth, o.DilationHeight, o.DilationWidth, o.OutputPadHeight, o.OutputPadWidth, o.Groups, _requantization.Bias is not null);

        return text.Append(')').ToString();
    }

    /// <summary>PyTorch's ConvTranspose2d constructor checks, naming the layer.</summary>
    internal static void ValidateOptions(string name, ConvTranspose2dOptions options)
    {
        if (options.InChannels < 1 || options.OutChannels < 1 || options.KernelHeight < 1 || options.KernelWidth < 1)
        {
            throw new ArgumentException($"{name}: channels and kernel size must be positive, got {options}.", nameof(options));
        }

        if (options.StrideHeight < 1 || options.StrideWidth < 1 || options.DilationHeight < 1 || options.DilationWidth < 1
            || options.PadHeight < 0 || options.PadWidth < 0 || options.OutputPadHeight < 0 || options.OutputPadWidth < 0)
        {
            throw new ArgumentException($"{name}: stride and dilation must be positive, padding and output_padding non-negative, got {options}.", nameof(options));
        }

        // QuantGen's bounds (LayerLimits): every size the kernel computes from these stays within int32.
        LayerLimits.Field(name, "kernel_size", options.KernelHeight, options.KernelWidth, 1, nameof(options));
        LayerLimits.Field(name, "stride", options.StrideHeight, options.StrideWidth, 1, nameof(options));
        LayerLimits.Field(name, "padding", options.PadHeight, options.PadWidth, 0, nameof(options));
        LayerLimits.Field(name, "output_padding", options.OutputPadHeight, options.OutputPadWidth, 0, nameof(options));
        LayerLimits.Field(name, "dilation", options.DilationHeight, options.DilationWidth, 1, nameof(options));
        LayerLimits.Extent(name, options.KernelHeight, options.KernelWidth, options.DilationHeight, options.DilationWidth, nameof(options));

        if ((options.OutputPadHeight >= options.StrideHeight && options.OutputPadHeight >= options.DilationHeight)
            || (options.OutputPadWidth >= options.StrideWidth && options.OutputPadWidth >= options.DilationWidth))
        {
            throw new ArgumentException($"{name}: output_padding {TorchText.Pair(options.OutputPadHeight, options.OutputPadWidth)} must be smaller than either stride {TorchText.Pair(options.StrideHeight, options.StrideWidth)} or dilation {TorchText.Pair(options.DilationHeight, options.DilationWidth)}.", nameof(options));
        }

        if (options.Groups < 1 || options.InChannels % options.Groups != 0 || options.OutChannels % options.Groups != 0)
        {
            throw new ArgumentException($"{name}: in_channels ({options.InChannels}) and out_channels ({options.OutChannels}) must both be divisible by groups ({options.Groups}).", nameof(options));
        }
    }

    /// <summary>
    /// A qint8 weight's scale and zero point for each OUTPUT channel: per-channel along axis 1 (one
    /// entry per output channel of a group; output channel <c>g·(OutC/g) + o</c> uses entry <c>o</c>,
    /// since all its weights sit at <c>[·, o, ·, ·]</c>), or per-tensor repeated.
    /// </summary>
    private static (float[] Scales, int[] ZeroPoints) WeightQParamsPerOutputChannel(string name, QTensor weight, int outChannels, int outPerGroup)
    {
        if (weight.DType != QuantDType.QInt8)
        {
            throw new ArgumentException($"{name}: expected a {QuantDType.QInt8.ToTorchString()} weight, got {weight.DType.ToTorchString()}.", nameof(weight));
        }

        QParams qparams = weight.QParams;
        if (qparams.IsPerChannel && qparams.Axis != 1)
        {
            throw new ArgumentException($"{name}: per-channel ConvTranspose2d weight qparams must be along axis 1 (output channels), got axis {qparams.Axis}.", nameof(weight));
        }

        var scales = new float[outChannels];
        var zeroPoints = new int[outChannels];
        for (int oc = 0; oc < outChannels; oc++)
        {
            int entry = qparams.IsPerChannel ? oc % outPerGroup : 0;
            scales[oc] = qparams.Scales[entry];
            zeroPoints[oc] = qparams.ZeroPoints[entry];
            if (!float.IsFinite(scales[oc]) || scales[oc] <= 0f)
            {
                throw new ArgumentException($"{name}: weight scale {scales[oc]} (output channel {oc}) must be positive and finite.", nameof(weight));
            }
        }

        return (scales, zeroPoints);
    }
}
