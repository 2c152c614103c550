using System;
using QuantGen.Observers;

namespace QuantGen.Qat;

/// <summary>
/// The qparams PyTorch's fused QAT op (<c>torch.fused_moving_avg_obs_fake_quant</c>, behind
/// <c>FusedMovingAvgObsFakeQuantize</c> and so behind every <c>get_default_qat_qconfig</c>) uses while training.
/// It does not call the observer's <c>calculate_qparams</c>; it runs ATen's C++ <c>ChooseQuantizationParams</c>
/// on the averaged range, which differs from the observer formula (<see cref="QParamsMath.FromMinMax"/>) that
/// convert uses. docs/qat.md lists the differences.
/// </summary>
public static class TrainingQParams
{
    /// <summary>
    /// ATen's smallest scale: a smaller one is raised to it and the range stretched by the same factor
    /// (the observer formula instead floors the scale at float32 epsilon).
    /// </summary>
    public const float SmallScaleThreshold = 6.1e-5f;

    /// <summary>
    /// ATen's <c>ChooseQuantizationParams(min, max, qmin, qmax, preserve_sparsity)</c>: the range widened to contain 0,
    /// scale = (max − min) / (qmax − qmin) computed in double and stored as float32, zero point from whichever end
    /// adds the smaller terms, rounded half to even and clamped. With <paramref name="preserveSparsity"/> (the fused op
    /// passes its symmetric flag here) a range with both signs is first made symmetric around the middle of
    /// [qmin, qmax], so scale = max(|min| / 128, max / 127) for int8 and the zero point is the middle value.
    /// </summary>
    /// <param name="min">The averaged minimum.</param>
    /// <param name="max">The averaged maximum.</param>
    /// <param name="quantMin">Effective quant_min (after reduce_range).</param>
    /// <param name="quantMax">Effective quant_max (after reduce_range).</param>
    /// <param name="preserveSparsity">True for symmetric schemes.</param>
    /// <returns>Scale and zero point.</returns>
    /// <exception cref="ArgumentException">A range that is not finite, min &gt; max, or quant_min ≥ quant_max.</exception>
    public static (float Scale, int ZeroPoint) Choose(float min, float max, int quantMin, int quantMax, bool preserveSparsity)
    {
        if (!float.IsFinite(min) || !float.IsFinite(max) || min > max)
        {
            throw new ArgumentException($"The averaged range [{min}, {max}] is not a finite range with min <= max.");
        }

        if (quantMin >= quantMax)
        {
            throw new ArgumentException($"quant_min ({quantMin}) must be less than quant_max ({quantMax}).");
        }

        if (min < 0 && max > 0 && preserveSparsity)
        {
            // Integer division as in C++: (255 / 2 + 1) = 128.
            int symmetricQMin = -(((quantMax - quantMin) / 2) + 1);
            int symmetricQMax = (quantMax - quantMin) / 2;
            double maxScale = MathF.Max(MathF.Abs(min / symmetricQMin), MathF.Abs(max / symmetricQMax));
            min = (float)(maxScale * symmetricQMin);
            max = (float)(maxScale * symmetricQMax);
        }

        min = MathF.Min(min, 0f);
        max = MathF.Max(max, 0f);

        double scale = ((double)max - min) / (quantMax - quantMin);
        if ((float)scale == 0f || float.IsInfinity(1f / (float)scale))
        {
            scale = 0.1;
        }

        if (scale < SmallScaleThreshold)
        {
            float originalScale = (float)scale;
            scale = SmallScaleThreshold;
            if (min == 0f)
            {
                max = SmallScaleThreshold * (quantMax - quantMin);
            }
            else if (max == 0f)
            {
                min = -SmallScaleThreshold * (quantMax - quantMin);
            }
            else
            {
                float amplifier = SmallScaleThreshold / originalScale;
                min *= amplifier;
                max *= amplifier;
            }
        }

        // Of the two ends, take the zero point whose computation adds the smaller terms (less rounding error).
        double fromMin = quantMin - (min / scale);
        double fromMax = quantMax - (max / scale);
        double fromMinError = Math.Abs(quantMin) - Math.Abs(min / scale);
        double fromMaxError = Math.Abs(quantMax) - Math.Abs(max / scale);
        double initialZeroPoint = fromMinError < fromMaxError ? fromMin : fromMax;
        if (min < 0 && max > 0 && preserveSparsity)
        {
            initialZeroPoint = (quantMin + quantMax) / 2.0;
        }

        int zeroPoint = initialZeroPoint < quantMin ? quantMin
            : initialZeroPoint > quantMax ? quantMax
            : (int)Math.Round(initialZeroPoint, MidpointRounding.ToEven);
        return ((float)scale, zeroPoint);
    }

    /// <summary>
    /// The training qparams of a moving-average observer's current range (per tensor or per channel), as the fused
    /// op computes them after each observed batch.
    /// </summary>
    /// <param name="observer">A <see cref="MovingAverageMinMaxObserver"/> or <see cref="MovingAveragePerChannelMinMaxObserver"/> that has seen a batch.</param>
    /// <returns>Qparams in the observer's dtype.</returns>
    /// <exception cref="ArgumentException">Another kind of observer.</exception>
    /// <exception cref="InvalidOperationException">The observer has seen nothing yet.</exception>
    public static QParams FromObserver(Observer observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        if (!observer.HasObserved)
        {
            throw new InvalidOperationException($"{observer.Layer}: the observer has seen no data, so there is no range to choose qparams from.");
        }

        bool symmetric = observer.Spec.Scheme.IsSymmetric();
        switch (observer)
        {
            case MovingAverageMinMaxObserver perTensor:
                {
                    (float scale, int zeroPoint) = Choose(perTensor.Min, perTensor.Max, observer.QuantMin, observer.QuantMax, symmetric);
                    return QParams.PerTensor(scale, zeroPoint, observer.Spec.DType);
                }

            case MovingAveragePerChannelMinMaxObserver perChannel:
                {
                    float[] min = perChannel.MinValues;
                    float[] max = perChannel.MaxValues;
                    var scales = new float[min.Length];
                    var zeroPoints = new int[min.Length];
                    for (int c = 0; c < min.Length; c++)
                    {
                        (scales[c], zeroPoints[c]) = Choose(min[c], max[c], observer.QuantMin, observer.QuantMax, symmetric);
                    }

                    return QParams.PerChannel(scales, zeroPoints, perChannel.ResolvedChannelAxis, observer.Spec.DType);
                }

            default:
                throw new ArgumentException($"{observer.Layer}: the fused moving-average fake quantize needs a MovingAverageMinMax or MovingAveragePerChannelMinMax observer, got {observer.Spec}.");
        }
    }
}
