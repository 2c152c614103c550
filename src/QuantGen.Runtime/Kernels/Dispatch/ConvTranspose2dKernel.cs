using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Kernels;

/// <summary>
/// int8 transposed convolution on NHWC through the packed GEMM kernels (the deconvolution of PyTorch's
/// and XNNPACK's CPU paths, ONNX Runtime's col2im): per band of input rows, one GEMM per group of the input
/// pixels <c>[pixels, InC/g]</c> by the packed weights <c>[InC/g, KH·KW·OutC/g]</c>
/// (<see cref="PackedConvTranspose2dWeights"/>) into int32 columns, then col2im: the columns of tap
/// <c>(kh, kw)</c> of input pixel <c>(ih, iw)</c> are added into output pixel
/// <c>(ih·s − p + kh·d, iw·s − p + kw·d)</c> when it lies inside the output. <see cref="GemmConfig.Scalar"/>
/// runs <see cref="ConvTranspose2dScalar"/>. Results equal the scalar reference bit for bit.
/// </summary>
/// <remarks>
/// <para>
/// Exactness. The scalar reference computes, in wrapping int32,
/// <c>acc[o] = Σ_(tap, ic) (x[ic] − zx)(w[ic, o, tap] − zw[o])</c> over the taps that reach o from inside the input.
/// Each GEMM column <c>(pixel, tap, o)</c> is <c>Σ_ic (x − zx)(w − zw) = Σ x·w − zx·Σw − zw·(Σx − K·zx)</c> with
/// <c>K = InC/g</c>, <c>Σw</c> the column's weight sum over ic (<see cref="PackedGemmWeights.ColumnSums"/>, per tap
/// and output channel) and <c>Σx</c> the pixel's input sum over the group's channels — exactly the compensation
/// <see cref="GemmDriver"/> applies to every GEMM (modulo 2³², where the identity holds). col2im then adds each
/// column into the one output it reaches; int32 addition modulo 2³² is associative and commutative, so the order
/// of the taps (and of the threads) cannot change a bit. Taps that fall outside the output are dropped, output
/// pixels no tap reaches stay 0 — as in the reference, which skips the same taps. Unlike a convolution there is
/// no padding on the input side, so no zero point stands in for a missing pixel.
/// </para>
/// <para>
/// Why a GEMM over all taps rather than the stride² "sub-pixel" convolutions: the GEMM's reduction is InC/g
/// whatever the kernel, and its N = KH·KW·OutC/g is wide (128 for a 2×2, 64→32 UNet up-sampling, or 4×4,
/// 16→8), so the micro-kernel runs full 16- or 32-channel panels; the sub-pixel form reduces over
/// (KH/s)·(KW/s)·InC/g but has only OutC/g columns (8 or 32), so narrow layers would fill a fraction of each
/// panel, and it needs an im2col gather per phase. The cost the GEMM adds is the col2im pass, one int32 add
/// per (pixel, tap, channel) — 1/K of the multiply-adds.
/// </para>
/// <para>
/// Bands of input rows keep the columns (<see cref="KernelScratch"/>) to about <see cref="ColumnBlockBytes"/>.
/// The GEMM of a band runs on <see cref="KernelThreads"/>' pool; its col2im is split by output rows, each task
/// first zeroing the output rows this band is the first to reach, so no two tasks write one element. With a
/// requantization (<see cref="Run"/>), the same tasks also requantize the output rows that no band from this one
/// on can reach (they are final, and disjoint from the rows being added to), so the int32 block is read back
/// while it is still in cache, in parallel.
/// </para>
/// </remarks>
public static unsafe class ConvTranspose2dKernel
{
    /// <summary>int32 GEMM columns per band (bytes) on one thread: a quarter of a 1 MiB L2, leaving room for the band's input, output rows and the weights.</summary>
    private const int ColumnBlockBytes = 256 * 1024;

    /// <summary>
    /// int32 GEMM columns per band and thread when several threads share each band: every band is two pool
    /// dispatches (its GEMM, its col2im), and with 256 KiB bands a 64→128 up-sampling of 32 channels (two input rows a
    /// band) ran slower on 2 threads than on 1 (CenterNet head: 2.8 against 1.7 ms); 512 KiB per thread halves the
    /// bands per thread and took it to 1.5 ms.
    /// </summary>
    private const int ThreadedColumnBlockBytes = 512 * 1024;

