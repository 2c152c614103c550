using System;

namespace QuantGen.Observers;

/// <summary>
/// Picks the clipping range whose qparams minimise the expected squared quantization error over the observed
/// histogram — the error of the real quantizer those qparams make, clamp to the full dtype range included.
/// </summary>
/// <remarks>
/// <para>
/// Each candidate range goes through <see cref="QParamsMath.FromMinMax"/> (float32, as the final qparams will),
/// and its error is <see cref="ExpectedError"/>: every histogram bin's count spread evenly over the bin, integrated
/// exactly against the quantize→dequantize step function <c>x ↦ (clamp(round(x / s) + z, quant_min, quant_max) − z)·s</c>.
/// Exact zeros (counted apart) are representable and add nothing. In double.
/// </para>
/// <para>
/// The clamp is to the observer's quant range, not the dtype's: inference clamps to the full dtype range, so with
/// <c>reduce_range</c> a calibrated range [0, T] can in fact represent up to 2T, and a search that counted on that
/// would choose T ≈ max / 2 and put half the calibration data above quant_max — defeating reduce_range, whose point is
/// that activations stay within 7 bits (fbgemm's <c>vpmaddubsw</c> saturates beyond that). Without reduce_range the two
/// ranges are the same.
/// </para>
/// <para>
/// Candidates, with w the bin width: symmetric schemes and one-sided affine data try the magnitude thresholds
/// T = min(i·w, max|x|) for i = n, n − s, n − 2s, … ≥ 1 (n = bins up to the last non-empty one of the |x| histogram,
/// s = <see cref="ClippingRangeObserver.CandidateStride"/>), each as the range [max(min, −T), min(max, T)]. Mixed-sign affine data try both ends, lo = −min(a·w, −min) and hi = min(b·w, max):
/// first on a grid of at most <see cref="GridPerSide"/> values per side (a = nNeg, nNeg − s, …; likewise b), then by
/// coordinate descent over single bins within one grid step of the best pair. Candidates are tried from the widest
/// range down and only a strictly smaller error replaces the best, so ties keep the wider range.
/// </para>
/// </remarks>
public sealed class MseObserver : ClippingRangeObserver
{
    /// <summary>Largest number of grid values per side of the two-sided (mixed-sign affine) search's first stage.</summary>
    public const int GridPerSide = 64;

    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    /// <exception cref="ArgumentException">A per-channel scheme or fewer than two bins.</exception>
    public MseObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
    }

    /// <summary>
    /// The expected squared error (summed over the histogram's counts, not averaged) of quantizing the observed
    /// values with the qparams this observer would make for the range [<paramref name="min"/>, <paramref name="max"/>].
    /// </summary>
    /// <exception cref="InvalidOperationException">No batch was observed.</exception>
    public double ExpectedError(float min, float max)
    {
        if (!HasObserved)
        {
            throw new InvalidOperationException($"{Layer}: the observer has seen no data.");
        }

        return ErrorOf(new Occupied(PositiveCounts), new Occupied(NegativeCounts), min, max);
    }

    /// <inheritdoc/>
    protected override (float Min, float Max) SearchCore()
    {
        long[] positive = PositiveCounts;
        long[] negative = NegativeCounts;
        var occupiedPositive = new Occupied(positive);
        var occupiedNegative = new Occupied(negative);
        if (Spec.Scheme.IsSymmetric() || IsOneSided)
        {
            return SearchMagnitude(occupiedPositive, occupiedNegative);
        }

        return SearchBothEnds(UsedBins(positive), UsedBins(negative), occupiedPositive, occupiedNegative);
    }

    private (float Min, float Max) SearchMagnitude(Occupied positive, Occupied negative)
    {
        int used = UsedBins(MagnitudeCounts());
        double magnitude = Math.Max(-(double)Min, Max);
        (float Min, float Max) best = RangeForMagnitude(magnitude);
        double bestError = double.PositiveInfinity;
        int stride = CandidateStride(used);
        for (int i = used; i >= 1; i -= stride)
        {
            (float lo, float hi) = RangeForMagnitude(Math.Min(i * BinWidth, magnitude));
            double error = ErrorOf(positive, negative, lo, hi);
            if (error < bestError)
            {
                bestError = error;
                best = (lo, hi);
            }
        }

        return best;
    }

    private (float Min, float Max) SearchBothEnds(int usedPositive, int usedNegative, Occupied positive, Occupied negative)
    {
        int strideNegative = Math.Max(1, (usedNegative + GridPerSide - 1) / GridPerSide);
        int stridePositive = Math.Max(1, (usedPositive + GridPerSide - 1) / GridPerSide);

        int bestA = usedNegative;
        int bestB = usedPositive;
        double bestError = double.PositiveInfinity;
        for (int a = usedNegative; a >= 1; a -= strideNegative)
        {
            for (int b = usedPositive; b >= 1; b -= stridePositive)
            {
                double error = ErrorOf(positive, negative, Lower(a), Upper(b));
                if (error < bestError)
                {
                    (bestError, bestA, bestB) = (error, a, b);
                }
            }
        }

        // Coordinate descent over single bins, within one grid step of the grid's best pair.
        int lowA = Math.Max(1, bestA - strideNegative + 1), highA = Math.Min(usedNegative, bestA + strideNegative - 1);
        int lowB = Math.Max(1, bestB - stridePositive + 1), highB = Math.Min(usedPositive, bestB + stridePositive - 1);
        bool improved = strideNegative > 1 || stridePositive > 1;
        while (improved)
        {
            improved = false;
            for (int a = highA; a >= lowA; a--)
            {
                double error = ErrorOf(positive, negative, Lower(a), Upper(bestB));
                if (error < bestError)
                {
                    (bestError, bestA, improved) = (error, a, true);
                }
            }

            for (int b = highB; b >= lowB; b--)
            {
                double error = ErrorOf(positive, negative, Lower(bestA), Upper(b));
                if (error < bestError)
                {
                    (bestError, bestB, improved) = (error, b, true);
                }
            }
        }

        return (Lower(bestA), Upper(bestB));
    }

    private float Lower(int bins) => (float)-Math.Min(bins * BinWidth, -(double)Min);

    private float Upper(int bins) => (float)Math.Min(bins * BinWidth, Max);

    private double ErrorOf(Occupied positive, Occupied negative, float min, float max)
    {
        (float scale, int zeroPoint) = QParamsFor(min, max);
        return Error(positive, negative, scale, zeroPoint);
    }

    private double Error(Occupied positive, Occupied negative, float scale, int zeroPoint)
    {
        double w = BinWidth;
        if (w == 0.0)
        {
            return 0.0;
        }

        double s = scale;
        int qmin = QuantMin, qmax = QuantMax;
        double total = 0.0;
        for (int i = 0; i < positive.Bins.Length; i++)
        {
            int k = positive.Bins[i];
            total += positive.Counts[i] / w * SegmentError(k * w, (k + 1) * w, s, zeroPoint, qmin, qmax);
        }

        for (int i = 0; i < negative.Bins.Length; i++)
        {
            int k = negative.Bins[i];
            total += negative.Counts[i] / w * SegmentError(-(k + 1) * w, -k * w, s, zeroPoint, qmin, qmax);
        }

        return total;
    }

    /// <summary>∫ₐᵇ (x − Q(x))² dx for the quantizer with scale s, zero point z, levels qmin..qmax (the quant range).</summary>
    private static double SegmentError(double a, double b, double s, int z, int qmin, int qmax)
    {
        int level = (int)Math.Clamp(Math.Floor((a / s) + 0.5) + z, qmin, qmax);
        double sum = 0.0;
        double from = a;
        while (true)
        {
            double y = (level - z) * s;
            double boundary = level == qmax ? double.PositiveInfinity : (level - z + 0.5) * s;
            double to = Math.Min(b, boundary);
            if (to > from)
            {
                // (t³ − f³) / 3 for t = to − y, f = from − y, written so that it does not cancel.
                double f = from - y, t = to - y;
                sum += (t - f) * ((f * f) + (f * t) + (t * t)) / 3.0;
            }

            if (to >= b)
            {
                return sum;
            }

            from = to;
            level++;
        }
    }

    /// <summary>The non-empty bins of one sign's histogram (index and count): heavy tails leave most bins empty.</summary>
    private readonly struct Occupied
    {
        public Occupied(long[] counts)
        {
            int n = 0;
            foreach (long c in counts)
            {
                n += c != 0 ? 1 : 0;
            }

            Bins = new int[n];
            Counts = new long[n];
            int at = 0;
            for (int k = 0; k < counts.Length; k++)
            {
                if (counts[k] != 0)
                {
                    Bins[at] = k;
                    Counts[at++] = counts[k];
                }
            }
        }

        public int[] Bins { get; }

        public long[] Counts { get; }
    }
}
