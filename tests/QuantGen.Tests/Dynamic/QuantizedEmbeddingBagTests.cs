using System;
using System.Linq;
using QuantGen.Dynamic;
using QuantGen.Tests.Binding;
using TorchSharp;
using static QuantGen.Tests.Modules.ContractReference;
using static TorchSharp.torch;

namespace QuantGen.Tests.Dynamic;

// Builds TorchSharp modules, whose initialisers draw from libtorch's global generator: kept away from seeded tests.
[Collection(SeededTorchCollection.Name)]
public class QuantizedEmbeddingBagTests
{
    private const int Rows = 10, Dim = 7;

    private static float[] Table(int seed)
    {
        var random = new Random(seed);
        float[] table = RandomFloats(random, Rows * Dim, -1.5f, 2.5f);
        // One constant row: range 0, so every value packs to 0 and dequantizes to the row's value.
        Array.Fill(table, 0.375f, 3 * Dim, Dim);
        return table;
    }

    [Fact]
    public void PackingRoundsAsEmbeddingBagBytePrepack()
    {
        // Row [-1, 0, 1]: scale 2/255, bias -1; 0 lands on (0 + 1) * 127.5 = 127.5, a tie that rounds to even 128.
        QuantizedEmbeddingBag hand = QuantizedEmbeddingBag.FromWeight("M", "emb", [-1f, 0f, 1f], 1, 3, EmbeddingBagMode.Sum);
        byte[] packed = hand.PackedWeight;
        Assert.Equal(new byte[] { 0, 128, 255 }, packed[..3]);
        Assert.Equal(2f / 255f, BitConverter.ToSingle(packed, 3));
        Assert.Equal(-1f, BitConverter.ToSingle(packed, 7));

        float[] table = Table(1);
        byte[] rows = QuantizedEmbeddingBag.FromWeight("M", "emb", table, Rows, Dim, EmbeddingBagMode.Sum).PackedWeight;
        Assert.Equal(Rows * (Dim + 8), rows.Length);
        for (int r = 0; r < Rows; r++)
        {
            (byte[] q, float scale, float bias) = Prepack(table.AsSpan(r * Dim, Dim));
            Assert.Equal(q, rows.AsSpan(r * (Dim + 8), Dim).ToArray());
            Assert.Equal(scale, BitConverter.ToSingle(rows, (r * (Dim + 8)) + Dim));
            Assert.Equal(bias, BitConverter.ToSingle(rows, (r * (Dim + 8)) + Dim + 4));
        }
    }

    [Theory]
    [InlineData(EmbeddingBagMode.Sum)]
    [InlineData(EmbeddingBagMode.Mean)]
    [InlineData(EmbeddingBagMode.Max)]
    public void BagsEqualThePlainFormulaBitForBit(EmbeddingBagMode mode)
    {
        float[] table = Table(2);
        QuantizedEmbeddingBag bag = QuantizedEmbeddingBag.FromWeight("M", "emb", table, Rows, Dim, mode);
        long[] indices = [3, 1, 9, 1, 0, 4, 4, 8, 2];
        long[] offsets = [0, 3, 3, 4, 9]; // bags of 3, 0, 1, 5 and 0 rows (the last two empty)
        float[] actual = bag.Forward(indices, offsets);

        float[] expected = RecomputeBags(table, indices, offsets, null, mode);
        AssertBitEqual(expected, actual);
        Assert.All(actual.AsSpan(Dim, Dim).ToArray(), v => Assert.Equal(0f, v)); // the empty bag
    }

    [Fact]
    public void PerSampleWeightsScaleRowsOfASum()
    {
        float[] table = Table(3);
        QuantizedEmbeddingBag bag = QuantizedEmbeddingBag.FromWeight("M", "emb", table, Rows, Dim, EmbeddingBagMode.Sum);
        long[] indices = [2, 5, 5, 7];
        long[] offsets = [0, 2];
        float[] weights = [0.5f, -2f, 1.25f, 3f];

        AssertBitEqual(RecomputeBags(table, indices, offsets, weights, EmbeddingBagMode.Sum), bag.Forward(indices, offsets, weights));

        QuantizedEmbeddingBag mean = QuantizedEmbeddingBag.FromWeight("M", "emb", table, Rows, Dim, EmbeddingBagMode.Mean);
        var error = Assert.Throws<ArgumentException>(() => mean.Forward(indices, offsets, weights));
        Assert.Contains("M.emb", error.Message);
        Assert.Contains("only supported for mode Sum", error.Message);
    }

