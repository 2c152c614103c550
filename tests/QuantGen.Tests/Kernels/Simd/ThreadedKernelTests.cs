using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.Scalar;
using Xunit.Abstractions;
using static QuantGen.Tests.Kernels.Simd.SimdTestData;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>
/// Tests that change <see cref="KernelThreads.MaxDegreeOfParallelism"/> (a process-wide setting) or
/// measure allocations across threads run alone, after the parallel tests.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KernelThreadsCollection
{
    public const string Name = "Kernel threads (run alone)";
}

/// <summary>Sets <see cref="KernelThreads.MaxDegreeOfParallelism"/> for a using block and restores it.</summary>
internal sealed class Threads : IDisposable
{
    private readonly int _previous = KernelThreads.MaxDegreeOfParallelism;

    public Threads(int degree) => KernelThreads.MaxDegreeOfParallelism = degree;

    public void Dispose() => KernelThreads.MaxDegreeOfParallelism = _previous;
}

/// <summary>
/// The kernels give the same bytes on 1, 2 and 3 threads (odd shapes, so tasks split unevenly and
/// tiles are partial), and those bytes are the scalar reference's.
/// </summary>
[Collection(KernelThreadsCollection.Name)]
public class ThreadedKernelTests(ITestOutputHelper output)
{
    private static readonly int[] Degrees = [1, 2, 3];

    /// <summary>ResNet-like shapes at small sizes plus the odd ones: many row tiles, few rows with many panels, depthwise, groups.</summary>
    public static IEnumerable<(string Name, Conv2dGeometry Geometry)> ThreadedConvShapes()
    {
        foreach ((string name, Conv2dGeometry geometry) in ConvShapes())
        {
            yield return (name, geometry);
        }

        yield return ("3x3 pad1 C19->37 29x31 (many row tiles)", new Conv2dGeometry(1, 19, 29, 31, 37, 3, 3, 1, 1, 1, 1));
        yield return ("3x3 pad1 C64->200 5x5 (few rows, many panels)", new Conv2dGeometry(1, 64, 5, 5, 200, 3, 3, 1, 1, 1, 1));
        yield return ("7x7 stride2 pad3 C3->64 N2 33x35 (stem)", new Conv2dGeometry(2, 3, 33, 35, 64, 7, 7, 2, 2, 3, 3));
        yield return ("1x1 C96->130 N3 9x7", new Conv2dGeometry(3, 96, 9, 7, 130, 1, 1));
        yield return ("depthwise 3x3 pad1 C67 N2 19x23", new Conv2dGeometry(2, 67, 19, 23, 67, 3, 3, 1, 1, 1, 1, 1, 1, 67));

        // Odd shapes large enough that 3 threads really split them (small GEMMs stay on the calling thread:
        // KernelThreads.MinMultiplyAddsPerThread), one per path: strided, grouped, dilated per-tap pointers,
        // gathered rows (3 × 4 ... rows stay unaligned), and few-channel row runs with a batch.
        yield return ("3x3 stride2 pad1 C63->65 N2 31x29 (threaded)", new Conv2dGeometry(2, 63, 31, 29, 65, 3, 3, 2, 2, 1, 1));
        yield return ("5x3 stride(2,1) pad(2,1) groups2 C6->34 41x37 (threaded)", new Conv2dGeometry(1, 6, 41, 37, 34, 5, 3, 2, 1, 2, 1, 1, 1, 2));
        yield return ("3x3 dilation2 pad2 C4->17 37x41 (threaded)", new Conv2dGeometry(1, 4, 37, 41, 17, 3, 3, 1, 1, 2, 2, 2, 2));
        yield return ("3x3 pad1 C5->19 31x33 (threaded)", new Conv2dGeometry(1, 5, 31, 33, 19, 3, 3, 1, 1, 1, 1));
        yield return ("row runs 3x3 pad1 C1->16 N3 56x56 (threaded)", new Conv2dGeometry(3, 1, 56, 56, 16, 3, 3, 1, 1, 1, 1));
    }

