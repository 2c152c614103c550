using System;

namespace QuantGen.Observers;

/// <summary>
/// Base of the calibration observers that go beyond PyTorch's (<see cref="PercentileObserver"/>,
/// <see cref="EntropyObserver"/>, <see cref="MseObserver"/>): it keeps an exact-count histogram of everything
/// observed and lets the subclass search it for a clipping range [min, max]; the qparams are then
/// <see cref="QParamsMath.FromMinMax"/> of that range, so the numerics stay PyTorch's. Per-tensor schemes only.
/// </summary>
/// <remarks>
/// <para>
/// The histogram is split by sign around zero, with one bin width for both halves: <see cref="PositiveCounts"/>[k]
/// counts values in [k·w, (k+1)·w) with x &gt; 0, <see cref="NegativeCounts"/>[k] values with −x in that interval,
/// and exact zeros are counted apart (<see cref="ZeroCount"/>) — after a ReLU they are often half the data, and zero
/// is always exactly representable, so they carry no quantization error. A value's bin is
/// <c>floor((double)|x| * (1.0 / w))</c>.
/// </para>
/// <para>
/// The first batch with a non-zero value sets <c>w = max|x| / (Bins − 1)</c> (double), so it fills
/// <see cref="ObserverSpec.Bins"/> bins. Later, larger values add bins of the same width (as TensorRT's calibration
/// histogram grows), up to <see cref="Capacity"/> = <see cref="GrowthFactor"/> × Bins: a few far outliers then do not
/// squeeze the bulk of the data into a handful of bins. Beyond that the width doubles and neighbouring bins are added
/// pairwise (bin k of the new histogram = bins 2k and 2k+1 of the old) until the value fits. Because the edges sit at
/// multiples of w from zero, doubling is exact: the histogram always equals the one the final width would have given
/// had every batch been binned with it (multiplying by a halved reciprocal halves the product exactly, and
/// <c>floor(y / 2) = floor(floor(y) / 2)</c>). Unlike PyTorch's <see cref="HistogramObserver"/>, nothing is re-binned
/// approximately and counts stay integers. The searches try at most about Bins candidate thresholds, evenly strided
/// over the bins in use (<see cref="CandidateStride"/>).
/// </para>
/// </remarks>
public abstract class ClippingRangeObserver : Observer
{
    /// <summary>How many times <see cref="ObserverSpec.Bins"/> the histogram may grow before its bins get wider.</summary>
    public const int GrowthFactor = 16;

    private readonly long[] _positive;
    private readonly long[] _negative;
    private double _width;
    private double _inverseWidth;

    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    /// <exception cref="ArgumentException">A per-channel scheme, or fewer than two bins.</exception>
    protected ClippingRangeObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
        if (spec.Scheme.IsPerChannel())
        {
            throw new ArgumentException($"{layer}: {spec.Kind}Observer supports per-tensor schemes only, got {spec.Scheme.ToTorchString()}.");
        }

        if (spec.Bins < 2)
        {
            throw new ArgumentException($"{layer}: {spec.Kind}Observer needs at least two bins, got {spec.Bins}.");
        }

