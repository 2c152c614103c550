using System;
using QuantGen.Observers;

namespace QuantGen.Tests.Observers;

/// <summary>Deterministic test data and the contract's quantize formula, written independently of the runtime.</summary>
internal static class ObserverTestData
{
    /// <summary>Standard normal float32 samples (Box–Muller on System.Random with a fixed seed).</summary>
    public static float[] Normal(int seed, int count, float mean = 0f, float std = 1f)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1.0 - random.NextDouble();
            double u2 = random.NextDouble();
            double z = Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
            values[i] = (float)(mean + (std * z));
        }

        return values;
    }

    /// <summary>Uniform float32 samples in [low, high).</summary>
    public static float[] Uniform(int seed, int count, float low, float high)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)(low + ((high - low) * random.NextDouble()));
        }

        return values;
    }

    /// <summary>The numerics contract's quantize: clamp(round_half_even(x * (1f / scale)) + zp, dtype range).</summary>
    public static int Quantize(float x, float scale, int zeroPoint, QuantDType dtype)
    {
        float inverse = 1.0f / scale;
        float scaled = x * inverse;
        int rounded = (int)MathF.Round(scaled, MidpointRounding.ToEven);
        return Math.Clamp(rounded + zeroPoint, dtype == QuantDType.QUInt8 ? 0 : -128, dtype == QuantDType.QUInt8 ? 255 : 127);
    }

    /// <summary>Observes one flat batch (shape [n]).</summary>
    public static void ObserveFlat(this Observer observer, float[] values) => observer.Observe(values, [values.Length]);
}
