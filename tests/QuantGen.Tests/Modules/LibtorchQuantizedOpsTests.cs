using System;
using System.Linq;
using QuantGen.Modules;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.OpTestSupport;

namespace QuantGen.Tests.Modules;

/// <summary>
/// The int8 ops against libtorch's own quantized kernels (TorchSharp 0.107, libtorch 2.10), run on
/// the same integers: max pool, average pool, adaptive average pool, nearest upsampling and cat.
/// Inputs are channels-last, as PyTorch's quantized conv outputs are (QuantGen's rules are those of
/// the channels-last kernels). Every op here must be exactly equal, element for element.
/// </summary>
/// <remarks>
/// Not covered here because TorchSharp cannot reach libtorch's kernel: quantized add
/// (<c>quantized::add</c> is not exposed; <c>aten::add</c> has no quantized kernel), batch norm
/// (<c>torch.quantized_batch_norm</c> is marked "not implemented" in TorchSharp, and
/// <c>F.batch_norm</c> has no quantized kernel) and transposed convolution (needs prepacked weights).
/// Those are checked against their QDQ references and independent re-computations instead.
/// </remarks>
public class LibtorchQuantizedOpsTests
{
    private readonly ITestOutputHelper _output;

    public LibtorchQuantizedOpsTests(ITestOutputHelper output) => _output = output;

    public static TheoryData<QuantDType, int[], int[]> MaxPoolCases => new()
    {
        // dtype, [N, C, H, W], [k, stride, pad, dilation, ceil]
        { QuantDType.QUInt8, [2, 3, 9, 11], [3, 2, 1, 1, 0] },
        { QuantDType.QUInt8, [1, 17, 8, 8], [2, 2, 0, 1, 0] },
        { QuantDType.QInt8, [2, 17, 7, 10], [3, 2, 1, 2, 1] },
        { QuantDType.QInt8, [1, 1, 13, 5], [2, 1, 1, 1, 1] },
        { QuantDType.QUInt8, [2, 64, 6, 7], [3, 3, 1, 1, 1] },
    };

    [Theory]
    [MemberData(nameof(MaxPoolCases))]
    public void MaxPoolEqualsLibtorch(QuantDType dtype, int[] shape, int[] p)
    {
        var random = new Random(shape.Sum() + p.Sum());
        QParams qparams = QParams.PerTensor(0.07f, dtype == QuantDType.QUInt8 ? 131 : -5, dtype);
        QTensor x = RandomTensor(random, shape, qparams);
        var options = Pool2dOptions.Square(p[0], p[1], p[2], p[3], ceilMode: p[4] == 1);
        int[] ours = new QuantizedMaxPool2d("M", "pool", options).Forward(x).IntRepr();

        using var scope = torch.NewDisposeScope();
        var y = torch.nn.functional.max_pool2d(ToTorch(x, channelsLast: true), [p[0], p[0]], [p[1], p[1]], [p[2], p[2]], [p[3], p[3]], p[4] == 1);
        AssertExact("max_pool2d", Ints(y), ours);
    }

    public static TheoryData<QuantDType, int[], int[], int> AvgPoolCases => new()
    {
        // dtype, [N, C, H, W], [k, stride, pad, ceil, count_include_pad], divisor_override (0 = none)
        { QuantDType.QUInt8, [2, 3, 9, 11], [3, 2, 1, 0, 1], 0 },
        { QuantDType.QUInt8, [1, 17, 8, 8], [2, 2, 0, 0, 1], 0 },
        { QuantDType.QInt8, [2, 17, 7, 10], [3, 2, 1, 1, 0], 0 },
        { QuantDType.QInt8, [1, 1, 13, 5], [2, 1, 1, 1, 1], 0 },
        { QuantDType.QUInt8, [2, 64, 6, 7], [3, 3, 1, 1, 0], 0 },
        { QuantDType.QUInt8, [1, 9, 7, 7], [3, 2, 1, 0, 1], 5 },
        { QuantDType.QUInt8, [1, 40, 4, 4], [2, 2, 0, 0, 1], 0 },
    };

