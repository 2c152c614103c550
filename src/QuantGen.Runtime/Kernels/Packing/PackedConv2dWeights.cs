using System;

namespace QuantGen.Kernels.Packing;

/// <summary>
/// Convolution weights prepacked once (at <c>Convert()</c>) for one <see cref="GemmConfig"/>: GEMM panels
/// per group, and for depthwise convolutions (groups == in == out channels) the taps as int32
/// <c>[KH·KW][C]</c> with the weight zero point already subtracted.
/// </summary>
public sealed class PackedConv2dWeights
{
    private readonly int[] _depthwiseTaps;
    private readonly short[] _depthwiseTaps16;

    private PackedConv2dWeights(PackedGemmWeights gemm, PackedGemmWeights? rowRuns, int outChannels, int inChannels, int kernelHeight, int kernelWidth, int groups, int[] depthwiseTaps)
    {
        Gemm = gemm;
        RowRuns = rowRuns;
        OutChannels = outChannels;
        InChannels = inChannels;
        KernelHeight = kernelHeight;
        KernelWidth = kernelWidth;
        Groups = groups;
        _depthwiseTaps = depthwiseTaps;

        // The same taps as int16 (w − zw lies in −255..255) for the 16-bit multiply-add path of DepthwiseConv.
        _depthwiseTaps16 = Array.ConvertAll(depthwiseTaps, w => checked((short)w));
    }

    /// <summary>The kernel these weights are packed for.</summary>
    public GemmConfig Config => Gemm.Config;

    /// <summary>The GEMM panels (one GEMM per group; K = KH·KW·InC/groups).</summary>
    public PackedGemmWeights Gemm { get; }

    /// <summary>
    /// For inputs with few channels (a one-channel image, the RGB stem): the same weights with each kernel
    /// row's KW·InC values followed by zeros up to <see cref="RowRunLength"/> (a multiple of 4), so
    /// K = KH·RowRunLength. The AVX-VNNI kernel then reads every kernel row of an output pixel as one
    /// run of whole quads straight from a zero-point-padded copy of the input — no im2col copy and no
    /// byte-wise tail; the bytes past a run meet zero weights. Null where the plain panels are used: other
    /// ISAs, weight zero points (their Σx row sums need the gathered rows), groups, input channels a
    /// multiple of 4 (the tap-indirect path is better), or padding that would add over a third more products.
    /// </summary>
    public PackedGemmWeights? RowRuns { get; }

    /// <summary>Bytes per kernel row in <see cref="RowRuns"/>: KW·InC rounded up to a multiple of 4 (0 without).</summary>
    public int RowRunLength => RowRuns is null ? 0 : RowRuns.K / KernelHeight;

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <summary>Input channels.</summary>
    public int InChannels { get; }

    /// <summary>KH.</summary>
    public int KernelHeight { get; }

    /// <summary>KW.</summary>
    public int KernelWidth { get; }

    /// <summary>Groups.</summary>
    public int Groups { get; }

    /// <summary>True when the depthwise kernel runs (groups == in == out channels, a vector ISA).</summary>
    public bool IsDepthwise => _depthwiseTaps.Length != 0;

    /// <summary>Depthwise taps <c>[KH·KW][C]</c>: <c>w − zw[c]</c> (empty unless <see cref="IsDepthwise"/>).</summary>
    public ReadOnlySpan<int> DepthwiseTaps => _depthwiseTaps;

    internal int[] DepthwiseTapArray => _depthwiseTaps;

    /// <summary><see cref="DepthwiseTaps"/> as int16, the same layout.</summary>
    internal short[] DepthwiseTap16Array => _depthwiseTaps16;

    /// <summary>Packs OHWI conv weights for <paramref name="config"/> (default: <see cref="KernelDispatch.Config"/>).</summary>
    /// <param name="weightsOhwi">int8 weights <c>[OutC][KH][KW][InC/groups]</c>.</param>
    /// <param name="weightZeroPoints">zw per output channel.</param>
    /// <param name="outChannels">OutC.</param>
    /// <param name="inChannels">InC (all groups).</param>
    /// <param name="kernelHeight">KH.</param>
    /// <param name="kernelWidth">KW.</param>
    /// <param name="groups">Groups.</param>
    /// <param name="config">The kernel to pack for; null → the dispatcher's.</param>
    public static PackedConv2dWeights Pack(ReadOnlySpan<sbyte> weightsOhwi, ReadOnlySpan<int> weightZeroPoints, int outChannels, int inChannels, int kernelHeight, int kernelWidth, int groups = 1, GemmConfig? config = null)
    {
        config ??= KernelDispatch.Config;
        if (outChannels < 1 || inChannels < 1 || kernelHeight < 1 || kernelWidth < 1 || groups < 1 || inChannels % groups != 0 || outChannels % groups != 0)
        {
            throw new ArgumentException($"Conv2d pack: channels ({inChannels} in, {outChannels} out), kernel {kernelHeight}x{kernelWidth} and groups {groups} must be positive, channels divisible by groups.");
        }

        int k = kernelHeight * kernelWidth * (inChannels / groups);
        PackedGemmWeights gemm = PackedGemmWeights.Pack(config, weightsOhwi, weightZeroPoints, groups, outChannels / groups, k);
        int[] taps = [];
        if (config.Layout != PackedLayout.Reference && groups == inChannels && groups == outChannels)
        {
            int kernelArea = kernelHeight * kernelWidth;
            taps = new int[kernelArea * outChannels];
            for (int c = 0; c < outChannels; c++)
            {
                for (int t = 0; t < kernelArea; t++)
                {
                    taps[(t * outChannels) + c] = weightsOhwi[(c * kernelArea) + t] - weightZeroPoints[c];
                }
            }
        }

        PackedGemmWeights? rowRuns = PackRowRuns(config, gemm, weightsOhwi, weightZeroPoints, outChannels, inChannels, kernelHeight, kernelWidth, groups);
        return new PackedConv2dWeights(gemm, rowRuns, outChannels, inChannels, kernelHeight, kernelWidth, groups, taps);
    }

    /// <summary>The <see cref="RowRuns"/> packing where it applies, else null.</summary>
    private static PackedGemmWeights? PackRowRuns(GemmConfig config, PackedGemmWeights gemm, ReadOnlySpan<sbyte> weightsOhwi, ReadOnlySpan<int> weightZeroPoints, int outChannels, int inChannels, int kernelHeight, int kernelWidth, int groups)
    {
        int run = kernelWidth * inChannels;
        int runLength = PackedGemmWeights.RoundUp(run, 4);
        if (config.Isa != KernelIsa.AvxVnni || config.ScalarEmulation || groups != 1 || inChannels % 4 == 0 || gemm.HasWeightZeroPoints || 3 * runLength > 4 * run)
        {
            return null;
        }

        var rows = new sbyte[outChannels * kernelHeight * runLength];
        for (int oc = 0; oc < outChannels; oc++)
        {
            for (int kh = 0; kh < kernelHeight; kh++)
            {
                weightsOhwi.Slice(((oc * kernelHeight) + kh) * run, run).CopyTo(rows.AsSpan(((oc * kernelHeight) + kh) * runLength, run));
            }
        }

        return PackedGemmWeights.Pack(config, rows, weightZeroPoints, 1, outChannels, kernelHeight * runLength);
    }
}
