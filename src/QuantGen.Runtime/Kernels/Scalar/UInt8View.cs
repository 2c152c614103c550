using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// The unsigned view every int8 kernel works in: a quint8 value is itself, a qint8 value <c>q</c> is
/// the byte <c>q + 128</c> (its top bit flipped) with zero point <c>zp + 128</c>.
/// </summary>
/// <remarks>
/// The view keeps every difference <c>q - zp</c> and the order of values, so integer accumulation,
/// max, dequantization <c>(q - zp) * s</c> and every quantization that adds the zero point after
/// rounding (<c>zp + rne(x)</c>, clamped) are exactly the same integers shifted by 128, and the
/// clamp to −128..127 becomes 0..255. The one formula it does NOT carry is one that adds the zero
/// point before rounding (the X86 conv/linear requantization, <c>rne(v + zy)</c>: <c>v + zy</c> and
/// <c>v + zy + 128</c> round differently in float32), which <see cref="RequantizeToDType"/> handles
/// with the real zero point.
/// </remarks>
public static class UInt8View
{
    /// <summary>What the view adds to a value of <paramref name="dtype"/>: 128 for qint8, 0 for quint8.</summary>
    public static int Offset(QuantDType dtype) => dtype switch
    {
        QuantDType.QUInt8 => 0,
        QuantDType.QInt8 => 128,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, $"UInt8View: {dtype} is not an 8-bit quantized type."),
    };

    /// <summary>
    /// Storage bytes of <paramref name="dtype"/> → the unsigned view (or back: flipping the top bit is
    /// its own inverse). A plain copy for quint8. <paramref name="destination"/> may be the same memory.
    /// </summary>
    public static void Convert(ReadOnlySpan<byte> source, Span<byte> destination, QuantDType dtype)
    {
        if (source.Length != destination.Length)
        {
            throw new ArgumentException($"UInt8View: source has {source.Length} bytes but destination has {destination.Length}.");
        }

        int offset = Offset(dtype);
        if (offset == 0)
        {
            source.CopyTo(destination);
            return;
        }

        // A bitwise flip, so whole vectors at a time give the same bytes.
        int i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            var topBits = new System.Numerics.Vector<byte>(0x80);
            int width = System.Numerics.Vector<byte>.Count;
            for (; i + width <= source.Length; i += width)
            {
                (new System.Numerics.Vector<byte>(source.Slice(i, width)) ^ topBits).CopyTo(destination.Slice(i, width));
            }
        }

        for (; i < source.Length; i++)
        {
            destination[i] = (byte)(source[i] ^ 0x80);
        }
    }

    /// <summary>The unsigned view of <paramref name="storage"/>: the array itself for quint8, a flipped copy for qint8.</summary>
    public static byte[] Of(byte[] storage, QuantDType dtype)
    {
        ArgumentNullException.ThrowIfNull(storage);
        if (Offset(dtype) == 0)
        {
            return storage;
        }

        var view = new byte[storage.Length];
        Convert(storage, view, dtype);
        return view;
    }
}
