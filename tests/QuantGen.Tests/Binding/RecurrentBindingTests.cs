using System;
using System.IO;
using System.Linq;
using QuantGen.Binding;
using QuantGen.Dynamic;
using QuantGen.Modules;
using QuantGen.Serialization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// LSTM and GRU members of a model bound at Prepare: the tuple forward takes apart is captured, runs in float under a
/// static qconfig (the rest of the model in int8) and as PyTorch's dynamic int8 LSTM/GRU under QConfig.Dynamic().
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class RecurrentBindingTests
{
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

    private static Tensor Tokens(int batch, int length, int vocabulary, int seed)
    {
        var random = new Random(seed);
        long[] values = Enumerable.Range(0, batch * length).Select(_ => (long)random.Next(vocabulary)).ToArray();
        return torch.tensor(values, new long[] { batch, length });
    }

    private static LstmTextClassifier.Quantized ConvertText(LstmTextClassifier model, QConfigMapping mapping, int vocabulary = 50)
    {
        model.eval();
        LstmTextClassifier.Observed observed = model.Prepare(mapping);
        using (torch.no_grad())
        {
            for (int i = 0; i < 4; i++)
            {
                observed.forward(Tokens(6, 9, vocabulary, 300 + i)).Dispose();
            }
        }

        return observed.Convert();
    }

    [Fact]
    public void A_static_qconfig_keeps_the_lstm_and_embedding_in_float_and_quantizes_the_head()
    {
        torch.manual_seed(161);
        using var model = new LstmTextClassifier(50, 8, 12, 5);
        LstmTextClassifier.Quantized int8 = ConvertText(model, new QConfigMapping(QConfig.X86));

        string summary = model.Prepare().Summary();
        Assert.Contains("float    1 x LSTM: QuantGen has no static int8 op for LSTM (QConfig.Dynamic() makes it a dynamic int8 LSTM)", summary, StringComparison.Ordinal);
        Assert.Contains("float    1 x Embedding", summary, StringComparison.Ordinal);
        Assert.Contains("int8     1 x Linear", summary, StringComparison.Ordinal);

        using Tensor tokens = Tokens(3, 7, 50, 7);
        float[] expected, actual;
        using (torch.no_grad())
        {
            expected = model.forward(tokens).data<float>().ToArray();
        }

        actual = int8.forward(tokens).data<float>().ToArray();
        Assert.True(SqnrDb(expected, actual) > 30, $"SQNR {SqnrDb(expected, actual):F1} dB");
    }

    [Theory]
    [InlineData(QuantBackend.X86, false)]
    [InlineData(QuantBackend.Qnnpack, false)]
    [InlineData(QuantBackend.X86, true)]
    public void A_dynamic_qconfig_makes_the_lstm_and_head_the_dynamic_int8_layers_bit_for_bit(QuantBackend backend, bool perChannel)
    {
        torch.manual_seed(162);
        using var model = new LstmTextClassifier(50, 8, 12, 5);
        // PyTorch: quantize_dynamic(model, {nn.LSTM, nn.Linear}); the Embedding stays float.
        QConfig dynamic = QConfig.Dynamic(backend, perChannel);
        LstmTextClassifier.Quantized int8 = ConvertText(model, new QConfigMapping(QConfig.For(backend)).SetModuleType("LSTM", dynamic).SetModuleType("Linear", dynamic));

        using Tensor tokens = Tokens(4, 6, 50, 8);
        var embedding = (Embedding)model.named_children().Single(c => c.name == "embedding").module;
        var lstm = (LSTM)model.named_children().Single(c => c.name == "lstm").module;
        var head = (Linear)model.named_children().Single(c => c.name == "head").module;
        DynamicQuantizedLSTM int8Lstm = DynamicQuantizedLSTM.FromLSTM("LstmTextClassifier", "lstm", lstm, backend, perChannel, batchFirst: true);
        DynamicQuantizedLinear int8Head = DynamicQuantizedLinear.FromLinear("LstmTextClassifier", "head", head, backend, perChannel);
        float[] expected;
        using (torch.no_grad())
        {
            (Tensor output, Tensor _, Tensor _) = int8Lstm.Forward(embedding.forward(tokens));
            expected = int8Head.Forward(output.mean(new long[] { 1 })).data<float>().ToArray();
        }

        Assert.Equal(expected, int8.forward(tokens).data<float>().ToArray());
    }

    [Fact]
    public void The_final_state_element_is_the_one_read_and_the_model_with_no_qconfig_equals_the_float_model()
    {
        torch.manual_seed(163);
        using var model = new GruLastState(5, 7, 3);
        model.eval();
        GruLastState.Observed observed = model.Prepare(new QConfigMapping(null));
        Assert.Equal(new[] { "gru.h_n" }, observed.Graph.Ops.Where(o => o.TypeName == "GRU").Select(o => o.Name));
        using (torch.no_grad())
        {
            observed.forward(torch.randn(4, 2, 5)).Dispose();
        }

        GruLastState.Quantized converted = observed.Convert();
        using Tensor x = torch.randn(6, 3, 5);
        using (torch.no_grad())
        {
            Assert.Equal(model.forward(x).data<float>().ToArray(), converted.forward(x).data<float>().ToArray());
        }
    }

    [Fact]
    public void A_dynamic_gru_reading_h_n_equals_the_dynamic_layer_and_the_static_head_follows_it()
    {
        torch.manual_seed(164);
        using var model = new GruLastState(5, 7, 3);
        model.eval();
        GruLastState.Observed observed = model.Prepare(new QConfigMapping(QConfig.X86).SetModuleType("GRU", QConfig.Dynamic()));
        Assert.Contains("dyn      1 x GRU: dynamic quantization", observed.Summary(), StringComparison.Ordinal);
        using (torch.no_grad())
        {
            for (int i = 0; i < 4; i++)
            {
                observed.forward(torch.randn(4, 2, 5)).Dispose();
            }
        }

        GruLastState.Quantized int8 = observed.Convert();
        var gru = (GRU)model.named_children().Single(c => c.name == "gru").module;
        DynamicQuantizedGRU int8Gru = DynamicQuantizedGRU.FromGRU("GruLastState", "gru", gru, QuantBackend.X86, batchFirst: false);
        using Tensor x = torch.randn(6, 3, 5);
        float[] expected, actual;
        using (torch.no_grad())
        {
            (Tensor _, Tensor h) = int8Gru.Forward(x);
            expected = model.forward(x).data<float>().ToArray();
            float[] gruFloatHead = int8.forward(x).data<float>().ToArray();
            actual = gruFloatHead;

            // The dynamic GRU's state, through the float head, is what the int8 model approximates (its head is static int8).
            Tensor last = h[-1];
            var fc1 = (Linear)model.named_children().Single(c => c.name == "fc1").module;
            var fc2 = (Linear)model.named_children().Single(c => c.name == "fc2").module;
            float[] throughFloatHead = fc2.forward(nn.functional.relu(fc1.forward(last))).data<float>().ToArray();
            Assert.True(SqnrDb(throughFloatHead, actual) > 25, $"SQNR {SqnrDb(throughFloatHead, actual):F1} dB");
        }

        Assert.True(SqnrDb(expected, actual) > 20, $"SQNR vs float {SqnrDb(expected, actual):F1} dB");
    }

    [Fact]
    public void Elements_of_one_call_run_the_module_once_and_give_the_float_results()
    {
        torch.manual_seed(165);
        using var model = new LstmOutputsAndState(4, 6, 3);
        model.eval();
        LstmOutputsAndState.Observed observed = model.Prepare(new QConfigMapping(null));
        BoundOp[] lstmOps = observed.Graph.Ops.Where(o => o.TypeName == "LSTM").ToArray();
        Assert.Equal(new[] { "lstm", "lstm.h_n" }, lstmOps.Select(o => o.Name));
        Assert.Same(lstmOps[0].TupleCall, lstmOps[1].TupleCall);

        using Tensor x = torch.randn(2, 5, 4);
        Tensor[] first = lstmOps[0].TupleCall!.Run(x);
        Assert.Same(first, lstmOps[0].TupleCall!.Run(x));
        using Tensor other = x.clone();
        Assert.NotSame(first, lstmOps[0].TupleCall!.Run(other));

        using (torch.no_grad())
        {
            observed.forward(x).Dispose();
            LstmOutputsAndState.Quantized converted = observed.Convert();
            Assert.Equal(model.forward(x).data<float>().ToArray(), converted.forward(x).data<float>().ToArray());
        }
    }

    [Fact]
    public void A_token_model_refuses_quantized_and_array_inputs_and_saves_its_float_embedding()
    {
        torch.manual_seed(166);
        using var model = new LstmTextClassifier(20, 4, 6, 2);
        LstmTextClassifier.Quantized int8 = ConvertText(model, new QConfigMapping(null).SetModuleType("LSTM", QConfig.Dynamic()), vocabulary: 20);

        var quantized = Assert.Throws<InvalidOperationException>(() => int8.forward(QTensor.Quantize(new float[] { 1, 2 }, new[] { 1, 2 }, QParams.PerTensor(0.1f, 0, QuantDType.QUInt8))));
        Assert.Contains("LstmTextClassifier: this model takes integer token indices", quantized.Message, StringComparison.Ordinal);
        var array = Assert.Throws<InvalidOperationException>(() => int8.forward(new float[] { 1, 2 }, new[] { 1, 2 }, out _));
        Assert.Contains("forward(float[])", array.Message, StringComparison.Ordinal);
        // The Embedding stays float here: stored as its weight, it gives the same results after Load.
        var file = new MemoryStream();
        int8.Save(file);
        LstmTextClassifier.Quantized loaded = LstmTextClassifier.Quantized.Load(new MemoryStream(file.ToArray()));
        using Tensor tokens = Tokens(2, 5, 20, 12);
        Assert.Equal(int8.forward(tokens).data<float>().ToArray(), loaded.forward(tokens).data<float>().ToArray());
    }

    [Fact]
    public void A_token_model_with_a_weight_only_embedding_saves_and_loads_and_still_takes_only_indices()
    {
        torch.manual_seed(173);
        using var model = new LstmTextClassifier(40, 6, 8, 3);
        QConfigMapping mapping = new QConfigMapping(null)
            .SetModuleType("Embedding", QConfig.FloatQParamsWeightOnly)
            .SetModuleType("LSTM", QConfig.Dynamic())
            .SetModuleType("Linear", QConfig.Dynamic());
        LstmTextClassifier.Quantized int8 = ConvertText(model, mapping, vocabulary: 40);
        var file = new MemoryStream();
        int8.Save(file);
        LstmTextClassifier.Quantized loaded = LstmTextClassifier.Quantized.Load(new MemoryStream(file.ToArray()));

        using Tensor tokens = Tokens(3, 10, 40, 11);
        Assert.Equal(int8.forward(tokens).data<float>().ToArray(), loaded.forward(tokens).data<float>().ToArray());
        var quantized = Assert.Throws<InvalidOperationException>(() => loaded.forward(QTensor.Quantize(new float[] { 1, 2 }, new[] { 1, 2 }, QParams.PerTensor(0.1f, 0, QuantDType.QUInt8))));
        Assert.Contains("takes integer token indices", quantized.Message, StringComparison.Ordinal);

        // An index outside the table is refused, naming the layer, rather than read out of bounds.
        using Tensor outside = torch.tensor(new long[] { 1, 40 }, new long[] { 1, 2 });
        var error = Assert.ThrowsAny<ArgumentException>(() => loaded.forward(outside));
        Assert.Contains("embedding", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_model_with_a_dynamic_lstm_saves_and_loads_with_the_same_results(bool perChannel)
    {
        torch.manual_seed(167);
        using var model = new LstmOutputsAndState(4, 6, 3);
        model.eval();
        LstmOutputsAndState.Observed observed = model.Prepare(new QConfigMapping(QConfig.X86).SetModuleName("lstm", QConfig.Dynamic(perChannel: perChannel)));
        using (torch.no_grad())
        {
            observed.forward(torch.randn(2, 5, 4)).Dispose();
        }

        LstmOutputsAndState.Quantized int8 = observed.Convert();
        var file = new MemoryStream();
        int8.Save(file);
        LstmOutputsAndState.Quantized loaded = LstmOutputsAndState.Quantized.Load(new MemoryStream(file.ToArray()));
        using Tensor x = torch.randn(3, 7, 4);
        Assert.Equal(int8.forward(x).data<float>().ToArray(), loaded.forward(x).data<float>().ToArray());

        // ONNX export writes the dynamic LSTM (tests/QuantGen.Tests/Onnx/RecurrentOnnxTests.cs), but refuses this model's
        // permute, a tensor expression of forward ONNX cannot read, by name rather than write something else.
        var export = Assert.Throws<NotSupportedException>(() => QuantGen.Onnx.OnnxExporter.Export(int8, Path.Combine(Path.GetTempPath(), $"qg-lstm-{Guid.NewGuid():N}.onnx")));
        Assert.StartsWith("LstmOutputsAndState.float: a float Function cannot be exported: it is a tensor expression of forward", export.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("LSTM", export.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_with_a_dynamic_gru_and_an_initial_state_saves_and_loads_and_a_forged_weight_is_refused_at_load()
    {
        torch.manual_seed(172);
        using var model = new GruLastState(5, 7, 3);
        model.eval();
        GruLastState.Observed observed = model.Prepare(new QConfigMapping(QConfig.Qnnpack).SetModuleType("GRU", QConfig.Dynamic(QuantBackend.Qnnpack)));
        using (torch.no_grad())
        {
            observed.forward(torch.randn(4, 2, 5)).Dispose();
        }

        GruLastState.Quantized int8 = observed.Convert();
        var file = new MemoryStream();
        int8.Save(file);
        byte[] bytes = file.ToArray();
        GruLastState.Quantized loaded = GruLastState.Quantized.Load(new MemoryStream(bytes));
        using Tensor x = torch.randn(6, 3, 5);
        Assert.Equal(int8.forward(x).data<float>().ToArray(), loaded.forward(x).data<float>().ToArray());

        // The weights take one byte each (format version 2: element type int8, code 1 in bits 5–7 of the rank byte).
        int at = IndexOfWeightValue(bytes);
        Assert.True(at > 0, "the test could not find a GRU weight value in the file");
        int rankAt = Array.LastIndexOf(bytes, (byte)(2 | (1 << 5)), at - 1, 16);
        Assert.True(rankAt > 0, "weight_ih_l0's rank byte says int8");

        // An element type code this version does not know, written back with a valid checksum: refused at load.
        byte[] changed = (byte[])bytes.Clone();
        changed[rankAt] = 2 | (6 << 5);
        var unknown = Assert.Throws<QGenFormatException>(() => GruLastState.Quantized.Load(new MemoryStream(QuantGen.Tests.Serialization.FileLayout.Reseal(changed))));
        Assert.Equal(QGenFormatError.Malformed, unknown.Error);
        Assert.Contains("tensor 'weight_ih_l0' has element type code 6", unknown.Message, StringComparison.Ordinal);

        // A weight value of 300 where qint8 holds -128..127 (a version-1 file stored the weights as float32, so one could
        // say so): refused by the op itself, naming the layer.
        string path = Path.Combine(Path.GetTempPath(), $"qg-gru-{Guid.NewGuid():N}.qgen");
        File.WriteAllBytes(path, bytes);
        FloatOp stored;
        try
        {
            stored = (FloatOp)QGenFile.ReadContents(path).Layers.First(l => l.Layer == "gru.h_n");
        }
        finally
        {
            File.Delete(path);
        }

        var tensors = stored.Tensors.Select(t => t.Name == "weight_ih_l0" ? new FloatOpTensor(t.Name, t.Shape, [300f, .. t.Values[1..]]) : t).ToArray();
        var error = Assert.Throws<ArgumentException>(() => new FloatOp(stored.Model, stored.Layer, stored.Kind, stored.Text, stored.Ints, stored.Floats, tensors, stored.Relu, stored.InputCount, stored.Output));
        Assert.Contains("gru.h_n", error.Message, StringComparison.Ordinal);
        Assert.Contains("qint8 weights are integers in -128..127", error.Message, StringComparison.Ordinal);
    }

    /// <summary>The offset of the GRU's first weight_ih value in the file (its float bytes, found after the tensor's name).</summary>
    private static int IndexOfWeightValue(byte[] file)
    {
        byte[] name = System.Text.Encoding.UTF8.GetBytes("weight_ih_l0");
        for (int i = 0; i + name.Length < file.Length; i++)
        {
            if (file.AsSpan(i, name.Length).SequenceEqual(name))
            {
                // name, then u8 rank, rank × i32 shape, u32 count, then the values.
                int rank = file[i + name.Length] & 0x1F;
                return i + name.Length + 1 + (4 * rank) + 4;
            }
        }

        return -1;
    }

    [Fact]
    public void A_weight_only_embedding_with_a_dynamic_lstm_and_head_is_quantize_dynamic_plus_the_8_bit_table_bit_for_bit()
    {
        torch.manual_seed(168);
        using var model = new LstmTextClassifier(50, 8, 12, 5);
        // PyTorch: set_object_type(nn.Embedding, float_qparams_weight_only_qconfig) beside quantize_dynamic's LSTM and Linear.
        QConfigMapping mapping = new QConfigMapping(null)
            .SetModuleType("Embedding", QConfig.FloatQParamsWeightOnly)
            .SetModuleType("LSTM", QConfig.Dynamic())
            .SetModuleType("Linear", QConfig.Dynamic());
        model.eval();
        string summary = model.Prepare(mapping).Summary();
        Assert.Contains("dyn      1 x Embedding: weight-only quantization", summary, StringComparison.Ordinal);
        Assert.Contains("4 ops after fusion, 0 in int8, 3 dynamic or weight-only, 1 in float", summary, StringComparison.Ordinal);
        LstmTextClassifier.Quantized int8 = ConvertText(model, mapping);

        using Tensor tokens = Tokens(2, 11, 50, 9);
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
    }

    [Fact]
    public void A_weight_only_qconfig_leaves_every_op_but_an_embedding_in_float()
    {
        torch.manual_seed(169);
        using var model = new GruLastState(5, 7, 3);
        model.eval();
        GruLastState.Observed observed = model.Prepare(new QConfigMapping(QConfig.FloatQParamsWeightOnly));
        Assert.Contains("its qconfig is weight-only, which quantizes Embedding layers only", observed.Summary(), StringComparison.Ordinal);
    }

    [Fact]
    public void Initial_states_built_in_forward_reach_the_float_and_the_dynamic_lstm()
    {
        torch.manual_seed(170);
        using var model = new LstmWithInitialState(30, 6);
        model.eval();
        using Tensor tokens = Tokens(5, 8, 30, 10);
        LstmWithInitialState.Observed floatOnly = model.Prepare(new QConfigMapping(null));
        Assert.Equal(3, floatOnly.Graph.Ops.Single(o => o.TypeName == "LSTM").Inputs.Length);
        using (torch.no_grad())
        {
            floatOnly.forward(tokens).Dispose();
            Assert.Equal(model.forward(tokens).data<float>().ToArray(), floatOnly.Convert().forward(tokens).data<float>().ToArray());
        }

        LstmWithInitialState.Observed observed = model.Prepare(new QConfigMapping(null).SetModuleType("LSTM", QConfig.Dynamic()));
        using (torch.no_grad())
        {
            observed.forward(tokens).Dispose();
        }

        LstmWithInitialState.Quantized int8 = observed.Convert();
        var embedding = (Embedding)model.named_children().Single(c => c.name == "embedding").module;
        var lstm = (LSTM)model.named_children().Single(c => c.name == "lstm").module;
        var dense = (Linear)model.named_children().Single(c => c.name == "dense").module;
        DynamicQuantizedLSTM int8Lstm = DynamicQuantizedLSTM.FromLSTM("LstmWithInitialState", "lstm", lstm, QuantBackend.X86, batchFirst: true);
        float[] expected, zeroStates;
        using (torch.no_grad())
        {
            Tensor x = embedding.forward(tokens);
            (Tensor output, _, _) = int8Lstm.Forward(x, (torch.full(1, 5, LstmWithInitialState.Hidden, 0.25f), torch.full(1, 5, LstmWithInitialState.Hidden, -0.5f)));
            expected = torch.sigmoid(dense.forward(output[.., -1, ..])).data<float>().ToArray();
            (Tensor fromZeros, _, _) = int8Lstm.Forward(x);
            zeroStates = torch.sigmoid(dense.forward(fromZeros[.., -1, ..])).data<float>().ToArray();
        }

        float[] actual = int8.forward(tokens).data<float>().ToArray();
        Assert.Equal(expected, actual);
        Assert.NotEqual(zeroStates, actual);
    }

    [Fact]
    public void One_converted_recurrent_model_called_from_many_threads_gives_each_call_its_own_result()
    {
        torch.manual_seed(171);
        using var model = new LstmOutputsAndState(4, 6, 3);
        model.eval();
        LstmOutputsAndState.Observed observed = model.Prepare(new QConfigMapping(QConfig.X86).SetModuleType("LSTM", QConfig.Dynamic()));
        using (torch.no_grad())
        {
            for (int i = 0; i < 3; i++)
            {
                observed.forward(torch.randn(3, 5, 4)).Dispose();
            }
        }

        LstmOutputsAndState.Quantized int8 = observed.Convert();
        Tensor[] inputs = Enumerable.Range(0, 16).Select(i => torch.randn(1 + (i % 3), 2 + (i % 5), 4)).ToArray();
        float[][] expected = inputs.Select(x => int8.forward(x).data<float>().ToArray()).ToArray();
        int mismatches = 0;
        System.Threading.Tasks.Parallel.For(0, 8 * inputs.Length, new System.Threading.Tasks.ParallelOptions { MaxDegreeOfParallelism = 8 }, call =>
        {
            int i = call % inputs.Length;
            using var scope = torch.NewDisposeScope();
            if (!int8.forward(inputs[i]).data<float>().ToArray().AsSpan().SequenceEqual(expected[i]))
            {
                System.Threading.Interlocked.Increment(ref mismatches);
            }
        });

        Assert.Equal(0, mismatches);
        foreach (Tensor x in inputs)
        {
            x.Dispose();
        }
    }

    [Fact]
    public void A_weight_only_embedding_goes_with_any_backend_and_a_dynamic_layer_must_use_the_model_s()
    {
        torch.manual_seed(175);
        using var model = new LstmTextClassifier(30, 4, 5, 2);
        model.eval();
        QConfigMapping qnnpack = new QConfigMapping(QConfig.Qnnpack)
            .SetModuleType("Embedding", QConfig.FloatQParamsWeightOnly)
            .SetModuleType("LSTM", QConfig.Dynamic(QuantBackend.Qnnpack));
        Assert.Contains("dyn      1 x Embedding", model.Prepare(qnnpack).Summary(), StringComparison.Ordinal);

        var error = Assert.Throws<ArgumentException>(() => model.Prepare(new QConfigMapping(QConfig.Qnnpack).SetModuleType("LSTM", QConfig.Dynamic())));
        Assert.Contains("module type 'LSTM' qconfig uses the X86 backend, but the model's is Qnnpack", error.Message, StringComparison.Ordinal);
    }
}
