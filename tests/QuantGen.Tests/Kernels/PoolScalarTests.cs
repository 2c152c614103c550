using System;
using System.Collections.Generic;
using QuantGen.Kernels.Scalar;
using static QuantGen.Tests.Kernels.KernelTestMath;
using static QuantGen.Tests.Kernels.NhwcLayout;

namespace QuantGen.Tests.Kernels;

/// <summary>
/// Max, average and adaptive average pooling kernels against naive NCHW re-computations written from
/// PyTorch's definitions (loops over kernel taps rather than clipped ranges), plus hand-derived sizes
/// and roundings.
/// </summary>
public class PoolScalarTests
{
    // n, c, h, w, k, stride, pad, dilation, ceil
    public static IEnumerable<object[]> PoolShapes()
    {
        yield return [new[] { 1, 1, 5, 5, 2, 2, 0, 1, 0 }];
        yield return [new[] { 2, 3, 9, 11, 3, 2, 1, 1, 0 }];
        yield return [new[] { 1, 17, 7, 8, 3, 2, 1, 1, 1 }];
        yield return [new[] { 2, 3, 13, 6, 2, 1, 1, 1, 1 }];
        yield return [new[] { 1, 17, 10, 9, 3, 3, 1, 2, 1 }];
        yield return [new[] { 1, 4, 5, 5, 2, 2, 1, 3, 0 }];
        yield return [new[] { 3, 2, 1, 1, 1, 1, 0, 1, 0 }];
    }

    /// <summary>PyTorch's pooling_output_shape, re-written: floor division, ceil adjustment.</summary>
    private static int ExpectedOutputSize(int input, int k, int s, int p, int d, bool ceil)
    {
        int numerator = input + (2 * p) - (d * (k - 1)) - 1 + (ceil ? s - 1 : 0);
        int output = (int)Math.Floor(numerator / (double)s) + 1;
        if (ceil && (output - 1) * s >= input + p)
        {
            output--;
        }

        return output;
    }

    [Theory]
    [InlineData(5, 2, 2, 0, 1, false, 2)]
    [InlineData(5, 2, 2, 0, 1, true, 3)]
    [InlineData(6, 3, 2, 1, 1, true, 4)]
    [InlineData(5, 2, 2, 1, 1, true, 3)]      // ceil gives 4, but window 3 would start at index 3*2 - 1 = 5, past the input: dropped
    [InlineData(10, 3, 3, 1, 2, true, 4)]
    [InlineData(1, 1, 1, 0, 1, false, 1)]
    [InlineData(7, 3, 1, 0, 1, false, 5)]
    public void OutputSizeIsPyTorchs(int input, int k, int s, int p, int d, bool ceil, int expected)
    {
        Assert.Equal(expected, Pool2dGeometry.OutputSize(input, k, p, s, d, ceil));
    }

