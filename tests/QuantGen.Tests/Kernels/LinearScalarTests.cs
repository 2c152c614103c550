using System;
using QuantGen.Kernels.Scalar;
using static QuantGen.Tests.Kernels.KernelTestMath;

namespace QuantGen.Tests.Kernels;

public class LinearScalarTests
{
    [Fact]
    public void SmallCaseByHand()
    {
        // x = [[5, 7]] (zx 3) -> [2, 4]; w = [[1, -2], [10, 20]] with zw [0, 10] -> [[1, -2], [0, 10]].
        // acc = [2*1 + 4*-2, 2*0 + 4*10] = [-6, 40].
        var acc = new int[2];
        LinearScalar.Accumulate(1, 2, 2, [5, 7], 3, [1, -2, 10, 20], [0, 10], acc);
        Assert.Equal(new[] { -6, 40 }, acc);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 17, 5)]
    [InlineData(7, 64, 33)]
    [InlineData(2, 513, 3)]
    public void MatchesTheDefinitionOnRandomData(int batch, int inFeatures, int outFeatures)
    {
        var random = new Random((batch * 1000) + inFeatures + outFeatures);
        int[] x = UniformInts(random, batch * inFeatures, 0, 255);
        int[] w = UniformInts(random, outFeatures * inFeatures, -128, 127);
        int[] zw = UniformInts(random, outFeatures, -5, 5);
        const int zx = 201;

        var acc = new int[batch * outFeatures];
        LinearScalar.Accumulate(batch, inFeatures, outFeatures, Array.ConvertAll(x, v => (byte)v), zx, Array.ConvertAll(w, v => (sbyte)v), zw, acc);

        // Column-major walk over the output, long sums: a different order and width from the kernel's.
        for (int o = 0; o < outFeatures; o++)
        {
            for (int n = 0; n < batch; n++)
            {
                long sum = 0;
                for (int i = inFeatures - 1; i >= 0; i--)
                {
                    sum += (long)(x[(n * inFeatures) + i] - zx) * (w[(o * inFeatures) + i] - zw[o]);
                }

                Assert.Equal(sum, acc[(n * outFeatures) + o]);
            }
        }
    }

    [Fact]
    public void RejectsWrongLengths()
    {
        var ex = Assert.Throws<ArgumentException>(() => LinearScalar.Accumulate(2, 3, 4, new byte[5], 0, new sbyte[12], new int[4], new int[8]));
        Assert.Contains("input", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => LinearScalar.Accumulate(2, 3, 4, new byte[6], 0, new sbyte[11], new int[4], new int[8]));
        Assert.Contains("weights", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => LinearScalar.Accumulate(2, 3, 4, new byte[6], 0, new sbyte[12], new int[3], new int[8]));
        Assert.Contains("zero points", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => LinearScalar.Accumulate(2, 3, 4, new byte[6], 0, new sbyte[12], new int[4], new int[9]));
        Assert.Contains("accumulators", ex.Message);
        Assert.Throws<ArgumentException>(() => LinearScalar.Accumulate(1, 0, 4, [], 0, [], new int[4], new int[4]));
    }
}
