using System;
using System.Linq;
using QuantGen.Onnx;
using QuantGen.Onnx.Protobuf;
using QuantGen.Tests.Binding;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantGen.Tests.Onnx;

/// <summary>
/// Float16-weight LSTMs and GRUs (QConfig.Float16Dynamic) exported as ONNX's LSTM / GRU, one per layer, with their weights
/// as FLOAT16 initializers Cast to float, run in ONNX Runtime 1.31.1 against QuantGen's converted model. Nothing is
/// quantized: both multiply by the same float16 values in float32 and differ only in float rounding (the order of the
/// GEMM's sums and of the bias adds, MLAS's sigmoid/tanh against QuantGen's, each within about 1e-7 relative per step),
/// so every output is held to 1e-5 relative. A wrong gate order, weight layout, direction, layer slice or initial state
/// moves outputs by tenths.
/// </summary>
[Collection(nameof(OnnxModelExportTests))]
public sealed class Float16RecurrentOnnxTests(ITestOutputHelper output)
{
    private const int Features = 4, Hidden = 6, Steps = 5, Batch = 3;

    private static float[] Normal(int count, int seed)
    {
        using var generator = new torch.Generator((ulong)seed);
        return torch.randn(new long[] { count }, generator: generator).data<float>().ToArray();
    }

