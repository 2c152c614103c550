using System;
using System.Linq;
using QuantGen.Modules;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.ContractReference;
using static TorchSharp.torch;

namespace QuantGen.Tests.Modules;

public class BatchNormFoldingTests
{
    private readonly ITestOutputHelper _output;

    public BatchNormFoldingTests(ITestOutputHelper output) => _output = output;

    /// <summary>Float parameters of a conv + BatchNorm pair, all non-trivial.</summary>
    private sealed record Parameters(float[] Weight, float[]? Bias, float[] Mean, float[] Variance, float[] Gamma, float[] Beta);

    private static Parameters MakeParameters(int seed, int outChannels, int weightCount, bool convBias)
    {
        var random = new Random(seed);
        return new Parameters(
            RandomFloats(random, weightCount, -0.5f, 0.5f),
            convBias ? RandomFloats(random, outChannels, -0.3f, 0.3f) : null,
            RandomFloats(random, outChannels, -1f, 1f),
            RandomFloats(random, outChannels, 0.05f, 3f),
            RandomFloats(random, outChannels, 0.5f, 2f),
            RandomFloats(random, outChannels, -1f, 1f));
    }

    /// <summary>Builds TorchSharp modules holding <paramref name="p"/> (written with no_grad + copy_), in eval mode.</summary>
    private static (TorchSharp.Modules.Conv2d Conv, TorchSharp.Modules.BatchNorm2d Bn) MakeModules(Parameters p, int inChannels, int outChannels, int kernel, int padding, int groups, double eps)
    {
        var conv = nn.Conv2d(inChannels, outChannels, kernel, padding: padding, groups: groups, bias: p.Bias is not null);
        var bn = nn.BatchNorm2d(outChannels, eps: eps);
        using (torch.no_grad())
        {
            conv.weight.copy_(torch.tensor(p.Weight, conv.weight.shape));
            conv.bias?.copy_(torch.tensor(p.Bias!, [outChannels]));
            bn.running_mean!.copy_(torch.tensor(p.Mean, [outChannels]));
            bn.running_var!.copy_(torch.tensor(p.Variance, [outChannels]));
            bn.weight!.copy_(torch.tensor(p.Gamma, [outChannels]));
            bn.bias!.copy_(torch.tensor(p.Beta, [outChannels]));
        }

        conv.eval();
        bn.eval();
        return (conv, bn);
    }

    public static TheoryData<bool, int, double> FoldCases() => new()
    {
        { true, 1, 1e-5 },
        { false, 1, 1e-5 },   // conv without bias: b = 0
        { true, 2, 1e-3 },    // groups and a non-default eps
    };

    [Theory]
    [MemberData(nameof(FoldCases))]
    public void FoldedParametersEqualTheContractFormulaExactly(bool convBias, int groups, double eps)
    {
        const int inChannels = 4, outChannels = 6, kernel = 3;
        Parameters p = MakeParameters(seed: 11 + groups, outChannels, outChannels * (inChannels / groups) * kernel * kernel, convBias);
        (var conv, var bn) = MakeModules(p, inChannels, outChannels, kernel, padding: 1, groups, eps);
        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", conv, bn, relu: false);

        // The contract's formula, float32: w' = w * (gamma * rsqrt(var + eps)),
        // b' = (b - mean) * rsqrt(var + eps) * gamma + beta, rsqrt(x) = 1f / sqrt(x), b = 0 without a bias.
        float bnEps = (float)eps;
        int perChannel = p.Weight.Length / outChannels;
        var expectedWeight = new float[p.Weight.Length];
        var expectedBias = new float[outChannels];
        for (int c = 0; c < outChannels; c++)
        {
            float rsqrt = 1.0f / MathF.Sqrt(p.Variance[c] + bnEps);
            float factor = p.Gamma[c] * rsqrt;
            for (int i = 0; i < perChannel; i++)
            {
                expectedWeight[(c * perChannel) + i] = p.Weight[(c * perChannel) + i] * factor;
            }

            float centered = (p.Bias?[c] ?? 0f) - p.Mean[c];
            float normalized = centered * rsqrt;
            float scaled = normalized * p.Gamma[c];
            expectedBias[c] = scaled + p.Beta[c];
        }

        Assert.Equal(expectedWeight, fused.Weight);
        Assert.Equal(expectedBias, fused.Bias);
        Assert.Equal(new Conv2dOptions(inChannels, outChannels, kernel, kernel, PadHeight: 1, PadWidth: 1, Groups: groups), fused.Options);
    }

