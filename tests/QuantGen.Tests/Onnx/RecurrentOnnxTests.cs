using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Onnx;
using QuantGen.Onnx.Protobuf;
using QuantGen.Tests.Binding;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantGen.Tests.Onnx;

/// <summary>
/// Models bound at Prepare whose LSTM is PyTorch's dynamic int8 LSTM (exported as com.microsoft DynamicQuantizeLSTM, one
/// per layer) and whose Embedding is a weight-only or float table (Gather on an int64 input), run in ONNX Runtime 1.31.1
/// against QuantGen's converted model on the same input. Everything around the LSTM or Embedding stays float, so the
/// comparison is the LSTM's or the Embedding's.
/// </summary>
/// <remarks>
/// <para>
/// <b>Why the X86 preset is held to a bound and Qnnpack to float rounding.</b> Both runtimes quantize each dynamic
/// linear's input on every call from its min and max, and the integer products with the same int8 weights are exact.
/// They differ in the grid: QuantGen's X86 preset follows fbgemm's <c>reduce_range</c> (0..127, step range/127,
/// docs/numerics.md §8), ONNX Runtime always uses 0..255 (step range/255, MLAS's <c>GetQuantizationParameter</c>, as
/// DynamicQuantizeLinear). Each rounds to nearest, so one projection's input moves by at most half a step of each,
/// and one gate pre-activation of row r by at most
/// <c>ε_r = ‖W_ih,r‖₁·(s_x,QuantGen + s_x,ORT)/2 + ‖W_hh,r‖₁·(s_h,QuantGen + s_h,ORT)/2</c>, with the layer input's
/// range (the model input's for layer 0, 2 for a lower layer's output h ∈ (−1, 1)) and the hidden state's (2).
/// σ and tanh have slopes of at most 1/4 and 1, so one step's rounding difference moves h and c by at most about ε;
/// the test holds every output to ε = max_r ε_r. It does not prove that the steps' differences never add up (they are
/// independent roundings and mostly cancel: measured 0.006–0.009 where ε is about 0.05), but a wrong gate order,
/// weight layout, direction or initial state moves outputs by tenths.
/// </para>
/// <para>
/// The Qnnpack preset quantizes over 0..255 with the same formula as ONNX Runtime (scale (max − min)/255, zero point
/// rne(−min/scale)), so both compute the same integers and differ only in float rounding: the order of the bias sums
/// and MLAS's sigmoid/tanh against QuantGen's (each within about 1e-7 relative; measured: every output within 1.8e-7).
/// A hidden value that lands within that much of a rounding boundary could still round one step apart and change the
/// rest of its sequence, so the test wants most outputs (at least half) within 1e-5 and all within ε.
/// </para>
/// </remarks>
[Collection(SeededTorchCollection.Name)]
public sealed class RecurrentOnnxTests(ITestOutputHelper output)
{
    private const int Features = 4, Hidden = 6, Steps = 5, Batch = 3;

    private static float[] Normal(int count, int seed)
    {
        using var generator = new torch.Generator((ulong)seed);
        return torch.randn(new long[] { count }, generator: generator).data<float>().ToArray();
    }

