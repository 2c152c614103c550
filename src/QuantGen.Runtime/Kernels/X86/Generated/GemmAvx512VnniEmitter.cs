using System;
using System.Collections.Generic;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace QuantGen.Kernels.X86.Generated;

/// <summary>
/// Writes the x64 code of the AVX-512 VNNI GEMM micro-kernels (with Iced's assembler). They read the same
/// <see cref="PackedLayout.Int8Quads"/> panels (NR = 16) and produce the same int32 tiles as
/// <see cref="GemmAvxVnni"/>: one zmm register holds the 16 channels of a row, so a quad of k is one 64-byte
/// weight load and one 512-bit <c>vpdpbusd</c> per row (the managed kernel needs two 256-bit ones). Public so
/// the code can be decoded for inspection and checked instruction by instruction where the CPU cannot run it.
/// </summary>
/// <remarks>
/// <para>
/// Calling convention: System V x64 (Linux, the only place the code is mapped). Arguments arrive in rdi, rsi,
/// rdx, rcx, r8; rax, rcx, rdx, rsi, rdi, r8–r11 and every vector register may be clobbered; rbx and r12–r15 are
/// pushed before use. No call is made, so the stack alignment does not matter.
/// </para>
/// <para>
/// Exactness: <c>vpdpbusd</c> (not the saturating <c>vpdpbusds</c>) adds four u8×s8 products to each int32 lane
/// with wrap-around, like the scalar reference. A row's quads are spread over several accumulators (the
/// "phases") so consecutive <c>vpdpbusd</c>s do not wait on each other's latency; the phases are summed at the
/// end, and since int32 addition wraps the order cannot change a bit.
/// </para>
/// <para>
/// Memory: a direct kernel reads exactly K bytes per row (whole quads, then the last 1–3 bytes one by one),
/// ceil(K/4)·64 weight bytes and writes rows·64 tile bytes, never more. The tests run every variant with
/// inaccessible pages right after (and before) each buffer.
/// </para>
/// </remarks>
public static class GemmAvx512VnniEmitter
{
    /// <summary>Rows per tile (as <see cref="GemmAvxVnni.MR"/>, so the driver's tiles and pointer tables are shared).</summary>
    public const int MR = GemmAvxVnni.MR;

    /// <summary>Bytes of one quad-row of a panel: 16 channels × 4 k.</summary>
    private const int QuadBytes = 64;

    private static readonly AssemblerRegisterZMM[] Zmm =
    [
        zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15,
        zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30, zmm31,
    ];

    /// <summary>Accumulators per row: enough independent chains to cover <c>vpdpbusd</c>'s latency on two ports (at most 24 registers).</summary>
    public static int Phases(int rows) => rows <= 3 ? 4 : 2;

