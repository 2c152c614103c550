using System;
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
/// Models bound at Prepare whose TorchSharp TransformerEncoderLayer (or TransformerEncoder) has dynamic int8
/// projections, exported as DynamicQuantizeLinear + MatMulInteger projections around float attention, LayerNormalization
/// and ReLU/GELU, run in ONNX Runtime 1.31.1 against QuantGen's converted model on the same input.
/// </summary>
/// <remarks>
/// <para>
/// <b>What may differ, and by how much.</b> Both runtimes quantize each projection's input on every call from its min and
/// max and multiply the same int8 weights exactly; the float parts (scores, softmax, weighted sum, LayerNorm, GELU) sum in
/// their own orders, about 1e-6 relative. With the <b>Qnnpack</b> preset QuantGen quantizes over 0..255 with ONNX
/// Runtime's formula (scale (max − min)/255, zero point rne(−min/scale)), so both compute the same integers, and the only
/// larger difference is a rounding flip: a float difference of 1e-6 that puts a projection's input value on the other
/// side of a rounding boundary moves it by one input step s_x. That moves the projection's outputs by s_x·|w| (s_x about
/// range/255 ≈ 0.03 for LayerNorm'd inputs of range ≈ 7, |w| ≤ 1/√d_model ≈ 0.25 for PyTorch's init: ≤ 0.008), and the
/// next LayerNorm, whose rows have a spread of about 1 here, passes it on about as large; the head's Linear (|w| ≤ 0.25,
/// 16 inputs) can add up several. The test holds every output to <see cref="FlipBound"/> and most (three quarters) to
/// float rounding (<see cref="FloatRounding"/>, relative to the output's size): a wrong head split, gate of the mask,
/// LayerNorm axis or weight layout moves outputs by tenths.
/// </para>
/// <para>
/// With the <b>X86</b> preset QuantGen follows fbgemm's reduce_range (0..127, a step twice ONNX Runtime's), so every
/// projection input rounds differently; that is the whole difference, as the int8 weights do not depend on the preset
/// (PyTorch's symmetric dynamic weight observers). The test converts the same model with the Qnnpack preset as the twin
/// that quantizes activations on ONNX Runtime's grid: ORT must agree with the twin as above, and then differs from the
/// X86 model by no more than the twin does (the grid's own effect, measured by QuantGen) plus <see cref="FlipBound"/>.
/// </para>
/// </remarks>
[Collection(nameof(OnnxModelExportTests))]
public sealed class EncoderOnnxTests(ITestOutputHelper output)
{
    private const int Dim = 16, Length = 7, Batch = 3, Vocabulary = 40;

    /// <summary>The most a few input-rounding flips move an output (class remarks).</summary>
    private const float FlipBound = 0.05f;

    /// <summary>Float rounding of the float parts, relative to the largest output.</summary>
    private const float FloatRounding = 1e-5f;

    private static float[] Normal(int count, int seed)
    {
        using var generator = new torch.Generator((ulong)seed);
        return torch.randn(new long[] { count }, generator: generator).data<float>().ToArray();
    }

    /// <summary>The encoder (and the Linear head, when the model has one) dynamic with <paramref name="backend"/>; <paramref name="floatTypes"/> float.</summary>
    private static QConfigMapping Dynamic(QuantBackend backend, bool perChannel, string encoderType = "TransformerEncoderLayer", bool linear = true, params string[] floatTypes)
    {
        QConfig dynamic = QConfig.Dynamic(backend, perChannel);

        // A bound model's backend is its global qconfig's (X86 when it is null): Qnnpack needs a Qnnpack global qconfig,
        // and then the model's other ops are kept float by type.
        QConfigMapping mapping = new QConfigMapping(backend == QuantBackend.X86 ? null : QConfig.For(backend)).SetModuleType(encoderType, dynamic);
        if (linear)
        {
            mapping.SetModuleType("Linear", dynamic);
        }

        foreach (string type in floatTypes)
        {
            mapping.SetModuleType(type, null);
        }

        return mapping;
    }

