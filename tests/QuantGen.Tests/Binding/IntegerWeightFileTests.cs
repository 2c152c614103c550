using System;
using System.IO;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// The integer weights of dynamic and weight-only ops in .qgen files (format version 2): one byte per qint8 weight and
/// per 8-bit embedding value, half a byte per 4-bit one with float16 row scales and biases — payload lengths checked
/// against docs/model-file.md's record layout, whole files against the float model's parameter bytes, and a loaded
/// model giving the converted one's bits.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class IntegerWeightFileTests
{
    private static LstmTextClassifier.Quantized Convert(LstmTextClassifier model, QConfig embedding)
    {
        model.eval();
        LstmTextClassifier.Observed observed = model.Prepare(new QConfigMapping(null)
            .SetModuleType("Embedding", embedding)
            .SetModuleType("LSTM", QConfig.Dynamic())
            .SetModuleType("Linear", QConfig.Dynamic()));
        using (torch.no_grad())
        {
            // Observes the float outputs (a file stores each op's output qparams); nothing here needs it to convert.
            observed.forward(torch.tensor(new long[] { 1, 5, 9, 29, 0, 3, 3, 7 }, new long[] { 2, 4 })).Dispose();
        }

        return observed.Convert();
    }

    private static byte[] Save(LstmTextClassifier.Quantized model)
    {
        var stream = new MemoryStream();
        model.Save(stream);
        return stream.ToArray();
    }

    private static long FloatBytes(nn.Module module) => module.parameters().Sum(p => p.numel() * p.element_size());

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void Dynamic_weights_take_a_byte_and_embedding_rows_a_byte_or_half_a_byte_per_value(int bits)
    {
        torch.manual_seed(201);
        using var model = new LstmTextClassifier(30, 6, 8, 3);
        QConfig embedding = bits == 8 ? QConfig.FloatQParamsWeightOnly : QConfig.FloatQParamsWeightOnly4Bit;
        LstmTextClassifier.Quantized converted = Convert(model, embedding);
        byte[] file = Save(converted);
        LstmTextClassifier.Quantized loaded = LstmTextClassifier.Quantized.Load(new MemoryStream(file));
        using Tensor tokens = torch.tensor(new long[] { 2, 7, 29, 0, 11, 3, 3, 1, 8, 8, 20, 4 }, new long[] { 3, 4 });
        Assert.Equal(
            converted.forward(tokens).data<float>().ToArray().Select(BitConverter.SingleToInt32Bits),
            loaded.forward(tokens).data<float>().ToArray().Select(BitConverter.SingleToInt32Bits));

        QGenFileInfo info = QGenFile.ReadInfo(new MemoryStream(file));
        Assert.Equal(2, info.Version);

        // embedding: 30 rows of 6 values, 1 byte each with float32 scales and biases (8-bit), or half a byte each with
        // float16 ones and the bit width as a third constant (4-bit).
        int embeddingPayload = bits == 8
            ? Float16FileTests.FloatOpPayload("", 2, [("rows", [30, 6], 1), ("scale", [30], 4), ("bias", [30], 4)])
            : Float16FileTests.FloatOpPayload("", 3, [("rows", [30, 6], 0.5), ("scale", [30], 2), ("bias", [30], 2)]);
        Assert.Equal(embeddingPayload, info.Layers.Single(l => l.Name == "embedding").PayloadBytes);

        // lstm: qint8 weights one byte each; per-tensor scale and zero point and the biases float32.
        Assert.Equal(
            Float16FileTests.FloatOpPayload("LSTM", 9,
            [
                ("weight_ih_l0", [32, 6], 1), ("weight_ih_l0_scale", [1], 4), ("weight_ih_l0_zero_point", [1], 4),
                ("weight_hh_l0", [32, 8], 1), ("weight_hh_l0_scale", [1], 4), ("weight_hh_l0_zero_point", [1], 4),
                ("bias_ih_l0", [32], 4), ("bias_hh_l0", [32], 4),
            ]),
            info.Layers.Single(l => l.Name == "lstm").PayloadBytes);

        // head: a dynamic Linear [3, 8] with its bias.
        Assert.Equal(
            Float16FileTests.FloatOpPayload("", 4, [("weight", [3, 8], 1), ("weight_scale", [1], 4), ("weight_zero_point", [1], 4), ("bias", [3], 4)]),
            info.Layers.Single(l => l.Name == "head").PayloadBytes);
    }

    [Fact]
    public void A_text_model_file_is_a_quarter_of_its_float_parameters_or_less()
    {
        // Embedding-heavy, as text models are: 2000 × 64 table, LSTM 64 → 64, 4 classes.
        torch.manual_seed(202);
        using var model = new LstmTextClassifier(2000, 64, 64, 4);
        long floatBytes = FloatBytes(model);
        long eightBit = Save(Convert(model, QConfig.FloatQParamsWeightOnly)).Length;
        long fourBit = Save(Convert(model, QConfig.FloatQParamsWeightOnly4Bit)).Length;

        // 8-bit rows carry 8 bytes of scale and bias each (PyTorch's layout), so 64-value rows are 72/256 of float:
        // 3.4× smaller at best; 4-bit rows are 36/256.
        Assert.True(floatBytes / (double)eightBit > 3.3, $"float {floatBytes} B, 8-bit file {eightBit} B ({floatBytes / (double)eightBit:F2}×)");
        Assert.True(floatBytes / (double)fourBit > 5.5, $"float {floatBytes} B, 4-bit file {fourBit} B ({floatBytes / (double)fourBit:F2}×)");
    }

    [Fact]
    public void Forged_integer_tensors_are_refused_naming_the_op()
    {
        var output = new QuantizeInput("Net", "emb", QParams.PerTensor(0.1f, 0, QuantDType.QUInt8));
        FloatOpTensor[] Table(FloatOpElementType rows, FloatOpElementType qparams, float value = 3f) =>
        [
            new FloatOpTensor("rows", [1, 2], [value, 1f]) { ElementType = rows },
            new FloatOpTensor("scale", [1], [0.5f]) { ElementType = qparams },
            new FloatOpTensor("bias", [1], [-1f]) { ElementType = qparams },
        ];
        FloatOp Embedding(long[] ints, FloatOpTensor[] tensors) => new("Net", "emb", FloatOpKind.WeightOnlyEmbedding, "", ints, [], tensors, false, 1, output);

        // A 4-bit value of 16, a uint8 row value of 256: out of the element type's range.
        Assert.Contains("UInt4 values are integers in 0..15", Assert.Throws<ArgumentException>(() => Embedding([1, 2, 4], Table(FloatOpElementType.UInt4, FloatOpElementType.Float16, 16f))).Message, StringComparison.Ordinal);
        Assert.Contains("UInt8 values are integers in 0..255", Assert.Throws<ArgumentException>(() => Embedding([1, 2], Table(FloatOpElementType.UInt8, FloatOpElementType.Float32, 256f))).Message, StringComparison.Ordinal);

        // 4-bit rows said to be 8-bit (or the reverse), and float32 qparams for a 4-bit table.
        Assert.Contains("a 4-bit table stores its rows as UInt4 and its scales and biases as Float16", Assert.Throws<ArgumentException>(() => Embedding([1, 2, 4], Table(FloatOpElementType.UInt8, FloatOpElementType.Float16))).Message, StringComparison.Ordinal);
        Assert.Contains("a 4-bit table stores its rows as UInt4 and its scales and biases as Float16", Assert.Throws<ArgumentException>(() => Embedding([1, 2, 4], Table(FloatOpElementType.UInt4, FloatOpElementType.Float32))).Message, StringComparison.Ordinal);
        Assert.Contains("has rows of 2 bits", Assert.Throws<ArgumentException>(() => Embedding([1, 2, 2], Table(FloatOpElementType.UInt4, FloatOpElementType.Float16))).Message, StringComparison.Ordinal);

        // An integer element type on a tensor that is not an integer weight.
        var bias = Assert.Throws<ArgumentException>(() => new FloatOp("Net", "fc", FloatOpKind.DynamicLinear, "", [2, 1, 0, 0], [],
            [
                new FloatOpTensor("weight", [1, 2], [1f, -2f]) { ElementType = FloatOpElementType.Int8 },
                new FloatOpTensor("weight_scale", [1], [0.1f]),
                new FloatOpTensor("weight_zero_point", [1], [0f]) { ElementType = FloatOpElementType.Int8 },
            ], false, 1, output));
        Assert.Contains("Net.fc: a float DynamicLinear op stores its tensor 'weight_zero_point' as Int8; only the integer weights of a dynamic or weight-only op are stored as integers", bias.Message, StringComparison.Ordinal);

        // The 8-bit table of a file written before format version 2 (float32 values) is still read.
        using Tensor index = torch.tensor(new long[] { 0 });
        using Tensor row = Embedding([1, 2], Table(FloatOpElementType.Float32, FloatOpElementType.Float32, 1f)).Forward([index]);
        Assert.Equal(new[] { -0.5f, -0.5f }, row.data<float>().ToArray()); // fma(0.5, 1, −1) for both values
    }
}
