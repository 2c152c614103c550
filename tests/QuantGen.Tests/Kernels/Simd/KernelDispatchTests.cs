using System;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.Scalar;
using Xunit.Abstractions;
using static QuantGen.Tests.Kernels.Simd.SimdTestData;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>The dispatch point: probe order, the QUANTGEN_ISA override, and one convolution through the default config.</summary>
public class KernelDispatchTests(ITestOutputHelper output)
{
    [Fact]
    public void ProbePicksTheBestSupportedIsaInTableOrder()
    {
        // The generated AVX-512 VNNI kernels first (they need AVX-512 VNNI, not AVX-VNNI), then the managed paths.
        KernelIsa expected = GemmConfig.AvxVnniGenerated.IsSupported ? KernelIsa.AvxVnni
            : System.Runtime.Intrinsics.X86.AvxVnni.IsSupported && System.Runtime.Intrinsics.X86.Avx2.IsSupported ? KernelIsa.AvxVnni
            : System.Runtime.Intrinsics.X86.Avx512BW.IsSupported ? KernelIsa.Avx512BW
            : System.Runtime.Intrinsics.X86.Avx2.IsSupported ? KernelIsa.Avx2
            : System.Runtime.Intrinsics.Arm.Dp.IsSupported ? KernelIsa.NeonDot
            : KernelIsa.Scalar;
        Assert.Equal(expected, KernelDispatch.Best);
        Assert.Equal(expected, KernelDispatch.Select(null));
        Assert.Equal(expected, KernelDispatch.Select(""));
        output.WriteLine(KernelDispatch.KernelInfo);
        Assert.Contains(KernelDispatch.Isa.ToString(), KernelDispatch.KernelInfo);
        Assert.Equal(GemmConfig.AvxVnniGenerated.IsSupported, KernelDispatch.Config.Generated);
    }

    [Fact]
    public void OverrideSelectsALowerPathAndRejectsUnknownOrUnsupportedOnes()
    {
        Assert.Equal(KernelIsa.Scalar, KernelDispatch.Select("scalar"));
        Assert.Equal(KernelIsa.Scalar, KernelDispatch.Select(" SCALAR "));
        var unknown = Assert.Throws<QuantGenConfigurationException>(() => KernelDispatch.Select("bogus"));
        Assert.Equal("QUANTGEN_ISA", unknown.Variable);
        Assert.Equal("bogus", unknown.Value);
        Assert.Contains("QUANTGEN_ISA=\"bogus\"", unknown.Message);
        Assert.Contains("scalar, avx2, avx512bw, avxvnni or neondot", unknown.Message);
        foreach ((string name, KernelIsa isa) in new[] { ("avx2", KernelIsa.Avx2), ("avx512bw", KernelIsa.Avx512BW), ("avxvnni", KernelIsa.AvxVnni), ("neondot", KernelIsa.NeonDot) })
        {
            if (KernelDispatch.IsSupported(isa))
            {
                Assert.Equal(isa, KernelDispatch.Select(name));
            }
            else
            {
                var error = Assert.Throws<QuantGenConfigurationException>(() => KernelDispatch.Select(name));
                Assert.Contains("does not support", error.Message);
                Assert.Equal(name, error.Value);
            }
        }
    }

    [Fact]
    public void UnsupportedConfigRefusesToRun()
    {
        foreach (GemmConfig config in GemmConfig.All)
        {
            if (!config.IsSupported)
            {
                var error = Assert.Throws<PlatformNotSupportedException>(config.EnsureSupported);
                Assert.Contains(config.Isa.ToString(), error.Message);
            }
        }
    }

    [Fact]
    public void ConvolutionThroughTheDispatcherEqualsTheReference()
    {
        var g = new Conv2dGeometry(2, 19, 9, 10, 37, 3, 3, 2, 1, 1, 1);
        var random = new Random(5);
        byte[] input = Activations(random, 2 * 9 * 10 * 19);
        sbyte[] weights = Weights(random, 37 * 9 * 19);
        int[] zw = WeightZeroPoints(random, 37, true);
        PackedConv2dWeights packed = PackedConv2dWeights.Pack(weights, zw, 37, 19, 3, 3);
        Assert.Equal(KernelDispatch.Config, packed.Config);

        var expected = new int[2 * g.OutHeight * g.OutWidth * 37];
        Conv2dScalar.Accumulate(g, input, 77, weights, zw, expected);
        var actual = new int[expected.Length];
        var scratch = new KernelScratch();
        Conv2dKernel.Accumulate(g, input, 77, packed, actual, scratch);
        SimdConv2dTests.AssertEqual(expected, actual, $"dispatcher ({KernelDispatch.Isa})");

        RequantizeParams rq = SimdTestData.Requantize(random, QuantBackend.X86, expected, 37, true);
        var expectedBytes = new byte[expected.Length];
        QuantGen.Kernels.Requantize.RequantizeInt32ToUInt8(expected, rq, expectedBytes);
        var actualBytes = new byte[expected.Length];
        Conv2dKernel.Run(g, input, 77, packed, rq, actualBytes, scratch);
        SimdConv2dTests.AssertEqual(expectedBytes, actualBytes, $"dispatcher ({KernelDispatch.Isa}) requantized");
    }
}
