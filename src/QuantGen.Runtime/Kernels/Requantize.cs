using System;

namespace QuantGen.Kernels;

/// <summary>
/// int32 accumulator → uint8 output, per the numerics contract (docs/numerics.md), for both backends.
/// <see cref="RequantizeParams"/> holds the per-output-channel factors, computed once at Convert().
/// </summary>
/// <remarks>
/// Every intermediate is a float32 local: each multiply and add rounds to float32 on its own (the JIT
/// never contracts <c>a * b + c</c> into a fused multiply-add, and nothing here calls
/// <c>MathF.FusedMultiplyAdd</c>), which is what makes the results bit-exact with PyTorch's engines.
/// Clamping happens in float before any float→int conversion.
/// </remarks>
public static class Requantize
{
    /// <summary>X86 (onednn arithmetic): <c>bs = (1f/sx) * (1f/sw)</c>, <c>M = (1f/sy) / bs</c>.</summary>
    public static (float Bs, float Multiplier) X86Factors(float inputScale, float weightScale, float outputScale)
    {
        float inverseInputScale = 1.0f / inputScale;
        float inverseWeightScale = 1.0f / weightScale;
        float bs = inverseInputScale * inverseWeightScale;
        float inverseOutputScale = 1.0f / outputScale;
        float multiplier = inverseOutputScale / bs;
        return (bs, multiplier);
    }

    /// <summary>X86: <c>v = ((float)acc + bias * bs) * M</c>; ReLU as <c>max(v, 0)</c>; <c>clamp(round_half_even(v + zy), 0, 255)</c>. No FMA.</summary>
    public static byte X86(int accumulator, float bias, float bs, float multiplier, int outputZeroPoint, bool relu)
    {
        float biasTerm = bias * bs;
        return X86WithBiasTerm(accumulator, biasTerm, multiplier, outputZeroPoint, relu);
    }

