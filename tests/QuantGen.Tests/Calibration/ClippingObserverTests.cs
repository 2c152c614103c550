using System;
using System.Linq;
using QuantGen.Observers;
using Xunit.Abstractions;
using static QuantGen.Tests.Calibration.CalibrationTestMath;

namespace QuantGen.Tests.Calibration;

/// <summary>
/// Percentile, entropy (KL) and MSE calibration: each must beat MinMax on the bulk of a distribution with outliers,
/// and each threshold must equal a straightforward re-computation written here (sorting for the percentile, a
/// brute-force KL and a brute-force integrated MSE over every candidate, all in double).
/// </summary>
public sealed class ClippingObserverTests(ITestOutputHelper output)
{
    private static ObserverSpec SpecFor(ObserverKind kind, string shape, int bins = 2048, bool reduceRange = false)
    {
        (QuantDType dtype, QScheme scheme) = shape == "symmetric"
            ? (QuantDType.QInt8, QScheme.PerTensorSymmetric)
            : (QuantDType.QUInt8, QScheme.PerTensorAffine);
        return kind switch
        {
            ObserverKind.Percentile => ObserverSpec.Percentile(99.99, dtype, scheme, reduceRange, bins: bins),
            ObserverKind.Entropy => ObserverSpec.Entropy(dtype, scheme, reduceRange, bins: bins),
            ObserverKind.Mse => ObserverSpec.Mse(dtype, scheme, reduceRange, bins: bins),
            _ => ObserverSpec.MinMax(dtype, scheme, reduceRange),
        };
    }

    [Theory]
    [InlineData(ObserverKind.Percentile, "relu", 4.0)]
    [InlineData(ObserverKind.Percentile, "symmetric", 4.0)]
    [InlineData(ObserverKind.Percentile, "skewed", 4.0)]
    [InlineData(ObserverKind.Percentile, "heavy", 2.0)]
    [InlineData(ObserverKind.Entropy, "relu", 4.0)]
    [InlineData(ObserverKind.Entropy, "symmetric", 4.0)]
    [InlineData(ObserverKind.Entropy, "skewed", 4.0)]
    [InlineData(ObserverKind.Entropy, "heavy", 2.0)]
    [InlineData(ObserverKind.Mse, "relu", 1.0)]
    [InlineData(ObserverKind.Mse, "symmetric", 1.0)]
    [InlineData(ObserverKind.Mse, "skewed", 1.0)]
    [InlineData(ObserverKind.Mse, "heavy", 1.0)]
    public void BeatsMinMaxOnTheBulkOfADistributionWithOutliers(ObserverKind kind, string shape, double factor)
    {
        // The margins: five outliers at |x| 20..40 stretch MinMax's step ~10x past what a N(0, 1) bulk needs, so its
        // rounding error (step²/12) is far larger and clipping methods must win by 4x. MSE minimises the error of ALL
        // values, and clipping five values at ~30 down to ~4 costs more (5 · 26²) than 60 000 values' rounding error at
        // MinMax's step (60 000 · 0.3² / 12): it rightly keeps most of the range and need only be better. On Student's t
        // (heavy tails: about 1% of the values beyond 10, reaching the hundreds) percentile and entropy clip the tail and
        // must halve MinMax's error on |x| ≤ 10; MSE again weighs the clipped tail and need only be better.
        (float[][] batches, float[] bulk) = WithOutliers(shape, seed: 11);
        Observer method = ObserveAll(SpecFor(kind, shape).Create("T.x"), batches);
        Observer minMax = ObserveAll(SpecFor(ObserverKind.MinMax, shape).Create("T.x"), batches);

        double methodMse = Mse(bulk, method.CalculateQParams());
        double minMaxMse = Mse(bulk, minMax.CalculateQParams());
        output.WriteLine($"{kind} on {shape}: bulk MSE {methodMse:E3} ({method.CalculateQParams()}) vs MinMax {minMaxMse:E3} ({minMax.CalculateQParams()})");
        Assert.True(methodMse < minMaxMse / factor, $"{kind} on {shape}: {methodMse:E3} is not below MinMax's {minMaxMse:E3} / {factor}");
        if (kind == ObserverKind.Mse)
        {
            // What it minimises: the error over every value (outliers included) is no larger than MinMax's.
            float[] all = batches.SelectMany(b => b).ToArray();
            Assert.True(Mse(all, method.CalculateQParams()) <= Mse(all, minMax.CalculateQParams()));
        }
    }

