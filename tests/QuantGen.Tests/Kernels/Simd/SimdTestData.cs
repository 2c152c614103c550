using System;
using System.Collections.Generic;
using QuantGen.Kernels;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>Configs under test, seeded data, and requantization factors that spread outputs over 0..255.</summary>
internal static class SimdTestData
{
    /// <summary>Every config the tests run explicitly (real ISA kernels, their scalar-emulation twins, the reference).</summary>
    public static readonly string[] ConfigNames = ["AvxVnniGenerated", "AvxVnni", "Avx512BW", "Avx2", "NeonDot", "NeonDotScalarEmulation", "Avx2ScalarEmulation", "Scalar"];

    public static GemmConfig Config(string name) => name switch
    {
        "AvxVnniGenerated" => GemmConfig.AvxVnniGenerated,
        "AvxVnni" => GemmConfig.AvxVnni,
        "Avx512BW" => GemmConfig.Avx512BW,
        "Avx2" => GemmConfig.Avx2,
        "NeonDot" => GemmConfig.NeonDot,
        "NeonDotScalarEmulation" => GemmConfig.NeonDotScalarEmulation,
        "Avx2ScalarEmulation" => GemmConfig.Avx2ScalarEmulation,
        "Scalar" => GemmConfig.Scalar,
        _ => throw new ArgumentException(name),
    };

    /// <summary>
    /// xunit 2 has no run-time skip: an unsupported ISA's case checks that the dispatcher agrees it is
    /// unsupported, writes why it did not run, and returns.
    /// </summary>
    public static bool SkipUnlessSupported(GemmConfig config, Xunit.Abstractions.ITestOutputHelper output)
    {
        if (config.IsSupported)
        {
            return false;
        }

        if (config.Generated && KernelDispatch.IsSupported(config.Isa))
        {
            // The ISA runs, the generated code does not (QUANTGEN_JIT=0, no AVX-512 VNNI, no executable memory).
            output.WriteLine($"SKIPPED: {config.Name}: {QuantGen.Kernels.X86.Generated.GemmAvx512VnniGenerated.Status}.");
            return true;
        }

        Assert.False(KernelDispatch.IsSupported(config.Isa));
        output.WriteLine($"SKIPPED: {config.Name} needs {config.Isa}, not supported on this machine/settings (supported: {KernelDispatch.SupportedList()}).");
        return true;
    }

    public static byte[] Bytes(Random random, int count)
    {
        var values = new byte[count];
        random.NextBytes(values);
        return values;
    }

    /// <summary>Full-range int8 (−128..127), with the extremes over-represented so saturation would show.</summary>
    public static sbyte[] Weights(Random random, int count)
    {
        var values = new sbyte[count];
        for (int i = 0; i < count; i++)
        {
            int pick = random.Next(8);
            values[i] = pick == 0 ? (sbyte)-128 : pick == 1 ? (sbyte)127 : (sbyte)random.Next(-128, 128);
        }

        return values;
    }

    /// <summary>Activations with the extremes over-represented (0 and 255).</summary>
    public static byte[] Activations(Random random, int count)
    {
        var values = new byte[count];
        for (int i = 0; i < count; i++)
        {
            int pick = random.Next(8);
            values[i] = pick == 0 ? (byte)0 : pick == 1 ? (byte)255 : (byte)random.Next(256);
        }

        return values;
    }

    public static int[] WeightZeroPoints(Random random, int channels, bool nonzero)
    {
        var values = new int[channels];
        if (nonzero)
        {
            for (int c = 0; c < channels; c++)
            {
                values[c] = random.Next(-128, 128);
            }
        }

        return values;
    }

