using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using QuantGen.Dynamic;
using QuantGen.Serialization;
using QuantGen.Tests.Serialization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// PyTorch's <c>quantize_dynamic</c> needs no calibration data: a model whose qconfigs are only dynamic or weight-only
/// converts straight after Prepare. Its values no observer saw have no int8 qparams, so what would quantize them
/// refuses, naming the value; a static int8 op still needs calibration and says so.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class ConvertWithoutCalibrationTests
{
    private static Tensor Tokens(int batch, int length, int vocabulary, int seed)
    {
        var random = new Random(seed);
        long[] values = Enumerable.Range(0, batch * length).Select(_ => (long)random.Next(vocabulary)).ToArray();
        return torch.tensor(values, new long[] { batch, length });
    }

    [Theory]
    [InlineData(QuantBackend.X86)]
    [InlineData(QuantBackend.Qnnpack)]
    public void Dynamic_linears_convert_with_no_calibration_batch_and_give_the_dynamic_layers_results(QuantBackend backend)
    {
        torch.manual_seed(171);
        using var model = new TwoLinearNet();
        model.eval();
        TwoLinearNet.Quantized int8 = model.Prepare(new QConfigMapping(QConfig.For(backend)).SetModuleType("Linear", QConfig.Dynamic(backend))).Convert();

        using Tensor x = torch.randn(3, 6);
        DynamicQuantizedLinear fc1 = DynamicQuantizedLinear.FromLinear("TwoLinearNet", "fc1", model.Layer("fc1"), backend, fusedRelu: true);
        DynamicQuantizedLinear fc2 = DynamicQuantizedLinear.FromLinear("TwoLinearNet", "fc2", model.Layer("fc2"), backend);
        float[] expected = fc2.Forward(fc1.Forward(x)).data<float>().ToArray();
        Assert.Equal(expected, int8.forward(x).data<float>().ToArray());

        // The float-array form needs no qparams either; the int8 forms do, and say what is missing.
        float[] input = x.data<float>().ToArray();
        Assert.Equal(expected, int8.forward(input, [3, 6], out int[] shape));
        Assert.Equal(new[] { 3, 5 }, shape);
        Assert.False(int8.Input.IsObserved);
        Assert.Contains("Quantize(not observed", int8.ToString(), StringComparison.Ordinal);
        var quantized = QTensor.Quantize(input, [3, 6], QParams.PerTensor(0.05f, 128, QuantDType.QUInt8));
        var refused = Assert.Throws<InvalidOperationException>(() => int8.forward(quantized));
        Assert.Contains("never observed", refused.Message, StringComparison.Ordinal);
        Assert.Contains("Calibrate(batches)", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_uncalibrated_dynamic_model_saves_loads_and_exports_to_onnx_with_a_float_entry()
    {
        torch.manual_seed(172);
        using var model = new TwoLinearNet();
        model.eval();
        TwoLinearNet.Quantized int8 = model.Prepare(new QConfigMapping(null).SetModuleName("fc1", QConfig.Dynamic())).Convert();
        using Tensor x = torch.randn(4, 6);
        float[] actual = int8.forward(x).data<float>().ToArray();

        using var stream = new MemoryStream();
        int8.Save(stream);
        stream.Position = 0;
        TwoLinearNet.Quantized loaded = TwoLinearNet.Quantized.Load(stream);
        Assert.False(loaded.Input.IsObserved);
        Assert.Equal(actual, loaded.forward(x).data<float>().ToArray());

        // No observer saw the input, so the ONNX graph does not quantize it at the entry (there are no qparams to do
        // it with): ONNX Runtime's DynamicQuantizeLinear reads the float input as QuantGen's dynamic layer does.
        byte[] onnx = QuantGen.Onnx.OnnxExporter.Export(int8);
        float[] input = x.data<float>().ToArray();
        QuantGen.Tests.Onnx.OrtResult ort = QuantGen.Tests.Onnx.OnnxTestSupport.RunQdqAsWritten(onnx, input, [4, 6]);
        Assert.Contains("DynamicQuantizeLinear", ort.OptimizedOps);
        Assert.DoesNotContain("QuantizeLinear", ort.OptimizedOps);
        float range = input.Max() - input.Min();
        float tolerance = 2f * (range / 255f) * model.Layer("fc1").weight!.abs().sum(1).max().item<float>() * model.Layer("fc2").weight!.abs().sum(1).max().item<float>();
        for (int i = 0; i < actual.Length; i++)
        {
            Assert.True(MathF.Abs(ort.Output[i] - actual[i]) <= tolerance, $"output {i}: ONNX Runtime {ort.Output[i]:R}, QuantGen {actual[i]:R}, tolerance {tolerance:R}");
        }
    }

    [Fact]
    public void A_token_model_with_a_weight_only_embedding_and_a_dynamic_lstm_converts_with_no_calibration_batch()
    {
        torch.manual_seed(173);
        using var model = new LstmTextClassifier(50, 8, 12, 5);
        model.eval();
        QConfigMapping mapping = new QConfigMapping(null)
            .SetModuleType("Embedding", QConfig.FloatQParamsWeightOnly)
            .SetModuleType("LSTM", QConfig.Dynamic())
            .SetModuleType("Linear", QConfig.Dynamic());
        LstmTextClassifier.Quantized int8 = model.Prepare(mapping).Convert();

        using Tensor tokens = Tokens(3, 10, 50, 17);
        var embedding = (Embedding)model.named_children().Single(c => c.name == "embedding").module;
        var lstm = (LSTM)model.named_children().Single(c => c.name == "lstm").module;
        var head = (Linear)model.named_children().Single(c => c.name == "head").module;
        QuantizedEmbedding table = QuantizedEmbedding.FromEmbedding("LstmTextClassifier", "embedding", embedding);
        DynamicQuantizedLSTM int8Lstm = DynamicQuantizedLSTM.FromLSTM("LstmTextClassifier", "lstm", lstm, QuantBackend.X86, batchFirst: true);
        DynamicQuantizedLinear int8Head = DynamicQuantizedLinear.FromLinear("LstmTextClassifier", "head", head, QuantBackend.X86);
        float[] expected;
        using (torch.no_grad())
        {
            (Tensor output, Tensor _, Tensor _) = int8Lstm.Forward(table.Forward(tokens));
            expected = int8Head.Forward(output.mean(new long[] { 1 })).data<float>().ToArray();
        }

        Assert.Equal(expected, int8.forward(tokens).data<float>().ToArray());

        using var stream = new MemoryStream();
        int8.Save(stream);
        stream.Position = 0;
        LstmTextClassifier.Quantized loaded = LstmTextClassifier.Quantized.Load(stream);
        Assert.Equal(expected, loaded.forward(tokens).data<float>().ToArray());
    }

    [Fact]
    public void A_static_int8_op_still_needs_calibration_and_the_error_says_which_value()
    {
        torch.manual_seed(174);
        using var model = new TwoLinearNet();
        model.eval();
        TwoLinearNet.Observed observed = model.Prepare(new QConfigMapping(QConfig.X86).SetModuleName("fc1", QConfig.Dynamic()));

        // fc2 is static int8: it reads fc1's output, whose observer has seen nothing.
        var refused = Assert.Throws<InvalidOperationException>(() => observed.Convert());
        Assert.Contains("TwoLinearNet: Convert() before calibration", refused.Message, StringComparison.Ordinal);
        Assert.Contains("fc1", refused.Message, StringComparison.Ordinal);
        Assert.Contains("an int8 op reads that value", refused.Message, StringComparison.Ordinal);

        // One batch is enough to convert it.
        using (torch.no_grad())
        {
            observed.forward(torch.randn(8, 6)).Dispose();
        }

        Assert.True(observed.Convert().Input.IsObserved);
    }

    [Fact]
    public void A_file_whose_int8_step_reads_a_value_saved_as_never_observed_is_refused_at_load()
    {
        torch.manual_seed(175);
        using var model = new TwoLinearNet();
        model.eval();
        TwoLinearNet.Observed observed = model.Prepare(new QConfigMapping(QConfig.X86).SetModuleName("fc1", QConfig.Dynamic()));
        using (torch.no_grad())
        {
            observed.forward(torch.randn(8, 6)).Dispose();
        }

        var stream = new MemoryStream();
        observed.Convert().Save(stream);
        byte[] file = stream.ToArray();

        // fc1's record is a float op whose payload ends in its result's per-tensor qparams (u8 dtype, i32 axis, u32 count 1,
        // f32 scale, i32 zero point: 17 bytes). Write the not-observed form there (axis -1, count 0: 9 bytes) and fix the
        // payload and body lengths: fc2, a static int8 Linear, reads that value.
        var fc1 = FileLayout.Records(file).Single(r => r.Name == "fc1");
        int tail = fc1.PayloadAt + fc1.PayloadLength - 17;
        Assert.Equal(-1, BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(tail + 1)));
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(tail + 5)));
        byte[] notObserved = [file[tail], 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];
        byte[] forged = [.. file.AsSpan(0, tail), .. notObserved, .. file.AsSpan(tail + 17)];
        BinaryPrimitives.WriteInt32LittleEndian(forged.AsSpan(fc1.LengthAt), fc1.PayloadLength - 8);
        BinaryPrimitives.WriteUInt64LittleEndian(forged.AsSpan(FileLayout.BodyLengthAt), BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(FileLayout.BodyLengthAt)) - 8);

        var error = Assert.Throws<QGenFormatException>(() => TwoLinearNet.Quantized.Load(new MemoryStream(FileLayout.Reseal(forged))));
        Assert.Contains("int8 step 'fc2' reads 'fc1', which the file says was never observed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void With_no_global_qconfig_the_model_keeps_its_quantize_attribute_s_backend()
    {
        torch.manual_seed(176);
        using var model = new QnnpackLinearNet();
        model.eval();

        // Only dynamic layers, no global qconfig: [Quantize(Qnnpack)] is the model's arithmetic, so a Qnnpack entry goes
        // and gives qnnpack's dynamic Linear (it once fell back to X86 and refused it).
        QnnpackLinearNet.Quantized int8 = model.Prepare(new QConfigMapping(null).SetModuleType("Linear", QConfig.Dynamic(QuantBackend.Qnnpack))).Convert();
        using Tensor x = torch.randn(3, 6);
        var fc = (TorchSharp.Modules.Linear)model.named_children().Single(c => c.name == "fc").module;
        float[] expected = DynamicQuantizedLinear.FromLinear("QnnpackLinearNet", "fc", fc, QuantBackend.Qnnpack).Forward(x).data<float>().ToArray();
        Assert.Equal(expected, int8.forward(x).data<float>().ToArray());

        // An X86 entry is another arithmetic than the model's: refused, naming both.
        var refused = Assert.Throws<ArgumentException>(() => model.Prepare(new QConfigMapping(null).SetModuleType("Linear", QConfig.Dynamic(QuantBackend.X86))));
        Assert.Contains("uses the X86 backend, but the model's is Qnnpack", refused.Message, StringComparison.Ordinal);
    }
}

/// <summary>One Linear, its class marked for qnnpack's arithmetic.</summary>
[Quantize(QuantBackend.Qnnpack)]
public partial class QnnpackLinearNet : TorchSharp.torch.nn.Module<Tensor, Tensor>
{
    private readonly TorchSharp.torch.nn.Module<Tensor, Tensor> fc = TorchSharp.torch.nn.Linear(6, 4);

    public QnnpackLinearNet()
        : base(nameof(QnnpackLinearNet)) => RegisterComponents();

    public override Tensor forward(Tensor x) => fc.forward(x);
}
