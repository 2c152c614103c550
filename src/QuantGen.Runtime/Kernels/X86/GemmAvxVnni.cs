using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantGen.Kernels.X86;

/// <summary>
/// qu8s8-gemm-6x16c4-avxvnni: 6 rows × 16 output channels, <c>vpdpbusd</c> (u8 × s8, four products summed
/// into each int32 lane without saturation — the non-"s" form — so every accumulator is exact and wraps
/// like the scalar reference). Weights: <see cref="PackedLayout.Int8Quads"/> panels with NR = 16.
/// </summary>
public static unsafe class GemmAvxVnni
{
    /// <summary>Rows per tile.</summary>
    public const int MR = 6;

    /// <summary>Output channels per panel.</summary>
    public const int NR = 16;

    /// <summary>
    /// tile[r][j] = Σ_k a[r][k] · w[k][j] for r &lt; <paramref name="rows"/> (missing rows re-read the last
    /// valid row and are not meant to be used), all 16 columns.
    /// </summary>
    /// <param name="a">Row 0 of the activations, uint8; row r at <c>a + r·lda</c>; K bytes per row are read, never more.</param>
    /// <param name="lda">Row stride in bytes.</param>
    /// <param name="rows">Valid rows, 1..6.</param>
    /// <param name="k">K (unpadded).</param>
    /// <param name="w">The panel: <c>[ceil(K/4)][16][4]</c> sbyte.</param>
    /// <param name="tile">int32 output, <c>[6][16]</c>.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel6x16(byte* a, nint lda, int rows, int k, sbyte* w, int* tile)
    {
        // Preconditions the callers guarantee (no checks in release: this is the inner loop's entry).
        Debug.Assert(a != null && w != null && tile != null, "Kernel6x16: null pointer");
        Debug.Assert(rows is >= 1 and <= 6 && k >= 1 && (rows == 1 || lda >= k), "Kernel6x16: rows 1..6, k positive, rows of k bytes that do not overlap");
        byte* a0 = a;
        byte* a1 = rows > 1 ? a0 + lda : a0;
        byte* a2 = rows > 2 ? a1 + lda : a1;
        byte* a3 = rows > 3 ? a2 + lda : a2;
        byte* a4 = rows > 4 ? a3 + lda : a3;
        byte* a5 = rows > 5 ? a4 + lda : a4;
        Vector256<int> c00 = Vector256<int>.Zero, c01 = Vector256<int>.Zero;
        Vector256<int> c10 = Vector256<int>.Zero, c11 = Vector256<int>.Zero;
        Vector256<int> c20 = Vector256<int>.Zero, c21 = Vector256<int>.Zero;
        Vector256<int> c30 = Vector256<int>.Zero, c31 = Vector256<int>.Zero;
        Vector256<int> c40 = Vector256<int>.Zero, c41 = Vector256<int>.Zero;
        Vector256<int> c50 = Vector256<int>.Zero, c51 = Vector256<int>.Zero;
        int blocks = k >> 2;
        int tail = k & 3;
        nint offset = 0;
        for (int b = 0; b < blocks; b++, offset += 4, w += 64)
        {
            Vector256<sbyte> w0 = Vector256.Load(w);
            Vector256<sbyte> w1 = Vector256.Load(w + 32);
            Vector256<byte> x = Vector256.Create(Unsafe.ReadUnaligned<int>(a0 + offset)).AsByte();
            c00 = AvxVnni.MultiplyWideningAndAdd(c00, x, w0);
            c01 = AvxVnni.MultiplyWideningAndAdd(c01, x, w1);
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a1 + offset)).AsByte();
            c10 = AvxVnni.MultiplyWideningAndAdd(c10, x, w0);
            c11 = AvxVnni.MultiplyWideningAndAdd(c11, x, w1);
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a2 + offset)).AsByte();
            c20 = AvxVnni.MultiplyWideningAndAdd(c20, x, w0);
            c21 = AvxVnni.MultiplyWideningAndAdd(c21, x, w1);
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a3 + offset)).AsByte();
            c30 = AvxVnni.MultiplyWideningAndAdd(c30, x, w0);
            c31 = AvxVnni.MultiplyWideningAndAdd(c31, x, w1);
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a4 + offset)).AsByte();
            c40 = AvxVnni.MultiplyWideningAndAdd(c40, x, w0);
            c41 = AvxVnni.MultiplyWideningAndAdd(c41, x, w1);
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a5 + offset)).AsByte();
            c50 = AvxVnni.MultiplyWideningAndAdd(c50, x, w0);
            c51 = AvxVnni.MultiplyWideningAndAdd(c51, x, w1);
        }

        if (tail != 0)
        {
            // The last quad is read byte by byte so a row ending exactly at the buffer's end is never overrun;
            // the missing k multiply zero weights.
            Vector256<sbyte> w0 = Vector256.Load(w);
            Vector256<sbyte> w1 = Vector256.Load(w + 32);
            Vector256<byte> x = Vector256.Create(TailQuad(a0 + offset, tail)).AsByte();
            c00 = AvxVnni.MultiplyWideningAndAdd(c00, x, w0);
            c01 = AvxVnni.MultiplyWideningAndAdd(c01, x, w1);
            x = Vector256.Create(TailQuad(a1 + offset, tail)).AsByte();
            c10 = AvxVnni.MultiplyWideningAndAdd(c10, x, w0);
            c11 = AvxVnni.MultiplyWideningAndAdd(c11, x, w1);
            x = Vector256.Create(TailQuad(a2 + offset, tail)).AsByte();
            c20 = AvxVnni.MultiplyWideningAndAdd(c20, x, w0);
            c21 = AvxVnni.MultiplyWideningAndAdd(c21, x, w1);
            x = Vector256.Create(TailQuad(a3 + offset, tail)).AsByte();
            c30 = AvxVnni.MultiplyWideningAndAdd(c30, x, w0);
            c31 = AvxVnni.MultiplyWideningAndAdd(c31, x, w1);
            x = Vector256.Create(TailQuad(a4 + offset, tail)).AsByte();
            c40 = AvxVnni.MultiplyWideningAndAdd(c40, x, w0);
            c41 = AvxVnni.MultiplyWideningAndAdd(c41, x, w1);
            x = Vector256.Create(TailQuad(a5 + offset, tail)).AsByte();
            c50 = AvxVnni.MultiplyWideningAndAdd(c50, x, w0);
            c51 = AvxVnni.MultiplyWideningAndAdd(c51, x, w1);
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

    /// <summary>
    /// One row × 16 output channels (a linear layer at batch 1, a GEMM's last row): <see cref="Kernel6x16"/>
    /// would repeat the row six times, and one accumulator pair would wait on vpdpbusd's latency every
    /// quad. Here consecutive quads go to four independent accumulator pairs that are summed at the end;
    /// int32 addition wraps, so the order does not change a bit of the result.
    /// </summary>
    /// <param name="a">The row, uint8; exactly K bytes are read.</param>
    /// <param name="k">K (unpadded).</param>
    /// <param name="w">The panel: <c>[ceil(K/4)][16][4]</c> sbyte.</param>
    /// <param name="tile">int32 output; row 0 (16 values) is written.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel1x16(byte* a, int k, sbyte* w, int* tile)
    {
        Vector256<int> p0 = Vector256<int>.Zero, p1 = Vector256<int>.Zero;
        Vector256<int> q0 = Vector256<int>.Zero, q1 = Vector256<int>.Zero;
        Vector256<int> r0 = Vector256<int>.Zero, r1 = Vector256<int>.Zero;
        Vector256<int> s0 = Vector256<int>.Zero, s1 = Vector256<int>.Zero;
        int blocks = k >> 2;
        int b = 0;
        nint offset = 0;
        for (; b + 4 <= blocks; b += 4, offset += 16, w += 256)
        {
            Vector256<byte> x = Vector256.Create(Unsafe.ReadUnaligned<int>(a + offset)).AsByte();
            p0 = AvxVnni.MultiplyWideningAndAdd(p0, x, Vector256.Load(w));
            p1 = AvxVnni.MultiplyWideningAndAdd(p1, x, Vector256.Load(w + 32));
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a + offset + 4)).AsByte();
            q0 = AvxVnni.MultiplyWideningAndAdd(q0, x, Vector256.Load(w + 64));
            q1 = AvxVnni.MultiplyWideningAndAdd(q1, x, Vector256.Load(w + 96));
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a + offset + 8)).AsByte();
            r0 = AvxVnni.MultiplyWideningAndAdd(r0, x, Vector256.Load(w + 128));
            r1 = AvxVnni.MultiplyWideningAndAdd(r1, x, Vector256.Load(w + 160));
            x = Vector256.Create(Unsafe.ReadUnaligned<int>(a + offset + 12)).AsByte();
            s0 = AvxVnni.MultiplyWideningAndAdd(s0, x, Vector256.Load(w + 192));
            s1 = AvxVnni.MultiplyWideningAndAdd(s1, x, Vector256.Load(w + 224));
        }

        for (; b < blocks; b++, offset += 4, w += 64)
        {
            Vector256<byte> x = Vector256.Create(Unsafe.ReadUnaligned<int>(a + offset)).AsByte();
            p0 = AvxVnni.MultiplyWideningAndAdd(p0, x, Vector256.Load(w));
            p1 = AvxVnni.MultiplyWideningAndAdd(p1, x, Vector256.Load(w + 32));
        }

        int tail = k & 3;
        if (tail != 0)
        {
            Vector256<byte> x = Vector256.Create(TailQuad(a + offset, tail)).AsByte();
            q0 = AvxVnni.MultiplyWideningAndAdd(q0, x, Vector256.Load(w));
            q1 = AvxVnni.MultiplyWideningAndAdd(q1, x, Vector256.Load(w + 32));
        }

        ((p0 + q0) + (r0 + s0)).Store(tile);
        ((p1 + q1) + (r1 + s1)).Store(tile + 8);
    }

    /// <summary>
    /// The indirect form (XNNPACK's IGEMM): the K dimension is <paramref name="segments"/> runs of
    /// <paramref name="segmentLength"/> bytes (a multiple of 4), and run s of row r starts at
    /// <c>rows[s·6 + r]</c> — a convolution tap read straight from the NHWC input, or a row of input
    /// zero points for padding — so nothing is copied. tile[r][j] = Σ_s Σ_i rows[s·6+r][i] · w[s·L + i][j],
    /// summed in the same order as <see cref="Kernel6x16"/> over the gathered rows, and exact.
    /// </summary>
    /// <param name="rows">Run pointers, <c>[segments][6]</c> (rows past the valid ones repeat a valid row's).</param>
    /// <param name="segments">Runs per row (the kernel's taps).</param>
    /// <param name="segmentLength">Bytes per run, a multiple of 4.</param>
    /// <param name="w">The panel: <c>[segments · segmentLength / 4][16][4]</c> sbyte.</param>
    /// <param name="tile">int32 output, <c>[6][16]</c>.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel6x16Indirect(byte** rows, int segments, int segmentLength, sbyte* w, int* tile)
    {
        // Preconditions the callers guarantee (issue 12: a forged dilation once sent row pointers out of the
        // input here; the layers now refuse such geometry before any pointer is made).
        Debug.Assert(rows != null && w != null && tile != null, "Kernel6x16Indirect: null pointer");
        Debug.Assert(segments >= 1 && segmentLength >= 4 && (segmentLength & 3) == 0, "Kernel6x16Indirect: at least one segment of a positive multiple of 4 bytes");
        Debug.Assert((long)segments * segmentLength <= int.MaxValue, "Kernel6x16Indirect: the reduction length must fit in int32");
        Vector256<int> c00 = Vector256<int>.Zero, c01 = Vector256<int>.Zero;
        Vector256<int> c10 = Vector256<int>.Zero, c11 = Vector256<int>.Zero;
        Vector256<int> c20 = Vector256<int>.Zero, c21 = Vector256<int>.Zero;
        Vector256<int> c30 = Vector256<int>.Zero, c31 = Vector256<int>.Zero;
        Vector256<int> c40 = Vector256<int>.Zero, c41 = Vector256<int>.Zero;
        Vector256<int> c50 = Vector256<int>.Zero, c51 = Vector256<int>.Zero;
        for (int s = 0; s < segments; s++, rows += 6)
        {
            byte* a0 = rows[0], a1 = rows[1], a2 = rows[2], a3 = rows[3], a4 = rows[4], a5 = rows[5];
            for (nint offset = 0; offset < segmentLength; offset += 4, w += 64)
            {
                Vector256<sbyte> w0 = Vector256.Load(w);
                Vector256<sbyte> w1 = Vector256.Load(w + 32);
                Vector256<byte> x = Vector256.Create(Unsafe.ReadUnaligned<int>(a0 + offset)).AsByte();
                c00 = AvxVnni.MultiplyWideningAndAdd(c00, x, w0);
                c01 = AvxVnni.MultiplyWideningAndAdd(c01, x, w1);
                x = Vector256.Create(Unsafe.ReadUnaligned<int>(a1 + offset)).AsByte();
                c10 = AvxVnni.MultiplyWideningAndAdd(c10, x, w0);
                c11 = AvxVnni.MultiplyWideningAndAdd(c11, x, w1);
                x = Vector256.Create(Unsafe.ReadUnaligned<int>(a2 + offset)).AsByte();
                c20 = AvxVnni.MultiplyWideningAndAdd(c20, x, w0);
                c21 = AvxVnni.MultiplyWideningAndAdd(c21, x, w1);
                x = Vector256.Create(Unsafe.ReadUnaligned<int>(a3 + offset)).AsByte();
                c30 = AvxVnni.MultiplyWideningAndAdd(c30, x, w0);
                c31 = AvxVnni.MultiplyWideningAndAdd(c31, x, w1);
                x = Vector256.Create(Unsafe.ReadUnaligned<int>(a4 + offset)).AsByte();
                c40 = AvxVnni.MultiplyWideningAndAdd(c40, x, w0);
                c41 = AvxVnni.MultiplyWideningAndAdd(c41, x, w1);
                x = Vector256.Create(Unsafe.ReadUnaligned<int>(a5 + offset)).AsByte();
                c50 = AvxVnni.MultiplyWideningAndAdd(c50, x, w0);
                c51 = AvxVnni.MultiplyWideningAndAdd(c51, x, w1);
            }
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

    /// <summary>The last 1..3 bytes of a row as a little-endian quad, zero above.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int TailQuad(byte* p, int count)
    {
        int value = p[0];
        if (count > 1)
        {
            value |= p[1] << 8;
        }

        if (count > 2)
        {
            value |= p[2] << 16;
        }

        return value;
    }
}
