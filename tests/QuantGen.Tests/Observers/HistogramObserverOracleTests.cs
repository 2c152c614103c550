using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Observers;
using static TorchSharp.torch;

namespace QuantGen.Tests.Observers;

/// <summary>
/// <see cref="HistogramObserver"/> against <see cref="TorchHistogramObserverOracle"/> (PyTorch's algorithm
/// on libtorch's own float32 operators).
/// </summary>
public class HistogramObserverOracleTests
{
    public static TheoryData<string> Scenarios => [.. ScenarioBatches.Keys];

    private static readonly Dictionary<string, Func<float[][]>> ScenarioBatches = new()
    {
        ["one normal batch"] = () => [ObserverTestData.Normal(1, 10_000)],
        ["shifted normal, small"] = () => [ObserverTestData.Normal(2, 300, mean: 3f, std: 0.5f)],
        ["outlier"] = () => [WithOutlier(ObserverTestData.Normal(3, 5_000), 250f)],
        ["relu-like"] = () => [ObserverTestData.Normal(4, 8_000).Select(v => Math.Max(v, 0f)).ToArray()],
        ["second batch inside"] = () => [ObserverTestData.Normal(5, 4_000, std: 3f), ObserverTestData.Normal(6, 4_000, std: 0.5f)],
        ["growing ranges"] = () =>
        [
            ObserverTestData.Normal(7, 2_000, std: 0.5f),
            ObserverTestData.Normal(8, 2_000, mean: 1f, std: 1f),
            ObserverTestData.Normal(9, 2_000, mean: -1f, std: 2f),
            ObserverTestData.Uniform(10, 2_000, -0.3f, 9.5f),
        ],
        ["one value, then wider"] = () => [[1.5f, 1.5f, 1.5f], ObserverTestData.Normal(11, 1_000)],
        ["single element"] = () => [[0.75f]],
        ["uniform bytes / 255"] = () => [Enumerable.Range(0, 64).Select(i => (float)((i * 37) % 255) / 255f).ToArray()],
    };

    public static TheoryData<int> RandomScenarioSeeds => [.. Enumerable.Range(100, 16)];

    [Theory]
    [MemberData(nameof(RandomScenarioSeeds))]
    public void MatchesPyTorchsAlgorithmOnRandomCalibrations(int seed)
    {
        // 1..4 batches of 1..20000 values: normal, uniform or ReLU'd normal, with random centres and spreads, so
        // ranges widen, shrink inside, or repeat in every combination.
        var random = new Random(seed);
        int batchCount = random.Next(1, 5);
        var observer = (HistogramObserver)ObserverSpec.Histogram().Create("M.quant");
        using var oracle = new TorchHistogramObserverOracle(2048);
        for (int b = 0; b < batchCount; b++)
        {
            int count = random.Next(1, 20_000);
            float[] batch = random.Next(3) switch
            {
                0 => ObserverTestData.Normal((seed * 10) + b, count, (float)((random.NextDouble() * 4) - 2), (float)((random.NextDouble() * 3) + 0.01)),
                1 => ObserverTestData.Uniform((seed * 10) + b, count, (float)(random.NextDouble() * -3), (float)(random.NextDouble() * 5)),
                _ => ObserverTestData.Normal((seed * 10) + b, count).Select(v => MathF.Max(v * 7f, 0f)).ToArray(),
            };
            observer.ObserveFlat(batch);
            oracle.Forward(batch);
        }

        Assert.Equal(oracle.Histogram, observer.CopyHistogram());
        Assert.Equal(oracle.NonLinearParamSearch(), observer.SearchClippingRange());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(13)]
    [InlineData(100)]
    public void MatchesPyTorchsAlgorithmForOtherBinCounts(int bins)
    {
        // Fewer than 8 bins takes libtorch's one-wide summation path; 8 and up the 8-lane one, with a tail.
        var observer = (HistogramObserver)ObserverSpec.Histogram(bins: bins).Create("M.quant");
        using var oracle = new TorchHistogramObserverOracle(bins);
        foreach (float[] batch in new[] { ObserverTestData.Normal(bins, 500), ObserverTestData.Normal(bins + 1000, 300, 1f, 2f) })
        {
            observer.ObserveFlat(batch);
            oracle.Forward(batch);
        }

        Assert.Equal(oracle.Histogram, observer.CopyHistogram());
        for (int start = 0; start < bins; start += Math.Max(1, bins / 5))
        {
            for (int end = start; end < bins; end += Math.Max(1, bins / 5))
            {
                Assert.Equal(oracle.ComputeQuantizationError(start, end), observer.ComputeQuantizationError(start, end));
            }
        }

        Assert.Equal(oracle.NonLinearParamSearch(), observer.SearchClippingRange());
    }

    private static float[] WithOutlier(float[] values, float outlier)
    {
        values[17] = outlier;
        return values;
    }

    [Fact]
    public void AFloat32TensorComparedWithAPythonFloatComparesInFloat32()
    {
        // The search's `cSum[l] < next_alpha * total`: 0.1f > 0.1 holds in double (0.100000001 > 0.1) but not
        // in float32 (both round to 0.1f). libtorch says false: the scalar is converted to float32.
        using Tensor value = tensor(0.1f);
        using Tensor greater = value.gt(0.1);
        Assert.False(greater.item<bool>());
        Assert.True((double)0.1f > 0.1);
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void MatchesPyTorchsAlgorithmOnLibtorch(string scenario)
    {
        float[][] batches = ScenarioBatches[scenario]();
        const int Bins = 2048;
        var observer = (HistogramObserver)ObserverSpec.Histogram(reduceRange: true, bins: Bins).Create("M.quant");
        using var oracle = new TorchHistogramObserverOracle(Bins);
        foreach (float[] batch in batches)
        {
            observer.ObserveFlat(batch);
            oracle.Forward(batch);
        }

        Assert.Equal(oracle.Min, observer.Min);
        Assert.Equal(oracle.Max, observer.Max);
        Assert.Equal(oracle.Histogram, observer.CopyHistogram());

        // The search's score for a spread of candidate ranges, bit for bit (libtorch's float32 sum order included).
        var candidates = new Random(scenario.Length);
        for (int t = 0; t < 20; t++)
        {
            int start = candidates.Next(0, Bins / 4);
            int end = candidates.Next((3 * Bins) / 4, Bins);
            Assert.Equal(oracle.ComputeQuantizationError(start, end), observer.ComputeQuantizationError(start, end));
        }

        (float oracleMin, float oracleMax) = oracle.NonLinearParamSearch();
        Assert.Equal((oracleMin, oracleMax), observer.SearchClippingRange());

        // qparams from the oracle's range by the contract's affine formula (reduce_range: 0..127).
        float minNeg = Math.Min(oracleMin, 0f);
        float maxPos = Math.Max(oracleMax, 0f);
        float scale = Math.Max((maxPos - minNeg) / 127f, 1.1920929e-07f);
        int zeroPoint = Math.Clamp(0 - (int)MathF.Round(minNeg / scale, MidpointRounding.ToEven), 0, 127);
        QParams q = observer.CalculateQParams();
        Assert.Equal(scale, q.Scale);
        Assert.Equal(zeroPoint, q.ZeroPoint);
    }
}
