using System;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Observers;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Reference.QdqMath;
using static TorchSharp.torch;

namespace QuantGen.Tests.Float;

/// <summary>ConvTranspose2d (+ BatchNorm2d folded over its OUTPUT channels, weight axis 1) (+ ReLU).</summary>
public class FusedConvTranspose2dTests
{
    private readonly ITestOutputHelper _output;

    public FusedConvTranspose2dTests(ITestOutputHelper output) => _output = output;

    private sealed record Parameters(float[] Weight, float[]? Bias, float[] Mean, float[] Variance, float[] Gamma, float[] Beta);

    private static (TorchSharp.Modules.ConvTranspose2d Deconv, TorchSharp.Modules.BatchNorm2d Bn, Parameters P) MakeModules(
        int seed, int inChannels, int outChannels, int kernel, int stride, int padding, int outputPadding, int groups, bool bias, double eps)
    {
        var random = new Random(seed);
        var deconv = nn.ConvTranspose2d(inChannels, outChannels, kernel, stride: stride, padding: padding, output_padding: outputPadding, groups: groups, bias: bias);
        var bn = nn.BatchNorm2d(outChannels, eps: eps);
        var p = new Parameters(
            Uniform(random, inChannels * (outChannels / groups) * kernel * kernel, -0.5f, 0.5f),
            bias ? Uniform(random, outChannels, -0.3f, 0.3f) : null,
            Uniform(random, outChannels, -1f, 1f),
            Uniform(random, outChannels, 0.05f, 3f),
            Uniform(random, outChannels, 0.5f, 2f),
            Uniform(random, outChannels, -1f, 1f));
        using (torch.no_grad())
        {
            deconv.weight!.copy_(torch.tensor(p.Weight, deconv.weight.shape));
            deconv.bias?.copy_(torch.tensor(p.Bias!, [outChannels]));
            bn.running_mean!.copy_(torch.tensor(p.Mean, [outChannels]));
            bn.running_var!.copy_(torch.tensor(p.Variance, [outChannels]));
            bn.weight!.copy_(torch.tensor(p.Gamma, [outChannels]));
            bn.bias!.copy_(torch.tensor(p.Beta, [outChannels]));
        }

        deconv.eval();
        bn.eval();
        return (deconv, bn, p);
    }

    [Fact]
    public void HyperParametersAreReadFromTheTorchSharpModule()
    {
        var deconv = nn.ConvTranspose2d(4, 6, (3, 2), stride: (2, 3), padding: (1, 0), output_padding: (1, 2), dilation: (1, 1), groups: 2, bias: false);
        using FusedConvTranspose2d fused = FusedConvTranspose2d.Create("M", "up", deconv, null, relu: true);
        Assert.Equal(new ConvTranspose2dOptions(4, 6, 3, 2, 2, 3, 1, 0, 1, 2, 1, 1, 2), fused.Options);
        Assert.Equal([4, 3, 3, 2], fused.WeightShape);
        Assert.Equal(deconv.weight!.data<float>().ToArray(), fused.Weight);
        Assert.Null(fused.Bias);
        Assert.Equal("ConvTransposeReLU2d(4, 6, kernel_size=(3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2, bias=False)", fused.ToString());
    }

    [Fact]
    public void Seed002UpsamplerPrintsAsPyTorchDoes()
    {
        var deconv = nn.ConvTranspose2d(8, 8, 4, stride: 2, padding: 1);
        using FusedConvTranspose2d fused = FusedConvTranspose2d.Create("CenterNet", "upsampler.deconv_layers.1", deconv, null, relu: false);
        Assert.Equal("ConvTranspose2d(8, 8, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))", fused.ToString());
    }

