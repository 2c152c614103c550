using System;
using QuantGen.Dynamic;

namespace QuantGen.Tests.Dynamic;

public class DynamicQParamsTests
{
    [Theory]
    // [-1, 1] on 0..255: scale 2/255, zero point from min = 127.5, a tie that rounds to even 128.
    [InlineData(-1f, 1f, false, 2.0 / 255, 128)]
    // The same range halved to 0..127 (reduce_range): scale 2/127, zero point 63.5 -> 64.
    [InlineData(-1f, 1f, true, 2.0 / 127, 64)]
    // All positive: the range is extended down to 0, so 0 maps to qmin.
    [InlineData(0.5f, 2f, false, 2.0 / 255, 0)]
    // All negative: extended up to 0, which maps to qmax.
    [InlineData(-3f, -1f, false, 3.0 / 255, 255)]
    // Empty range at 0: scale falls back to 0.1.
    [InlineData(0f, 0f, false, 0.1, 0)]
    // A range too small for float16: scale cut off at 6.1e-5, min stays 0.
    [InlineData(0f, 1e-3f, false, 6.1e-5f, 0)]
    // Asymmetric: scale 4/255, zero point from min 63.75 -> 64.
    [InlineData(-1f, 3f, false, 4.0 / 255, 64)]
    public void HandComputedCases(float min, float max, bool reduceRange, double expectedScale, int expectedZeroPoint)
    {
        (float scale, int zeroPoint) = DynamicQParams.Choose(min, max, 0, 255, reduceRange);

        Assert.Equal((float)expectedScale, scale);
        Assert.Equal(expectedZeroPoint, zeroPoint);
    }

    [Fact]
    public void EqualsAPlainRecomputationOnRandomRanges()
    {
        var random = new Random(15);
        for (int trial = 0; trial < 20000; trial++)
        {
            float magnitude = MathF.Pow(10f, -7f + (9f * random.NextSingle()));
            float a = magnitude * ((2f * random.NextSingle()) - 1f);
            float b = magnitude * ((2f * random.NextSingle()) - 1f);
            if (trial % 7 == 0)
            {
                b = MathF.Abs(b); // some ranges with min and max of the same sign
                a = MathF.Abs(a);
            }

            float min = MathF.Min(a, b), max = MathF.Max(a, b);
            bool reduceRange = trial % 2 == 0;

            (float scale, int zeroPoint) = DynamicQParams.Choose(min, max, 0, 255, reduceRange);
            (float expectedScale, int expectedZeroPoint) = Recompute(min, max, reduceRange ? 127 : 255);

            Assert.True(expectedScale == scale && expectedZeroPoint == zeroPoint, $"[{min:R}, {max:R}] reduce={reduceRange}: got ({scale:R}, {zeroPoint}), expected ({expectedScale:R}, {expectedZeroPoint})");
        }
    }

    [Fact]
    public void BackendsDecideReduceRange()
    {
        Assert.True(DynamicQParams.ReducesRange(QuantBackend.X86));
        Assert.False(DynamicQParams.ReducesRange(QuantBackend.Qnnpack));
        Assert.Equal(DynamicQParams.Choose(-1f, 1f, 0, 255, true), DynamicQParams.ForInput(-1f, 1f, QuantBackend.X86));
        Assert.Equal(DynamicQParams.Choose(-1f, 1f, 0, 255, false), DynamicQParams.ForInput(-1f, 1f, QuantBackend.Qnnpack));
    }

    [Theory]
    [InlineData(float.NaN, 1f)]
    [InlineData(0f, float.PositiveInfinity)]
    [InlineData(2f, 1f)]
    public void RefusesNonFiniteOrInvertedRanges(float min, float max)
    {
        var error = Assert.Throws<ArgumentException>(() => DynamicQParams.Choose(min, max, 0, 255, false));
        Assert.Contains("Dynamic qparams", error.Message);
    }

    /// <summary>
    /// docs/numerics.md §8 written out plainly for qmin = 0: the range extended to 0, the scale in float64 with its
    /// two cut-offs, and (qmin being 0) the zero point from the min end unless both ends are judged equal.
    /// </summary>
    private static (float Scale, int ZeroPoint) Recompute(float min, float max, int qmax)
    {
        float lo = Math.Min(min, 0f);
        float hi = Math.Max(max, 0f);
        double scale = ((double)hi - (double)lo) / qmax;
        if ((float)scale == 0f || float.IsInfinity(1f / (float)scale))
        {
            scale = 0.1;
        }

        if (scale < 6.1e-5f)
        {
            float factor = 6.1e-5f / (float)scale;
            scale = 6.1e-5f;
            if (lo == 0f)
            {
                hi = 6.1e-5f * qmax;
            }
            else if (hi == 0f)
            {
                lo = -6.1e-5f * qmax;
            }
            else
            {
                lo = lo * factor;
                hi = hi * factor;
            }
        }

        double fromMin = 0 - (lo / scale);
        double fromMax = qmax - (hi / scale);
        double judgedMin = 0 - Math.Abs(lo / scale);
        double judgedMax = qmax - Math.Abs(hi / scale);
        double zero = judgedMin < judgedMax ? fromMin : fromMax;
        int zeroPoint = zero < 0 ? 0 : zero > qmax ? qmax : (int)Math.Round(zero, MidpointRounding.ToEven);
        return ((float)scale, zeroPoint);
    }
}
