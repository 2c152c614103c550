using System;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Observers;

/// <summary>
/// An independent oracle for <see cref="QuantGen.Observers.HistogramObserver"/>: PyTorch ≥ 2.5's
/// HistogramObserver (torch/ao/quantization/observer.py) transcribed statement by statement onto libtorch
/// tensors through TorchSharp, so every float32 operation is libtorch's own. Deviations, each noted where it
/// happens: TorchSharp 0.107's <c>histc</c> takes integer bounds (the PyTorch 1.13 bug again), so histc's CPU
/// kernel is spelled out in tensor ops; its <c>div(..., RoundingMode.floor)</c> ignores the rounding mode, so
/// <c>torch.div(a, b, rounding_mode='floor')</c> is written as <c>floor_divide</c>, which is the same ATen kernel
/// (div_floor) since PyTorch 1.13; and the search loop reads <c>cSum</c> into a float array and compares
/// in float32 (what <c>cSum[l] &lt; python_float</c> does; <see cref="HistogramObserverOracleTests"/> checks
/// that claim against libtorch separately), because a libtorch call per comparison would take minutes.
/// </summary>
internal sealed class TorchHistogramObserverOracle : IDisposable
{
    private const int UpsampleRate = 16;
    private const int DstNbins = 256;
    private readonly int _bins;
    private Tensor _histogram;
    private Tensor _minVal;
    private Tensor _maxVal;

    public TorchHistogramObserverOracle(int bins)
    {
        _bins = bins;
        _histogram = zeros(bins, ScalarType.Float32);
        _minVal = tensor(float.PositiveInfinity);
        _maxVal = tensor(float.NegativeInfinity);
    }

    public float Min => _minVal.item<float>();

    public float Max => _maxVal.item<float>();

    public float[] Histogram => _histogram.data<float>().ToArray();

    public void Dispose()
    {
        _histogram.Dispose();
        _minVal.Dispose();
        _maxVal.Dispose();
    }

    public void Forward(float[] values)
    {
        using var scope = NewDisposeScope();
        Tensor x = tensor(values);
        Tensor xMin = x.min();
        Tensor xMax = x.max();
        Tensor currentMin = _minVal;
        Tensor currentMax = _maxVal;
        bool isUninitialized = currentMin.item<float>() == float.PositiveInfinity || currentMax.item<float>() == float.NegativeInfinity;
        if (isUninitialized)
        {
            // reset_histogram
            Replace(ref _minVal, xMin.clone());
            Replace(ref _maxVal, xMax.clone());
            Replace(ref _histogram, Histc(x, xMin.item<float>(), xMax.item<float>()));
            return;
        }

        Tensor newMin = minimum(currentMin, xMin);
        Tensor newMax = maximum(currentMax, xMax);
        Tensor updateHistogram = Histc(x, newMin.item<float>(), newMax.item<float>());
        if (newMin.item<float>() == currentMin.item<float>() && newMax.item<float>() == currentMax.item<float>())
        {
            Replace(ref _histogram, _histogram + updateHistogram);
            return;
        }

        Tensor combined = CombineHistograms(_histogram, currentMin, currentMax, updateHistogram, newMin, newMax);
        Replace(ref _histogram, combined);
        Replace(ref _minVal, newMin.clone());
        Replace(ref _maxVal, newMax.clone());
    }

    /// <summary>_non_linear_param_search; returns (new_min, new_max).</summary>
    public (float Min, float Max) NonLinearParamSearch()
    {
        using var scope = NewDisposeScope();
        Tensor binWidth = (_maxVal - _minVal) / _bins;
        double total = _histogram.sum().item<float>();
        float[] cSum = _histogram.cumsum(0).data<float>().ToArray();

        double stepsize = 1e-5;
        double alpha = 0.0;
        double beta = 1.0;
        int startBin = 0;
        int endBin = _bins - 1;
        double normMin = double.PositiveInfinity;
        while (alpha < beta)
        {
            double nextAlpha = alpha + stepsize;
            double nextBeta = beta - stepsize;
            int l = startBin;
            int r = endBin;
            while (l < endBin && cSum[l] < (float)(nextAlpha * total))
            {
                l++;
            }

            while (r > startBin && cSum[r] > (float)(nextBeta * total))
            {
                r--;
            }

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

            double norm = ComputeQuantizationError(nextStartBin, nextEndBin);
            if (norm > normMin)
            {
                break;
            }

            normMin = norm;
            startBin = nextStartBin;
            endBin = nextEndBin;
        }

        Tensor newMin = _minVal + (binWidth * startBin);
        Tensor newMax = _minVal + (binWidth * (endBin + 1));
        return (newMin.item<float>(), newMax.item<float>());
    }

