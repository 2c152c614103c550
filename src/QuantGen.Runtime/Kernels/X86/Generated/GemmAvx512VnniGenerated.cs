using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Threading;
using QuantGen.Kernels.Packing;

namespace QuantGen.Kernels.X86.Generated;

/// <summary>
/// qu8s8-gemm-6x16c4-avx512vnni-generated: the AVX-VNNI kernels' tiles (6 rows × 16 channels, the same
/// <see cref="PackedLayout.Int8Quads"/> panels, the same int32 results) computed with 512-bit <c>vpdpbusd</c>,
/// whose .NET 10 has no intrinsic. The machine code is written at run time by <see cref="GemmAvx512VnniEmitter"/>
/// (Iced), mapped read-execute once per process on first use, and called through unmanaged function pointers:
/// 24 direct variants (rows 1..6 × K mod 4) and the indirect (per-tap pointer) form. The calls skip the GC
/// transition (<c>SuppressGCTransition</c>): a tile takes microseconds, touches only pinned buffers, never blocks
/// and never calls back, while a transition per tile would cost a noticeable share of a small layer.
/// </summary>
/// <remarks>
/// Refused — and the managed <see cref="GemmAvxVnni"/> kernels run, with <see cref="Status"/> saying why — when
/// <c>QUANTGEN_JIT=0</c>, when the CPU (or <c>DOTNET_EnableAVX512=0</c>) lacks AVX-512 or its VNNI extension,
/// off Linux x64, when the system will not make memory executable, or when the generated code fails its
/// start-up check against the scalar layout reference.
/// <para>
/// .NET 11 brings <c>AvxVnni.V512.MultiplyWideningAndAdd</c> (512-bit vpdpbusd). With it, the same tiles can be
/// written as managed code (a <c>GemmAvx512Vnni</c> beside <see cref="GemmAvxVnni"/>, dispatched from
/// <see cref="GemmDriver.RunMicroKernel"/> where <see cref="GemmConfig.Generated"/> is tested today), and this
/// class becomes the path for .NET 10 and for processes that refuse neither.
/// </para>
/// </remarks>
public static unsafe class GemmAvx512VnniGenerated
{
    /// <summary>The environment variable that turns the generated kernels off (<c>0</c>) or on (<c>1</c>, the default).</summary>
    public const string SwitchVariable = "QUANTGEN_JIT";

    /// <summary>Rows per tile.</summary>
    public const int MR = GemmAvxVnni.MR;

    /// <summary>Output channels per panel.</summary>
    public const int NR = GemmAvxVnni.NR;

    /// <summary>Maps code into executable memory: the address, or 0 and why not.</summary>
    /// <param name="code">The machine code.</param>
    /// <param name="error">Why the code could not be mapped (null on success).</param>
    public delegate nint CodeMapper(ReadOnlySpan<byte> code, out string? error);

    // The code is generated and mapped once per process, by one thread (ExecutionAndPublication; Create never
    // throws: a failure becomes a refusal with its reason).
    private static readonly Lazy<KernelSet> s_generated = new(() => Create(ExecutableMemory.TryMap), LazyThreadSafetyMode.ExecutionAndPublication);

    // PublicationOnly: a bad QUANTGEN_JIT throws on every use rather than caching one exception; a good
    // outcome (the generated set or a refusal reason) is kept for the process.
    private static readonly Lazy<KernelSet> s_kernels = new(CreateForProcess, LazyThreadSafetyMode.PublicationOnly);

    // The entry table of s_kernels once it was read with kernels in it: a tile call then costs one load.
    private static nint* s_direct;

    /// <summary>True when the generated kernels run in this process.</summary>
    /// <exception cref="QuantGenConfigurationException">QUANTGEN_JIT holds something other than 0/1/on/off/true/false.</exception>
    public static bool IsAvailable => s_kernels.Value.Available;

    /// <summary>Which kernels run and, when not these, why (for <see cref="KernelDispatch.KernelInfo"/>).</summary>
    public static string Status => s_kernels.Value.Status;

