using System;
using System.Globalization;

namespace QuantGen.Dynamic;

/// <summary>
/// float32 weights to float16 and back, as PyTorch's <c>float16_dynamic_qconfig</c> layers store them
/// (docs/numerics.md §11): <c>linear_prepack_fp16</c> first saturates the weight to float16's finite range
/// (<c>at::_saturate_weight_to_fp16</c>: ±65504), then fbgemm rounds each value to the nearest float16, ties to even
/// (subnormals kept). Widening back to float32 is exact.
/// </summary>
public static class Float16Weights
{
    /// <summary>The largest finite float16, 65504: what <c>_saturate_weight_to_fp16</c> clamps to.</summary>
    public const float MaxFinite = 65504f;

    /// <summary>Saturates each value to ±65504 and rounds it to the nearest float16 (ties to even).</summary>
    /// <param name="name">The layer, for the message.</param>
    /// <param name="what">The tensor ("weight", "weight_ih_l0"), for the message.</param>
    /// <param name="values">float32 weights.</param>
    /// <returns>The float16 weights.</returns>
    /// <exception cref="ArgumentException">A NaN or infinite weight (the message names the layer, the tensor and the index).</exception>
    public static Half[] Round(string name, string what, ReadOnlySpan<float> values)
    {
        var rounded = new Half[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            float value = values[i];
            if (!float.IsFinite(value))
            {
                throw new ArgumentException($"{name}: {what}[{i}] is {value.ToString(CultureInfo.InvariantCulture)}; float16 weights are made from finite values.");
            }

            // .NET's float → Half conversion rounds to nearest, ties to even, as fbgemm's cpu_float2half_rn does.
            rounded[i] = (Half)Math.Clamp(value, -MaxFinite, MaxFinite);
        }

        return rounded;
    }

    /// <summary>The float16 values widened to float32 (exact): what the float32 GEMM multiplies by.</summary>
    /// <param name="values">float16 values.</param>
    /// <returns>float32 values, one per float16 value.</returns>
    public static float[] Widen(ReadOnlySpan<Half> values)
    {
        var widened = new float[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            widened[i] = (float)values[i];
        }

        return widened;
    }

    /// <summary>Throws unless every value is finite (a NaN or infinite float16 cannot come from <see cref="Round"/>).</summary>
    /// <param name="name">The layer, for the message.</param>
    /// <param name="what">The tensor, for the message.</param>
    /// <param name="values">float16 values.</param>
    /// <param name="columns">Values per row, to name the row and column of a bad value.</param>
    /// <exception cref="ArgumentException">A NaN or infinite value.</exception>
    internal static void CheckFinite(string name, string what, ReadOnlySpan<Half> values, int columns)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!Half.IsFinite(values[i]))
            {
                throw new ArgumentException($"{name}: {what} [{i / columns}, {i % columns}] is {((float)values[i]).ToString(CultureInfo.InvariantCulture)}; float16 weights must be finite.");
            }
        }
    }
}