    [Theory]
    [MemberData(nameof(AvgPoolCases))]
    public void AvgPoolEqualsLibtorchsChannelsLastKernel(QuantDType dtype, int[] shape, int[] p, int divisor)
    {
        var random = new Random(shape.Sum() + p.Sum() + divisor);

        // An odd zero point: ties of the average then round differently in the NHWC and NCHW kernels.
        QParams qparams = QParams.PerTensor(0.07f, dtype == QuantDType.QUInt8 ? 131 : -5, dtype);
        QTensor x = RandomTensor(random, shape, qparams);
        int? divisorOverride = divisor == 0 ? null : divisor;
        var options = Pool2dOptions.Square(p[0], p[1], p[2], ceilMode: p[3] == 1, countIncludePad: p[4] == 1, divisorOverride: divisorOverride);
        int[] ours = new QuantizedAvgPool2d("M", "pool", options).Forward(x).IntRepr();

        using var scope = torch.NewDisposeScope();
        var y = torch.nn.functional.avg_pool2d(ToTorch(x, channelsLast: true), [p[0], p[0]], [p[1], p[1]], [p[2], p[2]], p[3] == 1, p[4] == 1, divisorOverride);
        AssertExact("avg_pool2d (channels-last)", Ints(y), ours);

        // libtorch's NCHW kernel adds the zero point before rounding: it differs on ties (reported, not asserted).
        var contiguous = torch.nn.functional.avg_pool2d(ToTorch(x, channelsLast: false), [p[0], p[0]], [p[1], p[1]], [p[2], p[2]], p[3] == 1, p[4] == 1, divisorOverride);
        (int exact, int worst) = Compare(Ints(contiguous), ours);
        _output.WriteLine($"  vs libtorch's contiguous kernel: {exact}/{ours.Length} exact, max |diff| {worst}");
        Assert.True(worst <= 1);
    }

    public static TheoryData<QuantDType, int[], int, int> AdaptiveCases => new()
    {
        { QuantDType.QUInt8, [2, 3, 9, 11], 1, 1 },
        { QuantDType.QUInt8, [1, 17, 7, 7], 3, 3 },
        { QuantDType.QInt8, [2, 17, 10, 7], 4, 3 },
        { QuantDType.QInt8, [1, 1, 5, 13], 2, 6 },
        { QuantDType.QUInt8, [2, 64, 6, 7], 1, 1 },
        { QuantDType.QUInt8, [1, 5, 3, 4], 5, 7 },
    };

    [Theory]
    [MemberData(nameof(AdaptiveCases))]
    public void AdaptiveAvgPoolEqualsLibtorchsChannelsLastKernel(QuantDType dtype, int[] shape, int outHeight, int outWidth)
    {
        var random = new Random(shape.Sum() + (outHeight * 7) + outWidth);
        QParams qparams = QParams.PerTensor(0.07f, dtype == QuantDType.QUInt8 ? 131 : -5, dtype);
        QTensor x = RandomTensor(random, shape, qparams);
        int[] ours = new QuantizedAdaptiveAvgPool2d("M", "pool", outHeight, outWidth).Forward(x).IntRepr();

        using var scope = torch.NewDisposeScope();
        var y = torch.nn.functional.adaptive_avg_pool2d(ToTorch(x, channelsLast: true), [outHeight, outWidth]);
        AssertExact("adaptive_avg_pool2d (channels-last)", Ints(y), ours);

        var contiguous = torch.nn.functional.adaptive_avg_pool2d(ToTorch(x, channelsLast: false), [outHeight, outWidth]);
        (int exact, int worst) = Compare(Ints(contiguous), ours);
        _output.WriteLine($"  vs libtorch's contiguous kernel: {exact}/{ours.Length} exact, max |diff| {worst}");
        Assert.True(worst <= 1);
    }

