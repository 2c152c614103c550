using System;
using System.Collections.Generic;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.X86;
using static QuantGen.Tests.Kernels.Simd.SimdTestData;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>
/// The AVX2 one-row kernel (<see cref="GemmAvx2.Kernel1x16"/>, what a recurrent step or a linear layer at batch 1
/// runs) called directly, on K around each of its blocks (the k-pair, the 4-pair unrolling) and beyond: equal to a
/// naive product of the unpacked matrices and to the layout's scalar reference <see cref="PackedGemmScalar.Int16Pairs"/>,
/// with the row and the panel placed against an inaccessible page on either side (Linux x64), so a read past
/// either end faults. Then through the dispatch point: a linear layer at batch 1 on the AVX2 config equals
/// <see cref="QuantGen.Kernels.Scalar.LinearScalar"/>.
/// </summary>
public sealed unsafe class Avx2RowKernelTests
{
    private const int NR = GemmAvx2.NR;

    public static IEnumerable<object[]> KSizes()
    {
        foreach (int k in new[] { 1, 2, 3, 4, 5, 7, 8, 9, 10, 15, 16, 17, 31, 33, 63, 64, 65, 127, 257, 1001 })
        {
            yield return [k];
        }
    }

    [Theory]
    [MemberData(nameof(KSizes))]
    public void OneRowEqualsTheNaiveProductAndTheScalarLayoutReference(int k)
    {
        if (!GemmConfig.Avx2.IsSupported)
        {
            return;
        }

        var random = new Random(1000 + k);
        int kPairs = (k + 1) / 2;
        byte[] row = Activations(random, k);
        sbyte[] w = Weights(random, NR * k);
        PackedGemmWeights packed = PackedGemmWeights.Pack(GemmConfig.Avx2, w, new int[NR], 1, NR, k);
        var wide = new ushort[2 * kPairs];
        for (int i = 0; i < k; i++)
        {
            wide[i] = row[i];
        }

        var expected = new int[NR];
        for (int j = 0; j < NR; j++)
        {
            for (int i = 0; i < k; i++)
            {
                expected[j] += row[i] * w[(j * k) + i];
            }
        }

        var scalar = new int[NR];
        fixed (ushort* pa = wide)
        fixed (short* pw = packed.Int16Pairs)
        fixed (int* ps = scalar)
        {
            PackedGemmScalar.Int16Pairs(pa, 2 * kPairs, 1, kPairs, pw, 1, NR, ps);
        }

        Assert.Equal(expected, scalar);
        foreach (GuardedBuffer.Placement placement in new[] { GuardedBuffer.Placement.AgainstEnd, GuardedBuffer.Placement.AgainstStart })
        {
            int[] actual = GuardedBuffer.Supported ? RunGuarded(wide, packed.Int16Pairs, kPairs, placement) : RunPlain(wide, packed.Int16Pairs.ToArray(), kPairs);
            Assert.Equal(expected, actual);
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 17)]
    [InlineData(37, 11)]
    [InlineData(64, 33)]
    [InlineData(129, 100)]
    public void ALinearLayerAtBatchOneEqualsTheScalarReference(int inFeatures, int outFeatures)
    {
        if (!GemmConfig.Avx2.IsSupported)
        {
            return;
        }

        var random = new Random((inFeatures * 31) + outFeatures);
        byte[] input = Activations(random, inFeatures);
        sbyte[] weights = Weights(random, outFeatures * inFeatures);
        foreach (bool nonzeroWeightZeroPoints in new[] { false, true })
        {
            int[] weightZeroPoints = WeightZeroPoints(random, outFeatures, nonzeroWeightZeroPoints);
            int zx = random.Next(256);
            var expected = new int[outFeatures];
            QuantGen.Kernels.Scalar.LinearScalar.Accumulate(1, inFeatures, outFeatures, input, zx, weights, weightZeroPoints, expected);
            PackedGemmWeights packed = LinearKernel.Pack(weights, weightZeroPoints, outFeatures, inFeatures, GemmConfig.Avx2);
            var actual = new int[outFeatures];
            LinearKernel.Accumulate(1, input, zx, packed, actual, new KernelScratch());
            Assert.Equal(expected, actual);
        }
    }

    private static int[] RunGuarded(ushort[] wide, ReadOnlySpan<short> panel, int kPairs, GuardedBuffer.Placement placement)
    {
        using GuardedBuffer row = GuardedBuffer.Of<ushort>(wide, placement);
        using GuardedBuffer weights = GuardedBuffer.Of(panel, placement);
        var tile = new int[NR];
        fixed (int* pt = tile)
        {
            GemmAvx2.Kernel1x16((ushort*)row.Pointer, kPairs, (short*)weights.Pointer, pt);
        }

        return tile;
    }

    private static int[] RunPlain(ushort[] wide, short[] panel, int kPairs)
    {
        var tile = new int[NR];
        fixed (ushort* pa = wide)
        fixed (short* pw = panel)
        fixed (int* pt = tile)
        {
            GemmAvx2.Kernel1x16(pa, kPairs, pw, pt);
        }

        return tile;
    }
}
