using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;

namespace QuantGen.Kernels.Arm;

/// <summary>
/// qu8s8-gemm-4x16c4-neondot: 4 rows × 16 output channels with Arm64 <c>sdot</c> (s8 × s8, four products
/// into each int32 lane, exact). <c>sdot</c> has no u8×s8 form, so activations are shifted into int8
/// (<c>x ^ 0x80 = x − 128</c>) and the tile is <c>Σ (x − 128)·w</c>; <see cref="GemmConfig.ActivationOffset"/>
/// = 128 tells the compensation to add <c>128·Σw</c> back. Weights: <see cref="PackedLayout.Int8Quads"/>, NR = 16
/// (the AVX-VNNI panel layout). Compiled everywhere, runs only where <see cref="Dp.IsSupported"/>;
/// <see cref="Packing.PackedGemmScalar.Int8Quads"/> is its scalar equivalent for tests on x64.
/// </summary>
public static unsafe class GemmNeonDot
{
    /// <summary>Rows per tile.</summary>
    public const int MR = 4;

    /// <summary>Output channels per panel.</summary>
    public const int NR = 16;

    /// <summary>tile[r][j] = Σ_k (a[r][k] − 128) · w[k][j] over the padded K (zero weights past K).</summary>
    /// <param name="a">Row 0 of the activations, uint8; K bytes per row are read, never more.</param>
    /// <param name="lda">Row stride in bytes.</param>
    /// <param name="rows">Valid rows, 1..4.</param>
    /// <param name="k">K (unpadded).</param>
    /// <param name="w">The panel: <c>[ceil(K/4)][16][4]</c> sbyte.</param>
    /// <param name="tile">int32 output, <c>[4][16]</c>.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel4x16(byte* a, nint lda, int rows, int k, sbyte* w, int* tile)
    {
        byte* a0 = a;
        byte* a1 = rows > 1 ? a0 + lda : a0;
        byte* a2 = rows > 2 ? a1 + lda : a1;
        byte* a3 = rows > 3 ? a2 + lda : a2;
        Vector128<int> c00 = Vector128<int>.Zero, c01 = Vector128<int>.Zero, c02 = Vector128<int>.Zero, c03 = Vector128<int>.Zero;
        Vector128<int> c10 = Vector128<int>.Zero, c11 = Vector128<int>.Zero, c12 = Vector128<int>.Zero, c13 = Vector128<int>.Zero;
        Vector128<int> c20 = Vector128<int>.Zero, c21 = Vector128<int>.Zero, c22 = Vector128<int>.Zero, c23 = Vector128<int>.Zero;
        Vector128<int> c30 = Vector128<int>.Zero, c31 = Vector128<int>.Zero, c32 = Vector128<int>.Zero, c33 = Vector128<int>.Zero;
        int blocks = (k + 3) >> 2;
        int fullBlocks = k >> 2;
        const int Flip = unchecked((int)0x80808080);
        nint offset = 0;
        for (int b = 0; b < blocks; b++, offset += 4, w += 64)
        {
            bool full = b < fullBlocks;
            int tail = k & 3;
            Vector128<sbyte> w0 = Vector128.Load(w);
            Vector128<sbyte> w1 = Vector128.Load(w + 16);
            Vector128<sbyte> w2 = Vector128.Load(w + 32);
            Vector128<sbyte> w3 = Vector128.Load(w + 48);
            Vector128<sbyte> x = Vector128.Create((full ? Unsafe.ReadUnaligned<int>(a0 + offset) : X86.GemmAvxVnni.TailQuad(a0 + offset, tail)) ^ Flip).AsSByte();
            c00 = Dp.DotProduct(c00, x, w0);
            c01 = Dp.DotProduct(c01, x, w1);
            c02 = Dp.DotProduct(c02, x, w2);
            c03 = Dp.DotProduct(c03, x, w3);
            x = Vector128.Create((full ? Unsafe.ReadUnaligned<int>(a1 + offset) : X86.GemmAvxVnni.TailQuad(a1 + offset, tail)) ^ Flip).AsSByte();
            c10 = Dp.DotProduct(c10, x, w0);
            c11 = Dp.DotProduct(c11, x, w1);
            c12 = Dp.DotProduct(c12, x, w2);
            c13 = Dp.DotProduct(c13, x, w3);
            x = Vector128.Create((full ? Unsafe.ReadUnaligned<int>(a2 + offset) : X86.GemmAvxVnni.TailQuad(a2 + offset, tail)) ^ Flip).AsSByte();
            c20 = Dp.DotProduct(c20, x, w0);
            c21 = Dp.DotProduct(c21, x, w1);
            c22 = Dp.DotProduct(c22, x, w2);
            c23 = Dp.DotProduct(c23, x, w3);
            x = Vector128.Create((full ? Unsafe.ReadUnaligned<int>(a3 + offset) : X86.GemmAvxVnni.TailQuad(a3 + offset, tail)) ^ Flip).AsSByte();
            c30 = Dp.DotProduct(c30, x, w0);
            c31 = Dp.DotProduct(c31, x, w1);
            c32 = Dp.DotProduct(c32, x, w2);
            c33 = Dp.DotProduct(c33, x, w3);
        }

        c00.Store(tile);
        c01.Store(tile + 4);
        c02.Store(tile + 8);
        c03.Store(tile + 12);
        c10.Store(tile + 16);
        c11.Store(tile + 20);
        c12.Store(tile + 24);
        c13.Store(tile + 28);
        c20.Store(tile + 32);
        c21.Store(tile + 36);
        c22.Store(tile + 40);
        c23.Store(tile + 44);
        c30.Store(tile + 48);
        c31.Store(tile + 52);
        c32.Store(tile + 56);
        c33.Store(tile + 60);
    }
}
