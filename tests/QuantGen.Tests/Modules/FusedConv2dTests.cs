using System;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Observers;
using TorchSharp;
using static QuantGen.Tests.Modules.ContractReference;
using static TorchSharp.torch;

namespace QuantGen.Tests.Modules;

public class FusedConv2dTests
{
    [Fact]
    public void HyperParametersAreReadFromTheTorchSharpModule()
    {
        var conv = nn.Conv2d(4, 6, (3, 2), stride: (2, 1), padding: (1, 0), dilation: (1, 2), groups: 2, bias: false);
        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", conv, null, relu: true);
        Assert.Equal(new Conv2dOptions(4, 6, 3, 2, 2, 1, 1, 0, 1, 2, 2), fused.Options);
        Assert.Null(fused.Bias);
        Assert.True(fused.Relu);
        Assert.Equal(conv.weight.data<float>().ToArray(), fused.Weight);
        Assert.Equal("ConvReLU2d(4, 6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, bias=False)", fused.ToString());
    }

    [Fact]
    public void SamePaddingBecomesExplicitSymmetricPadding()
    {
        var conv = nn.Conv2d(3, 4, 3, padding: Padding.Same, dilation: 2);
        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", conv, null, relu: false);
        Assert.Equal(2, fused.Options.PadHeight);
        Assert.Equal(2, fused.Options.PadWidth);

        // Same weights, same op: the explicit padding must give the module's 'same' output bit for bit.
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(1);
        Tensor x = torch.randn(1, 3, 6, 5);
        Assert.Equal(conv.forward(x).data<float>().ToArray(), fused.forward(x).data<float>().ToArray());
    }

    [Fact]
    public void ValidPaddingIsZero()
    {
        var conv = nn.Conv2d(3, 4, 3, padding: Padding.Valid);
        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", conv, null, relu: false);
        Assert.Equal((0, 0), (fused.Options.PadHeight, fused.Options.PadWidth));
    }

    [Fact]
    public void AsymmetricSamePaddingIsRejectedNamingTheLayer()
    {
        var conv = nn.Conv2d(3, 4, 4, padding: Padding.Same);
        var error = Assert.Throws<NotSupportedException>(() => FusedConv2d.Create("M", "conv1", conv, null, relu: false));
        Assert.Contains("M.conv1", error.Message);
        Assert.Contains("padding='same'", error.Message);
    }

    [Fact]
    public void PaddingModesOtherThanZerosAreRejectedNamingTheLayer()
    {
        var conv = nn.Conv2d(3, 4, 3, padding: 1, padding_mode: PaddingModes.Reflect);
        var error = Assert.Throws<NotSupportedException>(() => FusedConv2d.Create("M", "conv1", conv, null, relu: false));
        Assert.Contains("M.conv1", error.Message);
        Assert.Contains("padding_mode=Reflect", error.Message);
    }

    [Fact]
    public void WithoutBatchNormTheForwardIsTheModulesForwardThenReLU()
    {
        var conv = nn.Conv2d(3, 5, 3, stride: 2, padding: 1);
        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", conv, null, relu: true);
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(2);
        Tensor x = torch.randn(2, 3, 9, 8);
        float[] expected = nn.functional.relu(conv.forward(x)).data<float>().ToArray();
        Assert.Equal(expected, fused.forward(x).data<float>().ToArray());
        Assert.Equal(conv.bias!.data<float>().ToArray(), fused.Bias);
    }

    [Fact]
    public void ForwardRejectsWrongRankChannelsAndDTypeNamingModelLayerExpectedAndActual()
    {
        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", nn.Conv2d(3, 4, 3), null, relu: false);
        using var scope = torch.NewDisposeScope();

        var rank = Assert.Throws<ArgumentException>(() => fused.forward(torch.zeros(3, 5, 5)));
        Assert.Contains("M.conv1: expected input [N, 3, H, W] (rank 4, 3 channels), got [3, 5, 5]", rank.Message);

        var channels = Assert.Throws<ArgumentException>(() => fused.forward(torch.zeros(1, 1, 2, 3)));
        Assert.Contains("M.conv1: expected input [N, 3, H, W] (rank 4, 3 channels), got [1, 1, 2, 3]", channels.Message);

        var dtype = Assert.Throws<ArgumentException>(() => fused.forward(torch.zeros(new long[] { 1, 3, 5, 5 }, ScalarType.Float64)));
        Assert.Contains("M.conv1: expected a Float32 input, got Float64 [1, 3, 5, 5]", dtype.Message);

        var small = Assert.Throws<ArgumentException>(() => fused.forward(torch.zeros(1, 3, 2, 5)));
        Assert.Contains("M.conv1", small.Message);
        Assert.Contains("[1, 3, 2, 5]", small.Message);
    }

