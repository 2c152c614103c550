using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference quantized max pool, in the <see cref="UInt8View"/> (which keeps the order of
/// qint8 values): each output is the integer maximum of the window's positions that lie inside the
/// input — padding never wins (PyTorch starts from the dtype's lowest value and skips padded
/// positions). Scale and zero point pass through.
/// </summary>
public static class MaxPool2dScalar
{
    /// <summary>Pools every window.</summary>
    /// <param name="geometry">Shapes, stride, padding, dilation, ceil_mode; validated.</param>
    /// <param name="inputNhwc">Input in the view, [N][H][W][C].</param>
    /// <param name="outputNhwc">Output in the view, [N][OH][OW][C].</param>
    public static void Apply(in Pool2dGeometry geometry, ReadOnlySpan<byte> inputNhwc, Span<byte> outputNhwc)
    {
        geometry.Validate();
        geometry.CheckLengths(inputNhwc.Length, outputNhwc.Length);
        int channels = geometry.Channels, inHeight = geometry.InHeight, inWidth = geometry.InWidth;
        int outHeight = geometry.OutHeight, outWidth = geometry.OutWidth;
        for (int n = 0; n < geometry.Batch; n++)
        {
            for (int oh = 0; oh < outHeight; oh++)
            {
                for (int ow = 0; ow < outWidth; ow++)
                {
                    int outputRow = (((n * outHeight) + oh) * outWidth + ow) * channels;
                    for (int c = 0; c < channels; c++)
                    {
                        int max = 0; // the view's lowest value: any input position beats or ties it
                        for (int kh = 0; kh < geometry.KernelHeight; kh++)
                        {
                            int ih = (oh * geometry.StrideHeight) - geometry.PadHeight + (kh * geometry.DilationHeight);
                            if ((uint)ih >= (uint)inHeight)
                            {
                                continue;
                            }

                            for (int kw = 0; kw < geometry.KernelWidth; kw++)
                            {
                                int iw = (ow * geometry.StrideWidth) - geometry.PadWidth + (kw * geometry.DilationWidth);
                                if ((uint)iw >= (uint)inWidth)
                                {
                                    continue;
                                }

                                int value = inputNhwc[((((n * inHeight) + ih) * inWidth) + iw) * channels + c];
                                max = value > max ? value : max;
                            }
                        }

                        outputNhwc[outputRow + c] = (byte)max;
                    }
                }
            }
        }
    }
}