    /// <summary>
    /// <c>void kernel(byte* a, nint lda, nint quads, sbyte* w, int* tile)</c> for <paramref name="rows"/> rows
    /// and K = 4·quads + <paramref name="tail"/>: tile[r][j] = Σ_k a[r][k]·w[k][j] for r &lt; rows (only those
    /// rows are written).
    /// </summary>
    public static byte[] Direct(int rows, int tail)
    {
        if (rows is < 1 or > MR || tail is < 0 or > 3)
        {
            throw new ArgumentOutOfRangeException(nameof(rows), $"rows {rows} (1..{MR}), tail {tail} (0..3)");
        }

        var asm = new Assembler(64);
        int phases = Phases(rows);
        AssemblerRegisterZMM Accumulator(int phase, int row) => Zmm[(phase * rows) + row];
        AssemblerRegisterZMM weight = zmm28;

        // Rows 0..2 at rdi, rdi + lda, rdi + 2·lda; rows 3..5 likewise from r9 = rdi + 3·lda.
        static AssemblerMemoryOperand RowAs(AssemblerMemoryOperandFactory size, int row, int displacement) => row switch
        {
            0 => size[rdi + displacement],
            1 => size[rdi + rsi + displacement],
            2 => size[rdi + (rsi * 2) + displacement],
            3 => size[r9 + displacement],
            4 => size[r9 + rsi + displacement],
            _ => size[r9 + (rsi * 2) + displacement],
        };
        static AssemblerMemoryOperand Row(int row, int displacement) => RowAs(__dword_ptr, row, displacement);

        for (int i = 0; i < phases * rows; i++)
        {
            asm.vpxord(Zmm[i], Zmm[i], Zmm[i]);
        }

        if (rows > 3)
        {
            asm.lea(r9, __[rdi + (rsi * 2)]);
            asm.add(r9, rsi);
        }

        Label unrolled = asm.CreateLabel(), single = asm.CreateLabel(), singleLoop = asm.CreateLabel(), tailPart = asm.CreateLabel();

        // phases quads per iteration, one per accumulator set.
        asm.cmp(rdx, phases);
        asm.jb(single);
        asm.Label(ref unrolled);
        for (int phase = 0; phase < phases; phase++)
        {
            asm.vmovdqu32(weight, __zmmword_ptr[rcx + (phase * QuadBytes)]);
            for (int row = 0; row < rows; row++)
            {
                AssemblerRegisterZMM broadcast = Zmm[29 + (row % 3)];
                asm.vpbroadcastd(broadcast, Row(row, phase * 4));
                asm.vpdpbusd(Accumulator(phase, row), broadcast, weight);
            }
        }

        asm.add(rdi, phases * 4);
        if (rows > 3)
        {
            asm.add(r9, phases * 4);
        }

        asm.add(rcx, phases * QuadBytes);
        asm.sub(rdx, phases);
        asm.cmp(rdx, phases);
        asm.jae(unrolled);

        // The remaining 0..phases−1 whole quads, into the first accumulator set.
        asm.Label(ref single);
        asm.test(rdx, rdx);
        asm.jz(tailPart);
        asm.Label(ref singleLoop);
        asm.vmovdqu32(weight, __zmmword_ptr[rcx]);
        for (int row = 0; row < rows; row++)
        {
            AssemblerRegisterZMM broadcast = Zmm[29 + (row % 3)];
            asm.vpbroadcastd(broadcast, Row(row, 0));
            asm.vpdpbusd(Accumulator(0, row), broadcast, weight);
        }

        asm.add(rdi, 4);
        if (rows > 3)
        {
            asm.add(r9, 4);
        }

        asm.add(rcx, QuadBytes);
        asm.dec(rdx);
        asm.jnz(singleLoop);

        asm.Label(ref tailPart);
        if (tail != 0)
        {
            // The last 1..3 bytes of each row, read one by one (a row may end at the end of its buffer) into
            // a quad whose missing bytes are zero; the packed weights past K are zero too.
            asm.vmovdqu32(weight, __zmmword_ptr[rcx]);
            for (int row = 0; row < rows; row++)
            {
                if (tail == 1)
                {
                    asm.movzx(eax, RowAs(__byte_ptr, row, 0));
                }
                else
                {
                    asm.movzx(eax, RowAs(__word_ptr, row, 0));
                    if (tail == 3)
                    {
                        asm.movzx(r10d, RowAs(__byte_ptr, row, 2));
                        asm.shl(r10d, 16);
                        asm.or(eax, r10d);
                    }
                }

                AssemblerRegisterZMM broadcast = Zmm[29 + (row % 3)];
                asm.vpbroadcastd(broadcast, eax);
                asm.vpdpbusd(Accumulator(phases - 1, row), broadcast, weight);
            }
        }

        for (int row = 0; row < rows; row++)
        {
            for (int phase = 1; phase < phases; phase++)
            {
                asm.vpaddd(Accumulator(0, row), Accumulator(0, row), Accumulator(phase, row));
            }

            asm.vmovdqu32(__zmmword_ptr[r8 + (row * QuadBytes)], Accumulator(0, row));
        }

        asm.vzeroupper();
        asm.ret();
        return Encode(asm);
    }

