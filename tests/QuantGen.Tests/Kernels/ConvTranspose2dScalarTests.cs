using System;
using System.Collections.Generic;
using QuantGen.Kernels.Scalar;
using static QuantGen.Tests.Kernels.KernelTestMath;
using static QuantGen.Tests.Kernels.NhwcLayout;

namespace QuantGen.Tests.Kernels;

public class ConvTranspose2dScalarTests
{
    /// <summary>
    /// The transposed convolution as a scatter, the way it is usually defined: every input pixel adds
    /// (x - zx)·(w - zw) into output (ih·s - p + kh·d, iw·s - p + kw·d) for every tap and output channel
    /// of its group, dropping what falls outside. The kernel gathers instead.
    /// </summary>
    private static int[] NaiveScatter(int[] p, int[] inputNchw, int zx, int[] weightsLogical, int[] zw, out int oh, out int ow)
    {
        int n = p[0], ic = p[1], h = p[2], w = p[3], oc = p[4], k = p[5], s = p[6], pad = p[7], outPad = p[8], d = p[9], g = p[10];
        oh = ((h - 1) * s) - (2 * pad) + (d * (k - 1)) + outPad + 1;
        ow = ((w - 1) * s) - (2 * pad) + (d * (k - 1)) + outPad + 1;
        int icPerGroup = ic / g, ocPerGroup = oc / g;
        var output = new int[n * oc * oh * ow];
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < ic; i++)
            {
                int group = i / icPerGroup;
                for (int y = 0; y < h; y++)
                {
                    for (int x = 0; x < w; x++)
                    {
                        int xv = inputNchw[(((b * ic) + i) * h + y) * w + x] - zx;
                        for (int o = 0; o < ocPerGroup; o++)
                        {
                            int outChannel = (group * ocPerGroup) + o;
                            for (int ky = 0; ky < k; ky++)
                            {
                                for (int kx = 0; kx < k; kx++)
                                {
                                    int outY = (y * s) - pad + (ky * d), outX = (x * s) - pad + (kx * d);
                                    if (outY < 0 || outY >= oh || outX < 0 || outX >= ow)
                                    {
                                        continue;
                                    }

                                    int wv = weightsLogical[(((i * ocPerGroup) + o) * k + ky) * k + kx] - zw[outChannel];
                                    output[(((b * oc) + outChannel) * oh + outY) * ow + outX] += xv * wv;
                                }
                            }
                        }
                    }
                }
            }
        }

        return output;
    }

    // n, ic, h, w, oc, k, stride, pad, output_padding, dilation, groups
    public static IEnumerable<object[]> Shapes()
    {
        yield return [new[] { 1, 1, 1, 1, 1, 2, 2, 0, 0, 1, 1 }];
        yield return [new[] { 2, 3, 5, 4, 8, 3, 2, 1, 1, 1, 1 }];
        yield return [new[] { 1, 17, 3, 3, 5, 4, 2, 1, 0, 1, 1 }];
        yield return [new[] { 1, 6, 4, 5, 9, 3, 3, 2, 2, 1, 3 }];
        yield return [new[] { 2, 4, 3, 3, 4, 3, 1, 2, 0, 2, 4 }];
        yield return [new[] { 1, 2, 6, 7, 2, 3, 2, 0, 1, 2, 1 }];
        yield return [new[] { 1, 8, 2, 2, 16, 1, 1, 0, 0, 1, 2 }];
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void AccumulatorsEqualTheNaiveScatter(int[] p)
    {
        int n = p[0], ic = p[1], h = p[2], w = p[3], oc = p[4], k = p[5], g = p[10];
        var random = new Random(p[1] * 100 + p[4] * 10 + p[5]);
        int[] input = UniformInts(random, n * ic * h * w, 0, 255);
        int[] weights = UniformInts(random, ic * (oc / g) * k * k, -128, 127);
        int[] zw = UniformInts(random, oc, -3, 3);
        int zx = random.Next(0, 256);
        int[] expected = NaiveScatter(p, input, zx, weights, zw, out int oh, out int ow);

        var geometry = new ConvTranspose2dGeometry(n, ic, h, w, oc, k, k, p[6], p[6], p[7], p[7], p[8], p[8], p[9], p[9], g);
        Assert.Equal((oh, ow), (geometry.OutHeight, geometry.OutWidth));
        var accumulators = new int[n * oc * oh * ow];
        sbyte[] packed = ConvTranspose2dScalar.Pack(weights, ic, oc, k, k, g);
        ConvTranspose2dScalar.Accumulate(geometry, ToNhwc(input, n, ic, h, w), zx, packed, zw, accumulators);
        Assert.Equal(expected, ToNchw(accumulators, n, oc, oh, ow));
    }

    [Fact]
    public void AOnePixelInputStampsTheKernel()
    {
        // 1x1 input of value 5 (zx 2 → 3), 2x2 kernel, stride 2: the output is 3·w.
        int[] weights = [1, -2, 3, -4];
        var geometry = new ConvTranspose2dGeometry(1, 1, 1, 1, 1, 2, 2, 2, 2);
        var accumulators = new int[4];
        ConvTranspose2dScalar.Accumulate(geometry, new byte[] { 5 }, 2, ConvTranspose2dScalar.Pack(weights, 1, 1, 2, 2, 1), [0], accumulators);
        Assert.Equal(new[] { 3, -6, 9, -12 }, accumulators);
    }

    [Fact]
    public void BadGeometriesAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new ConvTranspose2dGeometry(1, 1, 2, 2, 1, 3, 3, 2, 2, OutputPadHeight: 2, OutputPadWidth: 2).Validate());
        Assert.Throws<ArgumentException>(() => new ConvTranspose2dGeometry(1, 3, 2, 2, 4, 3, 3, Groups: 2).Validate());
        Assert.Throws<ArgumentException>(() => new ConvTranspose2dGeometry(1, 1, 1, 1, 1, 1, 1, PadHeight: 1, PadWidth: 1).Validate());
        Assert.Throws<ArgumentException>(() => ConvTranspose2dScalar.Accumulate(new ConvTranspose2dGeometry(1, 1, 2, 2, 1, 1, 1), new byte[3], 0, new sbyte[1], [0], new int[4]));
    }
}