    /// <summary>
    /// tile[r][j] = Σ_k a[r][k]·w[k][j] for r &lt; <paramref name="rows"/> (only those rows are written), all 16
    /// columns — <see cref="GemmAvxVnni.Kernel6x16"/>'s contract; exactly K bytes per row are read.
    /// </summary>
    /// <param name="a">Row 0 (uint8); row r at <c>a + r·lda</c>.</param>
    /// <param name="lda">Row stride in bytes.</param>
    /// <param name="rows">Valid rows, 1..6.</param>
    /// <param name="k">K (unpadded), positive.</param>
    /// <param name="w">The panel: <c>[ceil(K/4)][16][4]</c> sbyte.</param>
    /// <param name="tile">int32 output, <c>[6][16]</c>.</param>
    /// <exception cref="PlatformNotSupportedException">The generated kernels are not available here (<see cref="Status"/>).</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Kernel6x16(byte* a, nint lda, int rows, int k, sbyte* w, int* tile)
    {
        nint* direct = s_direct;
        if (direct == null)
        {
            direct = s_kernels.Value.Direct;
            if (direct == null)
            {
                ThrowUnavailable();
            }

            s_direct = direct; // the table is complete before it is published; a racing thread stores the same pointer
        }

        ((delegate* unmanaged[SuppressGCTransition]<byte*, nint, nint, sbyte*, int*, void>)direct[((rows - 1) * 4) + (k & 3)])(a, lda, k >> 2, w, tile);
    }

    /// <summary>
    /// <see cref="GemmAvxVnni.Kernel6x16Indirect"/>'s contract: K is <paramref name="segments"/> runs of
    /// <paramref name="segmentLength"/> bytes (a positive multiple of 4), run s of row r at <c>rows[s·6 + r]</c>.
    /// </summary>
    /// <param name="rows">Run pointers, <c>[segments][6]</c>.</param>
    /// <param name="segments">Runs per row.</param>
    /// <param name="segmentLength">Bytes per run, a positive multiple of 4.</param>
    /// <param name="w">The panel: <c>[segments · segmentLength / 4][16][4]</c> sbyte.</param>
    /// <param name="tile">int32 output, <c>[6][16]</c>.</param>
    /// <exception cref="PlatformNotSupportedException">The generated kernels are not available here (<see cref="Status"/>).</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Kernel6x16Indirect(byte** rows, int segments, int segmentLength, sbyte* w, int* tile)
    {
        nint indirect = s_kernels.Value.Indirect;
        if (indirect == 0)
        {
            ThrowUnavailable();
        }

        ((delegate* unmanaged[SuppressGCTransition]<byte**, nint, nint, sbyte*, int*, void>)indirect)(rows, segments, segmentLength >> 2, w, tile);
    }

    /// <summary>
    /// Generates, maps with <paramref name="mapper"/> and checks a complete set of kernels without installing
    /// it (the process's own set is made once with the system's executable memory): how the refusal path is
    /// tested with a mapper that fails, as a W^X policy would.
    /// </summary>
    /// <param name="mapper">Where the code goes.</param>
    /// <param name="status">What runs, or why the generated kernels cannot.</param>
    /// <returns>True when the kernels were generated, mapped and passed their check.</returns>
    public static bool TryGenerate(CodeMapper mapper, out string status)
    {
        ArgumentNullException.ThrowIfNull(mapper);
        KernelSet set = Create(mapper);
        status = set.Status;
        return set.Available;
    }

    /// <summary>Why the CPU or runtime cannot run the code, or null when it can.</summary>
    public static string? MissingHardware()
    {
        if (!Avx512F.IsSupported || !Avx512BW.IsSupported)
        {
            return "this CPU (or DOTNET_EnableAVX512=0) has no AVX-512";
        }

        // .NET 10 has no IsSupported for AVX512_VNNI: CPUID leaf 7, sub-leaf 0, ECX bit 11.
        if (X86Base.CpuId(0, 0).Eax < 7 || (X86Base.CpuId(7, 0).Ecx & (1 << 11)) == 0)
        {
            return "this CPU has AVX-512 without its VNNI extension";
        }

        return null;
    }

