using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference quantize/dequantize (the oracle for every vector path):
/// <c>q = clamp(round_half_even(x * (1f / scale)) + zp, dtype_min, dtype_max)</c>,
/// <c>x = (float)(q - zp) * scale</c>, all float32.
/// </summary>
public static class QuantizeScalar
{
    // TODO(helper B1)
    public static void QuantizeToUInt8(ReadOnlySpan<float> values, Span<byte> quantized, float scale, int zeroPoint) => throw new NotImplementedException();

    public static void QuantizeToInt8(ReadOnlySpan<float> values, Span<sbyte> quantized, float scale, int zeroPoint) => throw new NotImplementedException();

    public static void DequantizeUInt8(ReadOnlySpan<byte> quantized, Span<float> values, float scale, int zeroPoint) => throw new NotImplementedException();

    public static void DequantizeInt8(ReadOnlySpan<sbyte> quantized, Span<float> values, float scale, int zeroPoint) => throw new NotImplementedException();
}
