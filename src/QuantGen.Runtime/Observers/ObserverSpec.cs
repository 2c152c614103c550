using System;
using System.Globalization;
using System.Text;

namespace QuantGen.Observers;

/// <summary>
/// A recipe for an observer: PyTorch's <c>HistogramObserver.with_args(reduce_range=True)</c>. A QConfig
/// holds two of these; <c>Prepare()</c> calls <see cref="Create"/> once per quantization point.
/// </summary>
/// <remarks>
/// Besides the built-in kinds, a spec can fix its qparams (<see cref="FixedQParams(float, int, QuantDType, QScheme)"/>,
/// <see cref="WithQParams(float, int)"/>, <see cref="WithRange(float, float)"/>: PyTorch's <c>FixedQParamsObserver</c>,
/// or qparams loaded from a quantized state_dict) or run an observer of your own (<see cref="Custom"/>).
/// Build one with the factory methods (<see cref="Histogram"/>, <see cref="MinMax"/>, <see cref="Percentile"/>, ...),
/// which take PyTorch's argument names, and put it in a <see cref="QConfig"/>.
/// </remarks>
/// <param name="Kind">The observer algorithm.</param>
/// <param name="DType">The quantized type: quint8 (activations) or qint8 (weights).</param>
/// <param name="Scheme">Per tensor or per channel, affine or symmetric.</param>
/// <param name="ReduceRange">Use 7 bits instead of 8 (the x86/fbgemm preset's activations), so int16 sums in the kernels cannot saturate.</param>
/// <param name="QuantMin">The smallest quantized value, instead of the dtype's (with <paramref name="QuantMax"/>).</param>
/// <param name="QuantMax">The largest quantized value, instead of the dtype's (with <paramref name="QuantMin"/>).</param>
/// <param name="ChannelAxis">The axis of per-channel weights: 0 for Conv2d and Linear, 1 for ConvTranspose2d.</param>
/// <param name="AveragingConstant">The weight of each new batch in a moving-average observer, in (0, 1].</param>
/// <param name="Bins">Histogram bins of the histogram-based observers.</param>
public sealed record ObserverSpec(
    ObserverKind Kind,
    QuantDType DType = QuantDType.QUInt8,
    QScheme Scheme = QScheme.PerTensorAffine,
    bool ReduceRange = false,
    int? QuantMin = null,
    int? QuantMax = null,
    int ChannelAxis = 0,
    float AveragingConstant = 0.01f,
    int Bins = 2048)
{
    /// <summary><c>MinMaxObserver.with_args(...)</c>.</summary>
    /// <param name="dtype">quint8 (activations) or qint8 (weights).</param>
    /// <param name="scheme">Per tensor or per channel, affine or symmetric.</param>
    /// <param name="reduceRange">Use 7 bits instead of 8.</param>
    /// <param name="quantMin">The smallest quantized value; null for the dtype's.</param>
    /// <param name="quantMax">The largest quantized value; null for the dtype's.</param>
    /// <returns>The recipe.</returns>
    public static ObserverSpec MinMax(QuantDType dtype = QuantDType.QUInt8, QScheme scheme = QScheme.PerTensorAffine, bool reduceRange = false, int? quantMin = null, int? quantMax = null) =>
        new(ObserverKind.MinMax, dtype, scheme, reduceRange, quantMin, quantMax);

    /// <summary><c>MovingAverageMinMaxObserver.with_args(...)</c>.</summary>
    /// <param name="averagingConstant">The weight of each new batch, in (0, 1].</param>
    /// <param name="dtype">quint8 (activations) or qint8 (weights).</param>
    /// <param name="scheme">Per tensor or per channel, affine or symmetric.</param>
    /// <param name="reduceRange">Use 7 bits instead of 8.</param>
    /// <param name="quantMin">The smallest quantized value; null for the dtype's.</param>
    /// <param name="quantMax">The largest quantized value; null for the dtype's.</param>
    /// <returns>The recipe.</returns>
    public static ObserverSpec MovingAverageMinMax(float averagingConstant = 0.01f, QuantDType dtype = QuantDType.QUInt8, QScheme scheme = QScheme.PerTensorAffine, bool reduceRange = false, int? quantMin = null, int? quantMax = null) =>
        new(ObserverKind.MovingAverageMinMax, dtype, scheme, reduceRange, quantMin, quantMax, AveragingConstant: averagingConstant);

    /// <summary><c>PerChannelMinMaxObserver.with_args(...)</c>.</summary>
    /// <param name="dtype">quint8 (activations) or qint8 (weights).</param>
    /// <param name="scheme">Per tensor or per channel, affine or symmetric.</param>
    /// <param name="reduceRange">Use 7 bits instead of 8.</param>
    /// <param name="quantMin">The smallest quantized value; null for the dtype's.</param>
    /// <param name="quantMax">The largest quantized value; null for the dtype's.</param>
    /// <param name="channelAxis">The weight axis with one scale per index: 0 for Conv2d and Linear, 1 for ConvTranspose2d.</param>
    /// <returns>The recipe.</returns>
    public static ObserverSpec PerChannelMinMax(QuantDType dtype = QuantDType.QInt8, QScheme scheme = QScheme.PerChannelSymmetric, int channelAxis = 0, bool reduceRange = false, int? quantMin = null, int? quantMax = null) =>
        new(ObserverKind.PerChannelMinMax, dtype, scheme, reduceRange, quantMin, quantMax, channelAxis);

    /// <summary><c>MovingAveragePerChannelMinMaxObserver.with_args(...)</c>: quantization-aware training's per-channel weight observer.</summary>
    /// <param name="averagingConstant">The weight of each new batch, in (0, 1].</param>
    /// <param name="dtype">quint8 or qint8 (weights).</param>
    /// <param name="scheme">A per-channel scheme, affine or symmetric.</param>
    /// <param name="channelAxis">The weight axis with one scale per index: 0 for Conv2d and Linear, 1 for ConvTranspose2d.</param>
    /// <param name="reduceRange">Use 7 bits instead of 8.</param>
    /// <param name="quantMin">The smallest quantized value; null for the dtype's.</param>
    /// <param name="quantMax">The largest quantized value; null for the dtype's.</param>
    /// <returns>The recipe.</returns>
    public static ObserverSpec MovingAveragePerChannelMinMax(float averagingConstant = 0.01f, QuantDType dtype = QuantDType.QInt8, QScheme scheme = QScheme.PerChannelSymmetric, int channelAxis = 0, bool reduceRange = false, int? quantMin = null, int? quantMax = null) =>
        new(ObserverKind.MovingAveragePerChannelMinMax, dtype, scheme, reduceRange, quantMin, quantMax, channelAxis, averagingConstant);

    /// <summary><c>HistogramObserver.with_args(...)</c>.</summary>
    /// <param name="dtype">quint8 (activations) or qint8 (weights).</param>
    /// <param name="scheme">Per tensor or per channel, affine or symmetric.</param>
    /// <param name="reduceRange">Use 7 bits instead of 8.</param>
    /// <param name="quantMin">The smallest quantized value; null for the dtype's.</param>
    /// <param name="quantMax">The largest quantized value; null for the dtype's.</param>
    /// <param name="bins">Histogram bins.</param>
    /// <returns>The recipe.</returns>
    public static ObserverSpec Histogram(QuantDType dtype = QuantDType.QUInt8, QScheme scheme = QScheme.PerTensorAffine, bool reduceRange = false, int? quantMin = null, int? quantMax = null, int bins = 2048) =>
        new(ObserverKind.Histogram, dtype, scheme, reduceRange, quantMin, quantMax, Bins: bins);

    /// <summary>
    /// Percentile of <see cref="ObserverKind.Percentile"/> observers, in (0, 100]: at most (100 − p)% of the values
    /// may be clipped (per tail for mixed-sign affine data). Ignored by the other kinds.
    /// </summary>
    public double ClipPercentile { get; init; } = 99.99;

    /// <summary>
    /// A <see cref="PercentileObserver"/>: clips at the <paramref name="percentile"/>-th percentile of |x| (symmetric
    /// schemes, one-sided data) or of each tail (mixed-sign affine data), on a <paramref name="bins"/>-bin histogram.
    /// </summary>
    /// <param name="percentile">The percentile to clip at, in (0, 100].</param>
    /// <param name="dtype">quint8 (activations) or qint8 (weights).</param>
    /// <param name="scheme">Per tensor or per channel, affine or symmetric.</param>
    /// <param name="reduceRange">Use 7 bits instead of 8.</param>
    /// <param name="quantMin">The smallest quantized value; null for the dtype's.</param>
    /// <param name="quantMax">The largest quantized value; null for the dtype's.</param>
    /// <param name="bins">Histogram bins.</param>
    /// <returns>The recipe.</returns>
    public static ObserverSpec Percentile(double percentile = 99.99, QuantDType dtype = QuantDType.QUInt8, QScheme scheme = QScheme.PerTensorAffine, bool reduceRange = false, int? quantMin = null, int? quantMax = null, int bins = 2048) =>
        new(ObserverKind.Percentile, dtype, scheme, reduceRange, quantMin, quantMax, Bins: bins) { ClipPercentile = percentile };

    /// <summary>An <see cref="EntropyObserver"/>: TensorRT's KL-divergence threshold search on a <paramref name="bins"/>-bin histogram.</summary>
    /// <param name="dtype">quint8 (activations) or qint8 (weights).</param>
    /// <param name="scheme">Per tensor or per channel, affine or symmetric.</param>
    /// <param name="reduceRange">Use 7 bits instead of 8.</param>
    /// <param name="quantMin">The smallest quantized value; null for the dtype's.</param>
    /// <param name="quantMax">The largest quantized value; null for the dtype's.</param>
    /// <param name="bins">Histogram bins.</param>
    /// <returns>The recipe.</returns>
    public static ObserverSpec Entropy(QuantDType dtype = QuantDType.QUInt8, QScheme scheme = QScheme.PerTensorAffine, bool reduceRange = false, int? quantMin = null, int? quantMax = null, int bins = 2048) =>
        new(ObserverKind.Entropy, dtype, scheme, reduceRange, quantMin, quantMax, Bins: bins);

    /// <summary>An <see cref="MseObserver"/>: the clipping range minimising the expected quantization MSE on a <paramref name="bins"/>-bin histogram.</summary>
    /// <param name="dtype">quint8 (activations) or qint8 (weights).</param>
    /// <param name="scheme">Per tensor or per channel, affine or symmetric.</param>
    /// <param name="reduceRange">Use 7 bits instead of 8.</param>
    /// <param name="quantMin">The smallest quantized value; null for the dtype's.</param>
    /// <param name="quantMax">The largest quantized value; null for the dtype's.</param>
    /// <param name="bins">Histogram bins.</param>
    /// <returns>The recipe.</returns>
    public static ObserverSpec Mse(QuantDType dtype = QuantDType.QUInt8, QScheme scheme = QScheme.PerTensorAffine, bool reduceRange = false, int? quantMin = null, int? quantMax = null, int bins = 2048) =>
        new(ObserverKind.Mse, dtype, scheme, reduceRange, quantMin, quantMax, Bins: bins);

    /// <summary>
    /// Qparams decided elsewhere: an observer made from this spec is a <see cref="FixedQParamsObserver"/> that returns
    /// them (a range is turned into scale and zero point with this spec's dtype, scheme and quant range) whatever
    /// calibration shows it. Null for an observer that calibrates. Set by <see cref="FixedQParams(float, int, QuantDType, QScheme)"/>,
    /// <see cref="WithQParams(float, int)"/>, <see cref="WithRange(float, float)"/> and their per-channel forms, which
    /// also make <see cref="Kind"/> and <see cref="Scheme"/> fit (MinMax per tensor, PerChannelMinMax per channel).
    /// </summary>
    public FixedObserverValues? Fixed { get; init; }

    /// <summary>Makes your own observer for a quantization point (its argument is the layer, "Model.member"); null for the built-in kinds. Set by <see cref="Custom"/>.</summary>
    public Func<string, IObserver>? CustomFactory { get; init; }

    /// <summary>The name a <see cref="Custom"/> spec prints as (e.g. "MyObserver").</summary>
    public string CustomName { get; init; } = "CustomObserver";

    /// <summary>
    /// PyTorch's <c>FixedQParamsObserver.with_args(scale=..., zero_point=...)</c>: every observer made from this spec
    /// returns <paramref name="scale"/> and <paramref name="zeroPoint"/>, whatever calibration shows it. For an
    /// activation (a layer's output, the model input) or a per-tensor weight.
    /// </summary>
    /// <exception cref="ArgumentException">A scale that is not positive and finite, a zero point outside <paramref name="dtype"/>'s range, or a per-channel scheme.</exception>
    public static ObserverSpec FixedQParams(float scale, int zeroPoint, QuantDType dtype = QuantDType.QUInt8, QScheme scheme = QScheme.PerTensorAffine)
    {
        var spec = new ObserverSpec(ObserverKind.MinMax, dtype, scheme) { Fixed = FixedObserverValues.FromQParams(scale, zeroPoint) };
        spec.Validate();
        return spec;
    }

    /// <summary>
    /// Fixed per-channel qparams for weights (a quantized weight's <c>q_per_channel_scales()</c> and
    /// <c>q_per_channel_zero_points()</c>): one scale and zero point per output channel along <paramref name="channelAxis"/>
    /// (0 for Conv2d and Linear, 1 for ConvTranspose2d). The count is checked against the layer at <c>Prepare()</c>.
    /// </summary>
    /// <exception cref="ArgumentException">Arrays of different or zero length, a scale that is not positive and finite, a zero point outside <paramref name="dtype"/>'s range, a negative axis, or a per-tensor scheme.</exception>
    public static ObserverSpec FixedQParams(float[] scales, int[] zeroPoints, int channelAxis = 0, QuantDType dtype = QuantDType.QInt8, QScheme scheme = QScheme.PerChannelSymmetric)
    {
        var spec = new ObserverSpec(ObserverKind.PerChannelMinMax, dtype, scheme, ChannelAxis: channelAxis) { Fixed = FixedObserverValues.FromQParams(scales, zeroPoints) };
        spec.Validate();
        return spec;
    }

    /// <summary>
    /// An observer of your own: <paramref name="factory"/> makes one <see cref="IObserver"/> per quantization point (it
    /// gets the layer, "Model.member"), QuantGen runs it behind a <see cref="CustomObserver"/> and checks the qparams it
    /// returns against <paramref name="dtype"/> and <paramref name="scheme"/>. Use it as a <see cref="QConfig"/>'s
    /// activation or weight spec.
    /// </summary>
    /// <param name="factory">Makes a new observer for the layer it is given.</param>
    /// <param name="name">How the spec prints (in the prepared model's printout and in messages).</param>
    /// <param name="dtype">The dtype of the qparams the observer returns (quint8 or qint8 for activations, qint8 for weights).</param>
    /// <param name="scheme">Per tensor for activations; per channel (along <paramref name="channelAxis"/>) or per tensor for weights.</param>
    /// <param name="channelAxis">The output-channel axis of per-channel weights (0 for Conv2d and Linear, 1 for ConvTranspose2d).</param>
    public static ObserverSpec Custom(Func<string, IObserver> factory, string name = "CustomObserver", QuantDType dtype = QuantDType.QUInt8, QScheme scheme = QScheme.PerTensorAffine, int channelAxis = 0)
    {
        ArgumentNullException.ThrowIfNull(factory);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return new ObserverSpec(scheme.IsPerChannel() ? ObserverKind.PerChannelMinMax : ObserverKind.MinMax, dtype, scheme, ChannelAxis: channelAxis)
        {
            CustomFactory = factory,
            CustomName = name,
        };
    }

    /// <summary>
    /// This spec with its qparams fixed to <paramref name="scale"/> and <paramref name="zeroPoint"/> (its dtype kept; a
    /// per-channel scheme becomes its per-tensor form).
    /// </summary>
    /// <exception cref="ArgumentException">A scale that is not positive and finite, or a zero point outside the dtype's range.</exception>
    public ObserverSpec WithQParams(float scale, int zeroPoint) =>
        PerTensorFixed(FixedObserverValues.FromQParams(scale, zeroPoint));

    /// <summary>
    /// This spec with one scale and zero point per channel fixed, along <paramref name="channelAxis"/> (null: this spec's
    /// ch_axis if it is per channel, else 0); its dtype kept, a per-tensor scheme becomes its per-channel form.
    /// </summary>
    /// <exception cref="ArgumentException">Arrays of different or zero length, a scale that is not positive and finite, or a zero point outside the dtype's range.</exception>
    public ObserverSpec WithQParams(float[] scales, int[] zeroPoints, int? channelAxis = null) =>
        PerChannelFixed(FixedObserverValues.FromQParams(scales, zeroPoints), channelAxis);

    /// <summary>
    /// This spec with its observed range fixed to [<paramref name="min"/>, <paramref name="max"/>] (a loaded
    /// <c>min_val</c>/<c>max_val</c>): the qparams are computed from it with this spec's dtype, scheme and quant range.
    /// </summary>
    /// <exception cref="ArgumentException">A bound that is not finite, or min &gt; max.</exception>
    public ObserverSpec WithRange(float min, float max) =>
        PerTensorFixed(FixedObserverValues.FromRange(min, max));

    /// <summary>This spec with a range fixed per channel along <paramref name="channelAxis"/> (null: this spec's ch_axis if it is per channel, else 0).</summary>
    /// <exception cref="ArgumentException">Arrays of different or zero length, a bound that is not finite, or min &gt; max.</exception>
    public ObserverSpec WithRange(float[] min, float[] max, int? channelAxis = null) =>
        PerChannelFixed(FixedObserverValues.FromRange(min, max), channelAxis);

    /// <summary>Whether the spec is consistent (per-channel scheme only with the per-channel observer, ...).</summary>
    public void Validate()
    {
        if (Fixed is not null && CustomFactory is not null)
        {
            throw new ArgumentException($"{this}: a spec either fixes its qparams or runs a custom observer, not both.");
        }

        if (Fixed is not null)
        {
            ValidateFixed(Fixed);
        }

        bool perChannelKind = Kind is ObserverKind.PerChannelMinMax or ObserverKind.MovingAveragePerChannelMinMax;
        if (perChannelKind != Scheme.IsPerChannel())
        {
            throw new ArgumentException($"{this}: {Kind} observers need a {(perChannelKind ? "per-channel" : "per-tensor")} qscheme, got {Scheme.ToTorchString()}.");
        }

        if (Kind == ObserverKind.Histogram && Bins < 1)
        {
            throw new ArgumentException($"{this}: bins must be positive.");
        }

        if ((Kind is ObserverKind.Percentile or ObserverKind.Entropy or ObserverKind.Mse) && Bins < 2)
        {
            throw new ArgumentException($"{this}: bins must be at least 2.");
        }

        if (Kind == ObserverKind.Percentile && !(ClipPercentile > 0.0 && ClipPercentile <= 100.0))
        {
            throw new ArgumentException($"{this}: the percentile must be in (0, 100], got {ClipPercentile.ToString("R", CultureInfo.InvariantCulture)}.");
        }

        if ((Kind is ObserverKind.MovingAverageMinMax or ObserverKind.MovingAveragePerChannelMinMax) && !(AveragingConstant > 0f && AveragingConstant <= 1f))
        {
            throw new ArgumentException($"{this}: averaging_constant must be in (0, 1].");
        }

        QParamsMath.QuantRange(DType, ReduceRange, QuantMin, QuantMax);
    }

    /// <summary>Creates a fresh observer for the quantization point named <paramref name="layer"/> (e.g. "M.conv1").</summary>
    /// <param name="layer">The quantization point's name, used in messages.</param>
    /// <returns>A new observer that has seen nothing yet.</returns>
    /// <exception cref="System.ArgumentException">The recipe is inconsistent (see <see cref="Validate"/>).</exception>
    public Observer Create(string layer)
    {
        Validate();
        if (CustomFactory is not null)
        {
            return new CustomObserver(this, layer);
        }

        if (Fixed is not null)
        {
            return new FixedQParamsObserver(this, layer);
        }

        return Kind switch
        {
            ObserverKind.MinMax => new MinMaxObserver(this, layer),
            ObserverKind.MovingAverageMinMax => new MovingAverageMinMaxObserver(this, layer),
            ObserverKind.PerChannelMinMax => new PerChannelMinMaxObserver(this, layer),
            ObserverKind.MovingAveragePerChannelMinMax => new MovingAveragePerChannelMinMaxObserver(this, layer),
            ObserverKind.Histogram => new HistogramObserver(this, layer),
            ObserverKind.Percentile => new PercentileObserver(this, layer),
            ObserverKind.Entropy => new EntropyObserver(this, layer),
            ObserverKind.Mse => new MseObserver(this, layer),
            _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "Unknown observer kind."),
        };
    }

    /// <summary>PyTorch-like text: <c>HistogramObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=True)</c>.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        if (Fixed is not null || CustomFactory is not null)
        {
            // Only what shapes the qparams: the kind a fixed or custom spec carries is bookkeeping.
            if (Fixed is not null)
            {
                text.Append("FixedQParamsObserver(").Append(Fixed).Append(", dtype=");
            }
            else
            {
                text.Append(CustomName).Append("(dtype=");
            }

            text.Append(DType.ToTorchString()).Append(", qscheme=").Append(Scheme.ToTorchString());
            if (Fixed is { IsRange: true } || CustomFactory is not null)
            {
                text.Append(", reduce_range=").Append(ReduceRange ? "True" : "False");
                if (QuantMin is int fixedMin && QuantMax is int fixedMax)
                {
                    text.Append(", quant_min=").Append(fixedMin).Append(", quant_max=").Append(fixedMax);
                }
            }

            if (Scheme.IsPerChannel())
            {
                text.Append(", ch_axis=").Append(ChannelAxis);
            }

            return text.Append(')').ToString();
        }

        text.Append(Kind).Append("Observer(dtype=").Append(DType.ToTorchString())
            .Append(", qscheme=").Append(Scheme.ToTorchString())
            .Append(", reduce_range=").Append(ReduceRange ? "True" : "False");
        if (QuantMin is int qmin && QuantMax is int qmax)
        {
            text.Append(", quant_min=").Append(qmin).Append(", quant_max=").Append(qmax);
        }

        if (Kind is ObserverKind.PerChannelMinMax or ObserverKind.MovingAveragePerChannelMinMax)
        {
            text.Append(", ch_axis=").Append(ChannelAxis);
        }

        if (Kind is ObserverKind.MovingAverageMinMax or ObserverKind.MovingAveragePerChannelMinMax)
        {
            text.Append(", averaging_constant=").Append(AveragingConstant.ToString("R", CultureInfo.InvariantCulture));
        }

        if (Kind == ObserverKind.Percentile)
        {
            text.Append(", percentile=").Append(ClipPercentile.ToString("R", CultureInfo.InvariantCulture));
        }

        if (Kind is ObserverKind.Histogram or ObserverKind.Percentile or ObserverKind.Entropy or ObserverKind.Mse)
        {
            text.Append(", bins=").Append(Bins);
        }

        return text.Append(')').ToString();
    }

    private ObserverSpec PerTensorFixed(FixedObserverValues values)
    {
        QScheme scheme = Scheme switch
        {
            QScheme.PerChannelSymmetric => QScheme.PerTensorSymmetric,
            QScheme.PerChannelAffine => QScheme.PerTensorAffine,
            _ => Scheme,
        };
        var spec = this with { Kind = ObserverKind.MinMax, Scheme = scheme, Fixed = values, CustomFactory = null };
        spec.ValidateFixed(values);
        return spec;
    }

    private ObserverSpec PerChannelFixed(FixedObserverValues values, int? channelAxis)
    {
        QScheme scheme = Scheme switch
        {
            QScheme.PerTensorSymmetric => QScheme.PerChannelSymmetric,
            QScheme.PerTensorAffine => QScheme.PerChannelAffine,
            _ => Scheme,
        };
        int axis = channelAxis ?? (Scheme.IsPerChannel() ? ChannelAxis : 0);
        var spec = this with { Kind = ObserverKind.PerChannelMinMax, Scheme = scheme, ChannelAxis = axis, Fixed = values, CustomFactory = null };
        spec.ValidateFixed(values);
        return spec;
    }

    /// <summary>The fixed values against this spec: per tensor or per channel as its scheme, zero points in its dtype's range.</summary>
    private void ValidateFixed(FixedObserverValues values)
    {
        if (values.IsPerChannel != Scheme.IsPerChannel())
        {
            throw new ArgumentException($"{this}: the fixed values are {(values.IsPerChannel ? "per channel" : "per tensor")} but the qscheme is {Scheme.ToTorchString()}.");
        }

        if (values.IsPerChannel && ChannelAxis < 0)
        {
            throw new ArgumentException($"{this}: fixed per-channel values need a non-negative ch_axis, got {ChannelAxis}.");
        }

        for (int c = 0; c < values.ZeroPoints.Count; c++)
        {
            int zeroPoint = values.ZeroPoints[c];
            if (zeroPoint < DType.Min() || zeroPoint > DType.Max())
            {
                string where = values.IsPerChannel ? $" (channel {c})" : string.Empty;
                throw new ArgumentException($"{this}: zero point {zeroPoint}{where} is outside {DType.ToTorchString()}'s range {DType.Min()}..{DType.Max()}.");
            }
        }
    }
}
