namespace QuantGen.Kernels;

/// <summary>The instruction-set paths the int8 kernels have, lowest first.</summary>
public enum KernelIsa
{
    /// <summary>The scalar reference kernels (<see cref="Scalar.Conv2dScalar"/>, <see cref="Scalar.LinearScalar"/>); runs everywhere.</summary>
    Scalar = 0,

    /// <summary>Arm64 AdvSimd dot product (<c>sdot</c>, <see cref="System.Runtime.Intrinsics.Arm.Dp"/>).</summary>
    NeonDot = 1,

    /// <summary>x64 AVX2: u8/s8 widened to int16, <c>vpmaddwd</c> (256-bit).</summary>
    Avx2 = 2,

    /// <summary>x64 AVX-512BW: u8/s8 widened to int16, <c>vpmaddwd</c> (512-bit).</summary>
    Avx512BW = 3,

    /// <summary>
    /// x64 <c>vpdpbusd</c> u8×s8 → s32 over 4-byte quads: the managed AVX-VNNI (256-bit) kernels, or the run-time generated
    /// AVX-512 VNNI (512-bit) ones — which also run on CPUs with AVX-512 VNNI and no AVX-VNNI (<see cref="KernelDispatch.Config"/>).
    /// </summary>
    AvxVnni = 4,
}
