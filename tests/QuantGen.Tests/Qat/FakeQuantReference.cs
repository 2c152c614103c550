using System;

namespace QuantGen.Tests.Qat;

/// <summary>
/// Independent re-computations of the fake-quant formulas with plain float loops (no tensors), written from
/// PyTorch's kernel definitions: forward <c>(clamp(round(x · (1/s)) + z, qmin, qmax) − z) · s</c>, and the
/// straight-through mask on the unclamped value.
/// </summary>
internal static class FakeQuantReference
{
    public static float Forward(float x, float scale, int zeroPoint, int quantMin, int quantMax)
    {
        float inverse = 1f / scale;
        float q = MathF.Round(x * inverse, MidpointRounding.ToEven) + zeroPoint;
        float clamped = MathF.Min(MathF.Max(q, quantMin), quantMax);
        return (clamped - zeroPoint) * scale;
    }

    public static bool InRange(float x, float scale, int zeroPoint, int quantMin, int quantMax)
    {
        float q = MathF.Round(x * (1f / scale), MidpointRounding.ToEven) + zeroPoint;
        return q >= quantMin && q <= quantMax;
    }

    /// <summary>Row-major index → channel index along <paramref name="axis"/> of <paramref name="shape"/>.</summary>
    public static int ChannelOf(int flatIndex, int[] shape, int axis)
    {
        int inner = 1;
        for (int d = axis + 1; d < shape.Length; d++)
        {
            inner *= shape[d];
        }

        return (flatIndex / inner) % shape[axis];
    }

    public static float[] RandomValues(int count, int seed, float spread)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)((random.NextDouble() * 2.0) - 1.0) * spread;
        }

        return values;
    }
}
