using System;
using System.Buffers.Binary;
using System.Text;

namespace QuantGen.Serialization;

/// <summary>
/// Reads little-endian values from one region of a loaded <c>.qgen</c> file (the body, or one record's
/// payload) and never past its end: every count is checked against the bytes that remain before
/// anything is allocated for it, and every failure names the file, the region and the byte offset.
/// </summary>
internal struct ByteReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte[] _buffer;
    private readonly int _end;
    private readonly string _fileName;
    private readonly string _region;
    private int _position;

    /// <param name="buffer">The whole file.</param>
    /// <param name="start">First byte of the region.</param>
    /// <param name="end">One past its last byte.</param>
    /// <param name="fileName">For messages.</param>
    /// <param name="region">For messages: "header", "layer 'conv1' (Conv2d record)".</param>
    public ByteReader(byte[] buffer, int start, int end, string fileName, string region)
    {
        _buffer = buffer;
        _position = start;
        _end = end;
        _fileName = fileName;
        _region = region;
    }

    /// <summary>Offset of the next byte in the file.</summary>
    public readonly int Position => _position;

    /// <summary>Bytes left in the region.</summary>
    public readonly int Remaining => _end - _position;

    public byte U8(string what) => Take(1, what)[0];

    public ushort U16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));

    public int I32(string what) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, what));

    public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));

    public long I64(string what) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, what));

    public float F32(string what) => BinaryPrimitives.ReadSingleLittleEndian(Take(4, what));

    public double F64(string what) => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, what));

    /// <summary>A byte that must be 0 or 1.</summary>
    public bool Bool(string what)
    {
        int at = _position;
        byte value = U8(what);
        return value switch
        {
            0 => false,
            1 => true,
            _ => throw Fail(QGenFormatError.Malformed, $"{what} is stored as {value}, not 0 or 1", at),
        };
    }

    /// <summary>A u16 byte count, then that many bytes of strict UTF-8, at most <see cref="QGenLayout.MaxStringBytes"/>.</summary>
    public string String(string what)
    {
        int at = _position;
        int count = U16(what + " length");
        if (count > QGenLayout.MaxStringBytes)
        {
            throw Fail(QGenFormatError.Malformed, $"{what} claims {count} bytes; names are at most {QGenLayout.MaxStringBytes}", at);
        }

        ReadOnlySpan<byte> bytes = Take(count, what);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw Fail(QGenFormatError.Malformed, $"{what} is not valid UTF-8", at, ex);
        }
    }

    /// <summary>
    /// A u32 element count, refused when it exceeds <paramref name="max"/> or when that many elements of
    /// <paramref name="elementBytes"/> bytes cannot fit in what remains of the region.
    /// </summary>
    public int Count(string what, int elementBytes, int max)
    {
        int at = _position;
        uint count = U32(what);
        if (count > (uint)max)
        {
            throw Fail(QGenFormatError.Malformed, $"{what} is {count}, over the limit of {max}", at);
        }

        CheckFits((long)count * elementBytes, what, at);
        return (int)count;
    }

    /// <summary>Throws unless <paramref name="bytes"/> more bytes remain; call before allocating for them.</summary>
    public readonly void CheckFits(long bytes, string what, int at)
    {
        if (bytes > Remaining)
        {
            throw Fail(QGenFormatError.Malformed, $"{what} needs {bytes} bytes but only {Remaining} remain in the {(_region == "header" ? "file" : "record")}", at);
        }
    }

    public float[] Floats(int count, string what)
    {
        ReadOnlySpan<byte> bytes = Take(checked(count * 4), what);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(i * 4, 4));
        }

        return values;
    }

    /// <summary>Little-endian IEEE binary16 patterns, widened to float32 (exact; NaN and infinity kept for the caller to refuse).</summary>
    public float[] Halves(int count, string what)
    {
        ReadOnlySpan<byte> bytes = Take(checked(count * 2), what);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes.Slice(i * 2, 2));
        }

        return values;
    }

    /// <summary>One signed byte per value (int8), widened to float32.</summary>
    public float[] SignedBytes(int count, string what)
    {
        ReadOnlySpan<byte> bytes = Take(count, what);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (sbyte)bytes[i];
        }

        return values;
    }

    /// <summary>One unsigned byte per value (uint8), widened to float32.</summary>
    public float[] UnsignedBytes(int count, string what)
    {
        ReadOnlySpan<byte> bytes = Take(count, what);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = bytes[i];
        }

        return values;
    }

    /// <summary>Two 4-bit values per byte, the even-indexed one in the low nibble; an odd count leaves the last high nibble, which must be 0.</summary>
    public float[] Nibbles(int count, string what)
    {
        int at = _position;
        ReadOnlySpan<byte> bytes = Take((int)(((long)count + 1) / 2), what);
        if ((count & 1) == 1 && bytes[^1] >> 4 != 0)
        {
            throw Fail(QGenFormatError.Malformed, $"{what} has {count} 4-bit values and a nonzero padding nibble", at);
        }

        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (bytes[i >> 1] >> ((i & 1) * 4)) & 0xF;
        }

        return values;
    }

    public int[] Ints(int count, string what)
    {
        ReadOnlySpan<byte> bytes = Take(checked(count * 4), what);
        var values = new int[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes.Slice(i * 4, 4));
        }

        return values;
    }

    public byte[] Bytes(int count, string what) => Take(count, what).ToArray();

    public void Skip(int count, string what) => Take(count, what);

    /// <summary>An exception naming the file, the region, what was wrong and where.</summary>
    public readonly QGenFormatException Fail(QGenFormatError error, string message, int at, Exception? inner = null) =>
        new(_fileName, error, $"{_fileName}: {_region}: {message} (at byte {at}).", inner);

    private ReadOnlySpan<byte> Take(int count, string what)
    {
        if (count < 0 || count > Remaining)
        {
            throw Fail(QGenFormatError.Malformed, $"{what} needs {count} bytes but only {Remaining} remain in the {(_region == "header" ? "file" : "record")}", _position);
        }

        ReadOnlySpan<byte> span = _buffer.AsSpan(_position, count);
        _position += count;
        return span;
    }
}