    [Theory]
    [MemberData(nameof(PoolShapes))]
    public void MaxPoolEqualsTheNaiveMaximumOverTheWindow(int[] p)
    {
        int n = p[0], c = p[1], h = p[2], w = p[3], k = p[4], s = p[5], pad = p[6], d = p[7];
        bool ceil = p[8] == 1;
        int[] input = UniformInts(new Random(string.Join(",", p).GetHashCode(StringComparison.Ordinal) & 0xffff), n * c * h * w, 0, 255);
        int oh = ExpectedOutputSize(h, k, s, pad, d, ceil), ow = ExpectedOutputSize(w, k, s, pad, d, ceil);
        var geometry = new Pool2dGeometry(n, c, h, w, k, k, s, s, pad, pad, d, d, ceil);
        Assert.Equal((oh, ow), (geometry.OutHeight, geometry.OutWidth));

        var output = new byte[n * c * oh * ow];
        MaxPool2dScalar.Apply(geometry, ToNhwc(input, n, c, h, w), output);

        int[] actual = ToNchw(output, n, c, oh, ow);
        for (int b = 0; b < n; b++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                for (int y = 0; y < oh; y++)
                {
                    for (int x = 0; x < ow; x++)
                    {
                        int max = -1;   // no tap inside the input: the lowest value (0 in the unsigned view)
                        for (int ky = 0; ky < k; ky++)
                        {
                            for (int kx = 0; kx < k; kx++)
                            {
                                int iy = (y * s) - pad + (ky * d), ix = (x * s) - pad + (kx * d);
                                if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                {
                                    max = Math.Max(max, input[(((b * c) + ch) * h + iy) * w + ix]);
                                }
                            }
                        }

                        Assert.Equal(Math.Max(max, 0), actual[(((b * c) + ch) * oh + y) * ow + x]);
                    }
                }
            }
        }
    }

    [Fact]
    public void MaxPoolPaddingNeverWinsOverSmallValues()
    {
        // All inputs are 3 (below a zero point of 100): padded positions would be 100 if padding counted.
        var geometry = new Pool2dGeometry(1, 1, 2, 2, 3, 3, 1, 1, 1, 1);
        var output = new byte[4];
        MaxPool2dScalar.Apply(geometry, new byte[] { 3, 3, 3, 3 }, output);
        Assert.Equal(new byte[] { 3, 3, 3, 3 }, output);
    }

    [Theory]
    [InlineData(true, 0)]
    [InlineData(false, 0)]
    [InlineData(true, 5)]
    [InlineData(false, 7)]
    public void AvgPoolEqualsTheNaiveNhwcFormula(bool countIncludePad, int divisorOverride)
    {
        foreach (object[] shape in PoolShapes())
        {
            int[] p = (int[])shape[0];
            if (p[7] != 1)
            {
                continue;   // average pooling has no dilation
            }

            int n = p[0], c = p[1], h = p[2], w = p[3], k = p[4], s = p[5], pad = p[6];
            bool ceil = p[8] == 1;
            var random = new Random(p[2] * 31 + p[3] + divisorOverride);
            int[] input = UniformInts(random, n * c * h * w, 0, 255);
            float sx = 0.05f + (0.1f * random.NextSingle()), sy = 0.05f + (0.1f * random.NextSingle());
            int zx = random.Next(0, 256), zy = random.Next(0, 256);
            var geometry = new Pool2dGeometry(n, c, h, w, k, k, s, s, pad, pad, 1, 1, ceil);
            int oh = geometry.OutHeight, ow = geometry.OutWidth;
            var output = new byte[n * c * oh * ow];
            AvgPool2dScalar.Apply(geometry, countIncludePad, divisorOverride == 0 ? null : divisorOverride, ToNhwc(input, n, c, h, w), sx, zx, output, sy, zy);
            int[] actual = ToNchw(output, n, c, oh, ow);

            for (int b = 0; b < n; b++)
            {
                for (int ch = 0; ch < c; ch++)
                {
                    for (int y = 0; y < oh; y++)
                    {
                        for (int x = 0; x < ow; x++)
                        {
                            // Taps inside the input count for the sum and `inside`; taps inside the padded
                            // input [-p, in + p) count for `padded` (the window may hang past it in ceil mode).
                            int sum = 0, inside = 0, padded = 0;
                            for (int ky = 0; ky < k; ky++)
                            {
                                for (int kx = 0; kx < k; kx++)
                                {
                                    int iy = (y * s) - pad + ky, ix = (x * s) - pad + kx;
                                    bool inPadded = iy < h + pad && ix < w + pad;
                                    padded += inPadded ? 1 : 0;
                                    if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                    {
                                        sum += input[(((b * c) + ch) * h + iy) * w + ix] - zx;
                                        inside++;
                                    }
                                }
                            }

                            int divisor = divisorOverride != 0 ? divisorOverride : (countIncludePad ? padded : inside);
                            float multiplier = sx / sy / divisor;
                            float scale = 1.0f / multiplier;
                            float product = (float)sum * (1.0f / scale);
                            int expected = Math.Clamp(zy + (int)Math.Round((double)product, MidpointRounding.ToEven), 0, 255);
                            Assert.Equal(expected, actual[(((b * c) + ch) * oh + y) * ow + x]);
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void AvgPoolRoundsTiesToEvenBeforeAddingTheZeroPoint()
    {
        // Values 3 and 4, zero point 3, equal scales: the average offset is 0.5, which rounds to 0, so
        // the output is 3. (PyTorch's NCHW kernel rounds 3.5 instead and gives 4.)
        var geometry = new Pool2dGeometry(1, 1, 1, 2, 1, 2, 1, 2);
        var output = new byte[1];
        AvgPool2dScalar.Apply(geometry, true, null, new byte[] { 3, 4 }, 0.1f, 3, output, 0.1f, 3);
        Assert.Equal(3, output[0]);

        // Values 4 and 5 (offsets 1 and 2): 1.5 rounds to 2, output 5.
        AvgPool2dScalar.Apply(geometry, true, null, new byte[] { 4, 5 }, 0.1f, 3, output, 0.1f, 3);
        Assert.Equal(5, output[0]);
    }

    [Fact]
    public void WithEqualScalesTheDoubleReciprocalChangesNoDivisorUpTo4096()
    {
        // docs/numerics.md: PyTorch's scalar path multiplies by 1/(1/m), its AVX path by m; with the
        // pass-through qparams of a pool, m = 1/divisor and the two agree for every practical divisor.
        for (int divisor = 1; divisor <= 4096; divisor++)
        {
            float multiplier = 1.0f / divisor;
            Assert.Equal(multiplier, 1.0f / (1.0f / multiplier));
        }
    }

    [Theory]
    [InlineData(5, 3, new[] { 0, 1, 3 }, new[] { 2, 4, 5 })]
    [InlineData(7, 3, new[] { 0, 2, 4 }, new[] { 3, 5, 7 })]
    [InlineData(3, 5, new[] { 0, 0, 1, 1, 2 }, new[] { 1, 2, 2, 3, 3 })]
    [InlineData(4, 1, new[] { 0 }, new[] { 4 })]
    public void AdaptiveBinsAreFloorAndCeilOfTheProportionalEdges(int input, int output, int[] starts, int[] ends)
    {
        for (int i = 0; i < output; i++)
        {
            Assert.Equal(starts[i], AdaptiveAvgPool2dScalar.StartIndex(i, output, input));
            Assert.Equal(ends[i], AdaptiveAvgPool2dScalar.EndIndex(i, output, input));
        }
    }

    [Theory]
    [InlineData(2, 3, 9, 11, 1, 1)]
    [InlineData(1, 17, 7, 7, 3, 3)]
    [InlineData(2, 1, 10, 7, 4, 3)]
    [InlineData(1, 3, 3, 4, 5, 7)]
    public void AdaptiveAvgPoolEqualsTheNaiveFormula(int n, int c, int h, int w, int oh, int ow)
    {
        var random = new Random((n * 1000) + (c * 100) + (h * 10) + w);
        int[] input = UniformInts(random, n * c * h * w, 0, 255);
        float sx = 0.05f + (0.1f * random.NextSingle()), sy = 0.05f + (0.1f * random.NextSingle());
        int zx = random.Next(0, 256), zy = random.Next(0, 256);
        var output = new byte[n * c * oh * ow];
        AdaptiveAvgPool2dScalar.Apply(n, c, h, w, oh, ow, ToNhwc(input, n, c, h, w), sx, zx, output, sy, zy);
        int[] actual = ToNchw(output, n, c, oh, ow);

        for (int b = 0; b < n; b++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                for (int y = 0; y < oh; y++)
                {
                    // Integer floor/ceil of the proportional edges (equal to the float ones at these sizes).
                    int y0 = y * h / oh, y1 = (((y + 1) * h) + oh - 1) / oh;
                    for (int x = 0; x < ow; x++)
                    {
                        int x0 = x * w / ow, x1 = (((x + 1) * w) + ow - 1) / ow;
                        int sum = 0;
                        for (int iy = y0; iy < y1; iy++)
                        {
                            for (int ix = x0; ix < x1; ix++)
                            {
                                sum += input[(((b * c) + ch) * h + iy) * w + ix] - zx;
                            }
                        }

                        int size = (y1 - y0) * (x1 - x0);
                        float multiplier = sx / sy / size;
                        float product = (float)sum * (1.0f / (1.0f / multiplier));
                        int expected = Math.Clamp(zy + (int)Math.Round((double)product, MidpointRounding.ToEven), 0, 255);
                        Assert.Equal(expected, actual[(((b * c) + ch) * oh + y) * ow + x]);
                    }
                }
            }
        }
    }

    [Fact]
    public void BadGeometriesAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new Pool2dGeometry(1, 1, 4, 4, 2, 2, 2, 2, 2, 2).Validate());   // pad > k/2
        Assert.Throws<ArgumentException>(() => new Pool2dGeometry(1, 1, 2, 2, 5, 5, 1, 1).Validate());        // output empty
        Assert.Throws<ArgumentException>(() => new Pool2dGeometry(1, 0, 2, 2, 1, 1, 1, 1).Validate());        // no channels
        Assert.Throws<ArgumentException>(() => MaxPool2dScalar.Apply(new Pool2dGeometry(1, 1, 2, 2, 1, 1, 1, 1), new byte[3], new byte[4]));
        Assert.Throws<ArgumentException>(() => AvgPool2dScalar.Apply(new Pool2dGeometry(1, 1, 2, 2, 1, 1, 1, 1, DilationHeight: 2), true, null, new byte[4], 1f, 0, new byte[4], 1f, 0));
        Assert.Throws<ArgumentException>(() => AvgPool2dScalar.Apply(new Pool2dGeometry(1, 1, 2, 2, 1, 1, 1, 1), true, 0, new byte[4], 1f, 0, new byte[4], 1f, 0));
    }
}