    /// <summary>
    /// Factors whose outputs land spread over 0..255 for these accumulators: sy from the accumulators'
    /// spread (so some clamp at both ends), random per-channel sw and bias.
    /// </summary>
    public static RequantizeParams Requantize(Random random, QuantBackend backend, ReadOnlySpan<int> accumulators, int channels, bool relu)
    {
        long maxAbs = 1;
        foreach (int a in accumulators)
        {
            maxAbs = Math.Max(maxAbs, Math.Abs((long)a));
        }

        float inputScale = 0.0173f;
        var weightScales = new float[channels];
        var bias = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            weightScales[c] = 0.001f + (0.01f * (float)random.NextDouble());
            bias[c] = (float)((random.NextDouble() - 0.5) * maxAbs * inputScale * 0.005);
        }

        float outputScale = maxAbs * inputScale * 0.0055f / 100f;
        int outputZeroPoint = random.Next(0, 256);
        return RequantizeParams.Create(backend, inputScale, weightScales, outputScale, outputZeroPoint, bias, relu);
    }

    /// <summary>Odd convolution shapes, MLAS/XNNPACK-style: names for the test explorer.</summary>
    public static IEnumerable<(string Name, Conv2dGeometry Geometry)> ConvShapes()
    {
        yield return ("1x1 direct C17->63 N2", new Conv2dGeometry(2, 17, 5, 7, 63, 1, 1));
        yield return ("1x1 direct C1->1", new Conv2dGeometry(1, 1, 3, 5, 1, 1, 1));
        yield return ("1x1 direct C65->65", new Conv2dGeometry(1, 65, 3, 3, 65, 1, 1));
        yield return ("1x1 direct C3->17 (K below block)", new Conv2dGeometry(1, 3, 4, 5, 17, 1, 1));
        yield return ("1x1 direct C4->33 (K = block)", new Conv2dGeometry(1, 4, 3, 7, 33, 1, 1));
        yield return ("1x1 direct C5->32 (K above block)", new Conv2dGeometry(1, 5, 5, 5, 32, 1, 1));
        yield return ("1x1 stride2 C3->17", new Conv2dGeometry(1, 3, 7, 5, 17, 1, 1, 2, 2));
        yield return ("1x1 pad1 C17->3", new Conv2dGeometry(1, 17, 3, 4, 3, 1, 1, 1, 1, 1, 1));
        yield return ("3x3 pad1 C3->17", new Conv2dGeometry(1, 3, 9, 11, 17, 3, 3, 1, 1, 1, 1));
        yield return ("3x3 stride2 pad1 C63->65 N2", new Conv2dGeometry(2, 63, 7, 9, 65, 3, 3, 2, 2, 1, 1));
        yield return ("3x3 dilation2 pad2 C17->3", new Conv2dGeometry(1, 17, 9, 8, 3, 3, 3, 1, 1, 2, 2, 2, 2));
        yield return ("3x3 no pad C1->1", new Conv2dGeometry(1, 1, 5, 5, 1, 3, 3));
        yield return ("5x3 stride(2,1) pad(2,1) groups2 C6->34", new Conv2dGeometry(1, 6, 9, 7, 34, 5, 3, 2, 1, 2, 1, 1, 1, 2));
        yield return ("3x3 pad1 groups3 C18->27 N3", new Conv2dGeometry(3, 18, 5, 6, 27, 3, 3, 1, 1, 1, 1, 1, 1, 3));
        yield return ("depthwise 3x3 pad1 C17", new Conv2dGeometry(1, 17, 6, 7, 17, 3, 3, 1, 1, 1, 1, 1, 1, 17));
        yield return ("depthwise 3x3 stride2 pad1 C65 N2", new Conv2dGeometry(2, 65, 9, 7, 65, 3, 3, 2, 2, 1, 1, 1, 1, 65));
        yield return ("depthwise 3x3 dilation2 pad2 C3", new Conv2dGeometry(1, 3, 7, 7, 3, 3, 3, 1, 1, 2, 2, 2, 2, 3));
        // The 16-bit pair path: 16 channels and the 8-wide rest (C24), an even tap count (2×4, no zero-weight partner).
        yield return ("depthwise 3x3 pad1 C24", new Conv2dGeometry(1, 24, 5, 6, 24, 3, 3, 1, 1, 1, 1, 1, 1, 24));
        yield return ("depthwise 2x4 pad1 C32 N2", new Conv2dGeometry(2, 32, 4, 5, 32, 2, 4, 1, 1, 1, 1, 1, 1, 32));
        // More taps than the pair path's stack table holds (17×17 = 289): the 8-wide path.
        yield return ("depthwise 17x17 pad8 C16", new Conv2dGeometry(1, 16, 5, 4, 16, 17, 17, 1, 1, 8, 8, 1, 1, 16));
        yield return ("depthwise 5x5 pad2 C1", new Conv2dGeometry(1, 1, 6, 5, 1, 5, 5, 1, 1, 2, 2, 1, 1, 1));
        yield return ("depthwise multiplier2 C3->6", new Conv2dGeometry(1, 3, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 3));
        yield return ("7x7 stride2 pad3 C3->64 (stem)", new Conv2dGeometry(1, 3, 23, 21, 64, 7, 7, 2, 2, 3, 3));
        yield return ("7x7 stride2 pad3 C3->17 N2", new Conv2dGeometry(2, 3, 15, 15, 17, 7, 7, 2, 2, 3, 3));
        yield return ("3x3 pad1 C64->64 (ResNet block)", new Conv2dGeometry(1, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1));

        // Input channels per group a multiple of 4: the AVX-VNNI path reads taps through row pointers (IGEMM).
        yield return ("indirect 3x3 stride2 pad1 C8->20 N2", new Conv2dGeometry(2, 8, 9, 7, 20, 3, 3, 2, 2, 1, 1));
        yield return ("indirect 3x3 dilation2 pad2 C4->17", new Conv2dGeometry(1, 4, 7, 8, 17, 3, 3, 1, 1, 2, 2, 2, 2));
        yield return ("indirect 3x3 pad1 groups2 C8->34", new Conv2dGeometry(1, 8, 5, 6, 34, 3, 3, 1, 1, 1, 1, 1, 1, 2));
        yield return ("indirect 1x1 stride2 C16->33", new Conv2dGeometry(1, 16, 9, 9, 33, 1, 1, 2, 2));
        yield return ("indirect 5x5 pad2 C12->16 N3", new Conv2dGeometry(3, 12, 5, 4, 16, 5, 5, 1, 1, 2, 2));
        yield return ("indirect 1x1 pad1 C4->5 (padding-only border pixels)", new Conv2dGeometry(1, 4, 3, 3, 5, 1, 1, 1, 1, 1, 1));

        // Few input channels: the AVX-VNNI path reads whole kernel rows from a zero-point-padded copy (row runs).
        yield return ("row runs 3x3 pad1 C1->16 (FashionCnn conv1)", new Conv2dGeometry(1, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1));
        yield return ("row runs 3x3 stride2 pad(0,2) C2->9 N2", new Conv2dGeometry(2, 2, 7, 6, 9, 3, 3, 2, 2, 0, 2));
        yield return ("row runs 5x3 dilation(2,1) pad(2,1) C3->17 N3", new Conv2dGeometry(3, 3, 9, 5, 17, 5, 3, 1, 1, 2, 1, 2, 1));
        yield return ("row runs 2x2 C2->5 (runs already whole quads)", new Conv2dGeometry(1, 2, 4, 5, 5, 2, 2));
        yield return ("row runs refused: 3x3 dilation(1,2) pad1 C1->7", new Conv2dGeometry(1, 1, 6, 7, 7, 3, 3, 1, 1, 1, 1, 1, 2));
        yield return ("row runs refused: 1x1 stride2 C1->3 (padding would quadruple K)", new Conv2dGeometry(1, 1, 5, 5, 3, 1, 1, 2, 2));
    }
}
