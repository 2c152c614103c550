using System;

namespace QuantGen.Kernels;

/// <summary>
/// Shape and hyper-parameters of one 2-D convolution. Activations are NHWC, weights
/// [OutC][KH][KW][InC / Groups] (OHWI), accumulators NHWC.
/// </summary>
public readonly record struct Conv2dGeometry(
    int Batch, int InChannels, int InHeight, int InWidth,
    int OutChannels, int KernelHeight, int KernelWidth,
    int StrideHeight = 1, int StrideWidth = 1,
    int PadHeight = 0, int PadWidth = 0,
    int DilationHeight = 1, int DilationWidth = 1,
    int Groups = 1)
{
    /// <summary>Output height: floor((H + 2p - d(k-1) - 1) / s) + 1.</summary>
    public int OutHeight => ((InHeight + (2 * PadHeight) - (DilationHeight * (KernelHeight - 1)) - 1) / StrideHeight) + 1;

    /// <summary>Output width.</summary>
    public int OutWidth => ((InWidth + (2 * PadWidth) - (DilationWidth * (KernelWidth - 1)) - 1) / StrideWidth) + 1;

    /// <summary>Input channels each group sees.</summary>
    public int InChannelsPerGroup => InChannels / Groups;

    /// <summary>Output channels each group makes.</summary>
    public int OutChannelsPerGroup => OutChannels / Groups;

    /// <summary>Throws when the hyper-parameters are inconsistent or the output would be empty.</summary>
    public void Validate()
    {
        if (Batch < 1 || InChannels < 1 || InHeight < 1 || InWidth < 1 || OutChannels < 1 || KernelHeight < 1 || KernelWidth < 1)
        {
            throw new ArgumentException($"Conv2d: every size must be positive: {this}.");
        }

        if (StrideHeight < 1 || StrideWidth < 1 || DilationHeight < 1 || DilationWidth < 1 || PadHeight < 0 || PadWidth < 0 || Groups < 1)
        {
            throw new ArgumentException($"Conv2d: stride and dilation must be positive and padding non-negative: {this}.");
        }

        if (InChannels % Groups != 0 || OutChannels % Groups != 0)
        {
            throw new ArgumentException($"Conv2d: in ({InChannels}) and out ({OutChannels}) channels must both divide by groups ({Groups}).");
        }

        // The int32 properties above would wrap for forged sizes; the same formula in 64 bits must agree.
        long outHeight = ((InHeight + (2L * PadHeight) - ((long)DilationHeight * (KernelHeight - 1)) - 1) / StrideHeight) + 1;
        long outWidth = ((InWidth + (2L * PadWidth) - ((long)DilationWidth * (KernelWidth - 1)) - 1) / StrideWidth) + 1;
        if (outHeight < 1 || outWidth < 1)
        {
            throw new ArgumentException($"Conv2d: input {InHeight}x{InWidth} is smaller than the dilated kernel: {this}.");
        }

        if (outHeight != OutHeight || outWidth != OutWidth || (long)Batch * OutChannels * outHeight * outWidth > int.MaxValue)
        {
            throw new ArgumentException($"Conv2d: the output {outHeight}x{outWidth} does not fit int32 sizes: {this}.");
        }
    }
}