    private void AssertFloatRounding(string what, float[] quantGen, OrtResult ort)
    {
        Assert.Equal(quantGen.Length, ort.Output.Length);
        float worst = quantGen.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second) / (1 + MathF.Abs(p.First)));
        output.WriteLine($"{what}: max |ORT - QuantGen| / (1 + |QuantGen|) {worst:G3}; ORT ran {ort.Summary()}");
        Assert.True(worst <= 1e-5f, $"{what}: ORT is {worst} (relative) from QuantGen");
    }

    /// <summary>Checks the written graph: one operator per layer, its W and R as float16 behind a Cast, no quantization.</summary>
    private static void AssertFloat16Layers(byte[] onnx, string op, int layers)
    {
        GraphProto graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        Assert.Equal(layers, graph.Node.Count(n => n.OpType == op));
        Assert.Equal(2 * layers, graph.Initializer.Count(t => t.DataType == (int)TensorProto.Types.DataType.Float16));
        Assert.Equal(2 * layers, graph.Node.Count(n => n.OpType == "Cast"));
        Assert.DoesNotContain(graph.Node, n => n.OpType is "QuantizeLinear" or "DequantizeLinear" or "DynamicQuantizeLSTM");
        if (op == "GRU")
        {
            Assert.All(graph.Node.Where(n => n.OpType == "GRU"), n => Assert.Equal(1, n.Attribute.Single(a => a.Name == "linear_before_reset").I));
        }
    }

    [Theory]
    [InlineData(1, false, false, OnnxForm.Qdq)]
    [InlineData(2, false, true, OnnxForm.Qdq)]
    [InlineData(1, true, true, OnnxForm.Float)]
    [InlineData(2, true, false, OnnxForm.QOperator)]
    public void A_float16_lstm_is_one_onnx_lstm_per_layer_on_its_float16_weights(int layers, bool bidirectional, bool batchFirst, OnnxForm form)
    {
        torch.manual_seed(250 + layers + (bidirectional ? 2 : 0));
        using var model = new LstmAllElements(Features, Hidden, layers, bidirectional, batchFirst);
        model.eval();
        LstmAllElements.Observed observed = model.Prepare(new QConfigMapping(null).SetModuleType("LSTM", QConfig.Float16Dynamic));
        int[] shape = batchFirst ? [Batch, Steps, Features] : [Steps, Batch, Features];
        float[] x = Normal(Batch * Steps * Features, 41);
        using Tensor input = torch.tensor(x, Array.ConvertAll(shape, d => (long)d));
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        LstmAllElements.Quantized converted = observed.Convert();
        byte[] onnx = OnnxExporter.Export(converted, new OnnxExportOptions { Form = form });
        AssertFloat16Layers(onnx, "LSTM", layers);
        AssertFloatRounding($"LSTM, {layers} layer(s), bidirectional {bidirectional}, batch_first {batchFirst}, {form}", converted.forward(input).data<float>().ToArray(), OnnxTestSupport.RunDynamic(onnx, x, shape));
    }

    [Theory]
    [InlineData(1, false, false)]
    [InlineData(2, true, true)]
    [InlineData(2, false, false)]
    public void A_float16_gru_is_one_onnx_gru_per_layer_with_the_gates_reordered_and_linear_before_reset(int layers, bool bidirectional, bool batchFirst)
    {
        torch.manual_seed(255 + layers + (bidirectional ? 2 : 0));
        using var model = new GruAllElements(Features, Hidden, layers, bidirectional, batchFirst);
        model.eval();
        GruAllElements.Observed observed = model.Prepare(new QConfigMapping(null).SetModuleType("GRU", QConfig.Float16Dynamic));
        int[] shape = batchFirst ? [Batch, Steps, Features] : [Steps, Batch, Features];
        float[] x = Normal(Batch * Steps * Features, 42);
        using Tensor input = torch.tensor(x, Array.ConvertAll(shape, d => (long)d));
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        GruAllElements.Quantized converted = observed.Convert();
        byte[] onnx = OnnxExporter.Export(converted);
        AssertFloat16Layers(onnx, "GRU", layers);
        AssertFloatRounding($"GRU, {layers} layer(s), bidirectional {bidirectional}, batch_first {batchFirst}", converted.forward(input).data<float>().ToArray(), OnnxTestSupport.RunDynamic(onnx, x, shape));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Initial_states_computed_in_forward_reach_each_layer_and_direction_of_a_float16_lstm(bool bidirectional)
    {
        torch.manual_seed(260 + (bidirectional ? 1 : 0));
        using var model = new LstmWithComputedState(Features, bidirectional);
        model.eval();
        LstmWithComputedState.Observed observed = model.Prepare(new QConfigMapping(null).SetModuleType("LSTM", QConfig.Float16Dynamic));
        int[] shape = [Batch, Steps, Features];
        float[] x = Normal(Batch * Steps * Features, 43);
        using Tensor input = torch.tensor(x, Array.ConvertAll(shape, d => (long)d));
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        LstmWithComputedState.Quantized converted = observed.Convert();
        AssertFloatRounding($"initial states, {(bidirectional ? "1 bidirectional layer" : "2 layers")}", converted.forward(input).data<float>().ToArray(), OnnxTestSupport.RunDynamic(OnnxExporter.Export(converted), x, shape));
    }

    [Fact]
    public void A_text_model_with_a_float16_lstm_and_head_takes_token_indices()
    {
        torch.manual_seed(262);
        using var model = new LstmTextClassifier(40, 8, 12, 5);
        model.eval();
        LstmTextClassifier.Observed observed = model.Prepare(new QConfigMapping(null).SetModuleType("LSTM", QConfig.Float16Dynamic).SetModuleType("Linear", QConfig.Float16Dynamic));
        var random = new Random(44);
        long[] tokens = Enumerable.Range(0, Batch * 9).Select(_ => (long)random.Next(40)).ToArray();
        using Tensor input = torch.tensor(tokens, new long[] { Batch, 9 });
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        LstmTextClassifier.Quantized converted = observed.Convert();
        byte[] onnx = OnnxExporter.Export(converted);
        GraphProto graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        Assert.Equal(3, graph.Initializer.Count(t => t.DataType == (int)TensorProto.Types.DataType.Float16));
        OrtResult ort = OnnxTestSupport.RunTokens(onnx, tokens, [Batch, 9]);
        Assert.Equal(new[] { Batch, 5 }, ort.Shape);
        AssertFloatRounding("Embedding → float16 LSTM → mean → float16 Linear", converted.forward(input).data<float>().ToArray(), ort);
    }
}
