using System;

namespace QuantGen.Observers;

/// <summary>
/// TensorRT's entropy calibration: picks the magnitude threshold T whose quantized distribution is closest, in
/// Kullback–Leibler divergence, to the observed one (Migacz, "8-bit Inference with TensorRT", GTC 2017; the search
/// of NVIDIA's pytorch-quantization <c>_compute_amax_entropy</c>).
/// </summary>
/// <remarks>
/// <para>
/// On the magnitude histogram h of <see cref="ClippingRangeObserver"/> (exact zeros left out: they are quantized
/// exactly whatever T is), with n the number of bins up to the last non-empty one and L =
/// <see cref="ClippingRangeObserver.MagnitudeLevels"/> (256 for one-sided quint8, the form for activations after a
/// ReLU; 128 for symmetric schemes, TensorRT's signed form), the candidates are T = i·w for i = L, L + s, L + 2s, …
/// below n, and n itself (s = <see cref="ClippingRangeObserver.CandidateStride"/>; only n when n ≤ L):
/// </para>
/// <list type="number">
/// <item><description>reference P: h[0..i), with the outliers Σ_{j≥i} h[j] added to bin i − 1;</description></item>
/// <item><description>candidate Q: bins [0, i) merged into L groups, bin j in group floor(j·L / i); each group's mass
/// (of h, outliers not included) spread evenly over the group's bins that are non-empty in P, the others staying 0 —
/// MXNet's and TVM's rule, under which the last bin, holding the outliers, shares its group's mass;</description></item>
/// <item><description>KL(P‖Q) = Σ P_j ln(P_j / Q_j) over P_j &gt; 0 with both normalised to sum 1 (infinite when the last
/// bin's group is empty in h: a threshold inside a gap of the histogram);</description></item>
/// </list>
/// <para>
/// the smallest divergence wins, ties going to the larger T (TensorRT's last arg-min). The range is
/// [max(min, −T), min(max, T)]. All in double.
/// </para>
/// <para>
/// Mixed-sign data with an affine scheme (a normalised image, logits) is not forced into TensorRT's symmetric form,
/// which would clip a long positive side at the magnitude of a large negative spike: both ends are searched on the
/// signed histogram — the kept bins in order from the lower end to the upper (negative bins reversed, then positive),
/// each side's outliers added to its outermost kept bin, all quant_max − quant_min + 1 levels over them, the same
/// grouping and divergence — on a grid of at most <see cref="MseObserver.GridPerSide"/> values per side (widest first),
/// then by coordinate descent over single bins within one grid step; ties keep the wider range.
/// </para>
/// <para>
/// Differences from pytorch-quantization: zeros are left out instead of its <c>bins[0] = bins[1]</c> patch for the ReLU
/// spike; non-empty bins are those of P, not of h (pytorch-quantization's rule makes a candidate whose last bin is empty
/// infinitely bad even when its group holds data); candidates start at L rather than a fixed 128 (fewer bins than levels
/// would compare the distribution with itself); the two-sided form above; and the histogram
/// (<see cref="ClippingRangeObserver"/>) grows to 16× its first batch's bins before its bins widen, so a few far
/// outliers leave the bulk its resolution.
/// </para>
/// </remarks>
public sealed class EntropyObserver : ClippingRangeObserver
{
    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    /// <exception cref="ArgumentException">A per-channel scheme or fewer than two bins.</exception>
    public EntropyObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
    }

    /// <summary>
    /// The KL divergence of the magnitude candidate <paramref name="keptBins"/> (T = keptBins·w) as the search computes
    /// it; for reports and tests.
    /// </summary>
    /// <exception cref="InvalidOperationException">No batch was observed.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="keptBins"/> is not in 1..<see cref="ClippingRangeObserver.Capacity"/>.</exception>
    public double Divergence(int keptBins)
    {
        RequireObserved();
        ArgumentOutOfRangeException.ThrowIfLessThan(keptBins, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(keptBins, Capacity);
        var side = new Side(MagnitudeCounts());
        return new Scratch(MagnitudeLevels).Kl(Side.Empty, 0, side, keptBins);
    }

    /// <summary>
    /// The KL divergence of the two-sided candidate that keeps <paramref name="negativeBins"/> negative and
    /// <paramref name="positiveBins"/> positive bins (the range [−a·w, b·w]) over all quant_max − quant_min + 1 levels,
    /// as the mixed-sign affine search computes it; for reports and tests.
    /// </summary>
    /// <exception cref="InvalidOperationException">No batch was observed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A bin count outside 0..<see cref="ClippingRangeObserver.Capacity"/>, or both 0.</exception>
    public double Divergence(int negativeBins, int positiveBins)
    {
        RequireObserved();
        ArgumentOutOfRangeException.ThrowIfNegative(negativeBins);
        ArgumentOutOfRangeException.ThrowIfNegative(positiveBins);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(negativeBins, Capacity);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(positiveBins, Capacity);
        ArgumentOutOfRangeException.ThrowIfZero(negativeBins + positiveBins);
        return new Scratch(QuantMax - QuantMin + 1).Kl(new Side(NegativeCounts), negativeBins, new Side(PositiveCounts), positiveBins);
    }

    /// <inheritdoc/>
    protected override (float Min, float Max) SearchCore()
    {
        if (!Spec.Scheme.IsSymmetric() && !IsOneSided)
        {
            return SearchBothEnds();
        }

        var side = new Side(MagnitudeCounts());
        int used = side.Used;
        if (used == 0)
        {
            return (Min, Max);
        }

        double magnitude = Math.Max(-(double)Min, Max);
        int levels = MagnitudeLevels;
        var scratch = new Scratch(levels);
        int best = used;
        double bestDivergence = double.PositiveInfinity;
        int stride = CandidateStride(used);
        for (int i = Math.Min(levels, used); i <= used; i = i < used ? Math.Min(i + stride, used) : used + 1)
        {
            double divergence = scratch.Kl(Side.Empty, 0, side, i);
            if (divergence <= bestDivergence)
            {
                bestDivergence = divergence;
                best = i;
            }
        }

        return RangeForMagnitude(Math.Min(best * BinWidth, magnitude));
    }

    /// <summary>
    /// Mixed-sign affine data: both ends, on the signed histogram (negative bins reversed, then positive bins), over all
    /// the levels — a grid of at most <see cref="MseObserver.GridPerSide"/> values per side, widest first, then coordinate
    /// descent over single bins within one grid step; only a strictly smaller divergence replaces the best.
    /// </summary>
    private (float Min, float Max) SearchBothEnds()
    {
        var negative = new Side(NegativeCounts);
        var positive = new Side(PositiveCounts);
        var scratch = new Scratch(QuantMax - QuantMin + 1);
        int usedNegative = negative.Used, usedPositive = positive.Used;
        int strideNegative = Math.Max(1, (usedNegative + MseObserver.GridPerSide - 1) / MseObserver.GridPerSide);
        int stridePositive = Math.Max(1, (usedPositive + MseObserver.GridPerSide - 1) / MseObserver.GridPerSide);
        int bestA = usedNegative, bestB = usedPositive;
        double best = double.PositiveInfinity;
        for (int a = usedNegative; a >= 1; a -= strideNegative)
        {
            for (int b = usedPositive; b >= 1; b -= stridePositive)
            {
                double divergence = scratch.Kl(negative, a, positive, b);
                if (divergence < best)
                {
                    (best, bestA, bestB) = (divergence, a, b);
                }
            }
        }

        int lowA = Math.Max(1, bestA - strideNegative + 1), highA = Math.Min(usedNegative, bestA + strideNegative - 1);
        int lowB = Math.Max(1, bestB - stridePositive + 1), highB = Math.Min(usedPositive, bestB + stridePositive - 1);
        bool improved = strideNegative > 1 || stridePositive > 1;
        while (improved)
        {
            improved = false;
            for (int a = highA; a >= lowA; a--)
            {
                double divergence = scratch.Kl(negative, a, positive, bestB);
                if (divergence < best)
                {
                    (best, bestA, improved) = (divergence, a, true);
                }
            }

            for (int b = highB; b >= lowB; b--)
            {
                double divergence = scratch.Kl(negative, bestA, positive, b);
                if (divergence < best)
                {
                    (best, bestB, improved) = (divergence, b, true);
                }
            }
        }

        float lo = (float)-Math.Min(bestA * BinWidth, -(double)Min);
        float hi = (float)Math.Min(bestB * BinWidth, Max);
        return (lo, hi);
    }

    private void RequireObserved()
    {
        if (!HasObserved)
        {
            throw new InvalidOperationException($"{Layer}: the observer has seen no data.");
        }
    }

    /// <summary>One sign's counts with their suffix sums (suffix[k] = Σ_{j≥k} counts[j]).</summary>
    private sealed class Side
    {
        public static readonly Side Empty = new([]);

        public Side(long[] counts)
        {
            Counts = counts;
            Suffix = new long[counts.Length + 1];
            for (int k = counts.Length - 1; k >= 0; k--)
            {
                Suffix[k] = Suffix[k + 1] + counts[k];
            }

            Used = 0;
            for (int k = counts.Length - 1; k >= 0; k--)
            {
                if (counts[k] != 0)
                {
                    Used = k + 1;
                    break;
                }
            }
        }

        public long[] Counts { get; }

        public long[] Suffix { get; }

        public int Used { get; }
    }

    /// <summary>Per-level working arrays, and the divergence itself.</summary>
    private sealed class Scratch(int levels)
    {
        private readonly double[] _groupMass = new double[levels];
        private readonly int[] _groupNonEmpty = new int[levels];

        /// <summary>
        /// KL(P‖Q) for keeping <paramref name="a"/> negative and <paramref name="b"/> positive bins: the kept bins in
        /// signed order, t = 0 … a + b − 1 (negative bin a − 1 − t for t &lt; a, positive bin t − a after), the outliers of
        /// each side added to its outermost kept bin in P, bin t in group floor(t·L / (a + b)).
        /// </summary>
        public double Kl(Side negative, int a, Side positive, int b)
        {
            int kept = a + b;
            long outNegative = a > 0 ? negative.Suffix[a] : 0;
            long outPositive = positive.Suffix[b];
            Array.Clear(_groupMass);
            Array.Clear(_groupNonEmpty);
            for (int t = 0; t < kept; t++)
            {
                long count = t < a ? negative.Counts[a - 1 - t] : positive.Counts[t - a];
                int group = (int)((long)t * levels / kept);
                _groupMass[group] += count;
                if (P(count, t, kept, a, outNegative, outPositive) != 0)
                {
                    _groupNonEmpty[group]++;
                }
            }

            // P sums to every count; Q to the counts kept.
            double totalP = (a > 0 ? negative.Suffix[0] : 0) + positive.Suffix[0];
            double totalQ = totalP - outNegative - outPositive;
            if (totalQ == 0.0)
            {
                return double.PositiveInfinity;
            }

            double divergence = 0.0;
            for (int t = 0; t < kept; t++)
            {
                long count = t < a ? negative.Counts[a - 1 - t] : positive.Counts[t - a];
                double p = P(count, t, kept, a, outNegative, outPositive);
                if (p == 0.0)
                {
                    continue;
                }

                int group = (int)((long)t * levels / kept);
                if (_groupMass[group] == 0.0)
                {
                    // Only an outermost bin can hold mass in P (its outliers) in a group that is empty in h.
                    return double.PositiveInfinity;
                }

                double q = _groupMass[group] / _groupNonEmpty[group] / totalQ;
                p /= totalP;
                divergence += p * Math.Log(p / q);
            }

            return divergence;
        }

        private static long P(long count, int t, int kept, int a, long outNegative, long outPositive) =>
            count + (a > 0 && t == 0 ? outNegative : 0) + (t == kept - 1 ? outPositive : 0);
    }
}
