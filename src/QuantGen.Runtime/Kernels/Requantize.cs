using System;

namespace QuantGen.Kernels;

/// <summary>
/// int32 accumulator → uint8 output, per the numerics contract (docs/numerics.md), for both backends.
/// <see cref="RequantizeParams"/> holds the per-output-channel factors, computed once at Convert().
/// </summary>
public static class Requantize
{
    // TODO(helper B1)

    /// <summary>X86 (onednn arithmetic): <c>bs = (1f/sx) * (1f/sw)</c>, <c>M = (1f/sy) / bs</c>.</summary>
    public static (float Bs, float Multiplier) X86Factors(float inputScale, float weightScale, float outputScale) => throw new NotImplementedException();

    /// <summary>X86: <c>v = ((float)acc + bias * bs) * M</c>; ReLU as <c>max(v, 0)</c>; <c>clamp(round_half_even(v + zy), 0, 255)</c>. No FMA.</summary>
    public static byte X86(int accumulator, float bias, float bs, float multiplier, int outputZeroPoint, bool relu) => throw new NotImplementedException();

    /// <summary>Qnnpack int32 bias: <c>round_half_even(bias * (1f / (sx * sw)))</c>.</summary>
    public static int QnnpackBias(float bias, float inputScale, float weightScale) => throw new NotImplementedException();

    /// <summary>Qnnpack multiplier: <c>(sw * sx) * (1f / sy)</c>.</summary>
    public static float QnnpackMultiplier(float inputScale, float weightScale, float outputScale) => throw new NotImplementedException();

    /// <summary>Qnnpack: <c>clamp(round_half_even((float)(acc + bq) * M) + zy, relu ? zy : 0, 255)</c>.</summary>
    public static byte Qnnpack(int accumulator, int biasQ, float multiplier, int outputZeroPoint, bool relu) => throw new NotImplementedException();

    /// <summary>Requantizes a channels-last int32 accumulator block (rows of <see cref="RequantizeParams.Channels"/>).</summary>
    public static void RequantizeInt32ToUInt8(ReadOnlySpan<int> accumulators, RequantizeParams parameters, Span<byte> output) => throw new NotImplementedException();
}

/// <summary>Per-output-channel requantization factors for one conv/linear layer, for one backend.</summary>
public sealed class RequantizeParams
{
    // TODO(helper B1): fields for both backends (X86: bias, bs, M; Qnnpack: bq, M), Channels, Backend, Relu, OutputZeroPoint.

    /// <param name="backend">Arithmetic.</param>
    /// <param name="inputScale">sx.</param>
    /// <param name="weightScales">sw, one per output channel (per-tensor weights: repeat the one scale).</param>
    /// <param name="outputScale">sy.</param>
    /// <param name="outputZeroPoint">zy.</param>
    /// <param name="bias">Float bias per output channel, or null (zero).</param>
    /// <param name="relu">Fused ReLU.</param>
    public static RequantizeParams Create(QuantBackend backend, float inputScale, ReadOnlySpan<float> weightScales, float outputScale, int outputZeroPoint, ReadOnlySpan<float> bias, bool relu) => throw new NotImplementedException();

    public int Channels => throw new NotImplementedException();
}
