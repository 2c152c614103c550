using System;
using QuantGen.Observers;
using QuantGen.Qat;

namespace QuantGen;

/// <summary>
/// How to observe activations and weights, and which backend arithmetic the int8 model uses:
/// PyTorch's <c>QConfig(activation=..., weight=...)</c> plus the quantized engine.
/// </summary>
/// <remarks>
/// Start from a preset (<see cref="X86"/>, <see cref="Qnnpack"/>, <see cref="OneDnn"/>) and change what differs
/// with <c>with</c>; pass it to <c>Prepare(qconfig)</c> for the whole model, or to a <see cref="QConfigMapping"/>
/// for some modules. docs/calibration.md compares the observers.
/// </remarks>
/// <example>
/// <code>
/// QConfig percentile = QConfig.X86 with { Activation = ObserverSpec.Percentile(99.99, reduceRange: true) };
/// M.Observed observed = model.Prepare(percentile);
/// </code>
/// </example>
/// <param name="Activation">Observer recipe for every activation quantization point.</param>
/// <param name="Weight">Observer recipe for conv/linear weights.</param>
/// <param name="Backend">Integer arithmetic of the converted model (bias and requantization).</param>
public sealed record QConfig(ObserverSpec Activation, ObserverSpec Weight, QuantBackend Backend = QuantBackend.X86)
{
    /// <summary>
    /// <c>get_default_qconfig('x86')</c> (the same as 'fbgemm'): activations HistogramObserver quint8 with
    /// reduce_range, weights PerChannelMinMaxObserver symmetric qint8 on axis 0.
    /// </summary>
    public static QConfig X86 { get; } = new(
        ObserverSpec.Histogram(reduceRange: true),
        ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric),
        QuantBackend.X86);

    /// <summary><c>get_default_qconfig('fbgemm')</c>: identical to <see cref="X86"/>.</summary>
    public static QConfig Fbgemm => X86;

    /// <summary><c>get_default_qconfig('onednn')</c>: <see cref="X86"/> without reduce_range.</summary>
    public static QConfig OneDnn { get; } = X86 with { Activation = ObserverSpec.Histogram(reduceRange: false) };

    /// <summary>
    /// <c>get_default_qconfig('qnnpack')</c>: activations HistogramObserver quint8 (no reduce_range),
    /// weights per-tensor MinMaxObserver symmetric qint8; int32 bias.
    /// </summary>
    public static QConfig Qnnpack { get; } = new(
        ObserverSpec.Histogram(),
        ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric),
        QuantBackend.Qnnpack);

    /// <summary>
    /// <c>get_default_qat_qconfig('x86')</c> (the same as 'fbgemm') for quantization-aware training: activations
    /// FusedMovingAvgObsFakeQuantize over MovingAverageMinMaxObserver quint8 0..255 with reduce_range (so 0..127),
    /// weights FusedMovingAvgObsFakeQuantize over MovingAveragePerChannelMinMaxObserver symmetric qint8 −128..127 on
    /// axis 0; averaging constant 0.01 for both. docs/qat.md.
    /// </summary>
    public static QatQConfig QatX86 { get; } = new(
        FakeQuantSpec.FusedMovingAverage(ObserverSpec.MovingAverageMinMax(0.01f, QuantDType.QUInt8, QScheme.PerTensorAffine, reduceRange: true, quantMin: 0, quantMax: 255)),
        FakeQuantSpec.FusedMovingAverage(ObserverSpec.MovingAveragePerChannelMinMax(0.01f, QuantDType.QInt8, QScheme.PerChannelSymmetric, channelAxis: 0, quantMin: -128, quantMax: 127)),
        QuantBackend.X86);

    /// <summary><c>get_default_qat_qconfig('fbgemm')</c>: identical to <see cref="QatX86"/>.</summary>
    public static QatQConfig QatFbgemm => QatX86;

    /// <summary><c>get_default_qat_qconfig('onednn')</c>: <see cref="QatX86"/> without reduce_range on activations.</summary>
    public static QatQConfig QatOneDnn { get; } = QatX86 with
    {
        Activation = FakeQuantSpec.FusedMovingAverage(ObserverSpec.MovingAverageMinMax(0.01f, QuantDType.QUInt8, QScheme.PerTensorAffine, reduceRange: false, quantMin: 0, quantMax: 255)),
    };

    /// <summary>
    /// <c>get_default_qat_qconfig('qnnpack')</c>: activations as <see cref="QatOneDnn"/> (no reduce_range), weights
    /// FusedMovingAvgObsFakeQuantize over a per-tensor MovingAverageMinMaxObserver symmetric qint8 −128..127.
    /// </summary>
    public static QatQConfig QatQnnpack { get; } = new(
        QatOneDnn.Activation,
        FakeQuantSpec.FusedMovingAverage(ObserverSpec.MovingAverageMinMax(0.01f, QuantDType.QInt8, QScheme.PerTensorSymmetric, quantMin: -128, quantMax: 127)),
        QuantBackend.Qnnpack);

    /// <summary>The default quantization-aware training qconfig of a backend.</summary>
    /// <param name="backend">The backend.</param>
    /// <returns><see cref="QatX86"/> or <see cref="QatQnnpack"/>.</returns>
    public static QatQConfig QatFor(QuantBackend backend) => backend switch
    {
        QuantBackend.X86 => QatX86,
        QuantBackend.Qnnpack => QatQnnpack,
        _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, "Unknown backend."),
    };

    /// <summary>
    /// PyTorch's <c>default_dynamic_qconfig</c> (or, with <paramref name="perChannel"/>, <c>per_channel_dynamic_qconfig</c>):
    /// a Linear given this qconfig becomes <see cref="QuantGen.Dynamic.DynamicQuantizedLinear"/> — int8 weights
    /// (symmetric, per tensor or per output feature), its float input quantized on every call from that input's
    /// own range (docs/numerics.md §8), float output. Other ops given it stay in float, as with
    /// <c>quantize_dynamic</c>. Supported in models bound at Prepare.
    /// </summary>
    /// <param name="backend">The arithmetic preset (X86: 7-bit input range; Qnnpack: 8-bit).</param>
    /// <param name="perChannel">One weight scale per output feature.</param>
    /// <returns>A qconfig with <see cref="IsDynamic"/> set; its <see cref="Activation"/> observes only the op's
    /// output for the ops after it, as a float op's output is observed.</returns>
    public static QConfig Dynamic(QuantBackend backend = QuantBackend.X86, bool perChannel = false) => new(
        ObserverSpec.Histogram(reduceRange: backend == QuantBackend.X86),
        perChannel ? ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric) : ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric),
        backend)
    {
        IsDynamic = true,
    };

    /// <summary>
    /// True when a Linear with this qconfig is quantized dynamically (<see cref="Dynamic"/>) rather than statically.
    /// </summary>
    public bool IsDynamic { get; init; }

    /// <summary>
    /// PyTorch's <c>float_qparams_weight_only_qconfig</c>: an Embedding given it becomes
    /// <see cref="QuantGen.Dynamic.QuantizedEmbedding"/> — each row of its table 8-bit with a float scale and zero point of its
    /// own (<c>per_channel_affine_float_qparams</c>, docs/numerics.md §9), float output; no activation is quantized. Other ops
    /// given it stay in float. Supported in models bound at Prepare (set it for the type "Embedding" or a layer's name).
    /// </summary>
    public static QConfig FloatQParamsWeightOnly { get; } = new(
        ObserverSpec.Histogram(),
        ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric))
    {
        IsWeightOnly = true,
    };

    /// <summary>
    /// PyTorch's <c>float_qparams_weight_only_qconfig_4bit</c>: as <see cref="FloatQParamsWeightOnly"/>, with each row of the
    /// table 4-bit (quint4x2: two values per byte, a float16 scale and bias per row, fbgemm's n-bit rowwise packing,
    /// docs/numerics.md §9) — an eighth of the float table plus 4 bytes a row. The embedding dimension must be even.
    /// PyTorch takes it for EmbeddingBag only; QuantGen gives it to Embedding too (the same lookup as a one-row bag).
    /// </summary>
    public static QConfig FloatQParamsWeightOnly4Bit { get; } = new(
        ObserverSpec.Histogram(),
        ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric))
    {
        IsWeightOnly = true,
        WeightOnlyBitWidth = 4,
    };

    /// <summary>True for <see cref="FloatQParamsWeightOnly"/> and <see cref="FloatQParamsWeightOnly4Bit"/>: weights only, activations stay float.</summary>
    public bool IsWeightOnly { get; init; }

    /// <summary>Bits per value of a weight-only table's rows: 8 (<see cref="FloatQParamsWeightOnly"/>) or 4 (<see cref="FloatQParamsWeightOnly4Bit"/>).</summary>
    public int WeightOnlyBitWidth { get; init; } = 8;

    /// <summary>
    /// PyTorch's <c>float16_dynamic_qconfig</c> (<c>quantize_dynamic(model, {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.float16)</c>):
    /// a Linear (with a ReLU fused after it), an LSTM or a GRU given it becomes <see cref="QuantGen.Dynamic.Float16Linear"/>,
    /// <see cref="QuantGen.Dynamic.Float16LSTM"/> or <see cref="QuantGen.Dynamic.Float16GRU"/> — weights stored as float16
    /// (rounded to nearest even, saturated to ±65504), float32 arithmetic, activations not quantized (docs/numerics.md §11).
    /// Other ops given it stay in float. It has no integer arithmetic, so any model backend takes it. Supported in models
    /// bound at Prepare (by type, "Linear", "LSTM", "GRU", or by a layer's name); QAT refuses it as it refuses
    /// <see cref="Dynamic"/>.
    /// </summary>
    /// <remarks>
    /// <see cref="IsDynamic"/> is set too (PyTorch's is a dynamic qconfig: its activation observer has <c>is_dynamic=True</c>),
    /// so a model that cannot run dynamic layers refuses it instead of quantizing the layer statically. Its
    /// <see cref="Activation"/> only observes the op's float output for the ops after it, as a float op's output is observed;
    /// its <see cref="Weight"/> recipe is not used (PyTorch's is a float16 <c>PlaceholderObserver</c>).
    /// </remarks>
    public static QConfig Float16Dynamic { get; } = new(
        ObserverSpec.Histogram(),
        ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric))
    {
        IsDynamic = true,
        IsFloat16 = true,
    };

    /// <summary>True for <see cref="Float16Dynamic"/>: float16 weights, float32 arithmetic, activations not quantized.</summary>
    public bool IsFloat16 { get; init; }

    /// <summary>The default qconfig of a backend.</summary>
    /// <param name="backend">The backend.</param>
    /// <returns><see cref="X86"/> or <see cref="Qnnpack"/>.</returns>
    public static QConfig For(QuantBackend backend) => backend switch
    {
        QuantBackend.X86 => X86,
        QuantBackend.Qnnpack => Qnnpack,
        _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, "Unknown backend."),
    };

    /// <summary>
    /// Checks both observer recipes and the combinations the int8 kernels support, with the reason for each
    /// refusal:
    /// <list type="bullet">
    /// <item><description>activations: quint8 or qint8 (affine or symmetric), per tensor only;</description></item>
    /// <item><description>weights: qint8, per tensor or per channel (affine or symmetric); per-channel weights along
    /// axis 0 (Conv2d, Linear) or 1 (ConvTranspose2d) — which of the two a layer needs is checked by the layer
    /// (<c>FusedConv2d</c>, <c>FusedLinear</c>, <c>FusedConvTranspose2d</c>), since only it knows its kind.</description></item>
    /// </list>
    /// </summary>
    /// <exception cref="ArgumentException">An inconsistent observer recipe or an unsupported combination.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Activation, nameof(Activation));
        ArgumentNullException.ThrowIfNull(Weight, nameof(Weight));
        Activation.Validate();
        Weight.Validate();
        if (Activation.Scheme.IsPerChannel())
        {
            throw new ArgumentException(
                $"QConfig: activations must be observed per tensor, got {Activation}. Every int8 op requantizes its whole output with one scale and zero point " +
                "(PyTorch's static quantization has no per-channel activations either); per-channel schemes are for weights.");
        }

        if (Activation.DType is not (QuantDType.QUInt8 or QuantDType.QInt8))
        {
            throw new ArgumentException($"QConfig: activations must be {QuantDType.QUInt8.ToTorchString()} or {QuantDType.QInt8.ToTorchString()}, got {Activation}.");
        }

        if (Weight.DType != QuantDType.QInt8)
        {
            throw new ArgumentException($"QConfig: weights must be {QuantDType.QInt8.ToTorchString()}, got {Weight}. The int8 kernels multiply activations by signed 8-bit weights (as PyTorch's fbgemm, onednn and qnnpack engines do).");
        }

        if (Weight.Scheme.IsPerChannel() && Weight.ChannelAxis is not (0 or 1))
        {
            throw new ArgumentException(
                $"QConfig: per-channel weights must be along the output-channel axis, ch_axis=0 (Conv2d [out, in/groups, kH, kW], Linear [out, in]) " +
                $"or ch_axis=1 (ConvTranspose2d [in, out/groups, kH, kW]), got ch_axis={Weight.ChannelAxis} ({Weight}). " +
                "The int8 kernels requantize each output channel with its own weight scale, so any other axis cannot be executed.");
        }

        // MinMax/PerChannel observers refuse this at creation (as PyTorch does); say so before calibration starts.
        foreach ((string role, ObserverSpec spec) in new[] { ("activation", Activation), ("weight", Weight) })
        {
            bool builtIn = spec.Fixed is null && spec.CustomFactory is null;
            if (builtIn && spec.Scheme.IsSymmetric() && spec.ReduceRange && spec.DType == QuantDType.QUInt8 && spec.Kind is ObserverKind.MinMax or ObserverKind.MovingAverageMinMax or ObserverKind.PerChannelMinMax)
            {
                throw new ArgumentException($"QConfig: the {role} observer {spec} cannot reduce the range for symmetric quantization with quint8 (PyTorch refuses it too); use qint8 or drop reduce_range.");
            }
        }
    }

    /// <inheritdoc/>
    public override string ToString() => IsWeightOnly
        ? "QConfig(float_qparams_weight_only: 8-bit rows, float scale and zero point per row)"
        : IsFloat16
            ? "QConfig(float16_dynamic: float16 weights, float32 arithmetic)"
        : IsDynamic
            ? $"QConfig(dynamic, weight={Weight}, backend={Backend})"
            : $"QConfig(activation={Activation}, weight={Weight}, backend={Backend})";
}
