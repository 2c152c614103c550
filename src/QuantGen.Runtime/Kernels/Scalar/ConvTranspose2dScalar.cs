using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Shape and hyper-parameters of one 2-D transposed convolution. Activations NHWC, weights packed
/// [OutC][KH][KW][InC / Groups], accumulators NHWC.
/// </summary>
public readonly record struct ConvTranspose2dGeometry(
    int Batch, int InChannels, int InHeight, int InWidth,
    int OutChannels, int KernelHeight, int KernelWidth,
    int StrideHeight = 1, int StrideWidth = 1,
    int PadHeight = 0, int PadWidth = 0,
    int OutputPadHeight = 0, int OutputPadWidth = 0,
    int DilationHeight = 1, int DilationWidth = 1,
    int Groups = 1)
{
    /// <summary>Output height: <c>(H - 1)·s - 2p + d(k - 1) + output_padding + 1</c>.</summary>
    public int OutHeight => ((InHeight - 1) * StrideHeight) - (2 * PadHeight) + (DilationHeight * (KernelHeight - 1)) + OutputPadHeight + 1;

    /// <summary>Output width.</summary>
    public int OutWidth => ((InWidth - 1) * StrideWidth) - (2 * PadWidth) + (DilationWidth * (KernelWidth - 1)) + OutputPadWidth + 1;

    /// <summary>Input channels each group sees.</summary>
    public int InChannelsPerGroup => InChannels / Groups;

    /// <summary>Output channels each group makes.</summary>
    public int OutChannelsPerGroup => OutChannels / Groups;

    /// <summary>Throws when the hyper-parameters are inconsistent or the output would be empty (PyTorch's checks).</summary>
    public void Validate()
    {
        if (Batch < 0 || InChannels < 1 || InHeight < 1 || InWidth < 1 || OutChannels < 1 || KernelHeight < 1 || KernelWidth < 1)
        {
            throw new ArgumentException($"ConvTranspose2d: the batch must be non-negative and every other size positive: {this}.");
        }

        if (StrideHeight < 1 || StrideWidth < 1 || DilationHeight < 1 || DilationWidth < 1 || PadHeight < 0 || PadWidth < 0
            || OutputPadHeight < 0 || OutputPadWidth < 0 || Groups < 1)
        {
            throw new ArgumentException($"ConvTranspose2d: stride, dilation and groups must be positive, padding and output padding non-negative: {this}.");
        }

        if ((OutputPadHeight >= StrideHeight && OutputPadHeight >= DilationHeight) || (OutputPadWidth >= StrideWidth && OutputPadWidth >= DilationWidth))
        {
            throw new ArgumentException($"ConvTranspose2d: output padding must be smaller than either stride or dilation: {this}.");
        }

        if (InChannels % Groups != 0 || OutChannels % Groups != 0)
        {
            throw new ArgumentException($"ConvTranspose2d: in ({InChannels}) and out ({OutChannels}) channels must both divide by groups ({Groups}).");
        }

        // The int32 properties above would wrap for forged sizes; the same formula in 64 bits must agree.
        long outHeight = ((InHeight - 1L) * StrideHeight) - (2L * PadHeight) + ((long)DilationHeight * (KernelHeight - 1)) + OutputPadHeight + 1;
        long outWidth = ((InWidth - 1L) * StrideWidth) - (2L * PadWidth) + ((long)DilationWidth * (KernelWidth - 1)) + OutputPadWidth + 1;
        if (outHeight < 1 || outWidth < 1)
        {
            throw new ArgumentException($"ConvTranspose2d: the output would be {outHeight}x{outWidth}: {this}.");
        }

        if (outHeight != OutHeight || outWidth != OutWidth || (long)Batch * OutChannels * outHeight * outWidth > int.MaxValue)
        {
            throw new ArgumentException($"ConvTranspose2d: the output {outHeight}x{outWidth} does not fit int32 sizes: {this}.");
        }
    }
}

