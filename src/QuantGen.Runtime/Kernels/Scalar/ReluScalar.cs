using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>Scalar reference quantized ReLU: <c>q = max(q, zp)</c>; scale and zero point pass through.</summary>
public static class ReluScalar
{
    /// <summary>Applies <c>max(q, zp)</c> element by element; <paramref name="output"/> may be the same memory as <paramref name="input"/>.</summary>
    /// <param name="input">quint8 values.</param>
    /// <param name="output">Same length as <paramref name="input"/>.</param>
    /// <param name="zeroPoint">The tensor's zero point (0..255): the integer that means 0.0.</param>
    public static void Apply(ReadOnlySpan<byte> input, Span<byte> output, int zeroPoint)
    {
        if (input.Length != output.Length)
        {
            throw new ArgumentException($"ReLU: input has {input.Length} elements but output has {output.Length}.");
        }

        QuantizeScalar.ValidateZeroPoint(zeroPoint, QuantDType.QUInt8, "ReLU");
        byte floor = (byte)zeroPoint;
        for (int i = 0; i < input.Length; i++)
        {
            byte q = input[i];
            output[i] = q < floor ? floor : q;
        }
    }
}
