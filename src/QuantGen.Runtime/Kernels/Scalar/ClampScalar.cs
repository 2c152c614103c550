using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference quantized clamp (PyTorch's quantized <c>hardtanh</c>, <c>relu6</c>, <c>clamp</c>):
/// <c>q = min(max(q, qlow), qhigh)</c> in the integers; scale and zero point pass through.
/// </summary>
public static class ClampScalar
{
    /// <summary>Clamps every element to [<paramref name="low"/>, <paramref name="high"/>]; <paramref name="output"/> may be <paramref name="input"/>.</summary>
    /// <param name="input">Values in the unsigned view.</param>
    /// <param name="output">Same length as <paramref name="input"/>.</param>
    /// <param name="low">The quantized lower bound in the view (0..255).</param>
    /// <param name="high">The quantized upper bound in the view (low..255).</param>
    public static void Apply(ReadOnlySpan<byte> input, Span<byte> output, byte low, byte high)
    {
        if (input.Length != output.Length)
        {
            throw new ArgumentException($"clamp: input has {input.Length} elements but output has {output.Length}.");
        }

        if (low > high)
        {
            throw new ArgumentException($"clamp: the lower bound {low} is above the upper bound {high}.");
        }

        for (int i = 0; i < input.Length; i++)
        {
            byte q = input[i];
            output[i] = q < low ? low : q > high ? high : q;
        }
    }
}
