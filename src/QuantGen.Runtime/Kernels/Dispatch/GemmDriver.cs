using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using QuantGen.Kernels.Arm;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.X86;
using QuantGen.Kernels.X86.Generated;

namespace QuantGen.Kernels;

/// <summary>Where the GEMM's activation rows come from.</summary>
internal enum RowSourceKind
{
    /// <summary>Row m is <c>Input + m·Lda</c> (linear, 1×1 stride-1 convolution).</summary>
    Rows,

    /// <summary>im2col rows of a convolution, gathered per tile or read through per-tap pointers.</summary>
    Im2col,

    /// <summary>
    /// A convolution on a zero-point-padded input copy with <see cref="PackedConv2dWeights.RowRuns"/>
    /// weights: row m is KH runs of <see cref="RowSource.RunLength"/> bytes, one per kernel row.
    /// </summary>
    RowRuns,
}

/// <summary>Where the GEMM's activation rows come from.</summary>
internal readonly unsafe struct RowSource
{
    private RowSource(RowSourceKind kind, byte* input, int lda, Conv2dGeometry geometry, int runLength)
    {
        Kind = kind;
        Input = input;
        Lda = lda;
        Geometry = geometry;
        RunLength = runLength;
    }

    /// <summary>What <see cref="Input"/> holds.</summary>
    public RowSourceKind Kind { get; }

    /// <summary>Input base (for <see cref="RowSourceKind.RowRuns"/>, the padded copy).</summary>
    public byte* Input { get; }

    /// <summary>Row stride of a direct source.</summary>
    public int Lda { get; }

    /// <summary>True when row m is simply <c>Input + m·Lda</c> (linear, 1×1 stride-1 convolution).</summary>
    public bool Direct => Kind == RowSourceKind.Rows;

    /// <summary>The convolution whose rows are read (when not direct).</summary>
    public Conv2dGeometry Geometry { get; }

    /// <summary>Bytes per kernel-row run (<see cref="RowSourceKind.RowRuns"/> only).</summary>
    public int RunLength { get; }

    public static RowSource Rows(byte* input, int lda) => new(RowSourceKind.Rows, input, lda, default, 0);

    public static RowSource Im2col(byte* input, in Conv2dGeometry geometry) => new(RowSourceKind.Im2col, input, 0, geometry, 0);

    /// <summary>Rows of <paramref name="geometry"/> read as runs from <paramref name="paddedInput"/> (see <see cref="Conv2dKernel.PadInput"/>).</summary>
    public static RowSource RowRuns(byte* paddedInput, in Conv2dGeometry geometry, int runLength) => new(RowSourceKind.RowRuns, paddedInput, 0, geometry, runLength);
}

/// <summary>
/// Drives a config's micro-kernel over a (grouped) GEMM. The work is cut into tasks — one group × a block
/// of weight panels that fits in L2 × a block of row tiles — run by <see cref="KernelThreads"/>' pool.
/// Inside a task each tile of MR rows is gathered once (im2col with the input zero point at padding
/// positions, so the compensation stays exact; widened to uint16 for the vpmaddwd kernels), then every
/// panel of the block runs the micro-kernel into an int32 tile and the epilogue applies
/// <c>acc = tile − (zx − offset)·Σw − zw·(Σx − K·zx)</c> (int32, wrapping) and writes int32 or requantized
/// uint8. Every output element's arithmetic is the same whichever task (and thread) computes it.
/// </summary>
internal static unsafe class GemmDriver
{
    /// <summary>Packed weights per L2 block (bytes); half of Zen 5's 1 MiB L2, leaving room for rows and outputs.</summary>
    private const int PanelBlockBytes = 512 * 1024;

    /// <summary>Row tiles per task at most (48 rows with MR = 6): small enough to balance two or more threads on 7×7 maps.</summary>
    private const int MaxRowTilesPerTask = 8;