    /// <summary>Input pixels per band at least: 16 micro-tiles of 6 rows, so a wide layer's weights are not re-read for a few pixels each time.</summary>
    private const int MinBandPixels = 96;

    /// <summary>
    /// col2im adds per thread at least: one add is an eighth of a 256-bit load-add-store, so 32 K adds are
    /// about as long as <see cref="KernelThreads.MinMultiplyAddsPerThread"/> multiply-adds of a GEMM.
    /// </summary>
    private const long MinAddsPerThread = 32 * 1024;

    /// <summary>Columns of one input row at most (int32 elements): a single band must fit one array.</summary>
    private const long MaxRowColumns = 1L << 28;

    /// <summary>Packs PyTorch-layout <c>[InC, OutC/groups, KH, KW]</c> weights for <paramref name="config"/> (default: the dispatcher's).</summary>
    /// <param name="logical">int8 weights, logical <c>[InC, OutC/groups, KH, KW]</c>.</param>
    /// <param name="weightZeroPoints">zw per output channel.</param>
    /// <param name="inChannels">InC.</param>
    /// <param name="outChannels">OutC.</param>
    /// <param name="kernelHeight">KH.</param>
    /// <param name="kernelWidth">KW.</param>
    /// <param name="groups">Groups.</param>
    /// <param name="config">Kernel; null → <see cref="KernelDispatch.Config"/>.</param>
    public static PackedConvTranspose2dWeights Pack(ReadOnlySpan<sbyte> logical, ReadOnlySpan<int> weightZeroPoints, int inChannels, int outChannels, int kernelHeight, int kernelWidth, int groups, GemmConfig? config = null) =>
        PackedConvTranspose2dWeights.Pack(logical, weightZeroPoints, inChannels, outChannels, kernelHeight, kernelWidth, groups, config ?? KernelDispatch.Config);

    /// <summary>int32 accumulators <c>Σ (qx − zx)(qw − zw)</c>, as <see cref="ConvTranspose2dScalar.Accumulate"/>.</summary>
    /// <param name="geometry">Shapes (validated; must match the packed weights).</param>
    /// <param name="inputNhwc">uint8 input <c>[N][H][W][InC]</c>.</param>
    /// <param name="inputZeroPoint">zx, 0..255 (qint8 activations arrive as uint8 with zx + 128).</param>
    /// <param name="weights">Prepacked weights.</param>
    /// <param name="accumulatorsNhwc">int32 output <c>[N][OH][OW][OutC]</c> (every element is written).</param>
    /// <param name="scratch">Reusable working memory.</param>
    /// <param name="bandRows">Input rows per band; 0 (the default) sizes bands to the cache. Tests pass 1, 2, ... to put band edges everywhere.</param>
    public static void Accumulate(in ConvTranspose2dGeometry geometry, ReadOnlySpan<byte> inputNhwc, int inputZeroPoint, PackedConvTranspose2dWeights weights, Span<int> accumulatorsNhwc, KernelScratch scratch, int bandRows = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bandRows);
        Validate(geometry, inputNhwc, inputZeroPoint, weights, accumulatorsNhwc.Length, scratch);
        if (weights.Gemm is null)
        {
            ConvTranspose2dScalar.Accumulate(geometry, inputNhwc, inputZeroPoint, weights.ReferenceOhwi, weights.WeightZeroPoints, accumulatorsNhwc);
            return;
        }

        if (accumulatorsNhwc.IsEmpty)
        {
            return; // batch 0
        }

