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
/// The packed transposed convolution (GEMM over the input channels, then col2im: <see cref="ConvTranspose2dKernel"/>)
/// for every config against the scalar reference (<see cref="ConvTranspose2dScalar"/> + <see cref="Requantize"/>),
/// exact equality, on named odd shapes and on seeded random ones: strides 1–3, padding, output padding,
/// dilation, groups, kernels 1–5 (not square), 1–37 channels, batches 1–3, zero, per-tensor and per-channel
/// weight zero points, input zero points 0, 255 and between, full-range and extreme data.
/// </summary>
public class SimdConvTranspose2dTests(ITestOutputHelper output)
{
    /// <summary>Named shapes: the UNet up-sampling layers (small), bands that split images, groups, depthwise, one pixel.</summary>
    public static IEnumerable<(string Name, ConvTranspose2dGeometry Geometry)> Shapes()
    {
        yield return ("UNet k2 s2 C64->32 8x8", new ConvTranspose2dGeometry(1, 64, 8, 8, 32, 2, 2, 2, 2));
        yield return ("UNet k4 s2 p1 C16->8 N2 13x11", new ConvTranspose2dGeometry(2, 16, 13, 11, 8, 4, 4, 2, 2, 1, 1));
        yield return ("one pixel k2 s2 C1->1", new ConvTranspose2dGeometry(1, 1, 1, 1, 1, 2, 2, 2, 2));
        yield return ("k3 s2 p1 op1 C3->8 N2", new ConvTranspose2dGeometry(2, 3, 5, 4, 8, 3, 3, 2, 2, 1, 1, 1, 1));
        yield return ("k4 s2 p1 C17->5", new ConvTranspose2dGeometry(1, 17, 3, 3, 5, 4, 4, 2, 2, 1, 1));
        yield return ("k3 s3 p2 op2 groups3 C6->9", new ConvTranspose2dGeometry(1, 6, 4, 5, 9, 3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 3));
        yield return ("k3 s1 p2 d2 depthwise C4", new ConvTranspose2dGeometry(2, 4, 3, 3, 4, 3, 3, 1, 1, 2, 2, 0, 0, 2, 2, 4));
        yield return ("k2 s2 op1 d2 C2->2 6x7", new ConvTranspose2dGeometry(1, 2, 6, 7, 2, 2, 2, 2, 2, 0, 0, 1, 1, 2, 2));
        yield return ("k1 s1 groups2 C8->16", new ConvTranspose2dGeometry(1, 8, 2, 2, 16, 1, 1, Groups: 2));
        yield return ("k1 s3 (rows no tap reaches) C5->7", new ConvTranspose2dGeometry(1, 5, 4, 3, 7, 1, 1, 3, 3));
        yield return ("k5x3 s(3,1) p(4,1) op(2,0) C37->33 N3", new ConvTranspose2dGeometry(3, 37, 4, 6, 33, 5, 3, 3, 1, 4, 1, 2, 0));
        yield return ("k4 s2 p1 C8->32 N2 7x48 (several bands, one across images, parallel col2im)", new ConvTranspose2dGeometry(2, 8, 7, 48, 32, 4, 4, 2, 2, 1, 1));
        yield return ("k3 s2 p1 op1 groups2 C12->20 N2 9x40 (bands, groups)", new ConvTranspose2dGeometry(2, 12, 9, 40, 20, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2));
        yield return ("k2 s2 C4->24 1x700 (a band narrower than the minimum rows)", new ConvTranspose2dGeometry(1, 4, 1, 700, 24, 2, 2, 2, 2));
        // An image's first input row reaches no output while the one before it reaches the last output row
        // (op = p = 2): a band that holds both must still zero that row before adding into it.
        yield return ("k1 s3 p2 op2 C3->5 N3 5x4 (a band across images whose second image reaches nothing yet)", new ConvTranspose2dGeometry(3, 3, 5, 4, 5, 1, 1, 3, 3, 2, 2, 2, 2));
        yield return ("k2 s1 p3 d1 C2->3 N2 7x5 (first two input rows reach nothing)", new ConvTranspose2dGeometry(2, 2, 7, 5, 3, 2, 2, 1, 1, 3, 1));
    }

    public static IEnumerable<object[]> NamedCases()
    {
        int count = Shapes().Count();
        foreach (string config in ConfigNames)
        {
            for (int shape = 0; shape < count; shape++)
            {
                yield return [config, shape, Shapes().ElementAt(shape).Name];
            }
        }
    }

