using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference quantize/dequantize (the oracle for every vector path):
/// <c>q = clamp(round_half_even(x * (1f / scale)) + zp, dtype_min, dtype_max)</c>,
/// <c>x = (float)(q - zp) * scale</c>, all float32.
/// </summary>
/// <remarks>
/// <para>
/// The reciprocal is taken once in float32 and multiplied, as PyTorch does (fbgemm's <c>Quantize</c> and
/// ATen's <c>quantize_val</c>): dividing by the scale instead, or dividing in float64, gives a different
/// integer on exact ties. The zero point is added after rounding, so ties round to even in the
/// zero-point-free domain. Every quantize clamps to the full dtype range, whatever quant_min/quant_max
/// shaped the scale.
/// </para>
/// <para>
/// Non-finite inputs (only reachable at inference: calibration rejects them). PyTorch's result for
/// these is an accident of its float-to-int conversion and differs between versions and code paths
/// (older notes say NaN and ±inf become 0; the libtorch under TorchSharp 0.107 on x64 gives quint8
/// NaN → 255, +inf → 255, −inf → 0, and qint8 127 for NaN, +inf AND −inf, the last one an int32
/// overflow). QuantGen instead defines:
/// <list type="bullet">
/// <item><description>+inf → dtype max and −inf → dtype min: the same saturation every finite value
/// beyond the representable range gets, i.e. the limit of ever larger inputs;</description></item>
/// <item><description>NaN → the zero point, which dequantizes to exactly 0.0: NaN has no magnitude to
/// saturate towards, and 0 is the value padding and ReLU already treat as neutral, so one bad element
/// perturbs its neighbours' results as little as possible.</description></item>
/// </list>
/// Clamping happens in float before the conversion to int, so huge and infinite values never reach an
/// out-of-range float→int conversion.
/// </para>
/// </remarks>
public static class QuantizeScalar
{
    /// <summary>Quantizes one value: the contract's formula, with the non-finite rules in the type's remarks.</summary>
    /// <param name="value">The float value.</param>
    /// <param name="inverseScale"><c>1f / scale</c>, computed in float32 by the caller (once per tensor or channel).</param>
    /// <param name="zeroPoint">The zero point.</param>
    /// <param name="quantMin">Smallest integer of the full dtype range.</param>
    /// <param name="quantMax">Largest integer of the full dtype range.</param>
    /// <returns>The clamped integer.</returns>
    public static int QuantizeValue(float value, float inverseScale, int zeroPoint, int quantMin, int quantMax)
    {
        float scaled = value * inverseScale;
        float rounded = MathF.Round(scaled, MidpointRounding.ToEven);
        if (float.IsNaN(rounded))
        {
            return zeroPoint;
        }

        // clamp(r + zp, min, max) == clamp(r, min - zp, max - zp) + zp for integer-valued r; clamping
        // before the conversion keeps huge and infinite values out of the float->int conversion.
        float lower = quantMin - zeroPoint;
        float upper = quantMax - zeroPoint;
        float clamped = rounded < lower ? lower : (rounded > upper ? upper : rounded);
        return (int)clamped + zeroPoint;
    }

    /// <summary>Dequantizes one value: <c>(float)(q - zp) * scale</c>.</summary>
    public static float DequantizeValue(int quantized, float scale, int zeroPoint) => (float)(quantized - zeroPoint) * scale;

    /// <summary>Quantizes to quint8 (0..255).</summary>
    /// <param name="values">Float input.</param>
    /// <param name="quantized">Output, same length as <paramref name="values"/>.</param>
    /// <param name="scale">Positive, finite scale.</param>
    /// <param name="zeroPoint">Zero point in 0..255.</param>
    public static void QuantizeToUInt8(ReadOnlySpan<float> values, Span<byte> quantized, float scale, int zeroPoint)
    {
        Validate(values.Length, quantized.Length, scale, zeroPoint, QuantDType.QUInt8);
        float inverseScale = 1.0f / scale;
        for (int i = 0; i < values.Length; i++)
        {
            quantized[i] = (byte)QuantizeValue(values[i], inverseScale, zeroPoint, 0, 255);
        }
    }

