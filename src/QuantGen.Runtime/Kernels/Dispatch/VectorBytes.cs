using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace QuantGen.Kernels;

/// <summary>Byte ↔ int32 lane moves shared by the vectorised element-wise kernels.</summary>
internal static unsafe class VectorBytes
{
    /// <summary>Eight bytes → eight int32 lanes (zero-extended).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Load8(byte* p)
    {
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported)
        {
            return System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32(p); // vpmovzxbd: one instruction
        }

        Vector128<ushort> words = Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsByte());
        return Vector256.Create(Vector128.WidenLower(words), Vector128.WidenUpper(words)).AsInt32();
    }

    /// <summary>Four bytes → four int32 lanes (zero-extended).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Load4(byte* p)
    {
        if (System.Runtime.Intrinsics.X86.Sse41.IsSupported)
        {
            return System.Runtime.Intrinsics.X86.Sse41.ConvertToVector128Int32(p); // pmovzxbd
        }

        Vector128<ushort> words = Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<uint>(p)).AsByte());
        return Vector128.WidenLower(words).AsInt32();
    }

    /// <summary>Eight int32 lanes known to be in 0..255 → eight bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store8(Vector256<int> values, byte* destination)
    {
        if (System.Runtime.Intrinsics.X86.Sse2.IsSupported)
        {
            // packssdw + packuswb: saturating, so exact for values already in 0..255.
            Vector128<short> packed = System.Runtime.Intrinsics.X86.Sse2.PackSignedSaturate(values.GetLower(), values.GetUpper());
            Vector128<byte> narrow = System.Runtime.Intrinsics.X86.Sse2.PackUnsignedSaturate(packed, packed);
            Unsafe.WriteUnaligned(destination, narrow.AsUInt64().ToScalar());
            return;
        }

        Vector128<short> words = Vector128.Narrow(values.GetLower(), values.GetUpper());
        Vector128<byte> bytes = Vector128.Narrow(words.AsUInt16(), words.AsUInt16());
        Unsafe.WriteUnaligned(destination, bytes.AsUInt64().ToScalar());
    }

    /// <summary>Four int32 lanes known to be in 0..255 → four bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store4(Vector128<int> values, byte* destination)
    {
        Vector128<short> words = Vector128.Narrow(values, values);
        Vector128<byte> bytes = Vector128.Narrow(words.AsUInt16(), words.AsUInt16());
        Unsafe.WriteUnaligned(destination, bytes.AsUInt32().ToScalar());
    }

    /// <summary>
    /// Round half to even and convert, for values already clamped to an int32-safe range with integer
    /// bounds (clamping before or after rounding is then the same): one <c>vcvtps2dq</c>, which rounds
    /// by MXCSR — round to nearest even, .NET's setting — instead of <c>vroundps</c> + <c>vcvttps2dq</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> RoundClampedToInt32(Vector256<float> clamped) =>
        System.Runtime.Intrinsics.X86.Avx.IsSupported
            ? System.Runtime.Intrinsics.X86.Avx.ConvertToVector256Int32(clamped)
            : Vector256.ConvertToInt32Native(Vector256.Round(clamped));

    /// <summary>The vector width the element-wise kernels use by default: the dispatched config's (0 = the scalar references).</summary>
    public static int DefaultBits
    {
        get
        {
            int bits = KernelDispatch.Config.VectorBits;
            if (bits == 256 && !Vector256.IsHardwareAccelerated)
            {
                bits = 128;
            }

            return bits == 128 && !Vector128.IsHardwareAccelerated ? 0 : bits;
        }
    }
}
