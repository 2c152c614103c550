using System;
using System.Globalization;
using System.Linq;
using QuantGen.Observers;

namespace QuantGen.Tests.Observers;

public class HistogramObserverTests
{
    private static HistogramObserver Create(int bins = 2048, bool reduceRange = false) =>
        (HistogramObserver)ObserverSpec.Histogram(reduceRange: reduceRange, bins: bins).Create("M.quant");

    [Fact]
    public void FourDistinctValuesByHand()
    {
        var observer = Create(bins: 4);
        observer.ObserveFlat([0f, 1f, 2f, 3f]);

        // histc over [0, 3] with 4 bins: pos = (int)((x - 0) * 4 / 3) = 0, 1 (1.33), 2 (2.67), 4 -> 3 (the last
        // bin keeps its right edge), so the histogram is [1, 1, 1, 1].
        Assert.Equal([1f, 1f, 1f, 1f], observer.CopyHistogram());

        // The search, step by step (total = 4, cSum = [1, 2, 3, 4], bin width 0.75, density 4/3):
        // round 1: next_alpha = 1e-5 -> l stays 0 (cSum[0] = 1 >= 4e-5); next_beta = 0.99999 -> r = 2
        //   (cSum[3] = 4 > 3.99996, cSum[2] = 3 is not). l - start = 0 is not > end - r = 1, so the end moves:
        //   candidate bins [0, 2]. Its error is about 0.19 (bin 3's mass, clamped onto the last level at 2.25,
        //   costs (4/3) * ((0.75 + w/2)^3 - (w/2)^3) / 3 with w = 2.25/256); norm_min is still +inf, so it is
        //   taken. (The search never scores the full range: its first move is always accepted.)
        // rounds 2..~25000: r stays 2 until next_beta * 4 drops below cSum[2] = 3; nothing moves ("continue").
        // then r = 1: candidate [0, 1], error about 1.51 (bins 2 and 3 both clamped onto 1.5) > 0.19 -> break.
        // new_min = 0 + 0.75 * 0 = 0, new_max = 0 + 0.75 * (2 + 1) = 2.25.
        Assert.Equal((0f, 2.25f), observer.SearchClippingRange());

        QParams q = observer.CalculateQParams();
        Assert.Equal(2.25f / 255f, q.Scale);
        Assert.Equal(0, q.ZeroPoint);
    }

    [Fact]
    public void MergingIntoAWiderRangeRebinsTheOldHistogramByHand()
    {
        var observer = Create(bins: 4);
        observer.ObserveFlat([0f, 0.6f, 1f]);

        // [0, 1], 4 bins: pos(0.6) = (int)(0.6 * 4 / 1) = 2, pos(1) = 4 -> 3.
        Assert.Equal([1f, 0f, 1f, 1f], observer.CopyHistogram());

        observer.ObserveFlat([-0.5f]);

        // New range [-0.5, 1]; the batch alone: histc([-0.5], 4, -0.5, 1) = [1, 0, 0, 0].
        // The old histogram, up-sampled 16x: 64 parts of 1/16 with mid-points (i + 0.5) / 64, looked up among
        // the new edges linspace(-0.5, 1, 5) = [-0.5, -0.125, 0.25, 0.625, 1] (all exact in float32):
        //   old bin 0 (parts 0..15, mid-points 0.008..0.242)  -> new bin 1: 1
        //   old bin 2 (parts 32..47, mid-points 0.508..0.742) -> parts 32..39 (< 0.625) to new bin 2: 0.5,
        //                                                        parts 40..47 to new bin 3: 0.5
        //   old bin 3 (parts 48..63, mid-points 0.758..0.992) -> new bin 3: 1
        // Sum: [1, 0, 0, 0] + [0, 1, 0.5, 1.5].
        Assert.Equal([1f, 1f, 0.5f, 1.5f], observer.CopyHistogram());
        Assert.Equal(-0.5f, observer.Min);
        Assert.Equal(1f, observer.Max);
    }

    [Fact]
    public void AllSameValuesThenAWiderBatch()
    {
        var observer = Create(bins: 8);
        observer.ObserveFlat([1f, 1f, 1f, 1f]);

        // histc with min == max == 1 widens to [0, 2]: pos = (1 - 0) * 8 / 2 = 4. The observer's own range stays [1, 1].
        Assert.Equal([0f, 0f, 0f, 0f, 4f, 0f, 0f, 0f], observer.CopyHistogram());
        Assert.Equal((1f, 1f), (observer.Min, observer.Max));

        observer.ObserveFlat([0f, 2f]);

        // _combine_histograms' one-value branch: histc([1], 8, 0, 2) * sum(old) puts 4 in bin 4; the batch adds
        // 0 -> bin 0 and 2 -> bin 8 -> 7.
        Assert.Equal([1f, 0f, 0f, 0f, 4f, 0f, 0f, 1f], observer.CopyHistogram());
        Assert.Equal((0f, 2f), (observer.Min, observer.Max));
    }

