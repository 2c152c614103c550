using System;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Kernels.Packing;

/// <summary>
/// Transposed-convolution weights prepacked once (at <c>Convert()</c>) for one <see cref="GemmConfig"/>. For
/// the packed kernels: one GEMM per group with K = InC/groups and N = KH·KW·OutC/groups columns, column
/// <c>(kh·KW + kw)·(OutC/g) + o</c> of group g holding <c>w[g·(InC/g) + ic, o, kh, kw]</c> over ic (XNNPACK's and
/// PyTorch's deconvolution-as-GEMM), with the zero point of output channel <c>g·(OutC/g) + o</c> per column. For
/// <see cref="GemmConfig.Scalar"/>: the <c>[OutC][KH][KW][InC/g]</c> rows <see cref="ConvTranspose2dScalar"/> reads.
/// </summary>
/// <remarks>
/// Columns are tap-major, so col2im adds one contiguous run of OutC/g int32 per (input pixel, tap, group).
/// </remarks>
public sealed class PackedConvTranspose2dWeights
{
    private readonly sbyte[] _referenceOhwi;
    private readonly int[] _weightZeroPoints;

    private PackedConvTranspose2dWeights(GemmConfig config, PackedGemmWeights? gemm, sbyte[] referenceOhwi, int[] weightZeroPoints, int inChannels, int outChannels, int kernelHeight, int kernelWidth, int groups)
    {
        Config = config;
        Gemm = gemm;
        _referenceOhwi = referenceOhwi;
        _weightZeroPoints = weightZeroPoints;
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelHeight = kernelHeight;
        KernelWidth = kernelWidth;
        Groups = groups;
    }

    /// <summary>The kernel these weights are packed for.</summary>
    public GemmConfig Config { get; }

    /// <summary>The GEMM panels (null for <see cref="PackedLayout.Reference"/>).</summary>
    public PackedGemmWeights? Gemm { get; }

    /// <summary>The <c>[OutC][KH][KW][InC/g]</c> rows for <see cref="ConvTranspose2dScalar"/> (<see cref="PackedLayout.Reference"/> only; empty otherwise).</summary>
    public ReadOnlySpan<sbyte> ReferenceOhwi => _referenceOhwi;

    /// <summary>zw per output channel.</summary>
    public ReadOnlySpan<int> WeightZeroPoints => _weightZeroPoints;

    /// <summary>Input channels.</summary>
    public int InChannels { get; }

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <summary>KH.</summary>
    public int KernelHeight { get; }

    /// <summary>KW.</summary>
    public int KernelWidth { get; }

    /// <summary>Groups.</summary>
    public int Groups { get; }

    /// <summary>GEMM columns per input pixel over all groups: KH·KW·OutC.</summary>
    public int ColumnsPerPixel => KernelHeight * KernelWidth * OutChannels;

    /// <summary>Packs PyTorch-layout weights for <paramref name="config"/>.</summary>
    /// <param name="logical">int8 weights, logical <c>[InC, OutC/groups, KH, KW]</c> row-major.</param>
    /// <param name="weightZeroPoints">zw per output channel (OutC entries).</param>
    /// <param name="inChannels">InC.</param>
    /// <param name="outChannels">OutC.</param>
    /// <param name="kernelHeight">KH.</param>
    /// <param name="kernelWidth">KW.</param>
    /// <param name="groups">Groups (dividing both channel counts).</param>
    /// <param name="config">The kernel to pack for.</param>
    /// <exception cref="ArgumentException">Sizes that do not match or do not divide by the groups.</exception>
    public static PackedConvTranspose2dWeights Pack(ReadOnlySpan<sbyte> logical, ReadOnlySpan<int> weightZeroPoints, int inChannels, int outChannels, int kernelHeight, int kernelWidth, int groups, GemmConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (inChannels < 1 || outChannels < 1 || kernelHeight < 1 || kernelWidth < 1 || groups < 1 || inChannels % groups != 0 || outChannels % groups != 0)
        {
            throw new ArgumentException($"ConvTranspose2d: in ({inChannels}) and out ({outChannels}) channels and the kernel ({kernelHeight}x{kernelWidth}) must be positive, the channels divisible by groups ({groups}).");
        }

        int inPerGroup = inChannels / groups, outPerGroup = outChannels / groups, taps = kernelHeight * kernelWidth;
        long expected = (long)inChannels * outPerGroup * taps;
        if (logical.Length != expected)
        {
            throw new ArgumentException($"ConvTranspose2d: weights have {logical.Length} elements, expected {expected} ([{inChannels}, {outPerGroup}, {kernelHeight}, {kernelWidth}]).", nameof(logical));
        }

        if (weightZeroPoints.Length != outChannels)
        {
            throw new ArgumentException($"ConvTranspose2d: {weightZeroPoints.Length} weight zero points for {outChannels} output channels.", nameof(weightZeroPoints));
        }

        if (config.Layout == PackedLayout.Reference)
        {
            var integers = new int[logical.Length];
            for (int i = 0; i < integers.Length; i++)
            {
                integers[i] = logical[i];
            }

            sbyte[] ohwi = ConvTranspose2dScalar.Pack(integers, inChannels, outChannels, kernelHeight, kernelWidth, groups);
            return new PackedConvTranspose2dWeights(config, null, ohwi, weightZeroPoints.ToArray(), inChannels, outChannels, kernelHeight, kernelWidth, groups);
        }

        // GEMM rows [groups][taps][outPerGroup][inPerGroup]: row (g, tap, o) is column (g, tap, o) of the product.
        int columnsPerGroup = taps * outPerGroup;
        var rows = new sbyte[logical.Length];
        var columnZeroPoints = new int[groups * columnsPerGroup];
        for (int g = 0; g < groups; g++)
        {
            for (int tap = 0; tap < taps; tap++)
            {
                for (int o = 0; o < outPerGroup; o++)
                {
                    int column = (g * columnsPerGroup) + (tap * outPerGroup) + o;
                    columnZeroPoints[column] = weightZeroPoints[(g * outPerGroup) + o];
                    Span<sbyte> row = rows.AsSpan(column * inPerGroup, inPerGroup);
                    for (int ic = 0; ic < inPerGroup; ic++)
                    {
                        row[ic] = logical[(((((g * inPerGroup) + ic) * outPerGroup) + o) * taps) + tap];
                    }
                }
            }
        }

        PackedGemmWeights gemm = PackedGemmWeights.Pack(config, rows, columnZeroPoints, groups, columnsPerGroup, inPerGroup);
        return new PackedConvTranspose2dWeights(config, gemm, [], weightZeroPoints.ToArray(), inChannels, outChannels, kernelHeight, kernelWidth, groups);
    }
}