    /// <summary>
    /// <c>void kernel(byte** rows, nint segments, nint segmentQuads, sbyte* w, int* tile)</c>, the indirect form
    /// of <see cref="GemmAvxVnni.Kernel6x16Indirect"/>: K is <c>segments</c> runs of 4·segmentQuads bytes, run s
    /// of row r starting at <c>rows[s·6 + r]</c>; all six rows are computed and written.
    /// </summary>
    public static byte[] Indirect()
    {
        const int Rows = MR;
        const int Phases = 2;
        var asm = new Assembler(64);
        AssemblerRegisterZMM Accumulator(int phase, int row) => Zmm[(phase * Rows) + row];
        AssemblerRegisterZMM weight = zmm28;
        AssemblerRegister64[] rowBase = [rax, r9, r10, r11, rbx, r12];

        asm.push(rbx);
        asm.push(r12);
        asm.push(r13);
        for (int i = 0; i < Phases * Rows; i++)
        {
            asm.vpxord(Zmm[i], Zmm[i], Zmm[i]);
        }

        // rdx: bytes per run. Each run is walked with r13 from −length up to 0 against run ends.
        asm.shl(rdx, 2);
        Label segment = asm.CreateLabel(), pairs = asm.CreateLabel(), last = asm.CreateLabel(), segmentEnd = asm.CreateLabel();
        asm.Label(ref segment);
        for (int row = 0; row < Rows; row++)
        {
            asm.mov(rowBase[row], __qword_ptr[rdi + (row * 8)]);
            asm.add(rowBase[row], rdx);
        }

        asm.mov(r13, rdx);
        asm.neg(r13);
        asm.cmp(r13, -8);
        asm.jg(last);
        asm.Label(ref pairs);
        for (int phase = 0; phase < Phases; phase++)
        {
            asm.vmovdqu32(weight, __zmmword_ptr[rcx + (phase * QuadBytes)]);
            for (int row = 0; row < Rows; row++)
            {
                AssemblerRegisterZMM broadcast = Zmm[29 + (row % 3)];
                asm.vpbroadcastd(broadcast, __dword_ptr[rowBase[row] + r13 + (phase * 4)]);
                asm.vpdpbusd(Accumulator(phase, row), broadcast, weight);
            }
        }

        asm.add(rcx, Phases * QuadBytes);
        asm.add(r13, 8);
        asm.cmp(r13, -8);
        asm.jle(pairs);

        // At most one quad of the run is left (r13 is −4 or 0).
        asm.Label(ref last);
        asm.test(r13, r13);
        asm.jz(segmentEnd);
        asm.vmovdqu32(weight, __zmmword_ptr[rcx]);
        for (int row = 0; row < Rows; row++)
        {
            AssemblerRegisterZMM broadcast = Zmm[29 + (row % 3)];
            asm.vpbroadcastd(broadcast, __dword_ptr[rowBase[row] + r13]);
            asm.vpdpbusd(Accumulator(0, row), broadcast, weight);
        }

        asm.add(rcx, QuadBytes);
        asm.Label(ref segmentEnd);
        asm.add(rdi, Rows * 8);
        asm.dec(rsi);
        asm.jnz(segment);

        for (int row = 0; row < Rows; row++)
        {
            asm.vpaddd(Accumulator(0, row), Accumulator(0, row), Accumulator(1, row));
            asm.vmovdqu32(__zmmword_ptr[r8 + (row * QuadBytes)], Accumulator(0, row));
        }

        asm.pop(r13);
        asm.pop(r12);
        asm.pop(rbx);
        asm.vzeroupper();
        asm.ret();
        return Encode(asm);
    }

    /// <summary>The assembled bytes (position-independent: only relative branches inside the kernel).</summary>
    /// <summary>Independent accumulators in <see cref="PeakLoop"/> (enough to cover vpdpbusd's latency on two ports).</summary>
    public const int PeakAccumulators = 12;

    /// <summary>
    /// The 512-bit vpdpbusd ceiling's loop, <c>void(nint iterations)</c>: <see cref="PeakAccumulators"/> independent zmm
    /// accumulators, each updated once per iteration from two registers (no memory operand), so it measures the VNNI
    /// unit alone: 2·64 multiply-add operations per instruction. Clobbers only caller-saved registers.
    /// </summary>
    public static byte[] PeakLoop()
    {
        var asm = new Assembler(64);
        Label loop = asm.CreateLabel(), done = asm.CreateLabel();
        for (int i = 0; i < PeakAccumulators; i++)
        {
            asm.vpxord(Zmm[i], Zmm[i], Zmm[i]);
        }

        asm.vpternlogd(zmm28, zmm28, zmm28, 0xFF); // all ones: 255 × −1 products, the values do not matter
        asm.vpxord(zmm29, zmm29, zmm29);
        asm.test(rdi, rdi);
        asm.jle(done);
        asm.Label(ref loop);
        for (int i = 0; i < PeakAccumulators; i++)
        {
            asm.vpdpbusd(Zmm[i], zmm28, zmm29);
        }

        asm.dec(rdi);
        asm.jnz(loop);
        asm.Label(ref done);
        asm.vzeroupper();
        asm.ret();
        return Encode(asm);
    }

    private static byte[] Encode(Assembler asm)
    {
        var writer = new ByteWriter();
        asm.Assemble(writer, 0);
        return writer.Bytes.ToArray();
    }

    private sealed class ByteWriter : CodeWriter
    {
        public List<byte> Bytes { get; } = new(1024);

        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}