    [Theory]
    [InlineData(1, true, 1e-5)]
    [InlineData(1, false, 1e-5)]   // no bias: b = 0
    [InlineData(2, true, 1e-3)]    // groups: weight column j of input channel i feeds output (i / inPerGroup) * outPerGroup + j
    public void FoldedParametersEqualTheFormulaOverOutputChannelsExactly(int groups, bool bias, double eps)
    {
        const int inChannels = 4, outChannels = 6, kernel = 3;
        (var deconv, var bn, Parameters p) = MakeModules(61 + groups, inChannels, outChannels, kernel, 2, 1, 1, groups, bias, eps);
        using FusedConvTranspose2d fused = FusedConvTranspose2d.Create("M", "up", deconv, bn, relu: false);

        // w'[i, j, :, :] = w[i, j, :, :] * (gamma_o * rsqrt(var_o + eps)), o the output channel of (i, j);
        // b'_o = (b_o - mean_o) * rsqrt(var_o + eps) * gamma_o + beta_o, left to right.
        float bnEps = (float)eps;
        int inPerGroup = inChannels / groups, outPerGroup = outChannels / groups, area = kernel * kernel;
        var expectedWeight = new float[p.Weight.Length];
        for (int i = 0; i < inChannels; i++)
        {
            for (int j = 0; j < outPerGroup; j++)
            {
                int o = ((i / inPerGroup) * outPerGroup) + j;
                float rsqrt = 1.0f / MathF.Sqrt(p.Variance[o] + bnEps);
                float factor = p.Gamma[o] * rsqrt;
                for (int k = 0; k < area; k++)
                {
                    int index = (((i * outPerGroup) + j) * area) + k;
                    expectedWeight[index] = p.Weight[index] * factor;
                }
            }
        }

        var expectedBias = new float[outChannels];
        for (int o = 0; o < outChannels; o++)
        {
            float rsqrt = 1.0f / MathF.Sqrt(p.Variance[o] + bnEps);
            float normalized = ((p.Bias?[o] ?? 0f) - p.Mean[o]) * rsqrt;
            float scaled = normalized * p.Gamma[o];
            expectedBias[o] = scaled + p.Beta[o];
        }

        Assert.Equal(expectedWeight, fused.Weight);
        Assert.Equal(expectedBias, fused.Bias);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void FoldedForwardMatchesConvTransposeThenBatchNormInTorchSharp(int groups)
    {
        const int inChannels = 4, outChannels = 6, kernel = 4;
        (var deconv, var bn, _) = MakeModules(71 + groups, inChannels, outChannels, kernel, 2, 1, 0, groups, true, 1e-5);
        using FusedConvTranspose2d fused = FusedConvTranspose2d.Create("M", "up", deconv, bn, relu: true);
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(4);
        Tensor x = torch.randn(2, inChannels, 5, 4);
        float[] expected = nn.functional.relu(bn.forward(deconv.forward(x))).data<float>().ToArray();
        Tensor y = fused.forward(x);
        Assert.Equal([2L, outChannels, 10L, 8L], y.shape);
        float[] actual = y.data<float>().ToArray();

        // Not bit-exact: libtorch computes ((Σ x*w + b - mean) * invstd) * gamma + beta, the fold Σ x*(w*f) + b'.
        // Reassociating float32 moves results by a few ulps of the largest partial sum; outputs are O(1..10) with
        // at most 16-term sums, so 2e-5 absolute + 2e-6 relative is ~20x the worst expected error and far below a
        // folding mistake (a factor on the wrong axis or group changes results by 1e-2 or more).
        double worst = expected.Zip(actual).Max(pair => Math.Abs(pair.First - pair.Second) / (2e-5 + (2e-6 * Math.Abs(pair.First))));
        _output.WriteLine($"worst error / tolerance = {worst:F4}");
        Assert.True(worst <= 1.0, $"folded forward differs from convtranspose->bn by {worst:F2}x the tolerance");
    }

    [Fact]
    public void WithoutBatchNormTheForwardIsTheModulesBitForBit()
    {
        var deconv = nn.ConvTranspose2d(3, 4, 3, stride: 2, padding: 1, output_padding: 1, dilation: 1);
        using FusedConvTranspose2d fused = FusedConvTranspose2d.Create("M", "up", deconv, null, relu: true);
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(8);
        Tensor x = torch.randn(1, 3, 5, 6);

        // The same libtorch op on the same weights: identical.
        Assert.Equal(nn.functional.relu(deconv.forward(x)).data<float>().ToArray(), fused.forward(x).data<float>().ToArray());
    }

    [Fact]
    public void PerChannelWeightsOnAxis0AreAnErrorNamingTheLayerAndWhy()
    {
        var deconv = nn.ConvTranspose2d(4, 6, 3);
        using FusedConvTranspose2d fused = FusedConvTranspose2d.Create("CenterNet", "upsampler.deconv_layers.1", deconv, null, relu: false);
        var spec = ObserverSpec.PerChannelMinMax(channelAxis: 0);
        var error = Assert.Throws<ArgumentException>(() => fused.ValidateWeightSpec(spec));
        Assert.Contains("CenterNet.upsampler.deconv_layers.1", error.Message);
        Assert.Contains("must use ch_axis=1, got ch_axis=0", error.Message);
        Assert.Contains("[in_channels, out_channels / groups, kH, kW]", error.Message);

        // Convert and ToReference check the same before anything is quantized.
        QParams q = QParams.PerTensor(0.1f, 0, QuantDType.QUInt8);
        Assert.Contains("ch_axis=1", Assert.Throws<ArgumentException>(() => fused.ToReference(q, spec)).Message);
        Assert.Contains("ch_axis=1", Assert.Throws<ArgumentException>(() => fused.Convert(q, q, spec, QuantBackend.X86)).Message);
        fused.ValidateWeightSpec(ObserverSpec.PerChannelMinMax(channelAxis: 1));
        fused.ValidateWeightSpec(ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric));
    }

