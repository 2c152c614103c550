using System;
using QuantGen.Dynamic;
using QuantGen.Observers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// A float linear with an optional fused ReLU (PyTorch's LinearReLU): what the Observed model runs and
/// what <see cref="Convert"/> quantizes. Holds the parameters both as arrays and as tensors.
/// </summary>
public sealed class FusedLinear : IDisposable
{
    private readonly float[] _weight;
    private readonly float[]? _bias;
    private readonly Tensor _weightTensor;
    private readonly Tensor? _biasTensor;
    private readonly int? _batchNormFeatures;
    private bool _disposed;

    private FusedLinear(string model, string layer, int inFeatures, int outFeatures, float[] weight, float[]? bias, bool relu, int? batchNormFeatures)
    {
        _batchNormFeatures = batchNormFeatures;
        Model = model;
        Layer = layer;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Relu = relu;
        _weight = weight;
        _bias = bias;

        // Kept for the module's lifetime, so they must not belong to whatever dispose scope the caller has open.
        _weightTensor = torch.tensor(weight, [outFeatures, inFeatures], ScalarType.Float32).DetachFromDisposeScope();
        _biasTensor = bias is null ? null : torch.tensor(bias, [outFeatures], ScalarType.Float32).DetachFromDisposeScope();
    }

    /// <summary>Reads the weight, bias and sizes from the TorchSharp module (which is only read, never changed).</summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">The linear's member name, for error messages.</param>
    /// <param name="linear">The float linear.</param>
    /// <param name="relu">True when a ReLU follows and is fused.</param>
    /// <exception cref="NotSupportedException">The module is not float32.</exception>
    public static FusedLinear Create(string model, string layer, Linear linear, bool relu) =>
        Create(model, layer, linear, batchNorm: null, relu);

    /// <summary>
    /// Reads the linear and, when <paramref name="batchNorm"/> is given, folds it in as PyTorch's
    /// <c>fuse_linear_bn_weights</c> does, in float32 with its parenthesisation:
    /// <c>s = gamma * rsqrt(var + eps)</c>, <c>w' = w * s</c> (row by row), <c>b' = (b - mean) * s + beta</c>,
    /// with <c>rsqrt(x) = 1f / MathF.Sqrt(x)</c>, the BatchNorm's own eps and <c>b = 0</c> when the linear has
    /// no bias. The weight is the same product as the conv fold's <c>w * (gamma * rsqrt)</c>; the bias is NOT
    /// the conv fold's <c>((b - mean) * rsqrt) * gamma + beta</c>: PyTorch multiplies by the combined factor
    /// here, which can differ in the last bit. A one-feature BatchNorm1d is broadcast over every output, as
    /// PyTorch allows. The running statistics are used (eval semantics) whatever the training flag; the
    /// modules are only read.
    /// </summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">The linear's member name, for error messages.</param>
    /// <param name="linear">The float linear.</param>
    /// <param name="batchNorm">The BatchNorm1d that follows it in <c>forward</c>, or null.</param>
    /// <param name="relu">True when a ReLU follows and is fused.</param>
    /// <exception cref="ArgumentException">The BatchNorm's feature count is neither out_features nor 1, or folding gives non-finite values.</exception>
    /// <exception cref="NotSupportedException">A non-float32 module, or a BatchNorm without running statistics.</exception>
    public static FusedLinear Create(string model, string layer, Linear linear, BatchNorm1d? batchNorm, bool relu)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(linear);
        string name = $"{model}.{layer}";
        int inFeatures = checked((int)linear.in_features);
        int outFeatures = checked((int)linear.out_features);
        float[] weight = FusedConv2d.ReadParameter(name, "weight", linear.weight)!;
        float[]? bias = FusedConv2d.ReadParameter(name, "bias", linear.bias);
        if (inFeatures < 1 || outFeatures < 1 || weight.Length != inFeatures * outFeatures || (bias is not null && bias.Length != outFeatures))
        {
            throw new ArgumentException($"{name}: the linear's weight ({weight.Length} values) or bias ({bias?.Length ?? 0}) does not match in_features={inFeatures}, out_features={outFeatures}.");
        }

        if (batchNorm is not null)
        {
            (weight, bias) = FoldBatchNorm(name, inFeatures, outFeatures, weight, bias, batchNorm);
        }

