using System;
using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// A standalone float BatchNorm2d (eval statistics) with an optional fused ReLU (PyTorch's <c>BNReLU2d</c>):
/// what the Observed model runs and what <see cref="Convert"/> turns into a <see cref="QuantizedBatchNorm2d"/>.
/// </summary>
/// <remarks>
/// The per-channel affine map handed to the int8 layer is computed in float32 in the order of PyTorch's
/// quantized batch norm (<c>compute_fused_params</c> in aten/src/ATen/native/quantized/cpu/qbatch_norm.cpp):
/// <code>
/// inv_sigma_c = 1f / MathF.Sqrt(var_c + (float)eps)
/// scale_c     = inv_sigma_c * gamma_c
/// shift_c     = beta_c - (mean_c * inv_sigma_c) * gamma_c
/// </code>
/// so that <c>y = x * scale_c + shift_c</c>. PyTorch folds the input and output scales in afterwards
/// (<c>alpha_c = scale_c * (sx / sy)</c>, <c>beta_c = shift_c / sy</c>, <c>q = zy + rne(alpha_c * (qx - zx) + beta_c)</c>);
/// that part is the int8 layer's. Note <c>shift_c</c> multiplies <c>mean * inv_sigma</c> by gamma, not mean by
/// <c>scale_c</c>: the two can differ in the last bit. The float forward is libtorch's <c>batch_norm</c> in
/// eval mode (what PyTorch's prepared model runs), so it may differ from <c>x * scale + shift</c> in the last bit.
/// </remarks>
public sealed class FusedBatchNorm2d : IDisposable
{
    private readonly float[] _scale;
    private readonly float[] _shift;
    private readonly float[] _mean;
    private readonly float[] _variance;
    private readonly float[]? _gamma;
    private readonly float[]? _beta;
    private readonly Tensor _meanTensor;
    private readonly Tensor _varianceTensor;
    private readonly Tensor? _gammaTensor;
    private readonly Tensor? _betaTensor;
    private readonly double _moduleEps;
    private bool _disposed;

    private FusedBatchNorm2d(string model, string layer, float[] mean, float[] variance, float[]? gamma, float[]? beta, double moduleEps, bool relu)
    {
        _moduleEps = moduleEps;
        float eps = (float)moduleEps;
        Model = model;
        Layer = layer;
        Relu = relu;
        Eps = eps;
        _mean = mean;
        _variance = variance;
        _gamma = gamma;
        _beta = beta;
        (_scale, _shift) = ScaleAndShift(mean, variance, gamma, beta, eps);

        // Kept for the module's lifetime, so they must not belong to whatever dispose scope the caller has open.
        _meanTensor = Owned(mean);
        _varianceTensor = Owned(variance);
        _gammaTensor = gamma is null ? null : Owned(gamma);
        _betaTensor = beta is null ? null : Owned(beta);
    }

    /// <summary>
    /// Reads the BatchNorm2d's running statistics, affine parameters and eps (the module is only read, never
    /// changed; its running statistics are used whatever its training flag) and computes the per-channel
    /// <see cref="Scale"/> and <see cref="Shift"/> (see the type's remarks for the float32 order).
    /// </summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">The BatchNorm's member name, for error messages.</param>
    /// <param name="batchNorm">The float BatchNorm2d.</param>
    /// <param name="relu">True when a ReLU follows and is fused (BNReLU2d).</param>
    /// <exception cref="ArgumentException">Statistics of inconsistent lengths, or a channel whose scale or shift is not finite.</exception>
    /// <exception cref="NotSupportedException">No running statistics (track_running_stats=False), or non-float32 parameters.</exception>
    public static FusedBatchNorm2d Create(string model, string layer, BatchNorm2d batchNorm, bool relu)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(batchNorm);
        string name = $"{model}.{layer}";
        int channels = checked((int)batchNorm.num_features);
        BatchNormStatistics bn = BatchNormStatistics.Read(name, batchNorm, "BatchNorm2d", channels, "its num_features", "quantized");
        var fused = new FusedBatchNorm2d(model, layer, bn.Mean, bn.Variance, bn.GammaValues, bn.BetaValues, batchNorm.eps, relu);
        for (int c = 0; c < channels; c++)
        {
            if (!float.IsFinite(fused._scale[c]) || !float.IsFinite(fused._shift[c]))
            {
                float scale = fused._scale[c], shift = fused._shift[c];
                fused.Dispose();
                throw new ArgumentException($"{name}: the BatchNorm2d's scale/shift for channel {c} is not finite (scale={scale}, shift={shift}; running_var={bn.Variance[c]}, eps={bn.Eps}, weight={bn.Gamma(c)}, bias={bn.Beta(c)}, running_mean={bn.Mean[c]}).");
            }
        }