    public static IEnumerable<object[]> ConfigCases() => ConfigNames.Select(name => new object[] { name });

    [Theory]
    [MemberData(nameof(NamedCases))]
    public void NamedShapesEqualTheScalarReference(string configName, int shapeIndex, string shapeName)
    {
        GemmConfig config = Config(configName);
        if (SkipUnlessSupported(config, output))
        {
            return;
        }

        ConvTranspose2dGeometry g = Shapes().ElementAt(shapeIndex).Geometry;
        var random = new Random(3000 + (shapeIndex * 37));
        foreach (int zeroPointMode in new[] { 0, 1, 2 })
        {
            CheckAgainstScalar(g, config, random, zeroPointMode, extreme: false, $"{shapeName}, {config.Name}");
        }

        CheckAgainstScalar(g, config, random, 2, extreme: false, $"{shapeName}, {config.Name}", bandRows: 1);
        CheckAgainstScalar(g, config, random, 2, extreme: false, $"{shapeName}, {config.Name}", bandRows: 3);
    }

    /// <summary>60 seeded random geometries per config (the same 60 for every config), each with a random zero-point mode.</summary>
    [Theory]
    [MemberData(nameof(ConfigCases))]
    public void RandomShapesEqualTheScalarReference(string configName)
    {
        GemmConfig config = Config(configName);
        if (SkipUnlessSupported(config, output))
        {
            return;
        }

        var random = new Random(4242);
        var seen = new HashSet<string>();
        for (int i = 0; i < 60; i++)
        {
            ConvTranspose2dGeometry g = RandomGeometry(random);
            seen.Add($"s{g.StrideHeight}{g.StrideWidth} d{g.DilationHeight}{g.DilationWidth} g{(g.Groups > 1 ? 2 : 1)}");
            // The kernel's own bands, then one and two input rows per band: band edges inside and across images.
            int zeroPointMode = random.Next(3);
            foreach (int bandRows in new[] { 0, 1, 2 })
            {
                CheckAgainstScalar(g, config, random, zeroPointMode, extreme: i % 10 == 9, $"random #{i} {g}, {config.Name}", bandRows);
            }
        }

        output.WriteLine($"{seen.Count} stride/dilation/group combinations among 60 random geometries");
        Assert.True(seen.Count >= 15, "the random geometries cover too few stride/dilation/group combinations");
    }

    /// <summary>
    /// Tiny and large sums by hand: inputs at the zero point give 0 everywhere (every output reached or not);
    /// x − zx = 255 with w − zw = −255 on every tap gives −65025 times the number of (tap, channel) terms
    /// reaching each output — counted here independently of both kernels.
    /// </summary>
    [Theory]
    [MemberData(nameof(ConfigCases))]
    public void TinyAndLargeSumsAreExact(string configName)
    {
        GemmConfig config = Config(configName);
        if (SkipUnlessSupported(config, output))
        {
            return;
        }

        var g = new ConvTranspose2dGeometry(2, 37, 5, 6, 11, 5, 4, 2, 3, 1, 2, 1, 2, 2, 1);
        g.Validate();
        int outputCount = g.Batch * g.OutHeight * g.OutWidth * g.OutChannels;
        int weightCount = g.InChannels * g.OutChannelsPerGroup * g.KernelHeight * g.KernelWidth;
        var scratch = new KernelScratch();

        var atZeroPoint = Enumerable.Repeat((byte)77, g.Batch * g.InHeight * g.InWidth * g.InChannels).ToArray();
        sbyte[] anyWeights = Weights(new Random(5), weightCount);
        PackedConvTranspose2dWeights packed = PackedConvTranspose2dWeights.Pack(anyWeights, WeightZeroPoints(new Random(6), g.OutChannels, true), g.InChannels, g.OutChannels, g.KernelHeight, g.KernelWidth, g.Groups, config);
        var accumulators = Enumerable.Repeat(12345, outputCount).ToArray(); // stale values must be overwritten
        ConvTranspose2dKernel.Accumulate(g, atZeroPoint, 77, packed, accumulators, scratch);
        Assert.All(accumulators, a => Assert.Equal(0, a));

        var full = Enumerable.Repeat((byte)255, atZeroPoint.Length).ToArray();
        var lowest = Enumerable.Repeat((sbyte)-128, weightCount).ToArray();
        packed = PackedConvTranspose2dWeights.Pack(lowest, Enumerable.Repeat(127, g.OutChannels).ToArray(), g.InChannels, g.OutChannels, g.KernelHeight, g.KernelWidth, g.Groups, config);
        accumulators = Enumerable.Repeat(-1, outputCount).ToArray();
        ConvTranspose2dKernel.Accumulate(g, full, 0, packed, accumulators, scratch);
        for (int oh = 0; oh < g.OutHeight; oh++)
        {
            int rowsReaching = Reaching(oh, g.KernelHeight, g.StrideHeight, g.PadHeight, g.DilationHeight, g.InHeight);
            for (int ow = 0; ow < g.OutWidth; ow++)
            {
                int terms = rowsReaching * Reaching(ow, g.KernelWidth, g.StrideWidth, g.PadWidth, g.DilationWidth, g.InWidth) * g.InChannels;
                for (int n = 0; n < g.Batch; n++)
                {
                    for (int oc = 0; oc < g.OutChannels; oc++)
                    {
                        Assert.Equal(-65025 * terms, accumulators[((((n * g.OutHeight) + oh) * g.OutWidth) + ow) * g.OutChannels + oc]);
                    }
                }
            }
        }
    }

