using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using QuantGen.Kernels.Arm;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.X86;

namespace QuantGen.Kernels;

/// <summary>Where the GEMM's activation rows come from.</summary>
internal readonly unsafe struct RowSource
{
    private RowSource(byte* input, int lda, bool direct, Conv2dGeometry geometry)
    {
        Input = input;
        Lda = lda;
        Direct = direct;
        Geometry = geometry;
    }

    /// <summary>Input base.</summary>
    public byte* Input { get; }

    /// <summary>Row stride of a direct source.</summary>
    public int Lda { get; }

    /// <summary>True when row m is simply <c>Input + m·Lda</c> (linear, 1×1 stride-1 convolution).</summary>
    public bool Direct { get; }

    /// <summary>The convolution whose im2col rows are gathered (when not direct).</summary>
    public Conv2dGeometry Geometry { get; }

    public static RowSource Rows(byte* input, int lda) => new(input, lda, true, default);

    public static RowSource Im2col(byte* input, in Conv2dGeometry geometry) => new(input, 0, false, geometry);
}

/// <summary>
/// Drives a config's micro-kernel over a (grouped) GEMM: for each group and block of weight panels that
/// fits in L2, each tile of MR rows is gathered once (im2col with the input zero point at padding
/// positions, so the compensation stays exact; widened to uint16 for the vpmaddwd kernels), then every
/// panel of the block runs the micro-kernel into an int32 tile and the epilogue applies
/// <c>acc = tile − (zx − offset)·Σw − zw·(Σx − K·zx)</c> (int32, wrapping) and writes int32 or requantized uint8.
/// </summary>
internal static unsafe class GemmDriver
{
    /// <summary>Packed weights per L2 block (bytes); half of Zen 5's 1 MiB L2, leaving room for rows and outputs.</summary>
    private const int PanelBlockBytes = 512 * 1024;