    private static long[] Tokens(int count, int vocabulary, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (long)random.Next(vocabulary)).ToArray();
    }

    /// <summary>The LSTM dynamic with <paramref name="backend"/>, every other op of the model float (null qconfig).</summary>
    /// <param name="floatTypes">The model's other module types and functions, kept float one by one where the global qconfig is static.</param>
    private static QConfigMapping OnlyTheLstmDynamic(QuantBackend backend, bool perChannel, params string[] floatTypes)
    {
        QConfig dynamic = QConfig.Dynamic(backend, perChannel);

        // A bound model's backend is its global qconfig's (X86 when it is null): Qnnpack needs a Qnnpack global
        // qconfig, and then the model's other ops are kept float by type.
        if (backend == QuantBackend.X86)
        {
            return new QConfigMapping(null).SetModuleType("LSTM", dynamic);
        }

        QConfigMapping mapping = new QConfigMapping(QConfig.For(backend)).SetModuleType("LSTM", dynamic);
        foreach (string type in floatTypes.Concat(["reshape", "cat", "mean"]))
        {
            mapping.SetModuleType(type, null);
        }

        return mapping;
    }

    /// <summary>ε = max over every cell's gate rows of ε_r (see the class remarks), from the float module's weights.</summary>
    private static float GateRoundingBound(nn.Module model, float inputRange, QuantBackend backend)
    {
        int quantGenLevels = backend == QuantBackend.X86 ? 127 : 255;
        float HalfSteps(float range) => ((range / quantGenLevels) + (range / 255f)) / 2f;
        Dictionary<string, Tensor> parameters = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        float worst = 0;
        foreach ((string name, Tensor weightIh) in parameters.Where(p => p.Key.StartsWith("lstm.weight_ih_l", StringComparison.Ordinal)))
        {
            Tensor weightHh = parameters[name.Replace("weight_ih", "weight_hh", StringComparison.Ordinal)];
            bool firstLayer = name.Contains("_l0", StringComparison.Ordinal);
            using Tensor rows = (weightIh.abs().sum(1) * HalfSteps(firstLayer ? inputRange : 2f)) + (weightHh.abs().sum(1) * HalfSteps(2f));
            worst = Math.Max(worst, rows.max().item<float>());
        }

        return worst;
    }

    private static float Range(float[] values) => Math.Max(values.Max(), 0f) - Math.Min(values.Min(), 0f);

    /// <summary>Checks ORT against QuantGen: X86 within ε; Qnnpack within ε and mostly within float rounding (class remarks).</summary>
    private void AssertAgreement(string what, float[] quantGen, OrtResult ort, float bound, QuantBackend backend)
    {
        Assert.Equal(quantGen.Length, ort.Output.Length);
        float[] differences = quantGen.Zip(ort.Output).Select(p => MathF.Abs(p.First - p.Second)).ToArray();
        float worst = differences.Max();
        int close = differences.Count(d => d <= 1e-5f);
        output.WriteLine($"{what} ({backend}): max |ORT - QuantGen| {worst:G3}, mean {differences.Average():G3}, bound ε {bound:G3}, within 1e-5: {close}/{differences.Length}; ORT ran {ort.Summary()}");
        Assert.True(worst <= bound, $"{what}: ORT is {worst} from QuantGen, beyond the activation-rounding bound {bound}");
        if (backend == QuantBackend.Qnnpack)
        {
            Assert.True(close * 2 >= differences.Length, $"{what}: only {close}/{differences.Length} outputs within 1e-5 with the same activation quantization");
        }
    }

    [Theory]
    [InlineData(1, false, false, false, QuantBackend.X86)]
    [InlineData(2, false, true, true, QuantBackend.X86)]
    [InlineData(1, true, true, false, QuantBackend.X86)]
    [InlineData(2, true, false, true, QuantBackend.X86)]
    [InlineData(1, false, false, false, QuantBackend.Qnnpack)]
    [InlineData(2, true, true, true, QuantBackend.Qnnpack)]
    [InlineData(2, false, false, false, QuantBackend.Qnnpack)]
    public void A_dynamic_lstm_is_one_DynamicQuantizeLSTM_per_layer_serving_output_h_n_and_c_n(int layers, bool bidirectional, bool batchFirst, bool perChannel, QuantBackend backend)
    {
        torch.manual_seed(180 + layers + (bidirectional ? 2 : 0));
        using var model = new LstmAllElements(Features, Hidden, layers, bidirectional, batchFirst);
        model.eval();
        LstmAllElements.Observed observed = model.Prepare(OnlyTheLstmDynamic(backend, perChannel));
        int[] shape = batchFirst ? [Batch, Steps, Features] : [Steps, Batch, Features];
        float[] x = Normal(Batch * Steps * Features, 7);
        using Tensor input = torch.tensor(x, Array.ConvertAll(shape, d => (long)d));
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        LstmAllElements.Quantized int8 = observed.Convert();
        float[] quantGen = int8.forward(input).data<float>().ToArray();
        byte[] onnx = OnnxExporter.Export(int8);

        // The three elements read are three float ops of QuantGen's graph; ONNX has one operator per layer for all of them,
        // and no QuantizeLinear: nothing int8 reads the LSTM's results.
        GraphProto graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        Assert.Equal(layers, graph.Node.Count(n => n.OpType == "DynamicQuantizeLSTM" && n.Domain == "com.microsoft"));
        Assert.DoesNotContain(graph.Node, n => n.OpType is "QuantizeLinear" or "LSTM");
        Assert.Equal(TensorProto.Types.DataType.Int8, (TensorProto.Types.DataType)graph.Initializer.Single(t => t.Name == "lstm.l0.W_quantized").DataType);

        OrtResult ort = OnnxTestSupport.RunDynamic(onnx, x, shape);
        Assert.Equal(layers, ort.Count("com.microsoft:DynamicQuantizeLSTM"));
        AssertAgreement($"{layers} layer(s), bidirectional {bidirectional}, batch_first {batchFirst}, per-channel {perChannel}", quantGen, ort, GateRoundingBound(model, Range(x), backend), backend);
    }

    [Theory]
    [InlineData(false, QuantBackend.X86)]
    [InlineData(true, QuantBackend.X86)]
    [InlineData(false, QuantBackend.Qnnpack)]
    [InlineData(true, QuantBackend.Qnnpack)]
    public void Initial_states_computed_in_forward_reach_each_layer_and_direction(bool bidirectional, QuantBackend backend)
    {
        torch.manual_seed(200 + (bidirectional ? 1 : 0));
        using var model = new LstmWithComputedState(Features, bidirectional);
        model.eval();
        LstmWithComputedState.Observed observed = model.Prepare(OnlyTheLstmDynamic(backend, perChannel: false, "Linear", "Tanh"));
        int[] shape = [Batch, Steps, Features];
        float[] x = Normal(Batch * Steps * Features, 9);
        using Tensor input = torch.tensor(x, Array.ConvertAll(shape, d => (long)d));
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        LstmWithComputedState.Quantized int8 = observed.Convert();
        float[] quantGen = int8.forward(input).data<float>().ToArray();
        OrtResult ort = OnnxTestSupport.RunDynamic(OnnxExporter.Export(int8), x, shape);
        float bound = GateRoundingBound(model, Range(x), backend);
        AssertAgreement($"initial state, {(bidirectional ? "1 bidirectional layer" : "2 layers")}", quantGen, ort, bound, backend);

        // The states matter: the same (float) LSTM from zero states is far from this, farther than the bound.
        using Tensor zeros = torch.zeros(2, Batch, LstmWithComputedState.Hidden);
        var lstm = (TorchSharp.Modules.LSTM)model.named_children().Single(c => c.name == "lstm").module;
        using (torch.no_grad())
        {
            (Tensor o, Tensor h, Tensor c) = lstm.forward(input, (zeros, zeros));
            float[] fromZeros = torch.cat(new[] { o.reshape(-1), h.reshape(-1), c.reshape(-1) }, 0).data<float>().ToArray();
            float distance = fromZeros.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second));
            output.WriteLine($"from zero states instead: {distance:G3} away");
            Assert.True(distance > 2 * bound, $"the outputs do not depend on the initial states ({distance} from the zero-state LSTM's)");
        }
    }

    [Fact]
    public void An_unbatched_sequence_exports_with_the_batch_dimension_added_around_the_lstm()
    {
        torch.manual_seed(210);
        using var model = new LstmAllElements(Features, Hidden, 2, true, false);
        model.eval();
        LstmAllElements.Observed observed = model.Prepare(OnlyTheLstmDynamic(QuantBackend.Qnnpack, perChannel: false));
        int[] shape = [Steps, Features];
        float[] x = Normal(Steps * Features, 10);
        using Tensor input = torch.tensor(x, new long[] { Steps, Features });
        using (torch.no_grad())
        {
            // TorchSharp's float LSTM takes batches only; the dynamic LSTM also takes one unbatched sequence (PyTorch's).
            observed.forward(input.unsqueeze(1)).Dispose();
        }

        LstmAllElements.Quantized int8 = observed.Convert();
        float[] quantGen = int8.forward(input).data<float>().ToArray();
        OrtResult ort = OnnxTestSupport.RunDynamic(OnnxExporter.Export(int8, new OnnxExportOptions { InputShape = shape, DynamicBatch = false }), x, shape);
        AssertAgreement("unbatched", quantGen, ort, GateRoundingBound(model, Range(x), QuantBackend.Qnnpack), QuantBackend.Qnnpack);
    }

    [Fact]
    public void The_float_form_is_ONNX_LSTM_on_the_dequantized_weights()
    {
        torch.manual_seed(211);
        using var model = new LstmAllElements(Features, Hidden, 2, true, true);
        model.eval();
        LstmAllElements.Observed observed = model.Prepare(OnlyTheLstmDynamic(QuantBackend.X86, perChannel: true));
        int[] shape = [Batch, Steps, Features];
        float[] x = Normal(Batch * Steps * Features, 11);
        using Tensor input = torch.tensor(x, new long[] { Batch, Steps, Features });
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        LstmAllElements.Quantized int8 = observed.Convert();
        byte[] onnx = OnnxExporter.Export(int8, new OnnxExportOptions { Form = OnnxForm.Float });
        GraphProto graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        Assert.Equal(2, graph.Node.Count(n => n.OpType == "LSTM"));
        Assert.DoesNotContain(graph.Node, n => n.OpType is "DynamicQuantizeLSTM" or "QuantizeLinear" or "DequantizeLinear");
        OrtResult ort = OnnxTestSupport.RunDynamic(onnx, x, shape);

        // The expected values: TorchSharp's float LSTM with each weight replaced by its int8 values times its scales.
        FloatOp stored = int8.Layers.OfType<FloatOp>().First(op => op.Kind == FloatOpKind.DynamicRecurrent);
        var lstm = (TorchSharp.Modules.LSTM)model.named_children().Single(c => c.name == "lstm").module;
        float[] expected;
        using (torch.no_grad())
        {
            foreach ((string name, TorchSharp.Modules.Parameter parameter) in lstm.named_parameters())
            {
                if (name.StartsWith("weight", StringComparison.Ordinal))
                {
                    float[] q = stored.Tensor(name)!.Values, scales = stored.Tensor(name + "_scale")!.Values;
                    int columns = (int)parameter.shape[1];
                    float[] dequantized = q.Select((v, i) => v * scales[scales.Length == 1 ? 0 : i / columns]).ToArray();
                    parameter.copy_(torch.tensor(dequantized, parameter.shape));
                }
            }

            expected = model.forward(input).data<float>().ToArray();
        }

        float worst = expected.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second));
        output.WriteLine($"float form vs TorchSharp's LSTM on the dequantized weights: max {worst:G3}");
        Assert.True(worst <= 1e-5f, $"the float form is {worst} from the float LSTM on the same weights");
    }

    [Fact]
    public void A_dynamic_gru_is_refused_naming_the_layer_and_why()
    {
        torch.manual_seed(212);
        using var model = new GruFinalState(Features, Hidden);
        model.eval();
        GruFinalState.Observed observed = model.Prepare(new QConfigMapping(null).SetModuleType("GRU", QConfig.Dynamic()));
        using (torch.no_grad())
        {
            observed.forward(torch.randn(Steps, Batch, Features)).Dispose();
        }

        GruFinalState.Quantized int8 = observed.Convert();
        foreach (OnnxForm form in new[] { OnnxForm.Qdq, OnnxForm.QOperator, OnnxForm.Float })
        {
            var error = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(int8, new OnnxExportOptions { Form = form }));
            Assert.StartsWith("GruFinalState.gru.h_n: a float DynamicRecurrent cannot be exported", error.Message, StringComparison.Ordinal);
            Assert.Contains("ONNX Runtime has no dynamically quantized GRU", error.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(true, OnnxForm.Qdq)]
    [InlineData(true, OnnxForm.QOperator)]
    [InlineData(true, OnnxForm.Float)]
    [InlineData(false, OnnxForm.Qdq)]
    public void An_embedding_is_a_gather_on_int64_indices_bit_for_bit(bool weightOnly, OnnxForm form)
    {
        const int Vocabulary = 40, Dim = 7;
        torch.manual_seed(220);
        using var model = new TokenEmbedding(Vocabulary, Dim);
        model.eval();
        TokenEmbedding.Observed observed = model.Prepare(weightOnly ? new QConfigMapping(null).SetModuleType("Embedding", QConfig.FloatQParamsWeightOnly) : new QConfigMapping(null));
        int[] shape = [Batch, Steps];
        long[] tokens = Tokens(Batch * Steps, Vocabulary, 12);
        using Tensor input = torch.tensor(tokens, new long[] { Batch, Steps });
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        TokenEmbedding.Quantized int8 = observed.Convert();
        byte[] onnx = OnnxExporter.Export(int8, new OnnxExportOptions { Form = form });
        GraphProto graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        Assert.Equal(TensorProto.Types.DataType.Int64, (TensorProto.Types.DataType)graph.Input.Single().Type.TensorType.ElemType);
        Assert.DoesNotContain(graph.Node, n => n.OpType == "QuantizeLinear");

        // In the int8 forms a weight-only table stays 8-bit: one byte per value, plus a scale and a bias per row.
        TensorProto table = graph.Initializer.Single(t => t.Dims.SequenceEqual(new long[] { Vocabulary, Dim }));
        Assert.Equal(weightOnly && form != OnnxForm.Float ? TensorProto.Types.DataType.Uint8 : TensorProto.Types.DataType.Float, (TensorProto.Types.DataType)table.DataType);

        float[] quantGen = int8.forward(input).data<float>().ToArray();
        OrtResult ort = OnnxTestSupport.RunTokens(onnx, tokens, shape);
        Assert.Equal(new[] { Batch, Steps, Dim }, ort.Shape);
        int exact = quantGen.Zip(ort.Output).Count(p => BitConverter.SingleToInt32Bits(p.First) == BitConverter.SingleToInt32Bits(p.Second));
        output.WriteLine($"{(weightOnly ? "weight-only" : "float")} Embedding, {form}: {exact}/{quantGen.Length} bit for bit; ORT ran {ort.Summary()}");
        Assert.Equal(quantGen, ort.Output);

        // The comparison can fail: the float table alone (what the 8-bit rows approximate) is not these values.
        if (weightOnly)
        {
            var embedding = (TorchSharp.Modules.Embedding)model.named_children().Single(c => c.name == "embedding").module;
            using (torch.no_grad())
            {
                Assert.NotEqual(embedding.forward(input).data<float>().ToArray(), ort.Output);
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_token_classifier_takes_int64_indices_and_agrees_to_float_rounding(bool weightOnly)
    {
        const int Vocabulary = 50, Dim = 8, Classes = 5;
        torch.manual_seed(221);
        using var model = new TokenMeanClassifier(Vocabulary, Dim, Classes);
        model.eval();
        QConfigMapping mapping = new QConfigMapping(null);
        if (weightOnly)
        {
            mapping.SetModuleType("Embedding", QConfig.FloatQParamsWeightOnly);
        }

        TokenMeanClassifier.Observed observed = model.Prepare(mapping);
        int[] shape = [Batch, Steps];
        long[] tokens = Tokens(Batch * Steps, Vocabulary, 13);
        using Tensor input = torch.tensor(tokens, new long[] { Batch, Steps });
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        TokenMeanClassifier.Quantized int8 = observed.Convert();
        float[] quantGen = int8.forward(input).data<float>().ToArray();
        OrtResult ort = OnnxTestSupport.RunTokens(OnnxExporter.Export(int8), tokens, shape);
        Assert.Equal(new[] { Batch, Classes }, ort.Shape);

        // The embeddings are the same bits (above); ReduceMean and Gemm sum in their own order, as FloatOpOnnxTests allows.
        float scale = Math.Max(1f, quantGen.Max(MathF.Abs));
        float worst = quantGen.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second));
        output.WriteLine($"{(weightOnly ? "weight-only" : "float")} Embedding → mean → Linear: max |ORT - QuantGen| {worst:G3}");
        Assert.True(worst <= 2e-5f * scale, $"ORT is {worst} from QuantGen");
    }

    [Fact]
    public void The_README_text_model_weight_only_embedding_dynamic_lstm_and_linear_agrees_with_Qnnpack()
    {
        torch.manual_seed(222);
        using var model = new LstmTextClassifier(60, 8, 10, 4);
        model.eval();
        QConfig dynamic = QConfig.Dynamic(QuantBackend.Qnnpack);
        QConfigMapping mapping = new QConfigMapping(QConfig.Qnnpack)
            .SetModuleType("Embedding", QConfig.FloatQParamsWeightOnly)
            .SetModuleType("LSTM", dynamic)
            .SetModuleType("Linear", dynamic)
            .SetModuleType("mean", null);
        LstmTextClassifier.Observed observed = model.Prepare(mapping);
        int[] shape = [Batch, 9];
        long[] tokens = Tokens(Batch * 9, 60, 14);
        using Tensor input = torch.tensor(tokens, new long[] { Batch, 9 });
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        LstmTextClassifier.Quantized int8 = observed.Convert();
        float[] quantGen = int8.forward(input).data<float>().ToArray();
        OrtResult ort = OnnxTestSupport.RunTokens(OnnxExporter.Export(int8), tokens, shape);
        output.WriteLine(ort.Summary());
        Assert.Contains("com.microsoft:DynamicQuantizeLSTM", ort.OptimizedOps);

        // Qnnpack quantizes every dynamic input as ONNX Runtime does (class remarks) and the dynamic Linear scales its
        // product as DynamicQuantizeLinear + MatMulInteger + Mul does, so the logits differ by float rounding only.
        float worst = quantGen.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second));
        output.WriteLine($"text model: max |ORT - QuantGen| {worst:G3} on logits up to {quantGen.Max(MathF.Abs):G3}; ORT ran {ort.Summary()}");
        Assert.True(worst <= 1e-5f, $"ORT is {worst} from QuantGen");
    }
}
