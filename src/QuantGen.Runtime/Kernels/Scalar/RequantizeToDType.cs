using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// int32 accumulators → an 8-bit output of either dtype, written in the <see cref="UInt8View"/>: the
/// conv/linear requantization of the numerics contract (<see cref="Requantize"/>) with the clamp to
/// the output dtype's full range.
/// </summary>
/// <remarks>
/// <para>
/// The <see cref="RequantizeParams"/> are created with the VIEW's output zero point (<c>zy + 128</c>
/// for qint8, which lies in 0..255 as they require); the factors (<c>bs</c>, <c>M</c>, the bias term
/// or the int32 bias) do not depend on the zero point.
/// </para>
/// <para>
/// quint8 is exactly <see cref="Requantize.RequantizeInt32ToUInt8"/>. For qint8, Qnnpack adds the zero
/// point after rounding, so the view's <c>rne(acc·M) + (zy + 128)</c> is the qint8 result plus 128
/// exactly. X86 adds it BEFORE rounding, <c>rne(v + zy)</c>, and <c>v + zy</c> and
/// <c>v + (zy + 128)</c> are different float32 sums that can round to integers 128 apart plus one
/// (e.g. v = 0.5 + 2⁻²⁰: <c>rne(v) = 1</c> but <c>rne(v + 128) - 128 = 0</c>), so the X86 qint8 path
/// rounds with the real zero point and clamps to −128..127 before shifting into the view.
/// </para>
/// </remarks>
public static class RequantizeToDType
{
    /// <summary>
    /// X86 for any 8-bit output: <c>v = ((float)acc + biasTerm) * M</c>, ReLU as <c>max(v, 0)</c>,
    /// <c>clamp(round_half_even(v + zy), quantMin, quantMax)</c> with the dtype's real zero point. No FMA.
    /// </summary>
    public static int X86(int accumulator, float biasTerm, float multiplier, int outputZeroPoint, bool relu, int quantMin, int quantMax)
    {
        float accumulatorAsFloat = accumulator;
        float sum = accumulatorAsFloat + biasTerm;
        float value = sum * multiplier;
        if (relu)
        {
            value = value > 0f ? value : 0f;
        }

        float shifted = value + outputZeroPoint;
        float rounded = MathF.Round(shifted, MidpointRounding.ToEven);

        // Clamp in float before converting: a NaN (impossible with validated factors) lands on quantMin.
        float clamped = rounded > quantMax ? quantMax : (rounded >= quantMin ? rounded : quantMin);
        return (int)clamped;
    }

    /// <summary>Requantizes a channels-last block of accumulators (rows of <see cref="RequantizeParams.Channels"/>) into the unsigned view of <paramref name="outputDType"/>.</summary>
    /// <param name="accumulators">int32 sums, a whole number of rows.</param>
    /// <param name="parameters">Per-channel factors, created with the view's output zero point.</param>
    /// <param name="outputDType">The output tensor's dtype.</param>
    /// <param name="outputView">The results in the unsigned view (flip the top bit for qint8 storage).</param>
    public static void Apply(ReadOnlySpan<int> accumulators, RequantizeParams parameters, QuantDType outputDType, Span<byte> outputView)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        int offset = UInt8View.Offset(outputDType);
        if (offset == 0 || parameters.Backend == QuantBackend.Qnnpack)
        {
            // quint8, or Qnnpack's zero point added after rounding: the view is exact.
            Requantize.RequantizeInt32ToUInt8(accumulators, parameters, outputView);
            return;
        }

        int channels = parameters.Channels;
        if (accumulators.Length % channels != 0 || outputView.Length != accumulators.Length)
        {
            throw new ArgumentException($"Requantize: {accumulators.Length} accumulators for rows of {channels} channels and {outputView.Length} outputs.");
        }

        int zeroPoint = parameters.OutputZeroPoint - offset;
        int quantMin = outputDType.Min(), quantMax = outputDType.Max();
        ReadOnlySpan<float> biasTerms = parameters.BiasTerms;
        ReadOnlySpan<float> multipliers = parameters.Multipliers;
        for (int rowStart = 0; rowStart < accumulators.Length; rowStart += channels)
        {
            for (int c = 0; c < channels; c++)
            {
                int q = X86(accumulators[rowStart + c], biasTerms[c], multipliers[c], zeroPoint, parameters.Relu, quantMin, quantMax);
                outputView[rowStart + c] = (byte)(q + offset);
            }
        }
    }
}
