using System;
using QuantGen.Kernels.Scalar;
using static QuantGen.Tests.Kernels.KernelTestMath;

namespace QuantGen.Tests.Kernels;

public class BatchNorm2dScalarTests
{
    [Fact]
    public void ScaleAndShiftFollowPyTorchsFloatOrder()
    {
        // Hand-derived with eps 0: var 4 → inv_sigma 1/2; gamma 3 → scale 1.5; mean 2, beta 1 → shift = 1 - (2 · 0.5) · 3 = -2.
        // Channel 2: var 0.25 → inv_sigma 2, gamma 1 → scale 2; mean -1, beta 0.25 → shift = 0.25 + 2 = 2.25.
        var scale = new float[2];
        var shift = new float[2];
        BatchNorm2dScalar.ScaleAndShift([3f, 1f], [1f, 0.25f], [2f, -1f], [4f, 0.25f], 0.0, scale, shift);
        Assert.Equal(new[] { 1.5f, 2f }, scale);
        Assert.Equal(new[] { -2f, 2.25f }, shift);

        // Random statistics: each value is the float32 expression written out, parenthesized as PyTorch's.
        var random = new Random(3);
        float[] gamma = Uniform(random, 64, 0.5f, 1.5f), beta = Uniform(random, 64, -1f, 1f);
        float[] mean = Uniform(random, 64, -3f, 3f), variance = Uniform(random, 64, 0.01f, 4f);
        scale = new float[64];
        shift = new float[64];
        BatchNorm2dScalar.ScaleAndShift(gamma, beta, mean, variance, 1e-5, scale, shift);
        for (int c = 0; c < 64; c++)
        {
            float inverseSigma = (float)(1.0 / MathF.Sqrt(variance[c] + 1e-5f));
            Assert.Equal(inverseSigma * gamma[c], scale[c]);
            float meanTimesInverseSigma = mean[c] * inverseSigma;
            float meanTerm = meanTimesInverseSigma * gamma[c];
            Assert.Equal(beta[c] - meanTerm, shift[c]);
        }

        // Without affine parameters: gamma 1, beta 0.
        BatchNorm2dScalar.ScaleAndShift([], [], mean.AsSpan(0, 1), variance.AsSpan(0, 1), 1e-5, scale.AsSpan(0, 1), shift.AsSpan(0, 1));
        float inverse = (float)(1.0 / MathF.Sqrt(variance[0] + 1e-5f));
        Assert.Equal(inverse, scale[0]);
        Assert.Equal(0f - (mean[0] * inverse), shift[0]);
    }

    [Fact]
    public void FusedParamsFoldTheScalesInDouble()
    {
        var alpha = new float[1];
        var beta = new float[1];
        BatchNorm2dScalar.FusedParams([0.7f], [-0.3f], 0.021f, 0.037f, alpha, beta);
        Assert.Equal((float)(0.7f * ((double)0.021f / 0.037f)), alpha[0]);
        Assert.Equal((float)(-0.3f / (double)0.037f), beta[0]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EveryElementIsTheFusedMultiplyAddRoundedAndShifted(bool relu)
    {
        var random = new Random(relu ? 5 : 6);
        int rows = 37, channels = 17;
        int[] input = UniformInts(random, rows * channels, 0, 255);
        float[] alpha = Uniform(random, channels, -2f, 2f), beta = Uniform(random, channels, -60f, 60f);
        int zx = 93, zy = 140;
        var output = new byte[input.Length];
        BatchNorm2dScalar.Apply(rows, channels, Array.ConvertAll(input, v => (byte)v), zx, alpha, beta, output, zy, relu);
        for (int i = 0; i < input.Length; i++)
        {
            int c = i % channels;
            float y = MathF.FusedMultiplyAdd(alpha[c], input[i] - zx, beta[c]);
            int q = zy + (int)Math.Round((double)y, MidpointRounding.ToEven);
            int expected = Math.Clamp(relu ? Math.Max(q, zy) : q, 0, 255);
            Assert.Equal(expected, output[i]);
        }
    }

    [Fact]
    public void TheMultiplyAddIsFusedAsInPyTorchsVectorKernel()
    {
        // Find alpha and d = q - zx whose float32 product rounds to exactly 100 while the exact product is
        // a little above it; with beta = -99.5 two roundings give the tie 0.5 (→ 0), the fused
        // multiply-add gives 0.5 + a little (→ 1).
        const float beta = -99.5f;
        (float alpha, int d) = (0f, 0);
        for (int candidate = 255; candidate > 0 && d == 0; candidate--)
        {
            float a = 100f / candidate;
            for (int i = 0; i < 8; i++)
            {
                a = MathF.BitDecrement(a);
            }

            for (int i = 0; i < 16 && d == 0; i++, a = MathF.BitIncrement(a))
            {
                float product = a * candidate;
                if (product == 100f && MathF.FusedMultiplyAdd(a, candidate, beta) > 0.5f)
                {
                    (alpha, d) = (a, candidate);
                }
            }
        }

        Assert.NotEqual(0, d);
        float unfused = (alpha * d) + beta;
        Assert.Equal(0.5f, unfused);
        var output = new byte[1];
        BatchNorm2dScalar.Apply(1, 1, new byte[] { (byte)d }, 0, [alpha], [beta], output, 100, relu: false);
        Assert.Equal(101, output[0]);
    }

    [Fact]
    public void BadArgumentsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => BatchNorm2dScalar.Apply(2, 3, new byte[5], 0, new float[3], new float[3], new byte[6], 0, false));
        Assert.Throws<ArgumentException>(() => BatchNorm2dScalar.Apply(2, 3, new byte[6], 0, new float[2], new float[3], new byte[6], 0, false));
        Assert.Throws<ArgumentException>(() => BatchNorm2dScalar.ScaleAndShift([1f], [], [0f, 0f], [1f, 1f], 1e-5, new float[2], new float[2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => BatchNorm2dScalar.FusedParams([1f], [1f], 0f, 1f, new float[1], new float[1]));
    }
}
