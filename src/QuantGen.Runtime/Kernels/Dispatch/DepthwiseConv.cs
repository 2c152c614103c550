using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
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
        RequantizeParams? rq = requantize;
        fixed (int* taps = weights.DepthwiseTapArray)
        fixed (short* taps16 = weights.DepthwiseTap16Array)
        fixed (float* biasTerms = rq is null ? default : rq.BiasTerms)
        fixed (float* multipliers = rq is null ? default : rq.Multipliers)
        fixed (int* quantizedBias = rq is null ? default : rq.QuantizedBias)
        {
            // One task per block of output rows (n, oh); every pixel's arithmetic is the same on any thread.
            int outputRows = g.Batch * g.OutHeight;
            int degree = KernelThreads.MaxDegreeOfParallelism;
            int rowsPerTask = degree == 1 ? outputRows : Math.Max(1, outputRows / (4 * degree));
            var plan = new DepthwisePlan
            {
                Geometry = g,
                Input = input,
                Zx = zx,
                Taps = taps,
                Taps16 = taps16,
                VectorBits = weights.Config.VectorBits,
                AccumulatorsOut = accumulatorsOut,
                BytesOut = bytesOut,
                Requantize = rq is not null,
                View = rq is null ? default : new RequantizeView(rq, biasTerms, multipliers, quantizedBias),
                RowsPerTask = rowsPerTask,
            };
            int taskCount = (outputRows + rowsPerTask - 1) / rowsPerTask;
            if (degree == 1 || taskCount <= 1)
            {
                for (int task = 0; task < taskCount; task++)
                {
                    RunTask(plan, task, scratch);
                }

                return;
            }

            DepthwiseJob job = scratch.DepthwiseJob;
            job.Plan = plan;
            try
            {
                WorkerPool.Shared.Run(job, taskCount, degree, scratch);
            }
            finally
            {
                job.Plan = default;
            }
        }
    }

    internal static void RunTask(in DepthwisePlan plan, int task, KernelScratch scratch)
    {
        Conv2dGeometry g = plan.Geometry;
        int channels = g.InChannels;
        int outHeight = g.OutHeight, outWidth = g.OutWidth;
        int outputRows = g.Batch * outHeight;
        int firstRow = task * plan.RowsPerTask;
        int endRow = Math.Min(outputRows, firstRow + plan.RowsPerTask);
        int[] rowArray = scratch.Accumulators(channels);
        fixed (int* row = rowArray)
        {
            for (int outputRow = firstRow; outputRow < endRow; outputRow++)
            {
                int n = outputRow / outHeight, oh = outputRow % outHeight;
                nint pixel = (nint)outputRow * outWidth;
                for (int ow = 0; ow < outWidth; ow++, pixel++)
                {
                    int* destination = plan.Requantize ? row : plan.AccumulatorsOut + (pixel * channels);
                    Pixel(g, plan.Input, plan.Zx, plan.Taps, plan.Taps16, n, oh, ow, destination, plan.VectorBits);
                    if (plan.Requantize)
                    {
                        RequantizeVector.Row(row, channels, 0, plan.View, plan.BytesOut + (pixel * channels), plan.VectorBits);
                    }
                }
            }
        }
    }

    private static void Pixel(in Conv2dGeometry g, byte* input, int zx, int* taps, short* taps16, int n, int oh, int ow, int* accumulators, int vectorBits)
    {
        int channels = g.InChannels;
        int c = 0;
        // The pair path keeps each tap's input offset on the stack: kernels of more than MaxPairTaps taps (sizes a file
        // may legally give, up to LayerLimits.MaxGeometry a side) take the 8-wide path, which needs no such table.
        if (vectorBits == 256 && Avx2.IsSupported && channels >= 16 && g.KernelHeight * (long)g.KernelWidth <= MaxPairTaps)
        {
            c = PixelPairs16(g, input, zx, taps16, n, oh, ow, accumulators);
        }

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

    /// <summary>
    /// Sixteen channels at a time in 16-bit lanes, two taps per <c>vpmaddwd</c> (as QNNPACK's and XNNPACK's x86 depthwise
    /// kernels up-convert to 16 bits): <c>x − zx</c> and <c>w − zw</c> both lie in −255..255, so each lane's product pair
    /// sums exactly into int32 (no pair is −32768²), and int32 addition wraps as the reference's does — the same sums
    /// bit for bit, in about half the instructions of the int32 multiply. A tap outside the input contributes a zero
    /// difference (the reference skips it); an odd tap count pairs the last tap with zero weights. Returns the first
    /// channel not done (a multiple of 16).
    /// </summary>
    private static int PixelPairs16(in Conv2dGeometry g, byte* input, int zx, short* taps16, int n, int oh, int ow, int* accumulators)
    {
        int channels = g.InChannels, tapCount = g.KernelHeight * g.KernelWidth;
        Span<nint> offsets = stackalloc nint[tapCount];    // input offset of each tap's pixel, −1 outside the input
        for (int kh = 0; kh < g.KernelHeight; kh++)
        {
            int ih = (oh * g.StrideHeight) - g.PadHeight + (kh * g.DilationHeight);
            for (int kw = 0; kw < g.KernelWidth; kw++)
            {
                int iw = (ow * g.StrideWidth) - g.PadWidth + (kw * g.DilationWidth);
                offsets[(kh * g.KernelWidth) + kw] = (uint)ih < (uint)g.InHeight && (uint)iw < (uint)g.InWidth
                    ? (((((nint)n * g.InHeight) + ih) * g.InWidth) + iw) * channels
                    : -1;
            }
        }

        Vector256<short> zeroPoint = Vector256.Create((short)zx);
        int c = 0;
        for (; c + 16 <= channels; c += 16)
        {
            Vector256<int> low = Vector256<int>.Zero, high = Vector256<int>.Zero;
            for (int t = 0; t < tapCount; t += 2)
            {
                Vector256<short> x0 = Difference(input, offsets[t], c, zeroPoint);
                Vector256<short> w0 = Vector256.Load(taps16 + ((nint)t * channels) + c);
                Vector256<short> x1, w1;
                if (t + 1 < tapCount)
                {
                    x1 = Difference(input, offsets[t + 1], c, zeroPoint);
                    w1 = Vector256.Load(taps16 + ((nint)(t + 1) * channels) + c);
                }
                else
                {
                    x1 = Vector256<short>.Zero;
                    w1 = Vector256<short>.Zero;
                }

                // Within each 128-bit lane, unpack interleaves the two taps per channel: low holds channels 0–3 and
                // 8–11 of the block, high 4–7 and 12–15; madd sums each channel's two products.
                low += Avx2.MultiplyAddAdjacent(Avx2.UnpackLow(x0, x1), Avx2.UnpackLow(w0, w1));
                high += Avx2.MultiplyAddAdjacent(Avx2.UnpackHigh(x0, x1), Avx2.UnpackHigh(w0, w1));
            }

            // Back to channel order: 0–3 with 4–7, then 8–11 with 12–15.
            Avx2.Permute2x128(low, high, 0x20).Store(accumulators + c);
            Avx2.Permute2x128(low, high, 0x31).Store(accumulators + c + 8);
        }

        return c;
    }

    /// <summary>Sixteen input bytes of a tap's pixel minus the zero point as int16, or zeros for a tap outside the input.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Difference(byte* input, nint offset, int c, Vector256<short> zeroPoint) =>
        offset < 0 ? Vector256<short>.Zero : Avx2.ConvertToVector256Int16(Vector128.Load(input + offset + c)) - zeroPoint;

    /// <summary>The most taps <see cref="PixelPairs16"/> takes (its per-pixel offset table lives on the stack: 2 KiB at most).</summary>
    private const int MaxPairTaps = 256;

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

/// <summary>Everything a depthwise task needs; pointers are pinned by the caller for the whole call.</summary>
internal unsafe struct DepthwisePlan
{
    public Conv2dGeometry Geometry;
    public byte* Input;
    public int Zx;
    public int* Taps;
    public short* Taps16;
    public int VectorBits;
    public int* AccumulatorsOut;
    public byte* BytesOut;
    public bool Requantize;
    public RequantizeView View;
    public int RowsPerTask;
}

/// <summary>The reusable work item of one caller's depthwise regions.</summary>
internal sealed class DepthwiseJob : IParallelWork
{
    public DepthwisePlan Plan;

    public void Run(int task, int worker, KernelScratch scratch) => DepthwiseConv.RunTask(Plan, task, scratch);

    public void Reserve(KernelScratch scratch) => scratch.Accumulators(Plan.Geometry.InChannels);
}
