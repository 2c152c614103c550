using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using System.Text;
using QuantGen.Modules;
using QuantGen.Serialization;
using QuantGen.Tests.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// Float16-weight ops in .qgen files (FloatOp kinds 31 and 32): a loaded model gives the converted model's bits, each
/// weight takes 2 bytes (the payload length is checked against docs/model-file.md's record layout), and a forged value
/// (NaN, infinity, a shape that does not fit the sizes) is refused at load with a message naming the op.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class Float16FileTests
{
    private static byte[] Save(Action<Stream> save)
    {
        var stream = new MemoryStream();
        save(stream);
        return stream.ToArray();
    }

    private static GruLastState.Quantized ConvertGru(GruLastState model)
    {
        model.eval();
        GruLastState.Observed observed = model.Prepare(new QConfigMapping(QConfig.X86).SetModuleType("GRU", QConfig.Float16Dynamic).SetModuleName("fc1", QConfig.Float16Dynamic));
        using (torch.no_grad())
        {
            observed.forward(torch.randn(4, 2, 5)).Dispose();
        }

        return observed.Convert();
    }

    /// <summary>
    /// A FloatOp record's payload length by docs/model-file.md: u16 kind, string text, u32 + 8 per integer constant,
    /// u32 (no float constants), u8 tensor count, each tensor (string name, u8 rank, 4 per size, u32 count, 2 or 4 per
    /// value, 1 for int8/uint8, half a byte for 4-bit values rounded up), bool ReLU, u16 input count, per-tensor qparams
    /// (u8 dtype, i32 axis, u32 count, f32 scale, i32 zero point).
    /// </summary>
    internal static int FloatOpPayload(string text, int ints, (string Name, int[] Shape, double BytesPerValue)[] tensors) =>
        2 + (2 + text.Length) + 4 + (8 * ints) + 4 + 1
        + tensors.Sum(t => 2 + t.Name.Length + 1 + (4 * t.Shape.Length) + 4 + (int)Math.Ceiling(t.BytesPerValue * t.Shape.Aggregate(1, (a, b) => a * b)))
        + 1 + 2 + (1 + 4 + 4 + 4 + 4);

    [Fact]
    public void A_model_with_float16_layers_saves_2_bytes_per_weight_and_loads_with_the_same_bits()
    {
        torch.manual_seed(191);
        using var model = new GruLastState(5, 7, 3);
        GruLastState.Quantized converted = ConvertGru(model);
        byte[] file = Save(converted.Save);
        GruLastState.Quantized loaded = GruLastState.Quantized.Load(new MemoryStream(file));
        using Tensor x = torch.randn(6, 3, 5);
        Assert.Equal(
            converted.forward(x).data<float>().ToArray().Select(BitConverter.SingleToInt32Bits),
            loaded.forward(x).data<float>().ToArray().Select(BitConverter.SingleToInt32Bits));

        string path = Path.Combine(Path.GetTempPath(), $"qg-fp16-{Guid.NewGuid():N}.qgen");
        File.WriteAllBytes(path, file);
        try
        {
            QGenFileInfo info = QGenFile.ReadInfo(path);

            // gru.h_n: a two-layer GRU (input 5, hidden 7, 3 gates), weights float16, biases float32.
            int gruPayload = FloatOpPayload("GRU", 7,
            [
                ("weight_ih_l0", [21, 5], 2), ("weight_hh_l0", [21, 7], 2), ("bias_ih_l0", [21], 4), ("bias_hh_l0", [21], 4),
                ("weight_ih_l1", [21, 7], 2), ("weight_hh_l1", [21, 7], 2), ("bias_ih_l1", [21], 4), ("bias_hh_l1", [21], 4),
            ]);
            Assert.Equal(gruPayload, info.Layers.Single(l => l.Name == "gru.h_n").PayloadBytes);

            // fc1 (with its fused ReLU): weight [7, 7] float16, bias [7] float32.
            Assert.Equal(FloatOpPayload("", 2, [("weight", [7, 7], 2), ("bias", [7], 4)]), info.Layers.Single(l => l.Name == "fc1").PayloadBytes);

            // What the file holds is the layer's float16 weights themselves.
            var stored = (FloatOp)QGenFile.ReadContents(path).Layers.Single(l => l.Layer == "fc1");
            Assert.Equal(FloatOpKind.Float16Linear, stored.Kind);
            Assert.True(stored.Relu);
            FloatOpTensor weight = stored.Tensor("weight")!;
            Assert.Equal(FloatOpElementType.Float16, weight.ElementType);
            var fc1 = (TorchSharp.Modules.Linear)model.named_children().Single(c => c.name == "fc1").module;
            float[] rounded = fc1.weight!.to(ScalarType.Float16).to(ScalarType.Float32).data<float>().ToArray();
            Assert.Equal(rounded.Select(BitConverter.SingleToInt32Bits), weight.Values.Select(BitConverter.SingleToInt32Bits));
            Assert.Equal(FloatOpElementType.Float32, stored.Tensor("bias")!.ElementType);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_text_model_with_a_float16_lstm_saves_and_loads_with_the_same_bits()
    {
        torch.manual_seed(192);
        using var model = new LstmTextClassifier(30, 6, 8, 3);
        model.eval();
        LstmTextClassifier.Observed observed = model.Prepare(new QConfigMapping(null)
            .SetModuleType("Embedding", QConfig.FloatQParamsWeightOnly)
            .SetModuleType("LSTM", QConfig.Float16Dynamic)
            .SetModuleType("Linear", QConfig.Float16Dynamic));
        using Tensor tokens = torch.tensor(new long[] { 1, 5, 9, 29, 0, 3, 3, 7 }, new long[] { 2, 4 });
        using (torch.no_grad())
        {
            observed.forward(tokens).Dispose();
        }

        LstmTextClassifier.Quantized converted = observed.Convert();
        byte[] file = Save(converted.Save);
        LstmTextClassifier.Quantized loaded = LstmTextClassifier.Quantized.Load(new MemoryStream(file));
        Assert.Equal(
            converted.forward(tokens).data<float>().ToArray().Select(BitConverter.SingleToInt32Bits),
            loaded.forward(tokens).data<float>().ToArray().Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(FloatOpPayload("LSTM", 7, [("weight_ih_l0", [32, 6], 2), ("weight_hh_l0", [32, 8], 2), ("bias_ih_l0", [32], 4), ("bias_hh_l0", [32], 4)]),
            QGenFile.ReadInfo(new MemoryStream(file)).Layers.Single(l => l.Name == "lstm").PayloadBytes);
    }

    [Theory]
    [InlineData("gru.h_n", "weight_ih_l0", (ushort)0x7E00, "float16 weights are finite float16 values")] // NaN
    [InlineData("gru.h_n", "weight_hh_l1", (ushort)0x7C00, "float16 weights are finite float16 values")] // +∞
    [InlineData("fc1", "weight", (ushort)0xFC00, "float16 weights are finite float16 values")] // −∞
    public void A_forged_non_finite_weight_is_refused_at_load_naming_the_op(string record, string tensor, ushort bits, string expected)
    {
        torch.manual_seed(193);
        using var model = new GruLastState(5, 7, 3);
        byte[] file = Save(ConvertGru(model).Save);
        int at = ValuesAt(file, record, tensor, out bool float16);
        Assert.True(float16, $"{record}'s {tensor} is stored with the float16 flag");
        byte[] forged = (byte[])file.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(forged.AsSpan(at + 4), bits);
        var error = Assert.Throws<QGenFormatException>(() => GruLastState.Quantized.Load(new MemoryStream(FileLayout.Reseal(forged))));
        Assert.Equal(QGenFormatError.InvalidLayer, error.Error);
        Assert.Contains($"GruLastState.{record}: a float Float16", error.Message, StringComparison.Ordinal);
        Assert.Contains(tensor, error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_forged_shape_a_float32_weight_or_a_float16_bias_is_refused_at_load_naming_the_op()
    {
        torch.manual_seed(194);
        using var model = new GruLastState(5, 7, 3);
        byte[] file = Save(ConvertGru(model).Save);

        // weight_ih_l0 [21, 5] written as [5, 21]: the same number of values, a shape the sizes do not give.
        int at = ValuesAt(file, "gru.h_n", "weight_ih_l0", out _);
        int shapeAt = at - 8;
        byte[] swapped = (byte[])file.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(swapped.AsSpan(shapeAt), 5);
        BinaryPrimitives.WriteInt32LittleEndian(swapped.AsSpan(shapeAt + 4), 21);
        var shape = Assert.Throws<QGenFormatException>(() => GruLastState.Quantized.Load(new MemoryStream(FileLayout.Reseal(swapped))));
        Assert.Equal(QGenFormatError.InvalidLayer, shape.Error);
        Assert.Contains("GruLastState.gru.h_n: a float Float16Recurrent op has weight_ih_l0 of shape [5, 21]; its sizes need [21, 5]", shape.Message, StringComparison.Ordinal);

        // fc1's weight [7, 7] stored as 49 float32 values in place of 49 float16 ones and 49 × 2 bytes of the rest: the
        // record's length no longer adds up, or the constructor refuses a float32 weight in a float16 op.
        int fcAt = ValuesAt(file, "fc1", "weight", out _);
        byte[] unflagged = (byte[])file.Clone();
        unflagged[fcAt - 9] &= 0x7F;
        var flag = Assert.Throws<QGenFormatException>(() => GruLastState.Quantized.Load(new MemoryStream(FileLayout.Reseal(unflagged))));
        Assert.Contains("fc1", flag.Message, StringComparison.Ordinal);

        // In memory (what a decoded record becomes): a float32 weight or a float16 bias is refused by the op itself.
        var output = new QuantizeInput("Net", "fc", QParams.PerTensor(0.1f, 0, QuantDType.QUInt8));
        var float32Weight = Assert.Throws<ArgumentException>(() => new FloatOp("Net", "fc", FloatOpKind.Float16Linear, "", [2, 1], [], [new FloatOpTensor("weight", [1, 2], [1f, 2f])], false, 1, output));
        Assert.Contains("Net.fc: a float Float16Linear op stores its weight as float32; a float16 op's weights are float16", float32Weight.Message, StringComparison.Ordinal);
        var float16Bias = Assert.Throws<ArgumentException>(() => new FloatOp("Net", "fc", FloatOpKind.Linear, "", [2, 1, -1], [], [new FloatOpTensor("weight", [1, 2], [1f, 2f]), new FloatOpTensor("bias", [1], [1f]) { ElementType = FloatOpElementType.Float16 }], false, 1, output));
        Assert.Contains("Net.fc: a float Linear op stores its tensor 'bias' as float16", float16Bias.Message, StringComparison.Ordinal);
        var notHalf = Assert.Throws<ArgumentException>(() => new FloatOp("Net", "fc", FloatOpKind.Float16Linear, "", [2, 1], [], [new FloatOpTensor("weight", [1, 2], [1f, 0.1f]) { ElementType = FloatOpElementType.Float16 }], false, 1, output));
        Assert.Contains("has the weight value 0.1 at 1; float16 weights are finite float16 values", notHalf.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Mutated_float16_records_are_refused_at_load_or_run_cleanly()
    {
        torch.manual_seed(196);
        using var model = new GruLastState(5, 7, 3);
        byte[] file = Save(ConvertGru(model).Save);
        using Tensor x = torch.randn(3, 2, 5);
        int[] boundary = [0, -1, 1, 2, 3, 0x80, 0xFF, 65535, 65536, int.MaxValue, int.MinValue, 0x7C007E00 /* two float16: ∞, NaN */];
        var records = FileLayout.Records(file).Where(r => r.Name is "gru.h_n" or "fc1").ToArray();
        var failures = new System.Collections.Generic.List<string>();
        for (int seed = 0; seed < 300; seed++)
        {
            var random = new Random(seed);
            var record = records[random.Next(records.Length)];
            byte[] mutated = (byte[])file.Clone();
            int at = record.PayloadAt + random.Next(random.Next(2) == 0 ? Math.Min(record.PayloadLength - 4, 200) : record.PayloadLength - 4);
            int value = boundary[random.Next(boundary.Length)];
            if (random.Next(3) == 0)
            {
                mutated[at] ^= (byte)(1 + random.Next(255));
            }
            else
            {
                BinaryPrimitives.WriteInt32LittleEndian(mutated.AsSpan(at), value);
            }

            GruLastState.Quantized loaded;
            try
            {
                loaded = GruLastState.Quantized.Load(new MemoryStream(FileLayout.Reseal(mutated)));
            }
            catch (QGenFormatException)
            {
                continue;
            }
            catch (Exception e)
            {
                failures.Add($"seed {seed} ({record.Name} +{at - record.PayloadAt}): load threw {e.GetType().Name}: {e.Message}");
                continue;
            }

            try
            {
                using var scope = torch.NewDisposeScope();
                loaded.forward(x);
            }
            catch (ArgumentException e) when (e.Message.Contains("GruLastState", StringComparison.Ordinal))
            {
            }
            catch (Exception e)
            {
                failures.Add($"seed {seed} ({record.Name} +{at - record.PayloadAt}): run threw {e.GetType().Name}: {e.Message}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(10)));
    }

    /// <summary>
    /// Where a float op tensor's u32 count sits in the named record (its values start 4 bytes later): the tensor's name,
    /// then its u8 rank (bit 7: float16), the sizes, the count. <paramref name="float16"/> tells the flag.
    /// </summary>
    private static int ValuesAt(byte[] file, string record, string tensor, out bool float16)
    {
        var (_, _, _, _, payloadAt, payloadLength) = FileLayout.Records(file).Single(r => r.Name == record);
        byte[] name = Encoding.UTF8.GetBytes(tensor);
        for (int i = payloadAt; i + name.Length + 2 < payloadAt + payloadLength; i++)
        {
            if (BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(i)) == name.Length && file.AsSpan(i + 2, name.Length).SequenceEqual(name))
            {
                byte rankByte = file[i + 2 + name.Length];
                float16 = (rankByte & 0x80) != 0;
                return i + 2 + name.Length + 1 + (4 * (rankByte & 0x7F));
            }
        }

        throw new InvalidOperationException($"no tensor '{tensor}' in record '{record}'");
    }
}
