using System;
using System.Linq;
using QuantGen.Dynamic;
using QuantGen.Tests.Binding;
using TorchSharp;
using static QuantGen.Tests.Modules.ContractReference;
using static TorchSharp.torch;

namespace QuantGen.Tests.Dynamic;

/// <summary>
/// 4-bit embedding rows (PyTorch's quint4x2, <c>embedding_bag_4bit_prepack</c>; docs/numerics.md §9): packing against
/// fbgemm's n-bit rowwise formula written plainly here (the float16 rounding from TorchSharp's own float16 cast), lookups
/// and bags bit for bit against that formula, within a float32 rounding of TorchSharp's float bag on the dequantized
/// table, and within half a 4-bit step of the float table.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public class FourBitEmbeddingTests
{
    private const int Rows = 9, Dim = 10;

    private static float[] Table(int seed)
    {
        var random = new Random(seed);
        float[] table = RandomFloats(random, Rows * Dim, -2f, 3f);
        Array.Fill(table, -0.625f, 4 * Dim, Dim); // a constant row: range 0, scale 1, every value 0
        return table;
    }

    /// <summary>TorchSharp's float32 → float16 → float32 rounding of each value (round to nearest even).</summary>
    private static float[] ToHalf(params float[] values)
    {
        using Tensor t = torch.tensor(values).to(ScalarType.Float16).to(ScalarType.Float32);
        return t.data<float>().ToArray();
    }

    /// <summary>
    /// fbgemm's FloatToFusedNBitRowwiseQuantizedSBHalf for 4 bits, written plainly: bias = half(min); scale =
    /// half((max − bias) / 15) (1 for a zero range, or when that rounds to 0); q = clamp(rne((x − bias) · (1 / scale)), 0, 15).
    /// </summary>
    private static (int[] Q, float Scale, float Bias) Prepack(ReadOnlySpan<float> row)
    {
        float min = float.MaxValue, max = float.MinValue;
        foreach (float v in row)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }

        float bias = ToHalf(min)[0];
        float range = max - bias;
        float scale = ToHalf(range == 0 ? 1f : range / 15f)[0];
        if (scale == 0)
        {
            scale = 1f;
        }

        float inverse = 1f / scale;
        var q = new int[row.Length];
        for (int j = 0; j < row.Length; j++)
        {
            q[j] = Math.Clamp((int)MathF.Round((row[j] - bias) * inverse, MidpointRounding.ToEven), 0, 15);
        }

        return (q, scale, bias);
    }

    [Fact]
    public void PackingFollowsFbgemmsNBitRowwiseFormulaAndPyTorchsLayout()
    {
        // Row [-1, 0, 0.5, 2]: bias −1, scale 3/15 = 0.2 → float16 0.199951171875; q = rne(x + 1) · 5.0012…
        QuantizedEmbedding hand = QuantizedEmbedding.FromWeight("M", "emb", [-1f, 0f, 0.5f, 2f], 1, 4, bitWidth: 4);
        byte[] packed = hand.PackedWeight;
        Assert.Equal(2 + 4, packed.Length);
        Assert.Equal((byte)(0 | (5 << 4)), packed[0]);   // q0 = 0 low nibble, q1 = rne(5.0012) = 5 high nibble
        Assert.Equal((byte)(8 | (15 << 4)), packed[1]);  // q2 = rne(7.502) = 8, q3 = rne(15.004) = 15
        Assert.Equal((Half)0.2f, BitConverter.ToHalf(packed, 2));
        Assert.Equal((Half)(-1f), BitConverter.ToHalf(packed, 4));

        float[] table = Table(11);
        QuantizedEmbedding embedding = QuantizedEmbedding.FromWeight("M", "emb", table, Rows, Dim, bitWidth: 4);
        Assert.Equal(4, embedding.BitWidth);
        byte[] rows = embedding.PackedWeight;
        int stride = (Dim / 2) + 4;
        Assert.Equal(Rows * stride, rows.Length);
        for (int r = 0; r < Rows; r++)
        {
            (int[] q, float scale, float bias) = Prepack(table.AsSpan(r * Dim, Dim));
            for (int j = 0; j < Dim; j++)
            {
                Assert.Equal(q[j], (rows[(r * stride) + (j / 2)] >> ((j % 2) * 4)) & 0xF);
            }

            Assert.Equal(scale, (float)BitConverter.ToHalf(rows, (r * stride) + (Dim / 2)));
            Assert.Equal(bias, (float)BitConverter.ToHalf(rows, (r * stride) + (Dim / 2) + 2));
        }

        Assert.Equal("QuantizedEmbedding(num_embeddings=9, embedding_dim=10, dtype=torch.quint4x2, qscheme=torch.per_channel_affine_float_qparams)", embedding.ToString());
    }

    [Fact]
    public void LookupsAndBagsEqualThePlainFormulaBitForBit()
    {
        float[] table = Table(12);
        long[] indices = [4, 0, 8, 8, 3, 1, 7];
        var lookup = new float[indices.Length * Dim];
        for (int i = 0; i < indices.Length; i++)
        {
            (int[] q, float scale, float bias) = Prepack(table.AsSpan((int)indices[i] * Dim, Dim));
            for (int j = 0; j < Dim; j++)
            {
                lookup[(i * Dim) + j] = MathF.FusedMultiplyAdd(scale, q[j], bias);
            }
        }

        float[] actual = QuantizedEmbedding.FromWeight("M", "emb", table, Rows, Dim, bitWidth: 4).Forward(indices);
        QuantizedEmbeddingBagTests.AssertBitEqual(lookup, actual);
        Assert.All(actual[..Dim], v => Assert.Equal(-0.625f, v)); // the constant row comes back exactly (−0.625 is a float16)

        long[] offsets = [0, 2, 2, 5];
        float[] weights = [0.5f, 2f, -1f, 1.5f, 0.25f, 3f, 1f];
        QuantizedEmbeddingBag sum = QuantizedEmbeddingBag.FromWeight("M", "bag", table, Rows, Dim, EmbeddingBagMode.Sum, bitWidth: 4);
        float[] bags = sum.Forward(indices, offsets, weights);
        for (int b = 0; b < offsets.Length; b++)
        {
            int start = (int)offsets[b], end = b + 1 < offsets.Length ? (int)offsets[b + 1] : indices.Length;
            for (int j = 0; j < Dim; j++)
            {
                float value = 0f;
                for (int i = start; i < end; i++)
                {
                    // fbgemm's n-bit SparseLengthsSum step: fma(scale·w, q, acc + bias·w).
                    (int[] q, float scale, float bias) = Prepack(table.AsSpan((int)indices[i] * Dim, Dim));
                    value = MathF.FusedMultiplyAdd(weights[i] * scale, q[j], value + (weights[i] * bias));
                }

                Assert.Equal(BitConverter.SingleToInt32Bits(value), BitConverter.SingleToInt32Bits(bags[(b * Dim) + j]));
            }
        }
    }

    [Theory]
    [InlineData(EmbeddingBagMode.Sum)]
    [InlineData(EmbeddingBagMode.Mean)]
    [InlineData(EmbeddingBagMode.Max)]
    public void BagsMatchTorchSharpsFloatBagOnTheDequantizedTableAndStayWithinHalfAStepOfTheFloatTable(EmbeddingBagMode mode)
    {
        float[] table = Table(13);
        QuantizedEmbeddingBag bag = QuantizedEmbeddingBag.FromWeight("M", "bag", table, Rows, Dim, mode, bitWidth: 4);
        var dequantized = new float[Rows * Dim];
        var steps = new float[Rows];
        for (int r = 0; r < Rows; r++)
        {
            (int[] q, float scale, float bias) = Prepack(table.AsSpan(r * Dim, Dim));
            steps[r] = scale;
            for (int j = 0; j < Dim; j++)
            {
                dequantized[(r * Dim) + j] = MathF.FusedMultiplyAdd(scale, q[j], bias);
            }
        }

        using var scope = torch.NewDisposeScope();
        Tensor input = torch.tensor(new long[] { 1, 2, 3, 4, 8, 8, 0, 5, 6, 3, 7, 7 }, [3, 4]);
        float[] actual = bag.Forward(input).data<float>().ToArray();
        foreach ((float[] weight, float bound) in new[] { (dequantized, 1e-5f), (table, (mode == EmbeddingBagMode.Sum ? 4 : 1) * (steps.Max() / 2f) + 1e-4f) })
        {
            var reference = torch.nn.EmbeddingBag(Rows, Dim, mode: mode);
            using (torch.no_grad())
            {
                reference.weight!.copy_(torch.tensor(weight, [Rows, Dim]));
            }

            float[] expected = reference.forward(input, null, null).data<float>().ToArray();
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.True(MathF.Abs(expected[i] - actual[i]) <= bound, $"{mode} value {i}: TorchSharp {expected[i]:R}, QuantGen 4-bit {actual[i]:R}, bound {bound}");
            }
        }
    }

    [Fact]
    public void AnOddDimensionOrARangeBeyondFloat16IsRefusedNamingTheLayer()
    {
        var odd = Assert.Throws<ArgumentException>(() => QuantizedEmbedding.FromWeight("Net", "tokens", new float[3 * 5], 3, 5, bitWidth: 4));
        Assert.Contains("Net.tokens: a 4-bit table packs two values per byte, so embedding_dim must be even", odd.Message, StringComparison.Ordinal);

        float[] wide = [0f, 1e6f, 1f, 2f];
        var range = Assert.Throws<ArgumentException>(() => QuantizedEmbeddingBag.FromWeight("Net", "bag", wide, 1, 4, EmbeddingBagMode.Sum, bitWidth: 4));
        Assert.Contains("Net.bag: weight row 0 spans [0, 1000000]; a 4-bit row stores its minimum and its scale (range / 15) as float16", range.Message, StringComparison.Ordinal);

        var bits = Assert.Throws<ArgumentOutOfRangeException>(() => QuantizedEmbedding.FromWeight("Net", "tokens", new float[4], 1, 4, bitWidth: 2));
        Assert.Contains("Net.tokens: rows are 8-bit (quint8) or 4-bit (quint4x2)", bits.Message, StringComparison.Ordinal);
    }
}