    /// <summary>
    /// X86 with <c>bias * bs</c> already computed (the same float32 product, precomputed per channel by
    /// <see cref="RequantizeParams"/>): <c>v = ((float)acc + biasTerm) * M</c>, ReLU, <c>clamp(round_half_even(v + zy), 0, 255)</c>.
    /// </summary>
    public static byte X86WithBiasTerm(int accumulator, float biasTerm, float multiplier, int outputZeroPoint, bool relu)
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
        return (byte)ClampToRange(rounded, 0f, 255f);
    }

    /// <summary>Qnnpack int32 bias: <c>round_half_even(bias * (1f / (sx * sw)))</c>.</summary>
    /// <remarks>A bias beyond the int32 range (only with absurd scales) saturates to int.MinValue/int.MaxValue.</remarks>
    public static int QnnpackBias(float bias, float inputScale, float weightScale)
    {
        float productScale = inputScale * weightScale;
        float inverseProductScale = 1.0f / productScale;
        float scaled = bias * inverseProductScale;
        float rounded = MathF.Round(scaled, MidpointRounding.ToEven);
        if (float.IsNaN(rounded))
        {
            throw new ArgumentException($"Qnnpack bias: bias {bias} with scales {inputScale} x {weightScale} is not a number.");
        }

        // 2^31 is the first float above int.MaxValue; every float below it converts exactly.
        return rounded >= 2147483648f ? int.MaxValue : rounded <= -2147483648f ? int.MinValue : (int)rounded;
    }

    /// <summary>Qnnpack multiplier: <c>(sw * sx) * (1f / sy)</c>.</summary>
    public static float QnnpackMultiplier(float inputScale, float weightScale, float outputScale)
    {
        float productScale = weightScale * inputScale;
        float inverseOutputScale = 1.0f / outputScale;
        return productScale * inverseOutputScale;
    }

    /// <summary>Qnnpack: <c>clamp(round_half_even((float)(acc + bq) * M) + zy, relu ? zy : 0, 255)</c>.</summary>
    public static byte Qnnpack(int accumulator, int biasQ, float multiplier, int outputZeroPoint, bool relu)
    {
        int biased = unchecked(accumulator + biasQ);
        float biasedAsFloat = biased;
        float value = biasedAsFloat * multiplier;
        float rounded = MathF.Round(value, MidpointRounding.ToEven);

        // clamp(r + zy, lo, 255) == clamp(r, lo - zy, 255 - zy) + zy; clamping in float first keeps huge
        // values out of the float->int conversion.
        float lower = (relu ? outputZeroPoint : 0) - outputZeroPoint;
        float upper = 255 - outputZeroPoint;
        return (byte)((int)ClampToRange(rounded, lower, upper) + outputZeroPoint);
    }

    /// <summary>Requantizes a channels-last int32 accumulator block (rows of <see cref="RequantizeParams.Channels"/>).</summary>
    /// <param name="accumulators">int32 sums, a whole number of rows of <see cref="RequantizeParams.Channels"/> values.</param>
    /// <param name="parameters">Per-channel factors for one layer and backend.</param>
    /// <param name="output">uint8 results, same length as <paramref name="accumulators"/>.</param>
    public static void RequantizeInt32ToUInt8(ReadOnlySpan<int> accumulators, RequantizeParams parameters, Span<byte> output)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        int channels = parameters.Channels;
        if (accumulators.Length % channels != 0)
        {
            throw new ArgumentException($"Requantize: {accumulators.Length} accumulators is not a whole number of rows of {channels} channels.");
        }

        if (output.Length != accumulators.Length)
        {
            throw new ArgumentException($"Requantize: {accumulators.Length} accumulators but the output has {output.Length} elements.");
        }

        int zeroPoint = parameters.OutputZeroPoint;
        bool relu = parameters.Relu;
        ReadOnlySpan<float> multipliers = parameters.Multipliers;
        if (parameters.Backend == QuantBackend.Qnnpack)
        {
            ReadOnlySpan<int> quantizedBias = parameters.QuantizedBias;
            for (int rowStart = 0; rowStart < accumulators.Length; rowStart += channels)
            {
                for (int c = 0; c < channels; c++)
                {
                    output[rowStart + c] = Qnnpack(accumulators[rowStart + c], quantizedBias[c], multipliers[c], zeroPoint, relu);
                }
            }
        }
        else
        {
            ReadOnlySpan<float> biasTerms = parameters.BiasTerms;
            for (int rowStart = 0; rowStart < accumulators.Length; rowStart += channels)
            {
                for (int c = 0; c < channels; c++)
                {
                    output[rowStart + c] = X86WithBiasTerm(accumulators[rowStart + c], biasTerms[c], multipliers[c], zeroPoint, relu);
                }
            }
        }
    }

    // A NaN (impossible with the validated, finite factors) fails both comparisons and lands on the lower bound.
    private static float ClampToRange(float value, float lower, float upper) =>
        value > upper ? upper : (value >= lower ? value : lower);
}

/// <summary>Per-output-channel requantization factors for one conv/linear layer, for one backend.</summary>
public sealed class RequantizeParams
{
    private readonly float[] _bias;
    private readonly float[] _weightScales;
    private readonly float[] _bs;
    private readonly float[] _biasTerms;
    private readonly float[] _multipliers;
    private readonly int[] _quantizedBias;

    private RequantizeParams(QuantBackend backend, float inputScale, float[] weightScales, float outputScale, int outputZeroPoint, float[] bias, bool relu)
    {
        Backend = backend;
        InputScale = inputScale;
        OutputScale = outputScale;
        OutputZeroPoint = outputZeroPoint;
        Relu = relu;
        _weightScales = weightScales;
        _bias = bias;

        int channels = weightScales.Length;
        _multipliers = new float[channels];
        if (backend == QuantBackend.Qnnpack)
        {
            _bs = [];
            _biasTerms = [];
            _quantizedBias = new int[channels];
            for (int c = 0; c < channels; c++)
            {
                _quantizedBias[c] = Requantize.QnnpackBias(bias[c], inputScale, weightScales[c]);
                _multipliers[c] = Requantize.QnnpackMultiplier(inputScale, weightScales[c], outputScale);
            }
        }
        else
        {
            _bs = new float[channels];
            _biasTerms = new float[channels];
            _quantizedBias = [];
            for (int c = 0; c < channels; c++)
            {
                (float bs, float multiplier) = Requantize.X86Factors(inputScale, weightScales[c], outputScale);
                _bs[c] = bs;
                _multipliers[c] = multiplier;
                _biasTerms[c] = bias[c] * bs;
            }
        }
    }

