using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference quantized average pool — PyTorch's channels-last kernel (<c>qavg_pool2d_nhwc</c>),
/// in the <see cref="UInt8View"/>. Per window, with the window clipped to <c>[−p, in + p)</c> for
/// <c>pool_size</c> and to the input for <c>size</c>:
/// <code>
/// acc        = Σ_inside (q - zx)                                   int32, exact
/// divisor    = divisor_override ?? (count_include_pad ? pool_size : size)
/// multiplier = sx / sy / (float)divisor                            float32, left to right
/// q          = clamp(zy + round_half_even((float)acc * (1f / (1f / multiplier))), 0, 255)
/// </code>
/// </summary>
/// <remarks>
/// The double reciprocal is PyTorch's: the kernel passes <c>1f / multiplier</c> as the "scale" of
/// <c>quantize_val</c>, which multiplies by <c>1f / scale</c>. (Its AVX path multiplies by
/// <c>multiplier</c> itself; the two are the same float whenever the reciprocal round-trips, e.g. for
/// every divisor 1..4096 when sx = sy, as average pools' pass-through qparams make them.) The
/// zero point is added after rounding, so ties round to even in the zero-point-free domain; PyTorch's
/// NCHW kernel (<c>avg_pool2d_out_frame</c>) instead rounds <c>acc·multiplier + zy</c>, which differs
/// by one on ties when zy is odd. QuantGen's activations are channels-last, so the NHWC rule is the
/// one implemented. See docs/numerics.md §5.
/// </remarks>
public static class AvgPool2dScalar
{
    /// <summary>Pools every window.</summary>
    /// <param name="geometry">Shapes, stride, padding, ceil_mode (dilation must be 1); validated.</param>
    /// <param name="countIncludePad">Divide by the padded window size rather than the inside count.</param>
    /// <param name="divisorOverride">Fixed non-zero divisor, or null.</param>
    /// <param name="inputNhwc">Input in the view, [N][H][W][C].</param>
    /// <param name="inputScale">sx.</param>
    /// <param name="inputZeroPoint">zx in the view.</param>
    /// <param name="outputNhwc">Output in the view, [N][OH][OW][C].</param>
    /// <param name="outputScale">sy.</param>
    /// <param name="outputZeroPoint">zy in the view.</param>
    public static void Apply(
        in Pool2dGeometry geometry, bool countIncludePad, int? divisorOverride,
        ReadOnlySpan<byte> inputNhwc, float inputScale, int inputZeroPoint,
        Span<byte> outputNhwc, float outputScale, int outputZeroPoint)
    {
        geometry.Validate();
        if (geometry.DilationHeight != 1 || geometry.DilationWidth != 1)
        {
            throw new ArgumentException($"AvgPool2d: average pooling has no dilation: {geometry}.");
        }

        if (divisorOverride == 0)
        {
            throw new ArgumentException("AvgPool2d: divisor_override must not be zero.");
        }

        geometry.CheckLengths(inputNhwc.Length, outputNhwc.Length);
        QuantizeScalar.ValidateScale(inputScale, "AvgPool2d input");
        QuantizeScalar.ValidateScale(outputScale, "AvgPool2d output");
        QuantizeScalar.ValidateZeroPoint(inputZeroPoint, QuantDType.QUInt8, "AvgPool2d input");
        QuantizeScalar.ValidateZeroPoint(outputZeroPoint, QuantDType.QUInt8, "AvgPool2d output");

        int channels = geometry.Channels, inHeight = geometry.InHeight, inWidth = geometry.InWidth;
        int outHeight = geometry.OutHeight, outWidth = geometry.OutWidth;
        float scaleRatio = inputScale / outputScale;
        for (int n = 0; n < geometry.Batch; n++)
        {
            for (int oh = 0; oh < outHeight; oh++)
            {
                int hStart = (oh * geometry.StrideHeight) - geometry.PadHeight;
                int hEnd = Math.Min(hStart + geometry.KernelHeight, inHeight + geometry.PadHeight);
                int poolHeight = hEnd - hStart;
                hStart = Math.Max(hStart, 0);
                hEnd = Math.Min(hEnd, inHeight);
                for (int ow = 0; ow < outWidth; ow++)
                {
                    int wStart = (ow * geometry.StrideWidth) - geometry.PadWidth;
                    int wEnd = Math.Min(wStart + geometry.KernelWidth, inWidth + geometry.PadWidth);
                    int poolWidth = wEnd - wStart;
                    wStart = Math.Max(wStart, 0);
                    wEnd = Math.Min(wEnd, inWidth);

                    int size = (hEnd - hStart) * (wEnd - wStart);
                    int divisor = divisorOverride ?? (countIncludePad ? poolHeight * poolWidth : size);
                    float multiplier = scaleRatio / divisor;
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
