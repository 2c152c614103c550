using System;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Tests.Kernels;

/// <summary>The float ends of the dynamic Linear, vectorised, against their scalar reference: bit for bit, on odd shapes.</summary>
public sealed class DynamicLinearKernelTests
{
    private static float[] Values(int length, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = (i % 5) switch
            {
                0 => -0f,
                1 => (random.Next(-300, 300) + 0.5f) / 37f, // near rounding ties after scaling
                _ => (float)((random.NextDouble() * 2) - 1) * 9f,
            };
        }

        return values;
    }

    [Theory]
    [InlineData(1, 256)]
    [InlineData(15, 256)]
    [InlineData(16, 128)]
    [InlineData(33, 256)]
    [InlineData(129, 128)]
    [InlineData(1031, 256)]
    [InlineData(1031, -1)]
    public void Range_and_quantize_are_the_scalar_reference(int length, int vectorBits)
    {
        float[] input = Values(length, length);
        Assert.Equal(DynamicLinearScalar.Range(input), DynamicLinearKernel.Range(input, vectorBits));

        foreach ((float inverseScale, int zeroPoint) in new[] { (37f, 128), (12.5f, 0), (1f / 0.07f, 255), (200f, 3) })
        {
            var expected = new byte[length];
            var actual = new byte[length];
            DynamicLinearScalar.QuantizeZeroPointFirst(input, expected, inverseScale, zeroPoint);
            DynamicLinearKernel.QuantizeZeroPointFirst(input, actual, inverseScale, zeroPoint, vectorBits);
            Assert.Equal(expected, actual);
        }
    }

    [Theory]
    [InlineData(9, 256)]
    [InlineData(40, 256)]
    [InlineData(1031, 128)]
    public void Range_names_the_first_non_finite_value_as_the_reference_does(int length, int vectorBits)
    {
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            float[] input = Values(length, 3);
            input[length - 2] = bad;
            input[length - 1] = float.NaN;
            (_, _, int nonFinite) = DynamicLinearKernel.Range(input, vectorBits);
            Assert.Equal(length - 2, nonFinite);
        }
    }

    [Theory]
    [InlineData(1, 8, false, true)]
    [InlineData(3, 13, true, true)]
    [InlineData(16, 512, true, false)]
    [InlineData(5, 37, false, false)]
    [InlineData(2, 7, true, true)]
    public void Scale_is_the_scalar_reference(int rows, int outFeatures, bool relu, bool withBias)
    {
        var random = new Random(rows * 1000 + outFeatures);
        var accumulators = new int[rows * outFeatures];
        for (int i = 0; i < accumulators.Length; i++)
        {
            accumulators[i] = i % 9 == 0 ? 0 : random.Next(-3_000_000, 3_000_000);
        }

        var scales = new float[outFeatures];
        var bias = new float[outFeatures];
        for (int c = 0; c < outFeatures; c++)
        {
            scales[c] = (float)(random.NextDouble() * 0.01) + 1e-5f;
            bias[c] = c % 4 == 0 ? -0f : (float)((random.NextDouble() * 2) - 1);
        }

        ReadOnlySpan<float> biasSpan = withBias ? bias : default;
        foreach (int vectorBits in new[] { 256, -1 })
        {
            var expected = new float[accumulators.Length];
            var actual = new float[accumulators.Length];
            DynamicLinearScalar.Scale(accumulators, outFeatures, 0.0173f, scales, biasSpan, relu, expected);
            DynamicLinearKernel.Scale(accumulators, outFeatures, 0.0173f, scales, biasSpan, relu, actual, vectorBits);
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"element {i}: scalar {expected[i]}, vector {actual[i]}");
            }
        }
    }
}
