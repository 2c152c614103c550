using System;
using System.Runtime.InteropServices;

namespace QuantGen.Kernels.Packing;

/// <summary>
/// int8 weights of one GEMM (or one grouped convolution: one GEMM per group), packed once into the
/// panels a <see cref="GemmConfig"/>'s micro-kernel reads, with the per-channel sums the zero-point
/// compensation needs: <c>Σ (x − zx)(w − zw) = Σ x·w − zx·Σw − zw·(Σx − K·zx)</c>.
/// </summary>
/// <remarks>
/// Source rows are <c>[OutC][K]</c> sbyte: conv OHWI (K = KH·KW·InC/groups, k = (kh·KW + kw)·InC/g + ic)
/// or linear <c>[Out][In]</c>. Panel p of group g holds output channels <c>g·N + p·NR ...</c>; channels
/// past N and k past K are zero weights, so the kernels may compute them and the driver drops them.
/// </remarks>
public sealed class PackedGemmWeights
{
    private readonly sbyte[] _quads;
    private readonly short[] _pairs;
    private readonly sbyte[] _reference;
    private readonly int[] _columnSums;
    private readonly int[] _weightZeroPoints;

    private PackedGemmWeights(GemmConfig config, int groups, int outPerGroup, int k, sbyte[] quads, short[] pairs, sbyte[] reference, int[] columnSums, int[] weightZeroPoints, bool hasWeightZeroPoints)
    {
        Config = config;
        Groups = groups;
        OutPerGroup = outPerGroup;
        K = k;
        KPadded = RoundUp(k, config.KR);
        PanelsPerGroup = (outPerGroup + config.NR - 1) / config.NR;
        _quads = quads;
        _pairs = pairs;
        _reference = reference;
        _columnSums = columnSums;
        _weightZeroPoints = weightZeroPoints;
        HasWeightZeroPoints = hasWeightZeroPoints;
    }

    /// <summary>The kernel these panels are for.</summary>
    public GemmConfig Config { get; }

    /// <summary>Independent GEMMs (conv groups; 1 for linear).</summary>
    public int Groups { get; }

    /// <summary>Output channels per group (the GEMM's N).</summary>
    public int OutPerGroup { get; }

    /// <summary>All output channels.</summary>
    public int OutChannels => Groups * OutPerGroup;

    /// <summary>The reduction length per output channel (the GEMM's K).</summary>
    public int K { get; }

    /// <summary>K rounded up to the kernel's KR (padding weights are zero).</summary>
    public int KPadded { get; }

    /// <summary>Panels of NR output channels per group.</summary>
    public int PanelsPerGroup { get; }

    /// <summary>Elements (sbyte or short) in one panel.</summary>
    public int PanelLength => KPadded * Config.NR;

    /// <summary>True when some output channel has a nonzero weight zero point (then row sums Σx are needed).</summary>
    public bool HasWeightZeroPoints { get; }

    /// <summary>Σw per output channel over the real K (int32, wrapping).</summary>
    public ReadOnlySpan<int> ColumnSums => _columnSums;

    /// <summary>zw per output channel.</summary>
    public ReadOnlySpan<int> WeightZeroPoints => _weightZeroPoints;

    /// <summary><see cref="PackedLayout.Int8Quads"/> panels, group-major then panel (empty for other layouts).</summary>
    public ReadOnlySpan<sbyte> Int8Quads => _quads;

    /// <summary><see cref="PackedLayout.Int16Pairs"/> panels, group-major then panel (empty for other layouts).</summary>
    public ReadOnlySpan<short> Int16Pairs => _pairs;

    /// <summary>The unpacked <c>[OutC][K]</c> rows (kept for <see cref="PackedLayout.Reference"/> only; empty otherwise).</summary>
    public ReadOnlySpan<sbyte> ReferenceRows => _reference;

    internal sbyte[] QuadArray => _quads;

    internal short[] PairArray => _pairs;

    internal sbyte[] ReferenceArray => _reference;

    internal int[] ColumnSumArray => _columnSums;

    internal int[] WeightZeroPointArray => _weightZeroPoints;

    /// <summary>Offset of panel <paramref name="panel"/> of group <paramref name="group"/> in the panel array.</summary>
    public int PanelOffset(int group, int panel) => ((group * PanelsPerGroup) + panel) * PanelLength;

    /// <summary>Packs <c>[OutC][K]</c> weight rows for <paramref name="config"/>.</summary>
    /// <param name="config">Kernel and layout.</param>
    /// <param name="weights">int8 rows, <c>[groups · outPerGroup][k]</c>.</param>
    /// <param name="weightZeroPoints">zw per output channel.</param>
    /// <param name="groups">Independent GEMMs.</param>
    /// <param name="outPerGroup">Output channels per group.</param>
    /// <param name="k">Row length.</param>
    public static PackedGemmWeights Pack(GemmConfig config, ReadOnlySpan<sbyte> weights, ReadOnlySpan<int> weightZeroPoints, int groups, int outPerGroup, int k)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (groups < 1 || outPerGroup < 1 || k < 1)
        {
            throw new ArgumentException($"Pack: groups ({groups}), output channels per group ({outPerGroup}) and K ({k}) must be positive.");
        }