    [Fact]
    public void TheThreadedShapesAreLargeEnoughToSplit()
    {
        // Guards the shapes above and below against the threshold: were they smaller, 2 and 3 "threads" would
        // run on one and the bit-identity tests would compare a result with itself.
        foreach ((string name, Conv2dGeometry g) in ThreadedConvShapes().Where(shape => shape.Name.EndsWith("(threaded)", StringComparison.Ordinal)))
        {
            long multiplyAdds = (long)g.Batch * g.OutHeight * g.OutWidth * g.OutChannels * g.KernelHeight * g.KernelWidth * (g.InChannels / g.Groups);
            Assert.True(multiplyAdds >= 3 * KernelThreads.MinMultiplyAddsPerThread, $"{name}: {multiplyAdds} multiply-adds");
        }

        foreach (object[] linear in LinearCases())
        {
            long multiplyAdds = (long)(int)linear[0] * (int)linear[1] * (int)linear[2];
            Assert.True(multiplyAdds >= 3 * KernelThreads.MinMultiplyAddsPerThread, $"linear {string.Join('x', linear)}: {multiplyAdds} multiply-adds");
        }

        Conv2dGeometry r = ShortRegionsShape;
        long shortRegion = (long)r.OutHeight * r.OutWidth * r.OutChannels * r.KernelHeight * r.KernelWidth * r.InChannels;
        Assert.True(shortRegion >= 3 * KernelThreads.MinMultiplyAddsPerThread, $"short regions: {shortRegion} multiply-adds");
    }

    /// <summary>Batch × in × out: one row (the 1-row kernel, panels split), odd sizes, a K with a tail quad.</summary>
    public static IEnumerable<object[]> LinearCases() => [[1, 800, 1000], [37, 129, 193], [2, 4099, 100]];

    private static readonly Conv2dGeometry ShortRegionsShape = new(1, 8, 16, 18, 40, 3, 3, 1, 1, 1, 1);

    public static IEnumerable<object[]> ConvCases() => ThreadedConvShapes().Select((shape, index) => new object[] { index, shape.Name });

    [Theory]
    [MemberData(nameof(ConvCases))]
    public void ConvolutionIsBitIdenticalOnOneTwoAndThreeThreads(int shapeIndex, string shapeName)
    {
        Conv2dGeometry g = ThreadedConvShapes().ElementAt(shapeIndex).Geometry;
        GemmConfig config = KernelDispatch.Config;
        var random = new Random(2000 + shapeIndex);
        byte[] input = Activations(random, g.Batch * g.InHeight * g.InWidth * g.InChannels);
        sbyte[] weights = Weights(random, g.OutChannels * g.KernelHeight * g.KernelWidth * (g.InChannels / g.Groups));
        int outputCount = g.Batch * g.OutHeight * g.OutWidth * g.OutChannels;
        foreach (bool nonzeroWeightZeroPoints in new[] { false, true })
        {
            int[] zw = WeightZeroPoints(random, g.OutChannels, nonzeroWeightZeroPoints);
            PackedConv2dWeights packed = PackedConv2dWeights.Pack(weights, zw, g.OutChannels, g.InChannels, g.KernelHeight, g.KernelWidth, g.Groups, config);
            var expected = new int[outputCount];
            Conv2dScalar.Accumulate(g, input, 77, weights, zw, expected);
            RequantizeParams rq = Requantize(random, QuantBackend.X86, expected, g.OutChannels, relu: true);
            var expectedBytes = new byte[outputCount];
            QuantGen.Kernels.Requantize.RequantizeInt32ToUInt8(expected, rq, expectedBytes);
            foreach (int degree in Degrees)
            {
                using var threads = new Threads(degree);
                var scratch = new KernelScratch();
                var accumulators = new int[outputCount];
                Conv2dKernel.Accumulate(g, input, 77, packed, accumulators, scratch);
                SimdConv2dTests.AssertEqual(expected, accumulators, $"{shapeName}, {config.Name}, {degree} threads, zw {nonzeroWeightZeroPoints}, accumulators");
                var bytes = new byte[outputCount];
                Conv2dKernel.Run(g, input, 77, packed, rq, bytes, scratch);
                SimdConv2dTests.AssertEqual(expectedBytes, bytes, $"{shapeName}, {config.Name}, {degree} threads, zw {nonzeroWeightZeroPoints}, requantized");
            }
        }
    }

