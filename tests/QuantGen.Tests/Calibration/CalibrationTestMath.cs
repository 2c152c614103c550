using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Observers;

namespace QuantGen.Tests.Calibration;

/// <summary>
/// Independent re-computations for the calibration observers: the sign/magnitude histogram, the qparams formula of
/// docs/numerics.md §1, quantize→dequantize, and outlier-laden test distributions. None of it calls the code under test.
/// </summary>
internal static class CalibrationTestMath
{
    public const float Eps = 1.1920929e-07f;

    /// <summary>Standard normal samples (Box–Muller, fixed seed) scaled and shifted.</summary>
    public static float[] Normal(Random random, int count, float mean = 0f, float std = 1f)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1.0 - random.NextDouble();
            double u2 = random.NextDouble();
            values[i] = (float)(mean + (std * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2)));
        }

        return values;
    }

    /// <summary>Student's t with 2 degrees of freedom (infinite variance: a heavy tail of large values), z / sqrt(chi²₂ / 2).</summary>
    public static float[] StudentT2(Random random, int count)
    {
        float[] z = Normal(random, count);
        for (int i = 0; i < count; i++)
        {
            z[i] = (float)(z[i] / Math.Sqrt(-Math.Log(1.0 - random.NextDouble())));
        }

        return z;
    }

    /// <summary>
    /// A distribution with outliers, in three batches of <paramref name="perBatch"/> bulk values; the outliers
    /// (|x| in [20, 40]) all go into the second batch so the histogram has to grow. Returns the batches and the
    /// bulk values alone. "heavy" is Student's t (2 degrees of freedom) instead, its bulk the values with |x| ≤ 10.
    /// </summary>
    public static (float[][] Batches, float[] Bulk) WithOutliers(string shape, int seed, int perBatch = 20_000, int outliers = 5)
    {
        var random = new Random(seed);
        var batches = new float[3][];
        var bulk = new List<float>();
        for (int b = 0; b < 3; b++)
        {
            float[] values = shape switch
            {
                "relu" => Normal(random, perBatch).Select(v => MathF.Max(v, 0f)).ToArray(),
                "symmetric" => Normal(random, perBatch),
                "skewed" => Normal(random, perBatch, mean: 1f, std: 1f),
                "heavy" => StudentT2(random, perBatch),
                _ => throw new ArgumentException(shape),
            };
            bulk.AddRange(shape == "heavy" ? values.Where(v => MathF.Abs(v) <= 10f) : values);
            if (b == 1 && shape != "heavy")
            {
                var extra = new float[outliers];
                for (int o = 0; o < outliers; o++)
                {
                    float magnitude = (float)(20.0 + (20.0 * random.NextDouble()));
                    extra[o] = shape == "symmetric" && o % 2 == 1 ? -magnitude : magnitude;
                }

                values = values.Concat(extra).ToArray();
            }

            batches[b] = values;
        }

        return (batches, bulk.ToArray());
    }

    /// <summary>The sign/magnitude histogram with width <paramref name="width"/>: bin floor(|x| · (1/w)), zeros apart.</summary>
    public static (long[] Positive, long[] Negative, long Zeros) Histogram(IEnumerable<float> values, double width, int bins)
    {
        var positive = new long[bins];
        var negative = new long[bins];
        long zeros = 0;
        double inverse = 1.0 / width;
        foreach (float v in values)
        {
            if (v == 0f)
            {
                zeros++;
            }
            else if (v > 0f)
            {
                positive[(int)Math.Floor(v * inverse)]++;
            }
            else
            {
                negative[(int)Math.Floor(-(double)v * inverse)]++;
            }
        }

        return (positive, negative, zeros);
    }

    /// <summary>docs/numerics.md §1 in float32, written out again.</summary>
    public static (float Scale, int ZeroPoint) ExpectedQParams(float min, float max, QuantDType dtype, bool symmetric, int qmin, int qmax)
    {
        float minNeg = MathF.Min(min, 0f);
        float maxPos = MathF.Max(max, 0f);
        if (symmetric)
        {
            float scale = MathF.Max(MathF.Max(-minNeg, maxPos) / ((qmax - qmin) / 2.0f), Eps);
            return (scale, dtype == QuantDType.QUInt8 ? 128 : 0);
        }

        float affineScale = MathF.Max((maxPos - minNeg) / (float)(qmax - qmin), Eps);
        int zeroPoint = Math.Clamp(qmin - (int)MathF.Round(minNeg / affineScale, MidpointRounding.ToEven), qmin, qmax);
        return (affineScale, zeroPoint);
    }

    /// <summary>Quantize then dequantize with the contract's formulas (full dtype clamp).</summary>
    public static float FakeQuantize(float x, float scale, int zeroPoint, QuantDType dtype)
    {
        int lowest = dtype == QuantDType.QUInt8 ? 0 : -128, highest = dtype == QuantDType.QUInt8 ? 255 : 127;
        int q = Math.Clamp((int)MathF.Round(x * (1.0f / scale), MidpointRounding.ToEven) + zeroPoint, lowest, highest);
        return (float)(q - zeroPoint) * scale;
    }

    /// <summary>Mean squared error of quantize→dequantize over <paramref name="values"/>, in double.</summary>
    public static double Mse(float[] values, QParams qparams)
    {
        double sum = 0.0;
        foreach (float v in values)
        {
            double e = FakeQuantize(v, qparams.Scale, qparams.ZeroPoint, qparams.DType) - (double)v;
            sum += e * e;
        }

        return sum / values.Length;
    }

    /// <summary>Observes every batch as a flat tensor.</summary>
    public static T ObserveAll<T>(T observer, float[][] batches)
        where T : Observer
    {
        foreach (float[] batch in batches)
        {
            observer.Observe(batch, [batch.Length]);
        }

        return observer;
    }
}
