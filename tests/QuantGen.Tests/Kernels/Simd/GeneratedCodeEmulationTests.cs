using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.X86.Generated;
using Xunit.Abstractions;
using static QuantGen.Tests.Kernels.Simd.SimdTestData;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>
/// The generated kernels' exact bytes run in <see cref="GeneratedCodeInterpreter"/>, on any machine: every direct
/// variant (rows 1..6 × K mod 4) and the indirect form equal a naive product of the unpacked matrices and the
/// scalar layout reference, and touch no byte outside the activation rows, the panel and the valid tile rows
/// (each buffer is exactly as long as the kernel may use). This is what checks the code where the CPU has no
/// AVX-512 VNNI; <see cref="GeneratedKernelTests"/> runs the same cases on the hardware inside guard pages.
/// </summary>
public sealed class GeneratedCodeEmulationTests(ITestOutputHelper output)
{
    private const int MR = GemmAvx512VnniGenerated.MR, NR = GemmAvx512VnniGenerated.NR;

    public static IEnumerable<object[]> Variants()
    {
        for (int rows = 1; rows <= MR; rows++)
        {
            for (int tail = 0; tail < 4; tail++)
            {
                yield return [rows, tail];
            }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void DirectVariantEqualsTheReferenceAndStaysInItsBuffers(int rows, int tail)
    {
        byte[] code = GemmAvx512VnniEmitter.Direct(rows, tail);
        var random = new Random((rows * 10) + tail);
        long executed = 0;

        // K = 4·quads + tail for quad counts around the unrolling (0 .. 2·phases + 1), and a long one.
        int phases = GemmAvx512VnniEmitter.Phases(rows);
        var quadCounts = new List<int> { 1, 15, 16, 17, 63, 250 };
        for (int q = 0; q <= (2 * phases) + 1; q++)
        {
            quadCounts.Add(q);
        }

        foreach (int quads in quadCounts)
        {
            int k = (4 * quads) + tail;
            if (k == 0)
            {
                continue;
            }

            int columns = 1 + random.Next(NR);
            int lda = k + random.Next(0, 7);
            byte[] a = Activations(random, ((rows - 1) * lda) + k);
            sbyte[] w = Weights(random, columns * k);
            PackedGemmWeights packed = PackedGemmWeights.Pack(GemmConfig.AvxVnni, w, new int[columns], 1, columns, k);
            byte[] panel = MemoryMarshal.AsBytes(packed.Int8Quads).ToArray();
            byte[] tile = new byte[rows * NR * sizeof(int)];

            var cpu = new GeneratedCodeInterpreter();
            ulong pa = cpu.Map(a, "activations"), pw = cpu.Map(panel, "panel"), pt = cpu.Map(tile, "tile");
            cpu.Call(code, pa, (ulong)lda, (ulong)quads, pw, pt);
            executed += cpu.Executed;

            int[] reference = ScalarReference(a, lda, rows, k, packed);
            int[] actual = MemoryMarshal.Cast<byte, int>(tile).ToArray();
            for (int r = 0; r < rows; r++)
            {
                for (int j = 0; j < NR; j++)
                {
                    int expected = 0;
                    for (int i = 0; i < k; i++)
                    {
                        expected += a[(r * lda) + i] * (j < columns ? w[(j * k) + i] : 0);
                    }

                    Assert.True(expected == actual[(r * NR) + j], $"rows {rows}, K {k}, lda {lda}: tile[{r}][{j}] = {actual[(r * NR) + j]}, expected {expected}");
                    Assert.Equal(reference[(r * NR) + j], actual[(r * NR) + j]);
                }
            }
        }

        output.WriteLine($"{code.Length} bytes of code, {executed} instructions emulated");
    }

    [Fact]
    public void IndirectKernelEqualsTheReferenceAndStaysInItsBuffers()
    {
        byte[] code = GemmAvx512VnniEmitter.Indirect();
        var random = new Random(123);
        foreach (int segments in new[] { 1, 2, 3, 9 })
        {
            foreach (int length in new[] { 4, 8, 12, 16, 20, 44, 68 })
            {
                int k = segments * length;
                int inputLength = length + random.Next(0, 2 * length);
                byte[] input = Activations(random, inputLength);
                sbyte[] w = Weights(random, NR * k);
                PackedGemmWeights packed = PackedGemmWeights.Pack(GemmConfig.AvxVnni, w, new int[NR], 1, NR, k);
                byte[] panel = MemoryMarshal.AsBytes(packed.Int8Quads).ToArray();
                byte[] tile = new byte[MR * NR * sizeof(int)];
                var cpu = new GeneratedCodeInterpreter();
                ulong pin = cpu.Map(input, "input"), pw = cpu.Map(panel, "panel"), pt = cpu.Map(tile, "tile");

                var starts = new int[segments * MR];
                byte[] pointerTable = new byte[segments * MR * 8];
                for (int i = 0; i < starts.Length; i++)
                {
                    int pick = random.Next(4);
                    starts[i] = pick == 0 ? 0 : pick == 1 ? inputLength - length : random.Next(inputLength - length + 1);
                    BitConverter.TryWriteBytes(pointerTable.AsSpan(i * 8), pin + (ulong)starts[i]);
                }

                ulong pp = cpu.Map(pointerTable, "row pointers");
                cpu.Call(code, pp, (ulong)segments, (ulong)(length / 4), pw, pt);
                int[] actual = MemoryMarshal.Cast<byte, int>(tile).ToArray();
                for (int r = 0; r < MR; r++)
                {
                    for (int j = 0; j < NR; j++)
                    {
                        int expected = 0;
                        for (int s = 0; s < segments; s++)
                        {
                            for (int i = 0; i < length; i++)
                            {
                                expected += input[starts[(s * MR) + r] + i] * w[(j * k) + (s * length) + i];
                            }
                        }

                        Assert.True(expected == actual[(r * NR) + j], $"{segments} runs of {length}: tile[{r}][{j}] = {actual[(r * NR) + j]}, expected {expected}");
                    }
                }
            }
        }
    }

    /// <summary>The interpreter itself fails a kernel that reads one byte too many (so a passing run means something).</summary>
    [Fact]
    public void TheInterpreterCatchesAReadPastTheEnd()
    {
        // rows 1, tail 0, but told there is one more quad than the activation buffer holds.
        byte[] code = GemmAvx512VnniEmitter.Direct(1, 0);
        var cpu = new GeneratedCodeInterpreter();
        ulong pa = cpu.Map(new byte[8], "activations"), pw = cpu.Map(new byte[3 * 64], "panel"), pt = cpu.Map(new byte[64], "tile");
        var error = Assert.Throws<InvalidOperationException>(() => cpu.Call(code, pa, 8, 3, pw, pt));
        Assert.Contains("activations", error.Message);
    }

    private static unsafe int[] ScalarReference(byte[] a, int lda, int rows, int k, PackedGemmWeights packed)
    {
        var tile = new int[MR * NR];
        fixed (byte* pa = a)
        fixed (sbyte* pw = packed.Int8Quads)
        fixed (int* pt = tile)
        {
            PackedGemmScalar.Int8Quads(pa, lda, rows, k, pw, MR, NR, 0, pt);
        }

        return tile;
    }
}
