using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference re-quantization of 8-bit values to other qparams, element by element in the
/// <see cref="UInt8View"/>: <c>q' = clamp(round_half_even(((float)(q - z) * s) * (1f / s')) + z', 0, 255)</c>
/// (dequantize, then the contract's quantize), a plain copy when the qparams are equal.
/// </summary>
/// <remarks>
/// What <c>torch.cat</c> on quantized tensors does to each input (PyTorch's <c>qcat_nhwc_kernel</c> scalar
/// loop: <c>quantize_val(scale, zp, dequantize_val(s_i, z_i, q))</c>, memcpy when the qparams match).
/// With equal qparams the formula is the identity anyway (<c>|q - z| ≤ 255</c> survives the float
/// round trip), so the copy changes nothing but speed.
/// </remarks>
public static class RequantizeScalar
{
    /// <summary>Re-quantizes <paramref name="input"/> into <paramref name="output"/> (same length; may be the same memory).</summary>
    /// <param name="input">Values in the view.</param>
    /// <param name="inputScale">s.</param>
    /// <param name="inputZeroPoint">z in the view.</param>
    /// <param name="output">Results in the view.</param>
    /// <param name="outputScale">s'.</param>
    /// <param name="outputZeroPoint">z' in the view.</param>
    public static void Apply(ReadOnlySpan<byte> input, float inputScale, int inputZeroPoint, Span<byte> output, float outputScale, int outputZeroPoint)
    {
        if (input.Length != output.Length)
        {
            throw new ArgumentException($"Requantize: input has {input.Length} elements but output has {output.Length}.");
        }

        QuantizeScalar.ValidateScale(inputScale, "Requantize input");
        QuantizeScalar.ValidateScale(outputScale, "Requantize output");
        QuantizeScalar.ValidateZeroPoint(inputZeroPoint, QuantDType.QUInt8, "Requantize input");
        QuantizeScalar.ValidateZeroPoint(outputZeroPoint, QuantDType.QUInt8, "Requantize output");
        if (inputScale.Equals(outputScale) && inputZeroPoint == outputZeroPoint)
        {
            input.CopyTo(output);
            return;
        }

        float inverseOutputScale = 1.0f / outputScale;
        for (int i = 0; i < input.Length; i++)
        {
            float value = QuantizeScalar.DequantizeValue(input[i], inputScale, inputZeroPoint);
            output[i] = (byte)QuantizeScalar.QuantizeValue(value, inverseOutputScale, outputZeroPoint, 0, 255);
        }
    }
}
