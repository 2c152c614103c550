using System;
using QuantGen.Modules;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.OpTestSupport;

namespace QuantGen.Tests.Modules;

/// <summary>Max, average and adaptive average pooling modules against their QDQ references (libtorch float ops on the dequantized input).</summary>
public class QuantizedPoolingTests
{
    private readonly ITestOutputHelper _output;

    public QuantizedPoolingTests(ITestOutputHelper output) => _output = output;

    public static TheoryData<QuantDType, int[], int[]> Cases => new()
    {
        // dtype, [N, C, H, W], [k, stride, pad, dilation, ceil]
        { QuantDType.QUInt8, [2, 3, 9, 11], [3, 2, 1, 1, 0] },
        { QuantDType.QInt8, [1, 17, 8, 7], [2, 2, 0, 1, 1] },
        { QuantDType.QUInt8, [1, 1, 13, 5], [3, 1, 1, 2, 1] },
        { QuantDType.QInt8, [2, 17, 7, 10], [3, 2, 1, 1, 1] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MaxPoolEqualsItsQdqReferenceExactly(QuantDType dtype, int[] shape, int[] p)
    {
        QParams q = QParams.PerTensor(0.043f, dtype == QuantDType.QUInt8 ? 71 : -13, dtype);
        QTensor x = RandomTensor(new Random(shape[1] + p[0]), shape, q, MemoryFormat.Contiguous);
        QTensor y = new QuantizedMaxPool2d("M", "pool", Pool2dOptions.Square(p[0], p[1], p[2], p[3], ceilMode: p[4] == 1)).Forward(x);
        Assert.Same(q, y.QParams);

        using var scope = torch.NewDisposeScope();
        var reference = torch.nn.functional.max_pool2d(DequantizedTorch(x), [p[0], p[0]], [p[1], p[1]], [p[2], p[2]], [p[3], p[3]], p[4] == 1);
        Assert.Equal(reference.shape, Array.ConvertAll(y.Shape, d => (long)d));

        // max commutes with the monotone dequantize, and re-quantizing a dequantized value with the same qparams is exact.
        AssertWithinOneStep(_output, $"max_pool2d {dtype} [{string.Join(",", p)}]", QuantizeTorch(reference, q), y.IntRepr(), exactFloor: 1.0);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void AvgPoolIsWithinOneStepOfItsQdqReference(QuantDType dtype, int[] shape, int[] p)
    {
        if (p[3] != 1)
        {
            p = [p[0], p[1], p[2], 1, p[4]];   // average pooling has no dilation
        }

        QParams q = QParams.PerTensor(0.043f, dtype == QuantDType.QUInt8 ? 71 : -13, dtype);
        QTensor x = RandomTensor(new Random(shape[1] + p[1]), shape, q);
        foreach (bool countIncludePad in new[] { true, false })
        {
            QTensor y = new QuantizedAvgPool2d("M", "pool", Pool2dOptions.Square(p[0], p[1], p[2], ceilMode: p[4] == 1, countIncludePad: countIncludePad)).Forward(x);
            Assert.Same(q, y.QParams);

            using var scope = torch.NewDisposeScope();
            var reference = torch.nn.functional.avg_pool2d(DequantizedTorch(x), [p[0], p[0]], [p[1], p[1]], [p[2], p[2]], p[4] == 1, countIncludePad);
            Assert.Equal(reference.shape, Array.ConvertAll(y.Shape, d => (long)d));

            // Averages of integers land on exact ties often; libtorch's float sum and division can break a tie
            // the other way than the exact integer sum does, so only "within one step" holds.
            AssertWithinOneStep(_output, $"avg_pool2d {dtype} [{string.Join(",", p)}] count_include_pad={countIncludePad}", QuantizeTorch(reference, q), y.IntRepr());
        }
    }

    [Theory]
    [InlineData(QuantDType.QUInt8, 1, 1)]
    [InlineData(QuantDType.QInt8, 3, 3)]
    [InlineData(QuantDType.QUInt8, 4, 5)]
    [InlineData(QuantDType.QInt8, 9, 13)]
    public void AdaptiveAvgPoolIsWithinOneStepOfItsQdqReference(QuantDType dtype, int outHeight, int outWidth)
    {
        QParams q = QParams.PerTensor(0.043f, dtype == QuantDType.QUInt8 ? 71 : -13, dtype);
        QTensor x = RandomTensor(new Random(outHeight * 10 + outWidth), [2, 17, 9, 11], q);
        QTensor y = new QuantizedAdaptiveAvgPool2d("M", "avgpool", outHeight, outWidth).Forward(x);
        Assert.Equal(new[] { 2, 17, outHeight, outWidth }, y.Shape);
        Assert.Same(q, y.QParams);

        using var scope = torch.NewDisposeScope();
        var reference = torch.nn.functional.adaptive_avg_pool2d(DequantizedTorch(x), [outHeight, outWidth]);
        AssertWithinOneStep(_output, $"adaptive_avg_pool2d {dtype} -> {outHeight}x{outWidth}", QuantizeTorch(reference, q), y.IntRepr());
    }

    [Fact]
    public void BadOptionsAndInputsAreRejectedNamingModelAndLayer()
    {
        QParams q = QParams.PerTensor(0.1f, 3, QuantDType.QUInt8);
        var padding = Assert.Throws<ArgumentException>(() => new QuantizedMaxPool2d("M", "maxpool", Pool2dOptions.Square(2, 2, padding: 2)));
        Assert.Contains("M.maxpool: padding (2, 2) must be at most half of the effective kernel size", padding.Message);

        var dilation = Assert.Throws<ArgumentException>(() => new QuantizedAvgPool2d("M", "avgpool", Pool2dOptions.Square(2, dilation: 2)));
        Assert.Contains("M.avgpool: average pooling has no dilation", dilation.Message);

        var divisor = Assert.Throws<ArgumentException>(() => new QuantizedAvgPool2d("M", "avgpool", Pool2dOptions.Square(2, divisorOverride: 0)));
        Assert.Contains("M.avgpool: divisor_override must not be zero", divisor.Message);

        var rank = Assert.Throws<ArgumentException>(() => new QuantizedMaxPool2d("M", "maxpool", Pool2dOptions.Square(2)).Forward(new QTensor([3, 8, 8], q)));
        Assert.Contains("M.maxpool: expected input [N, C, H, W] (rank 4), got [3, 8, 8]", rank.Message);

        var small = Assert.Throws<ArgumentException>(() => new QuantizedAvgPool2d("M", "avgpool", Pool2dOptions.Square(3)).Forward(new QTensor([1, 2, 2, 2], q)));
        Assert.Contains("M.avgpool: input [1, 2, 2, 2] is too small: the output would be 0x0", small.Message);

        var adaptive = Assert.Throws<ArgumentException>(() => new QuantizedAdaptiveAvgPool2d("M", "avgpool", 1, 1).Forward(new QTensor([1, 2, 0, 2], q)));
        Assert.Contains("M.avgpool: expected input [N, C, H, W] (rank 4, C, H and W positive), got [1, 2, 0, 2]", adaptive.Message);

        Assert.Throws<ArgumentException>(() => new QuantizedAdaptiveAvgPool2d("M", "avgpool", 0, 1));
    }

    [Fact]
    public void PrintLikePyTorchsModules()
    {
        Assert.Equal("MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)", new QuantizedMaxPool2d("M", "p", Pool2dOptions.Square(3, 2, 1)).ToString());
        Assert.Equal("AvgPool2d(kernel_size=2, stride=2, padding=0)", new QuantizedAvgPool2d("M", "p", Pool2dOptions.Square(2)).ToString());
        Assert.Equal("AdaptiveAvgPool2d(output_size=(1, 1))", new QuantizedAdaptiveAvgPool2d("M", "p", 1, 1).ToString());
    }
}
