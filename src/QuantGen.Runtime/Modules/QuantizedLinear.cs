using System;
using System.Text;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// PyTorch's <c>QuantizedLinear</c> / <c>QuantizedLinearReLU</c>: quint8 or qint8 activations (input and
/// output each of their qparams' dtype), qint8 weights [OutFeatures, InFeatures], int32 accumulation
/// and requantization per the numerics contract of <see cref="Backend"/>, clamped to the output
/// dtype's full range.
/// </summary>
/// <remarks>
/// The weights are packed once, at construction, for the kernel <see cref="KernelDispatch"/> picks
/// (<c>QUANTGEN_ISA=scalar</c> keeps the scalar reference); every kernel is bit-identical to it.
/// <see cref="Forward(QTensor, Buffers.BufferSlot?)"/> may run on many threads at once: its working memory
/// (the kernels' scratch, int32 accumulators) is the calling thread's (<see cref="LayerScratch"/>, grown once
/// per thread, so steady-state inference does not allocate it again), and the cached requantization factors
/// are immutable objects.
/// </remarks>
public sealed class QuantizedLinear : IQuantizedLayer
{
    private readonly PackedGemmWeights _packedWeights;
    private readonly string _name;
    private readonly int[] _weightZeroPoints;
    private readonly LayerRequantization _requantization;

    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="weight">qint8 weight [OutFeatures, InFeatures], per-channel (axis 0) or per-tensor.</param>
    /// <param name="bias">Float bias per output feature, or null.</param>
    /// <param name="inputQParams">The input's qparams seen at calibration (factors are precomputed for them).</param>
    /// <param name="outputQParams">Output scale and zero point.</param>
    /// <param name="fusedRelu">LinearReLU.</param>
    /// <param name="backend">Bias/requantization arithmetic.</param>
    /// <exception cref="ArgumentException">Inconsistent sizes, weight shape, dtype or qparams (the message names the layer).</exception>
    public QuantizedLinear(string model, string layer, int inFeatures, int outFeatures, QTensor weight, float[]? bias, QParams inputQParams, QParams outputQParams, bool fusedRelu, QuantBackend backend)
        : this(model, layer, inFeatures, outFeatures, weight, bias, inputQParams, outputQParams, fusedRelu, backend, kernelConfig: null)
    {
    }

    /// <summary>As the other constructor, with the weights packed for an explicit kernel (tests, benchmarks).</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="weight">qint8 weight [OutFeatures, InFeatures], per-channel (axis 0) or per-tensor.</param>
    /// <param name="bias">Float bias per output feature, or null.</param>
    /// <param name="inputQParams">The input's qparams seen at calibration (factors are precomputed for them).</param>
    /// <param name="outputQParams">Output scale and zero point.</param>
    /// <param name="fusedRelu">LinearReLU.</param>
    /// <param name="backend">Bias/requantization arithmetic.</param>
    /// <param name="kernelConfig">The kernel to pack for and run; null → <see cref="KernelDispatch.Config"/>.</param>
    /// <exception cref="ArgumentException">Inconsistent sizes, weight shape, dtype or qparams (the message names the layer).</exception>
    /// <exception cref="PlatformNotSupportedException"><paramref name="kernelConfig"/> cannot run on this machine.</exception>
    public QuantizedLinear(string model, string layer, int inFeatures, int outFeatures, QTensor weight, float[]? bias, QParams inputQParams, QParams outputQParams, bool fusedRelu, QuantBackend backend, GemmConfig? kernelConfig)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(inputQParams);
        ArgumentNullException.ThrowIfNull(outputQParams);
        string name = $"{model}.{layer}";
        if (inFeatures < 1 || outFeatures < 1)
        {
            throw new ArgumentException($"{name}: in_features ({inFeatures}) and out_features ({outFeatures}) must be positive.");
        }

        int[] expectedShape = [outFeatures, inFeatures];
        if (!weight.Shape.AsSpan().SequenceEqual(expectedShape))
        {
            throw new ArgumentException($"{name}: expected weight {TorchText.Shape(expectedShape)} ([out_features, in_features]), got {TorchText.Shape(weight.Shape)}.", nameof(weight));
        }

        (float[] weightScales, _weightZeroPoints) = LayerChecks.WeightQParamsPerOutputChannel(name, weight, outFeatures);
        float[]? checkedBias = LayerChecks.Bias(name, bias, outFeatures);
        LayerChecks.ActivationQParams(name, "input", inputQParams, nameof(inputQParams));
        LayerChecks.ActivationQParams(name, "output", outputQParams, nameof(outputQParams));

        Model = model;
        Layer = layer;
        _name = name;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = weight;
        InputQParams = inputQParams;
        OutputQParams = outputQParams;
        FusedRelu = fusedRelu;
        Backend = backend;
        GemmConfig config = kernelConfig ?? KernelDispatch.Config;
        config.EnsureSupported();
        sbyte[] weights = weight.Int8Logical();
        _packedWeights = LinearKernel.Pack(weights, _weightZeroPoints, outFeatures, inFeatures, config);
        _requantization = new LayerRequantization(name, backend, inputQParams.Scale, weightScales, outputQParams, checkedBias, fusedRelu);
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

    /// <summary>Float bias per output feature, or null.</summary>
    public float[]? Bias => _requantization.Bias is null ? null : (float[])_requantization.Bias.Clone();

    /// <summary>
    /// Replaces the float bias (bias correction, <c>QuantGen.Calibration.BiasCorrection</c>) and recomputes the
    /// requantization factors that hold it; weights and qparams are unchanged.
    /// </summary>
    /// <param name="bias">One finite value per output channel (copied), or null for no bias.</param>
    /// <exception cref="ArgumentException">A wrong length or a non-finite value (the message names the layer).</exception>
    public void SetBias(float[]? bias)
    {
        _requantization.SetBias(LayerChecks.Bias($"{Model}.{Layer}", bias, OutFeatures));
    }

