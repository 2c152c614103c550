using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference quantized mul (aten's <c>qmul_kernel</c>), with PyTorch's broadcasting, element by element
/// in the <see cref="UInt8View"/>: the multiplier <c>m = sa * sb * (1f / sy)</c> in float32 (left to right),
/// the exact integer product <c>p = (qa - za) * (qb - zb)</c>, then <c>q = clamp(round_half_even((float)p * m) + zy, 0, 255)</c>.
/// </summary>
/// <remarks>
/// aten requantizes with <c>zy + lrintf(p * (float)m)</c> (round half to even in the default rounding mode), so
/// this is its scalar loop exactly; its vectorized body does the same operations on int32 lanes. The product
/// of two 8-bit differences is at most 65,025 in magnitude, so its conversion to float32 is exact. Zero points are
/// taken in the view, so the differences, and therefore the result, are the same for quint8 and qint8.
/// </remarks>
public static class MulScalar
{
    /// <summary>aten's multiplier: <c>sa * sb * (1f / sy)</c>, all float32, evaluated left to right.</summary>
    /// <param name="scaleA">sa.</param>
    /// <param name="scaleB">sb.</param>
    /// <param name="outputScale">sy.</param>
    /// <returns>m.</returns>
    public static float Multiplier(float scaleA, float scaleB, float outputScale) => scaleA * scaleB * (1.0f / outputScale);

    /// <summary>One output value in the view.</summary>
    /// <param name="qa">a in the view.</param>
    /// <param name="zeroPointA">za in the view.</param>
    /// <param name="qb">b in the view.</param>
    /// <param name="zeroPointB">zb in the view.</param>
    /// <param name="multiplier">m from <see cref="Multiplier"/>.</param>
    /// <param name="outputZeroPoint">zy in the view.</param>
    /// <returns>The result in the view.</returns>
    public static byte Value(int qa, int zeroPointA, int qb, int zeroPointB, float multiplier, int outputZeroPoint) =>
        (byte)QuantizeScalar.QuantizeValue((float)((qa - zeroPointA) * (qb - zeroPointB)), multiplier, outputZeroPoint, 0, 255);

    /// <summary>
    /// PyTorch's broadcast shape of two shapes (aligned at the last dimension; each pair of sizes equal or one of
    /// them 1), or null when they do not broadcast.
    /// </summary>
    /// <param name="a">The first shape.</param>
    /// <param name="b">The second shape.</param>
    /// <returns>The result's shape, or null.</returns>
    public static int[]? BroadcastShape(ReadOnlySpan<int> a, ReadOnlySpan<int> b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var shape = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            int db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (da != db && da != 1 && db != 1)
            {
                return null;
            }

            shape[i] = da == 1 ? db : da;
        }

        return shape;
    }

    /// <summary>
    /// Multiplies two tensors given in LOGICAL row-major order (any broadcastable shapes) into <paramref name="output"/>,
    /// in logical row-major order of the broadcast shape. Slow and simple: the oracle for the kernels.
    /// </summary>
    /// <param name="a">a's values in the view, logical order.</param>
    /// <param name="shapeA">a's shape.</param>
    /// <param name="scaleA">sa.</param>
    /// <param name="zeroPointA">za in the view.</param>
    /// <param name="b">b's values in the view, logical order.</param>
    /// <param name="shapeB">b's shape.</param>
    /// <param name="scaleB">sb.</param>
    /// <param name="zeroPointB">zb in the view.</param>
    /// <param name="output">The result, as many elements as the broadcast shape has.</param>
    /// <param name="outputScale">sy.</param>
    /// <param name="outputZeroPoint">zy in the view.</param>
    /// <exception cref="ArgumentException">The shapes do not broadcast, or a length does not match its shape.</exception>
    public static void Apply(
        ReadOnlySpan<byte> a, ReadOnlySpan<int> shapeA, float scaleA, int zeroPointA,
        ReadOnlySpan<byte> b, ReadOnlySpan<int> shapeB, float scaleB, int zeroPointB,
        Span<byte> output, float outputScale, int outputZeroPoint)
    {
        int[] shape = BroadcastShape(shapeA, shapeB)
            ?? throw new ArgumentException($"Mul: shapes [{string.Join(", ", shapeA.ToArray())}] and [{string.Join(", ", shapeB.ToArray())}] do not broadcast.");
        QuantizeScalar.ValidateScale(scaleA, "Mul input a");
        QuantizeScalar.ValidateScale(scaleB, "Mul input b");
        QuantizeScalar.ValidateScale(outputScale, "Mul output");
        int count = Count(shape);
        if (a.Length != Count(shapeA) || b.Length != Count(shapeB) || output.Length != count)
        {
            throw new ArgumentException($"Mul: {a.Length}, {b.Length} and {output.Length} elements do not match the shapes.");
        }

        int rank = shape.Length;
        int[] stridesA = BroadcastStrides(shapeA, rank);
        int[] stridesB = BroadcastStrides(shapeB, rank);
        float multiplier = Multiplier(scaleA, scaleB, outputScale);
        var index = new int[rank];
        for (int i = 0; i < count; i++)
        {
            int rest = i, offsetA = 0, offsetB = 0;
            for (int d = rank - 1; d >= 0; d--)
            {
                index[d] = rest % shape[d];
                rest /= shape[d];
                offsetA += index[d] * stridesA[d];
                offsetB += index[d] * stridesB[d];
            }

            output[i] = Value(a[offsetA], zeroPointA, b[offsetB], zeroPointB, multiplier, outputZeroPoint);
        }
    }

    /// <summary>Row-major strides of <paramref name="shape"/> right-aligned to <paramref name="rank"/> dims, 0 where a size is 1 (broadcast).</summary>
    private static int[] BroadcastStrides(ReadOnlySpan<int> shape, int rank)
    {
        var strides = new int[rank];
        int stride = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            strides[d + rank - shape.Length] = shape[d] == 1 ? 0 : stride;
            stride *= shape[d];
        }

        return strides;
    }

    private static int Count(ReadOnlySpan<int> shape)
    {
        int count = 1;
        foreach (int size in shape)
        {
            count = checked(count * size);
        }

        return count;
    }
}
