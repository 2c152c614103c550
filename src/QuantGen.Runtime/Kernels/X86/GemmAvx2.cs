using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantGen.Kernels.X86;

/// <summary>
/// qu8s8-gemm-6x16c2-avx2-widened: 6 rows × 16 output channels. Exactness: activations arrive widened to
/// uint16 (0..255) and weights are packed as int16, so <c>vpmaddwd</c> sums two products of at most
/// 255·128 into int32 — never near saturation (<c>vpmaddubsw</c> would saturate its int16 pair sums
/// for full-range u8×s8: 2·255·127 &gt; 32767, and is not used). Weights: <see cref="PackedLayout.Int16Pairs"/>, NR = 16.
/// </summary>
public static unsafe class GemmAvx2
{
    /// <summary>Rows per tile.</summary>
    public const int MR = 6;

    /// <summary>Output channels per panel.</summary>
    public const int NR = 16;

    /// <summary>
    /// One row × 16 output channels (a recurrent step or a linear layer at batch 1, a GEMM's last row):
    /// <see cref="Kernel6x16"/> would multiply the row six times over. Consecutive k-pairs go to four independent
    /// accumulator pairs summed at the end; int32 addition wraps, so the order does not change a bit of the result.
    /// </summary>
    /// <param name="a">The widened row (uint16), padded with a zero to an even length; exactly 2·kPairs elements are read.</param>
    /// <param name="kPairs">ceil(K / 2).</param>
    /// <param name="w">The panel: <c>[kPairs][16][2]</c> int16.</param>
    /// <param name="tile">int32 output; row 0 (16 values) is written.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel1x16(ushort* a, int kPairs, short* w, int* tile)
    {
        Vector256<int> p0 = Vector256<int>.Zero, p1 = Vector256<int>.Zero;
        Vector256<int> q0 = Vector256<int>.Zero, q1 = Vector256<int>.Zero;
        Vector256<int> r0 = Vector256<int>.Zero, r1 = Vector256<int>.Zero;
        Vector256<int> s0 = Vector256<int>.Zero, s1 = Vector256<int>.Zero;
        int b = 0;
        nint offset = 0;
        for (; b + 4 <= kPairs; b += 4, offset += 8, w += 128)
        {
            Vector256<short> x = Vector256.Create(Unsafe.ReadUnaligned<int>(a + offset)).AsInt16();
            p0 = Avx2.Add(p0, Avx2.MultiplyAddAdjacent(x, Vector256.Load(w)));
            p1 = Avx2.Add(p1, Avx2.MultiplyAddAdjacent(x, Vector256.Load(w + 16)));
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a + offset + 2)).AsInt16();
            q0 = Avx2.Add(q0, Avx2.MultiplyAddAdjacent(x, Vector256.Load(w + 32)));
            q1 = Avx2.Add(q1, Avx2.MultiplyAddAdjacent(x, Vector256.Load(w + 48)));
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a + offset + 4)).AsInt16();
            r0 = Avx2.Add(r0, Avx2.MultiplyAddAdjacent(x, Vector256.Load(w + 64)));
            r1 = Avx2.Add(r1, Avx2.MultiplyAddAdjacent(x, Vector256.Load(w + 80)));
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a + offset + 6)).AsInt16();
            s0 = Avx2.Add(s0, Avx2.MultiplyAddAdjacent(x, Vector256.Load(w + 96)));
            s1 = Avx2.Add(s1, Avx2.MultiplyAddAdjacent(x, Vector256.Load(w + 112)));
        }

        for (; b < kPairs; b++, offset += 2, w += 32)
        {
            Vector256<short> x = Vector256.Create(Unsafe.ReadUnaligned<int>(a + offset)).AsInt16();
            p0 = Avx2.Add(p0, Avx2.MultiplyAddAdjacent(x, Vector256.Load(w)));
            p1 = Avx2.Add(p1, Avx2.MultiplyAddAdjacent(x, Vector256.Load(w + 16)));
        }

        ((p0 + q0) + (r0 + s0)).Store(tile);
        ((p1 + q1) + (r1 + s1)).Store(tile + 8);
    }

    /// <summary>tile[r][j] = Σ_k a[r][k] · w[k][j] over <paramref name="kPairs"/> k-pairs.</summary>
    /// <param name="a">Row 0 of the widened activations (uint16), each row padded with zeros to an even length.</param>
    /// <param name="lda">Row stride in uint16 elements.</param>
    /// <param name="rows">Valid rows, 1..6.</param>
    /// <param name="kPairs">ceil(K / 2).</param>
    /// <param name="w">The panel: <c>[kPairs][16][2]</c> int16.</param>
    /// <param name="tile">int32 output, <c>[6][16]</c>.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel6x16(ushort* a, nint lda, int rows, int kPairs, short* w, int* tile)
    {
        ushort* a0 = a;
        ushort* a1 = rows > 1 ? a0 + lda : a0;
        ushort* a2 = rows > 2 ? a1 + lda : a1;
        ushort* a3 = rows > 3 ? a2 + lda : a2;
        ushort* a4 = rows > 4 ? a3 + lda : a3;
        ushort* a5 = rows > 5 ? a4 + lda : a4;
        Vector256<int> c00 = Vector256<int>.Zero, c01 = Vector256<int>.Zero;
        Vector256<int> c10 = Vector256<int>.Zero, c11 = Vector256<int>.Zero;
        Vector256<int> c20 = Vector256<int>.Zero, c21 = Vector256<int>.Zero;
        Vector256<int> c30 = Vector256<int>.Zero, c31 = Vector256<int>.Zero;
        Vector256<int> c40 = Vector256<int>.Zero, c41 = Vector256<int>.Zero;
        Vector256<int> c50 = Vector256<int>.Zero, c51 = Vector256<int>.Zero;
        nint offset = 0;
        for (int b = 0; b < kPairs; b++, offset += 2, w += 32)
        {
            Vector256<short> w0 = Vector256.Load(w);
            Vector256<short> w1 = Vector256.Load(w + 16);
            Vector256<short> x = Vector256.Create(Unsafe.ReadUnaligned<int>(a0 + offset)).AsInt16();
            c00 = Avx2.Add(c00, Avx2.MultiplyAddAdjacent(x, w0));
            c01 = Avx2.Add(c01, Avx2.MultiplyAddAdjacent(x, w1));
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a1 + offset)).AsInt16();
            c10 = Avx2.Add(c10, Avx2.MultiplyAddAdjacent(x, w0));
            c11 = Avx2.Add(c11, Avx2.MultiplyAddAdjacent(x, w1));
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a2 + offset)).AsInt16();
            c20 = Avx2.Add(c20, Avx2.MultiplyAddAdjacent(x, w0));
            c21 = Avx2.Add(c21, Avx2.MultiplyAddAdjacent(x, w1));
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a3 + offset)).AsInt16();
            c30 = Avx2.Add(c30, Avx2.MultiplyAddAdjacent(x, w0));
            c31 = Avx2.Add(c31, Avx2.MultiplyAddAdjacent(x, w1));
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a4 + offset)).AsInt16();
            c40 = Avx2.Add(c40, Avx2.MultiplyAddAdjacent(x, w0));
            c41 = Avx2.Add(c41, Avx2.MultiplyAddAdjacent(x, w1));
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a5 + offset)).AsInt16();
            c50 = Avx2.Add(c50, Avx2.MultiplyAddAdjacent(x, w0));
            c51 = Avx2.Add(c51, Avx2.MultiplyAddAdjacent(x, w1));
        }

        c00.Store(tile);
        c01.Store(tile + 8);
        c10.Store(tile + 16);
        c11.Store(tile + 24);
        c20.Store(tile + 32);
        c21.Store(tile + 40);
        c30.Store(tile + 48);
        c31.Store(tile + 56);
        c40.Store(tile + 64);
        c41.Store(tile + 72);
        c50.Store(tile + 80);
        c51.Store(tile + 88);
    }
}
