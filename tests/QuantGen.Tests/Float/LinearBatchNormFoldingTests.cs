using System;
using System.Linq;
using QuantGen.Modules;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Reference.QdqMath;
using static TorchSharp.torch;

namespace QuantGen.Tests.Float;

/// <summary>linear + BatchNorm1d folding: PyTorch's <c>fuse_linear_bn_weights</c> in float32.</summary>
public class LinearBatchNormFoldingTests
{
    private readonly ITestOutputHelper _output;

    public LinearBatchNormFoldingTests(ITestOutputHelper output) => _output = output;

    private sealed record Parameters(float[] Weight, float[]? Bias, float[] Mean, float[] Variance, float[] Gamma, float[] Beta);

    private static Parameters MakeParameters(int seed, int inFeatures, int outFeatures, int bnFeatures, bool linearBias)
    {
        var random = new Random(seed);
        return new Parameters(
            Uniform(random, outFeatures * inFeatures, -0.5f, 0.5f),
            linearBias ? Uniform(random, outFeatures, -0.3f, 0.3f) : null,
            Uniform(random, bnFeatures, -1f, 1f),
            Uniform(random, bnFeatures, 0.05f, 3f),
            Uniform(random, bnFeatures, 0.5f, 2f),
            Uniform(random, bnFeatures, -1f, 1f));
    }

    private static (TorchSharp.Modules.Linear Linear, TorchSharp.Modules.BatchNorm1d Bn) MakeModules(Parameters p, int inFeatures, int outFeatures, double eps)
    {
        var linear = nn.Linear(inFeatures, outFeatures, hasBias: p.Bias is not null);
        var bn = nn.BatchNorm1d(p.Mean.Length, eps: eps);
        using (torch.no_grad())
        {
            linear.weight.copy_(torch.tensor(p.Weight, [outFeatures, inFeatures]));
            linear.bias?.copy_(torch.tensor(p.Bias!, [outFeatures]));
            bn.running_mean!.copy_(torch.tensor(p.Mean, [p.Mean.Length]));
            bn.running_var!.copy_(torch.tensor(p.Variance, [p.Mean.Length]));
            bn.weight!.copy_(torch.tensor(p.Gamma, [p.Mean.Length]));
            bn.bias!.copy_(torch.tensor(p.Beta, [p.Mean.Length]));
        }

        linear.eval();
        bn.eval();
        return (linear, bn);
    }

    public static TheoryData<bool, int, double> FoldCases() => new()
    {
        { true, 6, 1e-5 },
        { false, 6, 1e-5 },   // linear without bias: b = 0
        { true, 6, 1e-3 },    // a non-default eps
        { true, 1, 1e-5 },    // one-feature BatchNorm1d, broadcast over every output (PyTorch allows it)
    };

    [Theory]
    [MemberData(nameof(FoldCases))]
    public void FoldedParametersEqualPyTorchsFormulaExactly(bool linearBias, int bnFeatures, double eps)
    {
        const int inFeatures = 5, outFeatures = 6;
        Parameters p = MakeParameters(seed: 31 + bnFeatures, inFeatures, outFeatures, bnFeatures, linearBias);
        (var linear, var bn) = MakeModules(p, inFeatures, outFeatures, eps);
        using FusedLinear fused = FusedLinear.Create("M", "fc", linear, bn, relu: false);

        // fuse_linear_bn_weights, float32: bn_scale = bn_w * rsqrt(bn_rv + bn_eps); fused_w = w * bn_scale[:, None];
        // fused_b = (b - bn_rm) * bn_scale + bn_b, rsqrt(x) = 1f / sqrt(x), b = 0 without a bias.
        float bnEps = (float)eps;
        var expectedWeight = new float[p.Weight.Length];
        var expectedBias = new float[outFeatures];
        for (int o = 0; o < outFeatures; o++)
        {
            int c = bnFeatures == 1 ? 0 : o;
            float rsqrt = 1.0f / MathF.Sqrt(p.Variance[c] + bnEps);
            float bnScale = p.Gamma[c] * rsqrt;
            for (int i = 0; i < inFeatures; i++)
            {
                expectedWeight[(o * inFeatures) + i] = p.Weight[(o * inFeatures) + i] * bnScale;
            }

            float centered = (p.Bias?[o] ?? 0f) - p.Mean[c];
            float scaled = centered * bnScale;
            expectedBias[o] = scaled + p.Beta[c];
        }

        Assert.Equal(expectedWeight, fused.Weight);
        Assert.Equal(expectedBias, fused.Bias);
        Assert.True(fused.FoldedBatchNorm);
    }

    [Fact]
    public void TheBiasUsesTheCombinedFactorNotTheConvFoldsOrder()
    {
        // Guards the parenthesisation: search a seeded set of parameters for one where PyTorch's linear fold
        // (b - mean) * (gamma * r) and the conv fold ((b - mean) * r) * gamma differ in float32, and check the
        // linear takes the former there.
        var random = new Random(5);
        for (int attempt = 0; attempt < 1000; attempt++)
        {
            Parameters p = MakeParameters(random.Next(), 2, 1, 1, linearBias: true);
            float r = 1.0f / MathF.Sqrt(p.Variance[0] + 1e-5f);
            float linearOrder = ((p.Bias![0] - p.Mean[0]) * (p.Gamma[0] * r)) + p.Beta[0];
            float convOrder = (((p.Bias[0] - p.Mean[0]) * r) * p.Gamma[0]) + p.Beta[0];
            if (linearOrder == convOrder)
            {
                continue;
            }

            (var linear, var bn) = MakeModules(p, 2, 1, 1e-5);
            using FusedLinear fused = FusedLinear.Create("M", "fc", linear, bn, relu: false);
            Assert.Equal(linearOrder, fused.Bias![0]);
            return;
        }

        Assert.Fail("no parameters found where the two orders differ");
    }

