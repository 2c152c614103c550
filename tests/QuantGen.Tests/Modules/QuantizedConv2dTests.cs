using System;
using System.Linq;
using QuantGen.Modules;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.ContractReference;
using static TorchSharp.torch;

namespace QuantGen.Tests.Modules;

public class QuantizedConv2dTests
{
    private readonly ITestOutputHelper _output;

    public QuantizedConv2dTests(ITestOutputHelper output) => _output = output;

    /// <summary>One conv configuration: input [N, C, H, W], OC, kernel, stride, padding, dilation, groups.</summary>
    public sealed record Case(int N, int C, int H, int W, int OC, int KH, int KW, int SH = 1, int SW = 1, int PH = 0, int PW = 0, int DH = 1, int DW = 1, int Groups = 1, bool Bias = true, bool PerChannel = true)
    {
        public Conv2dOptions Options => new(C, OC, KH, KW, SH, SW, PH, PW, DH, DW, Groups);

        /// <summary>A seed derived from the case's text (record hash codes vary between runs).</summary>
        public int Seed => ToString().Aggregate(17, (h, ch) => unchecked((h * 31) + ch));

        public override string ToString() => $"x[{N},{C},{H},{W}] oc={OC} k={KH}x{KW} s={SH}x{SW} p={PH}x{PW} d={DH}x{DW} g={Groups}{(Bias ? string.Empty : " nobias")}{(PerChannel ? string.Empty : " per-tensor")}";
    }

    public static TheoryData<Case, QuantBackend, bool> Cases()
    {
        Case[] shapes =
        [
            new(1, 1, 2, 3, 1, 1, 1),                                        // seed 000's conv
            new(2, 3, 7, 5, 4, 3, 3, PH: 1, PW: 1),
            new(1, 4, 9, 8, 6, 3, 2, SH: 2, SW: 2, PH: 1, Groups: 2),
            new(1, 6, 11, 10, 6, 3, 3, SH: 2, SW: 1, PH: 2, PW: 2, DH: 2, DW: 2, Groups: 3),
            new(1, 8, 5, 5, 8, 3, 3, PH: 1, PW: 1, Groups: 8),             // depthwise
            new(2, 5, 4, 4, 3, 1, 1, Bias: false),
            new(1, 7, 6, 9, 5, 2, 3, SW: 3, PW: 1, PerChannel: false),       // qnnpack-style per-tensor weight
        ];
        var data = new TheoryData<Case, QuantBackend, bool>();
        foreach (Case shape in shapes)
        {
            foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
            {
                data.Add(shape, backend, false);
                data.Add(shape, backend, true);
            }
        }

        return data;
    }

    /// <summary>Random quantized operands for a case (fixed seed per case).</summary>
    private sealed record Operands(int[] Input, int InputZeroPoint, float InputScale, int[] Weight, float[] WeightScales, float[]? Bias);

    private static Operands MakeOperands(Case c, int seed)
    {
        var random = new Random(seed);
        int inPerGroup = c.C / c.Groups;
        int[] input = RandomInts(random, c.N * c.C * c.H * c.W, 0, 255);
        int[] weight = RandomInts(random, c.OC * inPerGroup * c.KH * c.KW, -128, 127);
        float[] weightScales = c.PerChannel
            ? RandomFloats(random, c.OC, 0.001f, 0.01f)
            : Enumerable.Repeat(0.004f + (0.001f * random.NextSingle()), c.OC).ToArray();
        float[]? bias = c.Bias ? RandomFloats(random, c.OC, -2f, 2f) : null;
        return new Operands(input, random.Next(0, 256), 0.01f + (0.02f * random.NextSingle()), weight, weightScales, bias);
    }

    private static QTensor WeightTensor(Case c, Operands o)
    {
        QParams qparams = c.PerChannel
            ? QParams.PerChannel(o.WeightScales, new int[c.OC], 0, QuantDType.QInt8)
            : QParams.PerTensor(o.WeightScales[0], 0, QuantDType.QInt8);
        return new QTensor([c.OC, c.C / c.Groups, c.KH, c.KW], qparams, Bytes(o.Weight));
    }