    // The peak loop is mapped on first use only (benchmarks), apart from the kernel set.
    private static readonly Lazy<nint> s_peakLoop = new(() =>
    {
        nint address = ExecutableMemory.TryMap(GemmAvx512VnniEmitter.PeakLoop(), out string? error);
        return address != 0 ? address : throw new PlatformNotSupportedException($"The 512-bit vpdpbusd peak loop could not be mapped: {error}");
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Runs <paramref name="iterations"/> iterations of the register-only 512-bit vpdpbusd loop
    /// (<see cref="GemmAvx512VnniEmitter.PeakLoop"/>: <see cref="GemmAvx512VnniEmitter.PeakAccumulators"/> instructions of
    /// 2·64 operations each per iteration): what the generated kernels' share of peak is measured against.
    /// </summary>
    /// <param name="iterations">Loop iterations (0 or less: returns at once).</param>
    /// <exception cref="PlatformNotSupportedException">The generated kernels are not available here (<see cref="Status"/>).</exception>
    public static void PeakLoop(long iterations)
    {
        if (!IsAvailable)
        {
            ThrowUnavailable();
        }

        ((delegate* unmanaged<nint, void>)s_peakLoop.Value)((nint)iterations);
    }

    private static void ThrowUnavailable() =>
        throw new PlatformNotSupportedException($"The generated AVX-512 VNNI kernels do not run here: {Status}");

    private static KernelSet CreateForProcess()
    {
        string? setting = Environment.GetEnvironmentVariable(SwitchVariable);
        bool enabled = setting?.Trim().ToLowerInvariant() switch
        {
            null or "" or "1" or "on" or "true" => true,
            "0" or "off" or "false" => false,
            _ => throw new QuantGenConfigurationException(SwitchVariable, setting, "0 (off), 1 (on, the default), on, off, true or false"),
        };
        if (!enabled)
        {
            return KernelSet.Refused($"managed kernels: generated kernels turned off by {SwitchVariable}={setting}");
        }

        return s_generated.Value;
    }

    private static KernelSet Create(CodeMapper mapper)
    {
        try
        {
            return CreateOrThrow(mapper);
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            return KernelSet.Refused($"managed kernels: generating the kernels failed ({error.GetType().Name}: {error.Message})");
        }
    }

    private static KernelSet CreateOrThrow(CodeMapper mapper)
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            return KernelSet.Refused($"managed kernels: generated kernels are x64 code (this process is {RuntimeInformation.ProcessArchitecture})");
        }

        if (MissingHardware() is { } missing)
        {
            return KernelSet.Refused($"managed kernels: {missing}");
        }

        // All variants in one block, each starting on a 64-byte boundary.
        const int Variants = (MR * 4) + 1;
        var pieces = new byte[Variants][];
        for (int rows = 1; rows <= MR; rows++)
        {
            for (int tail = 0; tail < 4; tail++)
            {
                pieces[((rows - 1) * 4) + tail] = GemmAvx512VnniEmitter.Direct(rows, tail);
            }
        }

        pieces[Variants - 1] = GemmAvx512VnniEmitter.Indirect();
        var offsets = new int[Variants];
        int length = 0;
        for (int i = 0; i < Variants; i++)
        {
            offsets[i] = length;
            length = (length + pieces[i].Length + 63) & ~63;
        }

        var code = new byte[length];
        code.AsSpan().Fill(0xCC); // int3 between kernels
        for (int i = 0; i < Variants; i++)
        {
            pieces[i].CopyTo(code, offsets[i]);
        }

        nint address = mapper(code, out string? error);
        if (address == 0)
        {
            return KernelSet.Refused($"managed kernels: no executable memory ({error ?? "refused"})");
        }

        // Kept for the life of the process (a few KiB); the pointers never change after this.
        nint* direct = (nint*)NativeMemory.Alloc((nuint)(MR * 4), (nuint)sizeof(nint));
        for (int i = 0; i < MR * 4; i++)
        {
            direct[i] = address + offsets[i];
        }

        var set = new KernelSet(true, $"generated AVX-512 VNNI kernels ({length} bytes of code, {Variants} variants)", direct, address + offsets[Variants - 1]);
        if (SelfCheck(set) is { } failure)
        {
            return KernelSet.Refused($"managed kernels: the generated code failed its check ({failure})");
        }

        return set;
    }

