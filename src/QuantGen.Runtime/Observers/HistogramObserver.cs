// Algorithm: PyTorch's HistogramObserver (torch/ao/quantization/observer.py) as rewritten by pytorch/pytorch
// PR #129387 "Fix for HistogramObserver" (merged June 2024, first released in PyTorch 2.5.0) and unchanged
// on main since (checked against main's observer.py, 2025): histograms are merged by re-binning the old
// histogram's 16x up-sampled mid-points into the combined range (_combine_histograms / _upscale_histogram;
// upsample_rate is hard-coded to 16 there, it was a constructor argument defaulting to 128 before 2.5, whose
// _adjust_min_max/down-sampling scheme is gone), and the clipping range comes from the L2 search
// (_non_linear_param_search / _compute_quantization_error / _get_norm) with dst_nbins = 2 ** bits = 256
// whatever reduce_range or quant_min/quant_max say. PyTorch 1.13's bug (int(min)/int(max) passed to histc,
// seed 000's input scale 0.0011) is deliberately not reproduced.
//
// Numbers: float32 wherever PyTorch computes on float32 tensors, double wherever it uses Python floats
// (.item() values, the search's alpha/beta, the error's bin widths); each line says which. The libtorch
// operators it is built from are re-done in TorchHistogramOps with libtorch's own rounding (histc's bin
// formula, linspace's fused multiply-add, sum's 8-lane cascade, cumsum's double accumulator), and the whole
// observer is checked bit for bit against PyTorch's Python code run on libtorch through TorchSharp
// (tests/QuantGen.Tests/Observers/HistogramObserverOracleTests.cs).
using System;

namespace QuantGen.Observers;

/// <summary>
/// PyTorch's <c>HistogramObserver</c>: keeps a <see cref="ObserverSpec.Bins"/>-bin histogram of everything
/// observed over the running [min, max], and picks the clipping range that minimises the L2 quantization
/// error of a 256-level grid (outliers get clipped). Per-tensor schemes only.
/// </summary>
public sealed class HistogramObserver : Observer
{
    /// <summary>
    /// Up-sampling factor used when an old histogram is re-binned into a wider range: PyTorch ≥ 2.5 hard-codes
    /// <c>self.upsample_rate = 16</c>.
    /// </summary>
    public const int UpsampleRate = 16;

    private readonly float[] _histogram;
    private readonly float[] _batchHistogram;
    private readonly float[] _rebinned;
    private readonly float[] _boundaries;
    private readonly int[] _counts;
    private readonly float[] _norms;

    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    /// <exception cref="ArgumentException">A per-channel scheme.</exception>
    public HistogramObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
        if (spec.Scheme.IsPerChannel())
        {
            throw new ArgumentException($"{layer}: HistogramObserver supports per-tensor schemes only, got {spec.Scheme.ToTorchString()}.");
        }

        if (spec.Bins < 1)
        {
            throw new ArgumentException($"{layer}: HistogramObserver needs at least one bin, got {spec.Bins}.");
        }

