using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference of a quantized unary op by table: <c>out = table[q]</c>, the table holding
/// <c>quantize_out(f(dequantize_in(q)))</c> for each of the 256 input integers (in the unsigned view).
/// </summary>
public static class LookupScalar
{
    /// <summary>Maps every element through <paramref name="table"/>; <paramref name="output"/> may be <paramref name="input"/>.</summary>
    /// <param name="input">Values in the unsigned view.</param>
    /// <param name="output">Same length as <paramref name="input"/>.</param>
    /// <param name="table">256 entries: the output (unsigned view) for each input value.</param>
    public static void Apply(ReadOnlySpan<byte> input, Span<byte> output, ReadOnlySpan<byte> table)
    {
        if (input.Length != output.Length)
        {
            throw new ArgumentException($"lookup: input has {input.Length} elements but output has {output.Length}.");
        }

        if (table.Length != 256)
        {
            throw new ArgumentException($"lookup: the table has {table.Length} entries, not 256.");
        }

        for (int i = 0; i < input.Length; i++)
        {
            output[i] = table[input[i]];
        }
    }
}
