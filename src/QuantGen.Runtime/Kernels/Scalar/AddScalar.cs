using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference quantized add / add+ReLU, element by element in the <see cref="UInt8View"/>:
/// <c>c = (float)(qa - za) * sa + (float)(qb - zb) * sb</c>, ReLU as <c>max(c, 0)</c>, then
/// <c>q = clamp(round_half_even(c * (1f / sy)) + zy, 0, 255)</c> — all float32, no FMA.
/// </summary>
/// <remarks>
/// This is the numerics contract's X86 add (DESIGN.md), and exactly the scalar loop of PyTorch's
/// <c>qadd_kernel</c> (dequantize_val, float add, <c>std::max(c, 0)</c>, quantize_val). PyTorch's
/// vectorized body dequantizes as <c>fma(s, q, -(s·zp))</c> instead of <c>(q - zp)·s</c>, which can
/// differ in the last bit and so, on an exact tie of the final rounding, by one step.
/// </remarks>
public static class AddScalar
{
    /// <summary>Adds two equally long unsigned views element by element into <paramref name="output"/>.</summary>
    /// <param name="a">First input (unsigned view).</param>
    /// <param name="scaleA">sa.</param>
    /// <param name="zeroPointA">za in the view (0..255).</param>
    /// <param name="b">Second input, same element order as <paramref name="a"/>.</param>
    /// <param name="scaleB">sb.</param>
    /// <param name="zeroPointB">zb in the view.</param>
    /// <param name="output">Results in the view, same length; may alias an input.</param>
    /// <param name="outputScale">sy.</param>
    /// <param name="outputZeroPoint">zy in the view.</param>
    /// <param name="relu">add_relu.</param>
    public static void Apply(
        ReadOnlySpan<byte> a, float scaleA, int zeroPointA,
        ReadOnlySpan<byte> b, float scaleB, int zeroPointB,
        Span<byte> output, float outputScale, int outputZeroPoint, bool relu)
    {
        if (a.Length != b.Length || output.Length != a.Length)
        {
            throw new ArgumentException($"Add: inputs have {a.Length} and {b.Length} elements and the output {output.Length}; all must be equal.");
        }

        QuantizeScalar.ValidateScale(scaleA, "Add input a");
        QuantizeScalar.ValidateScale(scaleB, "Add input b");
        QuantizeScalar.ValidateScale(outputScale, "Add output");
        QuantizeScalar.ValidateZeroPoint(zeroPointA, QuantDType.QUInt8, "Add input a");
        QuantizeScalar.ValidateZeroPoint(zeroPointB, QuantDType.QUInt8, "Add input b");
        QuantizeScalar.ValidateZeroPoint(outputZeroPoint, QuantDType.QUInt8, "Add output");

        float inverseOutputScale = 1.0f / outputScale;
        for (int i = 0; i < a.Length; i++)
        {
            float da = QuantizeScalar.DequantizeValue(a[i], scaleA, zeroPointA);
            float db = QuantizeScalar.DequantizeValue(b[i], scaleB, zeroPointB);
            float sum = da + db;
            if (relu)
            {
                sum = sum > 0f ? sum : 0f;
            }

            output[i] = (byte)QuantizeScalar.QuantizeValue(sum, inverseOutputScale, outputZeroPoint, 0, 255);
        }
    }
}