        return fused;
    }

    /// <summary>A batch norm from stored statistics (a float op read from a <c>.qgen</c> file); the caller has checked the lengths.</summary>
    internal static FusedBatchNorm2d FromValues(string model, string layer, float[] mean, float[] variance, float[]? gamma, float[]? beta, double moduleEps, bool relu) =>
        new(model, layer, mean, variance, gamma, beta, moduleEps, relu);

    /// <summary>The statistics the float forward uses: running mean and variance, weight and bias (null when not affine), the module's eps.</summary>
    internal (float[] Mean, float[] Variance, float[]? Gamma, float[]? Beta, double Eps) Statistics => (_mean, _variance, _gamma, _beta, _moduleEps);

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>The BatchNorm's member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Number of channels.</summary>
    public int Channels => _mean.Length;

    /// <summary>The module's eps, as float32.</summary>
    public float Eps { get; }

    /// <summary>True when a ReLU is fused (BNReLU2d).</summary>
    public bool Relu { get; }

    /// <summary><c>scale_c = inv_sigma_c * gamma_c</c> (a copy).</summary>
    public float[] Scale => (float[])_scale.Clone();

    /// <summary><c>shift_c = beta_c - (mean_c * inv_sigma_c) * gamma_c</c> (a copy).</summary>
    public float[] Shift => (float[])_shift.Clone();

    /// <summary>Float forward: libtorch's eval-mode <c>batch_norm</c> with the running statistics, then ReLU if fused.</summary>
    /// <exception cref="ArgumentException">The input is not float32 [N, C, H, W] with this BatchNorm's channel count.</exception>
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

        if (shape.Length != 4 || shape[1] != Channels)
        {
            throw new ArgumentException($"{name}: expected input [N, {Channels}, H, W] (rank 4, {Channels} channels), got {TorchText.Shape(shape)}.", nameof(input));
        }

        Tensor output = nn.functional.batch_norm(input, _meanTensor, _varianceTensor, _gammaTensor, _betaTensor, training: false, eps: _moduleEps);

        // In place on the op's fresh output: no second tensor to dispose.
        return Relu ? output.relu_() : output;
    }

    /// <summary>
    /// The int8 layer: <see cref="QuantizedBatchNorm2d"/> with this layer's <see cref="Scale"/> and <see cref="Shift"/>,
    /// the output qparams and the fused ReLU. The input qparams are checked (per-tensor activation qparams) but
    /// not stored: the int8 layer uses each input's own scale and zero point, as PyTorch does.
    /// </summary>
    /// <param name="input">The calibrated qparams of this layer's input.</param>
    /// <param name="output">The calibrated qparams of this layer's output (after the fused ReLU).</param>
    /// <exception cref="ArgumentException">Unusable qparams (the message names the layer).</exception>
    public QuantizedBatchNorm2d Convert(QParams input, QParams output)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string name = $"{Model}.{Layer}";
        Reference.ReferenceChecks.ActivationQParams(name, "input", input, nameof(input));
        Reference.ReferenceChecks.ActivationQParams(name, "output", output, nameof(output));
        return new QuantizedBatchNorm2d(Model, Layer, Scale, Shift, output, Relu);
    }

    /// <summary>
    /// The reference (QDQ) form: the float <c>batch_norm</c> (+ ReLU) on the fake-quantized input, its output
    /// quantized→dequantized with <paramref name="output"/>. The returned layer owns its own copy of the
    /// statistics, so disposing this one does not affect it.
    /// </summary>
    /// <param name="output">The calibrated qparams of this layer's output (quint8 or qint8, per tensor).</param>
    /// <exception cref="ArgumentException">Unusable output qparams (the message names the layer).</exception>
    public ReferenceLayer ToReference(QParams output)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Reference.ReferenceChecks.ActivationQParams($"{Model}.{Layer}", "output", output, nameof(output));
        var copy = new FusedBatchNorm2d(Model, Layer, _mean, _variance, _gamma, _beta, _moduleEps, Relu);
        return new Reference.ReferenceBatchNorm2d(copy, output);
    }

    /// <summary>Releases the statistics tensors.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _meanTensor.Dispose();
            _varianceTensor.Dispose();
            _gammaTensor?.Dispose();
            _betaTensor?.Dispose();
        }
    }

    /// <summary>PyTorch-like repr: <c>BatchNorm2d(64, eps=1e-05)</c>, or <c>BNReLU2d(64, eps=1e-05)</c> with the ReLU fused.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{(Relu ? "BNReLU2d" : "BatchNorm2d")}({Channels}, eps={TorchText.PythonFloat(_moduleEps)}{(_gamma is null ? ", affine=False" : string.Empty)})");

    private static (float[] Scale, float[] Shift) ScaleAndShift(float[] mean, float[] variance, float[]? gamma, float[]? beta, float eps)
    {
        var scale = new float[mean.Length];
        var shift = new float[mean.Length];
        for (int c = 0; c < mean.Length; c++)
        {
            // PyTorch's compute_fused_params: float inv_sigma = 1.0 / std::sqrt(var + (float)eps) — a double
            // division of a float square root, which rounds to the same float as the float32 division.
            float inverseSigma = 1.0f / MathF.Sqrt(variance[c] + eps);
            float g = gamma is null ? 1f : gamma[c];
            float b = beta is null ? 0f : beta[c];
            scale[c] = inverseSigma * g;

            // bias_v - mean * inv_sigma * weight_v, left to right; the subtraction is its own statement (no FMA).
            float normalizedMean = (mean[c] * inverseSigma) * g;
            shift[c] = b - normalizedMean;
        }

        return (scale, shift);
    }

    private static Tensor Owned(float[] values) =>
        torch.tensor(values, [values.Length], ScalarType.Float32).DetachFromDisposeScope();
}