    /// <summary>_compute_quantization_error, one libtorch op per Python operator.</summary>
    public double ComputeQuantizationError(int nextStartBin, int nextEndBin)
    {
        using var scope = NewDisposeScope();
        double binWidth = ((double)_maxVal.item<float>() - (double)_minVal.item<float>()) / _bins;
        double dstBinWidth = binWidth * (nextEndBin - nextStartBin + 1) / DstNbins;
        if (dstBinWidth == 0.0)
        {
            return 0.0;
        }

        Tensor srcBin = arange(_bins);
        Tensor srcBinBegin = (srcBin - nextStartBin) * binWidth;
        Tensor srcBinEnd = srcBinBegin + binWidth;

        // torch.div(..., rounding_mode='floor') == floor_divide (TorchSharp's div drops the rounding mode).
        Tensor dstBinOfBegin = clamp(srcBinBegin.floor_divide(dstBinWidth), 0, DstNbins - 1);
        Tensor dstBinOfBeginCenter = (dstBinOfBegin + 0.5) * dstBinWidth;
        Tensor dstBinOfEnd = clamp(srcBinEnd.floor_divide(dstBinWidth), 0, DstNbins - 1);
        Tensor density = _histogram / binWidth;
        Tensor norm = zeros(_bins);

        Tensor deltaBegin = srcBinBegin - dstBinOfBeginCenter;
        double deltaEnd = dstBinWidth / 2;
        norm.add_(GetNorm(deltaBegin, ones(_bins) * deltaEnd, density));

        // torch.tensor(python_float) is a float32 0-dim tensor (the default dtype).
        norm.add_((dstBinOfEnd - dstBinOfBegin - 1) * GetNorm(tensor((float)(-dstBinWidth / 2)), tensor((float)(dstBinWidth / 2)), density));

        Tensor dstBinOfEndCenter = (dstBinOfEnd * dstBinWidth) + (dstBinWidth / 2);
        double deltaBegin2 = -dstBinWidth / 2;
        Tensor deltaEnd2 = srcBinEnd - dstBinOfEndCenter;
        norm.add_(GetNorm(tensor((float)deltaBegin2), deltaEnd2, density));

        return norm.sum().item<float>();
    }

    private static Tensor GetNorm(Tensor deltaBegin, Tensor deltaEnd, Tensor density)
    {
        Tensor norm = ((deltaEnd * deltaEnd * deltaEnd) - (deltaBegin * deltaBegin * deltaBegin)) / 3;
        return density * norm;
    }

    private Tensor CombineHistograms(Tensor origHist, Tensor origMin, Tensor origMax, Tensor updateHist, Tensor updateMin, Tensor updateMax)
    {
        if (updateMin.item<float>() == origMin.item<float>() && updateMax.item<float>() == origMax.item<float>())
        {
            return origHist + updateHist;
        }

        if (origMin.item<float>() == origMax.item<float>())
        {
            Tensor binValue = origHist.sum();
            Tensor transformed = Histc(origMin.reshape(1), updateMin.item<float>(), updateMax.item<float>()) * binValue;
            return transformed + updateHist;
        }

        Tensor transformedOrigHist = UpscaleHistogram(origHist, origMin, origMax, updateMin, updateMax);
        return updateHist + transformedOrigHist;
    }

    private Tensor UpscaleHistogram(Tensor histogram, Tensor origMin, Tensor origMax, Tensor updateMin, Tensor updateMax)
    {
        histogram = histogram.repeat_interleave(UpsampleRate) / UpsampleRate;
        Tensor binSize = (origMax - origMin) / (_bins * UpsampleRate);
        Tensor midPoints = linspace(origMin.item<float>(), origMax.item<float>(), (_bins * UpsampleRate) + 1, ScalarType.Float32)[TensorIndex.Slice(null, -1)]
            + (0.5 * binSize);
        Tensor boundaries = linspace(updateMin.item<float>(), updateMax.item<float>(), _bins + 1, ScalarType.Float32);
        Tensor bucketAssignments = bucketize(midPoints, boundaries, outInt32: false, right: true) - 1;
        bucketAssignments = bucketAssignments.masked_fill(bucketAssignments.ge(_bins), _bins - 1);
        bucketAssignments = bucketAssignments.masked_fill(bucketAssignments.lt(0), 0);
        return bucketAssignments.bincount(histogram, _bins);
    }

    /// <summary>
    /// torch.histc(x, bins, min, max) on the CPU: histc_select_outer_bin_edges, the float32 linspace edges, and
    /// the LINEAR_INTERPOLATION kernel pos = (int64)((x - left) * bins / (right - left)), in libtorch tensor ops.
    /// </summary>
    private Tensor Histc(Tensor x, double min, double max)
    {
        double left = min;
        double right = max;
        if (left == right)
        {
            left = x.min().item<float>();
            right = x.max().item<float>();
        }

        if (left == right)
        {
            left = Math.Min((double)MathF.BitDecrement((float)left), left - 1.0);
            right = Math.Max((double)MathF.BitIncrement((float)right), right + 1.0);
        }

        Tensor edges = linspace(left, right, _bins + 1, ScalarType.Float32);
        Tensor leftEdge = edges[0];
        Tensor rightEdge = edges[_bins];
        Tensor kept = x.masked_select(x.ge(leftEdge).logical_and(x.le(rightEdge)));
        Tensor pos = ((kept - leftEdge) * _bins / (rightEdge - leftEdge)).to(ScalarType.Int64);
        pos = pos.masked_fill(pos.eq(_bins), _bins - 1);
        return pos.bincount(null, _bins).to(ScalarType.Float32);
    }

    private static void Replace(ref Tensor field, Tensor value)
    {
        Tensor old = field;
        field = value.MoveToOuterDisposeScope();
        old.Dispose();
    }
}