    /// <summary>The input qparams seen at calibration; requantization factors are precomputed for them.</summary>
    public QParams InputQParams { get; }

    /// <summary>Output scale and zero point.</summary>
    public QParams OutputQParams { get; }

    /// <summary>Output scale.</summary>
    public float Scale => OutputQParams.Scale;

    /// <summary>Output zero point.</summary>
    public int ZeroPoint => OutputQParams.ZeroPoint;

    /// <summary>True for LinearReLU.</summary>
    public bool FusedRelu { get; }

    /// <summary>The bias/requantization arithmetic.</summary>
    public QuantBackend Backend { get; }

    /// <summary>The kernel the weights are packed for and <see cref="Forward(QTensor)"/> runs.</summary>
    public GemmConfig KernelConfig => _packedWeights.Config;

    /// <summary>
    /// x: [..., InFeatures] of the calibrated input dtype (rank 2 or more, as PyTorch's quantized linear
    /// requires); returns [..., OutFeatures] of <see cref="OutputQParams"/>, contiguous. An input whose scale differs from the calibrated one is
    /// requantized with factors computed for its actual scale, as PyTorch does.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong dtype, rank or feature count.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>
    /// As <see cref="Forward(QTensor)"/>, writing the result into <paramref name="output"/>'s buffer (a
    /// steady-state call then allocates nothing); null allocates a new tensor. The work is split over
    /// <see cref="KernelThreads.MaxDegreeOfParallelism"/> threads, with the same result for any count.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong dtype, rank or feature count, or an output slot that holds the input.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        ReadOnlySpan<int> shape = input.ShapeSpan;
        if (input.DType != InputQParams.DType)
        {
            throw new ArgumentException($"{_name}: expected a {InputQParams.DType.ToTorchString()} input, got {input.DType.ToTorchString()} {TorchText.Shape(shape)}.", nameof(input));
        }

        if (input.QParams.IsPerChannel)
        {
            throw new ArgumentException($"{_name}: expected an input with per-tensor qparams, got {input.QParams}.", nameof(input));
        }

        if (shape.Length < 2 || shape[^1] != InFeatures)
        {
            throw new ArgumentException($"{_name}: expected input [N, {InFeatures}] (rank 2 or more, last dimension {InFeatures}), got {TorchText.Shape(shape)}.", nameof(input));
        }

        // The output shape is the input's with the last dimension replaced; ranks above 8 are rare enough to allocate.
        Span<int> outputShape = shape.Length <= 8 ? stackalloc int[shape.Length] : new int[shape.Length];
        shape.CopyTo(outputShape);
        outputShape[^1] = OutFeatures;
        // In 64 bits: out_features > in_features can make the output larger than any tensor, and that must be
        // an ArgumentException naming the layer, not an OverflowException.
        long wide = 1;
        foreach (int size in outputShape)
        {
            wide = Math.Min(wide * size, (long)int.MaxValue + 1);
        }

        if (wide > int.MaxValue)
        {
            throw new ArgumentException($"{_name}: input {TorchText.Shape(shape)} would give an output of more than {int.MaxValue} elements (out_features={OutFeatures}), a tensor's bound.", nameof(input));
        }

        int count = (int)wide;

        QTensor result = LayerChecks.Output(output, outputShape, OutputQParams, MemoryFormat.Contiguous);
        if (count == 0)
        {
            return result;
        }

        LayerChecks.NotAliased(_name, result, input, nameof(output));
        int rows = count / OutFeatures;
        LayerScratch scratch = LayerScratch.Current;
        ReadOnlySpan<byte> inputView = scratch.InputView(0, input, MemoryFormat.Contiguous);
        int inputZeroPoint = LayerChecks.ViewZeroPoint(input.QParams);
        RequantizeParams requantize = _requantization.For(input.Scale);
        Span<byte> outputView = result.StorageBytes;
        if (QuantizedConv2d.NeedsDTypeRequantize(Backend, OutputQParams.DType))
        {
            // X86 with a qint8 output: the view's zy + 128 rounds differently (RequantizeToDType), so the
            // kernel only accumulates and the real zero point is applied by a second pass (vectorised like the kernels' own).
            Span<int> accumulators = scratch.Accumulators(count);
            LinearKernel.Accumulate(rows, inputView, inputZeroPoint, _packedWeights, accumulators, scratch.Kernel);
            RequantizeVector.Int32ToDTypeView(accumulators, requantize, OutputQParams.DType, outputView, _packedWeights.Config.VectorBits);
        }
        else
        {
            LinearKernel.Run(rows, inputView, inputZeroPoint, _packedWeights, requantize, outputView, scratch.Kernel);
        }

        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>
    /// PyTorch's repr: <c>QuantizedLinear(in_features=4, out_features=2, scale=0.1, zero_point=3, qscheme=torch.per_channel_affine)</c>
    /// (PyTorch stores symmetric weights with an affine qscheme, so that is what it prints).
    /// </summary>
    public override string ToString()
    {
        var text = new StringBuilder(FusedRelu ? "QuantizedLinearReLU(" : "QuantizedLinear(");
        text.Append("in_features=").Append(InFeatures)
            .Append(", out_features=").Append(OutFeatures)
            .Append(", scale=").Append(TorchText.PythonFloat(Scale))
            .Append(", zero_point=").Append(ZeroPoint)
            .Append(", qscheme=").Append((Weight.QParams.IsPerChannel ? QScheme.PerChannelAffine : QScheme.PerTensorAffine).ToTorchString());
        return text.Append(')').ToString();
    }
}