        fixed (byte* input = inputNhwc)
        fixed (int* output = accumulatorsNhwc)
        {
            Bands(geometry, input, inputZeroPoint, weights.Gemm, output, default, bandRows, scratch);
        }
    }

    /// <summary>Transposed convolution + requantization (bias, ReLU, output zero point per <paramref name="requantize"/>) to uint8 NHWC.</summary>
    /// <param name="geometry">Shapes (validated; must match the packed weights).</param>
    /// <param name="inputNhwc">uint8 input <c>[N][H][W][InC]</c>.</param>
    /// <param name="inputZeroPoint">zx, 0..255.</param>
    /// <param name="weights">Prepacked weights.</param>
    /// <param name="requantize">Per-channel factors (one per output channel).</param>
    /// <param name="outputNhwc">uint8 output <c>[N][OH][OW][OutC]</c>.</param>
    /// <param name="scratch">Reusable working memory (its accumulator block holds the int32 sums).</param>
    /// <param name="bandRows">Input rows per band; 0 (the default) sizes bands to the cache. Tests pass 1, 2, ... to put band edges everywhere.</param>
    /// <remarks>
    /// The packed path requantizes each output row in the col2im tasks of the first band that no longer reaches
    /// it (so in parallel, while the row is still in cache), with <see cref="RequantizeVector"/>'s arithmetic — the
    /// same per element as <see cref="Requantize.RequantizeInt32ToUInt8"/>.
    /// </remarks>
    public static void Run(in ConvTranspose2dGeometry geometry, ReadOnlySpan<byte> inputNhwc, int inputZeroPoint, PackedConvTranspose2dWeights weights, RequantizeParams requantize, Span<byte> outputNhwc, KernelScratch scratch, int bandRows = 0)
    {
        ArgumentNullException.ThrowIfNull(requantize);
        ArgumentOutOfRangeException.ThrowIfNegative(bandRows);
        Validate(geometry, inputNhwc, inputZeroPoint, weights, outputNhwc.Length, scratch);
        if (requantize.Channels != weights.OutChannels)
        {
            throw new ArgumentException($"ConvTranspose2d: requantization has {requantize.Channels} channels, the weights {weights.OutChannels}.", nameof(requantize));
        }

        Span<int> accumulators = scratch.Accumulators(outputNhwc.Length).AsSpan(0, outputNhwc.Length);
        if (weights.Gemm is null)
        {
            ConvTranspose2dScalar.Accumulate(geometry, inputNhwc, inputZeroPoint, weights.ReferenceOhwi, weights.WeightZeroPoints, accumulators);
            Requantize.RequantizeInt32ToUInt8(accumulators, requantize, outputNhwc);
            return;
        }

        if (outputNhwc.IsEmpty)
        {
            return; // batch 0
        }

        fixed (byte* input = inputNhwc)
        fixed (int* output = accumulators)
        fixed (byte* bytes = outputNhwc)
        fixed (float* biasTerms = requantize.BiasTerms)
        fixed (float* multipliers = requantize.Multipliers)
        fixed (int* quantizedBias = requantize.QuantizedBias)
        {
            var epilogue = new RowRequantization(new RequantizeView(requantize, biasTerms, multipliers, quantizedBias), bytes, weights.Config.VectorBits);
            Bands(geometry, input, inputZeroPoint, weights.Gemm, output, epilogue, bandRows, scratch);
        }
    }

    /// <summary>The band loop; <paramref name="epilogue"/> with a null output only accumulates.</summary>
    private static void Bands(in ConvTranspose2dGeometry g, byte* input, int zx, PackedGemmWeights gemm, int* output, in RowRequantization epilogue, int requestedBandRows, KernelScratch scratch)
    {
        int inWidth = g.InWidth, inChannels = g.InChannels;
        int columnsPerPixel = g.KernelHeight * g.KernelWidth * g.OutChannels;
        long rowColumns = (long)inWidth * columnsPerPixel;
        if (rowColumns > MaxRowColumns)
        {
            throw new ArgumentException($"ConvTranspose2d: one input row needs {rowColumns} int32 GEMM columns ({inWidth} pixels x {g.KernelHeight}x{g.KernelWidth} taps x {g.OutChannels} channels), more than the {MaxRowColumns} a band holds: {g}.");
        }

        int totalRows = g.Batch * g.InHeight;
        int degree = KernelThreads.MaxDegreeOfParallelism;
        long blockBytes = degree > 1 ? (long)ThreadedColumnBlockBytes * degree : ColumnBlockBytes;
        int bandRows = (int)Math.Clamp(blockBytes / (rowColumns * sizeof(int)), 1, totalRows);
        bandRows = Math.Max(bandRows, Math.Min(totalRows, (MinBandPixels + inWidth - 1) / inWidth));
        if (requestedBandRows > 0)
        {
            bandRows = Math.Min(requestedBandRows, totalRows);
        }

        bandRows = (int)Math.Max(1, Math.Min(bandRows, MaxRowColumns / rowColumns));
        int[] columnArray = scratch.Columns(checked((int)(bandRows * rowColumns)));
        int outputRows = g.Batch * g.OutHeight;
        fixed (int* columns = columnArray)
        {
            var progress = new BandProgress(); // output rows (n·OH + oh) below ZeroedEnd are zeroed, below RequantizedEnd requantized
            for (int firstRow = 0; firstRow < totalRows; firstRow += bandRows)
            {
                int rows = Math.Min(bandRows, totalRows - firstRow);
                int pixels = rows * inWidth;
                byte* bandInput = input + ((nint)firstRow * inWidth * inChannels);

                // One group: the band's pixels are the GEMM's rows as they lie. Groups: the same rows read as a
                // grouped 1×1 convolution's (a 1×pixels image), whose im2col rows are each group's channels.
                RowSource source = g.Groups == 1
                    ? RowSource.Rows(bandInput, inChannels)
                    : RowSource.Im2col(bandInput, new Conv2dGeometry(1, inChannels, 1, pixels, columnsPerPixel, 1, 1, Groups: g.Groups));
                GemmDriver.Run(gemm, source, pixels, zx, columns, null, null, columnsPerPixel, scratch);
                ScatterBand(g, columns, firstRow, rows, ref progress, output, epilogue, scratch);
            }

            // Rows after the last band's reach (output padding, a stride with no tap there) stay 0; then what no
            // band's tasks requantized.
            ClearRows(g, output, progress.ZeroedEnd, outputRows);
            if (epilogue.Bytes is not null)
            {
                RequantizeRows(g, output, epilogue, progress.RequantizedEnd, outputRows);
            }
        }
    }

    /// <summary>col2im of one band (and requantization of the rows finished before it); advances <paramref name="progress"/>.</summary>
    private static void ScatterBand(in ConvTranspose2dGeometry g, int* columns, int firstRow, int rows, ref BandProgress progress, int* output, in RowRequantization epilogue, KernelScratch scratch)
    {
        int inHeight = g.InHeight, outHeight = g.OutHeight;
        int firstImage = firstRow / inHeight, firstInputRow = firstRow % inHeight;
        int lastRow = firstRow + rows - 1;
        int lastImage = lastRow / inHeight, lastInputRow = lastRow % inHeight;

        // Output rows the band can reach lie in [lowest, highest]: its first input row's kh = 0 tap and its last
        // input row's last tap, both clamped to their image (and every row of the band's earlier images).
        // Later bands start lower in the input, so they reach no row below `lowest` either: the rows below it
        // that are zeroed hold their final sums.
        int lowest = (firstImage * outHeight) + Math.Clamp((firstInputRow * g.StrideHeight) - g.PadHeight, 0, outHeight - 1);
        int highest = (lastImage * outHeight) + Math.Min(outHeight - 1, (lastInputRow * g.StrideHeight) - g.PadHeight + ((g.KernelHeight - 1) * g.DilationHeight));
        if (lastImage > firstImage)
        {
            // The last image's first input rows may reach none of its outputs (padding larger than the reach),
            // while the band's earlier images reach up to their last output rows.
            highest = Math.Max(highest, (lastImage * outHeight) - 1);
        }

        int zeroedEnd = progress.ZeroedEnd;
        int end = Math.Max(zeroedEnd, highest + 1);
        int spanStart = Math.Min(lowest, zeroedEnd);
        int requantizeStart = progress.RequantizedEnd;
        int requantizeEnd = epilogue.Bytes is null ? requantizeStart : Math.Max(requantizeStart, Math.Min(lowest, zeroedEnd));
        progress = new BandProgress { ZeroedEnd = end, RequantizedEnd = requantizeEnd };
        int span = end - spanStart, requantizeRows = requantizeEnd - requantizeStart;
        if (span == 0 && requantizeRows == 0)
        {
            return;
        }

        // A requantized element costs about two adds (load, convert, multiply, add, round, clamp, pack per 8).
        long work = ((long)rows * g.InWidth * g.KernelHeight * g.KernelWidth * g.OutChannels) + (2L * requantizeRows * g.OutWidth * g.OutChannels);
        int degree = (int)Math.Clamp(work / MinAddsPerThread, 1, KernelThreads.MaxDegreeOfParallelism);
        var plan = new ColumnScatterPlan
        {
            Geometry = g,
            Columns = columns,
            Output = output,
            Epilogue = epilogue,
            FirstRow = firstRow,
            Rows = rows,
            ZeroedEnd = zeroedEnd,
            End = end,
            SpanStart = spanStart,
            SpanLength = span,
            RequantizeStart = requantizeStart,
            RequantizeLength = requantizeRows,
            Tasks = degree == 1 ? 1 : Math.Max(1, Math.Min(Math.Max(span, requantizeRows), 4 * degree)),
        };
        if (plan.Tasks == 1)
        {
            ScatterTask(plan, 0);
            return;
        }

        ColumnScatterJob job = scratch.ColumnScatterJob;
        job.Plan = plan;
        try
        {
            WorkerPool.Shared.Run(job, plan.Tasks, degree, scratch);
        }
        finally
        {
            job.Plan = default;
        }
    }

    private static void ClearRows(in ConvTranspose2dGeometry g, int* output, int fromRow, int toRow)
    {
        nint rowLength = (nint)g.OutWidth * g.OutChannels;
        if (toRow > fromRow)
        {
            new Span<int>(output + (fromRow * rowLength), checked((int)((toRow - fromRow) * rowLength))).Clear();
        }
    }

    /// <summary>Output rows [<paramref name="fromRow"/>, <paramref name="toRow"/>) of the accumulators → bytes, pixel by pixel.</summary>
    private static void RequantizeRows(in ConvTranspose2dGeometry g, int* output, in RowRequantization epilogue, int fromRow, int toRow)
    {
        int channels = g.OutChannels;
        nint first = (nint)fromRow * g.OutWidth, last = (nint)toRow * g.OutWidth;
        for (nint pixel = first; pixel < last; pixel++)
        {
            RequantizeVector.Row(output + (pixel * channels), channels, 0, epilogue.View, epilogue.Bytes + (pixel * channels), epilogue.VectorBits);
        }
    }

    /// <summary>
    /// Output rows <c>[spanStart + task·span/tasks, spanStart + (task + 1)·span/tasks)</c> of a band: zeroes the
    /// ones the band reaches first, then adds every column that lands in them.
    /// </summary>
    internal static void ScatterTask(in ColumnScatterPlan plan, int task)
    {
        ConvTranspose2dGeometry g = plan.Geometry;
        if (plan.RequantizeLength > 0)
        {
            // Rows no band reaches any more (disjoint from every task's span below).
            int from = plan.RequantizeStart + (int)((long)task * plan.RequantizeLength / plan.Tasks);
            int to = plan.RequantizeStart + (int)((long)(task + 1) * plan.RequantizeLength / plan.Tasks);
            RequantizeRows(g, plan.Output, plan.Epilogue, from, to);
        }

        int rangeStart = plan.SpanStart + (int)((long)task * plan.SpanLength / plan.Tasks);
        int rangeEnd = plan.SpanStart + (int)((long)(task + 1) * plan.SpanLength / plan.Tasks);
        int outHeight = g.OutHeight, outWidth = g.OutWidth, outChannels = g.OutChannels;
        nint outputRowLength = (nint)outWidth * outChannels;
        ClearRows(g, plan.Output, Math.Max(rangeStart, plan.ZeroedEnd), Math.Min(rangeEnd, plan.End));

        int inHeight = g.InHeight, inWidth = g.InWidth;
        int kernelHeight = g.KernelHeight, kernelWidth = g.KernelWidth, taps = kernelHeight * kernelWidth;
        int groups = g.Groups, outPerGroup = g.OutChannelsPerGroup;
        int columnsPerPixel = taps * outChannels, columnsPerGroup = taps * outPerGroup;
        int n = plan.FirstRow / inHeight, ih = plan.FirstRow % inHeight;
        for (int r = 0; r < plan.Rows; r++)
        {
            int* columnRow = plan.Columns + ((nint)r * inWidth * columnsPerPixel);
            for (int kh = 0; kh < kernelHeight; kh++)
            {
                int oh = (ih * g.StrideHeight) - g.PadHeight + (kh * g.DilationHeight);
                int outputRow = (n * outHeight) + oh;
                if ((uint)oh >= (uint)outHeight || outputRow < rangeStart || outputRow >= rangeEnd)
                {
                    continue;
                }

                int* outputBase = plan.Output + (outputRow * outputRowLength);
                for (int iw = 0; iw < inWidth; iw++)
                {
                    int* pixelColumns = columnRow + ((nint)iw * columnsPerPixel) + (kh * kernelWidth * outPerGroup);
                    int firstColumn = (iw * g.StrideWidth) - g.PadWidth;
                    for (int kw = 0; kw < kernelWidth; kw++)
                    {
                        int ow = firstColumn + (kw * g.DilationWidth);
                        if ((uint)ow >= (uint)outWidth)
                        {
                            continue;
                        }

                        int* destination = outputBase + ((nint)ow * outChannels);
                        int* source = pixelColumns + (kw * outPerGroup);
                        if (groups == 1)
                        {
                            AddInto(destination, source, outChannels);
                        }
                        else
                        {
                            for (int group = 0; group < groups; group++)
                            {
                                AddInto(destination + (group * outPerGroup), source + (group * columnsPerGroup), outPerGroup);
                            }
                        }
                    }
                }
            }

            if (++ih == inHeight)
            {
                ih = 0;
                n++;
            }
        }
    }

    /// <summary><c>destination[j] += source[j]</c> for j &lt; count, int32 wrapping.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddInto(int* destination, int* source, int count)
    {
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; j + 8 <= count; j += 8)
            {
                (Vector256.Load(destination + j) + Vector256.Load(source + j)).Store(destination + j);
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            for (; j + 4 <= count; j += 4)
            {
                (Vector128.Load(destination + j) + Vector128.Load(source + j)).Store(destination + j);
            }
        }

        for (; j < count; j++)
        {
            destination[j] = unchecked(destination[j] + source[j]);
        }
    }

    private static void Validate(in ConvTranspose2dGeometry geometry, ReadOnlySpan<byte> input, int zx, PackedConvTranspose2dWeights weights, int outputLength, KernelScratch scratch)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(scratch);
        geometry.Validate();
        weights.Config.EnsureSupported();
        if (geometry.InChannels != weights.InChannels || geometry.OutChannels != weights.OutChannels || geometry.KernelHeight != weights.KernelHeight ||
            geometry.KernelWidth != weights.KernelWidth || geometry.Groups != weights.Groups)
        {
            throw new ArgumentException($"ConvTranspose2d: geometry {geometry} does not match the packed weights ({weights.InChannels} in, {weights.OutChannels} out, {weights.KernelHeight}x{weights.KernelWidth}, groups {weights.Groups}).");
        }

        KernelArguments.InputZeroPoint("ConvTranspose2d", zx);
        KernelArguments.NhwcLength("ConvTranspose2d", "input", input.Length, geometry.Batch, geometry.InHeight, geometry.InWidth, geometry.InChannels);
        KernelArguments.NhwcLength("ConvTranspose2d", "output", outputLength, geometry.Batch, geometry.OutHeight, geometry.OutWidth, geometry.OutChannels);
    }
}

