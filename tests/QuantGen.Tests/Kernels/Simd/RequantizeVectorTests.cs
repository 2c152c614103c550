using System;
using System.Collections.Generic;
using QuantGen.Kernels;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>The vectorised requantization against <see cref="Requantize"/>'s scalar functions, with exact ties and clamping extremes.</summary>
public class RequantizeVectorTests
{
    public static IEnumerable<object[]> Cases()
    {
        foreach (int bits in new[] { 256, 128 })
        {
            foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
            {
                foreach (bool relu in new[] { false, true })
                {
                    yield return [bits, backend, relu];
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TiesRoundToEvenLikeTheScalarReference(int vectorBits, QuantBackend backend, bool relu)
    {
        // sx = sw = 1, sy = 2: X86 bs = 1, M = 0.5; Qnnpack M = 0.5, bq = 0 → every odd accumulator is a tie.
        const int channels = 19;
        var accumulators = new int[channels * 23];
        for (int i = 0; i < accumulators.Length; i++)
        {
            accumulators[i] = (i % 7 == 0) ? (i % 2 == 0 ? int.MaxValue : int.MinValue) : (i * 3) - 300;
        }

        RequantizeParams rq = RequantizeParams.Create(backend, 1f, Repeat(1f, channels), 2f, 100, null, relu);
        var expected = new byte[accumulators.Length];
        Requantize.RequantizeInt32ToUInt8(accumulators, rq, expected);

        // A hand check of the tie rule: acc = 3 → 1.5 → 2 (even), acc = 5 → 2.5 → 2; zy = 100 added after (X86: before rounding, same result on integers + .5).
        Assert.Equal(102, Requantize.X86WithBiasTerm(3, 0f, 0.5f, 100, false));
        Assert.Equal(102, Requantize.X86WithBiasTerm(5, 0f, 0.5f, 100, false));

        var actual = new byte[accumulators.Length];
        RequantizeVector.Int32ToUInt8(accumulators, rq, actual, vectorBits);
        SimdConv2dTests.AssertEqual(expected, actual, $"{backend} relu {relu} {vectorBits}-bit");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RandomFactorsMatchTheScalarReference(int vectorBits, QuantBackend backend, bool relu)
    {
        var random = new Random(99);
        const int channels = 37;
        var accumulators = new int[channels * 41];
        for (int i = 0; i < accumulators.Length; i++)
        {
            accumulators[i] = random.Next(-200000, 200000);
        }

        RequantizeParams rq = SimdTestData.Requantize(random, backend, accumulators, channels, relu);
        var expected = new byte[accumulators.Length];
        Requantize.RequantizeInt32ToUInt8(accumulators, rq, expected);
        var actual = new byte[accumulators.Length];
        RequantizeVector.Int32ToUInt8(accumulators, rq, actual, vectorBits);
        SimdConv2dTests.AssertEqual(expected, actual, $"{backend} relu {relu} {vectorBits}-bit");
        Assert.Contains(expected, value => value == 0 || value == 255);
        Assert.Contains(expected, value => value is > 0 and < 255);
    }

    private static float[] Repeat(float value, int count)
    {
        var values = new float[count];
        Array.Fill(values, value);
        return values;
    }
}