    [Theory]
    [MemberData(nameof(LinearCases))]
    public void LinearIsBitIdenticalOnOneTwoAndThreeThreads(int batch, int inFeatures, int outFeatures)
    {
        GemmConfig config = KernelDispatch.Config;
        var random = new Random((batch * 7) + outFeatures);
        byte[] input = Activations(random, batch * inFeatures);
        sbyte[] weights = Weights(random, outFeatures * inFeatures);
        int[] zw = WeightZeroPoints(random, outFeatures, nonzero: true);
        PackedGemmWeights packed = LinearKernel.Pack(weights, zw, outFeatures, inFeatures, config);
        var expected = new int[batch * outFeatures];
        LinearScalar.Accumulate(batch, inFeatures, outFeatures, input, 3, weights, zw, expected);
        foreach (int degree in Degrees)
        {
            using var threads = new Threads(degree);
            var actual = new int[expected.Length];
            LinearKernel.Accumulate(batch, input, 3, packed, actual, new KernelScratch());
            SimdConv2dTests.AssertEqual(expected, actual, $"linear {batch}x{inFeatures}->{outFeatures}, {config.Name}, {degree} threads");
        }
    }

    [Fact]
    public void AddAndMaxPoolAreBitIdenticalOnOneTwoAndThreeThreads()
    {
        var random = new Random(5);
        byte[] a = Activations(random, 70_001), b = Activations(random, 70_001);
        var expected = new byte[a.Length];
        AddScalar.Apply(a, 0.021f, 3, b, 0.017f, 250, expected, 0.03f, 99, relu: true);
        var g = new Pool2dGeometry(2, 67, 41, 39, 3, 3, 2, 2, 1, 1);
        byte[] poolInput = Activations(random, g.Batch * g.InHeight * g.InWidth * g.Channels);
        var expectedPool = new byte[g.Batch * g.OutHeight * g.OutWidth * g.Channels];
        MaxPool2dScalar.Apply(g, poolInput, expectedPool);
        foreach (int degree in Degrees)
        {
            using var threads = new Threads(degree);
            var actual = new byte[a.Length];
            AddKernel.Apply(a, 0.021f, 3, b, 0.017f, 250, actual, 0.03f, 99, relu: true);
            SimdConv2dTests.AssertEqual(expected, actual, $"add, {degree} threads");
            var pooled = new byte[expectedPool.Length];
            MaxPool2dKernel.Apply(g, poolInput, pooled);
            SimdConv2dTests.AssertEqual(expectedPool, pooled, $"max pool, {degree} threads");
        }
    }

