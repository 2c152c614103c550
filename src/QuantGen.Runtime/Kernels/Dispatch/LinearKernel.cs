using System;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Kernels;

/// <summary>int8 fully-connected layer as a GEMM over <c>[batch, in]</c> rows with prepacked <c>[out][in]</c> weights; equals <see cref="LinearScalar"/> bit for bit.</summary>
public static unsafe class LinearKernel
{
    /// <summary>Packs PyTorch-layout <c>[out][in]</c> weights for <paramref name="config"/> (default: the dispatcher's).</summary>
    /// <param name="weights">int8 <c>[outFeatures][inFeatures]</c>.</param>
    /// <param name="weightZeroPoints">zw per output feature.</param>
    /// <param name="outFeatures">Out.</param>
    /// <param name="inFeatures">In.</param>
    /// <param name="config">Kernel; null → <see cref="KernelDispatch.Config"/>.</param>
    public static PackedGemmWeights Pack(ReadOnlySpan<sbyte> weights, ReadOnlySpan<int> weightZeroPoints, int outFeatures, int inFeatures, GemmConfig? config = null) =>
        PackedGemmWeights.Pack(config ?? KernelDispatch.Config, weights, weightZeroPoints, 1, outFeatures, inFeatures);

    /// <summary>int32 accumulators <c>[batch][out]</c>, as <see cref="LinearScalar.Accumulate"/>.</summary>
    /// <param name="batch">Rows.</param>
    /// <param name="input">uint8 <c>[batch][in]</c>.</param>
    /// <param name="inputZeroPoint">zx, 0..255.</param>
    /// <param name="weights">Packed weights (one group).</param>
    /// <param name="accumulators">int32 <c>[batch][out]</c>.</param>
    /// <param name="scratch">Reusable working memory.</param>
    public static void Accumulate(int batch, ReadOnlySpan<byte> input, int inputZeroPoint, PackedGemmWeights weights, Span<int> accumulators, KernelScratch scratch)
    {
        Validate(batch, input, inputZeroPoint, weights, accumulators.Length, scratch);
        if (weights.Config.Layout == PackedLayout.Reference)
        {
            LinearScalar.Accumulate(batch, weights.K, weights.OutChannels, input, inputZeroPoint, weights.ReferenceRows, weights.WeightZeroPoints, accumulators);
            return;
        }

        if (batch == 0)
        {
            return;
        }

        fixed (byte* source = input)
        fixed (int* output = accumulators)
        {
            GemmDriver.Run(weights, RowSource.Rows(source, weights.K), batch, inputZeroPoint, output, null, null, weights.OutChannels, scratch);
        }
    }

    /// <summary>Linear + requantization to uint8 <c>[batch][out]</c>.</summary>
    /// <param name="batch">Rows.</param>
    /// <param name="input">uint8 <c>[batch][in]</c>.</param>
    /// <param name="inputZeroPoint">zx, 0..255.</param>
    /// <param name="weights">Packed weights.</param>
    /// <param name="requantize">Per-feature factors.</param>
    /// <param name="output">uint8 <c>[batch][out]</c>.</param>
    /// <param name="scratch">Reusable working memory.</param>
    public static void Run(int batch, ReadOnlySpan<byte> input, int inputZeroPoint, PackedGemmWeights weights, RequantizeParams requantize, Span<byte> output, KernelScratch scratch)
    {
        ArgumentNullException.ThrowIfNull(requantize);
        Validate(batch, input, inputZeroPoint, weights, output.Length, scratch);
        if (requantize.Channels != weights.OutChannels)
        {
            throw new ArgumentException($"Linear: requantization has {requantize.Channels} channels, the weights {weights.OutChannels}.", nameof(requantize));
        }

        if (weights.Config.Layout == PackedLayout.Reference)
        {
            Span<int> accumulators = scratch.Accumulators(output.Length).AsSpan(0, output.Length);
            LinearScalar.Accumulate(batch, weights.K, weights.OutChannels, input, inputZeroPoint, weights.ReferenceRows, weights.WeightZeroPoints, accumulators);
            Requantize.RequantizeInt32ToUInt8(accumulators, requantize, output);
            return;
        }

        if (batch == 0)
        {
            return;
        }

        fixed (byte* source = input)
        fixed (byte* destination = output)
        {
            GemmDriver.Run(weights, RowSource.Rows(source, weights.K), batch, inputZeroPoint, null, destination, requantize, weights.OutChannels, scratch);
        }
    }

    private static void Validate(int batch, ReadOnlySpan<byte> input, int zx, PackedGemmWeights weights, int outputLength, KernelScratch scratch)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(scratch);
        weights.Config.EnsureSupported();
        if (weights.Groups != 1)
        {
            throw new ArgumentException($"Linear: weights packed with {weights.Groups} groups; a linear layer has one.", nameof(weights));
        }

        if (batch < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(batch), batch, "Linear: batch must be non-negative.");
        }

        KernelArguments.InputZeroPoint("Linear", zx);

        if (input.Length != (long)batch * weights.K)
        {
            throw new ArgumentException($"Linear: input has {input.Length} elements, expected {(long)batch * weights.K} ({batch}x{weights.K}).", nameof(input));
        }

        if (outputLength != (long)batch * weights.OutChannels)
        {
            throw new ArgumentException($"Linear: output has {outputLength} elements, expected {(long)batch * weights.OutChannels} ({batch}x{weights.OutChannels}).");
        }
    }
}
