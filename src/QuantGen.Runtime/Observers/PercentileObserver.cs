using System;

namespace QuantGen.Observers;

/// <summary>
/// Clips at a percentile of the observed values (<see cref="ObserverSpec.ClipPercentile"/>, default 99.99): at most
/// (100 − p)% of all values may lie beyond the clipping range. Symmetric schemes and one-sided affine data clip the
/// magnitude |x| at its p-th percentile; mixed-sign affine data clip each tail on its own, at most (100 − p)% of all
/// values below the lower end and at most as many above the upper end.
/// </summary>
/// <remarks>
/// On the histogram of <see cref="ClippingRangeObserver"/> (bin width w) the threshold of a tail with counts h is
/// <c>T = (k + 1)·w</c> for the smallest k with <c>Σ_{j&gt;k} h[j] ≤ (100 − p) / 100 · N</c> (N = every value seen,
/// zeros included), capped at the largest magnitude seen: the upper edge of the bin holding the percentile, so it
/// never clips more than the budget. p = 100 gives MinMax's range.
/// </remarks>
public sealed class PercentileObserver : ClippingRangeObserver
{
    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    /// <exception cref="ArgumentException">A per-channel scheme, fewer than two bins, or a percentile outside (0, 100].</exception>
    public PercentileObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
        if (!(spec.ClipPercentile > 0.0 && spec.ClipPercentile <= 100.0))
        {
            throw new ArgumentException($"{layer}: the percentile must be in (0, 100], got {spec.ClipPercentile}.");
        }
    }

    /// <inheritdoc/>
    protected override (float Min, float Max) SearchCore()
    {
        double budget = (100.0 - Spec.ClipPercentile) / 100.0 * TotalCount;
        if (Spec.Scheme.IsSymmetric() || IsOneSided)
        {
            double magnitude = Math.Max(-(double)Min, Max);
            return RangeForMagnitude(Math.Min(TailThreshold(MagnitudeCounts(), budget), magnitude));
        }

        double upper = Math.Min(TailThreshold(PositiveCounts, budget), Max);
        double lower = Math.Min(TailThreshold(NegativeCounts, budget), -(double)Min);
        return ((float)-lower, (float)upper);
    }

    /// <summary>(k + 1)·w for the smallest k whose counts beyond it fit the budget; 0 for an empty tail.</summary>
    private double TailThreshold(long[] counts, double budget)
    {
        long beyond = 0;
        for (int k = counts.Length - 1; k >= 0; k--)
        {
            // beyond = Σ_{j>k} counts[j]; once adding bin k would overflow the budget, bin k holds the percentile.
            if (beyond + counts[k] > budget)
            {
                return (k + 1) * BinWidth;
            }

            beyond += counts[k];
        }

        return 0.0;
    }
}