    /// <summary>Quantizes to qint8 (-128..127).</summary>
    /// <param name="values">Float input.</param>
    /// <param name="quantized">Output, same length as <paramref name="values"/>.</param>
    /// <param name="scale">Positive, finite scale.</param>
    /// <param name="zeroPoint">Zero point in -128..127.</param>
    public static void QuantizeToInt8(ReadOnlySpan<float> values, Span<sbyte> quantized, float scale, int zeroPoint)
    {
        Validate(values.Length, quantized.Length, scale, zeroPoint, QuantDType.QInt8);
        float inverseScale = 1.0f / scale;
        for (int i = 0; i < values.Length; i++)
        {
            quantized[i] = (sbyte)QuantizeValue(values[i], inverseScale, zeroPoint, -128, 127);
        }
    }

    /// <summary>Dequantizes quint8 values.</summary>
    /// <param name="quantized">Integers.</param>
    /// <param name="values">Output, same length as <paramref name="quantized"/>.</param>
    /// <param name="scale">Positive, finite scale.</param>
    /// <param name="zeroPoint">Zero point in 0..255.</param>
    public static void DequantizeUInt8(ReadOnlySpan<byte> quantized, Span<float> values, float scale, int zeroPoint)
    {
        Validate(quantized.Length, values.Length, scale, zeroPoint, QuantDType.QUInt8);
        for (int i = 0; i < quantized.Length; i++)
        {
            values[i] = DequantizeValue(quantized[i], scale, zeroPoint);
        }
    }

    /// <summary>Dequantizes qint8 values.</summary>
    /// <param name="quantized">Integers.</param>
    /// <param name="values">Output, same length as <paramref name="quantized"/>.</param>
    /// <param name="scale">Positive, finite scale.</param>
    /// <param name="zeroPoint">Zero point in -128..127.</param>
    public static void DequantizeInt8(ReadOnlySpan<sbyte> quantized, Span<float> values, float scale, int zeroPoint)
    {
        Validate(quantized.Length, values.Length, scale, zeroPoint, QuantDType.QInt8);
        for (int i = 0; i < quantized.Length; i++)
        {
            values[i] = DequantizeValue(quantized[i], scale, zeroPoint);
        }
    }

    /// <summary>Throws unless <paramref name="scale"/> is positive and finite.</summary>
    internal static void ValidateScale(float scale, string what)
    {
        if (!(scale > 0f) || !float.IsFinite(scale))
        {
            throw new ArgumentOutOfRangeException(nameof(scale), scale, $"{what}: the scale must be positive and finite, got {scale}.");
        }
    }

    /// <summary>Throws unless <paramref name="zeroPoint"/> lies in <paramref name="dtype"/>'s range.</summary>
    internal static void ValidateZeroPoint(int zeroPoint, QuantDType dtype, string what)
    {
        if (zeroPoint < dtype.Min() || zeroPoint > dtype.Max())
        {
            throw new ArgumentOutOfRangeException(nameof(zeroPoint), zeroPoint, $"{what}: the zero point must lie in {dtype.ToTorchString()}'s range {dtype.Min()}..{dtype.Max()}, got {zeroPoint}.");
        }
    }

    private static void Validate(int sourceLength, int destinationLength, float scale, int zeroPoint, QuantDType dtype)
    {
        if (sourceLength != destinationLength)
        {
            throw new ArgumentException($"QuantizeScalar: source has {sourceLength} elements but destination has {destinationLength}.");
        }

        ValidateScale(scale, "QuantizeScalar");
        ValidateZeroPoint(zeroPoint, dtype, "QuantizeScalar");
    }
}
