using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Kernels;

/// <summary>
/// The float32 GEMM of the float16-weight layers: the scalar reference against the documented chain written out here and
/// against libtorch's matmul (float32 rounding apart), and every vector width against the scalar reference bit for bit
/// (tolerance 0: each lane runs the same fused multiply-add chain in the same order), on odd shapes.
/// </summary>
public sealed class Float32GemmKernelTests
{
    public static TheoryData<int, int, int> Shapes() => new()
    {
        // rows, in, out: one row (a batch-1 recurrent step), tails of panels (16/32 features), four-row tiles with rows left over.
        { 1, 1, 1 },
        { 1, 7, 33 },
        { 1, 40, 130 },
        { 2, 130, 7 },
        { 3, 5, 17 },
        { 4, 16, 32 },
        { 5, 13, 31 },
        { 6, 64, 65 },
        { 9, 3, 100 },
        { 17, 33, 48 },
    };

    private static float[] Values(int length, Random random, float spread)
    {
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = (i % 11) switch
            {
                0 => -0f,
                3 => (float)Math.ScaleB(random.NextDouble() - 0.5, -20), // small terms, where fusing the multiply matters
                _ => (float)((random.NextDouble() * 2) - 1) * spread,
            };
        }

        return values;
    }

    private static IEnumerable<int> SupportedWidths() => new[] { 256, 512 }.Where(Float32GemmKernel.IsSupported);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void The_reference_is_one_fused_multiply_add_chain_per_output_then_the_bias_then_relu(int rows, int inFeatures, int outFeatures)
    {
        var random = new Random((rows * 1000) + (inFeatures * 10) + outFeatures);
        float[] x = Values(rows * inFeatures, random, 3f);
        float[] w = Values(outFeatures * inFeatures, random, 0.5f);
        float[] b = Values(outFeatures, random, 1f);
        var actual = new float[rows * outFeatures];
        Float32GemmScalar.Multiply(x, rows, w, outFeatures, inFeatures, b, relu: true, actual);

        for (int m = 0; m < rows; m++)
        {
            for (int n = 0; n < outFeatures; n++)
            {
                // docs/numerics.md §11, written out: acc from +0, acc = fma(x, w, acc) for k in order, + b, then y < 0 ? 0 : y.
                float acc = 0f;
                for (int k = 0; k < inFeatures; k++)
                {
                    acc = MathF.FusedMultiplyAdd(x[(m * inFeatures) + k], w[(n * inFeatures) + k], acc);
                }

                float y = acc + b[n];
                y = y < 0f ? 0f : y;
                Assert.Equal(BitConverter.SingleToInt32Bits(y), BitConverter.SingleToInt32Bits(actual[(m * outFeatures) + n]));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void The_reference_agrees_with_libtorch_matmul_to_float32_rounding(int rows, int inFeatures, int outFeatures)
    {
        var random = new Random(rows + inFeatures + outFeatures);
        float[] x = Values(rows * inFeatures, random, 3f);
        float[] w = Values(outFeatures * inFeatures, random, 0.5f);
        float[] b = Values(outFeatures, random, 1f);
        var actual = new float[rows * outFeatures];
        Float32GemmScalar.Multiply(x, rows, w, outFeatures, inFeatures, b, relu: false, actual);

        using var scope = torch.NewDisposeScope();
        Tensor input = torch.tensor(x, new long[] { rows, inFeatures });
        Tensor weight = torch.tensor(w, new long[] { outFeatures, inFeatures });
        float[] expected = nn.functional.linear(input, weight, torch.tensor(b)).data<float>().ToArray();

        // Two float32 sums of the same K products in different orders differ by at most about K·ε·Σ|x·w| (+ the bias's ulp).
        for (int m = 0; m < rows; m++)
        {
            for (int n = 0; n < outFeatures; n++)
            {
                double magnitude = Math.Abs(b[n]);
                for (int k = 0; k < inFeatures; k++)
                {
                    magnitude += Math.Abs((double)x[(m * inFeatures) + k] * w[(n * inFeatures) + k]);
                }

                double allowed = ((inFeatures + 2) * 1.2e-7 * magnitude) + 1e-30;
                int i = (m * outFeatures) + n;
                Assert.True(Math.Abs(expected[i] - actual[i]) <= allowed, $"[{m}, {n}]: libtorch {expected[i]:R}, reference {actual[i]:R}, allowed {allowed:R}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Every_vector_width_gives_the_reference_bits(int rows, int inFeatures, int outFeatures)
    {
        var random = new Random((rows * 7) + (inFeatures * 3) + outFeatures);
        float[] x = Values(rows * inFeatures, random, 2f);
        float[] w = Values(outFeatures * inFeatures, random, 1f);
        float[] b = Values(outFeatures, random, 1f);
        foreach (int bits in SupportedWidths())
        {
            var packed = Float32GemmKernel.Pack(w, outFeatures, inFeatures, bits);
            Assert.Equal(bits, packed.VectorBits);
            foreach ((float[] bias, bool relu) in new[] { (b, false), (b, true), (Array.Empty<float>(), false), (Array.Empty<float>(), true) })
            {
                var expected = new float[rows * outFeatures];
                var actual = new float[rows * outFeatures];
                Float32GemmScalar.Multiply(x, rows, w, outFeatures, inFeatures, bias, relu, expected);
                Float32GemmKernel.Multiply(x, rows, packed, bias, relu, actual);
                int first = -1;
                for (int i = 0; i < expected.Length && first < 0; i++)
                {
                    first = BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]) ? i : -1;
                }

                Assert.True(first < 0, $"{bits} bits, bias {bias.Length > 0}, relu {relu}: output {first} is {(first < 0 ? 0 : actual[first]):R}, the reference's {(first < 0 ? 0 : expected[first]):R}");
            }
        }
    }

    [Fact]
    public void Negative_zero_and_nan_come_out_as_the_reference_gives_them()
    {
        const int rows = 5, inFeatures = 3, outFeatures = 35;
        var x = new float[rows * inFeatures];
        var w = new float[outFeatures * inFeatures];
        for (int i = 0; i < w.Length; i++)
        {
            w[i] = -1f;
        }

        // Row 0: +0 inputs (the chain stays +0); row 1 starts with a NaN; row 2 sums to −2; row 3 starts with −0 (−0·−1 + 0 = +0).
        x[inFeatures] = float.NaN;
        x[2 * inFeatures] = 2f;
        x[3 * inFeatures] = -0f;
        foreach (int bits in SupportedWidths().Append(0))
        {
            foreach (bool relu in new[] { false, true })
            {
                var expected = new float[rows * outFeatures];
                var actual = new float[rows * outFeatures];
                Float32GemmScalar.Multiply(x, rows, w, outFeatures, inFeatures, [], relu, expected);
                Float32GemmKernel.Multiply(x, rows, Float32GemmKernel.Pack(w, outFeatures, inFeatures, bits), [], relu, actual);
                Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
                Assert.True(float.IsNaN(actual[outFeatures]), "a NaN input gives a NaN output");
                Assert.Equal(relu ? 0f : -2f, actual[2 * outFeatures]);
            }
        }
    }

    [Fact]
    public void Sizes_that_do_not_match_are_refused_and_zero_rows_write_nothing()
    {
        float[] w = new float[6];
        var packed = Float32GemmKernel.Pack(w, 2, 3, 0);
        Assert.Throws<ArgumentException>(() => Float32GemmKernel.Multiply(new float[5], 2, packed, [], false, new float[4]));
        Assert.Throws<ArgumentException>(() => Float32GemmKernel.Multiply(new float[6], 2, packed, new float[3], false, new float[4]));
        Assert.Throws<ArgumentException>(() => Float32GemmKernel.Pack(new float[5], 2, 3, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Float32GemmKernel.Pack(w, 2, 3, 128));
        Float32GemmKernel.Multiply([], 0, packed, [], false, []);
        Assert.Contains(Float32GemmKernel.DefaultVectorBits, new[] { 0, 256, 512 });
    }
}
