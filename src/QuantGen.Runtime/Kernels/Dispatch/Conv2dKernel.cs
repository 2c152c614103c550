using System;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Kernels;

/// <summary>
/// int8 convolution on NHWC through the packed kernels: 1×1 stride-1 unpadded ungrouped convolutions
/// as a direct GEMM over <c>[N·H·W, C]</c>; depthwise (groups == in == out channels) by its own kernel;
/// inputs with few channels on AVX-VNNI (a one-channel image, the 7×7/2 C=3 stem) as runs of whole kernel
/// rows read from a zero-point-padded copy (<see cref="PackedConv2dWeights.RowRuns"/>); everything else
/// (k×k, any stride, padding, dilation, groups) as a GEMM over im2col rows, read through per-tap pointers
/// or gathered one tile at a time into <see cref="KernelScratch"/>. The weights' config picks
/// the micro-kernel; <see cref="GemmConfig.Scalar"/> runs <see cref="Conv2dScalar"/>. Results equal the
/// scalar reference bit for bit.
/// </summary>
public static unsafe class Conv2dKernel
{
    /// <summary>int32 accumulators <c>Σ (qx − zx)(qw − zw)</c>, as <see cref="Conv2dScalar.Accumulate"/>.</summary>
    /// <param name="geometry">Shapes (validated; must match the packed weights).</param>
    /// <param name="inputNhwc">uint8 input <c>[N][H][W][C]</c>.</param>
    /// <param name="inputZeroPoint">zx, 0..255 (qint8 activations arrive as uint8 with zx + 128).</param>
    /// <param name="weights">Prepacked weights.</param>
    /// <param name="accumulatorsNhwc">int32 output <c>[N][OH][OW][OutC]</c>.</param>
    /// <param name="scratch">Reusable working memory.</param>
    public static void Accumulate(in Conv2dGeometry geometry, ReadOnlySpan<byte> inputNhwc, int inputZeroPoint, PackedConv2dWeights weights, Span<int> accumulatorsNhwc, KernelScratch scratch)
    {
        Validate(geometry, inputNhwc, inputZeroPoint, weights, accumulatorsNhwc.Length, scratch);
        if (weights.Config.Layout == PackedLayout.Reference)
        {
            Conv2dScalar.Accumulate(geometry, inputNhwc, inputZeroPoint, weights.Gemm.ReferenceRows, weights.Gemm.WeightZeroPoints, accumulatorsNhwc);
            return;
        }

        fixed (byte* input = inputNhwc)
        fixed (int* output = accumulatorsNhwc)
        {
            Dispatch(geometry, input, inputZeroPoint, weights, output, null, null, scratch);
        }
    }

    /// <summary>Convolution + requantization (bias, ReLU, output zero point per <paramref name="requantize"/>) to uint8 NHWC.</summary>
    /// <param name="geometry">Shapes (validated; must match the packed weights).</param>
    /// <param name="inputNhwc">uint8 input <c>[N][H][W][C]</c>.</param>
    /// <param name="inputZeroPoint">zx, 0..255.</param>
    /// <param name="weights">Prepacked weights.</param>
    /// <param name="requantize">Per-channel factors (one per output channel).</param>
    /// <param name="outputNhwc">uint8 output <c>[N][OH][OW][OutC]</c>.</param>
    /// <param name="scratch">Reusable working memory.</param>
    public static void Run(in Conv2dGeometry geometry, ReadOnlySpan<byte> inputNhwc, int inputZeroPoint, PackedConv2dWeights weights, RequantizeParams requantize, Span<byte> outputNhwc, KernelScratch scratch)
    {
        ArgumentNullException.ThrowIfNull(requantize);
        Validate(geometry, inputNhwc, inputZeroPoint, weights, outputNhwc.Length, scratch);
        if (requantize.Channels != weights.OutChannels)
        {
            throw new ArgumentException($"Conv2d: requantization has {requantize.Channels} channels, the weights {weights.OutChannels}.", nameof(requantize));
        }

        if (weights.Config.Layout == PackedLayout.Reference)
        {
            Span<int> accumulators = scratch.Accumulators(outputNhwc.Length).AsSpan(0, outputNhwc.Length);
            Conv2dScalar.Accumulate(geometry, inputNhwc, inputZeroPoint, weights.Gemm.ReferenceRows, weights.Gemm.WeightZeroPoints, accumulators);
            Requantize.RequantizeInt32ToUInt8(accumulators, requantize, outputNhwc);
            return;
        }

        fixed (byte* input = inputNhwc)
        fixed (byte* output = outputNhwc)
        {
            Dispatch(geometry, input, inputZeroPoint, weights, null, output, requantize, scratch);
        }
    }

