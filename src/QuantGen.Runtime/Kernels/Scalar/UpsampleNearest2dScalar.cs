using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference nearest-neighbour upsampling (PyTorch's <c>mode='nearest'</c>, not
/// <c>'nearest-exact'</c>): output index <c>d</c> reads input index
/// <c>min((long)floorf((float)d * scale), in - 1)</c>, where the float32 <c>scale</c> is
/// <c>(float)(1.0 / scale_factor)</c> (the reciprocal in double) when a scale factor was given and
/// <c>(float)in / (float)out</c> otherwise — ATen's <c>compute_scales_value</c> and
/// <c>nearest_neighbor_compute_source_index</c>. Values are copied, so the qparams pass through and
/// the dtype does not matter. Like PyTorch, an output of the input's size is a plain copy even when a
/// scale factor other than 1 produced it (e.g. 3 × 1.2 → 3), where the index rule would repeat rows.
/// </summary>
public static class UpsampleNearest2dScalar
{
    /// <summary>The float32 source-per-destination scale ATen uses for one dimension.</summary>
    /// <param name="inputSize">Input size of the dimension.</param>
    /// <param name="outputSize">Output size of the dimension.</param>
    /// <param name="scaleFactor">The user's scale factor for the dimension, or null when an output size was given.</param>
    public static float SourceScale(int inputSize, int outputSize, double? scaleFactor) =>
        scaleFactor is double factor && factor > 0
            ? (float)(1.0 / factor)
            : (float)inputSize / outputSize;

    /// <summary>The output size PyTorch computes from a scale factor: <c>floor(in * scale)</c> in double.</summary>
    public static int OutputSize(int inputSize, double scaleFactor) => (int)Math.Floor(inputSize * scaleFactor);

    /// <summary>Input index read by output index <paramref name="outputIndex"/>: <c>min(floorf(d * scale), in - 1)</c>.</summary>
    public static int SourceIndex(int outputIndex, float scale, int inputSize)
    {
        float position = (float)outputIndex * scale;
        long index = (long)MathF.Floor(position);
        return (int)Math.Min(index, inputSize - 1);
    }

    /// <summary>Copies every output element from its source.</summary>
    /// <param name="batch">N.</param>
    /// <param name="channels">C.</param>
    /// <param name="inHeight">H.</param>
    /// <param name="inWidth">W.</param>
    /// <param name="outHeight">OH.</param>
    /// <param name="outWidth">OW.</param>
    /// <param name="heightScale">Float32 source scale for rows (<see cref="SourceScale"/>).</param>
    /// <param name="widthScale">Float32 source scale for columns.</param>
    /// <param name="inputNhwc">Input bytes, [N][H][W][C].</param>
    /// <param name="outputNhwc">Output bytes, [N][OH][OW][C].</param>
    public static void Apply(
        int batch, int channels, int inHeight, int inWidth, int outHeight, int outWidth,
        float heightScale, float widthScale, ReadOnlySpan<byte> inputNhwc, Span<byte> outputNhwc)
    {
        if (batch < 0 || channels < 1 || inHeight < 1 || inWidth < 1 || outHeight < 1 || outWidth < 1)
        {
            throw new ArgumentException($"UpsampleNearest2d: the batch must be non-negative and every other size positive (N={batch}, C={channels}, {inHeight}x{inWidth} -> {outHeight}x{outWidth}).");
        }

        if (!(heightScale >= 0f) || !(widthScale >= 0f) || !float.IsFinite(heightScale) || !float.IsFinite(widthScale))
        {
            throw new ArgumentException($"UpsampleNearest2d: the source scales must be finite and non-negative, got {heightScale} and {widthScale}.");
        }

        if (inputNhwc.Length != (long)batch * inHeight * inWidth * channels || outputNhwc.Length != (long)batch * outHeight * outWidth * channels)
        {
            throw new ArgumentException($"UpsampleNearest2d: input has {inputNhwc.Length} elements (NHWC {batch}x{inHeight}x{inWidth}x{channels}) and output {outputNhwc.Length} (NHWC {batch}x{outHeight}x{outWidth}x{channels}).");
        }

        if (inHeight == outHeight && inWidth == outWidth)
        {
            inputNhwc.CopyTo(outputNhwc);
            return;
        }

        for (int n = 0; n < batch; n++)
        {
            for (int oh = 0; oh < outHeight; oh++)
            {
                int ih = SourceIndex(oh, heightScale, inHeight);
                for (int ow = 0; ow < outWidth; ow++)
                {
                    int iw = SourceIndex(ow, widthScale, inWidth);
                    ReadOnlySpan<byte> source = inputNhwc.Slice(((((n * inHeight) + ih) * inWidth) + iw) * channels, channels);
                    source.CopyTo(outputNhwc.Slice((((n * outHeight) + oh) * outWidth + ow) * channels, channels));
                }
            }
        }
    }
}