    [Theory]
    [InlineData("relu")]
    [InlineData("symmetric")]
    [InlineData("skewed")]
    public void HistogramEqualsADirectBinningOfAllTheDataAtTheFinalWidth(string shape)
    {
        const int Bins = 2048;
        (float[][] batches, _) = WithOutliers(shape, seed: 12);
        var first = (ClippingRangeObserver)SpecFor(ObserverKind.Mse, shape).Create("T.x");
        first.Observe(batches[0], [batches[0].Length]);
        double firstMagnitude = batches[0].Max(v => Math.Abs((double)v));
        Assert.Equal(firstMagnitude / (Bins - 1), first.BinWidth);
        Assert.Equal(Bins * ClippingRangeObserver.GrowthFactor, first.Capacity);

        // The outliers (|x| up to 40, ~10x the first batch's range) fit by adding bins; a last batch at 5000 does not,
        // and the bins double in width until it does.
        var observer = ObserveAll((ClippingRangeObserver)SpecFor(ObserverKind.Mse, shape).Create("T.x"), batches);
        Assert.Equal(first.BinWidth, observer.BinWidth);
        float[] far = [5000f, -3000f, 0f, 1f];
        observer.Observe(far, [far.Length]);
        double expectedWidth = first.BinWidth;
        while (Math.Floor(5000.0 * (1.0 / expectedWidth)) >= observer.Capacity)
        {
            expectedWidth *= 2;
        }

        Assert.True(expectedWidth > first.BinWidth);
        Assert.Equal(expectedWidth, observer.BinWidth);

        float[] all = batches.SelectMany(b => b).Concat(far).ToArray();
        (long[] positive, long[] negative, long zeros) = Histogram(all, observer.BinWidth, observer.Capacity);
        Assert.Equal(positive, observer.PositiveCounts);
        Assert.Equal(negative, observer.NegativeCounts);
        Assert.Equal(zeros, observer.ZeroCount);
        Assert.Equal(all.Length, observer.TotalCount);
        Assert.Equal(all.Min(), observer.Min);
        Assert.Equal(all.Max(), observer.Max);
    }

    [Theory]
    [InlineData("relu", 99.99)]
    [InlineData("symmetric", 99.99)]
    [InlineData("symmetric", 99.9)]
    [InlineData("skewed", 99.99)]
    [InlineData("skewed", 99.0)]
    public void PercentileIsTheUpperEdgeOfTheBinHoldingTheSortedPercentile(string shape, double percentile)
    {
        (float[][] batches, _) = WithOutliers(shape, seed: 13);
        var spec = SpecFor(ObserverKind.Percentile, shape) with { ClipPercentile = percentile };
        var observer = ObserveAll((PercentileObserver)spec.Create("T.x"), batches);
        float[] all = batches.SelectMany(b => b).ToArray();
        double w = observer.BinWidth;

        // At most floor(budget) values may lie beyond the threshold, so the (m+1)-th largest magnitude of a tail must
        // stay inside: the threshold is the upper edge of that value's bin, capped at the tail's extreme.
        long allowed = (long)Math.Floor((100.0 - percentile) / 100.0 * all.Length);
        double Threshold(double[] magnitudes)
        {
            double[] descending = magnitudes.OrderByDescending(m => m).ToArray();
            if (descending.Length <= allowed)
            {
                return 0.0;
            }

            double kept = descending[allowed];
            return Math.Min((Math.Floor(kept * (1.0 / w)) + 1) * w, descending[0]);
        }

        (float min, float max) = observer.SearchClippingRange();
        if (shape == "skewed")
        {
            double upper = Threshold(all.Where(v => v > 0).Select(v => (double)v).ToArray());
            double lower = Threshold(all.Where(v => v < 0).Select(v => -(double)v).ToArray());
            Assert.Equal((float)-lower, min);
            Assert.Equal((float)upper, max);
        }
        else
        {
            float t = (float)Threshold(all.Select(v => Math.Abs((double)v)).ToArray());
            Assert.Equal(MathF.Min(all.Max(), t), max);
            Assert.Equal(MathF.Min(MathF.Max(all.Min(), -t), max), min);
        }

        output.WriteLine($"{shape} p={percentile}: [{min}, {max}] (data [{all.Min()}, {all.Max()}])");
    }