    public static TheoryData<QuantDType, int[], int, int, double, double> UpsampleCases => new()
    {
        // dtype, shape, outH, outW (0 = use scales), scaleH, scaleW
        { QuantDType.QUInt8, [2, 3, 5, 7], 0, 0, 2.0, 2.0 },
        { QuantDType.QInt8, [1, 17, 4, 6], 0, 0, 3.0, 1.5 },
        { QuantDType.QUInt8, [1, 5, 7, 3], 0, 0, 1.7, 2.3 },
        { QuantDType.QUInt8, [1, 4, 5, 7], 11, 13, 0, 0 },
        { QuantDType.QInt8, [2, 3, 9, 8], 4, 5, 0, 0 },
        { QuantDType.QUInt8, [1, 2, 3, 3], 0, 0, 1.2, 1.2 },
    };

    [Theory]
    [MemberData(nameof(UpsampleCases))]
    public void UpsampleNearestEqualsLibtorch(QuantDType dtype, int[] shape, int outHeight, int outWidth, double scaleHeight, double scaleWidth)
    {
        var random = new Random(shape.Sum() + outHeight + outWidth + (int)(scaleHeight * 10));
        QParams qparams = QParams.PerTensor(0.07f, dtype == QuantDType.QUInt8 ? 131 : -5, dtype);
        QTensor x = RandomTensor(random, shape, qparams);
        bool bySize = outHeight > 0;
        var upsample = bySize
            ? new QuantizedUpsampleNearest2d("M", "up", outHeight, outWidth, null, null)
            : new QuantizedUpsampleNearest2d("M", "up", null, null, scaleHeight, scaleWidth);
        QTensor ours = upsample.Forward(x);

        using var scope = torch.NewDisposeScope();
        foreach (bool channelsLast in new[] { true, false })
        {
            var tx = ToTorch(x, channelsLast);
            var y = bySize
                ? torch.nn.functional.interpolate(tx, size: [outHeight, outWidth], mode: torch.InterpolationMode.Nearest)
                : torch.nn.functional.interpolate(tx, scale_factor: [scaleHeight, scaleWidth], mode: torch.InterpolationMode.Nearest);
            Assert.Equal(y.shape.Select(d => (int)d).ToArray(), ours.Shape);
            AssertExact($"interpolate nearest (channels-last={channelsLast})", Ints(y), ours.IntRepr());
        }
    }

    [Theory]
    [InlineData(QuantDType.QUInt8, 1)]
    [InlineData(QuantDType.QInt8, 1)]
    [InlineData(QuantDType.QUInt8, 0)]
    [InlineData(QuantDType.QInt8, 3)]
    [InlineData(QuantDType.QUInt8, -2)]
    public void CatEqualsLibtorchWithTheFirstInputsQParams(QuantDType dtype, int dim)
    {
        // torch.cat on quantized tensors gives the output the FIRST input's qparams and requantizes the others.
        var random = new Random(40 + dim + (int)dtype);
        QParams first = QParams.PerTensor(0.05f, dtype == QuantDType.QUInt8 ? 120 : -3, dtype);
        QParams second = QParams.PerTensor(0.031f, dtype == QuantDType.QUInt8 ? 77 : 11, dtype);
        int[] shapeA = [2, 3, 5, 6], shapeB = [2, 3, 5, 6];
        int resolved = dim < 0 ? dim + 4 : dim;
        shapeB[resolved] = 4;
        QTensor a = RandomTensor(random, shapeA, first);
        QTensor b = RandomTensor(random, shapeB, second);
        QTensor ours = new QuantizedCat("M", "cat", dim, first).Forward(a, b);

        using var scope = torch.NewDisposeScope();
        var y = torch.cat([ToTorch(a, channelsLast: true), ToTorch(b, channelsLast: true)], dim);
        Assert.Equal(y.shape.Select(d => (int)d).ToArray(), ours.Shape);
        AssertExact($"cat dim={dim}", Ints(y), ours.IntRepr());
    }

    private void AssertExact(string what, int[] libtorch, int[] ours)
    {
        (int exact, int worst) = Compare(libtorch, ours);
        _output.WriteLine($"{what}: {exact}/{ours.Length} equal to libtorch, max |diff| {worst}");
        Assert.Equal(libtorch, ours);
    }
}
