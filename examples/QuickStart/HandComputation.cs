using System;
using QuantGen;
using QuantGen.Modules;

namespace QuickStart;

/// <summary>
/// Seed 000's last cells: re-computes a quantized conv's output from its integers, written out as plain
/// loops over the logical NCHW tensors, independent of QuantGen's kernels (which run NHWC).
/// </summary>
public static class HandComputation
{
    /// <summary>
    /// The seed's own float re-computation: <c>Y_a = Y_q * sw * sx - sx * w * z + B</c> in float64 (as torch
    /// did), then <c>round(Y_a / s_out)</c> — with a fused ReLU applied first.
    /// </summary>
    public static double[] SeedFormula(QTensor input, QuantizedConv2d conv, out int[] outputShape)
    {
        float[] bias = conv.Bias ?? new float[conv.Options.OutChannels];
        double[] result = Loop(input, conv, out outputShape, (acc, c) =>
        {
            double sx = input.Scale;
            double sw = conv.Weight.QParams.IsPerChannel ? conv.Weight.QParams.Scales[c] : conv.Weight.Scale;
            // Y_q * sw * sx - sx * w * z + B, where acc already subtracted z (Σ (qx - z) qw).
            double y = (acc * sw * sx) + bias[c];
            return conv.FusedRelu ? Math.Max(y, 0) : y;
        });
        return result;
    }

    /// <summary>
    /// The numerics contract's integer computation for the X86 preset (docs/numerics.md §4):
    /// int32 accumulator, float bias scaled by <c>bs</c>, multiplier <c>M</c>, round half to even, clamp.
    /// Returns the uint8 outputs in logical NCHW order.
    /// </summary>
    public static int[] ContractX86(QTensor input, QuantizedConv2d conv, out int[] outputShape)
    {
        float[] bias = conv.Bias ?? new float[conv.Options.OutChannels];
        double[] result = Loop(input, conv, out outputShape, (acc, c) =>
        {
            float sx = input.Scale;
            float sw = conv.Weight.QParams.IsPerChannel ? conv.Weight.QParams.Scales[c] : conv.Weight.Scale;
            float bs = (1.0f / sx) * (1.0f / sw);
            float m = (1.0f / conv.Scale) / bs;
            float scaledBias = bias[c] * bs;
            float v = ((float)acc + scaledBias) * m;
            if (conv.FusedRelu)
            {
                v = MathF.Max(v, 0f);
            }

            float shifted = v + conv.ZeroPoint;
            return Math.Clamp(MathF.Round(shifted, MidpointRounding.ToEven), 0f, 255f);
        });
        return Array.ConvertAll(result, v => (int)v);
    }

    /// <summary>Runs <paramref name="finish"/> on every output's exact int32 accumulator <c>Σ (qx - zx)(qw - zw)</c>.</summary>
    private static double[] Loop(QTensor input, QuantizedConv2d conv, out int[] outputShape, Func<int, int, double> finish)
    {
        Conv2dOptions o = conv.Options;
        int n = input.Shape[0], h = input.Shape[2], w = input.Shape[3];
        int oh = ((h + (2 * o.PadHeight) - (o.DilationHeight * (o.KernelHeight - 1)) - 1) / o.StrideHeight) + 1;
        int ow = ((w + (2 * o.PadWidth) - (o.DilationWidth * (o.KernelWidth - 1)) - 1) / o.StrideWidth) + 1;
        int inPerGroup = o.InChannels / o.Groups, outPerGroup = o.OutChannels / o.Groups;
        int zx = input.ZeroPoint;
        outputShape = [n, o.OutChannels, oh, ow];
        var result = new double[n * o.OutChannels * oh * ow];
        int index = 0;
        for (int b = 0; b < n; b++)
        {
            for (int c = 0; c < o.OutChannels; c++)
            {
                int zw = conv.Weight.QParams.IsPerChannel ? conv.Weight.QParams.ZeroPoints[c] : conv.Weight.ZeroPoint;
                int group = c / outPerGroup;
                for (int y = 0; y < oh; y++)
                {
                    for (int x = 0; x < ow; x++)
                    {
                        int acc = 0;
                        for (int ci = 0; ci < inPerGroup; ci++)
                        {
                            for (int ky = 0; ky < o.KernelHeight; ky++)
                            {
                                for (int kx = 0; kx < o.KernelWidth; kx++)
                                {
                                    int iy = (y * o.StrideHeight) - o.PadHeight + (ky * o.DilationHeight);
                                    int ix = (x * o.StrideWidth) - o.PadWidth + (kx * o.DilationWidth);
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                    {
                                        continue; // padding is the zero point: (zx - zx) * w = 0
                                    }

                                    int qx = input.IntAt(b, (group * inPerGroup) + ci, iy, ix);
                                    int qw = conv.Weight.IntAt(c, ci, ky, kx);
                                    acc += (qx - zx) * (qw - zw);
                                }
                            }
                        }

                        result[index++] = finish(acc, c);
                    }
                }
            }
        }

        return result;
    }
}