    [Fact]
    public void ConvertQuantizesTheWeightsPerChannelSymmetricWithTheFullInt8Range()
    {
        var conv = nn.Conv2d(2, 3, 2);
        var random = new Random(41);
        float[] weights = RandomFloats(random, 3 * 2 * 2 * 2, -0.4f, 0.4f);

        // Extremes chosen so the scales are powers of two and the ties exact: channel 0's is negative,
        // 127.5 * 2^-7, landing on -127.5 -> -128; channel 1's positive, 127.5 * 2^-8, landing on
        // +127.5 -> 128 -> clamped to 127.
        weights[0] = -0.99609375f;
        weights[8] = 0.498046875f;
        using (torch.no_grad())
        {
            conv.weight.copy_(torch.tensor(weights, [3, 2, 2, 2]));
        }

        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", conv, null, relu: true);
        QParams input = QParams.PerTensor(0.02f, 3, QuantDType.QUInt8);
        QParams output = QParams.PerTensor(0.05f, 0, QuantDType.QUInt8);
        QuantizedConv2d int8 = fused.Convert(input, output, QConfig.X86.Weight, QuantBackend.X86);

        // The contract: scale_c = max(absmax_c / 127.5f, eps), q = clamp(round_half_even(w * (1f / scale_c)), -128, 127).
        var expectedScales = new float[3];
        var expected = new int[weights.Length];
        for (int c = 0; c < 3; c++)
        {
            float[] channel = weights.Skip(c * 8).Take(8).ToArray();
            float absMax = MathF.Max(-MathF.Min(channel.Min(), 0f), MathF.Max(channel.Max(), 0f));
            expectedScales[c] = MathF.Max(absMax / 127.5f, 1.1920929e-07f);
            for (int i = 0; i < 8; i++)
            {
                expected[(c * 8) + i] = Quantize(channel[i], expectedScales[c], 0, -128, 127);
            }
        }

        Assert.Equal(-128, expected[0]);
        Assert.Equal(127, expected[8]);
        Assert.Equal(expected, int8.Weight.IntRepr());
        Assert.Equal(expectedScales, int8.Weight.QParams.Scales);
        Assert.Equal(0, int8.Weight.QParams.Axis);
        Assert.Equal(conv.bias!.data<float>().ToArray(), int8.Bias);
        Assert.Equal(fused.Options, int8.Options);
        Assert.True(int8.FusedRelu);
        Assert.Same(output, int8.OutputQParams);
        Assert.Equal(QuantBackend.X86, int8.Backend);
    }

    [Fact]
    public void ConvertWithTheQnnpackPresetQuantizesTheWeightsPerTensor()
    {
        var conv = nn.Conv2d(2, 3, 1, bias: false);
        float[] weights = [0.1f, -0.4f, 0.25f, 0.3f, -0.05f, 0.2f];
        using (torch.no_grad())
        {
            conv.weight.copy_(torch.tensor(weights, [3, 2, 1, 1]));
        }

        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", conv, null, relu: false);
        QuantizedConv2d int8 = fused.Convert(QParams.PerTensor(0.02f, 3, QuantDType.QUInt8), QParams.PerTensor(0.05f, 0, QuantDType.QUInt8), QConfig.Qnnpack.Weight, QuantBackend.Qnnpack);

        float scale = 0.4f / 127.5f;
        Assert.False(int8.Weight.QParams.IsPerChannel);
        Assert.Equal(scale, int8.Weight.Scale);
        Assert.Equal(weights.Select(w => Quantize(w, scale, 0, -128, 127)).ToArray(), int8.Weight.IntRepr());
        Assert.Null(int8.Bias);
    }

    [Fact]
    public void ConvertRejectsANonInt8WeightObserver()
    {
        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", nn.Conv2d(1, 1, 1), null, relu: false);
        var error = Assert.Throws<ArgumentException>(() => fused.Convert(
            QParams.PerTensor(0.02f, 3, QuantDType.QUInt8), QParams.PerTensor(0.05f, 0, QuantDType.QUInt8), ObserverSpec.MinMax(QuantDType.QUInt8), QuantBackend.X86));
        Assert.Contains("M.conv1", error.Message);
        Assert.Contains("torch.qint8", error.Message);
    }

    [Fact]
    public void ForwardAfterDisposeThrows()
    {
        FusedConv2d fused = FusedConv2d.Create("M", "conv1", nn.Conv2d(1, 1, 1), null, relu: false);
        fused.Dispose();
        fused.Dispose();
        Assert.Throws<ObjectDisposedException>(() => fused.forward(torch.zeros(1, 1, 2, 2)));
    }
}