    [Fact]
    public void MismatchedArgumentsAreRejected()
    {
        var g = new ConvTranspose2dGeometry(1, 4, 3, 3, 6, 3, 3, 2, 2, 1, 1, 1, 1, Groups: 2);
        PackedConvTranspose2dWeights packed = ConvTranspose2dKernel.Pack(new sbyte[4 * 3 * 9], new int[6], 4, 6, 3, 3, 2);
        var input = new byte[1 * 3 * 3 * 4];
        var outputs = new int[1 * g.OutHeight * g.OutWidth * 6];
        var scratch = new KernelScratch();
        ConvTranspose2dKernel.Accumulate(g, input, 0, packed, outputs, scratch);

        Assert.Contains("does not match the packed weights", Assert.Throws<ArgumentException>(() => ConvTranspose2dKernel.Accumulate(g with { KernelWidth = 2 }, input, 0, packed, new int[1 * g.OutHeight * (g with { KernelWidth = 2 }).OutWidth * 6], scratch)).Message);
        Assert.Contains("input (NHWC) has 35 elements, expected 36", Assert.Throws<ArgumentException>(() => ConvTranspose2dKernel.Accumulate(g, new byte[35], 0, packed, outputs, scratch)).Message);
        Assert.Contains("output (NHWC)", Assert.Throws<ArgumentException>(() => ConvTranspose2dKernel.Accumulate(g, input, 0, packed, new int[outputs.Length + 1], scratch)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ConvTranspose2dKernel.Accumulate(g, input, 256, packed, outputs, scratch));
        Assert.Contains("weights have 107 elements, expected 108", Assert.Throws<ArgumentException>(() => ConvTranspose2dKernel.Pack(new sbyte[107], new int[6], 4, 6, 3, 3, 2)).Message);
        Assert.Contains("5 weight zero points for 6 output channels", Assert.Throws<ArgumentException>(() => ConvTranspose2dKernel.Pack(new sbyte[108], new int[5], 4, 6, 3, 3, 2)).Message);
        RequantizeParams threeChannels = RequantizeParams.Create(QuantBackend.X86, 0.1f, [0.1f, 0.1f, 0.1f], 0.1f, 0, null, false);
        Assert.Contains("requantization has 3 channels", Assert.Throws<ArgumentException>(() => ConvTranspose2dKernel.Run(g, input, 0, packed, threeChannels, new byte[outputs.Length], scratch)).Message);
    }

    [Theory]
    [MemberData(nameof(ConfigCases))]
    public void SteadyStateCallsAllocateNothing(string configName)
    {
        GemmConfig config = Config(configName);
        if (configName == "Scalar" || SkipUnlessSupported(config, output))
        {
            return; // the scalar reference formats its length-check messages eagerly (as Conv2dScalar does)
        }

        var random = new Random(8);
        foreach (ConvTranspose2dGeometry g in new[] { new ConvTranspose2dGeometry(1, 8, 7, 48, 32, 4, 4, 2, 2, 1, 1), new ConvTranspose2dGeometry(1, 12, 5, 6, 20, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2) })
        {
            byte[] input = Activations(random, g.Batch * g.InHeight * g.InWidth * g.InChannels);
            PackedConvTranspose2dWeights packed = PackedConvTranspose2dWeights.Pack(Weights(random, g.InChannels * g.OutChannelsPerGroup * g.KernelHeight * g.KernelWidth), WeightZeroPoints(random, g.OutChannels, true), g.InChannels, g.OutChannels, g.KernelHeight, g.KernelWidth, g.Groups, config);
            var bytes = new byte[g.Batch * g.OutHeight * g.OutWidth * g.OutChannels];
            var accumulators = new int[bytes.Length];
            RequantizeParams rq = RequantizeParams.Create(QuantBackend.X86, 0.02f, Enumerable.Repeat(0.003f, g.OutChannels).ToArray(), 0.5f, 3, null, true);
            var scratch = new KernelScratch();
            ConvTranspose2dKernel.Run(g, input, 5, packed, rq, bytes, scratch);
            ConvTranspose2dKernel.Accumulate(g, input, 5, packed, accumulators, scratch);

            long before = GC.GetAllocatedBytesForCurrentThread();
            ConvTranspose2dKernel.Run(g, input, 5, packed, rq, bytes, scratch);
            ConvTranspose2dKernel.Accumulate(g, input, 5, packed, accumulators, scratch);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
    }

    /// <summary>
    /// Packed accumulators equal <see cref="ConvTranspose2dScalar.Accumulate"/> for several input zero points;
    /// packed requantized bytes equal the scalar accumulators requantized by <see cref="Requantize.RequantizeInt32ToUInt8"/>
    /// for both backends, with and without ReLU.
    /// </summary>
    /// <param name="zeroPointMode">0: every zw 0; 1: one nonzero zw for all channels (per tensor); 2: per-channel zw.</param>
    /// <param name="bandRows">Input rows per band (0: the kernel's choice, often one band for these sizes).</param>
    internal static void CheckAgainstScalar(in ConvTranspose2dGeometry g, GemmConfig config, Random random, int zeroPointMode, bool extreme, string what, int bandRows = 0)
    {
        g.Validate();
        int inputCount = g.Batch * g.InHeight * g.InWidth * g.InChannels;
        int weightCount = g.InChannels * g.OutChannelsPerGroup * g.KernelHeight * g.KernelWidth;
        int outputCount = g.Batch * g.OutHeight * g.OutWidth * g.OutChannels;
        byte[] input = extreme ? Extremes(random, inputCount, 0, 255).Select(v => (byte)v).ToArray() : Activations(random, inputCount);
        sbyte[] logical = extreme ? Extremes(random, weightCount, -128, 127).Select(v => (sbyte)v).ToArray() : Weights(random, weightCount);
        int[] zw = zeroPointMode switch
        {
            0 => new int[g.OutChannels],
            1 => Enumerable.Repeat(random.Next(-128, 128), g.OutChannels).ToArray(),
            _ => WeightZeroPoints(random, g.OutChannels, true),
        };

        sbyte[] ohwi = ConvTranspose2dScalar.Pack(logical.Select(v => (int)v).ToArray(), g.InChannels, g.OutChannels, g.KernelHeight, g.KernelWidth, g.Groups);
        PackedConvTranspose2dWeights packed = PackedConvTranspose2dWeights.Pack(logical, zw, g.InChannels, g.OutChannels, g.KernelHeight, g.KernelWidth, g.Groups, config);
        var scratch = new KernelScratch();
        foreach (int zx in new[] { 0, 255, random.Next(1, 255) })
        {
            var expected = new int[outputCount];
            ConvTranspose2dScalar.Accumulate(g, input, zx, ohwi, zw, expected);
            var actual = Enumerable.Repeat(int.MinValue, outputCount).ToArray();
            ConvTranspose2dKernel.Accumulate(g, input, zx, packed, actual, scratch, bandRows);
            AssertEqual(expected, actual, $"{what}, zx {zx}, zw mode {zeroPointMode}, band rows {bandRows}, accumulators");

            foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
            {
                foreach (bool relu in new[] { false, true })
                {
                    RequantizeParams rq = Requantize(random, backend, expected, g.OutChannels, relu);
                    var expectedBytes = new byte[outputCount];
                    QuantGen.Kernels.Requantize.RequantizeInt32ToUInt8(expected, rq, expectedBytes);
                    var actualBytes = new byte[outputCount];
                    ConvTranspose2dKernel.Run(g, input, zx, packed, rq, actualBytes, scratch, bandRows);
                    AssertEqual(expectedBytes, actualBytes, $"{what}, zx {zx}, zw mode {zeroPointMode}, band rows {bandRows}, {backend}, relu {relu}");
                }
            }
        }
    }

    /// <summary>A valid geometry with 1–37 channels (divisible by the groups), kernels 1–5, strides and dilations 1–3.</summary>
    internal static ConvTranspose2dGeometry RandomGeometry(Random random)
    {
        while (true)
        {
            int groups = new[] { 1, 1, 1, 2, 3, 4 }[random.Next(6)];
            int inChannels = groups * random.Next(1, (37 / groups) + 1);
            int outChannels = groups * random.Next(1, (37 / groups) + 1);
            int kernelHeight = random.Next(1, 6), kernelWidth = random.Next(1, 6);
            int strideHeight = random.Next(1, 4), strideWidth = random.Next(1, 4);
            int dilationHeight = random.Next(4) == 0 ? random.Next(2, 4) : 1, dilationWidth = random.Next(4) == 0 ? random.Next(2, 4) : 1;
            int padHeight = random.Next(0, 3), padWidth = random.Next(0, 3);
            int outputPadHeight = random.Next(0, Math.Max(strideHeight, dilationHeight));
            int outputPadWidth = random.Next(0, Math.Max(strideWidth, dilationWidth));
            var g = new ConvTranspose2dGeometry(
                random.Next(1, 4), inChannels, random.Next(1, 10), random.Next(1, 10), outChannels, kernelHeight, kernelWidth,
                strideHeight, strideWidth, padHeight, padWidth, outputPadHeight, outputPadWidth, dilationHeight, dilationWidth, groups);
            try
            {
                g.Validate();
                return g;
            }
            catch (ArgumentException)
            {
                // An empty output (padding larger than the reach): draw again.
            }
        }
    }

    /// <summary>Input rows i (0 ≤ i &lt; size) with o = i·s − p + k·d for some tap k: a count made by brute force.</summary>
    private static int Reaching(int output, int kernel, int stride, int pad, int dilation, int size)
    {
        int count = 0;
        for (int i = 0; i < size; i++)
        {
            for (int k = 0; k < kernel; k++)
            {
                if ((i * stride) - pad + (k * dilation) == output)
                {
                    count++;
                }
            }
        }

        return count;
    }

    private static int[] Extremes(Random random, int count, int min, int max) =>
        Enumerable.Range(0, count).Select(_ => random.Next(2) == 0 ? min : max).ToArray();

    private static void AssertEqual<T>(T[] expected, T[] actual, string what)
        where T : IEquatable<T>
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (!expected[i].Equals(actual[i]))
            {
                Assert.Fail($"{what}: element {i} is {actual[i]}, the scalar reference gives {expected[i]}.");
            }
        }
    }
}

