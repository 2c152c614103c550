using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.Scalar;
using Xunit.Abstractions;
using static QuantGen.Tests.Kernels.Simd.SimdTestData;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>Linear (GEMM) for every config against <see cref="LinearScalar"/>: K below, equal to, above and multiples of each K block; odd N and M.</summary>
public class SimdLinearTests(ITestOutputHelper output)
{
    private static readonly int[] KSizes = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 577];

    public static IEnumerable<object[]> Cases()
    {
        foreach (string config in ConfigNames)
        {
            foreach (int k in KSizes)
            {
                yield return [config, k];
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LinearEqualsScalarReference(string configName, int inFeatures)
    {
        GemmConfig config = Config(configName);
        if (SkipUnlessSupported(config, output))
        {
            return;
        }

        var random = new Random(4000 + inFeatures);
        var scratch = new KernelScratch();
        foreach ((int batch, int outFeatures) in new[] { (1, 1), (1, 40), (5, 3), (7, 17), (13, 33), (2, 63), (9, 65) })
        {
            byte[] input = Activations(random, batch * inFeatures);
            sbyte[] weights = Weights(random, outFeatures * inFeatures);
            foreach (bool nonzero in new[] { false, true })
            {
                int[] zw = WeightZeroPoints(random, outFeatures, nonzero);
                PackedGemmWeights packed = LinearKernel.Pack(weights, zw, outFeatures, inFeatures, config);
                foreach (int zx in new[] { 0, 128, 255, 91 })
                {
                    var expected = new int[batch * outFeatures];
                    LinearScalar.Accumulate(batch, inFeatures, outFeatures, input, zx, weights, zw, expected);
                    var actual = new int[expected.Length];
                    LinearKernel.Accumulate(batch, input, zx, packed, actual, scratch);
                    string what = $"{config.Name} {batch}x{inFeatures}x{outFeatures}, zx {zx}, zw nonzero {nonzero}";
                    SimdConv2dTests.AssertEqual(expected, actual, what);

                    foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
                    {
                        foreach (bool relu in new[] { false, true })
                        {
                            RequantizeParams rq = Requantize(random, backend, expected, outFeatures, relu);
                            var expectedBytes = new byte[expected.Length];
                            QuantGen.Kernels.Requantize.RequantizeInt32ToUInt8(expected, rq, expectedBytes);
                            var actualBytes = new byte[expected.Length];
                            LinearKernel.Run(batch, input, zx, packed, rq, actualBytes, scratch);
                            SimdConv2dTests.AssertEqual(expectedBytes, actualBytes, $"{what}, {backend}, relu {relu}");
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void AllExtremeValuesStayExact()
    {
        // 255 × −128 everywhere: every vpmaddubsw pair sum would saturate (2·255·−128 = −65280 < −32768); the
        // exact sum is K·255·−128, here −(577)·32640 = −18833280 for zx = 0, zw = 0.
        const int k = 577;
        var input = new byte[3 * k];
        Array.Fill(input, (byte)255);
        var weights = new sbyte[5 * k];
        Array.Fill(weights, (sbyte)-128);
        foreach (string name in ConfigNames)
        {
            GemmConfig config = Config(name);
            if (!config.IsSupported)
            {
                output.WriteLine($"SKIPPED {config.Name}: not supported here.");
                continue;
            }

            PackedGemmWeights packed = LinearKernel.Pack(weights, new int[5], 5, k, config);
            var actual = new int[15];
            LinearKernel.Accumulate(3, input, 0, packed, actual, new KernelScratch());
            Assert.All(actual, value => Assert.Equal(-18833280, value));
        }
    }

    [Theory]
    [MemberData(nameof(ConfigCases))]
    public void RequantizedTilesRoundTiesToEvenAndClampLikeTheScalarReference(string configName)
    {
        // K = 1, x = 0..255 (one per row), weights ±1 and ±127: with sx = sw = 1, sy = 2 the multiplier is 0.5,
        // so every odd accumulator of the ±1 channels is an exact tie, and the ±127 channels run into both clamps.
        // This reaches the driver's tile epilogue (all rows, 6 at a time, and the 1-row kernel's tiles).
        GemmConfig config = Config(configName);
        if (SkipUnlessSupported(config, output))
        {
            return;
        }

        const int outFeatures = 19;
        var input = new byte[256];
        for (int x = 0; x < input.Length; x++)
        {
            input[x] = (byte)x;
        }

        var weights = new sbyte[outFeatures];
        for (int c = 0; c < outFeatures; c++)
        {
            weights[c] = (sbyte)((c % 2 == 0 ? 1 : -1) * (c % 3 == 0 ? 127 : 1));
        }

        PackedGemmWeights packed = LinearKernel.Pack(weights, new int[outFeatures], outFeatures, 1, config);
        var accumulators = new int[input.Length * outFeatures];
        LinearScalar.Accumulate(input.Length, 1, outFeatures, input, 0, weights, new int[outFeatures], accumulators);
        foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
        {
            foreach (bool relu in new[] { false, true })
            {
                var scales = new float[outFeatures];
                Array.Fill(scales, 1f);
                RequantizeParams rq = RequantizeParams.Create(backend, 1f, scales, 2f, 100, null, relu);
                var expected = new byte[accumulators.Length];
                QuantGen.Kernels.Requantize.RequantizeInt32ToUInt8(accumulators, rq, expected);
                Assert.Contains(expected, value => value == 0 || value == 255);
                foreach (int batch in new[] { 256, 1, 7 })
                {
                    var actual = new byte[batch * outFeatures];
                    LinearKernel.Run(batch, input.AsSpan(0, batch), 0, packed, rq, actual, new KernelScratch());
                    SimdConv2dTests.AssertEqual(expected[..actual.Length], actual, $"{config.Name} {backend} relu {relu} batch {batch}");
                }
            }
        }
    }

    public static IEnumerable<object[]> ConfigCases() => ConfigNames.Select(name => new object[] { name });
}
