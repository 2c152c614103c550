using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using QuantGen.Dynamic;
using QuantGen.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// TorchSharp's MultiheadAttention called in a user's forward (self-attention in a pre-norm block, cross-attention,
/// attention pooling with its weights): float without a qconfig for it, and under QConfig.Dynamic() int8 projections
/// around float32 scores and softmax, checked against an attention recomputed here with TorchSharp float ops on the
/// dequantized weights and per-call fake-quantized inputs.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class AttentionBindingTests
{
    private static Dictionary<string, Tensor> Parameters(nn.Module module) =>
        module.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().contiguous());

    /// <summary>PyTorch's per-tensor symmetric qint8 weight (MinMax, divisor 127.5, times the float32 reciprocal), dequantized.</summary>
    private static Tensor FakeQuantizedWeight(Tensor weight)
    {
        float scale = Math.Max(weight.abs().max().item<float>() / 127.5f, 1.1920929e-07f);
        return (weight * (1f / scale)).round().clamp(-128, 127) * scale;
    }

    /// <summary>
    /// The X86 preset's per-call input quantization (quint8 0..127 from the whole input's range, zero point rounded, added
    /// before rounding the values, times the float32 reciprocal of the scale), dequantized: docs/numerics.md §8 written
    /// with TorchSharp ops.
    /// </summary>
    private static Tensor FakeQuantizedInput(Tensor x)
    {
        float min = Math.Min(x.min().item<float>(), 0f), max = Math.Max(x.max().item<float>(), 0f);
        float scale = (float)(((double)max - min) / 127);
        float zeroPoint = Math.Clamp(MathF.Round(-min / scale, MidpointRounding.ToEven), 0, 127);
        return ((x * (1f / scale)) + zeroPoint).round().clamp(0, 255).sub(zeroPoint) * scale;
    }

    private static Tensor DynamicLinear(Tensor x, Tensor weight, Tensor? bias) =>
        nn.functional.linear(FakeQuantizedInput(x), FakeQuantizedWeight(weight), bias);

    /// <summary>
    /// libtorch's multi-head attention (sequence first) with each projection a fake-quantized linear: what the dynamic
    /// layer must compute. Returns the output and the head-averaged weights.
    /// </summary>
    private static (Tensor Output, Tensor Weights) ReferenceAttention(nn.Module attention, int heads, Tensor query, Tensor key, Tensor value, Tensor? padding = null, Tensor? additive = null)
    {
        Dictionary<string, Tensor> p = Parameters(attention);
        long targetLength = query.shape[0], sourceLength = key.shape[0], batch = query.shape[1];
        int d = (int)query.shape[2], headDim = d / heads;
        // The packed in_proj is quantized as one weight (one scale), then applied in thirds to query, key and value.
        Tensor inWeight = FakeQuantizedWeight(p["in_proj_weight"]);
        Tensor[] weights = inWeight.chunk(3, 0), biases = p["in_proj_bias"].chunk(3, 0);
        Tensor Project(Tensor input, int part) => nn.functional.linear(FakeQuantizedInput(input), weights[part], biases[part]);
        Tensor Split(Tensor t, long length) => t.contiguous().view(length, batch * heads, headDim).transpose(0, 1);
        Tensor q = Split(Project(query, 0) * (1.0 / Math.Sqrt(headDim)), targetLength);
        Tensor k = Split(Project(key, 1), sourceLength), v = Split(Project(value, 2), sourceLength);
        Tensor scores = torch.bmm(q, k.transpose(1, 2));
        if (additive is not null)
        {
            scores = scores + (additive.dtype == ScalarType.Bool ? additive.to_type(ScalarType.Float32) : additive);
        }

        if (padding is not null)
        {
            scores = scores.view(batch, heads, targetLength, sourceLength).masked_fill(padding.view(batch, 1, 1, sourceLength), double.NegativeInfinity).view(batch * heads, targetLength, sourceLength);
        }

        Tensor probabilities = scores.softmax(-1);
        Tensor attended = torch.bmm(probabilities, v).transpose(0, 1).contiguous().view(targetLength, batch, d);
        return (DynamicLinear(attended, p["out_proj.weight"], p["out_proj.bias"]), probabilities.view(batch, heads, targetLength, sourceLength).mean(new long[] { 1 }));
    }

    private static Tensor Dynamic(Linear linear, Tensor x) => DynamicLinear(x, linear.weight!.detach(), linear.bias?.detach());

    private static float Worst(Tensor expected, Tensor actual) => (expected - actual).abs().max().item<float>();

    private static nn.Module Child(nn.Module model, string name) => model.named_children().Single(c => c.name == name).module;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void The_head_count_torchsharp_hides_is_identified_from_the_module_s_output(int heads)
    {
        torch.manual_seed(300 + heads);
        using MultiheadAttention attention = nn.MultiheadAttention(16, heads);
        attention.eval();
        Assert.Equal(heads, DynamicQuantizedMultiheadAttention.Identify("M.attn", attention));

        attention.train();
        var refused = Assert.Throws<NotSupportedException>(() => DynamicQuantizedMultiheadAttention.Identify("M.attn", attention));
        Assert.Contains("model.eval()", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Configurations_without_a_dynamic_form_are_refused_by_name()
    {
        using MultiheadAttention separate = nn.MultiheadAttention(8, 2, kdim: 4, vdim: 6);
        using MultiheadAttention biasKv = nn.MultiheadAttention(8, 2, add_bias_kv: true);
        using MultiheadAttention zeroAttn = nn.MultiheadAttention(8, 2, add_zero_attn: true);
        foreach (MultiheadAttention m in new[] { separate, biasKv, zeroAttn })
        {
            m.eval();
        }

        Assert.Contains("kdim or vdim differs from embed_dim", Assert.Throws<NotSupportedException>(() => DynamicQuantizedMultiheadAttention.FromModule("M", "attn", separate, QuantBackend.X86)).Message, StringComparison.Ordinal);
        Assert.Contains("add_bias_kv", Assert.Throws<NotSupportedException>(() => DynamicQuantizedMultiheadAttention.FromModule("M", "attn", biasKv, QuantBackend.X86)).Message, StringComparison.Ordinal);
        Assert.Contains("M.attn: TorchSharp does not expose", Assert.Throws<NotSupportedException>(() => DynamicQuantizedMultiheadAttention.FromModule("M", "attn", zeroAttn, QuantBackend.X86)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_dynamic_layer_follows_fake_quantized_torch_ops_for_every_mask_and_averages_the_weights_over_heads()
    {
        torch.manual_seed(310);
        const int heads = 4, d = 16, length = 6, sourceLength = 5, batch = 3;
        using MultiheadAttention attention = nn.MultiheadAttention(d, heads);
        attention.eval();
        DynamicQuantizedMultiheadAttention int8 = DynamicQuantizedMultiheadAttention.FromModule("M", "attn", attention, QuantBackend.X86);
        Assert.Equal(heads, int8.Heads);
        using var noGrad = torch.no_grad();
        Tensor x = torch.randn(length, batch, d), memory = torch.randn(sourceLength, batch, d), other = torch.randn(sourceLength, batch, d);
        Tensor padding = torch.zeros(batch, sourceLength, dtype: ScalarType.Bool);
        padding[1, 4] = torch.tensor(true);
        padding[2, 0] = torch.tensor(true);
        Tensor boolMask = torch.rand(length, sourceLength).lt(0.3);
        Tensor floatMask = torch.zeros(length, sourceLength).masked_fill(boolMask, double.NegativeInfinity);
        Tensor perHead = torch.randn(batch * heads, length, sourceLength);
        Tensor perHeadBool = torch.rand(batch * heads, length, sourceLength).lt(0.5);

        var cases = new (Tensor Query, Tensor Key, Tensor Value, Tensor? Padding, Tensor? Mask)[]
        {
            (x, x, x, null, null),
            (x, memory, memory, padding, null),
            (x, memory, other, null, floatMask),
            (x, memory, memory, padding, boolMask),
            (x, memory, memory, null, perHead),
            (x, memory, memory, padding, perHeadBool),
        };
        for (int c = 0; c < cases.Length; c++)
        {
            (Tensor query, Tensor key, Tensor value, Tensor? pad, Tensor? mask) = cases[c];
            (Tensor output, Tensor? weights) = int8.Forward(query, key, value, pad, needWeights: true, mask);
            (Tensor expectedOutput, Tensor expectedWeights) = ReferenceAttention(attention, heads, query, key, value, pad, mask);
            // The float sums run in another order than libtorch's bmm and softmax (~1e-7 here). A rounding of a per-call
            // quantized input flipped by that would move an output by a whole input step (~3e-3): this bound would fail.
            Assert.True(Worst(expectedOutput, output) <= 1e-5f, $"case {c}: output differs by {Worst(expectedOutput, output)}");
            Assert.True(Worst(expectedWeights, weights!) <= 1e-5f, $"case {c}: weights differ by {Worst(expectedWeights, weights!)}");
        }

        // The 2-D masks and the padding are what TorchSharp's float module computes too (it adds a bool mask as 0/1).
        (Tensor floatOutput, Tensor floatWeights) = attention.call(x, memory, memory, padding, true, boolMask);
        (Tensor dynamicOutput, Tensor? dynamicWeights) = int8.Forward(x, memory, memory, padding, true, boolMask);
        Assert.True(Worst(floatOutput, dynamicOutput) <= 0.1f * floatOutput.abs().max().item<float>(), $"int8 against float: {Worst(floatOutput, dynamicOutput)}");
        Assert.True(Worst(floatWeights, dynamicWeights!) <= 0.02f);

        // need_weights false returns no weights; the projections of q != k = v equal the packed projection's (one input:
        // the same qparams, each output its own row's dot product).
        Assert.Null(int8.Forward(x, memory, memory, null, needWeights: false, null).Weights);
        Assert.Equal(int8.Forward(x, x, x).Output.data<float>().ToArray(), int8.Forward(x, x.clone(), x.clone()).Output.data<float>().ToArray());
    }

    [Fact]
    public void Wrong_shapes_are_refused_naming_the_layer_and_what_was_expected()
    {
        torch.manual_seed(311);
        using MultiheadAttention attention = nn.MultiheadAttention(8, 2);
        attention.eval();
        DynamicQuantizedMultiheadAttention int8 = DynamicQuantizedMultiheadAttention.FromModule("M", "attn", attention, QuantBackend.X86);
        Tensor x = torch.randn(5, 3, 8);
        Assert.Contains("M.attn: expected query as a Float32 [length, batch, 8]", Assert.Throws<ArgumentException>(() => int8.Forward(torch.randn(5, 3, 7), x, x)).Message, StringComparison.Ordinal);
        Assert.Contains("M.attn: expected value as a Float32 [5, 3, 8]", Assert.Throws<ArgumentException>(() => int8.Forward(x, x, torch.randn(4, 3, 8))).Message, StringComparison.Ordinal);
        Assert.Contains("got Float32 [4, 3, 7]", Assert.Throws<ArgumentException>(() => int8.Forward(x, torch.randn(4, 3, 7), torch.randn(4, 3, 7))).Message, StringComparison.Ordinal);
        Assert.Contains("M.attn: expected attn_mask as a Bool or Float32 [5, 5] or [6, 5, 5]", Assert.Throws<ArgumentException>(() => int8.Forward(x, x, x, null, true, torch.zeros(4, 5))).Message, StringComparison.Ordinal);
        Assert.Contains("M.attn: expected key_padding_mask as a Bool [3, 5]", Assert.Throws<ArgumentException>(() => int8.Forward(x, x, x, torch.zeros(5, 3, dtype: ScalarType.Bool))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_qconfig_for_it_each_model_runs_torchsharp_s_attention_and_gives_the_float_result()
    {
        torch.manual_seed(312);
        using var block = new PreNormAttentionBlock(16, 4, 32);
        using var cross = new CrossAttentionBlock(16, 2, 5);
        using var pooling = new AttentionPooling(16, 4, 3);
        Tensor x = torch.randn(7, 2, 16);
        x[5, 1] = torch.zeros(16);
        x[6, 1] = torch.zeros(16);
        foreach (nn.Module<Tensor, Tensor> model in new nn.Module<Tensor, Tensor>[] { block, cross, pooling })
        {
            model.eval();
        }

        float[] Float(nn.Module<Tensor, Tensor> model)
        {
            using var noGrad = torch.no_grad();
            return model.forward(x).data<float>().ToArray();
        }

        PreNormAttentionBlock.Observed observedBlock = block.Prepare(new QConfigMapping(null));
        Assert.Contains("MultiheadAttention: QuantGen has no static int8 op for MultiheadAttention (QConfig.Dynamic() gives it dynamic int8 projections)", observedBlock.Summary(), StringComparison.Ordinal);
        Assert.Equal(Float(block), observedBlock.Convert().forward(x).data<float>().ToArray());
        Assert.Equal(Float(cross), cross.Prepare(new QConfigMapping(null)).Convert().forward(x).data<float>().ToArray());
        Assert.Equal(Float(pooling), pooling.Prepare(new QConfigMapping(null)).Convert().forward(x).data<float>().ToArray());
    }

    [Fact]
    public void A_dynamic_qconfig_quantizes_the_pre_norm_block_s_attention_and_it_saves_and_loads_bit_for_bit()
    {
        torch.manual_seed(313);
        using var block = new PreNormAttentionBlock(16, 4, 32);
        block.eval();
        PreNormAttentionBlock.Observed observed = block.Prepare(new QConfigMapping(null).SetModuleType("MultiheadAttention", QConfig.Dynamic()));
        Assert.Contains("dyn      1 x MultiheadAttention: dynamic quantization", observed.Summary(), StringComparison.Ordinal);
        PreNormAttentionBlock.Quantized int8 = observed.Convert();
        Tensor x = torch.randn(6, 3, 16);
        Tensor actual = int8.forward(x);

        // The block recomputed: TorchSharp's own float modules around the fake-quantized attention.
        var m = block.named_children().ToDictionary(c => c.name, c => c.module);
        Tensor expected;
        using (torch.no_grad())
        {
            Tensor h = ((LayerNorm)m["norm1"]).call(x);
            Tensor y = x + ReferenceAttention(m["attn"], 4, h, h, h).Output;
            expected = y + ((Linear)m["ff2"]).call(nn.functional.relu(((Linear)m["ff1"]).call(((LayerNorm)m["norm2"]).call(y))));
        }

        // As in the layer test: the float sums of the attention and LayerNorm run in another order than libtorch's.
        Assert.True(Worst(expected, actual) <= 1e-5f, $"largest difference {Worst(expected, actual)}");

        var file = new MemoryStream();
        int8.Save(file);
        PreNormAttentionBlock.Quantized loaded = PreNormAttentionBlock.Quantized.Load(new MemoryStream(file.ToArray()));
        Assert.Equal(actual.data<float>().ToArray(), loaded.forward(x).data<float>().ToArray());
        // ONNX export refuses the dynamic attention by name rather than write something else.
        var export = Assert.Throws<NotSupportedException>(() => QuantGen.Onnx.OnnxExporter.Export(int8, Path.Combine(Path.GetTempPath(), $"qg-attention-{Guid.NewGuid():N}.onnx")));
        Assert.Contains("MultiheadAttention", export.Message, StringComparison.Ordinal);
        FloatOp stored = Assert.Single(loaded.Layers.OfType<FloatOp>(), l => l.Kind == FloatOpKind.DynamicMultiheadAttention);
        Assert.StartsWith("DynamicQuantizedMultiheadAttention(embed_dim=16, num_heads=4, dtype=torch.qint8) element 0", stored.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Cross_attention_and_attention_pooling_quantize_by_layer_name_and_save_and_load_bit_for_bit()
    {
        torch.manual_seed(314);
        using var cross = new CrossAttentionBlock(16, 2, 5);
        using var pooling = new AttentionPooling(16, 4, 3);
        cross.eval();
        pooling.eval();
        Tensor x = torch.randn(7, 2, 16);
        x[6, 0] = torch.zeros(16);

        // The Linears are dynamic too: libtorch's float linear can give a first call's result one bit away from a later
        // call's, which would hide whether Save/Load keeps the attention's bits.
        QConfigMapping Mapping(string attention) => new QConfigMapping(null).SetModuleName(attention, QConfig.Dynamic()).SetModuleType("Linear", QConfig.Dynamic());
        CrossAttentionBlock.Quantized crossInt8 = cross.Prepare(Mapping("attn")).Convert();
        Tensor crossActual = crossInt8.forward(x);
        var c = cross.named_children().ToDictionary(n => n.name, n => n.module);
        Tensor crossExpected;
        using (torch.no_grad())
        {
            Tensor keys = nn.functional.relu(Dynamic((Linear)c["memory"], x));
            crossExpected = Dynamic((Linear)c["head"], ReferenceAttention(c["attn"], 2, x, keys, keys, x.abs().sum(-1).eq(0).t()).Output);
        }

        // As in the layer test: the float sums run in another order than libtorch's.
        Assert.True(Worst(crossExpected, crossActual) <= 1e-5f, $"cross: largest difference {Worst(crossExpected, crossActual)}");

        AttentionPooling.Quantized poolingInt8 = pooling.Prepare(Mapping("pool")).Convert();
        Tensor poolingActual = poolingInt8.forward(x);
        var p = pooling.named_children().ToDictionary(n => n.name, n => n.module);
        Tensor poolingExpected;
        using (torch.no_grad())
        {
            Tensor query = x.mean(new long[] { 0 }, keepdim: true);
            (Tensor pooled, Tensor weights) = ReferenceAttention(p["pool"], 4, query, x, x);
            poolingExpected = torch.cat(new[] { Dynamic((Linear)p["head"], pooled.squeeze(0)), weights.squeeze(1) }, 1);
        }

        Assert.True(Worst(poolingExpected, poolingActual) <= 1e-5f, $"pooling: largest difference {Worst(poolingExpected, poolingActual)}");

        foreach ((Func<MemoryStream, Tensor> reload, Tensor actual) in new (Func<MemoryStream, Tensor>, Tensor)[]
        {
            (s => { crossInt8.Save(s); return CrossAttentionBlock.Quantized.Load(new MemoryStream(s.ToArray())).forward(x); }, crossActual),
            (s => { poolingInt8.Save(s); return AttentionPooling.Quantized.Load(new MemoryStream(s.ToArray())).forward(x); }, poolingActual),
        })
        {
            Assert.Equal(actual.data<float>().ToArray(), reload(new MemoryStream()).data<float>().ToArray());
        }

        // A wrong embedding size reaches the dynamic layer, which names the model and the layer.
        var wrong = Assert.Throws<ArgumentException>(() => poolingInt8.forward(torch.randn(7, 2, 12)));
        Assert.Contains("AttentionPooling.pool", wrong.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_stored_attention_element_whose_constants_or_tensors_do_not_make_the_layer_is_refused_before_it_runs()
    {
        torch.manual_seed(315);
        using var pooling = new AttentionPooling(16, 4, 3);
        pooling.eval();
        AttentionPooling.Quantized int8 = pooling.Prepare(new QConfigMapping(null).SetModuleName("pool", QConfig.Dynamic())).Convert();
        FloatOp weights = Assert.Single(int8.Layers.OfType<FloatOp>(), l => l.Kind == FloatOpKind.DynamicMultiheadAttention && l.Ints[0] == 1);
        FloatOp With(Func<long[], long[]> ints, IReadOnlyList<FloatOpTensor>? tensors = null) =>
            new(weights.Model, weights.Layer, weights.Kind, weights.Text, ints(weights.Ints), weights.Floats, tensors ?? weights.Tensors, weights.Relu, weights.InputCount, weights.Output);
        long[] Set(long[] ints, int index, long value)
        {
            ints[index] = value;
            return ints;
        }

        Assert.Equal(weights.Ints, With(i => i).Ints);
        Assert.Contains("AttentionPooling.pool.attn_output_weights: a float DynamicMultiheadAttention op", Assert.Throws<ArgumentException>(() => With(i => Set(i, 9, 0))).Message, StringComparison.Ordinal);
        Assert.Contains("3 heads", Assert.Throws<ArgumentException>(() => With(i => Set(i, 2, 3))).Message, StringComparison.Ordinal);
        Assert.Contains("query is input 0", Assert.Throws<ArgumentException>(() => With(i => Set(i, 5, 1))).Message, StringComparison.Ordinal);
        Assert.Contains("every input is one of them", Assert.Throws<ArgumentException>(() => With(i => Set(Set(i, 6, 0), 7, 0))).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => With(i => i, weights.Tensors.Append(new FloatOpTensor("extra", [1], [0f])).ToArray()));
        // A weight of 200: refused as an int8 tensor's value, and (stored as float32, as format version 1 did) by the layer.
        FloatOpTensor[] forged = weights.Tensors.Select(t => t.Name == "in_proj.weight" ? t with { Values = t.Values.Select((v, k) => k == 0 ? 200f : v).ToArray() } : t).ToArray();
        Assert.Contains("Int8 values are integers in -128..127", Assert.Throws<ArgumentException>(() => With(i => i, forged)).Message, StringComparison.Ordinal);
        FloatOpTensor[] forgedFloat = forged.Select(t => t.Name == "in_proj.weight" ? t with { ElementType = FloatOpElementType.Float32 } : t).ToArray();
        Assert.Contains("qint8 weights are integers in -128..127", Assert.Throws<ArgumentException>(() => With(i => i, forgedFloat)).Message, StringComparison.Ordinal);
    }
}
