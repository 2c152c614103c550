using System;
using System.Buffers.Binary;
using System.Text;

namespace QuantGen.Serialization;

/// <summary>A growable little-endian byte buffer: a whole <c>.qgen</c> file is assembled in memory, then written once.</summary>
internal sealed class ByteWriter
{
    private byte[] _buffer;

    public ByteWriter(int capacity) => _buffer = new byte[Math.Max(capacity, 64)];

    /// <summary>Bytes written so far.</summary>
    public int Length { get; private set; }

    /// <summary>The bytes written so far.</summary>
    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, Length);

    /// <summary>The underlying array (valid up to <see cref="Length"/>).</summary>
    public byte[] Buffer => _buffer;

    public void U8(byte value) => Take(1)[0] = value;

    public void Bool(bool value) => U8(value ? (byte)1 : (byte)0);

    public void U16(ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Take(2), value);

    public void I32(int value) => BinaryPrimitives.WriteInt32LittleEndian(Take(4), value);

    public void U32(uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Take(4), value);

    public void U64(ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Take(8), value);

    public void I64(long value) => BinaryPrimitives.WriteInt64LittleEndian(Take(8), value);

    /// <summary>float32 bit pattern, unchanged (NaN payloads and -0 survive).</summary>
    public void F32(float value) => BinaryPrimitives.WriteSingleLittleEndian(Take(4), value);

    /// <summary>float64 bit pattern, unchanged.</summary>
    public void F64(double value) => BinaryPrimitives.WriteDoubleLittleEndian(Take(8), value);

    public void Bytes(ReadOnlySpan<byte> values) => values.CopyTo(Take(values.Length));

    /// <summary>u16 byte count, then the UTF-8 bytes. The caller has checked the length against <see cref="QGenLayout.MaxStringBytes"/>.</summary>
    public void String(string value)
    {
        int count = Encoding.UTF8.GetByteCount(value);
        U16(checked((ushort)count));
        Encoding.UTF8.GetBytes(value, Take(count));
    }

    public void Floats(ReadOnlySpan<float> values)
    {
        Span<byte> target = Take(checked(values.Length * 4));
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(target.Slice(i * 4, 4), values[i]);
        }
    }

    /// <summary>Each value as its little-endian IEEE binary16 pattern; the caller has checked each is a float16 value (exact).</summary>
    public void Halves(ReadOnlySpan<float> values)
    {
        Span<byte> target = Take(checked(values.Length * 2));
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteHalfLittleEndian(target.Slice(i * 2, 2), (Half)values[i]);
        }
    }

    /// <summary>
    /// Integers in <paramref name="low"/>..<paramref name="high"/> one byte each (two's complement for negative ones), or
    /// two per byte when <paramref name="nibbles"/> (the even-indexed value in the low nibble).
    /// </summary>
    /// <exception cref="InvalidOperationException">A value that is not such an integer: the describer made a wrong tensor.</exception>
    public void SmallIntegers(ReadOnlySpan<float> values, int low, int high, bool nibbles, string what)
    {
        for (int i = 0; i < values.Length; i++)
        {
            float value = values[i];
            if (value != MathF.Round(value) || value < low || value > high)
            {
                throw new InvalidOperationException($"{what} holds {value} at {i}; it is stored as integers in {low}..{high}.");
            }
        }

        if (nibbles)
        {
            Span<byte> packed = Take((values.Length + 1) / 2);
            packed.Clear();
            for (int i = 0; i < values.Length; i++)
            {
                packed[i >> 1] |= (byte)((int)values[i] << ((i & 1) * 4));
            }

            return;
        }

        Span<byte> target = Take(values.Length);
        for (int i = 0; i < values.Length; i++)
        {
            target[i] = unchecked((byte)(int)values[i]);
        }
    }

    public void Ints(ReadOnlySpan<int> values)
    {
        Span<byte> target = Take(checked(values.Length * 4));
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(target.Slice(i * 4, 4), values[i]);
        }
    }

    /// <summary>Reserves four bytes for a length written later with <see cref="PatchU32"/>; returns their offset.</summary>
    public int ReserveU32()
    {
        int offset = Length;
        Take(4);
        return offset;
    }

    public void PatchU32(int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(offset, 4), value);

    public void PatchU64(int offset, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(_buffer.AsSpan(offset, 8), value);

    private Span<byte> Take(int count)
    {
        int end = checked(Length + count);
        if (end > _buffer.Length)
        {
            long grown = Math.Max(end, (long)_buffer.Length * 2);
            if (end > Array.MaxLength)
            {
                throw new NotSupportedException($"A .qgen file holds at most {Array.MaxLength} bytes; this model needs more.");
            }

            Array.Resize(ref _buffer, (int)Math.Min(grown, Array.MaxLength));
        }

        Span<byte> span = _buffer.AsSpan(Length, count);
        Length = end;
        return span;
    }
}
