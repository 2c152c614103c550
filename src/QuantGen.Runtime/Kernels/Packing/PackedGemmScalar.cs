namespace QuantGen.Kernels.Packing;

/// <summary>
/// Scalar micro-kernels that read the packed panel layouts exactly as the SIMD kernels do: the
/// executable definition of each layout. They back the <see cref="GemmConfig.ScalarEmulation"/> configs,
/// so the Arm64 <c>sdot</c> path's packing, activation offset and compensation are tested on x64.
/// </summary>
public static unsafe class PackedGemmScalar
{
    /// <summary>
    /// <see cref="PackedLayout.Int8Quads"/>: tile[r][j] = Σ_k (a[r][k] − offset) · w[k][j] over ceil(K/4)
    /// quads; past K the activation counts as 0 (then minus the offset) against a zero weight.
    /// </summary>
    /// <param name="a">Row 0 (uint8); row r at a + r·lda; K bytes read per row.</param>
    /// <param name="lda">Row stride.</param>
    /// <param name="rows">Valid rows (missing rows repeat the last one).</param>
    /// <param name="k">K.</param>
    /// <param name="w">Panel <c>[ceil(K/4)][nr][4]</c>.</param>
    /// <param name="mr">Tile rows.</param>
    /// <param name="nr">Tile columns.</param>
    /// <param name="activationOffset">Subtracted from every activation (128 for sdot, 0 for vpdpbusd).</param>
    /// <param name="tile">int32 <c>[mr][nr]</c>.</param>
    public static void Int8Quads(byte* a, nint lda, int rows, int k, sbyte* w, int mr, int nr, int activationOffset, int* tile)
    {
        int quads = (k + 3) >> 2;
        for (int r = 0; r < mr; r++)
        {
            byte* row = a + ((r < rows ? r : rows - 1) * lda);
            for (int j = 0; j < nr; j++)
            {
                int sum = 0;
                for (int q = 0; q < quads; q++)
                {
                    for (int t = 0; t < 4; t++)
                    {
                        int kk = (q * 4) + t;
                        int x = (kk < k ? row[kk] : 0) - activationOffset;
                        sum = unchecked(sum + (x * w[(((q * nr) + j) * 4) + t]));
                    }
                }

                tile[(r * nr) + j] = sum;
            }
        }
    }

    /// <summary><see cref="PackedLayout.Int16Pairs"/>: tile[r][j] = Σ_k a[r][k] · w[k][j] over <paramref name="kPairs"/> pairs of widened rows.</summary>
    /// <param name="a">Row 0 of uint16 activations padded with zeros to 2·kPairs.</param>
    /// <param name="lda">Row stride in elements.</param>
    /// <param name="rows">Valid rows.</param>
    /// <param name="kPairs">ceil(K/2).</param>
    /// <param name="w">Panel <c>[kPairs][nr][2]</c>.</param>
    /// <param name="mr">Tile rows.</param>
    /// <param name="nr">Tile columns.</param>
    /// <param name="tile">int32 <c>[mr][nr]</c>.</param>
    public static void Int16Pairs(ushort* a, nint lda, int rows, int kPairs, short* w, int mr, int nr, int* tile)
    {
        for (int r = 0; r < mr; r++)
        {
            ushort* row = a + ((r < rows ? r : rows - 1) * lda);
            for (int j = 0; j < nr; j++)
            {
                int sum = 0;
                for (int p = 0; p < kPairs; p++)
                {
                    sum = unchecked(sum + (row[2 * p] * w[(((p * nr) + j) * 2) + 0]) + (row[(2 * p) + 1] * w[(((p * nr) + j) * 2) + 1]));
                }

                tile[(r * nr) + j] = sum;
            }
        }
    }
}
