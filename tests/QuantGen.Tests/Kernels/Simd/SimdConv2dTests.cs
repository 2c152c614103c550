using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.Scalar;
using Xunit.Abstractions;
using static QuantGen.Tests.Kernels.Simd.SimdTestData;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>Every kernel config against the scalar reference (<see cref="Conv2dScalar"/> + <see cref="Requantize"/>), exact equality.</summary>
public class SimdConv2dTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases()
    {
        int shapeCount = ConvShapes().Count();
        foreach (string config in ConfigNames)
        {
            for (int shape = 0; shape < shapeCount; shape++)
            {
                yield return [config, shape, ConvShapes().ElementAt(shape).Name];
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Conv2dEqualsScalarReference(string configName, int shapeIndex, string shapeName)
    {
        GemmConfig config = Config(configName);
        if (SkipUnlessSupported(config, output))
        {
            return;
        }

        Conv2dGeometry g = ConvShapes().ElementAt(shapeIndex).Geometry;
        var random = new Random(1000 + (shapeIndex * 31));
        int inPerGroup = g.InChannels / g.Groups;
        byte[] input = Activations(random, g.Batch * g.InHeight * g.InWidth * g.InChannels);
        sbyte[] weights = Weights(random, g.OutChannels * g.KernelHeight * g.KernelWidth * inPerGroup);
        int outputCount = g.Batch * g.OutHeight * g.OutWidth * g.OutChannels;
        var scratch = new KernelScratch();

        foreach (bool nonzeroWeightZeroPoints in new[] { false, true })
        {
            int[] zw = WeightZeroPoints(random, g.OutChannels, nonzeroWeightZeroPoints);
            PackedConv2dWeights packed = PackedConv2dWeights.Pack(weights, zw, g.OutChannels, g.InChannels, g.KernelHeight, g.KernelWidth, g.Groups, config);
            foreach (int zx in new[] { 0, 128, 255, 37 })
            {
                var expected = new int[outputCount];
                Conv2dScalar.Accumulate(g, input, zx, weights, zw, expected);
                var actual = new int[outputCount];
                Conv2dKernel.Accumulate(g, input, zx, packed, actual, scratch);
                AssertEqual(expected, actual, $"{shapeName}, {config.Name}, zx {zx}, zw {(nonzeroWeightZeroPoints ? "per-channel nonzero" : "0")}, accumulators");

                foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
                {
                    foreach (bool relu in new[] { false, true })
                    {
                        RequantizeParams rq = Requantize(random, backend, expected, g.OutChannels, relu);
                        var expectedBytes = new byte[outputCount];
                        QuantGen.Kernels.Requantize.RequantizeInt32ToUInt8(expected, rq, expectedBytes);
                        var actualBytes = new byte[outputCount];
                        Conv2dKernel.Run(g, input, zx, packed, rq, actualBytes, scratch);
                        AssertEqual(expectedBytes, actualBytes, $"{shapeName}, {config.Name}, zx {zx}, {backend}, relu {relu}");
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(ConfigCases))]
    public void SteadyStateRunAllocatesNothing(string configName)
    {
        GemmConfig config = Config(configName);
        if (SkipUnlessSupported(config, output))
        {
            return;
        }

        var random = new Random(7);
        foreach (Conv2dGeometry g in new[] { new Conv2dGeometry(1, 17, 9, 9, 33, 3, 3, 2, 2, 1, 1), new Conv2dGeometry(1, 17, 9, 9, 17, 3, 3, 1, 1, 1, 1, 1, 1, 17), new Conv2dGeometry(1, 16, 5, 5, 24, 1, 1) })
        {
            byte[] input = Activations(random, g.Batch * g.InHeight * g.InWidth * g.InChannels);
            sbyte[] weights = Weights(random, g.OutChannels * g.KernelHeight * g.KernelWidth * (g.InChannels / g.Groups));
            int[] zw = WeightZeroPoints(random, g.OutChannels, true);
            PackedConv2dWeights packed = PackedConv2dWeights.Pack(weights, zw, g.OutChannels, g.InChannels, g.KernelHeight, g.KernelWidth, g.Groups, config);
            var output8 = new byte[g.Batch * g.OutHeight * g.OutWidth * g.OutChannels];
            var accumulators = new int[output8.Length];
            RequantizeParams rq = RequantizeParams.Create(QuantBackend.X86, 0.02f, Enumerable.Repeat(0.003f, g.OutChannels).ToArray(), 0.5f, 3, null, true);
            var scratch = new KernelScratch();
            Conv2dKernel.Run(g, input, 5, packed, rq, output8, scratch);
            Conv2dKernel.Accumulate(g, input, 5, packed, accumulators, scratch);

            long before = GC.GetAllocatedBytesForCurrentThread();
            Conv2dKernel.Run(g, input, 5, packed, rq, output8, scratch);
            Conv2dKernel.Accumulate(g, input, 5, packed, accumulators, scratch);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(0, allocated);
        }
    }

    // The scalar reference (Conv2dScalar) formats its length-check messages eagerly (240 bytes a call), so
    // the reference config is left out here; the packed paths must allocate nothing.
    public static IEnumerable<object[]> ConfigCases() => ConfigNames.Where(name => name != "Scalar").Select(name => new object[] { name });

    [Theory]
    [InlineData(1, 3, 3, 0, true)]   // one-channel 3×3: runs of 3 bytes padded to 4
    [InlineData(3, 7, 7, 0, true)]   // the RGB stem: runs of 21 bytes padded to 24
    [InlineData(2, 2, 2, 0, true)]   // runs already whole quads
    [InlineData(1, 3, 3, 1, false)]  // weight zero points need the gathered rows' sums
    [InlineData(4, 3, 3, 0, false)]  // channels a multiple of 4: per-tap pointers instead
    [InlineData(1, 1, 1, 0, false)]  // a 1-byte run padded to 4 would quadruple the products
    [InlineData(5, 1, 1, 0, false)]  // 5 → 8 adds more than a third
    public void FewChannelConvolutionsPackRowRunsOnlyWhereTheyPay(int inChannels, int kernelHeight, int kernelWidth, int weightZeroPoint, bool expected)
    {
        const int outChannels = 5;
        var weights = new sbyte[outChannels * kernelHeight * kernelWidth * inChannels];
        int[] zw = Enumerable.Repeat(weightZeroPoint, outChannels).ToArray();
        PackedConv2dWeights vnni = PackedConv2dWeights.Pack(weights, zw, outChannels, inChannels, kernelHeight, kernelWidth, 1, GemmConfig.AvxVnni);
        Assert.Equal(expected, vnni.RowRuns is not null);
        if (expected)
        {
            int run = kernelWidth * inChannels;
            Assert.Equal((run + 3) / 4 * 4, vnni.RowRunLength);
            Assert.Equal(kernelHeight * vnni.RowRunLength, vnni.RowRuns!.K);
        }

        // Other kernels keep their own layouts.
        Assert.Null(PackedConv2dWeights.Pack(weights, zw, outChannels, inChannels, kernelHeight, kernelWidth, 1, GemmConfig.Avx2).RowRuns);
    }

    [Fact]
    public void MismatchedGeometryIsRejected()
    {
        var g = new Conv2dGeometry(1, 4, 5, 5, 8, 3, 3);
        PackedConv2dWeights packed = PackedConv2dWeights.Pack(new sbyte[8 * 9 * 4], new int[8], 8, 4, 3, 3, 1, GemmConfig.Scalar);
        var wrong = g with { KernelHeight = 1 };
        var error = Assert.Throws<ArgumentException>(() => Conv2dKernel.Accumulate(wrong, new byte[100], 0, packed, new int[wrong.OutHeight * wrong.OutWidth * 8], new KernelScratch()));
        Assert.Contains("does not match the packed weights", error.Message);
    }

    internal static void AssertEqual<T>(T[] expected, T[] actual, string what)
        where T : IEquatable<T>
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (!expected[i].Equals(actual[i]))
            {
                Assert.Fail($"{what}: element {i} differs: expected {expected[i]}, got {actual[i]}.");
            }
        }
    }
}
