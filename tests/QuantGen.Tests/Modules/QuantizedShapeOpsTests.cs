using System;
using System.Linq;
using QuantGen.Modules;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.OpTestSupport;

namespace QuantGen.Tests.Modules;

/// <summary>Nearest upsampling and reshape: values move, never change.</summary>
public class QuantizedShapeOpsTests
{
    private readonly ITestOutputHelper _output;

    public QuantizedShapeOpsTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData(QuantDType.QUInt8, 0, 0, 2.0, 2.0)]
    [InlineData(QuantDType.QInt8, 0, 0, 1.5, 3.0)]
    [InlineData(QuantDType.QUInt8, 9, 14, 0, 0)]
    [InlineData(QuantDType.QInt8, 3, 4, 0, 0)]
    public void UpsampleNearestEqualsItsQdqReferenceExactly(QuantDType dtype, int outHeight, int outWidth, double scaleHeight, double scaleWidth)
    {
        QParams q = QParams.PerTensor(0.043f, dtype == QuantDType.QUInt8 ? 71 : -13, dtype);
        QTensor x = RandomTensor(new Random(outHeight + (int)scaleWidth), [2, 17, 5, 7], q, MemoryFormat.Contiguous);
        var upsample = outHeight > 0
            ? new QuantizedUpsampleNearest2d("M", "up", outHeight, outWidth, null, null)
            : new QuantizedUpsampleNearest2d("M", "up", null, null, scaleHeight, scaleWidth);
        QTensor y = upsample.Forward(x);
        Assert.Same(q, y.QParams);

        using var scope = torch.NewDisposeScope();
        var reference = outHeight > 0
            ? torch.nn.functional.interpolate(DequantizedTorch(x), size: [outHeight, outWidth], mode: torch.InterpolationMode.Nearest)
            : torch.nn.functional.interpolate(DequantizedTorch(x), scale_factor: [scaleHeight, scaleWidth], mode: torch.InterpolationMode.Nearest);
        Assert.Equal(reference.shape, Array.ConvertAll(y.Shape, d => (long)d));
        AssertWithinOneStep(_output, $"upsample nearest {dtype}", QuantizeTorch(reference, q), y.IntRepr(), exactFloor: 1.0);
    }

    [Fact]
    public void UpsampleArgumentsAreCheckedNamingTheLayer()
    {
        var both = Assert.Throws<ArgumentException>(() => new QuantizedUpsampleNearest2d("M", "up", 4, 4, 2.0, 2.0));
        Assert.Contains("M.up: give either the output size or the scale factors, not both", both.Message);
        var neither = Assert.Throws<ArgumentException>(() => new QuantizedUpsampleNearest2d("M", "up", null, null, null, null));
        Assert.Contains("not neither", neither.Message);
        var half = Assert.Throws<ArgumentException>(() => new QuantizedUpsampleNearest2d("M", "up", 4, null, null, null));
        Assert.Contains("M.up: the output size needs a positive height and width, got (4, None)", half.Message);
        var negative = Assert.Throws<ArgumentException>(() => new QuantizedUpsampleNearest2d("M", "up", null, null, 2.0, -1.0));
        Assert.Contains("M.up: the scale factors need a positive, finite height and width factor", negative.Message);

        QParams q = QParams.PerTensor(0.1f, 0, QuantDType.QUInt8);
        var rank = Assert.Throws<ArgumentException>(() => new QuantizedUpsampleNearest2d("M", "up", null, null, 2.0, 2.0).Forward(new QTensor([2, 3], q)));
        Assert.Contains("M.up: expected input [N, C, H, W]", rank.Message);
        var empty = Assert.Throws<ArgumentException>(() => new QuantizedUpsampleNearest2d("M", "up", null, null, 0.1, 1.0).Forward(new QTensor([1, 1, 3, 3], q)));
        Assert.Contains("gives an empty output 0x3", empty.Message);

        Assert.Equal("Upsample(scale_factor=2.0, mode='nearest')", new QuantizedUpsampleNearest2d("M", "up", null, null, 2.0, 2.0).ToString());
        Assert.Equal("Upsample(size=(4, 6), mode='nearest')", new QuantizedUpsampleNearest2d("M", "up", 4, 6, null, null).ToString());
    }

    [Theory]
    [InlineData(QuantDType.QUInt8, new[] { 2, -1 })]
    [InlineData(QuantDType.QInt8, new[] { -1, 35 })]
    [InlineData(QuantDType.QUInt8, new[] { 2, 3, 5, 7 })]
    [InlineData(QuantDType.QInt8, new[] { 6, 5, 7, 1 })]
    public void ReshapeKeepsTheLogicalOrderOfAChannelsLastInput(QuantDType dtype, int[] target)
    {
        QParams q = QParams.PerTensor(0.043f, dtype == QuantDType.QUInt8 ? 71 : -13, dtype);
        QTensor x = RandomTensor(new Random(target.Length), [2, 3, 5, 7], q, MemoryFormat.ChannelsLast);
        QTensor y = new QuantizedReshape("M", "flatten", target).Forward(x);

        using var scope = torch.NewDisposeScope();
        var reference = ToTorch(x, channelsLast: true).reshape(target.Select(d => (long)d).ToArray());
        Assert.Equal(reference.shape, Array.ConvertAll(y.Shape, d => (long)d));
        Assert.Equal(Ints(reference), y.IntRepr());
        Assert.Equal(MemoryFormat.Contiguous, y.Format);
        Assert.Same(q, y.QParams);
        Assert.NotSame(x.Storage, y.Storage);
    }

    [Fact]
    public void ReshapeErrorsNameTheLayerAndSayWhatIsWrong()
    {
        QParams q = QParams.PerTensor(0.1f, 0, QuantDType.QUInt8);
        var size = Assert.Throws<ArgumentException>(() => new QuantizedReshape("M", "view", [2, -1]).Forward(new QTensor([7], q)));
        Assert.Contains("M.view: shape '[2, -1]' is invalid for input of size 7", size.Message);
        var exact = Assert.Throws<ArgumentException>(() => new QuantizedReshape("M", "view", [2, 4]).Forward(new QTensor([7], q)));
        Assert.Contains("M.view: shape '[2, 4]' is invalid for input of size 7", exact.Message);
        var two = Assert.Throws<ArgumentException>(() => new QuantizedReshape("M", "view", [-1, -1]));
        Assert.Contains("M.view: only one dimension can be inferred (-1), got [-1, -1]", two.Message);
        var negative = Assert.Throws<ArgumentException>(() => new QuantizedReshape("M", "view", [-2, 3]));
        Assert.Contains("M.view: invalid shape dimension -2 in [-2, 3]", negative.Message);
    }
}
