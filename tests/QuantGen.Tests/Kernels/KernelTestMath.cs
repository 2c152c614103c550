using System;

namespace QuantGen.Tests.Kernels;

/// <summary>
/// The numerics contract written out again, independently of the runtime, for the kernel tests to
/// compare against, plus seeded random data.
/// </summary>
internal static class KernelTestMath
{
    /// <summary>
    /// docs/numerics.md: <c>q = clamp(round_half_even(x * (1f / scale)) + zp, qmin, qmax)</c>, float32
    /// product, rounding done on the exactly widened double, zero point added in integer arithmetic.
    /// Finite inputs only.
    /// </summary>
    public static int ContractQuantize(float x, float scale, int zeroPoint, int quantMin, int quantMax)
    {
        float reciprocal = 1.0f / scale;
        float product = x * reciprocal;
        double rounded = Math.Round((double)product, MidpointRounding.ToEven);
        long q = (long)rounded + zeroPoint;
        return (int)Math.Min(Math.Max(q, quantMin), quantMax);
    }

    /// <summary>True when <c>x * (1f / scale)</c> lands exactly halfway between two integers.</summary>
    public static bool IsTie(float x, float scale)
    {
        float product = x * (1.0f / scale);
        return Math.Abs(product - Math.Floor(product)) == 0.5;
    }

    /// <summary><c>(float)(q - zp) * scale</c>.</summary>
    public static float ContractDequantize(int q, float scale, int zeroPoint) => (q - zeroPoint) * scale;

    /// <summary>Affine quint8 parameters for [min, max] over 0..<paramref name="quantMax"/> (the contract's formula, float32).</summary>
    public static (float Scale, int ZeroPoint) AffineQParams(float min, float max, int quantMax)
    {
        float minNeg = Math.Min(min, 0f);
        float maxPos = Math.Max(max, 0f);
        float scale = Math.Max((maxPos - minNeg) / quantMax, 1.1920929e-07f);
        int zeroPoint = 0 - (int)Math.Round((double)(minNeg / scale), MidpointRounding.ToEven);
        return (scale, Math.Clamp(zeroPoint, 0, quantMax));
    }

    /// <summary>Symmetric qint8 scale for values whose largest magnitude is <paramref name="absMax"/> (divisor 127.5).</summary>
    public static float SymmetricScale(float absMax) => Math.Max(absMax / 127.5f, 1.1920929e-07f);

    /// <summary>Uniform float32 values in [low, high).</summary>
    public static float[] Uniform(Random random, int count, float low, float high)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = low + ((high - low) * (float)random.NextDouble());
        }

        return values;
    }

    /// <summary>Uniform integers in [low, high].</summary>
    public static int[] UniformInts(Random random, int count, int low, int high)
    {
        var values = new int[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = random.Next(low, high + 1);
        }

        return values;
    }
}