    [Theory]
    [MemberData(nameof(FoldCases))]
    public void FoldedForwardMatchesConvThenBatchNormInTorchSharp(bool convBias, int groups, double eps)
    {
        const int inChannels = 4, outChannels = 6, kernel = 3;
        Parameters p = MakeParameters(seed: 23 + groups, outChannels, outChannels * (inChannels / groups) * kernel * kernel, convBias);
        (var conv, var bn) = MakeModules(p, inChannels, outChannels, kernel, padding: 1, groups, eps);
        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", conv, bn, relu: true);
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        Tensor x = torch.randn(2, inChannels, 7, 6);
        float[] expected = nn.functional.relu(bn.forward(conv.forward(x))).data<float>().ToArray();
        float[] actual = fused.forward(x).data<float>().ToArray();

        // Not bit-exact: PyTorch computes ((sum(x*w) + b - mean) * rsqrt) * gamma + beta with its own
        // rsqrt and summation order, the folded conv sum(x*(w*f)) + b'. Reassociating float32 ops moves
        // each result by a few ulps of the largest partial sum; outputs here are O(1..10) with 18-term
        // sums, so 2e-5 absolute plus 2e-6 relative is ~20x the worst error expected and far below any
        // real folding mistake (a wrong eps or channel moves results by 1e-3 or more).
        double worst = expected.Zip(actual).Max(pair => Math.Abs(pair.First - pair.Second) / (2e-5 + (2e-6 * Math.Abs(pair.First))));
        _output.WriteLine($"worst error / tolerance = {worst:F4}");
        Assert.True(worst <= 1.0, $"folded forward differs from conv->bn by {worst:F2}x the tolerance");
    }

    [Fact]
    public void BatchNormWithTheWrongChannelCountIsRejected()
    {
        var conv = nn.Conv2d(3, 4, 3);
        var bn = nn.BatchNorm2d(8);
        var error = Assert.Throws<ArgumentException>(() => FusedConv2d.Create("M", "conv1", conv, bn, relu: false));
        Assert.Contains("M.conv1", error.Message);
        Assert.Contains("has 8 features, expected 4", error.Message);
    }

    [Fact]
    public void BatchNormWithoutRunningStatisticsIsRejected()
    {
        var conv = nn.Conv2d(3, 4, 3);
        var bn = nn.BatchNorm2d(4, track_running_stats: false);
        var error = Assert.Throws<NotSupportedException>(() => FusedConv2d.Create("M", "conv1", conv, bn, relu: false));
        Assert.Contains("M.conv1", error.Message);
        Assert.Contains("track_running_stats", error.Message);
    }

    [Fact]
    public void NonAffineBatchNormFoldsWithUnitGammaAndZeroBeta()
    {
        var conv = nn.Conv2d(1, 2, 1, bias: false);
        var bn = nn.BatchNorm2d(2, eps: 0.0, affine: false);
        using (torch.no_grad())
        {
            conv.weight.copy_(torch.tensor(new float[] { 3f, -2f }, [2, 1, 1, 1]));
            bn.running_mean!.copy_(torch.tensor(new float[] { 1f, -0.5f }, [2]));
            bn.running_var!.copy_(torch.tensor(new float[] { 4f, 0.25f }, [2]));
        }

        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", conv, bn, relu: false);

        // Hand-derived: rsqrt(4) = 0.5, rsqrt(0.25) = 2: w' = [1.5, -4], b' = [(0 - 1) * 0.5, (0 + 0.5) * 2] = [-0.5, 1].
        Assert.Equal(new[] { 1.5f, -4f }, fused.Weight);
        Assert.Equal(new[] { -0.5f, 1f }, fused.Bias);
    }
}