    /// <summary>The float QDQ output of a case: dequantize input and weight, TorchSharp conv2d + bias, ReLU.</summary>
    private static float[] QdqFloatOutput(Case c, Operands o, bool relu, out long[] shape)
    {
        using var scope = torch.NewDisposeScope();
        float[] x = o.Input.Select(q => Dequantize(q, o.InputScale, o.InputZeroPoint)).ToArray();
        int perChannel = o.Weight.Length / c.OC;
        float[] w = o.Weight.Select((q, i) => Dequantize(q, o.WeightScales[i / perChannel], 0)).ToArray();
        Tensor xt = torch.tensor(x, [c.N, c.C, c.H, c.W]);
        Tensor wt = torch.tensor(w, [c.OC, c.C / c.Groups, c.KH, c.KW]);
        Tensor? bt = o.Bias is null ? null : torch.tensor(o.Bias, [c.OC]);
        Tensor y = nn.functional.conv2d(xt, wt, bt, strides: [c.SH, c.SW], padding: [c.PH, c.PW], dilation: [c.DH, c.DW], groups: c.Groups);
        if (relu)
        {
            y = nn.functional.relu(y);
        }

        shape = y.shape;
        return y.data<float>().ToArray();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardEqualsTheContractFormulaExactly(Case c, QuantBackend backend, bool relu)
    {
        Operands o = MakeOperands(c, seed: c.Seed ^ 17);
        float outputScale = 0.05f;
        int outputZeroPoint = 100;
        var conv = new QuantizedConv2d("M", "conv", c.Options, WeightTensor(c, o), o.Bias,
            QParams.PerTensor(o.InputScale, o.InputZeroPoint, QuantDType.QUInt8),
            QParams.PerTensor(outputScale, outputZeroPoint, QuantDType.QUInt8), relu, backend);

        // Channels-last input, as QuantizeInput and the conv layers produce it; storage laid out by the test.
        var input = new QTensor([c.N, c.C, c.H, c.W], QParams.PerTensor(o.InputScale, o.InputZeroPoint, QuantDType.QUInt8), NhwcBytes(o.Input, [c.N, c.C, c.H, c.W]), MemoryFormat.ChannelsLast);
        QTensor y = conv.Forward(input);

        int[] acc = ConvAccumulate(o.Input, [c.N, c.C, c.H, c.W], o.InputZeroPoint, o.Weight, new int[c.OC],
            c.OC, c.KH, c.KW, c.SH, c.SW, c.PH, c.PW, c.DH, c.DW, c.Groups, out int oh, out int ow);
        Assert.Equal(new[] { c.N, c.OC, oh, ow }, y.Shape);
        Assert.Equal(MemoryFormat.ChannelsLast, y.Format);
        Assert.Equal(outputScale, y.Scale);
        Assert.Equal(outputZeroPoint, y.ZeroPoint);
        int plane = oh * ow;
        int[] expected = acc.Select((a, i) =>
        {
            int oc = (i / plane) % c.OC;
            float bias = o.Bias?[oc] ?? 0f;
            return backend == QuantBackend.X86
                ? RequantizeX86(a, bias, o.InputScale, o.WeightScales[oc], outputScale, outputZeroPoint, relu)
                : RequantizeQnnpack(a, bias, o.InputScale, o.WeightScales[oc], outputScale, outputZeroPoint, relu);
        }).ToArray();
        Assert.Equal(expected, y.IntRepr());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardIsWithinOneStepOfTheQdqReference(Case c, QuantBackend backend, bool relu)
    {
        Operands o = MakeOperands(c, seed: c.Seed ^ 29);
        float[] reference = QdqFloatOutput(c, o, relu, out long[] shape);

        // Output qparams from the float reference's own range (a test-side min/max observer), so the
        // comparison exercises the whole 0..255 range rather than a clamped corner of it.
        (float outputScale, int outputZeroPoint) = AffineQuint8(reference.Min(), reference.Max());
        var conv = new QuantizedConv2d("M", "conv", c.Options, WeightTensor(c, o), o.Bias,
            QParams.PerTensor(o.InputScale, o.InputZeroPoint, QuantDType.QUInt8),
            QParams.PerTensor(outputScale, outputZeroPoint, QuantDType.QUInt8), relu, backend);

        // Contiguous input this time: the layer converts it to channels-last itself.
        var input = new QTensor([c.N, c.C, c.H, c.W], QParams.PerTensor(o.InputScale, o.InputZeroPoint, QuantDType.QUInt8), Bytes(o.Input));
        int[] actual = conv.Forward(input).IntRepr();
        int[] expected = reference.Select(v => Quantize(v, outputScale, outputZeroPoint, 0, 255)).ToArray();

        Assert.Equal(shape.Select(d => (int)d), conv.Forward(input).Shape);
        int exact = actual.Zip(expected).Count(p => p.First == p.Second);
        int worst = actual.Zip(expected).Max(p => Math.Abs(p.First - p.Second));
        _output.WriteLine($"{c} {backend} relu={relu}: {exact}/{actual.Length} exact ({100.0 * exact / actual.Length:F2}%), max |diff| {worst}");
        Assert.True(worst <= 1, $"{c} {backend}: an output is {worst} steps from the QDQ reference.");
    }

    /// <summary>
    /// Exact-share over all the QDQ cases together, per backend: the float reference sums in a different
    /// order and (for Qnnpack) with an unrounded bias, so ties can land one step apart; the share must
    /// stay high or something structural is off.
    /// </summary>
    [Theory]
    [InlineData(QuantBackend.X86)]
    [InlineData(QuantBackend.Qnnpack)]
    public void QdqExactShareIsHigh(QuantBackend backend)
    {
        // The theory's cases plus two larger layers, so the share rests on tens of thousands of outputs.
        var runs = Cases().Select(row => ((Case)row[0], (QuantBackend)row[1], (bool)row[2]))
            .Where(run => run.Item2 == backend)
            .Concat(
            [
                (new Case(4, 16, 16, 16, 32, 3, 3, PH: 1, PW: 1), backend, true),
                (new Case(2, 32, 14, 14, 32, 3, 3, SH: 2, SW: 2, PH: 1, PW: 1, Groups: 4, PerChannel: backend == QuantBackend.X86), backend, false),
            ]);
        int exact = 0, total = 0;
        foreach ((Case c, _, bool relu) in runs)
        {
            Operands o = MakeOperands(c, seed: c.Seed ^ 29);
            float[] reference = QdqFloatOutput(c, o, relu, out _);
            (float outputScale, int outputZeroPoint) = AffineQuint8(reference.Min(), reference.Max());
            var conv = new QuantizedConv2d("M", "conv", c.Options, WeightTensor(c, o), o.Bias,
                QParams.PerTensor(o.InputScale, o.InputZeroPoint, QuantDType.QUInt8),
                QParams.PerTensor(outputScale, outputZeroPoint, QuantDType.QUInt8), relu, backend);
            int[] actual = conv.Forward(new QTensor([c.N, c.C, c.H, c.W], QParams.PerTensor(o.InputScale, o.InputZeroPoint, QuantDType.QUInt8), Bytes(o.Input))).IntRepr();
            exact += actual.Zip(reference).Count(p => p.First == Quantize(p.Second, outputScale, outputZeroPoint, 0, 255));
            total += actual.Length;
        }

        double share = (double)exact / total;
        _output.WriteLine($"{backend}: {exact}/{total} outputs equal the QDQ reference exactly ({100 * share:F2}%).");
        Assert.True(share >= 0.95, $"{backend}: only {100 * share:F2}% of outputs equal the QDQ reference.");
    }

    [Fact]
    public void AnInputWithAnotherScaleIsRequantizedWithItsActualScale()
    {
        var c = new Case(1, 3, 5, 5, 4, 3, 3, PH: 1, PW: 1);
        Operands o = MakeOperands(c, seed: 5);
        var conv = new QuantizedConv2d("M", "conv", c.Options, WeightTensor(c, o), o.Bias,
            QParams.PerTensor(o.InputScale, o.InputZeroPoint, QuantDType.QUInt8),
            QParams.PerTensor(0.05f, 128, QuantDType.QUInt8), false, QuantBackend.X86);
        foreach (float actualScale in new[] { o.InputScale * 1.5f, o.InputScale, o.InputScale * 0.25f })
        {
            int zeroPoint = 7;
            QTensor y = conv.Forward(new QTensor([1, 3, 5, 5], QParams.PerTensor(actualScale, zeroPoint, QuantDType.QUInt8), Bytes(o.Input)));
            int[] acc = ConvAccumulate(o.Input, [1, 3, 5, 5], zeroPoint, o.Weight, new int[4], 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, out int oh, out int ow);
            int[] expected = acc.Select((a, i) => RequantizeX86(a, o.Bias![i / (oh * ow) % 4], actualScale, o.WeightScales[i / (oh * ow) % 4], 0.05f, 128, false)).ToArray();
            Assert.Equal(expected, y.IntRepr());
        }
    }

    [Fact]
    public void AffineWeightZeroPointsAreSubtracted()
    {
        // Hand-derived: 1x1 conv, one input channel, x = [10, 20], zx = 10, w = 5 with zw = 3:
        // acc = (x - 10) * (5 - 3) = [0, 20]; X86 with sx = sw = 1, sy = 1, zy = 0, no bias: q = acc.
        var weight = new QTensor([1, 1, 1, 1], QParams.PerTensor(1f, 3, QuantDType.QInt8), [5]);
        var conv = new QuantizedConv2d("M", "conv", new Conv2dOptions(1, 1, 1, 1), weight, null,
            QParams.PerTensor(1f, 10, QuantDType.QUInt8), QParams.PerTensor(1f, 0, QuantDType.QUInt8), false, QuantBackend.X86);
        QTensor y = conv.Forward(new QTensor([1, 1, 1, 2], QParams.PerTensor(1f, 10, QuantDType.QUInt8), [10, 20]));
        Assert.Equal(new[] { 0, 20 }, y.IntRepr());
    }

    [Fact]
    public void ToStringMatchesPyTorchsReprForSeed000()
    {
        var weight = new QTensor([1, 1, 1, 1], QParams.PerChannel([0.0024f], [0], 0, QuantDType.QInt8), [127]);
        var conv = new QuantizedConv2d("M", "conv1", new Conv2dOptions(1, 1, 1, 1), weight, [0.1f],
            QParams.PerTensor(0.0011f, 0, QuantDType.QUInt8), QParams.PerTensor(0.006616627331823111f, 0, QuantDType.QUInt8), true, QuantBackend.X86);
        Assert.Equal("QuantizedConvReLU2d(1, 1, kernel_size=(1, 1), stride=(1, 1), scale=0.006616627331823111, zero_point=0)", conv.ToString());

        var conv2 = new QuantizedConv2d("M", "conv2", new Conv2dOptions(1, 1, 1, 1), weight, [0.1f],
            QParams.PerTensor(0.0011f, 0, QuantDType.QUInt8), QParams.PerTensor(0.012025130912661552f, 0, QuantDType.QUInt8), false, QuantBackend.X86);
        Assert.Equal("QuantizedConv2d(1, 1, kernel_size=(1, 1), stride=(1, 1), scale=0.012025130912661552, zero_point=0)", conv2.ToString());
    }

    [Fact]
    public void ToStringShowsNonDefaultPaddingDilationGroupsAndMissingBias()
    {
        var weight = new QTensor([6, 2, 3, 3], QParams.PerTensor(0.01f, 0, QuantDType.QInt8));
        var conv = new QuantizedConv2d("M", "conv", new Conv2dOptions(4, 6, 3, 3, 2, 2, 1, 1, 2, 2, 2), weight, null,
            QParams.PerTensor(0.1f, 0, QuantDType.QUInt8), QParams.PerTensor(0.5f, 3, QuantDType.QUInt8), false, QuantBackend.Qnnpack);
        Assert.Equal("QuantizedConv2d(4, 6, kernel_size=(3, 3), stride=(2, 2), scale=0.5, zero_point=3, padding=(1, 1), dilation=(2, 2), groups=2, bias=False)", conv.ToString());
    }

    private static QuantizedConv2d ThreeChannelConv() =>
        new("M", "conv1", new Conv2dOptions(3, 2, 3, 3),
            new QTensor([2, 3, 3, 3], QParams.PerChannel([0.01f, 0.02f], [0, 0], 0, QuantDType.QInt8)), [0f, 1f],
            QParams.PerTensor(0.1f, 0, QuantDType.QUInt8), QParams.PerTensor(0.1f, 0, QuantDType.QUInt8), false, QuantBackend.X86);

    [Fact]
    public void WrongRankIsRejectedNamingModelLayerExpectedAndActual()
    {
        var error = Assert.Throws<ArgumentException>(() => ThreeChannelConv().Forward(new QTensor([3, 5, 5], QParams.PerTensor(0.1f, 0, QuantDType.QUInt8))));
        Assert.Contains("M.conv1: expected input [N, 3, H, W] (rank 4, 3 channels), got [3, 5, 5]", error.Message);
    }

    [Fact]
    public void WrongChannelCountIsRejectedNamingModelLayerExpectedAndActual()
    {
        var error = Assert.Throws<ArgumentException>(() => ThreeChannelConv().Forward(new QTensor([1, 1, 2, 3], QParams.PerTensor(0.1f, 0, QuantDType.QUInt8), MemoryFormat.ChannelsLast)));
        Assert.Contains("M.conv1: expected input [N, 3, H, W] (rank 4, 3 channels), got [1, 1, 2, 3]", error.Message);
    }

    [Fact]
    public void WrongDTypeIsRejectedNamingModelLayerExpectedAndActual()
    {
        var error = Assert.Throws<ArgumentException>(() => ThreeChannelConv().Forward(new QTensor([1, 3, 5, 5], QParams.PerTensor(0.1f, 0, QuantDType.QInt8))));
        Assert.Contains("M.conv1", error.Message);
        Assert.Contains("expected a torch.quint8 input, got torch.qint8 [1, 3, 5, 5]", error.Message);
    }

    [Fact]
    public void TooSmallSpatialSizeIsRejectedNamingTheSizes()
    {
        var error = Assert.Throws<ArgumentException>(() => ThreeChannelConv().Forward(new QTensor([1, 3, 2, 7], QParams.PerTensor(0.1f, 0, QuantDType.QUInt8))));
        Assert.Contains("M.conv1", error.Message);
        Assert.Contains("[1, 3, 2, 7]", error.Message);
        Assert.Contains("2x7", error.Message);
        Assert.Contains("3x3", error.Message);
    }

    [Fact]
    public void ConstructorRejectsAWeightOfTheWrongShapeOrDType()
    {
        QParams activation = QParams.PerTensor(0.1f, 0, QuantDType.QUInt8);
        var shapeError = Assert.Throws<ArgumentException>(() => new QuantizedConv2d("M", "conv1", new Conv2dOptions(4, 2, 3, 3, Groups: 2),
            new QTensor([2, 4, 3, 3], QParams.PerTensor(0.1f, 0, QuantDType.QInt8)), null, activation, activation, false, QuantBackend.X86));
        Assert.Contains("M.conv1: expected weight [2, 2, 3, 3]", shapeError.Message);
        Assert.Contains("got [2, 4, 3, 3]", shapeError.Message);

        var dtypeError = Assert.Throws<ArgumentException>(() => new QuantizedConv2d("M", "conv1", new Conv2dOptions(1, 1, 1, 1),
            new QTensor([1, 1, 1, 1], QParams.PerTensor(0.1f, 0, QuantDType.QUInt8)), null, activation, activation, false, QuantBackend.X86));
        Assert.Contains("M.conv1: expected a torch.qint8 weight, got torch.quint8", dtypeError.Message);

        var biasError = Assert.Throws<ArgumentException>(() => new QuantizedConv2d("M", "conv1", new Conv2dOptions(1, 2, 1, 1),
            new QTensor([2, 1, 1, 1], QParams.PerTensor(0.1f, 0, QuantDType.QInt8)), [1f], activation, activation, false, QuantBackend.X86));
        Assert.Contains("M.conv1: expected a bias of 2 values", biasError.Message);

        var axisError = Assert.Throws<ArgumentException>(() => new QuantizedConv2d("M", "conv1", new Conv2dOptions(2, 2, 1, 1),
            new QTensor([2, 2, 1, 1], QParams.PerChannel([0.1f, 0.1f], [0, 0], 1, QuantDType.QInt8)), null, activation, activation, false, QuantBackend.X86));
        Assert.Contains("M.conv1: per-channel weight qparams must be along axis 0", axisError.Message);
    }

    [Fact]
    public void EveryOutputChannelSeesOnlyItsGroup()
    {
        // Hand-derived, groups = 2, 1x1 kernel, 4 input channels of one pixel x = [1, 2, 3, 4] (zx = 0),
        // weights all 1 (OC = 2, IC/g = 2): channel 0 sums x0 + x1 = 3, channel 1 sums x2 + x3 = 7.
        var weight = new QTensor([2, 2, 1, 1], QParams.PerTensor(1f, 0, QuantDType.QInt8), [1, 1, 1, 1]);
        var conv = new QuantizedConv2d("M", "conv", new Conv2dOptions(4, 2, 1, 1, Groups: 2), weight, null,
            QParams.PerTensor(1f, 0, QuantDType.QUInt8), QParams.PerTensor(1f, 0, QuantDType.QUInt8), false, QuantBackend.Qnnpack);
        QTensor y = conv.Forward(new QTensor([1, 4, 1, 1], QParams.PerTensor(1f, 0, QuantDType.QUInt8), [1, 2, 3, 4]));
        Assert.Equal(new[] { 3, 7 }, y.IntRepr());
    }
}