/// <summary>The packed transposed convolution gives the scalar reference's accumulators on 1, 2 and 3 threads.</summary>
[Collection(KernelThreadsCollection.Name)]
public class ThreadedConvTranspose2dTests(ITestOutputHelper output)
{
    [Fact]
    public void EveryDegreeOfParallelismGivesTheScalarReference()
    {
        ConvTranspose2dGeometry[] shapes =
        [
            new(1, 16, 40, 37, 8, 4, 4, 2, 2, 1, 1),
            new(2, 8, 7, 48, 32, 4, 4, 2, 2, 1, 1),
            new(1, 20, 23, 29, 22, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2),
            new(3, 33, 9, 31, 17, 2, 2, 2, 2),
        ];
        var random = new Random(77);
        int configs = 0;
        foreach (string name in ConfigNames)
        {
            GemmConfig config = Config(name);
            if (!config.IsSupported)
            {
                continue;
            }

            configs++;
            foreach (int degree in new[] { 1, 2, 3 })
            {
                using var threads = new Threads(degree);
                foreach (ConvTranspose2dGeometry g in shapes)
                {
                    SimdConvTranspose2dTests.CheckAgainstScalar(g, config, random, 2, extreme: false, $"{g}, {config.Name}, {degree} threads");
                    SimdConvTranspose2dTests.CheckAgainstScalar(g, config, random, 1, extreme: false, $"{g}, {config.Name}, {degree} threads", bandRows: 3);
                }
            }
        }

        output.WriteLine($"{configs} configs x 3 degrees x {shapes.Length} shapes equal the scalar reference");
    }
}
