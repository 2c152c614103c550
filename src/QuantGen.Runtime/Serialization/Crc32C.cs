using System;
using System.Buffers.Binary;
using System.Numerics;

namespace QuantGen.Serialization;

/// <summary>
/// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF; the
/// check value of "123456789" is 0xE3069283). <see cref="BitOperations.Crc32C(uint, ulong)"/> uses the
/// SSE4.2 / Arm CRC instructions where present, so no hashing package is needed.
/// </summary>
internal static class Crc32C
{
    /// <summary>The CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFF_FFFFu;
        int i = 0;

        // Eight bytes at a time: the instruction consumes the little-endian word byte by byte from the low end.
        for (; i + 8 <= data.Length; i += 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(i, 8)));
        }

        for (; i < data.Length; i++)
        {
            crc = BitOperations.Crc32C(crc, data[i]);
        }

        return ~crc;
    }
}
