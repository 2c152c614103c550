using System;
using System.Globalization;
using System.Text;

namespace QuantGen.Observers;

/// <summary>
/// A recipe for an observer: PyTorch's <c>HistogramObserver.with_args(reduce_range=True)</c>. A QConfig
/// holds two of these; <c>Prepare()</c> calls <see cref="Create"/> once per quantization point.
/// </summary>
/// <remarks>
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

    /// <summary>Whether the spec is consistent (per-channel scheme only with the per-channel observer, ...).</summary>
    public void Validate()
    {
        bool perChannelKind = Kind == ObserverKind.PerChannelMinMax;
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

        if (Kind == ObserverKind.MovingAverageMinMax && !(AveragingConstant > 0f && AveragingConstant <= 1f))
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
        return Kind switch
        {
            ObserverKind.MinMax => new MinMaxObserver(this, layer),
            ObserverKind.MovingAverageMinMax => new MovingAverageMinMaxObserver(this, layer),
            ObserverKind.PerChannelMinMax => new PerChannelMinMaxObserver(this, layer),
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
        text.Append(Kind).Append("Observer(dtype=").Append(DType.ToTorchString())
            .Append(", qscheme=").Append(Scheme.ToTorchString())
            .Append(", reduce_range=").Append(ReduceRange ? "True" : "False");
        if (QuantMin is int qmin && QuantMax is int qmax)
        {
            text.Append(", quant_min=").Append(qmin).Append(", quant_max=").Append(qmax);
        }

        if (Kind == ObserverKind.PerChannelMinMax)
        {
            text.Append(", ch_axis=").Append(ChannelAxis);
        }

        if (Kind == ObserverKind.MovingAverageMinMax)
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
}
