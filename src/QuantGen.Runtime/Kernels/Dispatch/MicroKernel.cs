using System;
using QuantGen.Kernels.Packing;

namespace QuantGen.Kernels;

/// <summary>A safe entry to one micro-kernel call on one panel, for tests and benchmarks of the kernels themselves.</summary>
public static unsafe class MicroKernel
{
    /// <summary>
    /// Runs the config's micro-kernel once: <c>tile[r][j] = Σ_k (a[r][k] − offset) · w[k][j]</c> for panel 0 of
    /// <paramref name="weights"/> (r &lt; rows; rows past <paramref name="rows"/> are unspecified).
    /// </summary>
    /// <param name="config">The kernel; must be supported here.</param>
    /// <param name="a">uint8 rows: row r at <c>r · lda</c>, K bytes each (the last row may end the span).</param>
    /// <param name="lda">Row stride.</param>
    /// <param name="rows">Valid rows, 1..MR.</param>
    /// <param name="weights">Weights packed for <paramref name="config"/>.</param>
    /// <param name="tile">int32 <c>[MR][NR]</c>.</param>
    public static void RunTile(GemmConfig config, ReadOnlySpan<byte> a, int lda, int rows, PackedGemmWeights weights, Span<int> tile)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        config.EnsureSupported();
        int k = weights.K;
        if (weights.Config != config || config.Layout == PackedLayout.Reference)
        {
            throw new ArgumentException($"MicroKernel: weights packed for {weights.Config.Name}, not {config.Name}, or a config without panels.", nameof(weights));
        }

        if (rows < 1 || rows > config.MR || lda < k || a.Length < ((long)(rows - 1) * lda) + k || tile.Length < config.MR * config.NR)
        {
            throw new ArgumentException($"MicroKernel: rows {rows} (1..{config.MR}), lda {lda} (≥ K = {k}), {a.Length} activation bytes and a tile of {tile.Length} (≥ {config.MR * config.NR}) do not fit.");
        }

        int wideStride = PackedGemmWeights.RoundUp(k, 2);
        var wide = new ushort[config.MR * wideStride];
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < k; i++)
            {
                wide[(r * wideStride) + i] = a[(r * lda) + i];
            }
        }

        fixed (byte* pa = a)
        fixed (ushort* pw = wide)
        fixed (sbyte* quads = weights.QuadArray)
        fixed (short* pairs = weights.PairArray)
        fixed (int* pt = tile)
        {
            GemmDriver.RunMicroKernel(config, pa, lda, pw, wideStride, rows, k, quads, pairs, pt);
        }
    }
}