    private static EncoderTagger.Quantized ConvertTagger(EncoderTagger model, QuantBackend backend, bool perChannel, Tensor input)
    {
        EncoderTagger.Observed observed = model.Prepare(Dynamic(backend, perChannel));
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        return observed.Convert();
    }

    /// <summary>Checks ORT against QuantGen with the activations on one grid: all within <see cref="FlipBound"/>, most within float rounding.</summary>
    private void AssertSameGrid(string what, float[] quantGen, OrtResult ort)
    {
        Assert.Equal(quantGen.Length, ort.Output.Length);
        float scale = Math.Max(1f, quantGen.Max(MathF.Abs));
        float[] differences = quantGen.Zip(ort.Output).Select(p => MathF.Abs(p.First - p.Second)).ToArray();
        int close = differences.Count(d => d <= FloatRounding * scale);
        output.WriteLine($"{what}: max |ORT - QuantGen| {differences.Max():G3} on outputs up to {scale:G3}, within float rounding {close}/{differences.Length}; ORT ran {ort.Summary()}");
        Assert.True(differences.Max() <= FlipBound, $"{what}: ORT is {differences.Max()} from QuantGen, beyond a few rounding flips ({FlipBound})");
        Assert.True(close * 4 >= differences.Length * 3, $"{what}: only {close}/{differences.Length} outputs within float rounding with the same activation grid");
    }