    [Theory]
    [InlineData(true, 6)]
    [InlineData(false, 1)]
    public void FoldedForwardMatchesLinearThenBatchNorm1dInTorchSharp(bool linearBias, int bnFeatures)
    {
        const int inFeatures = 5, outFeatures = 6;
        Parameters p = MakeParameters(seed: 47 + bnFeatures, inFeatures, outFeatures, bnFeatures, linearBias);
        (var linear, var bn) = MakeModules(p, inFeatures, outFeatures, 1e-5);
        using FusedLinear fused = FusedLinear.Create("M", "fc", linear, bn, relu: true);
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(9);
        // A one-feature BatchNorm1d normalizes dimension 1 of [N, 1, features] (libtorch refuses it on [N, 6]).
        Tensor x = bnFeatures == 1 ? torch.randn(7, 1, inFeatures) : torch.randn(7, inFeatures);
        float[] expected = nn.functional.relu(bn.forward(linear.forward(x))).data<float>().ToArray();
        float[] actual = fused.forward(x).data<float>().ToArray();

        // Not bit-exact: libtorch computes ((x·w + b - mean) * invstd) * gamma + beta, the fold x·(w*s) + b'.
        // Reassociating float32 moves each result by a few ulps of its largest partial term; outputs are O(1..5)
        // with 5-term sums, so 2e-5 absolute + 2e-6 relative is ~20x the worst expected error and far below a
        // folding mistake (a wrong eps, channel or sign moves results by 1e-3 or more).
        double worst = expected.Zip(actual).Max(pair => Math.Abs(pair.First - pair.Second) / (2e-5 + (2e-6 * Math.Abs(pair.First))));
        _output.WriteLine($"worst error / tolerance = {worst:F4}");
        Assert.True(worst <= 1.0, $"folded forward differs from linear->bn by {worst:F2}x the tolerance");
    }

    [Fact]
    public void TheFourArgumentCreateStillReadsTheLinearUnchanged()
    {
        var linear = nn.Linear(3, 2);
        using FusedLinear plain = FusedLinear.Create("M", "fc", linear, relu: true);
        using FusedLinear withNull = FusedLinear.Create("M", "fc", linear, batchNorm: null, relu: true);
        float[] weight = linear.weight.data<float>().ToArray();
        float[] bias = linear.bias!.data<float>().ToArray();
        Assert.Equal(weight, plain.Weight);
        Assert.Equal(bias, plain.Bias);
        Assert.Equal(weight, withNull.Weight);
        Assert.False(plain.FoldedBatchNorm);
        Assert.Equal("LinearReLU(in_features=3, out_features=2, bias=True)", plain.ToString());
    }

    [Fact]
    public void BatchNormWithTheWrongFeatureCountIsRejected()
    {
        var linear = nn.Linear(3, 4);
        var bn = nn.BatchNorm1d(5);
        var error = Assert.Throws<ArgumentException>(() => FusedLinear.Create("M", "fc", linear, bn, relu: false));
        Assert.Contains("M.fc", error.Message);
        Assert.Contains("BatchNorm1d has 5 features, expected 4 or 1", error.Message);
    }

    [Fact]
    public void BatchNormWithoutRunningStatisticsIsRejected()
    {
        var linear = nn.Linear(3, 4);
        var bn = nn.BatchNorm1d(4, track_running_stats: false);
        var error = Assert.Throws<NotSupportedException>(() => FusedLinear.Create("M", "fc", linear, bn, relu: false));
        Assert.Contains("M.fc", error.Message);
        Assert.Contains("track_running_stats", error.Message);
    }

    [Fact]
    public void AFoldedLayerRefusesInputsWhereTheFoldIsNotEquivalent()
    {
        // linear on [N, L, F] then BatchNorm1d normalizes dimension 1 (L), not the linear's features.
        var linear = nn.Linear(3, 4);
        var bn = nn.BatchNorm1d(4);
        using FusedLinear fused = FusedLinear.Create("M", "fc", linear, bn, relu: false);
        using var scope = torch.NewDisposeScope();
        var error = Assert.Throws<ArgumentException>(() => fused.forward(torch.zeros(2, 4, 3)));
        Assert.Contains("M.fc", error.Message);
        Assert.Contains("rank 2", error.Message);
        Assert.Equal([2L, 4L], fused.forward(torch.zeros(2, 3)).shape);

        // A one-feature BatchNorm1d also allows [N, 1, features], where its channel dimension has size 1.
        using FusedLinear broadcast = FusedLinear.Create("M", "fc", linear, nn.BatchNorm1d(1), relu: false);
        Assert.Equal([2L, 1L, 4L], broadcast.forward(torch.zeros(2, 1, 3)).shape);
        Assert.Contains("[N, 1, 3]", Assert.Throws<ArgumentException>(() => broadcast.forward(torch.zeros(2, 2, 3))).Message);
    }
}
