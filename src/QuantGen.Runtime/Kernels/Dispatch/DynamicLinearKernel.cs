using System;
using System.Runtime.Intrinsics;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Kernels;

/// <summary>
/// <see cref="DynamicLinearScalar"/> vectorised, bit-identical: each lane does the reference's float32 operations in
/// its order (no FMA); min/max follow IEEE 754's minimum/maximum as MathF's do; rounding is to nearest even
/// (<c>Vector*.Round</c>); the ReLU keeps −0 as the reference's <c>value &lt; 0</c> test does. A recurrent step runs
/// these on every call, where the one-element loops had cost as much as the int8 GEMM between them.
/// </summary>
public static class DynamicLinearKernel
{
    /// <summary>As <see cref="DynamicLinearScalar.Range"/>.</summary>
    /// <param name="input">Float values, at least one.</param>
    /// <param name="vectorBits">256 or 128; 0 runs the scalar reference; −1 (default) the dispatched width.</param>
    public static (float Min, float Max, int NonFinite) Range(ReadOnlySpan<float> input, int vectorBits = -1)
    {
        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        int width = vectorBits / 32;
        if (vectorBits == 0 || input.Length < 2 * width)
        {
            return DynamicLinearScalar.Range(input);
        }

        int i = 0;
        float min, max;
        bool finite;
        if (vectorBits == 256)
        {
            Vector256<float> low = Vector256.Create(float.PositiveInfinity), high = Vector256.Create(float.NegativeInfinity);
            Vector256<float> check = Vector256<float>.Zero;
            for (; i + 8 <= input.Length; i += 8)
            {
                Vector256<float> v = Vector256.Create(input.Slice(i, 8));
                low = Vector256.Min(low, v);
                high = Vector256.Max(high, v);
                check += v - v; // 0 for finite values, NaN once any value is infinite or NaN
            }

            finite = Vector256.EqualsAll(check, Vector256<float>.Zero);
            (min, max) = (Reduce(low, true), Reduce(high, false));
        }
        else
        {
            Vector128<float> low = Vector128.Create(float.PositiveInfinity), high = Vector128.Create(float.NegativeInfinity);
            Vector128<float> check = Vector128<float>.Zero;
            for (; i + 4 <= input.Length; i += 4)
            {
                Vector128<float> v = Vector128.Create(input.Slice(i, 4));
                low = Vector128.Min(low, v);
                high = Vector128.Max(high, v);
                check += v - v;
            }

            finite = Vector128.EqualsAll(check, Vector128<float>.Zero);
            (min, max) = (Reduce(low.ToVector256(), true, 4), Reduce(high.ToVector256(), false, 4));
        }

        if (!finite)
        {
            // Rare: the reference finds (and the caller names) the first bad value.
            return DynamicLinearScalar.Range(input);
        }

        for (; i < input.Length; i++)
        {
            float value = input[i];
            if (!float.IsFinite(value))
            {
                return DynamicLinearScalar.Range(input);
            }

            min = MathF.Min(min, value);
            max = MathF.Max(max, value);
        }

        return (min, max, -1);
    }

    /// <summary>As <see cref="DynamicLinearScalar.QuantizeZeroPointFirst"/>.</summary>
    /// <param name="input">Float values (finite).</param>
    /// <param name="output">quint8 values, same length.</param>
    /// <param name="inverseScale">1/s.</param>
    /// <param name="zeroPoint">zp, 0..255.</param>
    /// <param name="vectorBits">256 runs the vector path; 128 and 0 the scalar reference; −1 (default) the dispatched width.</param>
    public static void QuantizeZeroPointFirst(ReadOnlySpan<float> input, Span<byte> output, float inverseScale, int zeroPoint, int vectorBits = -1)
    {
        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        if (vectorBits != 256 || output.Length != input.Length)
        {
            DynamicLinearScalar.QuantizeZeroPointFirst(input, output, inverseScale, zeroPoint);
            return;
        }

        int i = 0;
        Vector256<float> scale = Vector256.Create(inverseScale), shift = Vector256.Create((float)zeroPoint);
        Vector256<float> low = Vector256<float>.Zero, high = Vector256.Create(255f);
        for (; i + 16 <= input.Length; i += 16)
        {
            Vector256<int> a = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round((Vector256.Create(input.Slice(i, 8)) * scale) + shift), low), high));
            Vector256<int> b = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round((Vector256.Create(input.Slice(i + 8, 8)) * scale) + shift), low), high));
            Vector256<ushort> words = Vector256.Narrow(a.AsUInt32(), b.AsUInt32());
            Vector128<byte> bytes = Vector128.Narrow(words.GetLower(), words.GetUpper());
            bytes.CopyTo(output.Slice(i));
        }

        DynamicLinearScalar.QuantizeZeroPointFirst(input[i..], output[i..], inverseScale, zeroPoint);
    }

    /// <summary>As <see cref="DynamicLinearScalar.Scale"/>.</summary>
    /// <param name="accumulators">int32 [rows, outFeatures].</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="inputScale">s_x.</param>
    /// <param name="weightScales">s_w per output feature.</param>
    /// <param name="bias">b per output feature, or empty.</param>
    /// <param name="relu">A fused ReLU.</param>
    /// <param name="output">float [rows, outFeatures].</param>
    /// <param name="vectorBits">256 runs the vector path; 128 and 0 the scalar reference; −1 (default) the dispatched width.</param>
    public static void Scale(ReadOnlySpan<int> accumulators, int outFeatures, float inputScale, ReadOnlySpan<float> weightScales, ReadOnlySpan<float> bias, bool relu, Span<float> output, int vectorBits = -1)
    {
        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        if (vectorBits != 256 || outFeatures < 8 || output.Length != accumulators.Length || weightScales.Length != outFeatures || (!bias.IsEmpty && bias.Length != outFeatures))
        {
            DynamicLinearScalar.Scale(accumulators, outFeatures, inputScale, weightScales, bias, relu, output);
            return;
        }

        Vector256<float> xScale = Vector256.Create(inputScale);
        for (int offset = 0; offset < accumulators.Length; offset += outFeatures)
        {
            // The last block of a row overlaps the one before it when outFeatures is not a multiple of 8: it
            // recomputes a few values from the same inputs, so they come out the same.
            for (int c = 0; ; c += 8)
            {
                int at = Math.Min(c, outFeatures - 8);
                Vector256<float> value = Vector256.ConvertToSingle(Vector256.Create(accumulators.Slice(offset + at, 8))) * (xScale * Vector256.Create(weightScales.Slice(at, 8)));
                if (!bias.IsEmpty)
                {
                    value += Vector256.Create(bias.Slice(at, 8));
                }

                if (relu)
                {
                    value = Vector256.ConditionalSelect(Vector256.LessThan(value, Vector256<float>.Zero), Vector256<float>.Zero, value);
                }

                value.CopyTo(output.Slice(offset + at, 8));
                if (at + 8 >= outFeatures)
                {
                    break;
                }
            }
        }
    }

    private static float Reduce(Vector256<float> lanes, bool minimum, int count = 8)
    {
        float result = lanes.GetElement(0);
        for (int k = 1; k < count; k++)
        {
            result = minimum ? MathF.Min(result, lanes.GetElement(k)) : MathF.Max(result, lanes.GetElement(k));
        }

        return result;
    }
}
