using System;
using System.Linq;
using QuantGen.Binding;
using QuantGen.Dynamic;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// QConfig.Float16Dynamic in the mapping of models bound at Prepare (PyTorch's quantize_dynamic(..., dtype=torch.float16)):
/// Linear (fused ReLU included), LSTM and GRU become the float16-weight layers, bit for bit the layers built by hand from
/// the same modules, and within float32 rounding of TorchSharp's float model on the float16-rounded weights.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class Float16BindingTests
{
    /// <summary>
    /// The whole model against TorchSharp's float model on float16-rounded weights: the GEMM's summation order and the
    /// gates' vector exp/tanh only (a few 1e-7 per op, see Float16LayerTests); float16 rounding itself would be ~1e-4.
    /// </summary>
    private const float FloatTolerance = 1e-5f;

    private static Tensor Tokens(int batch, int length, int vocabulary, int seed)
    {
        var random = new Random(seed);
        long[] values = Enumerable.Range(0, batch * length).Select(_ => (long)random.Next(vocabulary)).ToArray();
        return torch.tensor(values, new long[] { batch, length });
    }

    private static T Member<T>(nn.Module model, string name) => (T)(object)model.named_children().Single(c => c.name == name).module;

    /// <summary>Rounds every weight of <paramref name="module"/> (and of its members) to float16 in place, by libtorch (biases unchanged).</summary>
    private static void RoundWeightsInPlace(nn.Module module)
    {
        using var noGrad = torch.no_grad();
        foreach ((string name, Parameter parameter) in module.named_parameters())
        {
            if (name[(name.LastIndexOf('.') + 1)..].StartsWith("weight", StringComparison.Ordinal))
            {
                parameter.copy_(parameter.clamp(-65504, 65504).to(ScalarType.Float16).to(ScalarType.Float32));
            }
        }
    }

    private static void AssertWithin(float[] expected, float[] actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= tolerance, $"output {i}: float model {expected[i]:R}, float16 weights {actual[i]:R}");
        }
    }

    [Fact]
    public void Linears_given_the_float16_qconfig_become_float16_linears_relu_fused_and_any_backend_takes_it()
    {
        torch.manual_seed(181);
        using var model = new TwoLinearNet();
        model.eval();
        // quantize_dynamic(model, {nn.Linear}, dtype=torch.float16) in a model whose backend is qnnpack.
        TwoLinearNet.Observed observed = model.Prepare(new QConfigMapping(QConfig.Qnnpack).SetModuleType("Linear", QConfig.Float16Dynamic));
        string summary = observed.Summary();
        Assert.Contains("2 ops after fusion, 0 in int8, 2 dynamic or weight-only, 0 in float", summary, StringComparison.Ordinal);
        Assert.Contains("dyn      2 x Linear: float16 weights", summary, StringComparison.Ordinal);
        using (torch.no_grad())
        {
            observed.forward(torch.randn(8, 6)).Dispose();
        }

        TwoLinearNet.Quantized converted = observed.Convert();
        using Tensor x = torch.randn(5, 6);
        Float16Linear fc1 = Float16Linear.FromLinear("TwoLinearNet", "fc1", model.Layer("fc1"), fusedRelu: true);
        Float16Linear fc2 = Float16Linear.FromLinear("TwoLinearNet", "fc2", model.Layer("fc2"));
        float[] actual = converted.forward(x).data<float>().ToArray();
        Assert.Equal(fc2.Forward(fc1.Forward(x)).data<float>().ToArray(), actual);

        RoundWeightsInPlace(model);
        using (torch.no_grad())
        {
            AssertWithin(model.forward(x).data<float>().ToArray(), actual, FloatTolerance);
        }
    }

    [Fact]
    public void A_text_model_with_a_float16_lstm_and_head_is_the_hand_built_layers_bit_for_bit()
    {
        torch.manual_seed(182);
        using var model = new LstmTextClassifier(40, 8, 12, 5);
        model.eval();
        QConfigMapping mapping = new QConfigMapping(null)
            .SetModuleType("LSTM", QConfig.Float16Dynamic)
            .SetModuleType("Linear", QConfig.Float16Dynamic);
        LstmTextClassifier.Observed observed = model.Prepare(mapping);
        string summary = observed.Summary();
        Assert.Contains("dyn      1 x LSTM: float16 weights", summary, StringComparison.Ordinal);
        Assert.Contains("dyn      1 x Linear: float16 weights", summary, StringComparison.Ordinal);
        using (torch.no_grad())
        {
            observed.forward(Tokens(4, 9, 40, 1)).Dispose();
        }

        LstmTextClassifier.Quantized converted = observed.Convert();
        using Tensor tokens = Tokens(3, 7, 40, 2);
        Float16LSTM lstm = Float16LSTM.FromLSTM("LstmTextClassifier", "lstm", Member<LSTM>(model, "lstm"), batchFirst: true);
        Float16Linear head = Float16Linear.FromLinear("LstmTextClassifier", "head", Member<Linear>(model, "head"));
        float[] expected;
        using (torch.no_grad())
        {
            (Tensor output, _, _) = lstm.Forward(Member<Embedding>(model, "embedding").forward(tokens));
            expected = head.Forward(output.mean(new long[] { 1 })).data<float>().ToArray();
        }

        float[] actual = converted.forward(tokens).data<float>().ToArray();
        Assert.Equal(expected, actual);

        RoundWeightsInPlace(Member<LSTM>(model, "lstm"));
        RoundWeightsInPlace(Member<Linear>(model, "head"));
        using (torch.no_grad())
        {
            AssertWithin(model.forward(tokens).data<float>().ToArray(), actual, FloatTolerance);
        }
    }

    [Fact]
    public void Initial_states_built_in_forward_reach_the_float16_lstm()
    {
        torch.manual_seed(183);
        using var model = new LstmWithInitialState(30, 6);
        model.eval();
        LstmWithInitialState.Observed observed = model.Prepare(new QConfigMapping(null).SetModuleName("lstm", QConfig.Float16Dynamic));
        using Tensor tokens = Tokens(5, 8, 30, 3);
        using (torch.no_grad())
        {
            observed.forward(tokens).Dispose();
        }

        LstmWithInitialState.Quantized converted = observed.Convert();
        Float16LSTM lstm = Float16LSTM.FromLSTM("LstmWithInitialState", "lstm", Member<LSTM>(model, "lstm"), batchFirst: true);
        float[] expected;
        using (torch.no_grad())
        {
            Tensor x = ((nn.Module<Tensor, Tensor>)Member<nn.Module>(model, "embedding")).forward(tokens);
            (Tensor output, _, _) = lstm.Forward(x, (torch.full(1, 5, LstmWithInitialState.Hidden, 0.25f), torch.full(1, 5, LstmWithInitialState.Hidden, -0.5f)));
            expected = torch.sigmoid(Member<Linear>(model, "dense").forward(output[.., -1, ..])).data<float>().ToArray();
        }

        Assert.Equal(expected, converted.forward(tokens).data<float>().ToArray());
    }

    [Fact]
    public void A_float16_gru_and_a_float16_linear_relu_feed_a_float_head_as_the_hand_built_layers_do()
    {
        torch.manual_seed(184);
        using var model = new GruLastState(5, 7, 3);
        model.eval();
        // The GRU by type, fc1 (fused with its ReLU) by name; fc2 stays float.
        GruLastState.Observed observed = model.Prepare(new QConfigMapping(null).SetModuleType("GRU", QConfig.Float16Dynamic).SetModuleName("fc1", QConfig.Float16Dynamic));
        Assert.Contains("dyn      1 x GRU: float16 weights", observed.Summary(), StringComparison.Ordinal);
        using (torch.no_grad())
        {
            observed.forward(torch.randn(4, 2, 5)).Dispose();
        }

        GruLastState.Quantized converted = observed.Convert();
        using Tensor x = torch.randn(6, 3, 5);
        Float16GRU gru = Float16GRU.FromGRU("GruLastState", "gru", Member<GRU>(model, "gru"), batchFirst: false);
        Float16Linear fc1 = Float16Linear.FromLinear("GruLastState", "fc1", Member<Linear>(model, "fc1"), fusedRelu: true);
        float[] expected;
        using (torch.no_grad())
        {
            (_, Tensor h) = gru.Forward(x);
            expected = Member<Linear>(model, "fc2").forward(fc1.Forward(h[-1])).data<float>().ToArray();
        }

        Assert.Equal(expected, converted.forward(x).data<float>().ToArray());
    }

    [Fact]
    public void Other_ops_given_the_float16_qconfig_stay_float_and_say_why()
    {
        torch.manual_seed(185);
        using var model = new LstmOutputsAndState(4, 6, 3);
        model.eval();
        LstmOutputsAndState.Observed observed = model.Prepare(new QConfigMapping(QConfig.Float16Dynamic));
        string summary = observed.Summary();
        Assert.Contains("dyn      2 x LSTM: float16 weights", summary, StringComparison.Ordinal);
        Assert.Contains("dyn      1 x Linear: float16 weights", summary, StringComparison.Ordinal);
        Assert.Contains("x cat: its qconfig is float16 dynamic, which converts Linear, LSTM and GRU layers only", summary, StringComparison.Ordinal);
        Assert.Contains("QConfig(float16_dynamic: float16 weights, float32 arithmetic)", new QConfigMapping(QConfig.Float16Dynamic).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_traced_at_compile_time_and_qat_refuse_the_float16_qconfig()
    {
        QConfigMapping mapping = new QConfigMapping(QConfig.X86).SetModuleName("fc", QConfig.Float16Dynamic);
        var traced = Assert.Throws<ArgumentException>(() => mapping.Validate("TracedNet", ["fc"], ["Linear"]));
        Assert.Contains("TracedNet: the QConfigMapping's member path 'fc' qconfig is float16 dynamic", traced.Message, StringComparison.Ordinal);
        mapping.Validate("BoundNet", ["fc"], ["Linear"], allowDynamic: true);

        // A float16 entry is accepted with any model backend (it has no integer arithmetic); an int8 dynamic one is not.
        new QConfigMapping(QConfig.Qnnpack).SetModuleName("fc", QConfig.Float16Dynamic).ValidateBackend("BoundNet", QuantBackend.Qnnpack);
        Assert.Throws<ArgumentException>(() => new QConfigMapping(QConfig.Qnnpack).SetModuleName("fc", QConfig.Dynamic(QuantBackend.X86)).ValidateBackend("BoundNet", QuantBackend.Qnnpack));

        torch.manual_seed(186);
        using var model = new TwoLinearNet();
        var qat = Assert.Throws<ArgumentException>(() => new QatProbe(model, new QConfigMapping(QConfig.X86).SetModuleName("fc2", QConfig.Float16Dynamic)));
        Assert.Contains("TwoLinearNet.fc2: its qconfig is float16 dynamic; QAT trains static quantization only", qat.Message, StringComparison.Ordinal);
    }

    /// <summary>The QAT form of TwoLinearNet with a mapping of the test's (the generated PrepareQat takes the class's own).</summary>
    private sealed class QatProbe : BoundQatModel
    {
        public QatProbe(TwoLinearNet model, QConfigMapping mapping)
            : base(model, "TwoLinearNet", CapturedModules.Find(typeof(TwoLinearNet))!, global::QuantGen.QConfig.QatX86, mapping)
        {
        }
    }
}