    /// <summary>Thousands of short parallel regions back to back: a lost wake-up, a stale task claim or a torn hand-over would show as a hang or a wrong byte.</summary>
    [Fact]
    public void ManyShortRegionsInARowStayCorrect()
    {
        Conv2dGeometry g = ShortRegionsShape;
        var random = new Random(6);
        byte[] input = Activations(random, g.InHeight * g.InWidth * g.InChannels);
        sbyte[] weights = Weights(random, g.OutChannels * 9 * g.InChannels);
        int[] zw = new int[g.OutChannels];
        PackedConv2dWeights packed = PackedConv2dWeights.Pack(weights, zw, g.OutChannels, g.InChannels, 3, 3, 1, KernelDispatch.Config);
        var expected = new int[g.OutHeight * g.OutWidth * g.OutChannels];
        Conv2dScalar.Accumulate(g, input, 9, weights, zw, expected);
        using var threads = new Threads(3);
        var scratch = new KernelScratch();
        var actual = new int[expected.Length];
        for (int iteration = 0; iteration < 3000; iteration++)
        {
            Array.Clear(actual);
            Conv2dKernel.Accumulate(g, input, 9, packed, actual, scratch);
            if (!expected.AsSpan().SequenceEqual(actual))
            {
                SimdConv2dTests.AssertEqual(expected, actual, $"iteration {iteration}");
            }
        }

        output.WriteLine($"3000 regions on 3 threads; workers allocated {KernelThreads.WorkerAllocatedBytes} bytes since start-up.");
    }

    [Fact]
    public void TwoCallersAtOnceBothGetTheReferenceResult()
    {
        // While one thread's region holds the pool, the other runs its tasks on its own thread.
        var g = new Conv2dGeometry(1, 16, 12, 12, 48, 3, 3, 1, 1, 1, 1);
        var random = new Random(8);
        byte[] input = Activations(random, g.InHeight * g.InWidth * g.InChannels);
        sbyte[] weights = Weights(random, g.OutChannels * 9 * g.InChannels);
        int[] zw = new int[g.OutChannels];
        PackedConv2dWeights packed = PackedConv2dWeights.Pack(weights, zw, g.OutChannels, g.InChannels, 3, 3, 1, KernelDispatch.Config);
        var expected = new int[g.OutHeight * g.OutWidth * g.OutChannels];
        Conv2dScalar.Accumulate(g, input, 1, weights, zw, expected);
        using var threads = new Threads(2);
        int failures = 0;
        System.Threading.Tasks.Parallel.For(0, 4, new System.Threading.Tasks.ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            var scratch = new KernelScratch();
            var actual = new int[expected.Length];
            for (int i = 0; i < 200; i++)
            {
                Conv2dKernel.Accumulate(g, input, 1, packed, actual, scratch);
                if (!expected.AsSpan().SequenceEqual(actual))
                {
                    System.Threading.Interlocked.Increment(ref failures);
                }
            }
        });
        Assert.Equal(0, failures);
    }

    [Fact]
    public void TheDegreeOfParallelismMustBePositive()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => KernelThreads.MaxDegreeOfParallelism = 0);
        Assert.True(KernelThreads.MaxDegreeOfParallelism >= 1);
        Assert.True(KernelThreads.DefaultDegreeOfParallelism >= 1);
    }
}

/// <summary>The QUANTGEN_THREADS parsing (no global state touched).</summary>
public class KernelThreadsSettingTests
{
    [Theory]
    [InlineData("1", 1)]
    [InlineData(" 3 ", 3)]
    [InlineData("64", 64)]
    public void APositiveIntegerIsTheDefault(string value, int expected) => Assert.Equal(expected, KernelThreads.ParseDegree(value));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    public void UnsetMeansEveryCore(string? value) => Assert.Equal(Environment.ProcessorCount, KernelThreads.ParseDegree(value));

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("abc")]
    [InlineData("two")]
    [InlineData("1.5")]
    [InlineData("+4")]
    public void AnythingElseIsAConfigurationErrorNamingTheVariableTheValueAndWhatItAccepts(string value)
    {
        var error = Assert.Throws<QuantGenConfigurationException>(() => KernelThreads.ParseDegree(value));
        Assert.Equal("QUANTGEN_THREADS", error.Variable);
        Assert.Equal(value, error.Value);
        Assert.Contains("positive integer", error.AcceptedValues);
        Assert.Contains($"QUANTGEN_THREADS=\"{value}\"", error.Message);
        Assert.Contains("positive integer", error.Message);
        Assert.IsAssignableFrom<InvalidOperationException>(error);
    }
}