    public static void Run(PackedGemmWeights weights, in RowSource source, int m, int zx, int* accumulatorsOut, byte* bytesOut, RequantizeParams? requantize, int ldc, KernelScratch scratch)
    {
        if (m <= 0)
        {
            return;
        }

        GemmConfig config = weights.Config;
        RequantizeParams? rq = requantize;

        // (zx − offset)·Σw per output channel: constant for the call, so computed once (int32, wrapping).
        int[] compensationArray = scratch.Compensation(weights.OutChannels);
        int inputTerm = zx - config.ActivationOffset;
        ReadOnlySpan<int> columnSumSpan = weights.ColumnSums;
        for (int c = 0; c < columnSumSpan.Length; c++)
        {
            compensationArray[c] = unchecked(inputTerm * columnSumSpan[c]);
        }

        fixed (int* compensation = compensationArray)
        fixed (sbyte* quads = weights.QuadArray)
        fixed (short* pairs = weights.PairArray)
        fixed (int* columnSums = weights.ColumnSumArray)
        fixed (int* weightZeroPoints = weights.WeightZeroPointArray)
        fixed (float* biasTerms = rq is null ? default : rq.BiasTerms)
        fixed (float* multipliers = rq is null ? default : rq.Multipliers)
        fixed (int* quantizedBias = rq is null ? default : rq.QuantizedBias)
        {
            int elementBytes = config.Layout == PackedLayout.Int16Pairs ? 2 : 1;
            int panelsPerBlock = Math.Max(1, PanelBlockBytes / (weights.PanelLength * elementBytes));
            int panelChunk = Math.Min(weights.PanelsPerGroup, panelsPerBlock);
            int tiles = (m + config.MR - 1) / config.MR;
            int rowChunks = (tiles + MaxRowTilesPerTask - 1) / MaxRowTilesPerTask;
            // A small GEMM (a one-channel first convolution, a linear layer at batch 1) finishes before a
            // helper thread would have woken: only give each thread a worthwhile share of multiply-adds.
            long multiplyAdds = (long)m * weights.OutChannels * weights.K;
            int degree = (int)Math.Clamp(multiplyAdds / KernelThreads.MinMultiplyAddsPerThread, 1, KernelThreads.MaxDegreeOfParallelism);
            int panelChunks = (weights.PanelsPerGroup + panelChunk - 1) / panelChunk;
            if (degree > 1 && (long)weights.Groups * panelChunks * rowChunks < 2L * degree)
            {
                // Few rows (deep layers, linear): split the panels too, so every thread gets work and
                // reads only its share of the weights.
                int wanted = (int)Math.Min(weights.PanelsPerGroup, (2L * degree + (weights.Groups * rowChunks) - 1) / (weights.Groups * rowChunks));
                panelChunk = (weights.PanelsPerGroup + wanted - 1) / wanted;
                panelChunks = (weights.PanelsPerGroup + panelChunk - 1) / panelChunk;
            }

            // AVX-VNNI convolutions whose taps are whole quads read the input through row pointers
            // (IGEMM) instead of copying im2col rows; the Σx row sums that nonzero weight zero points
            // need come from the gathered rows, so those keep gathering.
            bool indirect = source.Kind == RowSourceKind.RowRuns || (source.Kind == RowSourceKind.Im2col && config.Isa == KernelIsa.AvxVnni &&
                !config.ScalarEmulation && !weights.HasWeightZeroPoints && source.Geometry.InChannelsPerGroup % 4 == 0);
            var plan = new GemmPlan
            {
                Indirect = indirect,
                Weights = weights,
                Config = config,
                Source = source,
                M = m,
                Zx = zx,
                Ldc = ldc,
                AccumulatorsOut = accumulatorsOut,
                BytesOut = bytesOut,
                Requantize = rq is not null,
                View = rq is null ? default : new RequantizeView(rq, biasTerms, multipliers, quantizedBias),
                Quads = quads,
                Pairs = pairs,
                ColumnSums = columnSums,
                Compensation = compensation,
                WeightZeroPoints = weightZeroPoints,
                PanelChunk = panelChunk,
                PanelChunks = panelChunks,
                RowTilesPerTask = (tiles + rowChunks - 1) / Math.Max(rowChunks, 1),
                RowChunks = rowChunks,
            };
            int taskCount = weights.Groups * panelChunks * rowChunks;
            if (degree == 1 || taskCount == 1)
            {
                for (int task = 0; task < taskCount; task++)
                {
                    RunTask(plan, task, scratch);
                }

                return;
            }

            GemmJob job = scratch.GemmJob;
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

    /// <summary>Grows <paramref name="scratch"/> to everything <see cref="RunTask"/> asks of it for this plan.</summary>
    internal static void Reserve(in GemmPlan plan, KernelScratch scratch)
    {
        GemmConfig config = plan.Config;
        int k = plan.Weights.K;
        scratch.Rows(config.MR * PackedGemmWeights.RoundUp(k, 4));
        if (config.WidenedActivations)
        {
            scratch.WideRows(config.MR * PackedGemmWeights.RoundUp(k, 2));
        }

        scratch.Tile(config.MR * config.NR);
        scratch.RowSums(config.MR);
        if (plan.Indirect)
        {
            Conv2dGeometry g = plan.Source.Geometry;
            scratch.Pointers(g.KernelHeight * g.KernelWidth * GemmAvxVnni.MR);
            scratch.PadRow(g.InChannelsPerGroup);
        }
    }

    /// <summary>One task: group × panel block × row-tile block.</summary>
    internal static void RunTask(in GemmPlan plan, int task, KernelScratch scratch)
    {
        GemmConfig config = plan.Config;
        PackedGemmWeights weights = plan.Weights;
        int mr = config.MR, nr = config.NR;
        int k = weights.K;
        int kQuadStride = PackedGemmWeights.RoundUp(k, 4);
        int kPairStride = PackedGemmWeights.RoundUp(k, 2);
        int outPerGroup = weights.OutPerGroup;
        bool needRowSums = weights.HasWeightZeroPoints;
        int zx = plan.Zx;
        int vectorBits = config.VectorBits;
        bool tileEpilogue = plan.Requantize && !needRowSums && vectorBits == 256;

        int rowChunk = task % plan.RowChunks;
        int rest = task / plan.RowChunks;
        int panelChunkIndex = rest % plan.PanelChunks;
        int group = rest / plan.PanelChunks;
        int firstPanel = panelChunkIndex * plan.PanelChunk;
        int endPanel = Math.Min(weights.PanelsPerGroup, firstPanel + plan.PanelChunk);
        int firstRow = rowChunk * plan.RowTilesPerTask * mr;
        int endRow = Math.Min(plan.M, firstRow + (plan.RowTilesPerTask * mr));

        byte[] rowArray = scratch.Rows(mr * kQuadStride);
        ushort[] wideArray = config.WidenedActivations ? scratch.WideRows(mr * kPairStride) : [];
        int[] tileArray = scratch.Tile(mr * nr);
        int[] rowSumArray = scratch.RowSums(mr);
        RowSource source = plan.Source;
        if (plan.Indirect)
        {
            RunIndirectTask(plan, group, firstPanel, endPanel, firstRow, endRow, scratch);
            return;
        }

        OutputPixel pixel = source.Direct ? default : OutputPixel.At(firstRow, source.Geometry);
        fixed (byte* rowBuffer = rowArray)
        fixed (ushort* wideBuffer = wideArray)
        fixed (int* tile = tileArray)
        fixed (int* rowSums = rowSumArray)
        {
            for (int m0 = firstRow; m0 < endRow; m0 += mr)
            {
                int rows = Math.Min(mr, endRow - m0);
                byte* a;
                nint lda;
                int kernelK = k;
                if (source.Direct)
                {
                    a = source.Input + ((nint)m0 * source.Lda);
                    lda = source.Lda;
                }
                else
                {
                    GatherIm2colRows(source.Input, source.Geometry, group, ref pixel, rows, zx, rowBuffer, kQuadStride);
                    a = rowBuffer;
                    lda = kQuadStride;

                    // Gathered rows are zero-filled up to the quad stride and the padded weights are zero,
                    // so the kernel may run whole quads (no byte-wise tail); the products added are 0.
                    kernelK = kQuadStride;
                }

                if (needRowSums)
                {
                    for (int r = 0; r < rows; r++)
                    {
                        rowSums[r] = RowSum(a + (r * lda), k);
                    }
                }

                if (config.WidenedActivations)
                {
                    for (int r = 0; r < rows; r++)
                    {
                        Widen(a + (r * lda), k, wideBuffer + (r * kPairStride), kPairStride);
                    }
                }

                for (int panel = firstPanel; panel < endPanel; panel++)
                {
                    int panelOffset = weights.PanelOffset(group, panel);
                    RunMicroKernel(config, a, lda, wideBuffer, kPairStride, rows, kernelK, plan.Quads + panelOffset, plan.Pairs + panelOffset, tile);
                    int columns = Math.Min(nr, outPerGroup - (panel * nr));
                    int channel = (group * outPerGroup) + (panel * nr);
                    if (tileEpilogue)
                    {
                        RequantizeVector.Tile256(tile, nr, rows, columns, plan.Compensation + channel, channel, plan.View, plan.BytesOut + ((nint)m0 * plan.Ldc) + channel, plan.Ldc);
                        continue;
                    }

                    for (int r = 0; r < rows; r++)
                    {
                        int* t = tile + (r * nr);
                        int rowCorrection = needRowSums ? unchecked(rowSums[r] - (k * zx)) : 0;
                        Compensate(t, columns, plan.Compensation + channel, plan.WeightZeroPoints + channel, rowCorrection, needRowSums);
                        nint outputIndex = ((nint)(m0 + r) * plan.Ldc) + channel;
                        if (!plan.Requantize)
                        {
                            Unsafe.CopyBlockUnaligned(plan.AccumulatorsOut + outputIndex, t, (uint)columns * sizeof(int));
                        }
                        else
                        {
                            RequantizeVector.Row(t, columns, channel, plan.View, plan.BytesOut + outputIndex, vectorBits);
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// A task on the indirect path (<see cref="GemmAvxVnni.Kernel6x16Indirect"/>): per tile of 6 output
    /// pixels, one pointer per (tap, row) to the tap's input channels, or to a row of zero points when
    /// the tap falls in the padding — the same values the gathered im2col rows hold, so the same sums.
    /// </summary>
    private static void RunIndirectTask(in GemmPlan plan, int group, int firstPanel, int endPanel, int firstRow, int endRow, KernelScratch scratch)
    {
        const int Mr = GemmAvxVnni.MR;
        const int Nr = GemmAvxVnni.NR;
        PackedGemmWeights weights = plan.Weights;
        Conv2dGeometry g = plan.Source.Geometry;
        bool rowRuns = plan.Source.Kind == RowSourceKind.RowRuns;
        int inPerGroup = g.InChannelsPerGroup;
        int segments = rowRuns ? g.KernelHeight : g.KernelHeight * g.KernelWidth;
        int segmentLength = rowRuns ? plan.Source.RunLength : inPerGroup;

        int outPerGroup = weights.OutPerGroup;
        nint[] pointerArray = scratch.Pointers(g.KernelHeight * g.KernelWidth * Mr);
        byte[] padArray = scratch.PadRow(inPerGroup);
        if (!rowRuns)
        {
            Array.Fill(padArray, (byte)plan.Zx, 0, inPerGroup);
        }

        int[] tileArray = scratch.Tile(Mr * Nr);
        OutputPixel pixel = OutputPixel.At(firstRow, g);
        fixed (nint* pointers = pointerArray)
        fixed (byte* pad = padArray)
        fixed (int* tile = tileArray)
        {
            for (int m0 = firstRow; m0 < endRow; m0 += Mr)
            {
                int rows = Math.Min(Mr, endRow - m0);
                if (rowRuns)
                {
                    BuildRunPointers(plan.Source.Input, g, ref pixel, rows, (byte**)pointers);
                }
                else
                {
                    BuildIndirection(plan.Source.Input, g, group, ref pixel, rows, pad, (byte**)pointers);
                }

                for (int panel = firstPanel; panel < endPanel; panel++)
                {
                    sbyte* panelWeights = plan.Quads + weights.PanelOffset(group, panel);
                    if (plan.Config.Generated)
                    {
                        GemmAvx512VnniGenerated.Kernel6x16Indirect((byte**)pointers, segments, segmentLength, panelWeights, tile);
                    }
                    else
                    {
                        GemmAvxVnni.Kernel6x16Indirect((byte**)pointers, segments, segmentLength, panelWeights, tile);
                    }

                    int columns = Math.Min(Nr, outPerGroup - (panel * Nr));
                    int channel = (group * outPerGroup) + (panel * Nr);
                    byte* output = plan.BytesOut + ((nint)m0 * plan.Ldc) + channel;
                    if (plan.Requantize)
                    {
                        RequantizeVector.Tile256(tile, Nr, rows, columns, plan.Compensation + channel, channel, plan.View, output, plan.Ldc);
                        continue;
                    }

                    for (int r = 0; r < rows; r++)
                    {
                        int* t = tile + (r * Nr);
                        Compensate(t, columns, plan.Compensation + channel, plan.WeightZeroPoints + channel, 0, withZeroPoints: false);
                        Unsafe.CopyBlockUnaligned(plan.AccumulatorsOut + ((nint)(m0 + r) * plan.Ldc) + channel, t, (uint)columns * sizeof(int));
                    }
                }
            }
        }
    }

    /// <summary>
    /// Pointers <c>[tap][6]</c> for the next <paramref name="rows"/> output pixels from <paramref name="pixel"/>
    /// (advanced past them) of one group: tap (kh, kw) of pixel (n, oh, ow) points at input (n, ih, iw)
    /// channel group·Cg, or at <paramref name="pad"/> (Cg zero points) outside the input. Rows past
    /// <paramref name="rows"/> repeat the last valid row.
    /// </summary>
    private static void BuildIndirection(byte* input, in Conv2dGeometry g, int group, ref OutputPixel pixel, int rows, byte* pad, byte** pointers)
    {
        const int Mr = GemmAvxVnni.MR;
        int channels = g.InChannels;
        int inHeight = g.InHeight, inWidth = g.InWidth;
        int kernelHeight = g.KernelHeight, kernelWidth = g.KernelWidth;
        byte* groupInput = input + (group * pixel.InPerGroup);
        int lastTapRow = (kernelHeight - 1) * g.DilationHeight, lastTapColumn = (kernelWidth - 1) * g.DilationWidth;
        nint tapRowStride = (nint)g.DilationHeight * inWidth * channels, tapColumnStride = (nint)g.DilationWidth * channels;
        for (int r = 0; r < rows; r++, pixel.Next())
        {
            int n = pixel.N, oh = pixel.Oh, ow = pixel.Ow;
            int firstColumn = (ow * g.StrideWidth) - g.PadWidth;
            int firstRow = (oh * g.StrideHeight) - g.PadHeight;
            byte** tap = pointers + r;
            if (firstRow >= 0 && firstRow + lastTapRow < inHeight && firstColumn >= 0 && firstColumn + lastTapColumn < inWidth)
            {
                // Every tap inside the input (all but the border pixels): fixed offsets from the first tap, no tests.
                byte* origin = groupInput + ((((((nint)n * inHeight) + firstRow) * inWidth) + firstColumn) * channels);
                for (int kh = 0; kh < kernelHeight; kh++, origin += tapRowStride)
                {
                    byte* position = origin;
                    for (int kw = 0; kw < kernelWidth; kw++, tap += Mr, position += tapColumnStride)
                    {
                        *tap = position;
                    }
                }

                continue;
            }

            for (int kh = 0; kh < kernelHeight; kh++)
            {
                int ih = (oh * g.StrideHeight) - g.PadHeight + (kh * g.DilationHeight);
                bool rowInside = (uint)ih < (uint)inHeight;
                byte* inputRow = groupInput + ((((nint)n * inHeight) + ih) * inWidth * channels);
                for (int kw = 0; kw < kernelWidth; kw++, tap += Mr)
                {
                    int iw = firstColumn + (kw * g.DilationWidth);
                    *tap = rowInside && (uint)iw < (uint)inWidth ? inputRow + ((nint)iw * channels) : pad;
                }
            }
        }

        int segments = kernelHeight * kernelWidth;
        for (int r = rows; r < Mr; r++)
        {
            for (int s = 0; s < segments; s++)
            {
                pointers[(s * Mr) + r] = pointers[(s * Mr) + rows - 1];
            }
        }
    }

    /// <summary>
    /// Pointers <c>[kh][6]</c> for the next <paramref name="rows"/> output pixels from <paramref name="pixel"/>
    /// (advanced past them) on the padded copy (<see cref="Conv2dKernel.PadInput"/>): kernel row kh of pixel
    /// (n, oh, ow) starts at padded pixel (n, oh·SH + kh·DH, ow·SW). Every run lies inside the copy, so there
    /// are no tests. Rows past <paramref name="rows"/> repeat the last valid row.
    /// </summary>
    private static void BuildRunPointers(byte* padded, in Conv2dGeometry g, ref OutputPixel pixel, int rows, byte** pointers)
    {
        const int Mr = GemmAvxVnni.MR;
        int channels = g.InChannels, kernelHeight = g.KernelHeight;
        int paddedHeight = g.InHeight + (2 * g.PadHeight), paddedWidth = g.InWidth + (2 * g.PadWidth);
        nint kernelRowStride = (nint)g.DilationHeight * paddedWidth * channels;
        for (int r = 0; r < rows; r++, pixel.Next())
        {
            byte* run = padded + ((((((nint)pixel.N * paddedHeight) + (pixel.Oh * g.StrideHeight)) * paddedWidth) + (pixel.Ow * g.StrideWidth)) * channels);
            for (int kh = 0; kh < kernelHeight; kh++, run += kernelRowStride)
            {
                pointers[(kh * Mr) + r] = run;
            }
        }

        for (int r = rows; r < Mr; r++)
        {
            for (int kh = 0; kh < kernelHeight; kh++)
            {
                pointers[(kh * Mr) + r] = pointers[(kh * Mr) + rows - 1];
            }
        }
    }

    /// <summary>The one place a config's micro-kernel is chosen (the driver's tasks and <see cref="MicroKernel.RunTile"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void RunMicroKernel(GemmConfig config, byte* a, nint lda, ushort* wide, int wideStride, int rows, int k, sbyte* quads, short* pairs, int* tile)
    {
        if (config.ScalarEmulation)
        {
            if (config.Layout == PackedLayout.Int8Quads)
            {
                PackedGemmScalar.Int8Quads(a, lda, rows, k, quads, config.MR, config.NR, config.ActivationOffset, tile);
            }
            else
            {
                PackedGemmScalar.Int16Pairs(wide, wideStride, rows, wideStride / 2, pairs, config.MR, config.NR, tile);
            }

            return;
        }

        switch (config.Isa)
        {
            case KernelIsa.AvxVnni when config.Generated:
                // (With .NET 11, AvxVnni.V512 would let a managed 512-bit kernel sit here as the generated one's fallback.)
                GemmAvx512VnniGenerated.Kernel6x16(a, lda, rows, k, quads, tile);
                break;
            case KernelIsa.AvxVnni:
                if (rows == 1)
                {
                    GemmAvxVnni.Kernel1x16(a, k, quads, tile);
                }
                else
                {
                    GemmAvxVnni.Kernel6x16(a, lda, rows, k, quads, tile);
                }

                break;
            case KernelIsa.Avx512BW:
                GemmAvx512BW.Kernel8x32(wide, wideStride, rows, wideStride / 2, pairs, tile);
                break;
            case KernelIsa.Avx2:
                if (rows == 1)
                {
                    GemmAvx2.Kernel1x16(wide, wideStride / 2, pairs, tile);
                }
                else
                {
                    GemmAvx2.Kernel6x16(wide, wideStride, rows, wideStride / 2, pairs, tile);
                }

                break;
            case KernelIsa.NeonDot:
                GemmNeonDot.Kernel4x16(a, lda, rows, k, quads, tile);
                break;
            default:
                throw new InvalidOperationException($"No micro-kernel for {config}.");
        }
    }

    /// <summary>t[j] = t[j] − compensation[j] − zw[j]·rowCorrection, compensation[j] = (zx − offset)·Σw[j] (int32, wrapping: the identity holds modulo 2^32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Compensate(int* t, int columns, int* compensation, int* weightZeroPoints, int rowCorrection, bool withZeroPoints)
    {
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<int> row = Vector256.Create(rowCorrection);
            for (; j + 8 <= columns; j += 8)
            {
                Vector256<int> value = Vector256.Load(t + j) - Vector256.Load(compensation + j);
                if (withZeroPoints)
                {
                    value -= Vector256.Load(weightZeroPoints + j) * row;
                }

                value.Store(t + j);
            }
        }

        for (; j < columns; j++)
        {
            int value = unchecked(t[j] - compensation[j]);
            if (withZeroPoints)
            {
                value = unchecked(value - (weightZeroPoints[j] * rowCorrection));
            }

            t[j] = value;
        }
    }

    private static int RowSum(byte* row, int k)
    {
        int sum = 0;
        for (int i = 0; i < k; i++)
        {
            sum += row[i];
        }

        return sum;
    }

    /// <summary>uint8 → uint16, zero-filled up to <paramref name="stride"/>; reads exactly K bytes.</summary>
    private static void Widen(byte* source, int k, ushort* destination, int stride)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 32 <= k; i += 32)
            {
                (Vector256<ushort> lower, Vector256<ushort> upper) = Vector256.Widen(Vector256.Load(source + i));
                lower.Store(destination + i);
                upper.Store(destination + i + 16);
            }
        }

        for (; i < k; i++)
        {
            destination[i] = source[i];
        }

        for (; i < stride; i++)
        {
            destination[i] = 0;
        }
    }

    /// <summary>
    /// Copies <paramref name="length"/> bytes; short runs (the 7×7 stem's 21-byte rows, a one-channel
    /// input's 3-byte tap rows) with overlapping moves or a byte loop instead of a call to memmove. Reads
    /// and writes only [0, length).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Copy(byte* destination, byte* source, int length)
    {
        if (length >= 16 && length <= 32)
        {
            Vector128<byte> head = Vector128.Load(source);
            Vector128<byte> tail = Vector128.Load(source + length - 16);
            head.Store(destination);
            tail.Store(destination + length - 16);
        }
        else if (length >= 8 && length < 16)
        {
            ulong head = Unsafe.ReadUnaligned<ulong>(source);
            ulong tail = Unsafe.ReadUnaligned<ulong>(source + length - 8);
            Unsafe.WriteUnaligned(destination, head);
            Unsafe.WriteUnaligned(destination + length - 8, tail);
        }
        else if (length >= 4 && length < 8)
        {
            uint head = Unsafe.ReadUnaligned<uint>(source);
            uint tail = Unsafe.ReadUnaligned<uint>(source + length - 4);
            Unsafe.WriteUnaligned(destination, head);
            Unsafe.WriteUnaligned(destination + length - 4, tail);
        }
        else if (length < 4)
        {
            // 1–3 bytes (a 3×3 tap row of a one-channel input): a call to memmove would cost more than the copy.
            for (int i = 0; i < length; i++)
            {
                destination[i] = source[i];
            }
        }
        else
        {
            Unsafe.CopyBlockUnaligned(destination, source, (uint)length);
        }
    }

    /// <summary>
    /// im2col rows for the next <paramref name="rows"/> output pixels from <paramref name="pixel"/> (advanced
    /// past them) of one group: row m = output pixel (n, oh, ow), k = (kh·KW + kw)·Cg + ic, padding
    /// positions = zx, zero-filled past K up to <paramref name="stride"/>.
    /// </summary>
    private static void GatherIm2colRows(byte* input, in Conv2dGeometry g, int group, ref OutputPixel pixel, int rows, int zx, byte* buffer, int stride)
    {
        int channels = g.InChannels, inPerGroup = pixel.InPerGroup;
        int inHeight = g.InHeight, inWidth = g.InWidth;
        int kernelHeight = g.KernelHeight, kernelWidth = g.KernelWidth;
        int dilationWidth = g.DilationWidth;
        int k = kernelHeight * kernelWidth * inPerGroup;
        bool wholePixels = g.Groups == 1 && dilationWidth == 1;
        byte pad = (byte)zx;
        for (int r = 0; r < rows; r++, pixel.Next())
        {
            int n = pixel.N, oh = pixel.Oh, ow = pixel.Ow;

            byte* destination = buffer + ((nint)r * stride);
            int firstColumn = (ow * g.StrideWidth) - g.PadWidth;
            for (int kh = 0; kh < kernelHeight; kh++)
            {
                int ih = (oh * g.StrideHeight) - g.PadHeight + (kh * g.DilationHeight);
                if ((uint)ih >= (uint)inHeight)
                {
                    Unsafe.InitBlockUnaligned(destination, pad, (uint)(kernelWidth * inPerGroup));
                    destination += kernelWidth * inPerGroup;
                    continue;
                }

                byte* inputRow = input + ((((nint)n * inHeight) + ih) * inWidth * channels) + (group * inPerGroup);
                if (wholePixels && firstColumn >= 0 && firstColumn + kernelWidth <= inWidth)
                {
                    // All KW pixels in range and contiguous: one copy of KW·C bytes.
                    Copy(destination, inputRow + ((nint)firstColumn * channels), kernelWidth * channels);
                    destination += kernelWidth * channels;
                    continue;
                }

                for (int kw = 0; kw < kernelWidth; kw++)
                {
                    int iw = firstColumn + (kw * dilationWidth);
                    if ((uint)iw >= (uint)inWidth)
                    {
                        Unsafe.InitBlockUnaligned(destination, pad, (uint)inPerGroup);
                    }
                    else
                    {
                        Copy(destination, inputRow + ((nint)iw * channels), inPerGroup);
                    }

                    destination += inPerGroup;
                }
            }

            for (int i = k; i < stride; i++)
            {
                *destination++ = 0; // at most 3 bytes up to the quad stride
            }
        }
    }
}

/// <summary>
/// The output pixel (n, oh, ow) of GEMM row m, advanced one row at a time, with the sizes the per-tile
/// builders need. Computed once per task: <see cref="Conv2dGeometry"/>'s OutHeight, OutWidth and
/// InChannelsPerGroup are divisions, and the builders used to pay four to six of them per tile, more than
/// a small tile's products cost.
/// </summary>
internal struct OutputPixel
{
    public int N;
    public int Oh;
    public int Ow;
    public int OutHeight;
    public int OutWidth;
    public int InPerGroup;

    public static OutputPixel At(int m, in Conv2dGeometry g)
    {
        int outHeight = g.OutHeight, outWidth = g.OutWidth;
        return new OutputPixel { N = m / outWidth / outHeight, Oh = (m / outWidth) % outHeight, Ow = m % outWidth, OutHeight = outHeight, OutWidth = outWidth, InPerGroup = g.InChannelsPerGroup };
    }

    /// <summary>The next pixel in row-major (n, oh, ow) order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Next()
    {
        if (++Ow == OutWidth)
        {
            Ow = 0;
            if (++Oh == OutHeight)
            {
                Oh = 0;
                N++;
            }
        }
    }
}

/// <summary>Everything a GEMM task needs; pointers are pinned by the caller for the whole call.</summary>
internal unsafe struct GemmPlan
{
    public PackedGemmWeights Weights;
    public GemmConfig Config;
    public RowSource Source;
    public int M;
    public int Zx;
    public int Ldc;
    public int* AccumulatorsOut;
    public byte* BytesOut;
    public bool Requantize;
    public RequantizeView View;
    public sbyte* Quads;
    public short* Pairs;
    public int* ColumnSums;
    public int* Compensation;
    public bool Indirect;
    public int* WeightZeroPoints;
    public int PanelChunk;
    public int PanelChunks;
    public int RowTilesPerTask;
    public int RowChunks;
}

/// <summary>The reusable work item of one caller's GEMM regions (one per <see cref="KernelScratch"/>, so a call allocates nothing).</summary>
internal sealed class GemmJob : IParallelWork
{
    public GemmPlan Plan;

    public void Run(int task, int worker, KernelScratch scratch) => GemmDriver.RunTask(Plan, task, scratch);

    public void Reserve(KernelScratch scratch) => GemmDriver.Reserve(Plan, scratch);
}