        _positive = new long[checked(spec.Bins * GrowthFactor)];
        _negative = new long[_positive.Length];
    }

    /// <summary>Smallest value seen; +∞ before the first batch.</summary>
    public float Min { get; private set; } = float.PositiveInfinity;

    /// <summary>Largest value seen; −∞ before the first batch.</summary>
    public float Max { get; private set; } = float.NegativeInfinity;

    /// <summary>Number of values seen (zeros included).</summary>
    public long TotalCount { get; private set; }

    /// <summary>Number of values exactly 0 (kept out of the bins).</summary>
    public long ZeroCount { get; private set; }

    /// <summary>Number of bins per sign: <see cref="GrowthFactor"/> × <see cref="ObserverSpec.Bins"/>.</summary>
    public int Capacity => _positive.Length;

    /// <summary>The bin width w (double); 0 while every value seen was 0.</summary>
    public double BinWidth => _width;

    /// <summary>Counts of the positive values: [k] counts 0 &lt; x with floor(x / w) = k. A copy.</summary>
    public long[] PositiveCounts => (long[])_positive.Clone();

    /// <summary>Counts of the negative values: [k] counts x &lt; 0 with floor(−x / w) = k. A copy.</summary>
    public long[] NegativeCounts => (long[])_negative.Clone();

    /// <summary>
    /// True when the search clips one side only: an affine scheme and data of one sign (after a ReLU, min ≥ 0).
    /// The quantization grid then spends all its levels on [0, T]. Symmetric schemes search the magnitude |x| with
    /// half the levels on each side (TensorRT's signed form); mixed-sign affine data clip each end on its own.
    /// </summary>
    public bool IsOneSided => HasObserved && !Spec.Scheme.IsSymmetric() && (Min >= 0f || Max <= 0f);

    /// <summary>
    /// Number of quantization levels between 0 and the magnitude threshold: the whole range
    /// (quant_max − quant_min + 1, 256 for quint8) when <see cref="IsOneSided"/>, else half of it (128, symmetric).
    /// </summary>
    public int MagnitudeLevels => IsOneSided ? QuantMax - QuantMin + 1 : (QuantMax - QuantMin + 1) / 2;

    /// <summary>The clipping range [min, max] the search picks; the qparams are <see cref="QParamsMath.FromMinMax"/> of it.</summary>
    /// <exception cref="InvalidOperationException">No batch was observed.</exception>
    public (float Min, float Max) SearchClippingRange()
    {
        if (!HasObserved)
        {
            throw new InvalidOperationException($"{Layer}: the observer has seen no data. Run the Observed model's forward on calibration batches before Convert().");
        }

        if (_width == 0.0)
        {
            return (Min, Max);
        }

        return SearchCore();
    }

    /// <summary>
    /// Counts of |x| (positive and negative bins added), the histogram the magnitude searches use; exact zeros are
    /// not in it.
    /// </summary>
    public long[] MagnitudeCounts()
    {
        var magnitude = new long[_positive.Length];
        for (int k = 0; k < magnitude.Length; k++)
        {
            magnitude[k] = _positive[k] + _negative[k];
        }

        return magnitude;
    }

    /// <summary>The search for a clipping range; called after at least one non-zero value was seen.</summary>
    protected abstract (float Min, float Max) SearchCore();

    /// <summary>
    /// The clipping range for a magnitude threshold <paramref name="threshold"/> (≥ 0): [max(Min, −T), min(Max, T)],
    /// the lower end pulled down to the upper one if the data lie above T (only min(lo, 0) matters to the qparams).
    /// </summary>
    protected (float Min, float Max) RangeForMagnitude(double threshold)
    {
        float t = (float)threshold;
        float hi = MathF.Min(Max, t);
        float lo = MathF.Max(Min, -t);
        return (MathF.Min(lo, hi), hi);
    }

    /// <summary>
    /// The step between candidate bin counts for a histogram whose last non-empty bin is <paramref name="usedBins"/> − 1:
    /// <c>max(1, usedBins / Bins)</c>, so a search tries about <see cref="ObserverSpec.Bins"/> thresholds at most.
    /// </summary>
    public int CandidateStride(int usedBins) => Math.Max(1, usedBins / Spec.Bins);

    /// <summary>Number of bins up to and including the last non-empty one (0 for an empty histogram).</summary>
    protected static int UsedBins(ReadOnlySpan<long> counts)
    {
        for (int k = counts.Length - 1; k >= 0; k--)
        {
            if (counts[k] != 0)
            {
                return k + 1;
            }
        }

        return 0;
    }

    /// <inheritdoc/>
    protected override void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
    {
        (float batchMin, float batchMax) = RangeMath.MinMax(values);
        Min = MathF.Min(Min, batchMin);
        Max = MathF.Max(Max, batchMax);
        TotalCount += values.Length;
        double batchMagnitude = Math.Max(-(double)batchMin, batchMax);
        if (batchMagnitude == 0.0)
        {
            ZeroCount += values.Length;
            return;
        }

        int bins = _positive.Length;
        if (_width == 0.0)
        {
            _width = batchMagnitude / (Spec.Bins - 1);
            _inverseWidth = 1.0 / _width;
        }

        while (Math.Floor(batchMagnitude * _inverseWidth) >= bins)
        {
            Coarsen(_positive);
            Coarsen(_negative);
            _width *= 2.0;
            _inverseWidth *= 0.5;
        }

        double inverse = _inverseWidth;
        long zeros = 0;
        foreach (float value in values)
        {
            if (value > 0f)
            {
                _positive[(int)(value * inverse)]++;
            }
            else if (value < 0f)
            {
                _negative[(int)(-(double)value * inverse)]++;
            }
            else
            {
                zeros++;
            }
        }

        ZeroCount += zeros;
    }

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore()
    {
        (float min, float max) = SearchClippingRange();
        (float scale, int zeroPoint) = QParamsFor(min, max);
        return QParams.PerTensor(scale, zeroPoint, Spec.DType);
    }

    /// <summary>Bin k ← bins 2k and 2k+1 (the width doubles).</summary>
    private static void Coarsen(long[] counts)
    {
        int half = (counts.Length + 1) / 2;
        for (int k = 0; k < half; k++)
        {
            int first = 2 * k;
            counts[k] = counts[first] + (first + 1 < counts.Length ? counts[first + 1] : 0);
        }

        Array.Clear(counts, half, counts.Length - half);
    }
}