    [Theory]
    [InlineData("relu", false, 256)]
    [InlineData("relu", true, 128)]
    [InlineData("symmetric", false, 128)]
    public void EntropyThresholdEqualsABruteForceKlSearchOverEveryCandidate(string shape, bool reduceRange, int levels)
    {
        (float[][] batches, _) = WithOutliers(shape, seed: 14);
        var observer = ObserveAll((EntropyObserver)SpecFor(ObserverKind.Entropy, shape, reduceRange: reduceRange).Create("T.x"), batches);
        Assert.Equal(levels, observer.MagnitudeLevels);
        float[] all = batches.SelectMany(b => b).ToArray();
        (long[] positive, long[] negative, _) = Histogram(all, observer.BinWidth, observer.Capacity);
        long[] h = positive.Zip(negative, (p, n) => p + n).ToArray();
        int used = Array.FindLastIndex(h, c => c != 0) + 1;

        // The documented candidates: i = L, L + s, ... below n, then n, with s = max(1, n / 2048).
        int stride = Math.Max(1, used / 2048);
        var candidates = Enumerable.Range(0, ((used - levels) / stride) + 1).Select(k => levels + (k * stride)).Where(i => i < used).Append(used);
        int bestBins = -1;
        double bestKl = double.PositiveInfinity;
        foreach (int i in candidates)
        {
            double kl = BruteForceKl(h, i, levels);
            if (kl <= bestKl)
            {
                (bestKl, bestBins) = (kl, i);
            }
        }

        float magnitude = MathF.Max(-all.Min(), all.Max());
        float t = (float)Math.Min(bestBins * observer.BinWidth, magnitude);
        float expectedMax = MathF.Min(all.Max(), t);
        float expectedMin = MathF.Min(MathF.Max(all.Min(), -t), expectedMax);
        (float min, float max) = observer.SearchClippingRange();
        output.WriteLine($"{shape}: KL picks {bestBins} of {used} bins, T = {t} (KL {bestKl:E4}); observer [{min}, {max}]");
        Assert.Equal(expectedMax, max);
        Assert.Equal(expectedMin, min);
        // Same terms, summed in a different order (and normalised differently): equal to rounding, not bit for bit.
        Assert.Equal(bestKl, observer.Divergence(bestBins), 12);
    }

    [Theory]
    [InlineData(false, 256)]
    [InlineData(true, 128)]
    public void TwoSidedEntropyEqualsABruteForceKlSearchOverEveryPairOfEnds(bool reduceRange, int levels)
    {
        // Mixed-sign affine data: both ends are searched. 40 bins and no outliers keep each side within the search's
        // 64-per-side grid, so the brute force over every pair sees exactly its candidates.
        (float[][] batches, _) = WithOutliers("skewed", seed: 17, outliers: 0);
        var observer = ObserveAll((EntropyObserver)ObserverSpec.Entropy(reduceRange: reduceRange, bins: 40).Create("T.x"), batches);
        float[] all = batches.SelectMany(b => b).ToArray();
        (long[] positive, long[] negative, _) = Histogram(all, observer.BinWidth, observer.Capacity);
        int usedNegative = Array.FindLastIndex(negative, c => c != 0) + 1;
        int usedPositive = Array.FindLastIndex(positive, c => c != 0) + 1;
        Assert.InRange(usedNegative, 2, 64);
        Assert.InRange(usedPositive, 2, 64);

        (int A, int B) best = (0, 0);
        double bestKl = double.PositiveInfinity;
        for (int a = usedNegative; a >= 1; a--)
        {
            for (int b = usedPositive; b >= 1; b--)
            {
                // The kept bins from the lower end up, each side's clipped counts added to its outermost kept bin.
                long[] h = negative.Take(a).Reverse().Concat(positive.Take(b)).ToArray();
                var p = h.Select(c => (double)c).ToArray();
                p[0] += negative.Skip(a).Sum();
                p[^1] += positive.Skip(b).Sum();
                double kl = BruteForceKl(h, p, h.Length, levels);
                if (kl < bestKl)
                {
                    (bestKl, best) = (kl, (a, b));
                }
            }
        }

        float expectedMin = (float)-Math.Min(best.A * observer.BinWidth, -(double)all.Min());
        float expectedMax = (float)Math.Min(best.B * observer.BinWidth, all.Max());
        (float min, float max) = observer.SearchClippingRange();
        output.WriteLine($"levels {levels}: KL keeps {best.A} negative and {best.B} positive bins of {usedNegative}/{usedPositive} (KL {bestKl:E4}); observer [{min}, {max}] of [{all.Min()}, {all.Max()}]");
        Assert.Equal(expectedMin, min);
        Assert.Equal(expectedMax, max);

        // Same terms, summed in a different order: equal to rounding, not bit for bit.
        Assert.Equal(bestKl, observer.Divergence(best.A, best.B), 12);
    }