    /// <summary>The arithmetic these factors are for.</summary>
    public QuantBackend Backend { get; }

    /// <summary>Output channels: the row length of the accumulator blocks.</summary>
    public int Channels => _weightScales.Length;

    /// <summary>sx.</summary>
    public float InputScale { get; }

    /// <summary>sy.</summary>
    public float OutputScale { get; }

    /// <summary>zy.</summary>
    public int OutputZeroPoint { get; }

    /// <summary>Fused ReLU.</summary>
    public bool Relu { get; }

    /// <summary>sw per output channel.</summary>
    public ReadOnlySpan<float> WeightScales => _weightScales;

    /// <summary>The float bias per output channel (zeros when the layer has none).</summary>
    public ReadOnlySpan<float> Bias => _bias;

    /// <summary>Per channel: X86 <c>M = (1f/sy) / bs</c>; Qnnpack <c>M = (sw * sx) * (1f/sy)</c>.</summary>
    public ReadOnlySpan<float> Multipliers => _multipliers;

    /// <summary>X86 only (empty for Qnnpack): <c>bs = (1f/sx) * (1f/sw)</c> per channel.</summary>
    public ReadOnlySpan<float> Bs => _bs;

    /// <summary>X86 only (empty for Qnnpack): <c>bias * bs</c> per channel, the float32 product the formula adds to the accumulator.</summary>
    public ReadOnlySpan<float> BiasTerms => _biasTerms;

    /// <summary>Qnnpack only (empty for X86): the int32 bias <c>round_half_even(bias * (1f / (sx * sw)))</c> per channel.</summary>
    public ReadOnlySpan<int> QuantizedBias => _quantizedBias;

    /// <summary>Precomputes the per-channel factors (validating scales, zero point and bias length).</summary>
    /// <param name="backend">Arithmetic.</param>
    /// <param name="inputScale">sx.</param>
    /// <param name="weightScales">sw, one per output channel (per-tensor weights: repeat the one scale).</param>
    /// <param name="outputScale">sy.</param>
    /// <param name="outputZeroPoint">zy.</param>
    /// <param name="bias">Float bias per output channel, or null (zero).</param>
    /// <param name="relu">Fused ReLU.</param>
    public static RequantizeParams Create(QuantBackend backend, float inputScale, ReadOnlySpan<float> weightScales, float outputScale, int outputZeroPoint, ReadOnlySpan<float> bias, bool relu)
    {
        if (backend is not (QuantBackend.X86 or QuantBackend.Qnnpack))
        {
            throw new ArgumentOutOfRangeException(nameof(backend), backend, $"Requantize: unknown backend {backend}.");
        }

        if (weightScales.Length == 0)
        {
            throw new ArgumentException("Requantize: at least one weight scale is needed (one per output channel).", nameof(weightScales));
        }

        if (bias.Length != 0 && bias.Length != weightScales.Length)
        {
            throw new ArgumentException($"Requantize: {bias.Length} bias values for {weightScales.Length} output channels.", nameof(bias));
        }

        Scalar.QuantizeScalar.ValidateScale(inputScale, "Requantize input");
        Scalar.QuantizeScalar.ValidateScale(outputScale, "Requantize output");
        for (int c = 0; c < weightScales.Length; c++)
        {
            Scalar.QuantizeScalar.ValidateScale(weightScales[c], $"Requantize weight channel {c}");
        }

        Scalar.QuantizeScalar.ValidateZeroPoint(outputZeroPoint, QuantDType.QUInt8, "Requantize output");
        for (int c = 0; c < bias.Length; c++)
        {
            if (!float.IsFinite(bias[c]))
            {
                throw new ArgumentException($"Requantize: bias of output channel {c} is {bias[c]}, not finite.", nameof(bias));
            }
        }

        float[] biasCopy = bias.Length == 0 ? new float[weightScales.Length] : bias.ToArray();
        return new RequantizeParams(backend, inputScale, weightScales.ToArray(), outputScale, outputZeroPoint, biasCopy, relu);
    }
}
