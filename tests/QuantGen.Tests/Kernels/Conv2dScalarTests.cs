using System;
using System.Collections.Generic;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;
using static QuantGen.Tests.Kernels.KernelTestMath;

namespace QuantGen.Tests.Kernels;

public class Conv2dScalarTests
{
    /// <summary>
    /// The convolution from its logical definition, in PyTorch's layouts: input [N][C][H][W], weights
    /// [OC][IC/g][KH][KW], output [N][OC][OH][OW]; each output element sums over (ic, kh, kw) of its group,
    /// reading the zero point where the window hangs over the padding. Loop order and layouts differ
    /// from the kernel's on purpose.
    /// </summary>
    private static long[] NaiveNchw(
        int n, int c, int h, int w, int oc, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups,
        int[] inputNchw, int zx, int[] weightsOihw, int[] zw)
    {
        int oh = ((h + (2 * ph) - (dh * (kh - 1)) - 1) / sh) + 1;
        int ow = ((w + (2 * pw) - (dw * (kw - 1)) - 1) / sw) + 1;
        int icPerGroup = c / groups, ocPerGroup = oc / groups;
        var output = new long[n * oc * oh * ow];
        for (int b = 0; b < n; b++)
        {
            for (int o = 0; o < oc; o++)
            {
                int group = o / ocPerGroup;
                for (int i = 0; i < icPerGroup; i++)
                {
                    int inputChannel = (group * icPerGroup) + i;
                    for (int y = 0; y < kh; y++)
                    {
                        for (int x = 0; x < kw; x++)
                        {
                            int weight = weightsOihw[(((o * icPerGroup) + i) * kh + y) * kw + x];
                            for (int outY = 0; outY < oh; outY++)
                            {
                                for (int outX = 0; outX < ow; outX++)
                                {
                                    int inY = (outY * sh) + (y * dh) - ph;
                                    int inX = (outX * sw) + (x * dw) - pw;
                                    bool inside = inY >= 0 && inY < h && inX >= 0 && inX < w;
                                    int value = inside ? inputNchw[(((b * c) + inputChannel) * h + inY) * w + inX] : zx;
                                    output[(((b * oc) + o) * oh + outY) * ow + outX] += (long)(value - zx) * (weight - zw[o]);
                                }
                            }
                        }
                    }
                }
            }
        }

        return output;
    }

