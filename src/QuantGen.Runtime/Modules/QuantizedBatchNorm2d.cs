using System;
using System.Text;
using System.Threading;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// PyTorch's quantized BatchNorm2d / BNReLU2d (<c>quantized::batch_norm2d</c>): per channel
/// y = quantize(dequantize(x) * scale_c + shift_c), ReLU fused, with PyTorch's folding of the input and
/// output scales into the two factors — see <see cref="BatchNorm2dScalar"/> and docs/numerics.md §5.
/// </summary>
/// <remarks>
/// <c>scale_c</c> and <c>shift_c</c> must be computed in PyTorch's float32 order to reproduce it
/// exactly: <c>scale_c = inv_sigma_c * gamma_c</c>, <c>shift_c = beta_c - (mean_c * inv_sigma_c) * gamma_c</c>
/// with <c>inv_sigma_c = 1 / sqrt(var_c + eps)</c> — <see cref="FromStatistics"/> does.
/// <see cref="Forward(QTensor, Buffers.BufferSlot?)"/> may run on many threads at once: the fused factors for the
/// last input scale are cached as one immutable object, and the working memory is per thread.
/// </remarks>
public sealed class QuantizedBatchNorm2d : IQuantizedLayer
{
    private readonly float[] _scale;
    private readonly float[] _shift;
    // The fused factors for the last input scale, as one immutable object: concurrent calls read a
    // consistent (scale, alpha, beta) triple, and one that swaps it in only replaces equal values.
    private FusedFactors? _factors;
    private readonly string _name;

    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member or op path, for error messages.</param>
    /// <param name="scale">scale_c per channel (finite).</param>
    /// <param name="shift">shift_c per channel (finite), as many as <paramref name="scale"/>.</param>
    /// <param name="outputQParams">Per-tensor output scale and zero point (its dtype is the input's and the output's).</param>
    /// <param name="relu">BNReLU2d.</param>
    /// <exception cref="ArgumentException">Empty or unequal factor arrays, a non-finite factor, or bad output qparams.</exception>
    public QuantizedBatchNorm2d(string model, string layer, float[] scale, float[] shift, QParams outputQParams, bool relu)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(scale);
        ArgumentNullException.ThrowIfNull(shift);
        ArgumentNullException.ThrowIfNull(outputQParams);
        string name = $"{model}.{layer}";
        if (scale.Length == 0 || scale.Length != shift.Length)
        {
            throw new ArgumentException($"{name}: expected one scale and one shift per channel, got {scale.Length} scales and {shift.Length} shifts.", nameof(shift));
        }

        int bad = Array.FindIndex(scale, v => !float.IsFinite(v));
        if (bad >= 0)
        {
            throw new ArgumentException($"{name}: scale[{bad}] is {scale[bad]}; it must be finite.", nameof(scale));
        }

        bad = Array.FindIndex(shift, v => !float.IsFinite(v));
        if (bad >= 0)
        {
            throw new ArgumentException($"{name}: shift[{bad}] is {shift[bad]}; it must be finite.", nameof(shift));
        }

        LayerChecks.ActivationQParams(name, "output", outputQParams, nameof(outputQParams));
        Model = model;
        Layer = layer;
        _name = name;
        _scale = (float[])scale.Clone();
        _shift = (float[])shift.Clone();
        OutputQParams = outputQParams;
        Relu = relu;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member or op path, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Output scale and zero point.</summary>
    public QParams OutputQParams { get; }

    /// <summary>Output scale.</summary>
    public float Scale => OutputQParams.Scale;

    /// <summary>Output zero point.</summary>
    public int ZeroPoint => OutputQParams.ZeroPoint;

    /// <summary>True for BNReLU2d.</summary>
    public bool Relu { get; }

    /// <summary>Channels.</summary>
    public int Channels => _scale.Length;

    /// <summary>scale_c per channel (a copy).</summary>
    public float[] ChannelScale => (float[])_scale.Clone();

    /// <summary>shift_c per channel (a copy).</summary>
    public float[] ChannelShift => (float[])_shift.Clone();

