using System;
using System.Collections.Generic;
using QuantGen.Modules;
using static QuantGen.Tests.Serialization.SerializationTestSupport;

namespace QuantGen.Tests.Modules;

/// <summary>
/// Zero-size and over-large inputs (issue 12): a batch of 0 gives an empty result of the right shape, as
/// PyTorch does; an empty plane or an output beyond QuantGen's bounds is an <see cref="ArgumentException"/>
/// naming model, layer and shape — never an internal exception type from a kernel or an allocator.
/// </summary>
public sealed class ZeroSizeAndLimitTests
{
    private static readonly QParams Q = QParams.PerTensor(0.05f, 128, QuantDType.QUInt8);

    private static QuantizedConv2d Conv3x3() =>
        Conv(new Random(1), "conv", new Conv2dOptions(2, 3, 3, 3, PadHeight: 1, PadWidth: 1), perChannel: true, bias: true, Q, Q, relu: false, QuantBackend.X86);

    private static QuantizedConvTranspose2d Deconv() =>
        ConvTranspose(new Random(2), "deconv", new ConvTranspose2dOptions(2, 3, 2, 2, 2, 2), perChannel: false, bias: true, Q, Q, relu: false, QuantBackend.X86);

    /// <summary>Every one-input spatial layer with what a batch of 0 of a [0, 2, 4, 4] input must give.</summary>
    public static IEnumerable<object[]> SpatialLayers()
    {
        yield return ["conv", new int[] { 0, 3, 4, 4 }];
        yield return ["deconv", new int[] { 0, 3, 8, 8 }];
        yield return ["maxpool", new int[] { 0, 2, 2, 2 }];
        yield return ["avgpool", new int[] { 0, 2, 2, 2 }];
        yield return ["gap", new int[] { 0, 2, 1, 1 }];
        yield return ["upsample", new int[] { 0, 2, 8, 8 }];
        yield return ["bn", new int[] { 0, 2, 4, 4 }];
        yield return ["relu", new int[] { 0, 2, 4, 4 }];
        yield return ["relu6", new int[] { 0, 2, 4, 4 }];
        yield return ["flatten", new int[] { 0, 32 }];
    }