    /// <summary>True when this geometry runs as a direct GEMM on the NHWC input (no gathering).</summary>
    public static bool IsDirectGemm(in Conv2dGeometry geometry) =>
        geometry.KernelHeight == 1 && geometry.KernelWidth == 1 && geometry.StrideHeight == 1 && geometry.StrideWidth == 1 &&
        geometry.PadHeight == 0 && geometry.PadWidth == 0 && geometry.Groups == 1;

    private static void Dispatch(in Conv2dGeometry geometry, byte* input, int zx, PackedConv2dWeights weights, int* accumulators, byte* bytes, RequantizeParams? requantize, KernelScratch scratch)
    {
        if (weights.IsDepthwise)
        {
            DepthwiseConv.Run(geometry, input, zx, weights, accumulators, bytes, requantize, scratch);
            return;
        }

        int m = geometry.Batch * geometry.OutHeight * geometry.OutWidth;
        if (weights.RowRuns is not null && geometry.DilationWidth == 1 && !IsDirectGemm(geometry))
        {
            int runLength = weights.RowRunLength;
            byte[] padded = scratch.PaddedInput(PaddedInputLength(geometry, runLength));
            fixed (byte* copy = padded)
            {
                PadInput(geometry, input, zx, copy, runLength);
                GemmDriver.Run(weights.RowRuns, RowSource.RowRuns(copy, geometry, runLength), m, zx, accumulators, bytes, requantize, geometry.OutChannels, scratch);
            }

            return;
        }

        RowSource source = IsDirectGemm(geometry) ? RowSource.Rows(input, geometry.InChannels) : RowSource.Im2col(input, geometry);
        GemmDriver.Run(weights.Gemm, source, m, zx, accumulators, bytes, requantize, geometry.OutChannels, scratch);
    }

    private static int PaddedInputLength(in Conv2dGeometry g, int runLength) =>
        checked((g.Batch * (g.InHeight + (2 * g.PadHeight)) * (g.InWidth + (2 * g.PadWidth)) * g.InChannels) + runLength);

    /// <summary>
    /// The NHWC input with PadH/PadW pixels of zero points around each image, followed by
    /// <paramref name="runLength"/> bytes of zero points: a run that starts at the last pixel a
    /// convolution reads may read up to 3 bytes past it (they meet zero weights, but must be memory).
    /// </summary>
    internal static void PadInput(in Conv2dGeometry g, byte* input, int zx, byte* padded, int runLength)
    {
        int channels = g.InChannels;
        int paddedHeight = g.InHeight + (2 * g.PadHeight), paddedWidth = g.InWidth + (2 * g.PadWidth);
        int rowBytes = paddedWidth * channels, border = g.PadWidth * channels, inputRowBytes = g.InWidth * channels;
        byte pad = (byte)zx;
        byte* destination = padded;
        for (int n = 0; n < g.Batch; n++)
        {
            for (int y = 0; y < paddedHeight; y++, destination += rowBytes)
            {
                int iy = y - g.PadHeight;
                if ((uint)iy >= (uint)g.InHeight)
                {
                    new Span<byte>(destination, rowBytes).Fill(pad);
                    continue;
                }

                new Span<byte>(destination, border).Fill(pad);
                new ReadOnlySpan<byte>(input + ((((nint)n * g.InHeight) + iy) * inputRowBytes), inputRowBytes).CopyTo(new Span<byte>(destination + border, inputRowBytes));
                new Span<byte>(destination + border + inputRowBytes, border).Fill(pad);
            }
        }

        new Span<byte>(destination, runLength).Fill(pad);
    }

    private static void Validate(in Conv2dGeometry geometry, ReadOnlySpan<byte> input, int zx, PackedConv2dWeights weights, int outputLength, KernelScratch scratch)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(scratch);
        geometry.Validate();
        weights.Config.EnsureSupported();
        if (geometry.InChannels != weights.InChannels || geometry.OutChannels != weights.OutChannels || geometry.KernelHeight != weights.KernelHeight ||
            geometry.KernelWidth != weights.KernelWidth || geometry.Groups != weights.Groups)
        {
            throw new ArgumentException($"Conv2d: geometry {geometry} does not match the packed weights ({weights.OutChannels} out, {weights.InChannels} in, {weights.KernelHeight}x{weights.KernelWidth}, groups {weights.Groups}).");
        }

        KernelArguments.InputZeroPoint("Conv2d", zx);
        KernelArguments.NhwcLength("Conv2d", "input", input.Length, geometry.Batch, geometry.InHeight, geometry.InWidth, geometry.InChannels);
        KernelArguments.NhwcLength("Conv2d", "output", outputLength, geometry.Batch, geometry.OutHeight, geometry.OutWidth, geometry.OutChannels);
    }
}
