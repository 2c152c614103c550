using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference quantized adaptive average pool — PyTorch's channels-last kernel
/// (<c>qadaptive_avg_pool2d_nhwc</c>), in the <see cref="UInt8View"/>. Output cell <c>(i, j)</c>
/// averages input rows <c>[floor(i·H/OH), ceil((i+1)·H/OH))</c> and columns likewise (both quotients
/// taken in float32, as PyTorch does), then
/// <code>
/// acc        = Σ (q - zx)                       int32, exact
/// multiplier = sx / sy / (float)size            float32, left to right
/// q          = clamp(zy + round_half_even((float)acc * (1f / (1f / multiplier))), 0, 255)
/// </code>
/// — the same rounding as <see cref="AvgPool2dScalar"/>.
/// </summary>
public static class AdaptiveAvgPool2dScalar
{
    /// <summary>First input index of output cell <paramref name="outputIndex"/>: <c>(int)floor((float)(i·in) / out)</c>.</summary>
    public static int StartIndex(int outputIndex, int outputSize, int inputSize) =>
        (int)MathF.Floor((float)((long)outputIndex * inputSize) / outputSize);

    /// <summary>One past the last input index: <c>(int)ceil((float)((i+1)·in) / out)</c>.</summary>
    public static int EndIndex(int outputIndex, int outputSize, int inputSize) =>
        (int)MathF.Ceiling((float)((long)(outputIndex + 1) * inputSize) / outputSize);

    /// <summary>Pools every output cell.</summary>
    /// <param name="batch">N.</param>
    /// <param name="channels">C.</param>
    /// <param name="inHeight">H.</param>
    /// <param name="inWidth">W.</param>
    /// <param name="outHeight">OH.</param>
    /// <param name="outWidth">OW.</param>
    /// <param name="inputNhwc">Input in the view, [N][H][W][C].</param>
    /// <param name="inputScale">sx.</param>
    /// <param name="inputZeroPoint">zx in the view.</param>
    /// <param name="outputNhwc">Output in the view, [N][OH][OW][C].</param>
    /// <param name="outputScale">sy.</param>
    /// <param name="outputZeroPoint">zy in the view.</param>
    public static void Apply(
        int batch, int channels, int inHeight, int inWidth, int outHeight, int outWidth,
        ReadOnlySpan<byte> inputNhwc, float inputScale, int inputZeroPoint,
        Span<byte> outputNhwc, float outputScale, int outputZeroPoint)
    {
        if (batch < 0 || channels < 1 || inHeight < 1 || inWidth < 1 || outHeight < 1 || outWidth < 1)
        {
            throw new ArgumentException($"AdaptiveAvgPool2d: the batch must be non-negative and every other size positive (N={batch}, C={channels}, {inHeight}x{inWidth} -> {outHeight}x{outWidth}).");
        }

        if (inputNhwc.Length != (long)batch * inHeight * inWidth * channels || outputNhwc.Length != (long)batch * outHeight * outWidth * channels)
        {
            throw new ArgumentException($"AdaptiveAvgPool2d: input has {inputNhwc.Length} elements (NHWC {batch}x{inHeight}x{inWidth}x{channels}) and output {outputNhwc.Length} (NHWC {batch}x{outHeight}x{outWidth}x{channels}).");
        }

        QuantizeScalar.ValidateScale(inputScale, "AdaptiveAvgPool2d input");
        QuantizeScalar.ValidateScale(outputScale, "AdaptiveAvgPool2d output");
        QuantizeScalar.ValidateZeroPoint(inputZeroPoint, QuantDType.QUInt8, "AdaptiveAvgPool2d input");
        QuantizeScalar.ValidateZeroPoint(outputZeroPoint, QuantDType.QUInt8, "AdaptiveAvgPool2d output");

        float scaleRatio = inputScale / outputScale;
        for (int n = 0; n < batch; n++)
        {
            for (int oh = 0; oh < outHeight; oh++)
            {
                int hStart = StartIndex(oh, outHeight, inHeight);
                int hEnd = EndIndex(oh, outHeight, inHeight);
                for (int ow = 0; ow < outWidth; ow++)
                {
                    int wStart = StartIndex(ow, outWidth, inWidth);
                    int wEnd = EndIndex(ow, outWidth, inWidth);
                    int size = (hEnd - hStart) * (wEnd - wStart);
                    float multiplier = scaleRatio / size;
                    float quantizeScale = 1.0f / multiplier;
                    float inverseScale = 1.0f / quantizeScale;
                    int outputRow = (((n * outHeight) + oh) * outWidth + ow) * channels;
                    for (int c = 0; c < channels; c++)
                    {
                        int accumulator = -inputZeroPoint * size;
                        for (int ih = hStart; ih < hEnd; ih++)
                        {
                            for (int iw = wStart; iw < wEnd; iw++)
                            {
                                accumulator += inputNhwc[((((n * inHeight) + ih) * inWidth) + iw) * channels + c];
                            }
                        }

                        outputNhwc[outputRow + c] = (byte)QuantizeScalar.QuantizeValue(accumulator, inverseScale, outputZeroPoint, 0, 255);
                    }
                }
            }
        }
    }
}