    [Theory]
    [InlineData(2, false, false, QuantBackend.Qnnpack, 21)]
    [InlineData(4, true, true, QuantBackend.Qnnpack, 21)]
    [InlineData(4, true, false, QuantBackend.Qnnpack, 17)]
    [InlineData(1, false, false, QuantBackend.X86, 21)]
    [InlineData(4, true, true, QuantBackend.X86, 17)]
    public void An_encoder_layer_is_four_dynamic_projections_around_float_attention_and_layer_norms(int heads, bool gelu, bool perChannel, QuantBackend backend, int opset)
    {
        torch.manual_seed(230 + heads);
        using var model = new EncoderTagger(Dim, heads, 2 * Dim, 5, gelu ? nn.Activations.GELU : nn.Activations.ReLU);
        model.eval();
        int[] shape = [Length, Batch, Dim];
        float[] x = Normal(Length * Batch * Dim, 31);
        using Tensor input = torch.tensor(x, Array.ConvertAll(shape, d => (long)d));
        EncoderTagger.Quantized int8 = ConvertTagger(model, backend, perChannel, input);
        float[] quantGen = int8.forward(input).data<float>().ToArray();
        byte[] onnx = OnnxExporter.Export(int8, new OnnxExportOptions { Opset = opset });

        // Five dynamic Linears (in_proj, out_proj, linear1, linear2, the head), nothing quantized statically; the GELU is
        // ONNX's Gelu from opset 20 and its erf formula below.
        GraphProto graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        Assert.Equal(5, graph.Node.Count(n => n.OpType == "MatMulInteger"));
        Assert.Equal(5, graph.Node.Count(n => n.OpType == "DynamicQuantizeLinear"));
        Assert.Equal(2, graph.Node.Count(n => n.OpType == "LayerNormalization"));
        Assert.Single(graph.Node, n => n.OpType == "Softmax");
        Assert.DoesNotContain(graph.Node, n => n.OpType is "QuantizeLinear" or "DequantizeLinear");
        Assert.Equal(gelu && opset >= 20 ? 1 : 0, graph.Node.Count(n => n.OpType == "Gelu"));
        Assert.Equal(gelu && opset < 20 ? 1 : 0, graph.Node.Count(n => n.OpType == "Erf"));
        Assert.Equal(gelu ? 0 : 1, graph.Node.Count(n => n.OpType == "Relu"));
        Assert.Equal(new object[] { "sequence", "batch", (long)Dim }, graph.Input.Single().Type.TensorType.Shape.Dim.Select(d => d.HasDimParam ? (object)d.DimParam : d.DimValue));

        OrtResult ort = OnnxTestSupport.RunDynamic(onnx, x, shape);
        Assert.Equal(new[] { Length, Batch, 5 }, ort.Shape);
        string what = $"{heads} head(s), {(gelu ? "GELU" : "ReLU")}, per-channel {perChannel}, {backend}, opset {opset}";
        if (backend == QuantBackend.Qnnpack)
        {
            AssertSameGrid(what, quantGen, ort);
            return;
        }

        // X86: the Qnnpack twin quantizes activations on ORT's grid with the same int8 weights (class remarks).
        float[] twin = ConvertTagger(model, QuantBackend.Qnnpack, perChannel, input).forward(input).data<float>().ToArray();
        AssertSameGrid(what + " against its Qnnpack twin", twin, ort);
        float grid = twin.Zip(quantGen).Max(p => MathF.Abs(p.First - p.Second));
        float worst = quantGen.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second));
        output.WriteLine($"{what}: max |ORT - QuantGen X86| {worst:G3}; the 0..127 grid against 0..255 in QuantGen itself: {grid:G3}");
        Assert.True(worst <= grid + FlipBound, $"{what}: ORT is {worst} from the X86 model, the grid accounts for {grid}");
    }

    [Fact]
    public void The_sequence_length_and_batch_are_dynamic()
    {
        torch.manual_seed(236);
        using var model = new EncoderTagger(Dim, 2, 2 * Dim, 5, nn.Activations.ReLU);
        model.eval();
        using Tensor calibration = torch.randn(Length, Batch, Dim);
        EncoderTagger.Quantized int8 = ConvertTagger(model, QuantBackend.Qnnpack, perChannel: false, calibration);
        byte[] onnx = OnnxExporter.Export(int8);

        // One exported model, other lengths and batches than the calibration's.
        foreach (int[] shape in new[] { new[] { 4, 1, Dim }, new[] { 11, 5, Dim } })
        {
            float[] x = Normal(shape[0] * shape[1] * Dim, 32 + shape[0]);
            using Tensor input = torch.tensor(x, Array.ConvertAll(shape, d => (long)d));
            OrtResult ort = OnnxTestSupport.RunDynamic(onnx, x, shape);
            Assert.Equal(new[] { shape[0], shape[1], 5 }, ort.Shape);
            AssertSameGrid($"length {shape[0]}, batch {shape[1]}", int8.forward(input).data<float>().ToArray(), ort);
        }
    }

    [Theory]
    [InlineData(QuantBackend.Qnnpack)]
    [InlineData(QuantBackend.X86)]
    public void A_transformer_encoder_stack_on_token_indices_is_one_layer_s_operators_per_layer(QuantBackend backend)
    {
        torch.manual_seed(237);
        using var model = new TokenEncoderStack(Vocabulary, Dim, 4, 32, 3);
        model.eval();
        int[] shape = [Length, Batch];
        var random = new Random(33);
        long[] tokens = Enumerable.Range(0, Length * Batch).Select(_ => (long)random.Next(Vocabulary)).ToArray();
        using Tensor input = torch.tensor(tokens, new long[] { Length, Batch });
        TokenEncoderStack.Quantized Convert(QuantBackend preset)
        {
            TokenEncoderStack.Observed observed = model.Prepare(Dynamic(preset, perChannel: false, "TransformerEncoder", linear: true, "Embedding"));
            using (torch.no_grad())
            {
                observed.forward(input).Dispose();
            }

            return observed.Convert();
        }

        TokenEncoderStack.Quantized int8 = Convert(backend);
        byte[] onnx = OnnxExporter.Export(int8, new OnnxExportOptions { InputShape = [Length, Batch] });
        GraphProto graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        Assert.Equal(3 * 4 + 1, graph.Node.Count(n => n.OpType == "MatMulInteger"));
        Assert.Equal(3 * 2, graph.Node.Count(n => n.OpType == "LayerNormalization"));
        OrtResult ort = OnnxTestSupport.RunTokens(onnx, tokens, shape);
        Assert.Equal(new[] { Length, Batch, Vocabulary }, ort.Shape);

        // The X86 model is compared through its Qnnpack twin (class remarks); three layers add up more flips.
        float[] sameGrid = (backend == QuantBackend.Qnnpack ? int8 : Convert(QuantBackend.Qnnpack)).forward(input).data<float>().ToArray();
        AssertSameGrid($"3-layer stack, {backend}", sameGrid, ort);
    }

    [Fact]
    public void The_float_form_is_the_float_layer_on_the_dequantized_weights()
    {
        torch.manual_seed(238);
        using var model = new EncoderTagger(Dim, 4, 2 * Dim, 5, nn.Activations.GELU);
        model.eval();
        int[] shape = [Length, Batch, Dim];
        float[] x = Normal(Length * Batch * Dim, 34);
        using Tensor input = torch.tensor(x, Array.ConvertAll(shape, d => (long)d));
        EncoderTagger.Quantized int8 = ConvertTagger(model, QuantBackend.X86, perChannel: true, input);
        byte[] onnx = OnnxExporter.Export(int8, new OnnxExportOptions { Form = OnnxForm.Float });
        GraphProto graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        Assert.DoesNotContain(graph.Node, n => n.OpType is "DynamicQuantizeLinear" or "MatMulInteger" or "QuantizeLinear");
        OrtResult ort = OnnxTestSupport.RunDynamic(onnx, x, shape);

        // The expected values: TorchSharp's float model with each projection's weight replaced by its int8 values times its scales.
        FloatOp[] stored = int8.Layers.OfType<FloatOp>().ToArray();
        FloatOp encoder = stored.Single(op => op.Kind == FloatOpKind.DynamicEncoderLayer);
        FloatOp head = stored.Single(op => op.Kind == FloatOpKind.DynamicLinear);
        float[] Dequantized(FloatOp op, string prefix)
        {
            FloatOpTensor q = op.Tensor(prefix + "weight")!;
            float[] scales = op.Tensor(prefix + "weight_scale")!.Values;
            return q.Values.Select((v, i) => v * scales[scales.Length == 1 ? 0 : i / q.Shape[1]]).ToArray();
        }

        float[] expected;
        using (torch.no_grad())
        {
            foreach ((string name, TorchSharp.Modules.Parameter parameter) in model.named_parameters())
            {
                float[]? weight = name switch
                {
                    "encoder.self_attn.in_proj_weight" => Dequantized(encoder, "in_proj."),
                    "encoder.self_attn.out_proj.weight" => Dequantized(encoder, "out_proj."),
                    "encoder.linear1.weight" => Dequantized(encoder, "linear1."),
                    "encoder.linear2.weight" => Dequantized(encoder, "linear2."),
                    "head.weight" => Dequantized(head, ""),
                    _ => null,
                };
                if (weight is not null)
                {
                    parameter.copy_(torch.tensor(weight, parameter.shape));
                }
            }

            expected = model.forward(input).data<float>().ToArray();
        }

        float worst = expected.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second));
        output.WriteLine($"float form vs TorchSharp's layer on the dequantized weights: max {worst:G3}");
        Assert.True(worst <= 1e-4f, $"the float form is {worst} from the float layer on the same weights");
    }

    [Fact]
    public void An_attention_mask_that_is_the_model_input_is_added_to_the_scores()
    {
        torch.manual_seed(239);
        using var model = new InputMaskedEncoder(2);
        model.eval();
        int[] shape = [InputMaskedEncoder.Length, InputMaskedEncoder.Length];
        float[] x = Normal(shape[0] * shape[1], 35);
        using Tensor input = torch.tensor(x, new long[] { shape[0], shape[1] });
        InputMaskedEncoder.Observed observed = model.Prepare(Dynamic(QuantBackend.Qnnpack, perChannel: false, linear: false, floatTypes: "reshape"));
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        InputMaskedEncoder.Quantized int8 = observed.Convert();
        float[] quantGen = int8.forward(input).data<float>().ToArray();
        OrtResult ort = OnnxTestSupport.RunDynamic(OnnxExporter.Export(int8, new OnnxExportOptions { InputShape = shape, DynamicBatch = false }), x, shape);
        AssertSameGrid("the input as the attention mask", quantGen, ort);

        // The mask matters: the same layer without it is farther from ONNX Runtime than the bound.
        var encoder = (TorchSharp.Modules.TransformerEncoderLayer)model.named_children().Single(c => c.name == "encoder").module;
        using (torch.no_grad())
        {
            float[] unmasked = encoder.call(input.reshape(6, 1, 6)).data<float>().ToArray();
            float distance = unmasked.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second));
            output.WriteLine($"without the mask: {distance:G3} away");
            Assert.True(distance > 2 * FlipBound, $"the outputs do not depend on the mask ({distance} from the unmasked layer's)");
        }
    }

    [Fact]
    public void Masks_computed_in_forward_and_opsets_below_17_are_refused_naming_the_layer_and_why()
    {
        torch.manual_seed(240);
        using var causal = new CausalEncoder(12, 3);
        causal.eval();
        CausalEncoder.Quantized causalInt8 = causal.Prepare(new QConfigMapping(null).SetModuleName("encoder", QConfig.Dynamic()).SetModuleName("head", QConfig.Dynamic())).Convert();
        foreach (OnnxForm form in new[] { OnnxForm.Qdq, OnnxForm.QOperator, OnnxForm.Float })
        {
            var refused = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(causalInt8, new OnnxExportOptions { Form = form }));
            Assert.StartsWith("CausalEncoder.encoder: a float DynamicEncoderLayer cannot be exported: its src_mask 't1' is computed by a tensor expression of forward (", refused.Message, StringComparison.Ordinal);
            Assert.Contains("C# that ONNX export cannot read", refused.Message, StringComparison.Ordinal);
        }

        // The key padding mask (tokens.eq(padding)) of TinyEncoderClassifier's first layer.
        using var classifier = new TinyEncoderClassifier(30, 16, 4, 32, 2, 4);
        classifier.eval();
        TinyEncoderClassifier.Observed observed = classifier.Prepare(new QConfigMapping(null).SetModuleType("TransformerEncoderLayer", QConfig.Dynamic()));
        using (torch.no_grad())
        {
            observed.forward(torch.tensor(new long[] { 1, 2, 3, 0, 4, 5, 0, 0 }, new long[] { 2, 4 })).Dispose();
        }

        var padding = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(observed.Convert()));
        Assert.StartsWith("TinyEncoderClassifier.layers.0: a float DynamicEncoderLayer cannot be exported: its src_key_padding_mask 't1' is computed by a tensor expression of forward (", padding.Message, StringComparison.Ordinal);
        Assert.Contains("a key padding mask is a bool tensor", padding.Message, StringComparison.Ordinal);

        // LayerNormalization is opset 17's.
        using var tagger = new EncoderTagger(Dim, 2, 2 * Dim, 5, nn.Activations.ReLU);
        tagger.eval();
        EncoderTagger.Quantized int8 = ConvertTagger(tagger, QuantBackend.X86, perChannel: false, torch.randn(Length, Batch, Dim));
        var opset = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(int8, new OnnxExportOptions { Opset = 16 }));
        Assert.Equal("EncoderTagger.encoder: a float DynamicEncoderLayer cannot be exported: its LayerNorms are ONNX's LayerNormalization, which needs opset 17 (the export's opset is 16).", opset.Message);
    }
}