        int bins = spec.Bins;
        _histogram = new float[bins];
        _batchHistogram = new float[bins];
        _rebinned = new float[bins];
        _boundaries = new float[bins + 1];
        _counts = new int[bins];
        _norms = new float[bins];
    }

    /// <summary>
    /// Number of levels the search quantizes to: PyTorch's <c>dst_nbins = 2 ** torch.iinfo(dtype).bits</c>,
    /// 256 for quint8 and qint8 alike, not reduced by reduce_range or a custom quant range.
    /// </summary>
    public int DestinationBins => 1 << 8;

    /// <summary>Lower end of the histogram's range (the smallest value seen); +∞ before the first batch.</summary>
    public float Min { get; private set; } = float.PositiveInfinity;

    /// <summary>Upper end of the histogram's range (the largest value seen); −∞ before the first batch.</summary>
    public float Max { get; private set; } = float.NegativeInfinity;

    /// <summary>A copy of the histogram (<see cref="ObserverSpec.Bins"/> float32 weights over [<see cref="Min"/>, <see cref="Max"/>]).</summary>
    public float[] CopyHistogram() => (float[])_histogram.Clone();

    /// <summary>
    /// The clipping range [new_min, new_max] the L2 search picks (<c>_non_linear_param_search</c>); the qparams
    /// are <see cref="QParamsMath.FromMinMax"/> of it.
    /// </summary>
    /// <exception cref="InvalidOperationException">No batch was observed.</exception>
    public (float Min, float Max) SearchClippingRange()
    {
        if (!HasObserved)
        {
            throw new InvalidOperationException($"{Layer}: the observer has seen no data. Run the Observed model's forward on calibration batches before Convert().");
        }

        return NonLinearParamSearch();
    }

    /// <inheritdoc/>
    protected override void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
    {
        (float batchMin, float batchMax) = RangeMath.MinMax(values);
        if (!HasObserved)
        {
            // reset_histogram
            Min = batchMin;
            Max = batchMax;
            TorchHistogramOps.Histc(values, batchMin, batchMax, batchMin, batchMax, _histogram, _counts);
            return;
        }

        float currentMin = Min;
        float currentMax = Max;
        float newMin = MathF.Min(currentMin, batchMin);
        float newMax = MathF.Max(currentMax, batchMax);

        // The batch is binned straight into the combined range.
        TorchHistogramOps.Histc(values, newMin, newMax, batchMin, batchMax, _batchHistogram, _counts);
        if (newMin == currentMin && newMax == currentMax)
        {
            // Same range, same edges: histograms simply add (self.histogram + update_histogram, float32).
            for (int b = 0; b < _histogram.Length; b++)
            {
                _histogram[b] += _batchHistogram[b];
            }

            return;
        }

        CombineHistograms(currentMin, currentMax, newMin, newMax);
        Min = newMin;
        Max = newMax;
    }

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore()
    {
        (float newMin, float newMax) = NonLinearParamSearch();
        (float scale, int zeroPoint) = QParamsFor(newMin, newMax);
        return QParams.PerTensor(scale, zeroPoint, Spec.DType);
    }

    /// <summary>
    /// <c>_combine_histograms</c>: the old histogram over [origMin, origMax] is moved into the wider
    /// [updateMin, updateMax] and added to the batch's histogram (already over that range); the result
    /// replaces <see cref="_histogram"/>.
    /// </summary>
    private void CombineHistograms(float origMin, float origMax, float updateMin, float updateMax)
    {
        int bins = _histogram.Length;
        Span<float> rebinned = _rebinned;
        if (origMin == origMax)
        {
            // Everything seen so far was one value v: histc([v], bins, updateMin, updateMax) * sum(old histogram).
            // updateMin < updateMax here (the range changed and still holds v), so histc needs no fallback.
            float total = TorchHistogramOps.Sum(_histogram);
            TorchHistogramOps.Histc([origMin], updateMin, updateMax, origMin, origMin, rebinned, _counts);
            for (int b = 0; b < bins; b++)
            {
                rebinned[b] *= total;
            }
        }
        else
        {
            UpscaleHistogram(origMin, origMax, updateMin, updateMax, rebinned);
        }

        // update_hist + transformed_orig_hist (float32)
        for (int b = 0; b < bins; b++)
        {
            _histogram[b] = _batchHistogram[b] + rebinned[b];
        }
    }

    /// <summary>
    /// <c>_upscale_histogram</c>: each old bin is split into <see cref="UpsampleRate"/> equal parts
    /// (<c>repeat_interleave(16) / 16</c>); each part's mid-point is looked up among the new range's bin
    /// edges (<c>bucketize(right=True) - 1</c>, clamped to the valid bins), and the parts are added into
    /// their new bins in order (<c>bincount</c> with float32 weights accumulates sequentially in float32).
    /// </summary>
    private void UpscaleHistogram(float origMin, float origMax, float updateMin, float updateMax, Span<float> rebinned)
    {
        int bins = _histogram.Length;
        int fineBins = bins * UpsampleRate;

        // bin_size = (orig_max - orig_min) / (bins * upsample_rate); mid-points = linspace(orig_min, orig_max,
        // fine + 1)[:-1] + 0.5 * bin_size: float32 tensor arithmetic.
        float fineWidth = (origMax - origMin) / (float)fineBins;
        float halfFineWidth = 0.5f * fineWidth;
        var fineEdges = new TorchHistogramOps.Linspace(origMin, origMax, fineBins + 1L);

        // boundaries_new_histogram = linspace(update_min, update_max, bins + 1)
        var newEdges = new TorchHistogramOps.Linspace(updateMin, updateMax, bins + 1L);
        Span<float> boundaries = _boundaries;
        for (int e = 0; e <= bins; e++)
        {
            boundaries[e] = newEdges[e];
        }

        rebinned.Clear();
        int hint = 0;
        for (int oldBin = 0; oldBin < bins; oldBin++)
        {
            float part = _histogram[oldBin] / (float)UpsampleRate;
            for (int k = 0; k < UpsampleRate; k++)
            {
                int fine = (oldBin * UpsampleRate) + k;
                float midPoint = fineEdges[fine] + halfFineWidth;
                hint = TorchHistogramOps.UpperBound(boundaries, midPoint, hint);
                int bucket = Math.Clamp(hint - 1, 0, bins - 1);
                rebinned[bucket] += part;
            }
        }
    }

    /// <summary>
    /// <c>_non_linear_param_search</c>: starting from the whole histogram, repeatedly drops a quantile step
    /// (1e-5 of the total) from whichever end frees more bins, as long as the L2 error of quantizing to
    /// <see cref="DestinationBins"/> levels does not grow; returns the kept bins' range.
    /// </summary>
    private (float Min, float Max) NonLinearParamSearch()
    {
        int bins = _histogram.Length;
        float[] cumulative = new float[bins];
        TorchHistogramOps.CumulativeSum(_histogram, cumulative);

        // total = torch.sum(histogram).item(): a float32 sum, used as a Python float.
        double total = TorchHistogramOps.Sum(_histogram);

        // Python floats (double): the quantile bounds and their step.
        const double StepSize = 1e-5;
        double alpha = 0.0;
        double beta = 1.0;
        int startBin = 0;
        int endBin = bins - 1;
        double normMin = double.PositiveInfinity;

        // PyTorch rescans l from start_bin and r from end_bin every round. The thresholds only grow (alpha) or
        // shrink (beta) and start_bin/end_bin only move inwards, so every bin a scan passed stays passed:
        // resuming from the previous stop gives the same l and r (clamped into the current [start, end]).
        int lastLeft = 0;
        int lastRight = bins - 1;
        while (alpha < beta)
        {
            double nextAlpha = alpha + StepSize;
            double nextBeta = beta - StepSize;

            // cSum[l] < next_alpha * total compares a float32 tensor with a Python float: the scalar is
            // converted to float32 (same-category wrapped numbers do not promote) and compared in float32.
            float leftThreshold = (float)(nextAlpha * total);
            float rightThreshold = (float)(nextBeta * total);

            int l = Math.Min(Math.Max(startBin, lastLeft), endBin);
            while (l < endBin && cumulative[l] < leftThreshold)
            {
                l++;
            }

            int r = Math.Max(Math.Min(endBin, lastRight), startBin);
            while (r > startBin && cumulative[r] > rightThreshold)
            {
                r--;
            }

            lastLeft = l;
            lastRight = r;

            int nextStartBin = startBin;
            int nextEndBin = endBin;
            if ((l - startBin) > (endBin - r))
            {
                nextStartBin = l;
                alpha = nextAlpha;
            }
            else
            {
                nextEndBin = r;
                beta = nextBeta;
            }

            if (nextStartBin == startBin && nextEndBin == endBin)
            {
                continue;
            }

            double norm = QuantizationError(nextStartBin, nextEndBin);
            if (norm > normMin)
            {
                break;
            }

            normMin = norm;
            startBin = nextStartBin;
            endBin = nextEndBin;
        }

        // bin_width = (max_val - min_val) / bins and new_min/new_max: float32 tensors.
        float binWidth = (Max - Min) / (float)bins;
        float startOffset = binWidth * (float)startBin;
        float endOffset = binWidth * (float)(endBin + 1);
        return (Min + startOffset, Min + endOffset);
    }

    /// <summary>
    /// PyTorch's <c>_compute_quantization_error</c>: the L2 error of quantizing the histogram (each bin's mass
    /// spread uniformly over the bin) to <see cref="DestinationBins"/> equal levels spanning histogram bins
    /// [<paramref name="startBin"/>, <paramref name="endBin"/>], values outside clamped to the first/last level.
    /// The search compares these; exposed for reports and tests.
    /// </summary>
    /// <exception cref="InvalidOperationException">No batch was observed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The bins are not 0 ≤ start ≤ end &lt; <see cref="ObserverSpec.Bins"/>.</exception>
    public double ComputeQuantizationError(int startBin, int endBin)
    {
        if (!HasObserved)
        {
            throw new InvalidOperationException($"{Layer}: the observer has seen no data. Run the Observed model's forward on calibration batches before Convert().");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(startBin);
        ArgumentOutOfRangeException.ThrowIfLessThan(endBin, startBin);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(endBin, _histogram.Length);
        return QuantizationError(startBin, endBin);
    }

    private double QuantizationError(int nextStartBin, int nextEndBin)
    {
        int bins = _histogram.Length;
        int dstBins = DestinationBins;

        // Python floats: bin_width from .item() values, dst_bin_width from it.
        double binWidthD = ((double)Max - (double)Min) / bins;
        double dstBinWidthD = binWidthD * (nextEndBin - nextStartBin + 1) / dstBins;
        if (dstBinWidthD == 0.0)
        {
            return 0.0;
        }

        // Every tensor expression below is float32; a Python float operand enters as float32.
        float binWidth = (float)binWidthD;
        float dstBinWidth = (float)dstBinWidthD;
        float halfDst = (float)(dstBinWidthD / 2);
        float negHalfDst = (float)(-dstBinWidthD / 2);
        float maxDst = dstBins - 1;

        // _get_norm(tensor(-w/2), tensor(w/2), density) for a whole destination bin: density * norm0.
        float fullBinNorm = Cube(halfDst) - Cube(negHalfDst);
        fullBinNorm /= 3f;

        for (int i = 0; i < bins; i++)
        {
            float srcBegin = (float)(i - nextStartBin) * binWidth;
            float srcEnd = srcBegin + binWidth;

            float dstOfBegin = Math.Clamp(TorchHistogramOps.DivFloor(srcBegin, dstBinWidth), 0f, maxDst);
            float dstOfBeginCenter = (dstOfBegin + 0.5f) * dstBinWidth;
            float dstOfEnd = Math.Clamp(TorchHistogramOps.DivFloor(srcEnd, dstBinWidth), 0f, maxDst);

            float density = _histogram[i] / binWidth;

            // norm starts at zeros(bins); each += is a float32 addition.
            float deltaBegin = srcBegin - dstOfBeginCenter;
            float norm = density * GetNorm(deltaBegin, halfDst);

            float innerBins = (dstOfEnd - dstOfBegin) - 1f;
            float inner = density * fullBinNorm;
            norm += innerBins * inner;

            float endCenterBase = dstOfEnd * dstBinWidth;
            float dstOfEndCenter = endCenterBase + halfDst;
            float deltaEnd = srcEnd - dstOfEndCenter;
            norm += density * GetNorm(negHalfDst, deltaEnd);

            _norms[i] = norm;
        }

        // norm.sum().item(): a float32 sum in libtorch's order, used as a Python float.
        return TorchHistogramOps.Sum(_norms);
    }

    /// <summary><c>_get_norm</c> without the density factor: (end³ − begin³) / 3 in float32.</summary>
    private static float GetNorm(float deltaBegin, float deltaEnd)
    {
        float difference = Cube(deltaEnd) - Cube(deltaBegin);
        return difference / 3f;
    }

    /// <summary>x * x * x as PyTorch evaluates it: (x * x) * x, each product rounded to float32.</summary>
    private static float Cube(float x)
    {
        float square = x * x;
        return square * x;
    }
}
