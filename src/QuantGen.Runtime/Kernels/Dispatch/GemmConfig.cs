using System;

namespace QuantGen.Kernels;

/// <summary>How a kernel wants its weight panels laid out (chosen together with the kernel by <see cref="GemmConfig"/>).</summary>
public enum PackedLayout
{
    /// <summary>No panels: the OHWI / [Out][In] weights as the scalar reference reads them.</summary>
    Reference,

    /// <summary>
    /// int8 quads: per panel of NR output channels, <c>[Kpad/4][NR][4]</c> sbyte (four consecutive k of
    /// one channel side by side, the operand order of <c>vpdpbusd</c> and <c>sdot</c>).
    /// </summary>
    Int8Quads,

    /// <summary>
    /// int16 pairs: per panel of NR output channels, <c>[Kpad/2][NR][2]</c> short (two consecutive k of
    /// one channel, the operand order of <c>vpmaddwd</c>).
    /// </summary>
    Int16Pairs,
}

/// <summary>
/// One row of the GEMM configuration table: the micro-kernel and the tile sizes and weight layout it
/// needs, chosen together so packing and kernel cannot disagree (XNNPACK's gemm-config idea). Packed
/// weights remember the config they were packed for, and the drivers run that config's kernel.
/// </summary>
/// <param name="Isa">The instruction set the kernel needs.</param>
/// <param name="Name">What the micro-kernel is, e.g. <c>qu8s8-gemm-6x16c4-avxvnni</c>.</param>
/// <param name="MR">Rows (output pixels) per micro-tile.</param>
/// <param name="NR">Output channels per weight panel.</param>
/// <param name="KR">k values per packed group; K is padded with zero weights to a multiple of it.</param>
/// <param name="Layout">The weight panel layout.</param>
/// <param name="WidenedActivations">True when the kernel reads activations as uint16 rows (the vpmaddwd kernels).</param>
/// <param name="ActivationOffset">
/// What the kernel subtracts from every activation before multiplying (128 for <c>sdot</c>, which is
/// s8×s8: x − 128 fits int8), folded back by the zero-point compensation.
/// </param>
/// <param name="Generated">
/// True for the AVX-512 VNNI kernels generated at run time (<see cref="X86.Generated.GemmAvx512VnniGenerated"/>):
/// the same panels, tiles and results as the managed AVX-VNNI kernels, so only the micro-kernel call differs.
/// </param>
/// <param name="ScalarEmulation">
/// True for the test-only twins that run the same packing, tiles and compensation with a scalar
/// micro-kernel (<see cref="Packing.PackedGemmScalar"/>), so a layout is checked on machines that cannot
/// run its ISA (the Arm64 <c>sdot</c> layout on x64).
/// </param>
public sealed record GemmConfig(KernelIsa Isa, string Name, int MR, int NR, int KR, PackedLayout Layout, bool WidenedActivations, int ActivationOffset, bool ScalarEmulation = false, bool Generated = false)
{
    /// <summary>The reference: no panels, the scalar kernels.</summary>
    public static GemmConfig Scalar { get; } = new(KernelIsa.Scalar, "qu8s8-conv-scalar-reference", 1, 1, 1, PackedLayout.Reference, false, 0);

    /// <summary>
    /// 6 rows × 16 channels × k-quads: 12 ymm accumulators (6 rows × 2 vectors of 8 channels), 2 weight
    /// vectors and 1 broadcast = 15 of 16 ymm registers; 16 accumulators would spill.
    /// </summary>
    public static GemmConfig AvxVnni { get; } = new(KernelIsa.AvxVnni, "qu8s8-gemm-6x16c4-avxvnni", 6, 16, 4, PackedLayout.Int8Quads, false, 0);

    /// <summary>
    /// <see cref="AvxVnni"/>'s panels and 6×16 tiles with 512-bit <c>vpdpbusd</c> in code generated at run time
    /// (one zmm accumulator per row and K phase instead of two ymm); what <see cref="KernelDispatch.Config"/>
    /// picks on an AVX-VNNI machine whose CPU also has AVX-512 VNNI, unless the generated code is refused.
    /// </summary>
    public static GemmConfig AvxVnniGenerated { get; } = AvxVnni with { Name = "qu8s8-gemm-6x16c4-avx512vnni-generated", Generated = true };