    public static void Run(PackedGemmWeights weights, in RowSource source, int m, int zx, int* accumulatorsOut, byte* bytesOut, RequantizeParams? requantize, int ldc, KernelScratch scratch)
    {
        GemmConfig config = weights.Config;
        int mr = config.MR, nr = config.NR;
        int k = weights.K;
        int kQuadStride = PackedGemmWeights.RoundUp(k, 4);
        int kPairStride = PackedGemmWeights.RoundUp(k, 2);
        int panelLength = weights.PanelLength;
        int elementBytes = config.Layout == PackedLayout.Int16Pairs ? 2 : 1;
        int panelsPerBlock = Math.Max(1, PanelBlockBytes / (panelLength * elementBytes));
        int outPerGroup = weights.OutPerGroup;
        bool needRowSums = weights.HasWeightZeroPoints;
        int offset = config.ActivationOffset;
        int vectorBits = config.VectorBits;

        byte[] rowArray = scratch.Rows(mr * kQuadStride);
        ushort[] wideArray = config.WidenedActivations ? scratch.WideRows(mr * kPairStride) : [];
        int[] tileArray = scratch.Tile(mr * nr);
        int[] rowSumArray = scratch.RowSums(mr);
        RequantizeParams? rq = requantize;

        fixed (byte* rowBuffer = rowArray)
        fixed (ushort* wideBuffer = wideArray)
        fixed (int* tile = tileArray)
        fixed (int* rowSums = rowSumArray)
        fixed (sbyte* quads = weights.QuadArray)
        fixed (short* pairs = weights.PairArray)
        fixed (int* columnSums = weights.ColumnSumArray)
        fixed (int* weightZeroPoints = weights.WeightZeroPointArray)
        fixed (float* biasTerms = rq is null ? default : rq.BiasTerms)
        fixed (float* multipliers = rq is null ? default : rq.Multipliers)
        fixed (int* quantizedBias = rq is null ? default : rq.QuantizedBias)
        {
            RequantizeView view = rq is null ? default : new RequantizeView(rq, biasTerms, multipliers, quantizedBias);
            for (int group = 0; group < weights.Groups; group++)
            {
                for (int firstPanel = 0; firstPanel < weights.PanelsPerGroup; firstPanel += panelsPerBlock)
                {
                    int endPanel = Math.Min(weights.PanelsPerGroup, firstPanel + panelsPerBlock);
                    for (int m0 = 0; m0 < m; m0 += mr)
                    {
                        int rows = Math.Min(mr, m - m0);
                        byte* a;
                        nint lda;
                        if (source.Direct)
                        {
                            a = source.Input + ((nint)m0 * source.Lda);
                            lda = source.Lda;
                        }
                        else
                        {
                            GatherIm2colRows(source.Input, source.Geometry, group, m0, rows, zx, rowBuffer, kQuadStride);
                            a = rowBuffer;
                            lda = kQuadStride;
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
                            RunMicroKernel(config, a, lda, wideBuffer, kPairStride, rows, k, quads + panelOffset, pairs + panelOffset, tile);
                            int columns = Math.Min(nr, outPerGroup - (panel * nr));
                            int channel = (group * outPerGroup) + (panel * nr);
                            for (int r = 0; r < rows; r++)
                            {
                                int* t = tile + (r * nr);
                                int rowCorrection = needRowSums ? unchecked(rowSums[r] - (k * zx)) : 0;
                                Compensate(t, columns, columnSums + channel, weightZeroPoints + channel, zx - offset, rowCorrection, needRowSums);
                                nint outputIndex = ((nint)(m0 + r) * ldc) + channel;
                                if (rq is null)
                                {
                                    Unsafe.CopyBlockUnaligned(accumulatorsOut + outputIndex, t, (uint)columns * sizeof(int));
                                }
                                else
                                {
                                    RequantizeVector.Row(t, columns, channel, view, bytesOut + outputIndex, vectorBits);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RunMicroKernel(GemmConfig config, byte* a, nint lda, ushort* wide, int wideStride, int rows, int k, sbyte* quads, short* pairs, int* tile)
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
            case KernelIsa.AvxVnni:
                GemmAvxVnni.Kernel6x16(a, lda, rows, k, quads, tile);
                break;
            case KernelIsa.Avx512BW:
                GemmAvx512BW.Kernel8x32(wide, wideStride, rows, wideStride / 2, pairs, tile);
                break;
            case KernelIsa.Avx2:
                GemmAvx2.Kernel6x16(wide, wideStride, rows, wideStride / 2, pairs, tile);
                break;
            case KernelIsa.NeonDot:
                GemmNeonDot.Kernel4x16(a, lda, rows, k, quads, tile);
                break;
            default:
                throw new InvalidOperationException($"No micro-kernel for {config}.");
        }
    }

    /// <summary>t[j] = t[j] − inputTerm·Σw[j] − zw[j]·rowCorrection (int32, wrapping: the identity holds modulo 2^32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Compensate(int* t, int columns, int* columnSums, int* weightZeroPoints, int inputTerm, int rowCorrection, bool withZeroPoints)
    {
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<int> input = Vector256.Create(inputTerm);
            Vector256<int> row = Vector256.Create(rowCorrection);
            for (; j + 8 <= columns; j += 8)
            {
                Vector256<int> value = Vector256.Load(t + j) - (input * Vector256.Load(columnSums + j));
                if (withZeroPoints)
                {
                    value -= Vector256.Load(weightZeroPoints + j) * row;
                }

                value.Store(t + j);
            }
        }

        for (; j < columns; j++)
        {
            int value = unchecked(t[j] - (inputTerm * columnSums[j]));
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
    /// im2col rows m0..m0+rows of one group: row m = output pixel (n, oh, ow), k = (kh·KW + kw)·Cg + ic,
    /// padding positions = zx, zero-filled past K up to <paramref name="stride"/>.
    /// </summary>
    private static void GatherIm2colRows(byte* input, in Conv2dGeometry g, int group, int m0, int rows, int zx, byte* buffer, int stride)
    {
        int channels = g.InChannels, inPerGroup = g.InChannelsPerGroup;
        int inHeight = g.InHeight, inWidth = g.InWidth, outHeight = g.OutHeight, outWidth = g.OutWidth;
        int kernelHeight = g.KernelHeight, kernelWidth = g.KernelWidth;
        int dilationWidth = g.DilationWidth;
        int k = kernelHeight * kernelWidth * inPerGroup;
        bool wholePixels = g.Groups == 1 && dilationWidth == 1;
        byte pad = (byte)zx;
        for (int r = 0; r < rows; r++)
        {
            int pixel = m0 + r;
            int ow = pixel % outWidth;
            int rest = pixel / outWidth;
            int oh = rest % outHeight;
            int n = rest / outHeight;
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
                    Unsafe.CopyBlockUnaligned(destination, inputRow + ((nint)firstColumn * channels), (uint)(kernelWidth * channels));
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
                        Unsafe.CopyBlockUnaligned(destination, inputRow + ((nint)iw * channels), (uint)inPerGroup);
                    }

                    destination += inPerGroup;
                }
            }

            if (stride > k)
            {
                Unsafe.InitBlockUnaligned(destination, 0, (uint)(stride - k));
            }
        }
    }
}
