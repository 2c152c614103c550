using System;

namespace QuantGen.Kernels;

/// <summary>
/// The argument checks every int8 kernel entry point makes before any pointer is formed: the uint8 input zero point
/// and the NHWC buffer lengths (in 64 bits, so a geometry whose product overflows int cannot pass).
/// </summary>
internal static class KernelArguments
{
    /// <summary>Refuses an input zero point outside 0..255.</summary>
    /// <param name="op">The op named in the message ("Conv2d").</param>
    /// <param name="zx">The input zero point.</param>
    /// <exception cref="ArgumentOutOfRangeException">zx outside 0..255.</exception>
    public static void InputZeroPoint(string op, int zx)
    {
        if ((uint)zx > 255)
        {
            throw new ArgumentOutOfRangeException(nameof(zx), zx, $"{op}: the input zero point of uint8 activations must be in 0..255.");
        }
    }

    /// <summary>Refuses an NHWC buffer whose length is not batch·height·width·channels.</summary>
    /// <param name="op">The op named in the message.</param>
    /// <param name="role">"input" or "output".</param>
    /// <param name="length">The buffer's length.</param>
    /// <param name="batch">N.</param>
    /// <param name="height">H.</param>
    /// <param name="width">W.</param>
    /// <param name="channels">C.</param>
    /// <exception cref="ArgumentException">The length differs.</exception>
    public static void NhwcLength(string op, string role, long length, int batch, int height, int width, int channels)
    {
        long expected = (long)batch * height * width * channels;
        if (length != expected)
        {
            throw new ArgumentException($"{op}: {role} (NHWC) has {length} elements, expected {expected} ({batch}x{height}x{width}x{channels}).");
        }
    }
}
