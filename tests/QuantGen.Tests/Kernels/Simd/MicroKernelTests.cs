using System;
using System.Collections.Generic;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using Xunit.Abstractions;
using static QuantGen.Tests.Kernels.Simd.SimdTestData;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>Each micro-kernel called directly on one packed panel, against a naive triple loop over the unpacked matrices.</summary>
public class MicroKernelTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases()
    {
        foreach (string isa in new[] { "AvxVnniGenerated", "AvxVnni", "Avx512BW", "Avx2", "NeonDot", "NeonDotScalarEmulation", "Avx2ScalarEmulation" })
        {
            foreach (int k in new[] { 1, 2, 3, 4, 5, 8, 11, 16, 37 })
            {
                yield return [isa, k];
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TileEqualsNaiveProduct(string isaName, int k)
    {
        GemmConfig config = Config(isaName);
        if (SkipUnlessSupported(config, output))
        {
            return;
        }

        var random = new Random(17 * k);
        int mr = config.MR, nr = config.NR;
        for (int rows = 1; rows <= mr; rows++)
        {
            for (int columns = 1; columns <= nr; columns += nr - 1)
            {
                // A prime row stride, and the last row ending exactly at the end of the array.
                int lda = k + 3;
                byte[] a = Activations(random, ((rows - 1) * lda) + k);
                sbyte[] w = Weights(random, columns * k);
                PackedGemmWeights packed = PackedGemmWeights.Pack(config, w, new int[columns], 1, columns, k);
                var tile = new int[mr * nr];
                MicroKernel.RunTile(config, a, lda, rows, packed, tile);

                for (int r = 0; r < rows; r++)
                {
                    for (int j = 0; j < nr; j++)
                    {
                        int expected = 0;
                        for (int i = 0; i < k; i++)
                        {
                            int weight = j < columns ? w[(j * k) + i] : 0;
                            expected += (a[(r * lda) + i] - config.ActivationOffset) * weight;
                        }

                        // sdot also multiplies the padded k (activation 0 − 128) by zero weights: nothing to add.
                        Assert.True(expected == tile[(r * nr) + j], $"{config.Name} k={k} rows={rows} columns={columns}: tile[{r}][{j}] = {tile[(r * nr) + j]}, expected {expected}.");
                    }
                }
            }
        }
    }

    [Fact]
    public void Int8QuadLayoutPlacesFourKOfAChannelTogether()
    {
        // Two channels, K = 5, NR = 16: quad 0 holds k 0..3 of channel 0 at bytes 0..3 and of channel 1 at 4..7;
        // quad 1 starts at byte 64 (16 channels · 4) and holds k 4 then three zero pads.
        sbyte[] w = [1, 2, 3, 4, 5, -1, -2, -3, -4, -5];
        PackedGemmWeights packed = PackedGemmWeights.Pack(GemmConfig.AvxVnni, w, new int[2], 1, 2, 5);
        Assert.Equal(2 * 16 * 4, packed.Int8Quads.Length);
        Assert.Equal(new sbyte[] { 1, 2, 3, 4, -1, -2, -3, -4, 0, 0 }, packed.Int8Quads[..10].ToArray());
        Assert.Equal(new sbyte[] { 5, 0, 0, 0, -5, 0, 0, 0, 0 }, packed.Int8Quads.Slice(64, 9).ToArray());
        Assert.Equal(new[] { 15, -15 }, packed.ColumnSums.ToArray());
    }

    [Fact]
    public void Int16PairLayoutPlacesTwoKOfAChannelTogether()
    {
        // One channel, K = 3, NR = 32: pair 0 = (k0, k1) at elements 0, 1; pair 1 starts at 64 = 32 channels · 2.
        sbyte[] w = [-128, 127, 9];
        PackedGemmWeights packed = PackedGemmWeights.Pack(GemmConfig.Avx512BW, w, new int[1], 1, 1, 3);
        Assert.Equal(2 * 32 * 2, packed.Int16Pairs.Length);
        Assert.Equal(new short[] { -128, 127, 0, 0 }, packed.Int16Pairs[..4].ToArray());
        Assert.Equal(new short[] { 9, 0, 0 }, packed.Int16Pairs.Slice(64, 3).ToArray());
    }
}