    [Theory]
    [InlineData(new[] { 3f, 3f, 3f }, 3f / 255f, 0)]
    [InlineData(new[] { -2f }, 2f / 255f, 255)]
    [InlineData(new[] { 0f, 0f }, 1.1920929e-07f, 0)]
    public void OneDistinctValueKeepsThatValueAsTheRange(float[] values, float scale, int zeroPoint)
    {
        // min == max: bin width 0, every candidate's error is 0 (dst_bin_width == 0), and new_min = new_max = v;
        // the qparams then include zero as always.
        var observer = Create();
        observer.ObserveFlat(values);

        Assert.Equal((values[0], values[0]), observer.SearchClippingRange());
        QParams q = observer.CalculateQParams();
        Assert.Equal(scale, q.Scale);
        Assert.Equal(zeroPoint, q.ZeroPoint);
    }

    [Fact]
    public void ClippingRangeLiesWithinTheObservedRange()
    {
        var observer = Create();
        observer.ObserveFlat(ObserverTestData.Normal(seed: 11, count: 20_000, mean: 0.5f, std: 2f));
        observer.ObserveFlat(ObserverTestData.Normal(seed: 12, count: 5_000, mean: -1f, std: 3f));

        (float min, float max) = observer.SearchClippingRange();
        Assert.InRange(min, observer.Min, max);
        Assert.InRange(max, min, observer.Max);
        Assert.True(max - min < observer.Max - observer.Min, "normal tails are clipped");
    }

    [Fact]
    public void OneHugeOutlierIsClippedAway()
    {
        // 200,000 normal values and one at 1000. The search moves in quantile steps of 1e-5 of the mass (2 values
        // here), so its very first step on the right already passes the lone outlier and every empty bin below it,
        // landing in the normal tail; and the first move is always taken (see FourDistinctValuesByHand).
        float[] data = ObserverTestData.Normal(seed: 21, count: 200_001);
        data[1234] = 1000f;
        var histogram = Create();
        histogram.ObserveFlat(data);
        var minMax = ObserverSpec.MinMax().Create("M.quant");
        minMax.ObserveFlat(data);

        (_, float clippedMax) = histogram.SearchClippingRange();
        float histogramScale = histogram.CalculateQParams().Scale;
        float minMaxScale = minMax.CalculateQParams().Scale;

        // MinMax stretches 256 levels over [~-4.5, 1000]; the search ends near the normal data's own extent.
        Assert.True(clippedMax < 10f, $"clipped max {clippedMax}");
        Assert.True(histogramScale < minMaxScale / 50f, $"histogram scale {histogramScale} vs min/max scale {minMaxScale}");
    }

    [Fact]
    public void AnOutlierAmongFewValuesIsKeptBecauseClippingItCostsMoreL2Error()
    {
        // With 10,000 values the outlier is more than one 1e-5 step of the mass: the first move only drops the
        // empty top bin, and the next candidate (clipping the outlier onto ~4) costs ~(1000 - 4)^2 of squared
        // error, more than 256 coarse levels cost the normal data (~10^4 * (1004/256)^2 / 12): PyTorch keeps it.
        float[] data = ObserverTestData.Normal(seed: 22, count: 10_000);
        data[1234] = 1000f;
        var histogram = Create();
        histogram.ObserveFlat(data);

        (_, float clippedMax) = histogram.SearchClippingRange();
        Assert.True(clippedMax > 990f, $"clipped max {clippedMax}");
    }

    [Fact]
    public void UniformDataKeepsNearlyTheFullRange()
    {
        var observer = Create();
        observer.ObserveFlat(ObserverTestData.Uniform(seed: 31, count: 100_000, low: 0f, high: 1f));

        // The search drops whole bins (1/2048 of the range) from an end only while that lowers the L2 error; with
        // no tails to cut it stops after a few: allow 1% of the range at each end.
        (float min, float max) = observer.SearchClippingRange();
        Assert.InRange(min, observer.Min, observer.Min + 0.01f);
        Assert.InRange(max, observer.Max - 0.01f, observer.Max);
    }

