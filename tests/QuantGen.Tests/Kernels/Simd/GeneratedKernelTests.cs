using System;
using System.Collections.Generic;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.X86;
using QuantGen.Kernels.X86.Generated;
using Xunit.Abstractions;
using static QuantGen.Tests.Kernels.Simd.SimdTestData;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>
/// The AVX-512 VNNI micro-kernels generated at run time, called directly: every variant (rows 1..6 × K mod 4,
/// and the indirect form) equals a naive product of the unpacked matrices and the scalar layout reference
/// <see cref="PackedGemmScalar.Int8Quads"/>, with every buffer (activations, weights, tile) placed against an
/// inaccessible page on either side, so one byte read or written outside kills the run. The tile buffer holds
/// exactly the valid rows, so writing a row too many faults as well.
/// </summary>
public sealed unsafe class GeneratedKernelTests(ITestOutputHelper output)
{
    private const int MR = GemmAvx512VnniGenerated.MR, NR = GemmAvx512VnniGenerated.NR;

    /// <summary>K around every block of the kernel (the quad, the 2- and 4-quad unrolling) and of the caller (16, 64).</summary>
    public static IEnumerable<object[]> KSizes()
    {
        foreach (int k in new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 19, 31, 32, 33, 63, 64, 65, 67, 127, 129, 255, 258, 1001 })
        {
            yield return [k];
        }
    }

    [Theory]
    [MemberData(nameof(KSizes))]
    public void DirectKernelEqualsTheReferenceInsideGuardPages(int k)
    {
        if (Skip())
        {
            return;
        }

        var random = new Random(900 + k);
        for (int rows = 1; rows <= MR; rows++)
        {
            foreach (GuardedBuffer.Placement placement in new[] { GuardedBuffer.Placement.AgainstEnd, GuardedBuffer.Placement.AgainstStart })
            {
                int lda = k + random.Next(0, 6); // the last row ends exactly at the buffer's end
                CheckDirect(random, rows, k, lda, columns: 1 + random.Next(NR), placement);
            }
        }
    }

    [Fact]
    public void ThePeakLoopRunsWhereTheKernelsDoAndIsRefusedElsewhere()
    {
        if (!GemmAvx512VnniGenerated.IsAvailable)
        {
            var error = Assert.Throws<PlatformNotSupportedException>(() => GemmAvx512VnniGenerated.PeakLoop(10));
            Assert.Contains("do not run here", error.Message);
            return;
        }

        // Register-only code that clobbers only caller-saved registers: the process survives it (a callee-saved register
        // or the stack disturbed would crash the runtime), 0 and negative counts return at once, and the kernels are
        // still exact after it ran.
        GemmAvx512VnniGenerated.PeakLoop(0);
        GemmAvx512VnniGenerated.PeakLoop(-5);
        GemmAvx512VnniGenerated.PeakLoop(100_000);
        CheckDirect(new Random(7), MR, 37, 40, NR, GuardedBuffer.Placement.AgainstEnd);
    }

    /// <summary>Random shapes, strides and channel counts (seeded), 400 cases.</summary>
    [Fact]
    public void DirectKernelEqualsTheReferenceOnRandomShapes()
    {
        if (Skip())
        {
            return;
        }

        var random = new Random(20261207);
        for (int i = 0; i < 400; i++)
        {
            int k = 1 + random.Next(i < 200 ? 80 : 700);
            int rows = 1 + random.Next(MR);
            int lda = k + random.Next(0, 40);
            CheckDirect(random, rows, k, lda, 1 + random.Next(NR), (GuardedBuffer.Placement)(i & 1));
        }
    }

    [Fact]
    public void IndirectKernelEqualsTheReferenceInsideGuardPages()
    {
        if (Skip())
        {
            return;
        }

        var random = new Random(77);
        foreach (int segments in new[] { 1, 2, 3, 7, 9, 25 })
        {
            foreach (int length in new[] { 4, 8, 12, 16, 20, 44, 64, 68 })
            {
                foreach (GuardedBuffer.Placement placement in new[] { GuardedBuffer.Placement.AgainstEnd, GuardedBuffer.Placement.AgainstStart })
                {
                    CheckIndirect(random, segments, length, placement);
                }
            }
        }
    }

    /// <summary>The same tiles as the managed AVX-VNNI kernels (which write all six rows; compared on the valid ones).</summary>
    [Fact]
    public void DirectKernelEqualsTheManagedAvxVnniKernel()
    {
        if (Skip() || !GemmConfig.AvxVnni.IsSupported)
        {
            return;
        }

        var random = new Random(5);
        foreach (int k in new[] { 1, 3, 4, 7, 16, 33, 100, 301 })
        {
            for (int rows = 1; rows <= MR; rows++)
            {
                byte[] a = Activations(random, rows * k);
                sbyte[] w = Weights(random, NR * k);
                PackedGemmWeights packed = PackedGemmWeights.Pack(GemmConfig.AvxVnni, w, new int[NR], 1, NR, k);
                var managed = new int[MR * NR];
                var generated = new int[MR * NR];
                fixed (byte* pa = a)
                fixed (sbyte* pw = packed.Int8Quads)
                fixed (int* pm = managed, pg = generated)
                {
                    if (rows == 1)
                    {
                        GemmAvxVnni.Kernel1x16(pa, k, pw, pm);
                    }
                    else
                    {
                        GemmAvxVnni.Kernel6x16(pa, k, rows, k, pw, pm);
                    }

                    GemmAvx512VnniGenerated.Kernel6x16(pa, k, rows, k, pw, pg);
                }

                Assert.Equal(managed.AsSpan(0, rows * NR).ToArray(), generated.AsSpan(0, rows * NR).ToArray());
            }
        }
    }

    /// <summary>A system that refuses executable memory (simulated): no kernels, and the reason is reported.</summary>
    [Fact]
    public void RefusedExecutableMemoryLeavesTheManagedKernelsAndSaysWhy()
    {
        bool generated = GemmAvx512VnniGenerated.TryGenerate(Refuse, out string status);
        Assert.False(generated);
        Assert.StartsWith("managed kernels:", status);
        if (GemmAvx512VnniGenerated.MissingHardware() is { } missing)
        {
            // Refused before any code is mapped.
            Assert.Contains(missing, status);
        }
        else
        {
            Assert.Contains("no executable memory (mprotect refused: simulated policy)", status);
        }

        // The process's own kernels are unaffected.
        output.WriteLine($"process: {GemmAvx512VnniGenerated.Status}; simulated: {status}");
    }

    /// <summary>The dispatcher picks the generated kernels exactly when they run and nothing forces a managed path, and says so.</summary>
    [Fact]
    public void TheDispatcherReportsWhichGemmKernelsRun()
    {
        bool forced = !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(KernelDispatch.OverrideVariable));
        bool expectGenerated = KernelDispatch.Isa == KernelIsa.AvxVnni && !forced && GemmAvx512VnniGenerated.IsAvailable;
        Assert.Equal(expectGenerated ? GemmConfig.AvxVnniGenerated : GemmConfig.For(KernelDispatch.Isa), KernelDispatch.Config);
        string info = KernelDispatch.KernelInfo;
        output.WriteLine(info);
        Assert.Contains(KernelDispatch.Config.Name, info);
        if (KernelDispatch.Isa == KernelIsa.AvxVnni)
        {
            Assert.Contains(forced ? "QUANTGEN_ISA forces them" : GemmAvx512VnniGenerated.Status, info);
        }
    }

    /// <summary>Generating and mapping a second set with the system's memory also works, and passes the start-up check.</summary>
    [Fact]
    public void ASecondGeneratedSetPassesItsCheck()
    {
        if (Skip())
        {
            return;
        }

        Assert.True(GemmAvx512VnniGenerated.TryGenerate(MapWithTheSystem, out string status), status);
        Assert.StartsWith("generated AVX-512 VNNI kernels", status);

        static nint MapWithTheSystem(ReadOnlySpan<byte> code, out string? error)
        {
            // The runtime's own mapper is internal; this is the same W^X sequence through the test's libc imports.
            error = null;
            return GuardedBuffer.MapExecutable(code);
        }
    }

    /// <summary>A mapper that fails as a system forbidding executable memory would.</summary>
    private static nint Refuse(ReadOnlySpan<byte> code, out string? error)
    {
        Assert.True(code.Length > 0);
        error = "mprotect refused: simulated policy";
        return 0;
    }

    private bool Skip()
    {
        if (!GuardedBuffer.Supported)
        {
            output.WriteLine("SKIPPED: guard-page buffers are made with Linux x64 mmap.");
            return true;
        }

        if (!GemmAvx512VnniGenerated.IsAvailable)
        {
            output.WriteLine($"SKIPPED: {GemmAvx512VnniGenerated.Status}.");
            return true;
        }

        return false;
    }

    private static void CheckDirect(Random random, int rows, int k, int lda, int columns, GuardedBuffer.Placement placement)
    {
        byte[] a = Activations(random, ((rows - 1) * lda) + k);
        sbyte[] w = Weights(random, columns * k);
        PackedGemmWeights packed = PackedGemmWeights.Pack(GemmConfig.AvxVnniGenerated, w, new int[columns], 1, columns, k);
        Assert.Equal(((k + 3) / 4) * 64, packed.Int8Quads.Length);

        using GuardedBuffer activations = GuardedBuffer.Of<byte>(a, placement);
        using GuardedBuffer weights = GuardedBuffer.Of(packed.Int8Quads, placement);
        using var tile = new GuardedBuffer(rows * NR * sizeof(int), placement);
        GemmAvx512VnniGenerated.Kernel6x16(activations.Pointer, lda, rows, k, (sbyte*)weights.Pointer, (int*)tile.Pointer);

        var reference = new int[MR * NR];
        fixed (byte* pa = a)
        fixed (sbyte* pw = packed.Int8Quads)
        fixed (int* pr = reference)
        {
            PackedGemmScalar.Int8Quads(pa, lda, rows, k, pw, MR, NR, 0, pr);
        }

        int* actual = (int*)tile.Pointer;
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < NR; j++)
            {
                int expected = 0;
                for (int i = 0; i < k; i++)
                {
                    expected += a[(r * lda) + i] * (j < columns ? w[(j * k) + i] : 0);
                }

                int value = actual[(r * NR) + j];
                Assert.True(expected == value, $"rows {rows}, K {k}, lda {lda}, {columns} channels, {placement}: tile[{r}][{j}] = {value}, expected {expected}");
                Assert.Equal(reference[(r * NR) + j], value);
            }
        }
    }

    private static void CheckIndirect(Random random, int segments, int length, GuardedBuffer.Placement placement)
    {
        int k = segments * length;
        int inputLength = length + random.Next(0, 3 * length);
        byte[] input = Activations(random, inputLength);
        sbyte[] w = Weights(random, NR * k);
        PackedGemmWeights packed = PackedGemmWeights.Pack(GemmConfig.AvxVnniGenerated, w, new int[NR], 1, NR, k);
        using GuardedBuffer source = GuardedBuffer.Of<byte>(input, placement);
        using GuardedBuffer weights = GuardedBuffer.Of(packed.Int8Quads, placement);
        using var tile = new GuardedBuffer(MR * NR * sizeof(int), placement);
        var starts = new int[segments * MR];
        byte*[] pointers = new byte*[segments * MR];
        for (int i = 0; i < starts.Length; i++)
        {
            // Runs touching the first and the last byte of the input, and anywhere between.
            int pick = random.Next(4);
            starts[i] = pick == 0 ? 0 : pick == 1 ? inputLength - length : random.Next(inputLength - length + 1);
            pointers[i] = source.Pointer + starts[i];
        }

        fixed (byte** rows = pointers)
        {
            GemmAvx512VnniGenerated.Kernel6x16Indirect(rows, segments, length, (sbyte*)weights.Pointer, (int*)tile.Pointer);
        }

        int* actual = (int*)tile.Pointer;
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

                Assert.True(expected == actual[(r * NR) + j], $"{segments} runs of {length}, {placement}: tile[{r}][{j}] = {actual[(r * NR) + j]}, expected {expected}");
            }
        }
    }
}
