using System;
using System.Linq;
using QuantGen.Tests.Modules;

namespace QuantGen.Tests.Reference;

/// <summary>
/// The contract's qparams and quantize→dequantize formulas (docs/numerics.md §1–2), re-written here as plain
/// float32 loops, independent of the runtime: the expected values of the reference-layer tests.
/// </summary>
internal static class QdqMath
{
    private const float Eps = 1.1920929e-07f;

    /// <summary>Symmetric qint8 scale for an observed range: <c>max(max(-min(min,0), max(max,0)) / 127.5f, eps)</c>.</summary>
    public static float SymmetricQInt8Scale(float min, float max)
    {
        float minNeg = MathF.Min(min, 0f);
        float maxPos = MathF.Max(max, 0f);
        float absMax = MathF.Max(-minNeg, maxPos);
        return MathF.Max(absMax / (255 / 2.0f), Eps);
    }

    /// <summary>Affine scale and zero point for an observed range and integer range.</summary>
    public static (float Scale, int ZeroPoint) Affine(float min, float max, int qmin, int qmax)
    {
        float minNeg = MathF.Min(min, 0f);
        float maxPos = MathF.Max(max, 0f);
        float scale = MathF.Max((maxPos - minNeg) / (float)(qmax - qmin), Eps);
        int zeroPoint = qmin - (int)MathF.Round(minNeg / scale, MidpointRounding.ToEven);
        return (scale, Math.Clamp(zeroPoint, qmin, qmax));
    }

    /// <summary>Per-channel (min, max) of a row-major tensor along <paramref name="axis"/>.</summary>
    public static (float[] Min, float[] Max) ChannelRanges(float[] values, int[] shape, int axis)
    {
        int channels = shape[axis];
        int inner = 1;
        for (int d = axis + 1; d < shape.Length; d++)
        {
            inner *= shape[d];
        }

        var min = new float[channels];
        var max = new float[channels];
        Array.Fill(min, float.PositiveInfinity);
        Array.Fill(max, float.NegativeInfinity);
        for (int i = 0; i < values.Length; i++)
        {
            int c = (i / inner) % channels;
            min[c] = MathF.Min(min[c], values[i]);
            max[c] = MathF.Max(max[c], values[i]);
        }

        return (min, max);
    }

    /// <summary>Quantize→dequantize every value with its channel's scale/zero point (channel = (i / inner) % channels; per tensor: one channel).</summary>
    public static float[] FakeQuantize(float[] values, float[] scales, int[] zeroPoints, int inner, int qmin, int qmax)
    {
        var result = new float[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            int c = (i / inner) % scales.Length;
            int q = ContractReference.Quantize(values[i], scales[c], zeroPoints[c], qmin, qmax);
            result[i] = ContractReference.Dequantize(q, scales[c], zeroPoints[c]);
        }

        return result;
    }

    /// <summary>
    /// Weights quantized to qint8 as the contract says, then dequantized: symmetric (zero point 0) or affine, per
    /// tensor (<paramref name="axis"/> null) or per channel along <paramref name="axis"/>, from each channel's min/max.
    /// </summary>
    public static float[] FakeQuantizeWeights(float[] weight, int[] shape, int? axis, bool symmetric)
    {
        int channels = axis is int a ? shape[a] : 1;
        int inner = 1;
        if (axis is int b)
        {
            for (int d = b + 1; d < shape.Length; d++)
            {
                inner *= shape[d];
            }
        }

        (float[] mins, float[] maxs) = axis is int c ? ChannelRanges(weight, shape, c) : ChannelRanges(weight, [weight.Length], 0) switch
        {
            var (mn, mx) => ([mn.Min()], [mx.Max()]),
        };
        var scales = new float[channels];
        var zeroPoints = new int[channels];
        for (int ch = 0; ch < channels; ch++)
        {
            (scales[ch], zeroPoints[ch]) = symmetric
                ? (SymmetricQInt8Scale(mins[ch], maxs[ch]), 0)
                : Affine(mins[ch], maxs[ch], -128, 127);
        }

        return FakeQuantize(weight, scales, zeroPoints, inner, -128, 127);
    }

    /// <summary>Per-tensor fake-quantize with the full range of <paramref name="dtype"/>.</summary>
    public static float[] FakeQuantizeActivation(float[] values, QParams qparams) =>
        FakeQuantize(values, [qparams.Scale], [qparams.ZeroPoint], 1, qparams.DType == QuantDType.QUInt8 ? 0 : -128, qparams.DType == QuantDType.QUInt8 ? 255 : 127);

    /// <summary>Random floats in [low, high) from a seeded generator.</summary>
    public static float[] Uniform(Random random, int count, float low, float high)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = low + ((high - low) * random.NextSingle());
        }

        return values;
    }
}