/// <summary>One band's col2im, as the tasks of <see cref="ConvTranspose2dKernel"/> read it; pointers pinned by the caller for the call.</summary>
internal unsafe struct ColumnScatterPlan
{
    public ConvTranspose2dGeometry Geometry;
    public int* Columns;
    public int* Output;
    public RowRequantization Epilogue;
    public int FirstRow;
    public int Rows;
    public int ZeroedEnd;
    public int End;
    public int SpanStart;
    public int SpanLength;
    public int RequantizeStart;
    public int RequantizeLength;
    public int Tasks;
}

/// <summary>Where requantized rows go (<see cref="Bytes"/> null: accumulate only); pointers pinned by the caller.</summary>
internal readonly unsafe struct RowRequantization(RequantizeView view, byte* bytes, int vectorBits)
{
    public RequantizeView View { get; } = view;

    public byte* Bytes { get; } = bytes;

    public int VectorBits { get; } = vectorBits;
}

/// <summary>How far the bands have got: output rows below <see cref="ZeroedEnd"/> are zeroed, below <see cref="RequantizedEnd"/> requantized.</summary>
internal struct BandProgress
{
    public int ZeroedEnd;
    public int RequantizedEnd;
}

/// <summary>The reusable work item of one caller's col2im regions (one per <see cref="KernelScratch"/>, so a call allocates nothing).</summary>
internal sealed class ColumnScatterJob : IParallelWork
{
    public ColumnScatterPlan Plan;

    public void Run(int task, int worker, KernelScratch scratch) => ConvTranspose2dKernel.ScatterTask(Plan, task);

    public void Reserve(KernelScratch scratch)
    {
        // The tasks read the band's columns and write the output: no scratch of their own.
    }
}
