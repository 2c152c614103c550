using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference int8 convolution accumulation: <c>acc = Σ (qx - zx) * (qw - zw[oc])</c> in int32,
/// padding counting as the input zero point (so it adds nothing).
/// </summary>
public static class Conv2dScalar
{
    /// <summary>
    /// Accumulates every output element of one convolution. The sum wraps in int32 like PyTorch's
    /// int32 accumulators (no overflow check: a 3×3×4096 kernel of full-range values still fits).
    /// </summary>
    /// <param name="geometry">Shapes; validated.</param>
    /// <param name="inputNhwc">uint8 input, [N][H][W][C].</param>
    /// <param name="inputZeroPoint">zx.</param>
    /// <param name="weightsOhwi">int8 weights, [OutC][KH][KW][InC/groups].</param>
    /// <param name="weightZeroPoints">zw per output channel (zeros for symmetric weights).</param>
    /// <param name="accumulatorsNhwc">int32 output, [N][OH][OW][OutC].</param>
    public static void Accumulate(in Conv2dGeometry geometry, ReadOnlySpan<byte> inputNhwc, int inputZeroPoint, ReadOnlySpan<sbyte> weightsOhwi, ReadOnlySpan<int> weightZeroPoints, Span<int> accumulatorsNhwc)
    {
        geometry.Validate();
        int batch = geometry.Batch, inChannels = geometry.InChannels, inHeight = geometry.InHeight, inWidth = geometry.InWidth;
        int outChannels = geometry.OutChannels, kernelHeight = geometry.KernelHeight, kernelWidth = geometry.KernelWidth;
        int outHeight = geometry.OutHeight, outWidth = geometry.OutWidth;
        int inPerGroup = geometry.InChannelsPerGroup, outPerGroup = geometry.OutChannelsPerGroup;

        CheckLength("input (NHWC)", inputNhwc.Length, (long)batch * inHeight * inWidth * inChannels, [batch, inHeight, inWidth, inChannels]);
        CheckLength("weights (OHWI)", weightsOhwi.Length, (long)outChannels * kernelHeight * kernelWidth * inPerGroup, [outChannels, kernelHeight, kernelWidth, inPerGroup]);
        CheckLength("weight zero points", weightZeroPoints.Length, outChannels, "one per output channel");
        CheckLength("accumulators (NHWC)", accumulatorsNhwc.Length, (long)batch * outHeight * outWidth * outChannels, [batch, outHeight, outWidth, outChannels]);

        for (int n = 0; n < batch; n++)
        {
            for (int oh = 0; oh < outHeight; oh++)
            {
                for (int ow = 0; ow < outWidth; ow++)
                {
                    int outputRow = ((((n * outHeight) + oh) * outWidth) + ow) * outChannels;
                    for (int oc = 0; oc < outChannels; oc++)
                    {
                        int firstInputChannel = (oc / outPerGroup) * inPerGroup;
                        int weightZeroPoint = weightZeroPoints[oc];
                        int sum = 0;
                        for (int kh = 0; kh < kernelHeight; kh++)
                        {
                            int ih = (oh * geometry.StrideHeight) - geometry.PadHeight + (kh * geometry.DilationHeight);
                            if ((uint)ih >= (uint)inHeight)
                            {
                                continue; // padding: (zx - zx) * w = 0
                            }

                            for (int kw = 0; kw < kernelWidth; kw++)
                            {
                                int iw = (ow * geometry.StrideWidth) - geometry.PadWidth + (kw * geometry.DilationWidth);
                                if ((uint)iw >= (uint)inWidth)
                                {
                                    continue;
                                }

                                int inputOffset = ((((n * inHeight) + ih) * inWidth) + iw) * inChannels + firstInputChannel;
                                int weightOffset = ((((oc * kernelHeight) + kh) * kernelWidth) + kw) * inPerGroup;
                                for (int ic = 0; ic < inPerGroup; ic++)
                                {
                                    int x = inputNhwc[inputOffset + ic] - inputZeroPoint;
                                    int w = weightsOhwi[weightOffset + ic] - weightZeroPoint;
                                    sum = unchecked(sum + (x * w));
                                }
                            }
                        }

                        accumulatorsNhwc[outputRow + oc] = sum;
                    }
                }
            }
        }
    }

    private static void CheckLength(string what, int actual, long expected, string layout)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"Conv2d: {what} has {actual} elements, expected {expected} ({layout}).");
        }
    }

    // The layout text is formatted only on failure, so a steady-state call allocates nothing.
    private static void CheckLength(string what, int actual, long expected, ReadOnlySpan<int> layout)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"Conv2d: {what} has {actual} elements, expected {expected} ({string.Join("x", layout.ToArray())}).");
        }
    }
}