        long outChannels = (long)groups * outPerGroup;
        if (weights.Length != outChannels * k)
        {
            throw new ArgumentException($"Pack: weights have {weights.Length} elements, expected {outChannels * k} ({outChannels}x{k}).", nameof(weights));
        }

        if (weightZeroPoints.Length != outChannels)
        {
            throw new ArgumentException($"Pack: {weightZeroPoints.Length} weight zero points for {outChannels} output channels.", nameof(weightZeroPoints));
        }

        int outTotal = (int)outChannels;
        var columnSums = new int[outTotal];
        bool hasZeroPoints = false;
        for (int oc = 0; oc < outTotal; oc++)
        {
            int sum = 0;
            ReadOnlySpan<sbyte> row = weights.Slice(oc * k, k);
            for (int i = 0; i < row.Length; i++)
            {
                sum = unchecked(sum + row[i]);
            }

            columnSums[oc] = sum;
            hasZeroPoints |= weightZeroPoints[oc] != 0;
        }

        int nr = config.NR;
        int kPadded = RoundUp(k, config.KR);
        int panels = (outPerGroup + nr - 1) / nr;
        long panelLength = (long)kPadded * nr;
        long total = panelLength * panels * groups;
        if (total > Array.MaxLength)
        {
            throw new ArgumentException($"Pack: {total} packed weights are more than one array holds.");
        }

        sbyte[] quads = [];
        short[] pairs = [];
        sbyte[] reference = [];
        switch (config.Layout)
        {
            case PackedLayout.Reference:
                reference = weights.ToArray();
                break;
            case PackedLayout.Int8Quads:
                quads = new sbyte[total];
                PackInt8Quads(weights, groups, outPerGroup, k, nr, kPadded, quads);
                break;
            case PackedLayout.Int16Pairs:
                pairs = new short[total];
                PackInt16Pairs(weights, groups, outPerGroup, k, nr, kPadded, pairs);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(config), config.Layout, "Pack: unknown layout.");
        }

        return new PackedGemmWeights(config, groups, outPerGroup, k, quads, pairs, reference, columnSums, weightZeroPoints.ToArray(), hasZeroPoints);
    }

    /// <summary>[Kpad/4][NR][4]: element (k, j) of a panel at ((k / 4) · NR + j) · 4 + k % 4.</summary>
    private static void PackInt8Quads(ReadOnlySpan<sbyte> weights, int groups, int outPerGroup, int k, int nr, int kPadded, Span<sbyte> packed)
    {
        int panels = (outPerGroup + nr - 1) / nr;
        int panelLength = kPadded * nr;
        for (int g = 0; g < groups; g++)
        {
            for (int p = 0; p < panels; p++)
            {
                Span<sbyte> panel = packed.Slice(((g * panels) + p) * panelLength, panelLength);
                Span<int> panelQuads = MemoryMarshal.Cast<sbyte, int>(panel);
                for (int j = 0; j < nr; j++)
                {
                    int n = (p * nr) + j;
                    if (n >= outPerGroup)
                    {
                        break; // zero channels (arrays start zeroed)
                    }

                    // Whole quads move as one int32 each (a model load packs every weight this way).
                    ReadOnlySpan<sbyte> row = weights.Slice(((g * outPerGroup) + n) * k, k);
                    ReadOnlySpan<byte> rowBytes = MemoryMarshal.AsBytes(row);
                    int quads = k >> 2;
                    for (int q = 0; q < quads; q++)
                    {
                        panelQuads[(q * nr) + j] = MemoryMarshal.Read<int>(rowBytes.Slice(q << 2));
                    }

                    for (int i = quads << 2; i < k; i++)
                    {
                        panel[((((i >> 2) * nr) + j) << 2) + (i & 3)] = row[i];
                    }
                }
            }
        }
    }

    /// <summary>[Kpad/2][NR][2] int16: element (k, j) of a panel at ((k / 2) · NR + j) · 2 + k % 2.</summary>
    private static void PackInt16Pairs(ReadOnlySpan<sbyte> weights, int groups, int outPerGroup, int k, int nr, int kPadded, Span<short> packed)
    {
        int panels = (outPerGroup + nr - 1) / nr;
        int panelLength = kPadded * nr;
        for (int g = 0; g < groups; g++)
        {
            for (int p = 0; p < panels; p++)
            {
                Span<short> panel = packed.Slice(((g * panels) + p) * panelLength, panelLength);
                for (int j = 0; j < nr; j++)
                {
                    int n = (p * nr) + j;
                    if (n >= outPerGroup)
                    {
                        break;
                    }

                    ReadOnlySpan<sbyte> row = weights.Slice(((g * outPerGroup) + n) * k, k);
                    for (int i = 0; i < k; i++)
                    {
                        panel[((((i >> 1) * nr) + j) << 1) + (i & 1)] = row[i];
                    }
                }
            }
        }
    }

    internal static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;
}
