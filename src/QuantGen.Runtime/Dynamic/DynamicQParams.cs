using System;

namespace QuantGen.Dynamic;

/// <summary>
/// The scale and zero point a dynamically quantized layer gives its input on every call, from that input's
/// min and max: PyTorch's C++ <c>quant_utils::ChooseQuantizationParams</c> (aten's <c>QuantUtils.h</c>), which
/// <c>quantized::linear_dynamic</c> calls. It is not the observers' formula (<see cref="QParamsMath"/>): it
/// computes in float64, cuts off scales below <see cref="SmallScaleThreshold"/>, and picks the zero point from
/// whichever end of the range it judges the more accurate. docs/numerics.md §8 writes it out.
/// </summary>
public static class DynamicQParams
{
    /// <summary>
    /// The smallest scale PyTorch lets a dynamic input have (<c>SMALL_SCALE_THRESHOLD</c>, float16's smallest
    /// normal number): a smaller range is widened to this scale.
    /// </summary>
    public const float SmallScaleThreshold = 6.1e-5f;

    /// <summary>
    /// Whether <paramref name="backend"/> halves the activation range of a dynamic layer. PyTorch's dynamic
    /// <c>Linear</c> always asks for reduce_range; fbgemm, x86 and onednn honour it (quint8 0..127), qnnpack
    /// ignores it with a warning (0..255).
    /// </summary>
    /// <param name="backend">The arithmetic preset.</param>
    public static bool ReducesRange(QuantBackend backend) => backend switch
    {
        QuantBackend.X86 => true,
        QuantBackend.Qnnpack => false,
        _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, "Unknown backend."),
    };

    /// <summary>The quint8 scale and zero point of a dynamic layer's input whose values lie in [min, max].</summary>
    /// <param name="min">The input's smallest value (finite).</param>
    /// <param name="max">The input's largest value (finite, at least <paramref name="min"/>).</param>
    /// <param name="backend">Decides reduce_range (<see cref="ReducesRange"/>).</param>
    /// <exception cref="ArgumentException">A non-finite bound, or min greater than max.</exception>
    public static (float Scale, int ZeroPoint) ForInput(float min, float max, QuantBackend backend) =>
        Choose(min, max, 0, 255, ReducesRange(backend));

    /// <summary>
    /// <c>ChooseQuantizationParams(min, max, qmin, qmax, preserve_sparsity=false,
    /// force_scale_power_of_two=false, reduce_range)</c>, step by step as aten computes it.
    /// </summary>
    /// <param name="min">Smallest value (finite).</param>
    /// <param name="max">Largest value (finite, at least <paramref name="min"/>).</param>
    /// <param name="quantMin">qmin before reduce_range (0 for quint8).</param>
    /// <param name="quantMax">qmax before reduce_range (255 for quint8).</param>
    /// <param name="reduceRange">Halve qmin and qmax (C++ integer division, towards zero).</param>
    /// <returns>The scale rounded to float32 (the value the input is quantized with) and the zero point.</returns>
    /// <exception cref="ArgumentException">A non-finite bound, min greater than max, or qmin not below qmax.</exception>
    public static (float Scale, int ZeroPoint) Choose(float min, float max, int quantMin, int quantMax, bool reduceRange)
    {
        if (!float.IsFinite(min) || !float.IsFinite(max))
        {
            throw new ArgumentException($"Dynamic qparams: the range [{min}, {max}] is not finite.");
        }

        if (min > max)
        {
            throw new ArgumentException($"Dynamic qparams: min ({min}) is greater than max ({max}).");
        }

        int qmin = reduceRange ? quantMin / 2 : quantMin;
        int qmax = reduceRange ? quantMax / 2 : quantMax;
        if (qmin >= qmax)
        {
            throw new ArgumentException($"Dynamic qparams: qmin ({qmin}) must be less than qmax ({qmax}).");
        }

        // Zero must be exactly representable, so the range always includes it. Written as std::min/std::max
        // are (a -0.0 bound is kept as it is; either sign gives the same result below).
        min = 0f < min ? 0f : min;
        max = max < 0f ? 0f : max;

        double scale = ((double)max - min) / (qmax - qmin);
        if ((float)scale == 0f || float.IsInfinity(1.0f / (float)scale))
        {
            scale = 0.1;
        }

        if (scale < SmallScaleThreshold)
        {
            // The range is stretched to the threshold scale, in float32 as aten does.
            float originalScale = (float)scale;
            scale = SmallScaleThreshold;
            if (min == 0f)
            {
                max = SmallScaleThreshold * (qmax - qmin);
            }
            else if (max == 0f)
            {
                min = -SmallScaleThreshold * (qmax - qmin);
            }
            else
            {
                float amplifier = SmallScaleThreshold / originalScale;
                min *= amplifier;
                max *= amplifier;
            }
        }

        // aten's comment says it keeps the end whose terms are smaller, but its code compares
        // |qmin| - |min/scale| with |qmax| - |max/scale| (differences, not sums); this follows the code.
        double zeroPointFromMin = qmin - (min / scale);
        double zeroPointFromMax = qmax - (max / scale);
        double zeroPointFromMinError = Math.Abs(qmin) - Math.Abs(min / scale);
        double zeroPointFromMaxError = Math.Abs(qmax) - Math.Abs(max / scale);
        double initialZeroPoint = zeroPointFromMinError < zeroPointFromMaxError ? zeroPointFromMin : zeroPointFromMax;

        int zeroPoint;
        if (initialZeroPoint < qmin)
        {
            zeroPoint = qmin;
        }
        else if (initialZeroPoint > qmax)
        {
            zeroPoint = qmax;
        }
        else
        {
            zeroPoint = (int)Math.Round(initialZeroPoint, MidpointRounding.ToEven);
        }

        return ((float)scale, zeroPoint);
    }
}
