using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Modules;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.OpTestSupport;

namespace QuantGen.Tests.Modules;

public class QuantizedConvTranspose2dTests
{
    private readonly ITestOutputHelper _output;

    public QuantizedConvTranspose2dTests(ITestOutputHelper output) => _output = output;

    // ic, oc, h, w, k, stride, pad, output_padding, dilation, groups
    public static IEnumerable<object[]> Cases()
    {
        int[][] shapes =
        [
            [3, 8, 5, 4, 3, 2, 1, 1, 1, 1],
            [17, 5, 3, 3, 4, 2, 1, 0, 1, 1],
            [6, 9, 4, 5, 3, 3, 2, 2, 1, 3],
            [4, 4, 3, 3, 3, 1, 2, 0, 2, 4],
            [1, 1, 6, 7, 2, 2, 0, 1, 2, 1],
        ];
        foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
        {
            foreach (bool perChannel in new[] { false, true })
            {
                foreach (int[] shape in shapes)
                {
                    yield return [backend, perChannel, shape[0] % 2 == 0 ? QuantDType.QInt8 : QuantDType.QUInt8, shape];
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void IsWithinOneStepOfItsQdqReference(QuantBackend backend, bool perChannel, QuantDType dtype, int[] p)
    {
        int ic = p[0], oc = p[1], h = p[2], w = p[3], k = p[4], s = p[5], pad = p[6], outPad = p[7], d = p[8], g = p[9];
        int ocPerGroup = oc / g;
        var random = new Random(p.Aggregate(7, (a, b) => (a * 31) + b) + (perChannel ? 1 : 0) + (10 * (int)backend));
        bool signed = dtype == QuantDType.QInt8;
        QParams qx = QParams.PerTensor(0.017f, signed ? -3 : 61, dtype);
        QTensor x = RandomTensor(random, [2, ic, h, w], qx);

        // Weights [InC, OutC/g, k, k], symmetric qint8: per-tensor, or per-channel along axis 1.
        float[] weights = ContractReference.RandomFloats(random, ic * ocPerGroup * k * k, -0.3f, 0.3f);
        for (int i = 0; i < weights.Length; i++)
        {
            weights[i] *= 1 + ((i / (k * k)) % ocPerGroup);   // channel o gets a (1 + o)-times wider range
        }

        int[] weightShape = [ic, ocPerGroup, k, k];
        QParams qw = perChannel
            ? QParams.PerChannel(
                Enumerable.Range(0, ocPerGroup).Select(o => Enumerable.Range(0, weights.Length).Where(i => (i / (k * k)) % ocPerGroup == o).Max(i => MathF.Abs(weights[i])) / 127.5f).ToArray(),
                new int[ocPerGroup], 1, QuantDType.QInt8)
            : QParams.PerTensor(weights.Max(MathF.Abs) / 127.5f, 0, QuantDType.QInt8);
        QTensor qWeight = QTensor.Quantize(weights, weightShape, qw);
        float[] bias = ContractReference.RandomFloats(random, oc, -0.2f, 0.2f);

        using var scope = torch.NewDisposeScope();
        var reference = torch.nn.functional.conv_transpose2d(
            DequantizedTorch(x), torch.tensor(qWeight.Dequantize(), weightShape.Select(v => (long)v).ToArray()), torch.tensor(bias),
            [s, s], [pad, pad], [outPad, outPad], [d, d], g);
        float[] values = Floats(reference);
        (float sy, int zy) = ContractReference.AffineQuint8(values.Min(), values.Max());
        QParams qy = QParams.PerTensor(sy, signed ? zy - 128 : zy, dtype);

        foreach (bool relu in new[] { false, true })
        {
            var layer = new QuantizedConvTranspose2d("M", "up1", new ConvTranspose2dOptions(ic, oc, k, k, s, s, pad, pad, outPad, outPad, d, d, g), qWeight, bias, qx, qy, relu, backend);
            QTensor y = layer.Forward(x);
            Assert.Equal(reference.shape, Array.ConvertAll(y.Shape, v => (long)v));
            Assert.Equal(MemoryFormat.ChannelsLast, y.Format);
            var expected = relu ? torch.nn.functional.relu(reference) : reference;

            // Exact int32 sums against libtorch's float ones; the requantization rounds differently (X86's bs/M
            // factors, Qnnpack's integer bias), so a value near a rounding boundary may differ by one.
            AssertWithinOneStep(_output, $"conv_transpose2d {backend} perChannel={perChannel} {dtype} relu={relu} [{string.Join(",", p)}]", QuantizeTorch(expected, qy), y.IntRepr(), exactFloor: 0.97);
        }
    }

    [Fact]
    public void BadWeightsAndInputsAreRejectedNamingModelAndLayer()
    {
        QParams activation = QParams.PerTensor(0.1f, 0, QuantDType.QUInt8);
        QParams weightQ = QParams.PerTensor(0.01f, 0, QuantDType.QInt8);
        var options = new ConvTranspose2dOptions(4, 6, 3, 3, 2, 2, 1, 1, 1, 1, Groups: 2);

        var shape = Assert.Throws<ArgumentException>(() => new QuantizedConvTranspose2d("M", "up1", options, new QTensor([6, 2, 3, 3], weightQ), null, activation, activation, false, QuantBackend.X86));
        Assert.Contains("M.up1: expected weight [4, 3, 3, 3] ([in_channels, out_channels / groups, kH, kW]), got [6, 2, 3, 3]", shape.Message);

        var axis = Assert.Throws<ArgumentException>(() => new QuantizedConvTranspose2d("M", "up1", options,
            new QTensor([4, 3, 3, 3], QParams.PerChannel([0.1f, 0.1f, 0.1f, 0.1f], [0, 0, 0, 0], 0, QuantDType.QInt8)), null, activation, activation, false, QuantBackend.X86));
        Assert.Contains("M.up1: per-channel ConvTranspose2d weight qparams must be along axis 1 (output channels), got axis 0", axis.Message);

        var outputPadding = Assert.Throws<ArgumentException>(() => new QuantizedConvTranspose2d("M", "up1", new ConvTranspose2dOptions(1, 1, 3, 3, 2, 2, 0, 0, 2, 2), new QTensor([1, 1, 3, 3], weightQ), null, activation, activation, false, QuantBackend.X86));
        Assert.Contains("M.up1: output_padding (2, 2) must be smaller than either stride (2, 2) or dilation (1, 1)", outputPadding.Message);

        var layer = new QuantizedConvTranspose2d("M", "up1", options, new QTensor([4, 3, 3, 3], weightQ), null, activation, activation, false, QuantBackend.X86);
        var channels = Assert.Throws<ArgumentException>(() => layer.Forward(new QTensor([1, 3, 4, 4], activation)));
        Assert.Contains("M.up1: expected input [N, 4, H, W] (rank 4, 4 channels), got [1, 3, 4, 4]", channels.Message);
        var dtype = Assert.Throws<ArgumentException>(() => layer.Forward(new QTensor([1, 4, 4, 4], QParams.PerTensor(0.1f, 0, QuantDType.QInt8))));
        Assert.Contains("M.up1: expected a torch.quint8 input, got torch.qint8 [1, 4, 4, 4]", dtype.Message);

        Assert.Equal(
            "QuantizedConvTranspose2d(4, 6, kernel_size=(3, 3), stride=(2, 2), scale=0.10000000149011612, zero_point=0, padding=(1, 1), output_padding=(1, 1), groups=2, bias=False)",
            layer.ToString());
    }
}
