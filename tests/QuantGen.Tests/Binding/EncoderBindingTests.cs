using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using QuantGen.Dynamic;
using QuantGen.Serialization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// TorchSharp's TransformerEncoderLayer in a model bound at Prepare: called with its masks (in a loop, or directly), it
/// runs in float under a static qconfig and with dynamic int8 projections under QConfig.Dynamic() — attention, softmax
/// and LayerNorm in float32 — checked against the same layer composed from TorchSharp float ops and dynamic Linears.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class EncoderBindingTests
{
    private static Tensor Tokens(int batch, int length, int vocabulary, int seed, int padded = 0)
    {
        var random = new Random(seed);
        var values = new long[batch * length];
        for (int b = 0; b < batch; b++)
        {
            // The last `padded` positions of every other text are padding (index 0), as a batch of short texts has.
            int real = b % 2 == 1 ? length - padded : length;
            for (int i = 0; i < length; i++)
            {
                values[(b * length) + i] = i < real ? 1 + random.Next(vocabulary - 1) : TinyEncoderClassifier.Padding;
            }
        }

        return torch.tensor(values, new long[] { batch, length });
    }

    private static double SqnrDb(float[] reference, float[] actual)
    {
        double signal = 0, noise = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            signal += (double)reference[i] * reference[i];
            noise += ((double)reference[i] - actual[i]) * ((double)reference[i] - actual[i]);
        }

        return 10 * Math.Log10(signal / Math.Max(noise, 1e-30));
    }

    private static Dictionary<string, float[]> Parameters(TransformerEncoderLayer layer) =>
        layer.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().contiguous().data<float>().ToArray());

    /// <summary>
    /// The encoder layer as libtorch computes it, with TorchSharp float ops, except that each of the four projections is
    /// a dynamic Linear of the layer's own weights: the computation the int8 layer must reproduce.
    /// </summary>
    private static Tensor Reference(TransformerEncoderLayer layer, int heads, bool gelu, Tensor src, Tensor? boolMask, Tensor? padding, QuantBackend backend)
    {
        Dictionary<string, float[]> p = Parameters(layer);
        long length = src.shape[0], batch = src.shape[1];
        int d = (int)src.shape[2], ff = p["linear1.bias"].Length, headDim = d / heads;
        DynamicQuantizedLinear Projection(string name, int rows, int columns, bool relu = false) =>
            DynamicQuantizedLinear.FromWeights("Reference", name, p[name + ".weight"], rows, columns, p[name + ".bias"], backend, fusedRelu: relu);
        DynamicQuantizedLinear inProj = DynamicQuantizedLinear.FromWeights("Reference", "in_proj", p["self_attn.in_proj_weight"], 3 * d, d, p["self_attn.in_proj_bias"], backend);
        DynamicQuantizedLinear outProj = Projection("self_attn.out_proj", d, d);
        DynamicQuantizedLinear linear1 = Projection("linear1", ff, d, relu: !gelu);
        DynamicQuantizedLinear linear2 = Projection("linear2", d, ff);

        Tensor[] qkv = inProj.Forward(src).chunk(3, -1);
        Tensor Split(Tensor t) => t.contiguous().view(length, batch * heads, headDim).transpose(0, 1);
        Tensor q = Split(qkv[0] * (1.0 / Math.Sqrt(headDim))), k = Split(qkv[1]), v = Split(qkv[2]);
        Tensor scores = torch.bmm(q, k.transpose(1, 2));
        if (boolMask is not null)
        {
            // libtorch's C++ attention adds a bool src_mask as 0/1 (it does not mask with it), and the layer does the same.
            scores = scores + boolMask.to_type(ScalarType.Float32);
        }

        if (padding is not null)
        {
            Tensor perHead = padding.unsqueeze(1).expand(batch, heads, length).reshape(batch * heads, 1, length);
            scores = scores.masked_fill(perHead, double.NegativeInfinity);
        }

        Tensor attended = torch.bmm(scores.softmax(-1), v).transpose(0, 1).contiguous().view(length, batch, d);
        Tensor Norm(Tensor t, string name) => nn.functional.layer_norm(t, new long[] { d }, torch.tensor(p[name + ".weight"]), torch.tensor(p[name + ".bias"]), 1e-5);
        Tensor x = Norm(src + outProj.Forward(attended), "norm1");
        Tensor hidden = linear1.Forward(x);
        if (gelu)
        {
            hidden = nn.functional.gelu(hidden);
        }

        return Norm(x + linear2.Forward(hidden), "norm2");
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(4, true)]
    [InlineData(8, true)]
    public void The_head_count_and_activation_torchsharp_hides_are_identified_from_the_layer_s_output(int heads, bool gelu)
    {
        torch.manual_seed(180 + heads);
        using TransformerEncoderLayer layer = nn.TransformerEncoderLayer(16, heads, 24, 0.1, gelu ? nn.Activations.GELU : nn.Activations.ReLU);
        layer.eval();
        Assert.Equal((heads, gelu ? EncoderActivation.GELU : EncoderActivation.ReLU), DynamicQuantizedTransformerEncoderLayer.Identify("M.layer", layer));

        // In training mode the dropout makes the output random: refused, saying to call eval().
        layer.train();
        var refused = Assert.Throws<NotSupportedException>(() => DynamicQuantizedTransformerEncoderLayer.Identify("M.layer", layer));
        Assert.Contains("model.eval()", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(QuantBackend.X86, 2, false)]
    [InlineData(QuantBackend.Qnnpack, 4, true)]
    public void The_dynamic_layer_follows_torch_ops_around_dynamic_linears_and_stays_close_to_the_float_layer(QuantBackend backend, int heads, bool gelu)
    {
        torch.manual_seed(185);
        using TransformerEncoderLayer layer = nn.TransformerEncoderLayer(16, heads, 32, 0.1, gelu ? nn.Activations.GELU : nn.Activations.ReLU);
        layer.eval();
        DynamicQuantizedTransformerEncoderLayer int8 = DynamicQuantizedTransformerEncoderLayer.FromModule("M", "layer", layer, backend);
        using var noGrad = torch.no_grad();
        using Tensor src = torch.randn(7, 3, 16);
        using Tensor padding = torch.tensor(new[] { false, false, false, false, false, false, false, false, false, false, false, false, true, true, false, false, false, false, false, false, true }, new long[] { 3, 7 });
        using Tensor causal = torch.ones(7, 7, dtype: ScalarType.Bool).triu(1);

        // What TorchSharp's float layer does with a bool src_mask: adds it (0/1); with a float one, adds it (−∞ masks).
        using Tensor floatCausal = torch.zeros(7, 7).masked_fill(causal, double.NegativeInfinity);
        Assert.Equal(layer.call(src, causal.to_type(ScalarType.Float32)).data<float>().ToArray(), layer.call(src, causal).data<float>().ToArray());
        float[] masked = int8.Forward(src, floatCausal, null).data<float>().ToArray();
        Assert.True(SqnrDb(layer.call(src, floatCausal).data<float>().ToArray(), masked) > 25, "a float −∞ mask masks");

        foreach ((Tensor? mask, Tensor? pad) in new (Tensor?, Tensor?)[] { (null, null), (null, padding), (causal, null), (causal, padding) })
        {
            float[] actual = int8.Forward(src, mask, pad).data<float>().ToArray();
            float[] expected = Reference(layer, heads, gelu, src, mask, pad, backend).data<float>().ToArray();
            // The float parts sum in another order than libtorch's kernels (about 1e-6 relative), which can move a later
            // projection's per-call input range and so flip a rounding of its quantized input: a flip moves an output
            // before LayerNorm by one input step times a weight (both about 1e-2 here). The values are LayerNorm'd (about 1).
            float worst = expected.Zip(actual, (e, a) => MathF.Abs(e - a)).Max();
            Assert.True(worst <= 2e-3f, $"mask {mask is not null}, padding {pad is not null}: largest difference {worst}");

            float[] floatLayer = layer.call(src, mask, pad).data<float>().ToArray();
            Assert.True(SqnrDb(floatLayer, actual) > 25, $"SQNR against the float layer {SqnrDb(floatLayer, actual):F1} dB");
        }

        // Bad masks are refused naming the layer and the shape expected.
        var badMask = Assert.Throws<ArgumentException>(() => int8.Forward(src, torch.zeros(6, 6), null));
        Assert.Contains("M.layer: expected src_mask as a Bool or Float32 [7, 7]", badMask.Message, StringComparison.Ordinal);
        var badPadding = Assert.Throws<ArgumentException>(() => int8.Forward(src, null, torch.zeros(7, 3, dtype: ScalarType.Bool)));
        Assert.Contains("M.layer: expected src_key_padding_mask as a Bool [3, 7]", badPadding.Message, StringComparison.Ordinal);
        var batchFirst = Assert.Throws<ArgumentException>(() => int8.Forward(torch.randn(3, 7, 8)));
        Assert.Contains("[length, batch, 16] (sequence first", batchFirst.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Under_a_static_qconfig_the_encoder_layers_run_in_float_and_give_the_float_model_s_result()
    {
        torch.manual_seed(186);
        using var model = new TinyEncoderClassifier(30, 16, 2, 32, 2, 4);
        model.eval();
        TinyEncoderClassifier.Observed observed = model.Prepare(new QConfigMapping(null));
        string summary = observed.Summary();
        Assert.Contains("float    2 x TransformerEncoderLayer: QuantGen has no static int8 op for TransformerEncoderLayer (QConfig.Dynamic() gives it dynamic int8 projections)", summary, StringComparison.Ordinal);
        Assert.Contains("(first: layers.0,", summary, StringComparison.Ordinal);

        TinyEncoderClassifier.Quantized int8 = observed.Convert();
        using Tensor tokens = Tokens(4, 9, 30, 1, padded: 3);
        float[] expected;
        using (torch.no_grad())
        {
            expected = model.forward(tokens).data<float>().ToArray();
        }

        Assert.Equal(expected, int8.forward(tokens).data<float>().ToArray());
    }

    [Theory]
    [InlineData(QuantBackend.X86, false)]
    [InlineData(QuantBackend.X86, true)]
    [InlineData(QuantBackend.Qnnpack, false)]
    public void A_dynamic_qconfig_makes_each_encoder_layer_the_dynamic_layer_bit_for_bit_and_it_saves_and_loads(QuantBackend backend, bool perChannel)
    {
        torch.manual_seed(187);
        using var model = new TinyEncoderClassifier(30, 16, 4, 32, 2, 4, nn.Activations.GELU);
        model.eval();
        QConfig dynamic = QConfig.Dynamic(backend, perChannel);
        QConfigMapping mapping = new QConfigMapping(QConfig.For(backend))
            .SetModuleType("Embedding", QConfig.FloatQParamsWeightOnly)
            .SetModuleType("TransformerEncoderLayer", dynamic)
            .SetModuleType("Linear", dynamic);
        TinyEncoderClassifier.Observed observed = model.Prepare(mapping);
        Assert.Contains("dyn      2 x TransformerEncoderLayer: dynamic quantization", observed.Summary(), StringComparison.Ordinal);
        TinyEncoderClassifier.Quantized int8 = observed.Convert();

        // The same layers composed by hand: the 8-bit table, each encoder layer's dynamic form, the mean, the dynamic head.
        var children = model.named_children().ToDictionary(c => c.name, c => c.module);
        var layers = (ModuleList<TransformerEncoderLayer>)children["layers"];
        QuantizedEmbedding table = QuantizedEmbedding.FromEmbedding("TinyEncoderClassifier", "embedding", (Embedding)children["embedding"]);
        DynamicQuantizedTransformerEncoderLayer[] encoders = Enumerable.Range(0, 2)
            .Select(i => DynamicQuantizedTransformerEncoderLayer.FromModule("TinyEncoderClassifier", $"layers.{i}", layers[i], backend, perChannel)).ToArray();
        Assert.All(encoders, e => Assert.Equal((4, EncoderActivation.GELU), (e.Heads, e.Activation)));
        DynamicQuantizedLinear head = DynamicQuantizedLinear.FromLinear("TinyEncoderClassifier", "head", (Linear)children["head"], backend, perChannel);

        using Tensor tokens = Tokens(3, 8, 30, 2, padded: 2);
        float[] expected;
        using (torch.no_grad())
        {
            Tensor padding = tokens.eq(TinyEncoderClassifier.Padding);
            Tensor x = table.Forward(tokens).transpose(0, 1);
            foreach (DynamicQuantizedTransformerEncoderLayer encoder in encoders)
            {
                x = encoder.Forward(x.contiguous(), null, padding);
            }

            expected = head.Forward(x.mean(new long[] { 0 })).data<float>().ToArray();
        }

        float[] actual = int8.forward(tokens).data<float>().ToArray();
        Assert.Equal(expected, actual);

        var file = new MemoryStream();
        int8.Save(file);
        TinyEncoderClassifier.Quantized loaded = TinyEncoderClassifier.Quantized.Load(new MemoryStream(file.ToArray()));
        Assert.Equal(actual, loaded.forward(tokens).data<float>().ToArray());

        // ONNX export refuses the model (the encoder layers' padding mask is C# of forward) rather than write something else.
        var export = Assert.Throws<NotSupportedException>(() => QuantGen.Onnx.OnnxExporter.Export(int8, Path.Combine(Path.GetTempPath(), $"qg-encoder-{Guid.NewGuid():N}.onnx")));
        Assert.StartsWith("TinyEncoderClassifier.", export.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_directly_called_layer_with_an_attention_mask_converts_saves_and_refuses_a_forged_head_count()
    {
        torch.manual_seed(188);
        using var model = new CausalEncoder(12, 3);
        model.eval();
        CausalEncoder.Quantized int8 = model.Prepare(new QConfigMapping(QConfig.X86).SetModuleName("encoder", QConfig.Dynamic()).SetModuleName("head", QConfig.Dynamic())).Convert();

        using Tensor x = torch.randn(6, 2, 12);
        var encoder = (TransformerEncoderLayer)model.named_children().Single(c => c.name == "encoder").module;
        DynamicQuantizedTransformerEncoderLayer reference = DynamicQuantizedTransformerEncoderLayer.FromModule("CausalEncoder", "encoder", encoder, QuantBackend.X86);
        Assert.Equal(3, reference.Heads);
        DynamicQuantizedLinear head = DynamicQuantizedLinear.FromLinear("CausalEncoder", "head", (Linear)model.named_children().Single(c => c.name == "head").module, QuantBackend.X86);
        float[] expected = head.Forward(reference.Forward(x, torch.ones(6, 6, dtype: ScalarType.Bool).triu(1))).data<float>().ToArray();
        Assert.Equal(expected, int8.forward(x).data<float>().ToArray());

        var stream = new MemoryStream();
        int8.Save(stream);
        byte[] file = stream.ToArray();
        var record = QuantGen.Tests.Serialization.FileLayout.Records(file).Single(r => r.Name == "encoder");
        // The constants follow the kind (u16) and text (empty string, u16 0) and the count (u32 8): d_model, then nhead.
        int heads = record.PayloadAt + 2 + 2 + 4 + 8;
        Assert.Equal(3L, BitConverter.ToInt64(file, heads));
        BitConverter.GetBytes(5L).CopyTo(file, heads);
        var refused = Assert.Throws<QGenFormatException>(() => CausalEncoder.Quantized.Load(new MemoryStream(QuantGen.Tests.Serialization.FileLayout.Reseal(file))));
        Assert.Contains("encoder", refused.Message, StringComparison.Ordinal);
        Assert.Contains("5 heads", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_transformer_encoder_stack_in_the_torchsharp_example_s_form_runs_float_or_dynamic_layer_by_layer()
    {
        torch.manual_seed(189);
        using var model = new TinyLanguageModel(40, 16, 4, 32, 3);
        model.eval();
        using Tensor tokens = torch.tensor(Enumerable.Range(0, 18).Select(i => (long)((i * 11) % 40)).ToArray(), new long[] { 6, 3 });

        // No qconfig: every op float, the model's own result.
        TinyLanguageModel.Quantized asFloat = model.Prepare(new QConfigMapping(null)).Convert();
        float[] expected;
        using (torch.no_grad())
        {
            expected = model.forward(tokens).data<float>().ToArray();
        }

        Assert.Equal(expected, asFloat.forward(tokens).data<float>().ToArray());

        // Dynamic: the encoder's three layers (4 heads, ReLU, identified through the stack) and the decoder.
        TinyLanguageModel.Observed observed = model.Prepare(new QConfigMapping(null).SetModuleType("TransformerEncoder", QConfig.Dynamic()).SetModuleType("Linear", QConfig.Dynamic()));
        Assert.Contains("dyn      1 x TransformerEncoder: dynamic quantization", observed.Summary(), StringComparison.Ordinal);
        TinyLanguageModel.Quantized int8 = observed.Convert();
        var children = model.named_children().ToDictionary(c => c.name, c => c.module);
        DynamicQuantizedTransformerEncoder stack = DynamicQuantizedTransformerEncoder.FromModule("TinyLanguageModel", "transformer_encoder", (TransformerEncoder)children["transformer_encoder"], QuantBackend.X86);
        Assert.Equal(3, stack.Layers.Count);
        Assert.All(stack.Layers, l => Assert.Equal((4, EncoderActivation.ReLU), (l.Heads, l.Activation)));
        DynamicQuantizedLinear decoder = DynamicQuantizedLinear.FromLinear("TinyLanguageModel", "decoder", (Linear)children["decoder"], QuantBackend.X86);
        float[] composed;
        using (torch.no_grad())
        {
            Tensor src = ((PositionalEncoding)children["pos_encoder"]).call(((Embedding)children["encoder"]).call(tokens) * MathF.Sqrt(16));
            composed = decoder.Forward(stack.Forward(src, torch.ones(6, 6, dtype: ScalarType.Bool).triu(1))).data<float>().ToArray();
        }

        float[] actual = int8.forward(tokens).data<float>().ToArray();
        Assert.Equal(composed, actual);
        Assert.True(SqnrDb(expected, actual) > 20, $"SQNR against the float model {SqnrDb(expected, actual):F1} dB");

        // The positional encoding is a module of the test's whose forward reads a tensor member: it runs in float and a
        // file cannot hold it, which Save says by name.
        var refused = Assert.Throws<NotSupportedException>(() => int8.Save(new MemoryStream()));
        Assert.Contains("pos_encoder", refused.Message, StringComparison.Ordinal);
    }
}