    private static Func<QTensor, QTensor> Layer(string name) => name switch
    {
        "conv" => Conv3x3().Forward,
        "deconv" => Deconv().Forward,
        "maxpool" => new QuantizedMaxPool2d("Net", "maxpool", Pool2dOptions.Square(2)).Forward,
        "avgpool" => new QuantizedAvgPool2d("Net", "avgpool", Pool2dOptions.Square(2)).Forward,
        "gap" => new QuantizedAdaptiveAvgPool2d("Net", "gap", 1, 1).Forward,
        "upsample" => new QuantizedUpsampleNearest2d("Net", "upsample", null, null, 2.0, 2.0).Forward,
        "bn" => new QuantizedBatchNorm2d("Net", "bn", [1f, 1f], [0f, 0f], Q, relu: false).Forward,
        "relu" => new QuantizedReLU("Net", "relu").Forward,
        "relu6" => new QuantizedHardtanh("Net", "relu6", 0f, 6f).Forward,
        "flatten" => new QuantizedFlatten("Net", "flatten").Forward,
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(SpatialLayers))]
    public void ABatchOfZeroGivesAnEmptyResultOfTheRightShape(string layer, int[] expectedShape)
    {
        QTensor empty = new([0, 2, 4, 4], Q, MemoryFormat.ChannelsLast);
        QTensor result = Layer(layer)(empty);
        Assert.Equal(expectedShape, result.Shape);
        Assert.Equal(0, result.Count);
        Assert.Empty(result.Dequantize());
    }

    [Theory]
    [InlineData("conv")]
    [InlineData("deconv")]
    [InlineData("maxpool")]
    [InlineData("avgpool")]
    [InlineData("gap")]
    [InlineData("upsample")]
    public void AnEmptyPlaneIsRefusedNamingModelLayerAndShape(string layer)
    {
        // PyTorch refuses an empty H or W for these ops too; the point is a message, not an internal exception.
        foreach (int[] shape in new[] { new[] { 1, 2, 0, 4 }, new[] { 1, 2, 4, 0 } })
        {
            QTensor empty = new(shape, Q, MemoryFormat.ChannelsLast);
            var ex = Assert.Throws<ArgumentException>(() => Layer(layer)(empty));
            Assert.StartsWith($"Net.{layer}: expected input [N, ", ex.Message);
            Assert.Contains($"[1, 2, {shape[2]}, {shape[3]}]", ex.Message);
        }
    }

    [Fact]
    public void LinearAddAndCatTakeABatchOfZero()
    {
        QuantizedLinear fc = Linear(new Random(4), "fc", 8, 5, perChannel: true, bias: true, Q, Q, relu: false, QuantBackend.X86);
        Assert.Equal([0, 5], fc.Forward(new QTensor([0, 8], Q)).Shape);

        QTensor a = new([0, 2, 4, 4], Q, MemoryFormat.ChannelsLast);
        QTensor b = new([0, 3, 4, 4], Q, MemoryFormat.ChannelsLast);
        Assert.Equal([0, 2, 4, 4], new QuantizedAdd("Net", "add", Q, relu: false).Forward(a, a).Shape);
        Assert.Equal([0, 5, 4, 4], new QuantizedCat("Net", "cat", 1, Q).Forward(a, b).Shape);
    }

    [Fact]
    public void CatRefusesAJoinedDimensionBeyondInt32ByName()
    {
        // Empty tensors can have huge dimensions without storage; before, the sum was an OverflowException.
        QTensor a = new([0, 1_100_000_000], Q);
        var ex = Assert.Throws<ArgumentException>(() => new QuantizedCat("Net", "cat", 1, Q).Forward(a, a));
        Assert.StartsWith("Net.cat: the inputs joined along dim 1 would have size 2200000000, more than QuantGen's int32 sizes", ex.Message);
    }

    [Fact]
    public void QuantizeInputTakesAnEmptyShapeAndRefusesOneThatOverflows()
    {
        var quant = new QuantizeInput("Net", "quant", Q);
        QTensor empty = quant.Forward(ReadOnlySpan<float>.Empty, [0, 2, 4, 4]);
        Assert.Equal([0, 2, 4, 4], empty.Shape);

        // 65536^4 = 2^64 wraps to 0 in 64-bit arithmetic: an empty span must not be taken for it.
        var ex = Assert.Throws<ArgumentException>(() => quant.Forward(ReadOnlySpan<float>.Empty, [65536, 65536, 65536, 65536]));
        Assert.Equal("Net.quant: shape [65536, 65536, 65536, 65536] holds more values than a tensor can (2147483591). (Parameter 'shape')", ex.Message);

        // A zero dimension after huge ones is still an empty tensor, as in PyTorch.
        Assert.Equal(0, quant.Forward(ReadOnlySpan<float>.Empty, [65536, 65536, 65536, 0]).Count);
    }

    [Fact]
    public void AConvOutputBeyondThePlaneBoundIsRefusedByName()
    {
        // Padding 600 on a 4x4 input would make a 1202x1202 plane: more than 4096x16 = 65,536 positions.
        var conv = Conv(new Random(5), "conv", new Conv2dOptions(2, 3, 3, 3, PadHeight: 600, PadWidth: 600), perChannel: false, bias: false, Q, Q, relu: false, QuantBackend.X86);
        var ex = Assert.Throws<ArgumentException>(() => conv.Forward(new QTensor([1, 2, 4, 4], Q, MemoryFormat.ChannelsLast)));
        Assert.Equal(
            "Net.conv: input [1, 2, 4, 4] would give an output plane of 1202x1202, expected at most 65,536 positions (4096× the input's 16, or 65,536; see LayerLimits) (kernel_size=(3, 3), stride=(1, 1), padding=(600, 600), dilation=(1, 1)). (Parameter 'input')",
            ex.Message);

        // Padding 100 stays within the bound and runs (an odd model, but not one the bound is for).
        var wide = Conv(new Random(5), "conv", new Conv2dOptions(2, 3, 3, 3, PadHeight: 100, PadWidth: 100), perChannel: false, bias: false, Q, Q, relu: false, QuantBackend.X86);
        Assert.Equal([1, 3, 202, 202], wide.Forward(new QTensor([1, 2, 4, 4], Q, MemoryFormat.ChannelsLast)).Shape);
    }

    [Fact]
    public void AnUpsamplingBeyondThePlaneBoundIsRefusedByName()
    {
        var up = new QuantizedUpsampleNearest2d("Net", "upsample", null, null, 65535.0, 65535.0);
        var ex = Assert.Throws<ArgumentException>(() => up.Forward(new QTensor([1, 2, 4, 4], Q, MemoryFormat.ChannelsLast)));
        Assert.StartsWith("Net.upsample: input [1, 2, 4, 4] would give an output plane of 262140x262140", ex.Message);

        var beyond = Assert.Throws<ArgumentException>(() => new QuantizedUpsampleNearest2d("Net", "upsample", null, null, 1e9, 2.0));
        Assert.StartsWith("Net.upsample: scale_factor must be at most 65535", beyond.Message);
    }

    [Fact]
    public void AnInputScaleThatCannotBeRequantizedIsRefusedNamingTheLayer()
    {
        // Found by the fuzzer: a forged upstream scale of 2e-38 made the Qnnpack bias factor NaN, and the
        // ArgumentException said "Qnnpack bias: ..." without the layer.
        // A zero bias over a product scale that underflows: 0 · (1 / 0) is NaN.
        var conv = Conv(new Random(9), "conv", new Conv2dOptions(2, 3, 1, 1), perChannel: false, bias: true, Q, Q, relu: false, QuantBackend.Qnnpack);
        conv.SetBias(new float[3]);
        QTensor tiny = new([1, 2, 2, 2], QParams.PerTensor(2.3510288E-38f, 128, QuantDType.QUInt8), MemoryFormat.ChannelsLast);
        var ex = Assert.Throws<ArgumentException>(() => conv.Forward(tiny));
        Assert.StartsWith("Net.conv: an input of scale 2.3510288E-38 cannot be requantized to the output scale 0.05: Qnnpack bias:", ex.Message);
    }

    [Fact]
    public void ALinearWhoseOutputWouldOverflowAnIntIsRefusedByName()
    {
        // in 1 -> out 4096 over 2^20 rows: 2^32 outputs. Before: OverflowException from checked arithmetic.
        QuantizedLinear fc = Linear(new Random(6), "fc", 1, 4096, perChannel: false, bias: false, Q, Q, relu: false, QuantBackend.X86);
        var ex = Assert.Throws<ArgumentException>(() => fc.Forward(new QTensor([1 << 20, 1], Q)));
        Assert.StartsWith("Net.fc: input [1048576, 1] would give an output of more than 2147483647 elements", ex.Message);
    }

    [Fact]
    public void ConstructorsNameTheFieldThatExceedsTheBound()
    {
        var dilation = Assert.Throws<ArgumentException>(() => new QuantizedMaxPool2d("Net", "pool", Pool2dOptions.Square(3, dilation: 0x7FFFFFFE)));
        Assert.StartsWith("Net.pool: dilation must be positive and at most 65,535 (QuantGen's bound on layer geometry), got (2147483646, 2147483646).", dilation.Message);
        var gap = Assert.Throws<ArgumentException>(() => new QuantizedAdaptiveAvgPool2d("Net", "gap", 65536, 1));
        Assert.StartsWith("Net.gap: output_size must be positive and at most 65,535", gap.Message);
        var pad = Assert.Throws<ArgumentException>(() => Conv(new Random(7), "conv", new Conv2dOptions(2, 3, 3, 3, PadHeight: 65536), perChannel: false, bias: false, Q, Q, relu: false, QuantBackend.X86));
        Assert.StartsWith("Net.conv: padding must be non-negative and at most 65,535 (QuantGen's bound on layer geometry), got (65536, 0).", pad.Message);
        var outputPadding = Assert.Throws<ArgumentException>(() => ConvTranspose(new Random(8), "up", new ConvTranspose2dOptions(2, 3, 2, 2, 65535, 2, OutputPadHeight: 65536), perChannel: false, bias: false, Q, Q, relu: false, QuantBackend.X86));
        Assert.StartsWith("Net.up: output_padding must be non-negative and at most 65,535", outputPadding.Message);
    }
}
