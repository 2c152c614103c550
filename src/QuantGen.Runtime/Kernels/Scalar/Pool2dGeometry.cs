using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Shape and hyper-parameters of one 2-D max or average pool over an NHWC tensor, with PyTorch's
/// output size (<c>pooling_output_shape</c>, ceil_mode included).
/// </summary>
public readonly record struct Pool2dGeometry(
    int Batch, int Channels, int InHeight, int InWidth,
    int KernelHeight, int KernelWidth,
    int StrideHeight, int StrideWidth,
    int PadHeight = 0, int PadWidth = 0,
    int DilationHeight = 1, int DilationWidth = 1,
    bool CeilMode = false)
{
    /// <summary>Output height.</summary>
    public int OutHeight => OutputSize(InHeight, KernelHeight, PadHeight, StrideHeight, DilationHeight, CeilMode);

    /// <summary>Output width.</summary>
    public int OutWidth => OutputSize(InWidth, KernelWidth, PadWidth, StrideWidth, DilationWidth, CeilMode);

    /// <summary>
    /// PyTorch's <c>pooling_output_shape</c>: <c>floor((in + 2p - d(k-1) - 1 + (ceil ? s-1 : 0)) / s) + 1</c>,
    /// and in ceil mode one less when the last window would start beyond the input and its left padding
    /// (<c>(out - 1)·s ≥ in + p</c>), so every window starts inside the padded input.
    /// </summary>
    public static int OutputSize(int input, int kernel, int pad, int stride, int dilation, bool ceilMode)
    {
        if (stride < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(stride), stride, "Pool2d: the stride must be positive.");
        }

        long numerator = (long)input + (2L * pad) - ((long)dilation * (kernel - 1)) - 1 + (ceilMode ? stride - 1 : 0);
        long output = FloorDivide(numerator, stride) + 1;
        if (ceilMode && (output - 1) * stride >= (long)input + pad)
        {
            output--;
        }

        return (int)Math.Clamp(output, int.MinValue, int.MaxValue);
    }

    /// <summary>Throws when a size is not positive, the padding exceeds half the (dilated) kernel, or the output would be empty — PyTorch's checks.</summary>
    public void Validate()
    {
        if (Batch < 0 || Channels < 1 || InHeight < 1 || InWidth < 1 || KernelHeight < 1 || KernelWidth < 1)
        {
            throw new ArgumentException($"Pool2d: the batch must be non-negative and every other size positive: {this}.");
        }

        if (StrideHeight < 1 || StrideWidth < 1 || DilationHeight < 1 || DilationWidth < 1 || PadHeight < 0 || PadWidth < 0)
        {
            throw new ArgumentException($"Pool2d: stride and dilation must be positive and padding non-negative: {this}.");
        }

        if (PadHeight > (((KernelHeight - 1) * DilationHeight) + 1) / 2 || PadWidth > (((KernelWidth - 1) * DilationWidth) + 1) / 2)
        {
            throw new ArgumentException($"Pool2d: the padding must be at most half of the effective kernel size: {this}.");
        }

        if (OutHeight < 1 || OutWidth < 1)
        {
            throw new ArgumentException($"Pool2d: the input {InHeight}x{InWidth} is too small, the output would be {OutHeight}x{OutWidth}: {this}.");
        }
    }

    /// <summary>Throws unless NHWC buffers of <paramref name="inputLength"/> and <paramref name="outputLength"/> elements fit this geometry's input and output.</summary>
    internal void CheckLengths(int inputLength, int outputLength)
    {
        long input = (long)Batch * InHeight * InWidth * Channels;
        long output = (long)Batch * OutHeight * OutWidth * Channels;
        if (inputLength != input || outputLength != output)
        {
            throw new ArgumentException($"Pool2d: input has {inputLength} elements (expected {input}, NHWC {Batch}x{InHeight}x{InWidth}x{Channels}) and output {outputLength} (expected {output}, NHWC {Batch}x{OutHeight}x{OutWidth}x{Channels}).");
        }
    }

    private static long FloorDivide(long numerator, long denominator)
    {
        long quotient = numerator / denominator;
        return (numerator % denominator != 0 && (numerator < 0) != (denominator < 0)) ? quotient - 1 : quotient;
    }
}