    [Theory]
    [InlineData("relu", 128, 5, false)]
    [InlineData("relu", 128, 5, true)]
    [InlineData("symmetric", 128, 5, false)]
    [InlineData("skewed", 40, 0, false)]
    [InlineData("skewed", 40, 0, true)]
    public void MseRangeEqualsABruteForceSearchOfTheIntegratedError(string shape, int bins, int outliers, bool reduceRange)
    {
        // Small histograms keep the brute force (every candidate × every bin × every one of the 256 levels) fast. The
        // two-sided (skewed) case has no outliers, so each side uses at most 40 bins and the search's 64-per-side grid
        // covers every pair: the brute force over all pairs then sees exactly the search's candidates.
        (float[][] batches, _) = WithOutliers(shape, seed: 15, outliers: outliers);
        ObserverSpec spec = SpecFor(ObserverKind.Mse, shape, bins: bins, reduceRange: reduceRange);
        var observer = ObserveAll((MseObserver)spec.Create("T.x"), batches);
        float[] all = batches.SelectMany(b => b).ToArray();
        (long[] positive, long[] negative, _) = Histogram(all, observer.BinWidth, observer.Capacity);
        double w = observer.BinWidth;
        float dataMin = all.Min(), dataMax = all.Max();
        bool symmetric = spec.Scheme == QScheme.PerTensorSymmetric;
        (int qmin, int qmax) = (spec.DType, reduceRange) switch
        {
            (QuantDType.QUInt8, false) => (0, 255),
            (QuantDType.QUInt8, true) => (0, 127),
            (_, false) => (-128, 127),
            _ => (-64, 63),
        };

        // The error of the quantizer clamped to the quant range (with reduce_range, 0..127: data stays within 7 bits).
        double ErrorOf(float lo, float hi)
        {
            (float scale, int zp) = ExpectedQParams(lo, hi, spec.DType, symmetric, qmin, qmax);
            return BruteForceError(positive, negative, w, scale, zp, qmin, qmax);
        }

        (float Min, float Max) best = (dataMin, dataMax);
        double bestError = double.PositiveInfinity;
        if (shape == "skewed")
        {
            int usedNegative = Array.FindLastIndex(negative, c => c != 0) + 1;
            int usedPositive = Array.FindLastIndex(positive, c => c != 0) + 1;
            for (int a = usedNegative; a >= 1; a--)
            {
                for (int b = usedPositive; b >= 1; b--)
                {
                    float lo = (float)-Math.Min(a * w, -(double)dataMin), hi = (float)Math.Min(b * w, dataMax);
                    double error = ErrorOf(lo, hi);
                    if (error < bestError)
                    {
                        (bestError, best) = (error, (lo, hi));
                    }
                }
            }
        }
        else
        {
            long[] h = positive.Zip(negative, (p, n) => p + n).ToArray();
            int used = Array.FindLastIndex(h, c => c != 0) + 1;
            double magnitude = Math.Max(-(double)dataMin, dataMax);
            for (int i = used; i >= 1; i -= Math.Max(1, used / bins))
            {
                float t = (float)Math.Min(i * w, magnitude);
                float hi = MathF.Min(dataMax, t);
                float lo = MathF.Min(MathF.Max(dataMin, -t), hi);
                double error = ErrorOf(lo, hi);
                if (error < bestError)
                {
                    (bestError, best) = (error, (lo, hi));
                }
            }
        }

        (float min, float max) = observer.SearchClippingRange();
        double chosenError = ErrorOf(min, max);
        output.WriteLine($"{shape}{(reduceRange ? " reduce_range" : string.Empty)}: brute force [{best.Min}, {best.Max}] error {bestError:E6}; observer [{min}, {max}] error {chosenError:E6}");
        if ((min, max) != best)
        {
            // Two candidates can tie up to rounding (the observer integrates with a cancellation-free form of
            // (t³ − f³) / 3, the brute force with plain cubes): then the errors must agree to 1e-9 relative.
            Assert.True(Math.Abs(chosenError - bestError) <= 1e-9 * bestError, $"observer picked [{min}, {max}] (error {chosenError:E9}), brute force [{best.Min}, {best.Max}] (error {bestError:E9})");
        }

        // The same integral in two algebraic forms: equal to rounding (1e-9 relative), not bit for bit.
        Assert.Equal(bestError, observer.ExpectedError(best.Min, best.Max), bestError * 1e-9);
    }