    [Fact]
    public void ABatchInsideTheRangeMergesExactlyLikeTheConcatenation()
    {
        // PyTorch's forward: when the new batch does not widen [min, max], it is binned with the same edges and
        // the counts simply add, so the result is bit-identical to observing both batches at once (counts are
        // integers in float32, exact below 2^24).
        float[] first = ObserverTestData.Normal(seed: 41, count: 5_000, std: 2f);
        float[] second = ObserverTestData.Normal(seed: 42, count: 3_000, std: 0.7f);
        float lo = first.Min();
        float hi = first.Max();
        second = second.Select(v => Math.Clamp(v, lo, hi)).ToArray();

        var merged = Create();
        merged.ObserveFlat(first);
        merged.ObserveFlat(second);
        var concatenated = Create();
        concatenated.ObserveFlat([.. first, .. second]);

        Assert.Equal(concatenated.CopyHistogram(), merged.CopyHistogram());
        Assert.Equal(concatenated.Min, merged.Min);
        Assert.Equal(concatenated.Max, merged.Max);
        QParams a = merged.CalculateQParams();
        QParams b = concatenated.CalculateQParams();
        Assert.Equal(b.Scale, a.Scale);
        Assert.Equal(b.ZeroPoint, a.ZeroPoint);
    }

    [Fact]
    public void ABatchWideningTheRangeKeepsEveryCount()
    {
        // A wider batch re-bins the old histogram approximately (mass moves to the new bin of each 1/16 part's
        // mid-point), so it is not the concatenation's histogram; but no mass is lost. The parts are float32
        // sums of h/16, so the total is compared with a tolerance of 1e-3 on 8000 (float32 rounding only).
        float[] first = ObserverTestData.Normal(seed: 51, count: 5_000);
        float[] second = ObserverTestData.Normal(seed: 52, count: 3_000, mean: 3f, std: 2f);
        var observer = Create();
        observer.ObserveFlat(first);
        observer.ObserveFlat(second);

        double total = observer.CopyHistogram().Sum(v => (double)v);
        Assert.Equal(8_000.0, total, 1e-3);
        Assert.Equal(Math.Min(first.Min(), second.Min()), observer.Min);
        Assert.Equal(Math.Max(first.Max(), second.Max()), observer.Max);
    }

    [Fact]
    public void DestinationBinsIs256WhateverTheQuantRange()
    {
        // PyTorch: dst_nbins = 2 ** torch.iinfo(dtype).bits, not quant_max - quant_min + 1.
        Assert.Equal(256, Create(reduceRange: true).DestinationBins);
        var custom = (HistogramObserver)ObserverSpec.Histogram(QuantDType.QInt8, quantMin: -8, quantMax: 7).Create("M.quant");
        Assert.Equal(256, custom.DestinationBins);
    }

    [Fact]
    public void ReduceRangeOnlyChangesTheQParamsNotTheSearch()
    {
        float[] data = ObserverTestData.Normal(seed: 61, count: 4_000, mean: 2f);
        var full = Create();
        var reduced = Create(reduceRange: true);
        full.ObserveFlat(data);
        reduced.ObserveFlat(data);

        (float min, float max) = full.SearchClippingRange();
        Assert.Equal((min, max), reduced.SearchClippingRange());
        float minNeg = Math.Min(min, 0f);
        float maxPos = Math.Max(max, 0f);
        Assert.Equal((maxPos - minNeg) / 127f, reduced.CalculateQParams().Scale);
        Assert.Equal((maxPos - minNeg) / 255f, full.CalculateQParams().Scale);
    }

    [Fact]
    public void Seed003InputScale()
    {
        // Seed 003 calibrates HistogramObserver(quint8, per_tensor_affine, reduce_range=True) on
        // torch.randint(0, 255, (1, 4, 16)) / 255 (one batch, 64 values; randint's high is exclusive, so the bytes
        // are 0..254 and the data spans at most [0, 254/255]) and PyTorch printed the input scale as
        // tensor([0.0078]), zero point 0. Its seed is unknown, so the bytes here come from System.Random(3).
        // With reduce_range quant_max is 127: scale = (clipped max) / 127. Keeping everything up to 254/255 gives
        // exactly 2/255 = 0.0078431 (prints 0.0078); 1/127 = 0.0078740 would print 0.0079, and is out of reach
        // because the data never reaches 1.0. A printed 0.0078 means scale in [0.00775, 0.00785), i.e. a clipped max
        // in [0.984, 0.997): the search may drop at most about 1.5% of [0, 1] at the top.
        var random = new Random(3);
        float[] data = new float[64];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (float)random.Next(0, 255) / 255f; // uint8 tensor / 255: float32 true division
        }

        var observer = Create(reduceRange: true);
        observer.Observe(data, [1, 1, 4, 16]);
        QParams q = observer.CalculateQParams();

        Assert.Equal(0, q.ZeroPoint);
        Assert.Equal("0.0078", q.Scale.ToString("F4", CultureInfo.InvariantCulture));
        (float clippedMin, float clippedMax) = observer.SearchClippingRange();
        Assert.Equal((Math.Max(clippedMax, 0f) - Math.Min(clippedMin, 0f)) / 127f, q.Scale);
        Assert.InRange(clippedMax, 0.984f, 254f / 255f);
    }
}
