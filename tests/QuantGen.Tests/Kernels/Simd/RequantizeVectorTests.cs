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

    [Theory]
    [MemberData(nameof(Cases))]
    public void QInt8OutputsMatchTheScalarReferenceOnEveryChannelCount(int vectorBits, QuantBackend backend, bool relu)
    {
        // X86 rounds qint8 with the real zero point (RequantizeToDType.X86), so the view's uint8 path cannot be used:
        // the dispatched pass must give the scalar reference's bytes on ties (M = 0.5 makes every odd accumulator one),
        // at the clamp bounds and on random factors, for channel counts below, at and above whole vectors of 8.
        var random = new Random(101 + vectorBits);
        foreach (int channels in new[] { 1, 2, 4, 5, 8, 13, 37 })
        {
            var accumulators = new int[channels * 29];
            for (int i = 0; i < accumulators.Length; i++)
            {
                accumulators[i] = (i % 11 == 0) ? (i % 2 == 0 ? int.MaxValue : int.MinValue) : (i % 3 == 0 ? (i * 3) - 400 : random.Next(-200000, 200000));
            }

            foreach (RequantizeParams rq in new[]
            {
                RequantizeParams.Create(backend, 1f, Repeat(1f, channels), 2f, 100, null, relu), // the view's zero point: qint8 zy = −28
                SimdTestData.Requantize(random, backend, accumulators, channels, relu),
            })
            {
                var expected = new byte[accumulators.Length];
                QuantGen.Kernels.Scalar.RequantizeToDType.Apply(accumulators, rq, QuantDType.QInt8, expected);
                var actual = new byte[accumulators.Length];
                RequantizeVector.Int32ToDTypeView(accumulators, rq, QuantDType.QInt8, actual, vectorBits);
                SimdConv2dTests.AssertEqual(expected, actual, $"qint8 {backend} relu {relu} {channels} channels {vectorBits}-bit");
            }
        }

        // A hand-derived tie: v = 1.5 with zy = −28 rounds to −26 (−28 + 2, half to even), +128 in the view.
        var single = new byte[1];
        RequantizeVector.Int32ToDTypeView([3], RequantizeParams.Create(QuantBackend.X86, 1f, [1f], 2f, 100, null, false), QuantDType.QInt8, single, vectorBits);
        Assert.Equal(102, single[0]);
    }

    private static float[] Repeat(float value, int count)
    {
        var values = new float[count];
        Array.Fill(values, value);
        return values;
    }
}
