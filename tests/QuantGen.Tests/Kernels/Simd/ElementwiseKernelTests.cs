using System;
using System.Collections.Generic;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;
using static QuantGen.Tests.Kernels.Simd.SimdTestData;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>
/// The vectorised element-wise kernels (add, ReLU, max pool, quantize) against their scalar references,
/// at every vector width (0 = the reference itself, 128, 256), exact equality. Widths the machine does not
/// accelerate still run (in software) and must still agree.
/// </summary>
public class ElementwiseKernelTests
{
    public static IEnumerable<object[]> Widths() => [[0], [128], [256]];

    [Theory]
    [MemberData(nameof(Widths))]
    public void AddEqualsScalarReferenceForEveryLengthAndTie(int vectorBits)
    {
        var random = new Random(41);
        foreach (int length in LengthsUpTo(70, 40_000))
        {
            byte[] a = Activations(random, length), b = Activations(random, length);
            foreach (bool relu in new[] { false, true })
            {
                // Scales that make exact ties frequent (powers of two, output scale = input scale) and arbitrary ones.
                foreach ((float sa, float sb, float sy) in new[] { (0.5f, 0.25f, 0.5f), (0.0173f, 0.0291f, 0.037f), (1f, 1f, 2f) })
                {
                    int za = random.Next(256), zb = random.Next(256), zy = random.Next(256);
                    var expected = new byte[length];
                    AddScalar.Apply(a, sa, za, b, sb, zb, expected, sy, zy, relu);
                    var actual = new byte[length];
                    AddKernel.Apply(a, sa, za, b, sb, zb, actual, sy, zy, relu, vectorBits);
                    SimdConv2dTests.AssertEqual(expected, actual, $"add length {length}, relu {relu}, scales {sa}/{sb}/{sy}, zero points {za}/{zb}/{zy}, {vectorBits} bits");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void AddInPlaceEqualsOutOfPlace(int vectorBits)
    {
        var random = new Random(42);
        byte[] a = Activations(random, 1000), b = Activations(random, 1000);
        var expected = new byte[1000];
        AddScalar.Apply(a, 0.02f, 10, b, 0.03f, 200, expected, 0.04f, 128, relu: true);
        AddKernel.Apply(a, 0.02f, 10, b, 0.03f, 200, a, 0.04f, 128, relu: true, vectorBits);
        SimdConv2dTests.AssertEqual(expected, a, "add written over input a");
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void ReluEqualsScalarReference(int vectorBits)
    {
        var random = new Random(43);
        foreach (int length in LengthsUpTo(70, 5000))
        {
            byte[] input = Activations(random, length);
            int zeroPoint = random.Next(256);
            var expected = new byte[length];
            ReluScalar.Apply(input, expected, zeroPoint);
            var actual = new byte[length];
            ReluKernel.Apply(input, actual, zeroPoint, vectorBits);
            SimdConv2dTests.AssertEqual(expected, actual, $"relu length {length}, zp {zeroPoint}, {vectorBits} bits");
        }
    }

    public static IEnumerable<object[]> PoolCases()
    {
        foreach (int bits in new[] { 0, 128, 256 })
        {
            for (int shape = 0; shape < PoolShapes().Length; shape++)
            {
                yield return [bits, shape];
            }
        }
    }

    [Theory]
    [MemberData(nameof(PoolCases))]
    public void MaxPoolEqualsScalarReference(int vectorBits, int shapeIndex)
    {
        Pool2dGeometry g = PoolShapes()[shapeIndex];
        var random = new Random(44 + shapeIndex);
        byte[] input = Activations(random, g.Batch * g.InHeight * g.InWidth * g.Channels);
        var expected = new byte[g.Batch * g.OutHeight * g.OutWidth * g.Channels];
        MaxPool2dScalar.Apply(g, input, expected);
        var actual = new byte[expected.Length];
        MaxPool2dKernel.Apply(g, input, actual, vectorBits);
        SimdConv2dTests.AssertEqual(expected, actual, $"max pool {g}, {vectorBits} bits");
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void QuantizeEqualsScalarReferenceIncludingTiesAndNonFiniteValues(int vectorBits)
    {
        var random = new Random(45);
        foreach (int length in LengthsUpTo(40, 3000))
        {
            var values = new float[length];
            for (int i = 0; i < length; i++)
            {
                values[i] = (random.Next(10)) switch
                {
                    0 => float.NaN,
                    1 => float.PositiveInfinity,
                    2 => float.NegativeInfinity,
                    3 => (random.Next(-600, 600) + 0.5f) * 0.25f, // exact ties at scale 0.25
                    4 => -0f,
                    5 => 1e30f,
                    _ => (float)((random.NextDouble() - 0.5) * 200),
                };
            }

            foreach ((float scale, int zeroPoint) in new[] { (0.25f, 0), (0.25f, 255), (0.37f, 131), (3.3e-5f, 128) })
            {
                float inverse = 1.0f / scale;
                var expected = new byte[length];
                for (int i = 0; i < length; i++)
                {
                    expected[i] = (byte)QuantizeScalar.QuantizeValue(values[i], inverse, zeroPoint, 0, 255);
                }

                var actual = new byte[length];
                QuantizeKernel.ToView(values, actual, inverse, zeroPoint, vectorBits);
                SimdConv2dTests.AssertEqual(expected, actual, $"quantize length {length}, scale {scale}, zp {zeroPoint}, {vectorBits} bits");
            }
        }
    }

    [Fact]
    public void AnUnknownVectorWidthIsRejected()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => ReluKernel.Apply(new byte[4], new byte[4], 0, vectorBits: 512));
        Assert.Contains("Vector width", error.Message);
    }

    /// <summary>Odd pool shapes: channels around the 16/32-byte blocks, stride 2, padding, dilation, ceil_mode, batch > 1.</summary>
    internal static Pool2dGeometry[] PoolShapes() =>
    [
        new(1, 64, 17, 15, 3, 3, 2, 2, 1, 1),           // ResNet's stem pool on an odd map
        new(2, 3, 7, 9, 2, 2, 2, 2),
        new(1, 17, 8, 8, 3, 3, 1, 1, 1, 1),
        new(1, 33, 6, 7, 3, 2, 2, 1, 1, 1, 2, 1),      // dilation (2, 1)
        new(1, 49, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, true), // ceil_mode
        new(3, 1, 5, 5, 5, 5, 1, 1, 2, 2),
        new(1, 100, 4, 4, 2, 2, 2, 2),
    ];

    /// <summary>Every length 1..<paramref name="dense"/>, then a few larger ones (some split across threads).</summary>
    internal static IEnumerable<int> LengthsUpTo(int dense, int large)
    {
        for (int length = 1; length <= dense; length++)
        {
            yield return length;
        }

        yield return 255;
        yield return 1023;
        yield return large;
        yield return large + 13;
    }
}
