using System;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Tests.Kernels;

/// <summary>
/// The vectorised LSTM/GRU/RNN gates against their scalar reference (MathF's exp and tanh). Not bit for bit — the
/// vector exponential is within 1.5·10⁻⁷ relative — so within 10⁻⁶ of the state's size per step, on odd hidden sizes
/// (the tail vector), saturating gate inputs and states that grow past 1.
/// </summary>
public sealed class RecurrentGatesKernelTests
{
    private const float Tolerance = 1e-6f;

    private static float[] Values(int length, Random random, float spread)
    {
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = (i % 17) switch
            {
                0 => -0f,
                5 => 95f, // e^−x underflows, σ = 1
                11 => -95f, // e^−x overflows, σ = 0
                _ => (float)((random.NextDouble() * 2) - 1) * spread,
            };
        }

        return values;
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.False(float.IsNaN(actual[i]), $"{what}[{i}] is NaN");
            float allowed = Tolerance * Math.Max(1f, Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= allowed, $"{what}[{i}]: scalar {expected[i]}, vector {actual[i]}");
        }
    }

    [Theory]
    [InlineData(1, 256)]
    [InlineData(7, 256)]
    [InlineData(8, 256)]
    [InlineData(13, 128)]
    [InlineData(128, 256)]
    [InlineData(131, -1)]
    public void Lstm_gates_follow_the_reference(int hidden, int vectorBits)
    {
        var random = new Random(hidden);
        float[] inputGates = Values(4 * hidden, random, 4f);
        float[] hiddenGates = Values(4 * hidden, random, 4f);
        float[] h = Values(hidden, random, 1f);
        float[] c = Values(hidden, random, 6f);
        float[] expectedH = (float[])h.Clone(), expectedC = (float[])c.Clone();
        RecurrentGatesScalar.Lstm(inputGates, hiddenGates, expectedH, expectedC);
        RecurrentGatesKernel.Lstm(inputGates, hiddenGates, h, c, vectorBits);
        AssertClose(expectedH, h, "h");
        AssertClose(expectedC, c, "c");
    }

    [Theory]
    [InlineData(3, 256)]
    [InlineData(16, 128)]
    [InlineData(37, 256)]
    public void Gru_gates_and_the_tanh_cell_follow_the_reference(int hidden, int vectorBits)
    {
        var random = new Random(hidden + 100);
        float[] inputGates = Values(3 * hidden, random, 5f);
        float[] hiddenGates = Values(3 * hidden, random, 5f);
        float[] h = Values(hidden, random, 1f);
        float[] expected = (float[])h.Clone();
        RecurrentGatesScalar.Gru(inputGates, hiddenGates, expected);
        RecurrentGatesKernel.Gru(inputGates, hiddenGates, h, vectorBits);
        AssertClose(expected, h, "GRU h");

        float[] elmanExpected = new float[hidden], elman = new float[hidden];
        RecurrentGatesScalar.Elman(inputGates.AsSpan(0, hidden), hiddenGates.AsSpan(0, hidden), elmanExpected, relu: false);
        RecurrentGatesKernel.Elman(inputGates.AsSpan(0, hidden), hiddenGates.AsSpan(0, hidden), elman, relu: false, vectorBits);
        AssertClose(elmanExpected, elman, "tanh cell h");
    }

    [Fact]
    public void Tanh_keeps_the_sign_of_zero_and_saturates()
    {
        float[] inputs = [0f, -0f, 20f, -20f, 1e-30f, -3f, 89f, float.MaxValue];
        var values = new float[8];
        inputs.CopyTo(values, 0);
        float[] result = new float[8];
        System.Runtime.Intrinsics.Vector256.CopyTo(RecurrentGatesKernel.Tanh(System.Runtime.Intrinsics.Vector256.Create<float>(values)), result);
        Assert.Equal(BitConverter.SingleToInt32Bits(0f), BitConverter.SingleToInt32Bits(result[0]));
        Assert.Equal(BitConverter.SingleToInt32Bits(-0f), BitConverter.SingleToInt32Bits(result[1]));
        Assert.Equal(1f, result[2]);
        Assert.Equal(-1f, result[3]);
        Assert.Equal(1f, result[6]);
        Assert.Equal(1f, result[7]);
        Assert.True(Math.Abs(result[5] - MathF.Tanh(-3f)) < 2e-7f);
    }
}