    [Fact]
    public void QUInt8WeightsAreRefused()
    {
        var deconv = nn.ConvTranspose2d(2, 2, 3);
        using FusedConvTranspose2d fused = FusedConvTranspose2d.Create("M", "up", deconv, null, relu: false);
        var error = Assert.Throws<ArgumentException>(() => fused.ValidateWeightSpec(ObserverSpec.MinMax(QuantDType.QUInt8)));
        Assert.Contains("M.up", error.Message);
        Assert.Contains("torch.qint8", error.Message);
    }

    [Fact]
    public void OutputPaddingNotSmallerThanStrideOrDilationIsRejected()
    {
        var deconv = nn.ConvTranspose2d(2, 2, 3, stride: 1, output_padding: 1);
        var error = Assert.Throws<ArgumentException>(() => FusedConvTranspose2d.Create("M", "up", deconv, null, relu: false));
        Assert.Contains("M.up", error.Message);
        Assert.Contains("output_padding (1, 1)", error.Message);
    }

    [Fact]
    public void BatchNormWithTheWrongChannelCountIsRejected()
    {
        var deconv = nn.ConvTranspose2d(3, 4, 3);
        var bn = nn.BatchNorm2d(3);
        var error = Assert.Throws<ArgumentException>(() => FusedConvTranspose2d.Create("M", "up", deconv, bn, relu: false));
        Assert.Contains("M.up", error.Message);
        Assert.Contains("has 3 features, expected 4", error.Message);
    }

    [Fact]
    public void WrongInputsAreRejectedWithTheExpectedShape()
    {
        var deconv = nn.ConvTranspose2d(3, 4, 3, padding: 2);
        using FusedConvTranspose2d fused = FusedConvTranspose2d.Create("M", "up", deconv, null, relu: false);
        using var scope = torch.NewDisposeScope();
        Assert.Contains("expected input [N, 3, H, W]", Assert.Throws<ArgumentException>(() => fused.forward(torch.zeros(1, 2, 4, 4))).Message);

        // (1 - 1) * 1 - 2 * 2 + (3 - 1) + 1 = -1: an empty output.
        Assert.Contains("empty output", Assert.Throws<ArgumentException>(() => fused.forward(torch.zeros(1, 3, 1, 1))).Message);
    }
}
