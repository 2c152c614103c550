using System;

namespace QuantGen.Tests.Modules;

/// <summary>
/// The numerics contract (docs/numerics.md, DESIGN.md "Numerics contract") re-written independently
/// of the runtime, as plain loops over logical NCHW indices: the expected values of the module tests.
/// Every float operation is a separate float32 statement (no fused multiply-add).
/// </summary>
internal static class ContractReference
{
    /// <summary><c>clamp(round_half_even(x * (1f / scale)) + zp, min, max)</c>.</summary>
    public static int Quantize(float x, float scale, int zeroPoint, int min, int max)
    {
        float inverse = 1.0f / scale;
        float scaled = x * inverse;
        float rounded = MathF.Round(scaled, MidpointRounding.ToEven);
        float shifted = rounded + zeroPoint;
        return (int)Math.Clamp(shifted, min, max);
    }

    /// <summary><c>(float)(q - zp) * scale</c>.</summary>
    public static float Dequantize(int q, float scale, int zeroPoint) => (float)(q - zeroPoint) * scale;

    /// <summary>X86: <c>bs = (1/sx)(1/sw)</c>, <c>M = (1/sy)/bs</c>, <c>v = ((float)acc + bias*bs) * M</c>, ReLU, <c>clamp(round(v + zy), 0, 255)</c>.</summary>
    public static int RequantizeX86(int acc, float bias, float inputScale, float weightScale, float outputScale, int outputZeroPoint, bool relu)
    {
        float inverseInput = 1.0f / inputScale;
        float inverseWeight = 1.0f / weightScale;
        float bs = inverseInput * inverseWeight;
        float inverseOutput = 1.0f / outputScale;
        float multiplier = inverseOutput / bs;
        float biasTerm = bias * bs;
        float sum = (float)acc + biasTerm;
        float v = sum * multiplier;
        if (relu)
        {
            v = MathF.Max(v, 0f);
        }

        float shifted = v + outputZeroPoint;
        return (int)Math.Clamp(MathF.Round(shifted, MidpointRounding.ToEven), 0f, 255f);
    }

    /// <summary>Qnnpack: <c>bq = round(bias * (1/(sx*sw)))</c>, <c>M = (sw*sx)*(1/sy)</c>, <c>clamp(round((acc+bq)*M) + zy, relu ? zy : 0, 255)</c>.</summary>
    public static int RequantizeQnnpack(int acc, float bias, float inputScale, float weightScale, float outputScale, int outputZeroPoint, bool relu)
    {
        float product = inputScale * weightScale;
        float inverseProduct = 1.0f / product;
        float scaledBias = bias * inverseProduct;
        int biasQ = (int)MathF.Round(scaledBias, MidpointRounding.ToEven);
        float weightTimesInput = weightScale * inputScale;
        float inverseOutput = 1.0f / outputScale;
        float multiplier = weightTimesInput * inverseOutput;
        float value = (float)(acc + biasQ) * multiplier;
        int rounded = (int)MathF.Round(value, MidpointRounding.ToEven);
        return Math.Clamp(rounded + outputZeroPoint, relu ? outputZeroPoint : 0, 255);
    }

    /// <summary>
    /// Naive int32 conv accumulation on logical arrays: input [N, C, H, W] (quint8 values), weight
    /// [OC, C/g, KH, KW] (qint8 values) with per-output-channel zero points; padding adds nothing
    /// (it stands for the input zero point). Returns [N, OC, OH, OW].
    /// </summary>
    public static int[] ConvAccumulate(
        int[] input, int[] inputShape, int inputZeroPoint, int[] weight, int[] weightZeroPoints,
        int outChannels, int kernelHeight, int kernelWidth, int strideHeight, int strideWidth,
        int padHeight, int padWidth, int dilationHeight, int dilationWidth, int groups,
        out int outHeight, out int outWidth)
    {
        int n = inputShape[0], c = inputShape[1], h = inputShape[2], w = inputShape[3];
        outHeight = ((h + (2 * padHeight) - (dilationHeight * (kernelHeight - 1)) - 1) / strideHeight) + 1;
        outWidth = ((w + (2 * padWidth) - (dilationWidth * (kernelWidth - 1)) - 1) / strideWidth) + 1;
        int inPerGroup = c / groups, outPerGroup = outChannels / groups;
        var acc = new int[n * outChannels * outHeight * outWidth];
        for (int b = 0; b < n; b++)
        {
            for (int oc = 0; oc < outChannels; oc++)
            {
                int group = oc / outPerGroup;
                for (int oy = 0; oy < outHeight; oy++)
                {
                    for (int ox = 0; ox < outWidth; ox++)
                    {
                        int sum = 0;
                        for (int icg = 0; icg < inPerGroup; icg++)
                        {
                            int ic = (group * inPerGroup) + icg;
                            for (int ky = 0; ky < kernelHeight; ky++)
                            {
                                int iy = (oy * strideHeight) - padHeight + (ky * dilationHeight);
                                for (int kx = 0; kx < kernelWidth; kx++)
                                {
                                    int ix = (ox * strideWidth) - padWidth + (kx * dilationWidth);
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                    {
                                        continue;
                                    }

                                    int qx = input[(((b * c) + ic) * h + iy) * w + ix];
                                    int qw = weight[(((oc * inPerGroup) + icg) * kernelHeight + ky) * kernelWidth + kx];
                                    sum += (qx - inputZeroPoint) * (qw - weightZeroPoints[oc]);
                                }
                            }
                        }

                        acc[(((b * outChannels) + oc) * outHeight + oy) * outWidth + ox] = sum;
                    }
                }
            }
        }

        return acc;
    }

    /// <summary>Random integers in [min, max], from a seeded generator.</summary>
    public static int[] RandomInts(Random random, int count, int min, int max)
    {
        var values = new int[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = random.Next(min, max + 1);
        }

        return values;
    }

    /// <summary>Random floats in [min, max).</summary>
    public static float[] RandomFloats(Random random, int count, float min, float max)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = min + ((max - min) * random.NextSingle());
        }

        return values;
    }

    /// <summary>Storage bytes for logical values in row-major order (qint8 as two's complement).</summary>
    public static byte[] Bytes(int[] values) => Array.ConvertAll(values, v => unchecked((byte)v));

    /// <summary>A logical NCHW array laid out as NHWC storage.</summary>
    public static byte[] NhwcBytes(int[] nchw, int[] shape)
    {
        int n = shape[0], c = shape[1], h = shape[2], w = shape[3];
        var bytes = new byte[nchw.Length];
        for (int b = 0; b < n; b++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                for (int y = 0; y < h; y++)
                {
                    for (int x = 0; x < w; x++)
                    {
                        bytes[(((b * h) + y) * w + x) * c + ch] = unchecked((byte)nchw[(((b * c) + ch) * h + y) * w + x]);
                    }
                }
            }
        }

        return bytes;
    }

    /// <summary>Affine quint8 qparams covering [min, max] (zero included), the contract's formula: a test-side observer.</summary>
    public static (float Scale, int ZeroPoint) AffineQuint8(float min, float max)
    {
        float minNeg = MathF.Min(min, 0f);
        float maxPos = MathF.Max(max, 0f);
        float scale = MathF.Max((maxPos - minNeg) / 255f, 1.1920929e-07f);
        int zeroPoint = Math.Clamp(0 - (int)MathF.Round(minNeg / scale, MidpointRounding.ToEven), 0, 255);
        return (scale, zeroPoint);
    }
}