        return new FusedLinear(model, layer, inFeatures, outFeatures, weight, bias, relu, batchNorm is null ? null : checked((int)batchNorm.num_features));
    }

    /// <summary>A fused linear from stored values (a float op read from a <c>.qgen</c> file); the caller has checked the shapes.</summary>
    internal static FusedLinear FromValues(string model, string layer, int inFeatures, int outFeatures, float[] weight, float[]? bias, bool relu, int? batchNormFeatures) =>
        new(model, layer, inFeatures, outFeatures, weight, bias, relu, batchNormFeatures);

    /// <summary>The features of the folded BatchNorm1d, or null.</summary>
    internal int? BatchNormFeatures => _batchNormFeatures;

    /// <summary>
    /// True when a BatchNorm1d was folded in. BatchNorm1d normalizes dimension 1 while the linear's features are
    /// the last one, so the fold only equals linear→BatchNorm1d on [N, features] inputs or, for a one-feature
    /// BatchNorm1d, on [N, 1, features]; such a layer refuses other shapes instead of silently computing
    /// something else.
    /// </summary>
    public bool FoldedBatchNorm => _batchNormFeatures is not null;

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>The linear's member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Input features.</summary>
    public int InFeatures { get; }

    /// <summary>Output features.</summary>
    public int OutFeatures { get; }

    /// <summary>Float weights [OutFeatures, InFeatures] (a copy).</summary>
    public float[] Weight => (float[])_weight.Clone();

    /// <summary>Float bias (a copy), or null.</summary>
    public float[]? Bias => _bias is null ? null : (float[])_bias.Clone();

    /// <summary>True when a ReLU is fused.</summary>
    public bool Relu { get; }

    /// <summary>Float forward: linear, then ReLU if fused.</summary>
    /// <exception cref="ArgumentException">The input is not float32 or its last dimension is not <see cref="InFeatures"/>.</exception>
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

        ValidateInputShape(name, InFeatures, _batchNormFeatures, shape);
        Tensor output = nn.functional.linear(input, _weightTensor, _biasTensor);

        // In place on the linear's fresh output: no second tensor to dispose.
        return Relu ? output.relu_() : output;
    }

    /// <summary>
    /// Observes the weights with a fresh <paramref name="weightSpec"/> observer (named
    /// "Model.layer.weight"), quantizes them to qint8 (per-channel along axis 0 or per-tensor; every value
    /// clamps to the full -128..127) and builds the int8 layer.
    /// </summary>
    /// <param name="input">The calibrated qparams of this layer's input.</param>
    /// <param name="output">The calibrated qparams of this layer's output (after the fused ReLU).</param>
    /// <param name="weightSpec">The weight observer recipe (QConfig.Weight).</param>
    /// <param name="backend">Bias/requantization arithmetic of the int8 layer.</param>
    /// <exception cref="ArgumentException">The weight observer is not qint8 or not along axis 0, or the qparams are not usable.</exception>
    public QuantizedLinear Convert(QParams input, QParams output, ObserverSpec weightSpec, QuantBackend backend)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        QTensor weight = QuantizeLinearWeight($"{Model}.{Layer}", weightSpec);
        return new QuantizedLinear(Model, Layer, InFeatures, OutFeatures, weight, _bias, input, output, Relu, backend);
    }

    /// <summary>Checks that <paramref name="weightSpec"/> suits this layer (what <see cref="Convert"/> and <see cref="ToReference"/> will check), so a bad qconfig fails at Prepare rather than after calibration.</summary>
    /// <exception cref="ArgumentException">The weight observer is not qint8, or per-channel along an axis other than 0.</exception>
    public void ValidateWeightSpec(ObserverSpec weightSpec) =>
        FusedConv2d.CheckWeightSpec($"{Model}.{Layer}", weightSpec, [OutFeatures, InFeatures], 0, "Linear", "[out_features, in_features]");

    /// <summary>
    /// The reference (QDQ) form of this layer, PyTorch's <c>QuantizedLinear(Reference)</c>: linear with the
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
        QTensor weight = QuantizeLinearWeight(name, weightSpec);
        return new Reference.ReferenceLinear(Model, Layer, InFeatures, OutFeatures, weight, _bias, Relu, _batchNormFeatures, output);
    }

    /// <summary>
    /// Input checks shared with the reference layer: the last dimension is the features; with a folded
    /// BatchNorm1d (<paramref name="batchNormFeatures"/>) only the shapes where the fold is equivalent.
    /// </summary>
    internal static void ValidateInputShape(string name, int inFeatures, int? batchNormFeatures, int[] shape)
    {
        if (shape.Length < 1 || shape[^1] != inFeatures)
        {
            throw new ArgumentException($"{name}: expected input [N, {inFeatures}] (last dimension {inFeatures}), got {TorchText.Shape(shape)}.", "input");
        }

        if (batchNormFeatures is int features && shape.Length != 2 && !(features == 1 && shape.Length == 3 && shape[1] == 1))
        {
            string alternative = features == 1 ? $" or [N, 1, {inFeatures}]" : string.Empty;
            throw new ArgumentException(
                $"{name}: expected input [N, {inFeatures}] (rank 2){alternative}, got {TorchText.Shape(shape)}: a linear with a folded BatchNorm1d only equals linear→BatchNorm1d " +
                "where BatchNorm1d's channel dimension (dimension 1) holds the linear's features, or has size 1 for a one-feature BatchNorm1d.", "input");
        }
    }

    /// <summary>
    /// PyTorch's dynamic convert: the weight quantized with a fresh <paramref name="weightSpec"/> observer, the bias kept
    /// in float, the input quantized on every call (docs/numerics.md §8).
    /// </summary>
    /// <param name="weightSpec">The dynamic qconfig's weight observer.</param>
    /// <param name="backend">The arithmetic preset.</param>
    /// <exception cref="NotSupportedException">A linear with a folded BatchNorm1d (its input shapes differ from a plain linear's).</exception>
    public DynamicQuantizedLinear ConvertDynamic(ObserverSpec weightSpec, QuantBackend backend)
    {
        ArgumentNullException.ThrowIfNull(weightSpec);
        if (BatchNormFeatures is not null)
        {
            throw new NotSupportedException($"{Model}.{Layer}: a Linear with a folded BatchNorm1d cannot be quantized dynamically.");
        }

        QTensor weight = QuantizeLinearWeight($"{Model}.{Layer}", weightSpec);
        return new DynamicQuantizedLinear(Model, Layer, InFeatures, OutFeatures, weight, _bias, Relu, backend);
    }

    /// <summary>Releases the parameter tensors.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _weightTensor.Dispose();
            _biasTensor?.Dispose();
        }
    }

    /// <summary>PyTorch-like repr: <c>LinearReLU(in_features=4, out_features=2, bias=True)</c>.</summary>
    public override string ToString() =>
        $"{(Relu ? "LinearReLU" : "Linear")}(in_features={InFeatures}, out_features={OutFeatures}, bias={(_bias is null ? "False" : "True")})";

    private QTensor QuantizeLinearWeight(string name, ObserverSpec weightSpec) =>
        FusedConv2d.QuantizeWeight(name, weightSpec, _weight, [OutFeatures, InFeatures], 0, "Linear", "[out_features, in_features]");

    private static (float[] Weight, float[] Bias) FoldBatchNorm(string name, int inFeatures, int outFeatures, float[] weight, float[]? bias, BatchNorm1d batchNorm)
    {
        BatchNormStatistics bn = BatchNormStatistics.Read(name, batchNorm, "BatchNorm1d", outFeatures, "the linear's out_features", "folded into the linear", allowSingleFeature: true);
        var foldedWeight = new float[weight.Length];
        var foldedBias = new float[outFeatures];
        for (int o = 0; o < outFeatures; o++)
        {
            // A one-feature BatchNorm1d broadcasts its single channel over every output (PyTorch allows it).
            int c = bn.Channels == 1 ? 0 : o;

            // s = gamma * rsqrt(var + eps); w' = w * s
            float factor = bn.Gamma(c) * bn.InverseSigma(c);
            for (int i = o * inFeatures; i < (o + 1) * inFeatures; i++)
            {
                foldedWeight[i] = weight[i] * factor;
            }

            // b' = (b - mean) * s + beta: PyTorch's fuse_linear_bn_weights, the add as its own statement (no FMA).
            float scaled = ((bias is null ? 0f : bias[o]) - bn.Mean[c]) * factor;
            foldedBias[o] = scaled + bn.Beta(c);
            bn.ThrowIfNotFinite(name, "BatchNorm1d", c, factor, foldedBias[o]);
        }

        return (foldedWeight, foldedBias);
    }
}