/// <summary>
/// Scalar reference int8 transposed-convolution accumulation. Input pixel <c>(ih, iw)</c> reaches output
/// <c>(ih·s - p + kh·d, iw·s - p + kw·d)</c> through kernel tap <c>(kh, kw)</c>, so each output gathers
/// <code>acc[n, oc, oh, ow] = Σ (qx[n, ic, ih, iw] - zx) · (qw[ic, oc % (OutC/g), kh, kw] - zw[oc])</code>
/// over the group's input channels and the taps with <c>oh + p - kh·d = ih·s</c> (likewise for w) and
/// <c>ih, iw</c> inside the input — exactly in int32 (wrapping like PyTorch's accumulators).
/// </summary>
public static class ConvTranspose2dScalar
{
    /// <summary>Accumulates every output element.</summary>
    /// <param name="geometry">Shapes; validated.</param>
    /// <param name="inputNhwc">Input in the <see cref="UInt8View"/>, [N][H][W][InC].</param>
    /// <param name="inputZeroPoint">zx in the view.</param>
    /// <param name="weightsOhwi">int8 weights packed [OutC][KH][KW][InC/groups] (see <see cref="Pack"/>).</param>
    /// <param name="weightZeroPoints">zw per output channel.</param>
    /// <param name="accumulatorsNhwc">int32 output, [N][OH][OW][OutC].</param>
    public static void Accumulate(in ConvTranspose2dGeometry geometry, ReadOnlySpan<byte> inputNhwc, int inputZeroPoint, ReadOnlySpan<sbyte> weightsOhwi, ReadOnlySpan<int> weightZeroPoints, Span<int> accumulatorsNhwc)
    {
        geometry.Validate();
        int inChannels = geometry.InChannels, inHeight = geometry.InHeight, inWidth = geometry.InWidth;
        int outChannels = geometry.OutChannels, kernelHeight = geometry.KernelHeight, kernelWidth = geometry.KernelWidth;
        int outHeight = geometry.OutHeight, outWidth = geometry.OutWidth;
        int inPerGroup = geometry.InChannelsPerGroup, outPerGroup = geometry.OutChannelsPerGroup;
        CheckLength("input (NHWC)", inputNhwc.Length, (long)geometry.Batch * inHeight * inWidth * inChannels);
        CheckLength("weights (OHWI)", weightsOhwi.Length, (long)outChannels * kernelHeight * kernelWidth * inPerGroup);
        CheckLength("weight zero points", weightZeroPoints.Length, outChannels);
        CheckLength("accumulators (NHWC)", accumulatorsNhwc.Length, (long)geometry.Batch * outHeight * outWidth * outChannels);

        for (int n = 0; n < geometry.Batch; n++)
        {
            for (int oh = 0; oh < outHeight; oh++)
            {
                for (int ow = 0; ow < outWidth; ow++)
                {
                    int outputRow = (((n * outHeight) + oh) * outWidth + ow) * outChannels;
                    for (int oc = 0; oc < outChannels; oc++)
                    {
                        int firstInputChannel = (oc / outPerGroup) * inPerGroup;
                        int weightZeroPoint = weightZeroPoints[oc];
                        int sum = 0;
                        for (int kh = 0; kh < kernelHeight; kh++)
                        {
                            int ih = SourceIndex(oh, kh, geometry.StrideHeight, geometry.PadHeight, geometry.DilationHeight, inHeight);
                            if (ih < 0)
                            {
                                continue;
                            }

                            for (int kw = 0; kw < kernelWidth; kw++)
                            {
                                int iw = SourceIndex(ow, kw, geometry.StrideWidth, geometry.PadWidth, geometry.DilationWidth, inWidth);
                                if (iw < 0)
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

    /// <summary>
    /// Logical weights [InC, OutC/groups, KH, KW] (PyTorch's ConvTranspose2d layout, row-major integers)
    /// → [OutC][KH][KW][InC/groups], the order <see cref="Accumulate"/> reads: output channel
    /// <c>g·(OutC/g) + o</c> takes <c>w[g·(InC/g) + i, o, kh, kw]</c>.
    /// </summary>
    public static sbyte[] Pack(ReadOnlySpan<int> logical, int inChannels, int outChannels, int kernelHeight, int kernelWidth, int groups)
    {
        if (groups < 1 || inChannels % groups != 0 || outChannels % groups != 0)
        {
            throw new ArgumentException($"ConvTranspose2d: in ({inChannels}) and out ({outChannels}) channels must both divide by groups ({groups}).");
        }

        int inPerGroup = inChannels / groups, outPerGroup = outChannels / groups;
        CheckLength("logical weights", logical.Length, (long)inChannels * outPerGroup * kernelHeight * kernelWidth);
        var packed = new sbyte[logical.Length];
        for (int ic = 0; ic < inChannels; ic++)
        {
            int group = ic / inPerGroup;
            for (int o = 0; o < outPerGroup; o++)
            {
                int oc = (group * outPerGroup) + o;
                for (int kh = 0; kh < kernelHeight; kh++)
                {
                    for (int kw = 0; kw < kernelWidth; kw++)
                    {
                        int source = (((((ic * outPerGroup) + o) * kernelHeight) + kh) * kernelWidth) + kw;
                        int target = (((((oc * kernelHeight) + kh) * kernelWidth) + kw) * inPerGroup) + (ic - (group * inPerGroup));
                        packed[target] = (sbyte)logical[source];
                    }
                }
            }
        }

        return packed;
    }

    // The input index that reaches output index `o` through tap `k`, or -1 when none does.
    private static int SourceIndex(int output, int tap, int stride, int pad, int dilation, int inputSize)
    {
        int numerator = output + pad - (tap * dilation);
        if (numerator < 0 || numerator % stride != 0)
        {
            return -1;
        }

        int input = numerator / stride;
        return input < inputSize ? input : -1;
    }

    private static void CheckLength(string what, int actual, long expected)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"ConvTranspose2d: {what} has {actual} elements, expected {expected}.");
        }
    }
}