    [Theory]
    [InlineData(EmbeddingBagMode.Sum)]
    [InlineData(EmbeddingBagMode.Mean)]
    [InlineData(EmbeddingBagMode.Max)]
    public void BagsAreWithinFloatRoundingOfTorchSharpsFloatBagOnTheDequantizedTable(EmbeddingBagMode mode)
    {
        float[] table = Table(4);
        QuantizedEmbeddingBag bag = QuantizedEmbeddingBag.FromWeight("M", "emb", table, Rows, Dim, mode);
        float[] dequantized = Dequantize(bag.PackedWeight);

        using var scope = torch.NewDisposeScope();
        var reference = torch.nn.EmbeddingBag(Rows, Dim, mode: mode);
        using (torch.no_grad())
        {
            reference.weight!.copy_(torch.tensor(dequantized, [Rows, Dim]));
        }

        // A 2-D input: 3 bags of 4 indices each.
        Tensor input = torch.tensor(new long[] { 1, 2, 3, 4, 9, 9, 0, 5, 6, 3, 8, 7 }, [3, 4]);
        float[] expected = reference.forward(input, null, null).data<float>().ToArray();
        float[] actual = bag.Forward(input).data<float>().ToArray();

        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-5f, $"{mode} value {i}: TorchSharp {expected[i]:R}, QuantGen {actual[i]:R}");
        }

        // And within half a quantization step per row of the float table itself.
        var floatBag = torch.nn.EmbeddingBag(Rows, Dim, mode: mode);
        using (torch.no_grad())
        {
            floatBag.weight!.copy_(torch.tensor(table, [Rows, Dim]));
        }

        float[] original = floatBag.forward(input, null, null).data<float>().ToArray();
        float largestStep = Enumerable.Range(0, Rows).Max(r => BitConverter.ToSingle(bag.PackedWeight, (r * (Dim + 8)) + Dim));
        for (int i = 0; i < original.Length; i++)
        {
            float bound = (mode == EmbeddingBagMode.Sum ? 4 : 1) * (largestStep / 2f) + 1e-5f;
            Assert.True(MathF.Abs(original[i] - actual[i]) <= bound, $"{mode} value {i}: float {original[i]:R}, 8-bit {actual[i]:R}, bound {bound}");
        }
    }

    [Fact]
    public void EmbeddingLooksUpDequantizedRowsExactly()
    {
        float[] table = Table(5);
        QuantizedEmbedding embedding = QuantizedEmbedding.FromWeight("M", "emb", table, Rows, Dim);
        long[] indices = [0, 9, 3, 3, 7];
        float[] actual = embedding.Forward(indices);

        var expected = new float[indices.Length * Dim];
        for (int i = 0; i < indices.Length; i++)
        {
            (byte[] q, float scale, float bias) = Prepack(table.AsSpan((int)indices[i] * Dim, Dim));
            for (int j = 0; j < Dim; j++)
            {
                expected[(i * Dim) + j] = MathF.FusedMultiplyAdd(scale, q[j], bias);
            }
        }

        AssertBitEqual(expected, actual);
        Assert.All(actual.AsSpan(2 * Dim, Dim).ToArray(), v => Assert.Equal(0.375f, v)); // the constant row comes back exactly

        using var scope = torch.NewDisposeScope();
        Tensor shaped = embedding.Forward(torch.tensor(new long[] { 0, 9, 3, 3, 7, 1 }, [2, 3]));
        Assert.Equal(new long[] { 2, 3, Dim }, shaped.shape);
        AssertBitEqual(actual, shaped.data<float>().ToArray()[..(indices.Length * Dim)]);

        var module = torch.nn.Embedding(Rows, Dim);
        using (torch.no_grad())
        {
            module.weight!.copy_(torch.tensor(table, [Rows, Dim]));
        }

        AssertBitEqual(actual, QuantizedEmbedding.FromEmbedding("M", "emb", module).Forward(indices));
    }

    [Fact]
    public void OutOfRangeIndicesAndBadOffsetsGiveErrorsNamingTheLayer()
    {
        QuantizedEmbeddingBag bag = QuantizedEmbeddingBag.FromWeight("TextModel", "words", Table(6), Rows, Dim, EmbeddingBagMode.Mean);
        var high = Assert.Throws<ArgumentOutOfRangeException>(() => bag.Forward([1, 10], [0]));
        Assert.Contains("TextModel.words", high.Message);
        Assert.Contains("index 10 at position 1", high.Message);
        Assert.Contains("0..9", high.Message);

        var negative = Assert.Throws<ArgumentOutOfRangeException>(() => bag.Forward([-1], [0]));
        Assert.Contains("index -1", negative.Message);

        var start = Assert.Throws<ArgumentException>(() => bag.Forward([1, 2], [1]));
        Assert.Contains("offsets[0] must be 0", start.Message);

        var order = Assert.Throws<ArgumentException>(() => bag.Forward([1, 2, 3], [0, 2, 1]));
        Assert.Contains("non-decreasing", order.Message);

        QuantizedEmbedding embedding = QuantizedEmbedding.FromWeight("TextModel", "tokens", Table(6), Rows, Dim);
        var lookup = Assert.Throws<ArgumentOutOfRangeException>(() => embedding.Forward([3, 4, 12]));
        Assert.Contains("TextModel.tokens", lookup.Message);
        Assert.Contains("index 12 at position 2", lookup.Message);

        using var scope = torch.NewDisposeScope();
        var dtype = Assert.Throws<ArgumentException>(() => embedding.Forward(torch.zeros(3)));
        Assert.Contains("Int64 or Int32", dtype.Message);

        var nan = Assert.Throws<ArgumentException>(() => QuantizedEmbedding.FromWeight("TextModel", "tokens", [0f, float.NaN], 1, 2));
        Assert.Contains("TextModel.tokens", nan.Message);
    }

    internal static void AssertBitEqual(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"value {i}: expected {expected[i]:R}, got {actual[i]:R}");
        }
    }

    /// <summary>docs/numerics.md §9's packing of one row, written plainly.</summary>
    private static (byte[] Q, float Scale, float Bias) Prepack(ReadOnlySpan<float> row)
    {
        float min = float.MaxValue, max = float.MinValue;
        foreach (float v in row)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }

        float range = max - min;
        float inverse = 255f / (range + 1e-8f);
        var q = new byte[row.Length];
        for (int j = 0; j < row.Length; j++)
        {
            q[j] = (byte)MathF.Round((row[j] - min) * inverse, MidpointRounding.ToEven);
        }

        return (q, range / 255f, min);
    }

    private static float[] Dequantize(byte[] packed)
    {
        var table = new float[Rows * Dim];
        for (int r = 0; r < Rows; r++)
        {
            float scale = BitConverter.ToSingle(packed, (r * (Dim + 8)) + Dim);
            float bias = BitConverter.ToSingle(packed, (r * (Dim + 8)) + Dim + 4);
            for (int j = 0; j < Dim; j++)
            {
                table[(r * Dim) + j] = MathF.FusedMultiplyAdd(scale, packed[(r * (Dim + 8)) + j], bias);
            }
        }

        return table;
    }

    /// <summary>
    /// docs/numerics.md §9's bags written plainly: sum as fbgemm's <c>fma(scale·w, q, acc + bias·w)</c> row after
    /// row, mean as that sum times <c>1f / length</c>, max of <c>fma(scale, q, bias)</c>; an empty bag is zeros.
    /// </summary>
    private static float[] RecomputeBags(float[] table, long[] indices, long[] offsets, float[]? weights, EmbeddingBagMode mode)
    {
        var output = new float[offsets.Length * Dim];
        for (int b = 0; b < offsets.Length; b++)
        {
            int start = (int)offsets[b];
            int end = b + 1 < offsets.Length ? (int)offsets[b + 1] : indices.Length;
            for (int j = 0; j < Dim; j++)
            {
                float value = mode == EmbeddingBagMode.Max && end > start ? float.NegativeInfinity : 0f;
                for (int i = start; i < end; i++)
                {
                    (byte[] q, float scale, float bias) = Prepack(table.AsSpan((int)indices[i] * Dim, Dim));
                    if (mode == EmbeddingBagMode.Max)
                    {
                        value = Math.Max(value, MathF.FusedMultiplyAdd(scale, q[j], bias));
                    }
                    else
                    {
                        float w = weights?[i] ?? 1f;
                        value = MathF.FusedMultiplyAdd(w * scale, q[j], value + (w * bias));
                    }
                }

                if (mode == EmbeddingBagMode.Mean && end > start)
                {
                    value = value * (1f / (end - start));
                }

                output[(b * Dim) + j] = value;
            }
        }

        return output;
    }
}
