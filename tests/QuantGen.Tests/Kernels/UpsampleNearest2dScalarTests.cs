using System;
using QuantGen.Kernels.Scalar;
using static QuantGen.Tests.Kernels.KernelTestMath;
using static QuantGen.Tests.Kernels.NhwcLayout;

namespace QuantGen.Tests.Kernels;

public class UpsampleNearest2dScalarTests
{
    [Theory]
    [InlineData(3, 6, 2.0, new[] { 0, 0, 1, 1, 2, 2 })]
    [InlineData(5, 3, null, new[] { 0, 1, 3 })]                        // scale 5/3: 0, 1.67, 3.33
    [InlineData(2, 7, null, new[] { 0, 0, 0, 0, 1, 1, 1 })]            // scale 2/7: d·0.2857
    [InlineData(4, 6, 1.5, new[] { 0, 0, 1, 2, 2, 3 })]                // scale 1/1.5 = 0.6667
    [InlineData(3, 10, 3.5, new[] { 0, 0, 0, 0, 1, 1, 1, 2, 2, 2 })]   // floor(3·3.5) = 10 outputs
    public void SourceIndicesAreFloorOfDestinationTimesScale(int input, int output, double? scaleFactor, int[] expected)
    {
        if (scaleFactor is double factor)
        {
            Assert.Equal(output, UpsampleNearest2dScalar.OutputSize(input, factor));
        }

        float scale = UpsampleNearest2dScalar.SourceScale(input, output, scaleFactor);
        for (int d = 0; d < output; d++)
        {
            Assert.Equal(expected[d], UpsampleNearest2dScalar.SourceIndex(d, scale, input));
        }
    }

    [Fact]
    public void ScaleFactorsUseTheDoubleReciprocalAndSizesTheFloatQuotient()
    {
        Assert.Equal((float)(1.0 / 1.7), UpsampleNearest2dScalar.SourceScale(7, 11, 1.7));
        Assert.Equal(7f / 11f, UpsampleNearest2dScalar.SourceScale(7, 11, null));
    }

    [Theory]
    [InlineData(2, 3, 5, 7, 10, 14)]
    [InlineData(1, 17, 4, 6, 11, 5)]
    [InlineData(1, 1, 3, 3, 3, 3)]
    public void EveryOutputCopiesItsSourcePixel(int n, int c, int h, int w, int oh, int ow)
    {
        int[] input = UniformInts(new Random(n + c + h + w + oh + ow), n * c * h * w, 0, 255);
        var output = new byte[n * c * oh * ow];
        float hs = (float)h / oh, ws = (float)w / ow;
        UpsampleNearest2dScalar.Apply(n, c, h, w, oh, ow, hs, ws, ToNhwc(input, n, c, h, w), output);
        int[] actual = ToNchw(output, n, c, oh, ow);
        for (int b = 0; b < n; b++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                for (int y = 0; y < oh; y++)
                {
                    int sy = Math.Min((int)MathF.Floor(y * hs), h - 1);
                    for (int x = 0; x < ow; x++)
                    {
                        int sx = Math.Min((int)MathF.Floor(x * ws), w - 1);
                        Assert.Equal(input[(((b * c) + ch) * h + sy) * w + sx], actual[(((b * c) + ch) * oh + y) * ow + x]);
                    }
                }
            }
        }
    }

    [Fact]
    public void AnOutputOfTheInputsSizeIsACopyWhateverTheScale()
    {
        // 3 × 1.2 = 3.6 → 3 outputs; the index rule with scale 1/1.2 would read rows 0, 0, 1.
        byte[] input = [10, 20, 30];
        var output = new byte[3];
        UpsampleNearest2dScalar.Apply(1, 1, 3, 1, 3, 1, (float)(1 / 1.2), 1f, input, output);
        Assert.Equal(input, output);
    }
}