    /// <summary>
    /// 8 rows × 32 channels × k-pairs: 16 zmm accumulators (8 rows × 2 vectors of 16 channels), 2 weight
    /// vectors, 1 broadcast, 1 product = 20 of 32 zmm registers.
    /// </summary>
    public static GemmConfig Avx512BW { get; } = new(KernelIsa.Avx512BW, "qu8s8-gemm-8x32c2-avx512bw-widened", 8, 32, 2, PackedLayout.Int16Pairs, true, 0);

    /// <summary>6 rows × 16 channels × k-pairs: 12 ymm accumulators, 2 weight vectors, 1 broadcast (the product reuses it).</summary>
    public static GemmConfig Avx2 { get; } = new(KernelIsa.Avx2, "qu8s8-gemm-6x16c2-avx2-widened", 6, 16, 2, PackedLayout.Int16Pairs, true, 0);

    /// <summary>4 rows × 16 channels × k-quads: 16 q-register accumulators (4 rows × 4 vectors of 4 channels) of the 32 Arm64 has.</summary>
    public static GemmConfig NeonDot { get; } = new(KernelIsa.NeonDot, "qu8s8-gemm-4x16c4-neondot", 4, 16, 4, PackedLayout.Int8Quads, false, 128);

    /// <summary>Test twin of <see cref="NeonDot"/>: same panels, tiles and activation offset, scalar micro-kernel, 128-bit requantization and depthwise.</summary>
    public static GemmConfig NeonDotScalarEmulation { get; } = NeonDot with { Name = "qu8s8-gemm-4x16c4-neondot-scalar-emulation", ScalarEmulation = true };

    /// <summary>Test twin of <see cref="Avx2"/>: the int16-pair panels with a scalar micro-kernel.</summary>
    public static GemmConfig Avx2ScalarEmulation { get; } = Avx2 with { Name = "qu8s8-gemm-6x16c2-scalar-emulation", ScalarEmulation = true };

    /// <summary>The table, best first.</summary>
    public static GemmConfig[] All { get; } = [AvxVnni, Avx512BW, Avx2, NeonDot, Scalar];

    /// <summary>The config of one ISA (whether or not this machine supports it).</summary>
    public static GemmConfig For(KernelIsa isa) => isa switch
    {
        KernelIsa.AvxVnni => AvxVnni,
        KernelIsa.Avx512BW => Avx512BW,
        KernelIsa.Avx2 => Avx2,
        KernelIsa.NeonDot => NeonDot,
        KernelIsa.Scalar => Scalar,
        _ => throw new ArgumentOutOfRangeException(nameof(isa), isa, "Unknown kernel ISA."),
    };

    /// <summary>True when this machine (and the runtime's DOTNET_Enable* switches) can run the kernel.</summary>
    public bool IsSupported => ScalarEmulation || (Generated
        ? System.Runtime.Intrinsics.X86.Avx2.IsSupported && X86.Generated.GemmAvx512VnniGenerated.IsAvailable
        : KernelDispatch.IsSupported(Isa));

    /// <summary>Bits of the vectors the requantization and depthwise kernels use with this config (0: the scalar reference).</summary>
    public int VectorBits => Isa switch
    {
        KernelIsa.Scalar => 0,
        KernelIsa.NeonDot => 128,
        _ => 256,
    };

    /// <summary>Throws when this machine cannot run the kernel.</summary>
    public void EnsureSupported()
    {
        if (!IsSupported)
        {
            if (Generated)
            {
                throw new PlatformNotSupportedException($"Kernel {Name} does not run here: {X86.Generated.GemmAvx512VnniGenerated.Status}.");
            }

            throw new PlatformNotSupportedException($"Kernel {Name} needs {Isa}, which this machine (or the DOTNET_Enable* settings) does not support; supported here: {KernelDispatch.SupportedList()}.");
        }
    }

    /// <summary>Text for reports: name and tile sizes.</summary>
    public override string ToString() => $"{Name} (MR={MR}, NR={NR}, KR={KR}, {Layout})";
}
