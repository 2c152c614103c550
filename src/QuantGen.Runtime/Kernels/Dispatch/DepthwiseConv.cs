using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using QuantGen.Kernels.Packing;

namespace QuantGen.Kernels;

/// <summary>
/// Depthwise convolution (groups == in == out channels) on NHWC, vectorised across channels: for each
/// output pixel and block of channels, <c>acc += (x − zx) · (w − zw)</c> over the taps inside the input
/// (padding taps skipped, as the reference does). Both factors fit in ±255 and the products in int32;
/// the lane-wise multiply-add wraps like the reference's sum.
/// </summary>
internal static unsafe class DepthwiseConv
{
    public static void Run(in Conv2dGeometry g, byte* input, int zx, PackedConv2dWeights weights, int* accumulatorsOut, byte* bytesOut, RequantizeParams? requantize, KernelScratch scratch)
    {
        int channels = g.InChannels;
        int vectorBits = weights.Config.VectorBits;
        int[] rowArray = scratch.Accumulators(channels);
        RequantizeParams? rq = requantize;
        fixed (int* taps = weights.DepthwiseTapArray)
        fixed (int* row = rowArray)
        fixed (float* biasTerms = rq is null ? default : rq.BiasTerms)
        fixed (float* multipliers = rq is null ? default : rq.Multipliers)
        fixed (int* quantizedBias = rq is null ? default : rq.QuantizedBias)
        {
            RequantizeView view = rq is null ? default : new RequantizeView(rq, biasTerms, multipliers, quantizedBias);
            int outHeight = g.OutHeight, outWidth = g.OutWidth;
            nint pixel = 0;
            for (int n = 0; n < g.Batch; n++)
            {
                for (int oh = 0; oh < outHeight; oh++)
                {
                    for (int ow = 0; ow < outWidth; ow++, pixel++)
                    {
                        int* destination = rq is null ? accumulatorsOut + (pixel * channels) : row;
                        Pixel(g, input, zx, taps, n, oh, ow, destination, vectorBits);
                        if (rq is not null)
                        {
                            RequantizeVector.Row(row, channels, 0, view, bytesOut + (pixel * channels), vectorBits);
                        }
                    }
                }
            }
        }
    }

    private static void Pixel(in Conv2dGeometry g, byte* input, int zx, int* taps, int n, int oh, int ow, int* accumulators, int vectorBits)
    {
        int channels = g.InChannels;
        int c = 0;
        if (vectorBits == 256)
        {
            Vector256<int> zeroPoint = Vector256.Create(zx);
            for (; c + 8 <= channels; c += 8)
            {
                Vector256<int> sum = Vector256<int>.Zero;
                for (int kh = 0; kh < g.KernelHeight; kh++)
                {
                    int ih = (oh * g.StrideHeight) - g.PadHeight + (kh * g.DilationHeight);
                    if ((uint)ih >= (uint)g.InHeight)
                    {
                        continue;
                    }

                    for (int kw = 0; kw < g.KernelWidth; kw++)
                    {
                        int iw = (ow * g.StrideWidth) - g.PadWidth + (kw * g.DilationWidth);
                        if ((uint)iw >= (uint)g.InWidth)
                        {
                            continue;
                        }

                        byte* x = input + ((((((nint)n * g.InHeight) + ih) * g.InWidth) + iw) * channels) + c;
                        Vector256<int> xv = Load8(x) - zeroPoint;
                        Vector256<int> wv = Vector256.Load(taps + ((((kh * g.KernelWidth) + kw) * channels) + c));
                        sum += xv * wv;
                    }
                }

                sum.Store(accumulators + c);
            }
        }
        else if (vectorBits == 128)
        {
            Vector128<int> zeroPoint = Vector128.Create(zx);
            for (; c + 4 <= channels; c += 4)
            {
                Vector128<int> sum = Vector128<int>.Zero;
                for (int kh = 0; kh < g.KernelHeight; kh++)
                {
                    int ih = (oh * g.StrideHeight) - g.PadHeight + (kh * g.DilationHeight);
                    if ((uint)ih >= (uint)g.InHeight)
                    {
                        continue;
                    }

                    for (int kw = 0; kw < g.KernelWidth; kw++)
                    {
                        int iw = (ow * g.StrideWidth) - g.PadWidth + (kw * g.DilationWidth);
                        if ((uint)iw >= (uint)g.InWidth)
                        {
                            continue;
                        }

                        byte* x = input + ((((((nint)n * g.InHeight) + ih) * g.InWidth) + iw) * channels) + c;
                        Vector128<int> xv = Load4(x) - zeroPoint;
                        Vector128<int> wv = Vector128.Load(taps + ((((kh * g.KernelWidth) + kw) * channels) + c));
                        sum += xv * wv;
                    }
                }

                sum.Store(accumulators + c);
            }
        }

        for (; c < channels; c++)
        {
            int sum = 0;
            for (int kh = 0; kh < g.KernelHeight; kh++)
            {
                int ih = (oh * g.StrideHeight) - g.PadHeight + (kh * g.DilationHeight);
                if ((uint)ih >= (uint)g.InHeight)
                {
                    continue;
                }

                for (int kw = 0; kw < g.KernelWidth; kw++)
                {
                    int iw = (ow * g.StrideWidth) - g.PadWidth + (kw * g.DilationWidth);
                    if ((uint)iw >= (uint)g.InWidth)
                    {
                        continue;
                    }

                    int x = input[((((((nint)n * g.InHeight) + ih) * g.InWidth) + iw) * channels) + c] - zx;
                    sum = unchecked(sum + (x * taps[(((kh * g.KernelWidth) + kw) * channels) + c]));
                }
            }

            accumulators[c] = sum;
        }
    }

    /// <summary>Eight bytes → eight int32 lanes (zero-extended).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Load8(byte* p)
    {
        Vector128<ushort> words = Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsByte());
        return Vector256.Create(Vector128.WidenLower(words), Vector128.WidenUpper(words)).AsInt32();
    }

    /// <summary>Four bytes → four int32 lanes (zero-extended).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Load4(byte* p)
    {
        Vector128<ushort> words = Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<uint>(p)).AsByte());
        return Vector128.WidenLower(words).AsInt32();
    }
}