    /// <summary>
    /// The layer from a BatchNorm2d's eval statistics, with <c>scale_c</c>/<c>shift_c</c> in PyTorch's
    /// float32 order (<see cref="BatchNorm2dScalar.ScaleAndShift"/>).
    /// </summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member or op path, for error messages.</param>
    /// <param name="weight">gamma per channel, or null (affine=False: 1).</param>
    /// <param name="bias">beta per channel, or null (0).</param>
    /// <param name="runningMean">Running mean per channel.</param>
    /// <param name="runningVar">Running variance per channel.</param>
    /// <param name="eps">The BatchNorm's eps (default 1e-5).</param>
    /// <param name="outputQParams">Output scale and zero point.</param>
    /// <param name="relu">BNReLU2d.</param>
    public static QuantizedBatchNorm2d FromStatistics(string model, string layer, float[]? weight, float[]? bias, float[] runningMean, float[] runningVar, double eps, QParams outputQParams, bool relu)
    {
        ArgumentNullException.ThrowIfNull(runningMean);
        ArgumentNullException.ThrowIfNull(runningVar);
        int channels = runningMean.Length;
        if (runningVar.Length != channels || (weight is not null && weight.Length != channels) || (bias is not null && bias.Length != channels))
        {
            throw new ArgumentException($"{model}.{layer}: {channels} means, {runningVar.Length} variances, {weight?.Length.ToString() ?? "no"} weights and {bias?.Length.ToString() ?? "no"} biases; each must have one value per channel.");
        }

        var scale = new float[channels];
        var shift = new float[channels];
        BatchNorm2dScalar.ScaleAndShift(weight ?? [], bias ?? [], runningMean, runningVar, eps, scale, shift);
        return new QuantizedBatchNorm2d(model, layer, scale, shift, outputQParams, relu);
    }

    /// <summary>x: [N, C, H, W] of the output's dtype, any layout; returns channels-last [N, C, H, W] with <see cref="OutputQParams"/>.</summary>
    /// <exception cref="ArgumentException">Wrong rank, channel count or dtype, or per-channel qparams.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>
    /// As <see cref="Forward(QTensor)"/>, writing into <paramref name="output"/>'s buffer (a steady-state
    /// call then allocates nothing); null allocates a new tensor. The slot may hold the input (the op is
    /// element for element).
    /// </summary>
    /// <exception cref="ArgumentException">Wrong rank, channel count or dtype, or per-channel qparams.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        string name = _name;
        LayerChecks.PerTensorInput(name, input, nameof(input));
        if (input.Rank != 4 || input.Dim(1) != Channels)
        {
            throw new ArgumentException($"{name}: expected input [N, {Channels}, H, W] (rank 4, {Channels} channels), got {TorchText.Shape(input.ShapeSpan)}.", nameof(input));
        }

        if (input.DType != OutputQParams.DType)
        {
            throw new ArgumentException($"{name}: expected a {OutputQParams.DType.ToTorchString()} input (the output's dtype), got {input.DType.ToTorchString()} {TorchText.Shape(input.ShapeSpan)}.", nameof(input));
        }

        FusedFactors? factors = Volatile.Read(ref _factors);
        if (factors is null || !input.Scale.Equals(factors.InputScale))
        {
            var alpha = new float[Channels];
            var beta = new float[Channels];
            BatchNorm2dScalar.FusedParams(_scale, _shift, input.Scale, OutputQParams.Scale, alpha, beta);
            factors = new FusedFactors(input.Scale, alpha, beta);
            Volatile.Write(ref _factors, factors);
        }

        int rows = input.Count / Channels;
        ReadOnlySpan<byte> view = LayerScratch.Current.InputView(0, input, MemoryFormat.ChannelsLast);
        QTensor result = LayerChecks.Output(output, input.ShapeSpan, OutputQParams, MemoryFormat.ChannelsLast);
        BatchNorm2dScalar.Apply(
            rows, Channels, view, LayerChecks.ViewZeroPoint(input.QParams),
            factors.Alpha, factors.Beta, result.StorageBytes, LayerChecks.ViewZeroPoint(OutputQParams), Relu);
        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>PyTorch's repr: <c>QuantizedBatchNorm2d(16, eps=..., ...)</c> shortened to what is known here: <c>QuantizedBatchNorm2d(16, scale=0.1, zero_point=3)</c>.</summary>
    public override string ToString() =>
        new StringBuilder(Relu ? "QuantizedBNReLU2d(" : "QuantizedBatchNorm2d(")
            .Append(Channels)
            .Append(", scale=").Append(TorchText.PythonFloat(Scale))
            .Append(", zero_point=").Append(ZeroPoint)
            .Append(')').ToString();

    /// <summary>alpha and beta computed for one input scale (never changed once made).</summary>
    private sealed class FusedFactors(float inputScale, float[] alpha, float[] beta)
    {
        public float InputScale { get; } = inputScale;

        public float[] Alpha { get; } = alpha;

        public float[] Beta { get; } = beta;
    }
}
