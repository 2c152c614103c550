using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference quantized mean over dimensions (aten's <c>qmean_inner_dim_kernel</c>): the output keeps the
/// input's scale and zero point, and each output integer is <c>round_half_even((float)Σq / (float)n)</c> — the sum
/// of the n stored integers (zero point included: the mean of <c>q − z</c> plus z is the mean of q) divided in float32.
/// </summary>
/// <remarks>
/// The integers are summed as the dtype stores them (signed for qint8), so the value handed in the
/// <see cref="UInt8View"/> has its offset taken off before the division and put back after: the division and its
/// rounding are aten's to the bit for both dtypes. The mean of values in range is in range, so nothing is clamped.
/// </remarks>
public static class MeanScalar
{
    /// <summary>One output value in the view from the sum of <paramref name="count"/> view values.</summary>
    /// <param name="viewSum">Σ of the values in the view.</param>
    /// <param name="count">n, the number of values summed.</param>
    /// <param name="offset">The view's offset for the dtype (<see cref="UInt8View.Offset"/>).</param>
    /// <returns>The mean in the view.</returns>
    public static byte Value(long viewSum, int count, int offset)
    {
        long stored = viewSum - (long)offset * count;
        float mean = (float)stored / (float)count;
        return (byte)((int)MathF.Round(mean, MidpointRounding.ToEven) + offset);
    }

    /// <summary>
    /// The shape of the mean of a <paramref name="shape"/> tensor over <paramref name="dims"/> (each in [−rank, rank),
    /// none twice): the reduced dims become 1 with <paramref name="keepDim"/>, else they are dropped.
    /// </summary>
    /// <returns>The output shape and the reduced dims made non-negative, or null with <paramref name="problem"/> saying why.</returns>
    public static (int[] Shape, bool[] Reduced)? OutputShape(ReadOnlySpan<int> shape, ReadOnlySpan<int> dims, bool keepDim, out string? problem)
    {
        int rank = shape.Length;
        var reduced = new bool[rank];
        foreach (int dim in dims)
        {
            int d = dim < 0 ? dim + rank : dim;
            if (d < 0 || d >= rank)
            {
                problem = $"dim {dim} is out of range for a {rank}-dimensional tensor";
                return null;
            }

            if (reduced[d])
            {
                problem = $"dim {d} appears twice";
                return null;
            }

            reduced[d] = true;
        }

        var output = new System.Collections.Generic.List<int>(rank);
        for (int d = 0; d < rank; d++)
        {
            if (!reduced[d])
            {
                output.Add(shape[d]);
            }
            else if (keepDim)
            {
                output.Add(1);
            }
        }

        problem = null;
        return (output.ToArray(), reduced);
    }

    /// <summary>
    /// The mean of a tensor given in LOGICAL row-major order over <paramref name="dims"/>, written in logical row-major
    /// order of the result. Simple loops: the oracle for the layer's fast paths.
    /// </summary>
    /// <param name="input">Values in the view, logical order.</param>
    /// <param name="shape">The input's shape.</param>
    /// <param name="dims">The dims to average over.</param>
    /// <param name="offset">The view's offset for the dtype (0 for quint8, 128 for qint8).</param>
    /// <param name="output">The result in the view (its length is the product of the kept sizes).</param>
    /// <exception cref="ArgumentException">A dim is out of range or repeated, a reduced dim is empty, or a length does not match.</exception>
    public static void Apply(ReadOnlySpan<byte> input, ReadOnlySpan<int> shape, ReadOnlySpan<int> dims, int offset, Span<byte> output)
    {
        (int[] _, bool[] reduced) = OutputShape(shape, dims, keepDim: true, out string? problem) ?? throw new ArgumentException($"Mean: {problem}.");
        int rank = shape.Length;
        int count = 1, outputs = 1, total = 1;
        for (int d = 0; d < rank; d++)
        {
            total *= shape[d];
            if (reduced[d])
            {
                count *= shape[d];
            }
            else
            {
                outputs *= shape[d];
            }
        }

        if (input.Length != total || output.Length != outputs || count == 0)
        {
            throw new ArgumentException($"Mean: {input.Length} input and {output.Length} output elements do not match the shape, or a reduced dim is empty.");
        }

        var sums = new long[outputs];
        var index = new int[rank];
        for (int i = 0; i < total; i++)
        {
            int rest = i, target = 0;
            for (int d = rank - 1; d >= 0; d--)
            {
                index[d] = rest % shape[d];
                rest /= shape[d];
            }

            for (int d = 0; d < rank; d++)
            {
                if (!reduced[d])
                {
                    target = target * shape[d] + index[d];
                }
            }

            sums[target] += input[i];
        }

        for (int o = 0; o < outputs; o++)
        {
            output[o] = Value(sums[o], count, offset);
        }
    }
}
