using System;
using QuantGen.Modules;
using TorchSharp;
using static QuantGen.Tests.Reference.QdqMath;
using static TorchSharp.torch;

namespace QuantGen.Tests.Float;

/// <summary>Standalone BatchNorm2d / BNReLU2d: float forward and the scale/shift handed to the int8 layer.</summary>
public class FusedBatchNorm2dTests
{
    private static (TorchSharp.Modules.BatchNorm2d Bn, float[] Mean, float[] Variance, float[] Gamma, float[] Beta) MakeBatchNorm(int seed, int channels, double eps)
    {
        var random = new Random(seed);
        float[] mean = Uniform(random, channels, -1f, 1f);
        float[] variance = Uniform(random, channels, 0.05f, 3f);
        float[] gamma = Uniform(random, channels, -2f, 2f);
        float[] beta = Uniform(random, channels, -1f, 1f);
        var bn = nn.BatchNorm2d(channels, eps: eps);
        using (torch.no_grad())
        {
            bn.running_mean!.copy_(torch.tensor(mean, [channels]));
            bn.running_var!.copy_(torch.tensor(variance, [channels]));
            bn.weight!.copy_(torch.tensor(gamma, [channels]));
            bn.bias!.copy_(torch.tensor(beta, [channels]));
        }

        bn.eval();
        return (bn, mean, variance, gamma, beta);
    }

    [Theory]
    [InlineData(1e-5)]
    [InlineData(1e-3)]
    public void ScaleAndShiftFollowPyTorchsQuantizedBatchNormExactly(double eps)
    {
        const int channels = 7;
        (var bn, float[] mean, float[] variance, float[] gamma, float[] beta) = MakeBatchNorm(81, channels, eps);
        using FusedBatchNorm2d fused = FusedBatchNorm2d.Create("M", "bn", bn, relu: false);

        // qbatch_norm.cpp compute_fused_params: inv_sigma = 1.0 / sqrt(var + (float)eps);
        // alpha = inv_sigma * weight (* sx / sy, the int8 layer's part); beta = bias - mean * inv_sigma * weight (/ sy).
        var expectedScale = new float[channels];
        var expectedShift = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            float sum = variance[c] + (float)eps;
            double inverseSigmaDouble = 1.0 / (double)MathF.Sqrt(sum);   // C++: 1.0 / std::sqrt(float) in double
            float inverseSigma = (float)inverseSigmaDouble;
            expectedScale[c] = inverseSigma * gamma[c];
            float meanTimesInverse = mean[c] * inverseSigma;
            float normalizedMean = meanTimesInverse * gamma[c];
            expectedShift[c] = beta[c] - normalizedMean;
        }

        Assert.Equal(expectedScale, fused.Scale);
        Assert.Equal(expectedShift, fused.Shift);
        Assert.Equal(channels, fused.Channels);
        Assert.Equal((float)eps, fused.Eps);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ForwardIsTheModulesEvalBatchNormBitForBit(bool relu)
    {
        (var bn, _, _, _, _) = MakeBatchNorm(83, 5, 1e-5);
        using FusedBatchNorm2d fused = FusedBatchNorm2d.Create("M", "bn", bn, relu);
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(12);
        Tensor x = torch.randn(3, 5, 4, 6);
        Tensor expected = bn.forward(x);
        if (relu)
        {
            expected = nn.functional.relu(expected);
        }

        // The same libtorch batch_norm in eval mode with the same statistics: identical.
        Assert.Equal(expected.data<float>().ToArray(), fused.forward(x).data<float>().ToArray());
    }

    [Fact]
    public void NonAffineBatchNormHasUnitGammaAndZeroBeta()
    {
        var bn = nn.BatchNorm2d(2, eps: 0.0, affine: false);
        using (torch.no_grad())
        {
            bn.running_mean!.copy_(torch.tensor(new float[] { 1f, -0.5f }, [2]));
            bn.running_var!.copy_(torch.tensor(new float[] { 4f, 0.25f }, [2]));
        }

        using FusedBatchNorm2d fused = FusedBatchNorm2d.Create("M", "bn", bn, relu: true);

        // Hand-derived: inv_sigma = [0.5, 2]; scale = [0.5, 2]; shift = [0 - 1 * 0.5, 0 + 0.5 * 2] = [-0.5, 1].
        Assert.Equal(new[] { 0.5f, 2f }, fused.Scale);
        Assert.Equal(new[] { -0.5f, 1f }, fused.Shift);
        Assert.Equal("BNReLU2d(2, eps=0.0, affine=False)", fused.ToString());
    }

    [Fact]
    public void PrintsLikePyTorch()
    {
        using FusedBatchNorm2d fused = FusedBatchNorm2d.Create("M", "bn", nn.BatchNorm2d(64), relu: false);
        Assert.Equal("BatchNorm2d(64, eps=1e-05)", fused.ToString());
    }

    [Fact]
    public void WithoutRunningStatisticsItIsRejected()
    {
        var error = Assert.Throws<NotSupportedException>(() => FusedBatchNorm2d.Create("M", "bn", nn.BatchNorm2d(4, track_running_stats: false), relu: false));
        Assert.Contains("M.bn", error.Message);
        Assert.Contains("track_running_stats", error.Message);
    }

    [Fact]
    public void WrongInputsAreRejectedWithTheExpectedShape()
    {
        using FusedBatchNorm2d fused = FusedBatchNorm2d.Create("M", "bn", nn.BatchNorm2d(4), relu: false);
        using var scope = torch.NewDisposeScope();
        var error = Assert.Throws<ArgumentException>(() => fused.forward(torch.zeros(1, 3, 2, 2)));
        Assert.Contains("M.bn: expected input [N, 4, H, W]", error.Message);
    }

    [Fact]
    public void InvalidQParamsAtConvertAreRejectedNamingTheLayer()
    {
        using FusedBatchNorm2d fused = FusedBatchNorm2d.Create("M", "bn", nn.BatchNorm2d(4), relu: false);
        QParams perChannel = QParams.PerChannel([0.1f, 0.1f, 0.1f, 0.1f], [0, 0, 0, 0], 1, QuantDType.QUInt8);
        QParams good = QParams.PerTensor(0.1f, 3, QuantDType.QUInt8);
        var error = Assert.Throws<ArgumentException>(() => fused.Convert(perChannel, good));
        Assert.Contains("M.bn: input qparams must be per tensor", error.Message);
        Assert.Contains("M.bn: output", Assert.Throws<ArgumentException>(() => fused.ToReference(perChannel)).Message);
    }
}
