using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// The reference for the float ends of a dynamic Linear (docs/numerics.md §8): the input's range, fbgemm's quantizer
/// and the float epilogue. <see cref="DynamicLinearKernel"/> is its vectorised, bit-identical form.
/// </summary>
public static class DynamicLinearScalar
{
    /// <summary>The minimum and maximum of <paramref name="input"/>, or the index of its first non-finite value.</summary>
    /// <param name="input">Float values, at least one.</param>
    /// <returns>(min, max, −1) when every value is finite, else (_, _, index).</returns>
    public static (float Min, float Max, int NonFinite) Range(ReadOnlySpan<float> input)
    {
        float min = float.PositiveInfinity;
        float max = float.NegativeInfinity;
        for (int i = 0; i < input.Length; i++)
        {
            float value = input[i];
            if (!float.IsFinite(value))
            {
                return (min, max, i);
            }

            min = MathF.Min(min, value);
            max = MathF.Max(max, value);
        }

        return (min, max, -1);
    }

    /// <summary>
    /// fbgemm's quantizer (<c>fbgemm::Quantize</c>, its default LEGACY order), which adds the zero point before
    /// rounding: <c>q = clamp(rne(x · (1/s) + zp), 0, 255)</c>.
    /// </summary>
    /// <param name="input">Float values.</param>
    /// <param name="output">quint8 values, same length.</param>
    /// <param name="inverseScale">1/s as float32.</param>
    /// <param name="zeroPoint">zp, 0..255.</param>
    public static void QuantizeZeroPointFirst(ReadOnlySpan<float> input, Span<byte> output, float inverseScale, int zeroPoint)
    {
        for (int i = 0; i < input.Length; i++)
        {
            float shifted = (input[i] * inverseScale) + zeroPoint;
            output[i] = (byte)Math.Clamp(MathF.Round(shifted, MidpointRounding.ToEven), 0f, 255f);
        }
    }

    /// <summary>
    /// The float epilogue: <c>y = acc · (s_x · s_w[c]) + b[c]</c>, then ReLU when fused (−0 kept), in that order, no FMA.
    /// </summary>
    /// <param name="accumulators">int32 [rows, outFeatures].</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="inputScale">s_x.</param>
    /// <param name="weightScales">s_w per output feature.</param>
    /// <param name="bias">b per output feature, or empty for none.</param>
    /// <param name="relu">A fused ReLU.</param>
    /// <param name="output">float [rows, outFeatures].</param>
    public static void Scale(ReadOnlySpan<int> accumulators, int outFeatures, float inputScale, ReadOnlySpan<float> weightScales, ReadOnlySpan<float> bias, bool relu, Span<float> output)
    {
        for (int offset = 0; offset < accumulators.Length; offset += outFeatures)
        {
            for (int c = 0; c < outFeatures; c++)
            {
                float value = accumulators[offset + c] * (inputScale * weightScales[c]);
                if (!bias.IsEmpty)
                {
                    value += bias[c];
                }

                if (relu && value < 0f)
                {
                    value = 0f;
                }

                output[offset + c] = value;
            }
        }
    }
}
