using System;
using System.Globalization;

namespace QuantGen.Modules;

/// <summary>
/// QuantGen's bounds on layer geometry (docs/reliability.md). Every layer is built through its constructor —
/// by Convert, by the .qgen loader and by tests alike — so a forged file with a recomputed checksum meets
/// these checks at load and is refused there, never later in a kernel. The bounds are far above any real
/// model's and low enough that every size the kernels compute from them fits in an int32.
/// </summary>
public static class LayerLimits
{
    /// <summary>
    /// The largest kernel size, stride, dilation, padding, output padding, dilated kernel extent
    /// <c>d·(k−1)+1</c>, explicit output size and scale factor a spatial layer accepts (2¹⁶ − 1).
    /// </summary>
    public const int MaxGeometry = 65535;

    /// <summary>
    /// The largest factor by which one spatial layer may grow its input's H·W plane (64× per side: a
    /// ConvTranspose2d of stride 64, an ×64 upsampling); see <see cref="MinPlaneAllowance"/>.
    /// </summary>
    public const long MaxPlaneGrowth = 4096;

    /// <summary>
    /// An output plane of up to this many positions (256×256) is allowed whatever the input's size (an
    /// upsampling or adaptive pool from 1×1); larger planes must come from at most <see cref="MaxPlaneGrowth"/>×
    /// the input's. Kept small because the bounds compound along a chain of layers run on a small input.
    /// </summary>
    public const long MinPlaneAllowance = 1L << 16;

    /// <summary>Throws, naming the layer and field, unless <paramref name="min"/> ≤ height, width ≤ <see cref="MaxGeometry"/>.</summary>
    internal static void Field(string name, string field, long height, long width, int min, string parameterName)
    {
        if (height < min || width < min || height > MaxGeometry || width > MaxGeometry)
        {
            string lower = min == 0 ? "non-negative" : "positive";
            throw new ArgumentException(
                $"{name}: {field} must be {lower} and at most {MaxGeometry.ToString("N0", CultureInfo.InvariantCulture)} (QuantGen's bound on layer geometry), got {Pair(height, width)}.",
                parameterName);
        }
    }

    /// <summary>The dilated kernel extent <c>d·(k−1)+1</c> (64-bit), checked against <see cref="MaxGeometry"/>, naming the layer.</summary>
    internal static void Extent(string name, int kernelHeight, int kernelWidth, int dilationHeight, int dilationWidth, string parameterName)
    {
        long height = ((long)dilationHeight * (kernelHeight - 1)) + 1;
        long width = ((long)dilationWidth * (kernelWidth - 1)) + 1;
        if (height > MaxGeometry || width > MaxGeometry)
        {
            throw new ArgumentException(
                $"{name}: the dilated kernel extent dilation·(kernel_size−1)+1 = {Pair(height, width)} must be at most {MaxGeometry.ToString("N0", CultureInfo.InvariantCulture)} (kernel_size={Pair(kernelHeight, kernelWidth)}, dilation={Pair(dilationHeight, dilationWidth)}).",
                parameterName);
        }
    }

    /// <summary>
    /// Checks a spatial layer's output size for an input, computed by the caller in 64-bit arithmetic:
    /// at least 1×1, a plane of at most <see cref="MaxPlaneGrowth"/> × the input's plane (or
    /// <see cref="MinPlaneAllowance"/>), and N·C·OH·OW within an int32. Returns null when it fits (and
    /// allocates nothing: a steady-state forward must not), else what is wrong, for the caller's message.
    /// </summary>
    /// <param name="inputShape">The [N, C, H, W] input.</param>
    /// <param name="outChannels">C of the output.</param>
    /// <param name="outHeight">OH, 64-bit.</param>
    /// <param name="outWidth">OW, 64-bit.</param>
    internal static string? OutputPlaneProblem(ReadOnlySpan<int> inputShape, int outChannels, long outHeight, long outWidth)
    {
        if (outHeight < 1 || outWidth < 1)
        {
            return $"input {TorchText.Shape(inputShape)} is too small: the output would be {outHeight}x{outWidth}, expected at least 1x1";
        }

        long inPlane = (long)inputShape[2] * inputShape[3];
        long planeBound = Math.Max(MinPlaneAllowance, inPlane * MaxPlaneGrowth);
        if (outHeight > int.MaxValue || outWidth > int.MaxValue || outHeight * outWidth > planeBound)
        {
            return $"input {TorchText.Shape(inputShape)} would give an output plane of {outHeight}x{outWidth}, expected at most {N(planeBound)} positions ({MaxPlaneGrowth}× the input's {N(inPlane)}, or {N(MinPlaneAllowance)}; see LayerLimits)";
        }

        long count = (long)inputShape[0] * outChannels * outHeight * outWidth;
        if (count > int.MaxValue)
        {
            return $"input {TorchText.Shape(inputShape)} would give an output [{inputShape[0]}, {outChannels}, {outHeight}, {outWidth}] of {N(count)} elements, expected at most {N(int.MaxValue)} (a tensor's bound)";
        }

        return null;
    }

    /// <summary>Throws, naming the layer, unless an [N, C, H, W] input has positive H and W (PyTorch refuses empty planes too; a batch of 0 is allowed).</summary>
    internal static void NonEmptyPlane(string name, ReadOnlySpan<int> shape, string parameterName)
    {
        if (shape.Length == 4 && (shape[2] < 1 || shape[3] < 1))
        {
            throw new ArgumentException($"{name}: expected input [N, C, H, W] with H and W positive, got {TorchText.Shape(shape)}.", parameterName);
        }
    }

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Pair(long height, long width) =>
        string.Create(CultureInfo.InvariantCulture, $"({height}, {width})");
}