    [Fact]
    public void AllZeroDataGivesTheAllZeroQParams()
    {
        foreach (ObserverKind kind in new[] { ObserverKind.Percentile, ObserverKind.Entropy, ObserverKind.Mse })
        {
            Observer observer = SpecFor(kind, "relu").Create("T.x");
            observer.Observe(new float[100], [100]);
            QParams q = observer.CalculateQParams();
            Assert.Equal(Eps, q.Scale);
            Assert.Equal(0, q.ZeroPoint);
        }
    }

    [Fact]
    public void FinalQParamsAreFromMinMaxOfTheSearchedRange()
    {
        (float[][] batches, _) = WithOutliers("skewed", seed: 16);
        foreach (ObserverKind kind in new[] { ObserverKind.Percentile, ObserverKind.Entropy, ObserverKind.Mse })
        {
            var observer = ObserveAll((ClippingRangeObserver)ObserverSpec.Mse(reduceRange: true).WithKind(kind).Create("T.x"), batches);
            (float min, float max) = observer.SearchClippingRange();
            (float scale, int zeroPoint) = ExpectedQParams(min, max, QuantDType.QUInt8, symmetric: false, 0, 127);
            QParams q = observer.CalculateQParams();
            Assert.Equal(scale, q.Scale);
            Assert.Equal(zeroPoint, q.ZeroPoint);
        }
    }

    /// <summary>KL(P‖Q) for keeping <paramref name="kept"/> bins of a magnitude histogram, the outliers going to the last kept bin.</summary>
    private static double BruteForceKl(long[] h, int kept, int levels)
    {
        var p = new double[kept];
        for (int j = 0; j < h.Length; j++)
        {
            p[Math.Min(j, kept - 1)] += h[j];
        }

        return BruteForceKl(h, p, kept, levels);
    }

    /// <summary>KL(P‖Q) written straight from the TensorRT description: h the kept counts, p the reference with the outliers added.</summary>
    private static double BruteForceKl(long[] h, double[] p, int kept, int levels)
    {
        var q = new double[kept];
        for (int g = 0; g < levels; g++)
        {
            // Group g holds the bins j with floor(j * levels / kept) == g, i.e. ceil(g * kept / levels) <= j < ceil((g + 1) * kept / levels).
            int start = (int)Math.Ceiling((double)g * kept / levels);
            int end = (int)Math.Ceiling((double)(g + 1) * kept / levels);
            double mass = 0;
            int nonEmpty = 0;
            for (int j = start; j < end; j++)
            {
                mass += h[j];
                nonEmpty += p[j] > 0 ? 1 : 0;
            }

            // Spread over the bins non-empty in P (MXNet/TVM), h's mass only.
            for (int j = start; j < end; j++)
            {
                q[j] = p[j] > 0 ? mass / nonEmpty : 0.0;
            }
        }

        double sumP = p.Sum(), sumQ = q.Sum();
        double kl = 0;
        for (int j = 0; j < kept; j++)
        {
            if (p[j] == 0)
            {
                continue;
            }

            if (q[j] == 0)
            {
                return double.PositiveInfinity;
            }

            kl += p[j] / sumP * Math.Log((p[j] / sumP) / (q[j] / sumQ));
        }

        return kl;
    }

    /// <summary>Σ over bins of count/w · ∫ (x − Q(x))² dx, each bin intersected with every level's rounding cell.</summary>
    private static double BruteForceError(long[] positive, long[] negative, double w, float scale, int zp, int qmin, int qmax)
    {
        double s = scale, total = 0;
        double Bin(double a, double b)
        {
            double sum = 0;
            for (int k = qmin; k <= qmax; k++)
            {
                double cellLow = k == qmin ? double.NegativeInfinity : (k - zp - 0.5) * s;
                double cellHigh = k == qmax ? double.PositiveInfinity : (k - zp + 0.5) * s;
                double from = Math.Max(a, cellLow), to = Math.Min(b, cellHigh);
                if (to > from)
                {
                    double y = (k - zp) * s;
                    sum += (Math.Pow(to - y, 3) - Math.Pow(from - y, 3)) / 3;
                }
            }

            return sum;
        }

        for (int j = 0; j < positive.Length; j++)
        {
            if (positive[j] != 0)
            {
                total += positive[j] / w * Bin(j * w, (j + 1) * w);
            }

            if (negative[j] != 0)
            {
                total += negative[j] / w * Bin(-(j + 1) * w, -j * w);
            }
        }

        return total;
    }
}

internal static class ObserverSpecTestExtensions
{
    public static ObserverSpec WithKind(this ObserverSpec spec, ObserverKind kind) => spec with { Kind = kind };
}
