using System;

namespace QuantGen;

/// <summary>
/// Observed range → scale and zero point, exactly as PyTorch's <c>ObserverBase._calculate_qparams</c>
/// computes them: every operation in float32, rounding half to even. See docs/numerics.md.
/// </summary>
public static class QParamsMath
{
    /// <summary>float32 machine epsilon, PyTorch's default observer <c>eps</c>: the smallest scale.</summary>
    public const float Eps = 1.1920929e-07f;

    /// <summary>
    /// The quant_min/quant_max that shape scale and zero point: the custom range if given, else the
    /// dtype's; halved (floor division, as Python's <c>//</c>) by <paramref name="reduceRange"/>.
    /// </summary>
    public static (int QuantMin, int QuantMax) QuantRange(QuantDType dtype, bool reduceRange, int? quantMin = null, int? quantMax = null)
    {
        if (quantMin is int customMin && quantMax is int customMax)
        {
            if (customMin >= customMax)
            {
                throw new ArgumentException($"quant_min ({customMin}) must be less than quant_max ({customMax}).");
            }

            if (customMin < dtype.Min() || customMax > dtype.Max())
            {
                throw new ArgumentException($"quant_min/quant_max ({customMin}..{customMax}) must lie within {dtype.ToTorchString()}'s range {dtype.Min()}..{dtype.Max()}.");
            }

            return reduceRange ? (FloorDiv2(customMin), FloorDiv2(customMax)) : (customMin, customMax);
        }

        if (quantMin.HasValue != quantMax.HasValue)
        {
            throw new ArgumentException("Give both quant_min and quant_max, or neither.");
        }

        return (dtype, reduceRange) switch
        {
            (QuantDType.QInt8, true) => (-64, 63),
            (QuantDType.QInt8, false) => (-128, 127),
            (QuantDType.QUInt8, true) => (0, 127),
            _ => (0, 255),
        };
    }

    /// <summary>
    /// Scale and zero point for one observed range [min, max].
    /// </summary>
    /// <param name="min">Observed minimum.</param>
    /// <param name="max">Observed maximum.</param>
    /// <param name="dtype">Quantized type (decides the symmetric zero point).</param>
    /// <param name="symmetric">Symmetric (zero point fixed) rather than affine.</param>
    /// <param name="quantMin">Effective quant_min, from <see cref="QuantRange"/>.</param>
    /// <param name="quantMax">Effective quant_max, from <see cref="QuantRange"/>.</param>
    /// <param name="customRange">True when quant_min/quant_max were configured (changes the quint8 symmetric zero point).</param>
    public static (float Scale, int ZeroPoint) FromMinMax(float min, float max, QuantDType dtype, bool symmetric, int quantMin, int quantMax, bool customRange = false)
    {
        if (!float.IsFinite(min) || !float.IsFinite(max))
        {
            throw new ArgumentException($"Observed range [{min}, {max}] is not finite.");
        }

        if (min > max)
        {
            throw new ArgumentException($"Observed min ({min}) is greater than max ({max}).");
        }

        // Zero must be exactly representable (zero padding, ReLU), so the range always includes it.
        float minNeg = MathF.Min(min, 0f);
        float maxPos = MathF.Max(max, 0f);

        if (symmetric)
        {
            // PyTorch divides by float(quant_max - quant_min) / 2, i.e. 127.5 for int8, not 127: a weight at
            // +max lands on 127.5 -> 128 -> clamps to 127, so symmetric weights hold -128 but never +128.
            float absMax = MathF.Max(-minNeg, maxPos);
            float scale = MathF.Max(absMax / ((quantMax - quantMin) / 2.0f), Eps);
            int zeroPoint = dtype == QuantDType.QUInt8
                ? (customRange ? FloorDiv2(quantMin + quantMax) : 128)
                : 0;
            return (scale, zeroPoint);
        }
        else
        {
            float scale = MathF.Max((maxPos - minNeg) / (float)(quantMax - quantMin), Eps);
            int zeroPoint = quantMin - (int)MathF.Round(minNeg / scale, MidpointRounding.ToEven);
            zeroPoint = Math.Clamp(zeroPoint, quantMin, quantMax);
            return (scale, zeroPoint);
        }
    }

    private static int FloorDiv2(int value) => (int)Math.Floor(value / 2.0);
}
