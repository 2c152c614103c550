using System;
using System.Runtime.Intrinsics;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Kernels;

/// <summary>
/// Quantized mul of one row vectorised, bit-identical to <see cref="MulScalar"/>: each lane takes the exact int32
/// product <c>(qa − za)·(qb − zb)</c>, converts it to float32 (exact), multiplies by m, rounds half to even
/// (<c>Vector*.Round</c>), clamps to <c>[−zy, 255 − zy]</c> in float, converts (exact on integral values) and adds
/// zy — the reference's operations in its order, no FMA. Either input may be broadcast along the row (stride 0):
/// squeeze-excitation multiplies each pixel's channel row by one per-channel row.
/// </summary>
public static unsafe class MulKernel
{
    /// <summary>
    /// As <see cref="MulScalar"/> on equally long rows, or with <paramref name="b"/> a single value multiplying every
    /// element of <paramref name="a"/>; <paramref name="output"/> may be <paramref name="a"/>.
    /// </summary>
    /// <param name="a">First input (view).</param>
    /// <param name="scaleA">sa.</param>
    /// <param name="zeroPointA">za in the view.</param>
    /// <param name="b">Second input (view): as long as a, or one value.</param>
    /// <param name="scaleB">sb.</param>
    /// <param name="zeroPointB">zb in the view.</param>
    /// <param name="output">Results (view), as long as a.</param>
    /// <param name="outputScale">sy.</param>
    /// <param name="outputZeroPoint">zy in the view.</param>
    /// <param name="vectorBits">256 or 128; 0 runs the scalar loop; −1 (default) the dispatched width.</param>
    /// <exception cref="ArgumentException">The lengths do not match.</exception>
    public static void Apply(
        ReadOnlySpan<byte> a, float scaleA, int zeroPointA,
        ReadOnlySpan<byte> b, float scaleB, int zeroPointB,
        Span<byte> output, float outputScale, int outputZeroPoint, int vectorBits = -1)
    {
        if (output.Length != a.Length || (b.Length != a.Length && b.Length != 1))
        {
            throw new ArgumentException($"Mul: inputs have {a.Length} and {b.Length} elements and the output {output.Length}; b must be as long as a or one value, the output as long as a.");
        }

        QuantizeScalar.ValidateScale(scaleA, "Mul input a");
        QuantizeScalar.ValidateScale(scaleB, "Mul input b");
        QuantizeScalar.ValidateScale(outputScale, "Mul output");
        QuantizeScalar.ValidateZeroPoint(zeroPointA, QuantDType.QUInt8, "Mul input a");
        QuantizeScalar.ValidateZeroPoint(zeroPointB, QuantDType.QUInt8, "Mul input b");
        QuantizeScalar.ValidateZeroPoint(outputZeroPoint, QuantDType.QUInt8, "Mul output");
        fixed (byte* pa = a)
        fixed (byte* pb = b)
        fixed (byte* po = output)
        {
            Row(pa, 1, zeroPointA, pb, b.Length == a.Length ? 1 : 0, zeroPointB, po, a.Length, MulScalar.Multiplier(scaleA, scaleB, outputScale), outputZeroPoint, vectorBits);
        }
    }

    /// <summary>Multiplies <paramref name="length"/> elements: a and b advance by their strides (1, or 0 to repeat one value).</summary>
    /// <param name="a">a's row start (view).</param>
    /// <param name="strideA">1, or 0 for a broadcast value.</param>
    /// <param name="zeroPointA">za in the view.</param>
    /// <param name="b">b's row start (view).</param>
    /// <param name="strideB">1, or 0 for a broadcast value.</param>
    /// <param name="zeroPointB">zb in the view.</param>
    /// <param name="output">The output row (contiguous, view).</param>
    /// <param name="length">Elements in the row.</param>
    /// <param name="multiplier">m from <see cref="MulScalar.Multiplier"/>.</param>
    /// <param name="outputZeroPoint">zy in the view.</param>
    /// <param name="vectorBits">256 or 128; 0 runs the scalar loop; −1 (default) the dispatched width.</param>
    internal static void Row(
        byte* a, int strideA, int zeroPointA,
        byte* b, int strideB, int zeroPointB,
        byte* output, int length, float multiplier, int outputZeroPoint, int vectorBits = -1)
    {
        if (length <= 0)
        {
            return;
        }

        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        int i = 0;
        if (vectorBits == 256)
        {
            Vector256<int> za = Vector256.Create(zeroPointA), zb = Vector256.Create(zeroPointB), zy = Vector256.Create(outputZeroPoint);
            Vector256<float> m = Vector256.Create(multiplier);
            Vector256<float> lower = Vector256.Create((float)-outputZeroPoint), upper = Vector256.Create((float)(255 - outputZeroPoint));
            Vector256<int> fixedA = Vector256.Create(a[0] - zeroPointA), fixedB = Vector256.Create(b[0] - zeroPointB);
            for (; i + 8 <= length; i += 8)
            {
                Vector256<int> da = strideA == 0 ? fixedA : VectorBytes.Load8(a + i) - za;
                Vector256<int> db = strideB == 0 ? fixedB : VectorBytes.Load8(b + i) - zb;
                Vector256<float> scaled = Vector256.ConvertToSingle(da * db) * m;
                Vector256<float> clamped = Vector256.MinNative(Vector256.MaxNative(scaled, lower), upper);
                VectorBytes.Store8(VectorBytes.RoundClampedToInt32(clamped) + zy, output + i);
            }
        }
        else if (vectorBits == 128)
        {
            Vector128<int> za = Vector128.Create(zeroPointA), zb = Vector128.Create(zeroPointB), zy = Vector128.Create(outputZeroPoint);
            Vector128<float> m = Vector128.Create(multiplier);
            Vector128<float> lower = Vector128.Create((float)-outputZeroPoint), upper = Vector128.Create((float)(255 - outputZeroPoint));
            Vector128<int> fixedA = Vector128.Create(a[0] - zeroPointA), fixedB = Vector128.Create(b[0] - zeroPointB);
            for (; i + 4 <= length; i += 4)
            {
                Vector128<int> da = strideA == 0 ? fixedA : VectorBytes.Load4(a + i) - za;
                Vector128<int> db = strideB == 0 ? fixedB : VectorBytes.Load4(b + i) - zb;
                Vector128<float> rounded = Vector128.Round(Vector128.ConvertToSingle(da * db) * m);
                Vector128<float> clamped = Vector128.MinNative(Vector128.MaxNative(rounded, lower), upper);
                VectorBytes.Store4(Vector128.ConvertToInt32Native(clamped) + zy, output + i);
            }
        }

        for (; i < length; i++)
        {
            output[i] = MulScalar.Value(a[i * strideA], zeroPointA, b[i * strideB], zeroPointB, multiplier, outputZeroPoint);
        }
    }
}
