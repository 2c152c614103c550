using System;
using System.Globalization;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>Hyper-parameters of a 2-D max or average pool (PyTorch's argument names and defaults; stride defaults to the kernel).</summary>
/// <remarks>
/// <see cref="DilationHeight"/>/<see cref="DilationWidth"/> apply to max pooling only (average pooling
/// has none and must keep 1); <see cref="CountIncludePad"/> and <see cref="DivisorOverride"/> apply to
/// average pooling only. A stride of 0 stands for "not given": the kernel size.
/// </remarks>
public readonly record struct Pool2dOptions(
    int KernelHeight, int KernelWidth,
    int StrideHeight, int StrideWidth,
    int PadHeight = 0, int PadWidth = 0,
    int DilationHeight = 1, int DilationWidth = 1,
    bool CeilMode = false,
    bool CountIncludePad = true,
    int? DivisorOverride = null)
{
    /// <summary>The stride actually used for rows: <see cref="StrideHeight"/>, or the kernel height when 0 (PyTorch's <c>stride=None</c>).</summary>
    public int EffectiveStrideHeight => StrideHeight == 0 ? KernelHeight : StrideHeight;

    /// <summary>The stride actually used for columns.</summary>
    public int EffectiveStrideWidth => StrideWidth == 0 ? KernelWidth : StrideWidth;

    /// <summary>A square pool as <c>nn.MaxPool2d(k, stride, padding, dilation, ceil_mode)</c> / <c>nn.AvgPool2d(k, stride, padding, ceil_mode, ...)</c> write it; stride null means the kernel size.</summary>
    public static Pool2dOptions Square(int kernel, int? stride = null, int padding = 0, int dilation = 1, bool ceilMode = false, bool countIncludePad = true, int? divisorOverride = null) =>
        new(kernel, kernel, stride ?? kernel, stride ?? kernel, padding, padding, dilation, dilation, ceilMode, countIncludePad, divisorOverride);

    /// <summary>The kernels' geometry for an [N, C, H, W] input.</summary>
    public Pool2dGeometry Geometry(int batch, int channels, int inHeight, int inWidth) =>
        new(batch, channels, inHeight, inWidth, KernelHeight, KernelWidth, EffectiveStrideHeight, EffectiveStrideWidth,
            PadHeight, PadWidth, DilationHeight, DilationWidth, CeilMode);

    /// <summary>PyTorch's checks on the hyper-parameters, naming the layer.</summary>
    /// <param name="name">"Model.layer", for messages.</param>
    /// <param name="average">True for an average pool (no dilation; divisor_override must be non-zero).</param>
    internal void Validate(string name, bool average)
    {
        if (KernelHeight < 1 || KernelWidth < 1)
        {
            throw new ArgumentException($"{name}: kernel_size must be positive, got {TorchText.Pair(KernelHeight, KernelWidth)}.");
        }

        if (StrideHeight < 0 || StrideWidth < 0)
        {
            throw new ArgumentException($"{name}: stride must be positive (or 0 for the kernel size), got {TorchText.Pair(StrideHeight, StrideWidth)}.");
        }

        if (PadHeight < 0 || PadWidth < 0)
        {
            throw new ArgumentException($"{name}: padding must be non-negative, got {TorchText.Pair(PadHeight, PadWidth)}.");
        }

        if (DilationHeight < 1 || DilationWidth < 1 || (average && (DilationHeight != 1 || DilationWidth != 1)))
        {
            throw new ArgumentException(average
                ? $"{name}: average pooling has no dilation (it must be 1), got {TorchText.Pair(DilationHeight, DilationWidth)}."
                : $"{name}: dilation must be positive, got {TorchText.Pair(DilationHeight, DilationWidth)}.");
        }

        // QuantGen's bounds (LayerLimits), before the padding rule below multiplies kernel by dilation.
        LayerLimits.Field(name, "kernel_size", KernelHeight, KernelWidth, 1, "options");
        LayerLimits.Field(name, "stride", EffectiveStrideHeight, EffectiveStrideWidth, 1, "options");
        LayerLimits.Field(name, "padding", PadHeight, PadWidth, 0, "options");
        LayerLimits.Field(name, "dilation", DilationHeight, DilationWidth, 1, "options");
        LayerLimits.Extent(name, KernelHeight, KernelWidth, DilationHeight, DilationWidth, "options");

        if (PadHeight > (((KernelHeight - 1) * DilationHeight) + 1) / 2 || PadWidth > (((KernelWidth - 1) * DilationWidth) + 1) / 2)
        {
            throw new ArgumentException($"{name}: padding {TorchText.Pair(PadHeight, PadWidth)} must be at most half of the effective kernel size (kernel_size={TorchText.Pair(KernelHeight, KernelWidth)}, dilation={TorchText.Pair(DilationHeight, DilationWidth)}).");
        }

        if (average && DivisorOverride == 0)
        {
            throw new ArgumentException($"{name}: divisor_override must not be zero.");
        }
    }

    /// <summary>Validates an [N, C, H, W] input against these options, naming the layer: rank 4, and an output of at least 1x1.</summary>
    internal Pool2dGeometry GeometryFor(string name, QTensor input)
    {
        if (input.Rank != 4)
        {
            throw new ArgumentException($"{name}: expected input [N, C, H, W] (rank 4), got {TorchText.Shape(input.Shape)}.", nameof(input));
        }

        Pool2dGeometry geometry = Geometry(input.Dim(0), input.Dim(1), input.Dim(2), input.Dim(3));
        if (input.Dim(1) < 1 || input.Dim(2) < 1 || input.Dim(3) < 1)
        {
            throw new ArgumentException($"{name}: expected input [N, C, H, W] with C, H and W positive, got {TorchText.Shape(input.Shape)}.", nameof(input));
        }

        if (LayerLimits.OutputPlaneProblem(input.ShapeSpan, input.Dim(1), geometry.OutHeight, geometry.OutWidth) is string problem)
        {
            throw new ArgumentException(
                $"{name}: {problem} (kernel_size={TorchText.Pair(KernelHeight, KernelWidth)}, stride={TorchText.Pair(EffectiveStrideHeight, EffectiveStrideWidth)}, padding={TorchText.Pair(PadHeight, PadWidth)}, dilation={TorchText.Pair(DilationHeight, DilationWidth)}).", nameof(input));
        }

        return geometry;
    }

    /// <summary>A PyTorch-style value: an int when both sides agree, else a pair.</summary>
    internal static string IntOrPair(int height, int width) =>
        height == width ? height.ToString(CultureInfo.InvariantCulture) : TorchText.Pair(height, width);
}

/// <summary>A ConvTranspose2d's hyper-parameters, as read from the TorchSharp module.</summary>
public readonly record struct ConvTranspose2dOptions(
    int InChannels, int OutChannels, int KernelHeight, int KernelWidth,
    int StrideHeight = 1, int StrideWidth = 1,
    int PadHeight = 0, int PadWidth = 0,
    int OutputPadHeight = 0, int OutputPadWidth = 0,
    int DilationHeight = 1, int DilationWidth = 1,
    int Groups = 1);