    /// <summary>Every variant once on small data against the scalar layout reference; null when all agree.</summary>
    private static string? SelfCheck(KernelSet set)
    {
        var random = new Random(2026);
        for (int rows = 1; rows <= MR; rows++)
        {
            for (int tail = 0; tail < 4; tail++)
            {
                int k = (4 * 5) + tail; // five whole quads: the unrolled loop, the remainder loop, then the tail
                int lda = k + 1;
                byte[] a = new byte[MR * lda];
                sbyte[] w = new sbyte[((k + 3) / 4) * 64];
                random.NextBytes(a);
                random.NextBytes(MemoryMarshal.AsBytes(w.AsSpan()));
                ClearPadding(w, k);
                int[] expected = new int[MR * NR], actual = new int[MR * NR];
                fixed (byte* pa = a)
                fixed (sbyte* pw = w)
                fixed (int* pe = expected, pt = actual)
                {
                    PackedGemmScalar.Int8Quads(pa, lda, rows, k, pw, MR, NR, 0, pe);
                    ((delegate* unmanaged[SuppressGCTransition]<byte*, nint, nint, sbyte*, int*, void>)set.Direct[((rows - 1) * 4) + tail])(pa, lda, k >> 2, pw, pt);
                }

                if (!expected.AsSpan(0, rows * NR).SequenceEqual(actual.AsSpan(0, rows * NR)))
                {
                    return $"direct kernel, {rows} rows, K = {k}";
                }
            }
        }

        // Indirect: 2 runs of 12 bytes (a quad pair and a single quad each); rows read at different places.
        const int Segments = 2, Run = 12;
        byte[] input = new byte[64];
        random.NextBytes(input);
        sbyte[] panel = new sbyte[Segments * Run / 4 * 64];
        random.NextBytes(MemoryMarshal.AsBytes(panel.AsSpan()));
        byte[] gathered = new byte[MR * Segments * Run];
        int[] want = new int[MR * NR], got = new int[MR * NR];
        fixed (byte* pin = input, pg = gathered)
        fixed (sbyte* pp = panel)
        fixed (int* pwant = want, pgot = got)
        {
            byte** pointers = stackalloc byte*[Segments * MR];
            for (int s = 0; s < Segments; s++)
            {
                for (int r = 0; r < MR; r++)
                {
                    byte* run = pin + ((((s * 7) + (r * 5)) % (input.Length - Run + 1)));
                    pointers[(s * MR) + r] = run;
                    new ReadOnlySpan<byte>(run, Run).CopyTo(gathered.AsSpan((r * Segments * Run) + (s * Run), Run));
                }
            }

            PackedGemmScalar.Int8Quads(pg, Segments * Run, MR, Segments * Run, pp, MR, NR, 0, pwant);
            ((delegate* unmanaged[SuppressGCTransition]<byte**, nint, nint, sbyte*, int*, void>)set.Indirect)(pointers, Segments, Run >> 2, pp, pgot);
        }

        return want.AsSpan().SequenceEqual(got) ? null : "indirect kernel";
    }

    /// <summary>Zero weights past K in the last quad, as packing leaves them.</summary>
    private static void ClearPadding(sbyte[] w, int k)
    {
        int last = (k - 1) / 4;
        for (int j = 0; j < NR; j++)
        {
            for (int t = k - (last * 4); t < 4; t++)
            {
                w[(((last * NR) + j) * 4) + t] = 0;
            }
        }
    }

    private sealed class KernelSet(bool available, string status, nint* direct, nint indirect)
    {
        public bool Available { get; } = available;

        public string Status { get; } = status;

        /// <summary>Entry points <c>[rows − 1][K mod 4]</c>; null when refused.</summary>
        public nint* Direct { get; } = direct;

        public nint Indirect { get; } = indirect;

        public static KernelSet Refused(string why) => new(false, why, null, 0);
    }
}