    public static IEnumerable<object[]> Shapes()
    {
        // n, c, h, w, oc, kh, kw, sh, sw, ph, pw, dh, dw, groups
        yield return [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1];           // 1x1 on 1x1, seed 000's shape
        yield return [1, 1, 2, 3, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1];
        yield return [2, 3, 5, 7, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1];           // 1x1, 3 channels
        yield return [1, 3, 9, 11, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1];          // 3x3 same padding
        yield return [2, 17, 7, 9, 5, 3, 3, 1, 1, 0, 0, 1, 1, 1];          // 17 channels, valid
        yield return [1, 3, 15, 13, 6, 7, 7, 2, 2, 3, 3, 1, 1, 1];         // ResNet stem: 7x7 stride 2 pad 3
        yield return [1, 4, 13, 11, 3, 3, 3, 1, 1, 2, 2, 2, 2, 1];         // dilation 2
        yield return [1, 6, 9, 9, 4, 3, 3, 2, 1, 1, 0, 1, 3, 2];           // groups 2, asymmetric stride/pad/dilation
        yield return [2, 8, 7, 5, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8];           // depthwise
        yield return [1, 17, 11, 11, 34, 3, 3, 2, 2, 1, 1, 1, 1, 17];      // depthwise multiplier 2, stride 2
        yield return [1, 1, 5, 5, 1, 5, 5, 1, 1, 4, 4, 1, 1, 1];           // padding wider than half the kernel
        yield return [1, 3, 8, 6, 2, 2, 4, 3, 2, 1, 2, 2, 1, 1];           // non-square kernel, uneven stride
        yield return [3, 2, 1, 9, 3, 1, 3, 1, 2, 0, 1, 1, 1, 1];           // height 1
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesTheNaiveNchwDefinition(int n, int c, int h, int w, int oc, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups)
    {
        var geometry = new Conv2dGeometry(n, c, h, w, oc, kh, kw, sh, sw, ph, pw, dh, dw, groups);
        int icPerGroup = c / groups;
        var random = new Random(n + (31 * c) + (101 * h) + (1009 * w) + (7 * oc) + kh + (3 * kw) + (11 * groups));

        int[] inputNchw = UniformInts(random, n * c * h * w, 0, 255);
        int[] weightsOihw = UniformInts(random, oc * icPerGroup * kh * kw, -128, 127);
        const int zx = 37;
        int[] zw = UniformInts(random, oc, -9, 9);

        // Re-layout for the kernel: NCHW -> NHWC, OIHW -> OHWI.
        var inputNhwc = new byte[inputNchw.Length];
        for (int b = 0; b < n; b++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                for (int y = 0; y < h; y++)
                {
                    for (int x = 0; x < w; x++)
                    {
                        inputNhwc[(((b * h) + y) * w + x) * c + ch] = (byte)inputNchw[(((b * c) + ch) * h + y) * w + x];
                    }
                }
            }
        }

        var weightsOhwi = new sbyte[weightsOihw.Length];
        for (int o = 0; o < oc; o++)
        {
            for (int i = 0; i < icPerGroup; i++)
            {
                for (int y = 0; y < kh; y++)
                {
                    for (int x = 0; x < kw; x++)
                    {
                        weightsOhwi[(((o * kh) + y) * kw + x) * icPerGroup + i] = (sbyte)weightsOihw[(((o * icPerGroup) + i) * kh + y) * kw + x];
                    }
                }
            }
        }

        int oh = geometry.OutHeight, ow = geometry.OutWidth;
        var accumulators = new int[n * oh * ow * oc];
        Conv2dScalar.Accumulate(geometry, inputNhwc, zx, weightsOhwi, zw, accumulators);

        long[] expected = NaiveNchw(n, c, h, w, oc, kh, kw, sh, sw, ph, pw, dh, dw, groups, inputNchw, zx, weightsOihw, zw);
        Assert.Equal(expected.Length, accumulators.Length);
        for (int b = 0; b < n; b++)
        {
            for (int o = 0; o < oc; o++)
            {
                for (int y = 0; y < oh; y++)
                {
                    for (int x = 0; x < ow; x++)
                    {
                        long want = expected[(((b * oc) + o) * oh + y) * ow + x];
                        int got = accumulators[(((b * oh) + y) * ow + x) * oc + o];
                        if (want != got)
                        {
                            Assert.Fail($"output [n={b}, oc={o}, y={y}, x={x}]: expected {want}, got {got}");
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void OneByOneByHand()
    {
        // Seed 003's numbers: qx 24, zx 0, qw 127, zw 0 -> 3048. Plus zero points: (24 - 4) * (127 - (-3)) = 2600.
        var geometry = new Conv2dGeometry(1, 1, 1, 1, 1, 1, 1);
        var acc = new int[1];
        Conv2dScalar.Accumulate(geometry, [24], 0, [127], [0], acc);
        Assert.Equal(3048, acc[0]);
        Conv2dScalar.Accumulate(geometry, [24], 4, [127], [-3], acc);
        Assert.Equal(2600, acc[0]);
    }

    [Fact]
    public void PaddingContributesNothingByHand()
    {
        // 1 channel 1x2 input [10, 20], zx 10, 1x3 kernel [1, 2, 3], pad 1: outputs
        // left  = pad*1 + (10-10)*2 + (20-10)*3 = 30; right = (10-10)*1 + (20-10)*2 + pad*3 = 20.
        var geometry = new Conv2dGeometry(1, 1, 1, 2, 1, 1, 3, PadWidth: 1);
        var acc = new int[2];
        Conv2dScalar.Accumulate(geometry, [10, 20], 10, [1, 2, 3], [0], acc);
        Assert.Equal(new[] { 30, 20 }, acc);
    }

    [Fact]
    public void FullRangeExtremesDoNotOverflowForRealisticKernels()
    {
        // 3x3x512 of (255 - 0) * (-128 - 0) = -32640 each: -150,405,120, well inside int32.
        const int c = 512;
        var geometry = new Conv2dGeometry(1, c, 3, 3, 1, 3, 3);
        var input = new byte[9 * c];
        Array.Fill(input, (byte)255);
        var weights = new sbyte[9 * c];
        Array.Fill(weights, (sbyte)-128);
        var acc = new int[1];
        Conv2dScalar.Accumulate(geometry, input, 0, weights, [0], acc);
        Assert.Equal(-150_405_120, acc[0]);
    }

    [Fact]
    public void RejectsSpansThatDoNotMatchTheGeometry()
    {
        var geometry = new Conv2dGeometry(1, 2, 3, 3, 4, 3, 3, PadHeight: 1, PadWidth: 1);
        var input = new byte[18];
        var weights = new sbyte[4 * 9 * 2];
        var zw = new int[4];
        var acc = new int[36];

        var ex = Assert.Throws<ArgumentException>(() => Conv2dScalar.Accumulate(geometry, new byte[17], 0, weights, zw, acc));
        Assert.Contains("input", ex.Message);
        Assert.Contains("18", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Conv2dScalar.Accumulate(geometry, input, 0, new sbyte[71], zw, acc));
        Assert.Contains("weights", ex.Message);
        Assert.Contains("72", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Conv2dScalar.Accumulate(geometry, input, 0, weights, new int[1], acc));
        Assert.Contains("zero points", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Conv2dScalar.Accumulate(geometry, input, 0, weights, zw, new int[35]));
        Assert.Contains("accumulators", ex.Message);
        Assert.Contains("36", ex.Message);

        var badGroups = new Conv2dGeometry(1, 3, 3, 3, 4, 1, 1, Groups: 2);
        Assert.Throws<ArgumentException>(() => Conv2dScalar.Accumulate(badGroups, new byte[27], 0, new sbyte[4], new int[4], new int[36]));
    }
}
