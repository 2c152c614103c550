using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>Scalar reference int8 fully-connected accumulation: <c>acc[n, o] = Σ_i (qx[n, i] - zx) * (qw[o, i] - zw[o])</c>.</summary>
public static class LinearScalar
{
    /// <summary>Accumulates every output element in int32 (wrapping, like PyTorch's int32 accumulators).</summary>
    /// <param name="batch">Rows of input (every leading dimension flattened).</param>
    /// <param name="inFeatures">Input features (row length of input and weights).</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="input">uint8 input, [batch][inFeatures].</param>
    /// <param name="inputZeroPoint">zx.</param>
    /// <param name="weights">int8 weights, [outFeatures][inFeatures] (PyTorch's layout).</param>
    /// <param name="weightZeroPoints">zw per output feature.</param>
    /// <param name="accumulators">int32 output, [batch][outFeatures].</param>
    public static void Accumulate(int batch, int inFeatures, int outFeatures, ReadOnlySpan<byte> input, int inputZeroPoint, ReadOnlySpan<sbyte> weights, ReadOnlySpan<int> weightZeroPoints, Span<int> accumulators)
    {
        if (batch < 0 || inFeatures < 1 || outFeatures < 1)
        {
            throw new ArgumentException($"Linear: batch ({batch}) must be non-negative and in ({inFeatures}) / out ({outFeatures}) features positive.");
        }

        CheckLength("input", input.Length, (long)batch * inFeatures, [batch, inFeatures]);
        CheckLength("weights", weights.Length, (long)outFeatures * inFeatures, [outFeatures, inFeatures]);
        CheckLength("weight zero points", weightZeroPoints.Length, outFeatures, "one per output feature");
        CheckLength("accumulators", accumulators.Length, (long)batch * outFeatures, [batch, outFeatures]);

        for (int n = 0; n < batch; n++)
        {
            ReadOnlySpan<byte> row = input.Slice(n * inFeatures, inFeatures);
            for (int o = 0; o < outFeatures; o++)
            {
                ReadOnlySpan<sbyte> weightRow = weights.Slice(o * inFeatures, inFeatures);
                int weightZeroPoint = weightZeroPoints[o];
                int sum = 0;
                for (int i = 0; i < inFeatures; i++)
                {
                    sum = unchecked(sum + ((row[i] - inputZeroPoint) * (weightRow[i] - weightZeroPoint)));
                }

                accumulators[(n * outFeatures) + o] = sum;
            }
        }
    }

    private static void CheckLength(string what, int actual, long expected, string layout)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"Linear: {what} has {actual} elements, expected {expected} ({layout}).");
        }
    }

    // The layout text is formatted only on failure, so a steady-state call allocates nothing.
    private static void CheckLength(string what, int actual, long expected, ReadOnlySpan<int> layout)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"Linear: {what} has {actual} elements, expected {expected} ({string.Join("x", layout.ToArray())}).");
        }
    }
}
