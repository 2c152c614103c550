using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantGen.Kernels.X86;

/// <summary>
/// qu8s8-gemm-8x32c2-avx512bw-widened: 8 rows × 32 output channels with 512-bit <c>vpmaddwd</c> on
/// activations widened to uint16 and int16 weights — exact for full-range u8×s8 (each int32 lane adds
/// two products of at most 255·128). <c>Avx512BW.MultiplyAddAdjacent</c>'s byte form (vpmaddubsw) is
/// deliberately not used: its int16 pair sums saturate unless activations are 7-bit.
/// Weights: <see cref="PackedLayout.Int16Pairs"/>, NR = 32.
/// </summary>
public static unsafe class GemmAvx512BW
{
    /// <summary>Rows per tile.</summary>
    public const int MR = 8;

    /// <summary>Output channels per panel.</summary>
    public const int NR = 32;

    /// <summary>tile[r][j] = Σ_k a[r][k] · w[k][j] over <paramref name="kPairs"/> k-pairs.</summary>
    /// <param name="a">Row 0 of the widened activations (uint16), rows padded with zeros to an even length.</param>
    /// <param name="lda">Row stride in uint16 elements.</param>
    /// <param name="rows">Valid rows, 1..8.</param>
    /// <param name="kPairs">ceil(K / 2).</param>
    /// <param name="w">The panel: <c>[kPairs][32][2]</c> int16.</param>
    /// <param name="tile">int32 output, <c>[8][32]</c>.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel8x32(ushort* a, nint lda, int rows, int kPairs, short* w, int* tile)
    {
        ushort* a0 = a;
        ushort* a1 = rows > 1 ? a0 + lda : a0;
        ushort* a2 = rows > 2 ? a1 + lda : a1;
        ushort* a3 = rows > 3 ? a2 + lda : a2;
        ushort* a4 = rows > 4 ? a3 + lda : a3;
        ushort* a5 = rows > 5 ? a4 + lda : a4;
        ushort* a6 = rows > 6 ? a5 + lda : a5;
        ushort* a7 = rows > 7 ? a6 + lda : a6;
        Vector512<int> c00 = Vector512<int>.Zero, c01 = Vector512<int>.Zero;
        Vector512<int> c10 = Vector512<int>.Zero, c11 = Vector512<int>.Zero;
        Vector512<int> c20 = Vector512<int>.Zero, c21 = Vector512<int>.Zero;
        Vector512<int> c30 = Vector512<int>.Zero, c31 = Vector512<int>.Zero;
        Vector512<int> c40 = Vector512<int>.Zero, c41 = Vector512<int>.Zero;
        Vector512<int> c50 = Vector512<int>.Zero, c51 = Vector512<int>.Zero;
        Vector512<int> c60 = Vector512<int>.Zero, c61 = Vector512<int>.Zero;
        Vector512<int> c70 = Vector512<int>.Zero, c71 = Vector512<int>.Zero;
        nint offset = 0;
        for (int b = 0; b < kPairs; b++, offset += 2, w += 64)
        {
            Vector512<short> w0 = Vector512.Load(w);
            Vector512<short> w1 = Vector512.Load(w + 32);
            Vector512<short> x = Vector512.Create(Unsafe.ReadUnaligned<int>(a0 + offset)).AsInt16();
            c00 = Avx512F.Add(c00, Avx512BW.MultiplyAddAdjacent(x, w0));
            c01 = Avx512F.Add(c01, Avx512BW.MultiplyAddAdjacent(x, w1));
            x = Vector512.Create(Unsafe.ReadUnaligned<int>(a1 + offset)).AsInt16();
            c10 = Avx512F.Add(c10, Avx512BW.MultiplyAddAdjacent(x, w0));
            c11 = Avx512F.Add(c11, Avx512BW.MultiplyAddAdjacent(x, w1));
            x = Vector512.Create(Unsafe.ReadUnaligned<int>(a2 + offset)).AsInt16();
            c20 = Avx512F.Add(c20, Avx512BW.MultiplyAddAdjacent(x, w0));
            c21 = Avx512F.Add(c21, Avx512BW.MultiplyAddAdjacent(x, w1));
            x = Vector512.Create(Unsafe.ReadUnaligned<int>(a3 + offset)).AsInt16();
            c30 = Avx512F.Add(c30, Avx512BW.MultiplyAddAdjacent(x, w0));
            c31 = Avx512F.Add(c31, Avx512BW.MultiplyAddAdjacent(x, w1));
            x = Vector512.Create(Unsafe.ReadUnaligned<int>(a4 + offset)).AsInt16();
            c40 = Avx512F.Add(c40, Avx512BW.MultiplyAddAdjacent(x, w0));
            c41 = Avx512F.Add(c41, Avx512BW.MultiplyAddAdjacent(x, w1));
            x = Vector512.Create(Unsafe.ReadUnaligned<int>(a5 + offset)).AsInt16();
            c50 = Avx512F.Add(c50, Avx512BW.MultiplyAddAdjacent(x, w0));
            c51 = Avx512F.Add(c51, Avx512BW.MultiplyAddAdjacent(x, w1));
            x = Vector512.Create(Unsafe.ReadUnaligned<int>(a6 + offset)).AsInt16();
            c60 = Avx512F.Add(c60, Avx512BW.MultiplyAddAdjacent(x, w0));
            c61 = Avx512F.Add(c61, Avx512BW.MultiplyAddAdjacent(x, w1));
            x = Vector512.Create(Unsafe.ReadUnaligned<int>(a7 + offset)).AsInt16();
            c70 = Avx512F.Add(c70, Avx512BW.MultiplyAddAdjacent(x, w0));
            c71 = Avx512F.Add(c71, Avx512BW.MultiplyAddAdjacent(x, w1));
        }

        c00.Store(tile);
        c01.Store(tile + 16);
        c10.Store(tile + 32);
        c11.Store(tile + 48);
        c20.Store(tile + 64);
        c21.Store(tile + 80);
        c30.Store(tile + 96);
        c31.Store(tile + 112);
        c40.Store(tile + 128);
        c41.Store(tile + 144);
        c50.Store(tile + 160);
        c51.Store(tile + 176);
        c60.Store(tile + 192);
        c61.Store(tile + 208);
        c70.Store(tile + 224);
        c71.Store(tile + 240);
    }
}
