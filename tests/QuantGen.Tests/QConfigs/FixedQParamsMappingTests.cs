using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Observers;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.QConfigs;

/// <summary>
/// Qparams from elsewhere reach Convert() in both forms: the generated form (<see cref="EagerNet"/>, stubs and [Fuse])
/// and the bound form (<see cref="LoopNet"/>, general-typed members and a Sequential filled in a loop). Expected values
/// are the ones given, or worked out by hand from exact ranges; calibrated layers are compared with a twin prepared
/// without the entries.
/// </summary>
[Collection(QuantGen.Tests.Binding.SeededTorchCollection.Name)]
public sealed class FixedQParamsMappingTests
{
    /// <summary>One model form: how to build, prepare, calibrate and convert it, and its layer names.</summary>
    public sealed record Form(string Name, string Input, string Conv1, string Conv2, string Fc, Func<nn.Module> Build, Func<nn.Module, QConfigMapping> DefaultMapping, Func<nn.Module, QConfigMapping, IObservedModel> Prepare, Func<IObservedModel, IQuantizedModel> Convert)
    {
        public override string ToString() => Name;
    }

    private static readonly Form Generated = new(
        "generated (EagerNet)", "quant", "conv1", "conv2", "fc",
        () => new EagerNet(),
        _ => EagerNet.DefaultQConfigMapping(),
        (model, mapping) => ((EagerNet)model).Prepare(mapping),
        observed => ((EagerNet.Observed)observed).Convert());

    private static readonly Form Bound = new(
        "bound (LoopNet)", "input", "features.conv-1", "features.conv-2", "head",
        () => new LoopNet(),
        _ => LoopNet.DefaultQConfigMapping(),
        (model, mapping) => ((LoopNet)model).Prepare(mapping),
        observed => ((LoopNet.Observed)observed).Convert());

    public static TheoryData<Form> Forms => [Generated, Bound];

    private static nn.Module Model(Form form, int seed = 5)
    {
        torch.manual_seed(seed);
        nn.Module model = form.Build();
        model.eval();
        return model;
    }

    private static void Calibrate(IObservedModel observed, int seed = 9, int batches = 3)
    {
        using var generator = new torch.Generator((ulong)seed);
        using var noGrad = torch.no_grad();
        for (int i = 0; i < batches; i++)
        {
            using Tensor batch = torch.randn(new long[] { 2, 3, 6, 6 }, generator: generator) * 3f;
            observed.forward(batch, null).Dispose();
        }
    }

    /// <summary>Every int8 layer's output qparams by layer name, the input's included.</summary>
    private static Dictionary<string, QParams> Outputs(IQuantizedModel int8)
    {
        var outputs = new Dictionary<string, QParams> { [int8.Input.Layer] = int8.Input.QParams };
        foreach (IQuantizedLayer layer in int8.Layers)
        {
            switch (layer)
            {
                case QuantizedConv2d conv: outputs[conv.Layer] = conv.OutputQParams; break;
                case QuantizedLinear linear: outputs[linear.Layer] = linear.OutputQParams; break;
            }
        }

        return outputs;
    }

    private static Dictionary<string, QParams> Inputs(IQuantizedModel int8) => int8.Layers
        .Select(l => l switch { QuantizedConv2d c => (l.Layer, c.InputQParams), QuantizedLinear f => (l.Layer, f.InputQParams), _ => (l.Layer, (QParams?)null) })
        .Where(p => p.Item2 is not null)
        .ToDictionary(p => p.Layer, p => p.Item2!);

    private static Dictionary<string, QParams> Weights(IQuantizedModel int8) => int8.Layers
        .Select(l => l switch { QuantizedConv2d c => (l.Layer, c.Weight.QParams), QuantizedLinear f => (l.Layer, f.Weight.QParams), _ => (l.Layer, (QParams?)null) })
        .Where(p => p.Item2 is not null)
        .ToDictionary(p => p.Layer, p => p.Item2!);

    private static void AssertQParams(QParams actual, float scale, int zeroPoint, string layer)
    {
        Assert.False(actual.IsPerChannel, layer);
        Assert.True(scale == actual.Scale, $"{layer}: scale {actual.Scale:R}, expected {scale:R}");
        Assert.True(zeroPoint == actual.ZeroPoint, $"{layer}: zero point {actual.ZeroPoint}, expected {zeroPoint}");
    }

    // Hand-chosen qparams, all different, none what calibration on this data would give.
    private static readonly float[] Conv1WeightScales = [0.0025f, 0.003f, 0.0035f, 0.004f];
    private static readonly float[] Conv2WeightScales = [0.001f, 0.0015f, 0.002f, 0.0025f, 0.003f, 0.0035f];
    private static readonly float[] FcWeightScales = [0.0004f, 0.0005f, 0.0006f, 0.0007f, 0.0008f];

    private static QConfigMapping FixEverything(Form form, QConfigMapping mapping) => mapping
        .SetModuleQParams(form.Input, 0.03125f, 64)
        .SetModuleQParams(form.Conv1, 0.0234375f, 0)
        .SetModuleQParams(form.Conv2, 0.046875f, 70)
        .SetModuleQParams(form.Fc, 0.0625f, 60)
        .SetModuleWeightQParams(form.Conv1, Conv1WeightScales, new int[4])
        .SetModuleWeightQParams(form.Conv2, Conv2WeightScales, new int[6])
        .SetModuleWeightQParams(form.Fc, FcWeightScales, new int[5]);

    private static void AssertEverythingFixed(Form form, IQuantizedModel int8)
    {
        Dictionary<string, QParams> outputs = Outputs(int8);
        AssertQParams(outputs[form.Input], 0.03125f, 64, form.Input);
        AssertQParams(outputs[form.Conv1], 0.0234375f, 0, form.Conv1);
        AssertQParams(outputs[form.Conv2], 0.046875f, 70, form.Conv2);
        AssertQParams(outputs[form.Fc], 0.0625f, 60, form.Fc);

        // Each layer reads the qparams of the one before it.
        Dictionary<string, QParams> inputs = Inputs(int8);
        AssertQParams(inputs[form.Conv1], 0.03125f, 64, form.Conv1 + " input");
        AssertQParams(inputs[form.Conv2], 0.0234375f, 0, form.Conv2 + " input");
        AssertQParams(inputs[form.Fc], 0.046875f, 70, form.Fc + " input");

        Dictionary<string, QParams> weights = Weights(int8);
        foreach ((string layer, float[] scales) in new[] { (form.Conv1, Conv1WeightScales), (form.Conv2, Conv2WeightScales), (form.Fc, FcWeightScales) })
        {
            Assert.True(weights[layer].IsPerChannel, layer);
            Assert.Equal(0, weights[layer].Axis);
            Assert.Equal(scales, weights[layer].Scales);
            Assert.Equal(new int[scales.Length], weights[layer].ZeroPoints);
        }
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void Fixed_output_and_weight_qparams_win_over_calibration(Form form)
    {
        nn.Module model = Model(form);
        using IObservedModel observed = form.Prepare(model, FixEverything(form, form.DefaultMapping(model)));
        Calibrate(observed);
        AssertEverythingFixed(form, form.Convert(observed));
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void A_model_whose_qparams_are_all_fixed_converts_without_calibration(Form form)
    {
        nn.Module model = Model(form);
        using IObservedModel observed = form.Prepare(model, FixEverything(form, form.DefaultMapping(model)));
        IQuantizedModel int8 = form.Convert(observed);
        AssertEverythingFixed(form, int8);

        // And it runs: float in, float out, values on fc's output grid.
        float[] output = int8.forward(new float[2 * 3 * 6 * 6], [2, 3, 6, 6], out int[] shape);
        Assert.Equal(new[] { 2, 5 }, shape);
        Assert.All(output, v => Assert.Equal(0.0, Math.IEEERemainder(v, 0.0625), 6));
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void A_fixed_range_is_turned_into_qparams_with_the_layers_observer_and_the_other_layers_calibrate_as_before(Form form)
    {
        nn.Module model = Model(form);
        QConfigMapping mapping = form.DefaultMapping(model)
            .SetModuleRange(form.Conv1, -2f, 5.9375f)
            .SetModuleWeightRange(form.Fc, [-127.5f / 512, -127.5f / 256, -127.5f / 128, -127.5f / 64, -127.5f / 32], [0.1f, 0.1f, 0.1f, 0.1f, 0.1f]);
        using IObservedModel observed = form.Prepare(model, mapping);
        Calibrate(observed);
        IQuantizedModel int8 = form.Convert(observed);

        // X86 activations: quint8 with reduce_range (0..127); 7.9375 / 127 = 1/16, 0 - round(-2 * 16) = 32.
        Dictionary<string, QParams> outputs = Outputs(int8);
        AssertQParams(outputs[form.Conv1], 0.0625f, 32, form.Conv1);
        AssertQParams(Inputs(int8)[form.Conv2], 0.0625f, 32, form.Conv2 + " input");

        // X86 weights: symmetric qint8 per channel, |x| max / 127.5; the magnitudes are 127.5 / 2^k.
        Assert.Equal(new[] { 1f / 512, 1f / 256, 1f / 128, 1f / 64, 1f / 32 }, Weights(int8)[form.Fc].Scales);

        // The layers without entries get what calibration gives them, as in a twin prepared without the entries
        // (the observed forward runs in float, so fixing conv1 does not change what later observers see).
        nn.Module twin = Model(form);
        using IObservedModel twinObserved = form.Prepare(twin, form.DefaultMapping(twin));
        Calibrate(twinObserved);
        Dictionary<string, QParams> calibrated = Outputs(form.Convert(twinObserved));
        Assert.NotEqual(calibrated[form.Conv1].Scale, outputs[form.Conv1].Scale);
        foreach (string layer in new[] { form.Input, form.Conv2, form.Fc })
        {
            AssertQParams(outputs[layer], calibrated[layer].Scale, calibrated[layer].ZeroPoint, layer);
        }
    }

    [Fact]
    public void The_observers_of_a_prepared_model_can_be_fixed_directly()
    {
        // Generated form: the observers are properties; bound form: found in Observers by layer.
        nn.Module eager = Model(Generated);
        using var observed = (EagerNet.Observed)Generated.Prepare(eager, EagerNet.DefaultQConfigMapping());
        observed.conv2_activation.SetQParams(0.046875f, 70);
        observed.quant_activation.SetRange(-4f, 11.9375f);
        Calibrate(observed);
        EagerNet.Quantized int8 = observed.Convert();
        AssertQParams(int8.conv2!.OutputQParams, 0.046875f, 70, "conv2");

        // X86 input: 0..127 with reduce_range; [-4, 11.9375] is 15.9375 wide: scale = 15.9375 / 127, zero point 0 - round(-4 / scale).
        float scale = 15.9375f / 127f;
        AssertQParams(int8.quant.QParams, scale, -(int)MathF.Round(-4f / scale, MidpointRounding.ToEven), "quant");

        nn.Module loop = Model(Bound);
        using var bound = (LoopNet.Observed)Bound.Prepare(loop, LoopNet.DefaultQConfigMapping());
        bound.Observers.Single(o => o.Layer == "LoopNet.head").SetQParams(0.0625f, 60);
        Calibrate(bound);
        AssertQParams(Outputs(bound.Convert())["head"], 0.0625f, 60, "head");
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void A_layer_the_model_does_not_have_fails_at_Prepare_naming_it_and_listing_the_layers(Form form)
    {
        nn.Module model = Model(form);
        string modelName = form == Generated ? "EagerNet" : "LoopNet";
        string typo = form.Conv1[..^1] + "3";   // conv3 / features.conv-3
        var error = Assert.Throws<ArgumentException>(() => form.Prepare(model, form.DefaultMapping(model).SetModuleQParams(typo, 0.1f, 0)));
        Assert.Contains($"{modelName}: the QConfigMapping fixes the output qparams of '{typo}', but {modelName} has no layer of that name.", error.Message);
        Assert.Contains($"Did you mean '{form.Conv1}'?", error.Message);
        Assert.Contains($"'{form.Conv2}'", error.Message);
        Assert.Contains($"'{form.Input}'", error.Message);

        error = Assert.Throws<ArgumentException>(() => form.Prepare(model, form.DefaultMapping(model).SetModuleWeightQParams(typo, 0.1f, 0)));
        Assert.Contains($"fixes the weight qparams of '{typo}', but {modelName} has no conv, linear or conv-transpose layer of that name", error.Message);
        Assert.Contains($"Layers with weights: '{form.Conv1}', '{form.Conv2}', '{form.Fc}'", error.Message);

        // A layer the model has but that holds no int8 weights (here: kept in float by the mapping) is named as such.
        error = Assert.Throws<ArgumentException>(() => form.Prepare(model, form.DefaultMapping(model).SetModuleName(form.Conv2, null).SetModuleWeightQParams(form.Conv2, 0.1f, 0)));
        Assert.Contains($"{modelName}.{form.Conv2} has no int8 weights", error.Message);
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void A_member_fused_into_the_op_before_it_has_no_qparams_of_its_own(Form form)
    {
        nn.Module model = Model(form);
        string relu = form == Generated ? "relu1" : "features.relu-1";
        var error = Assert.Throws<ArgumentException>(() => form.Prepare(model, form.DefaultMapping(model).SetModuleQParams(relu, 0.1f, 0)));
        Assert.Contains($".{relu} has none of its own: it is fused into the op before it", error.Message);
        Assert.Contains($"'{form.Conv1}'", error.Message);
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void Per_channel_weight_qparams_must_have_one_value_per_output_channel(Form form)
    {
        nn.Module model = Model(form);
        var error = Assert.Throws<ArgumentException>(() => form.Prepare(model, form.DefaultMapping(model).SetModuleWeightQParams(form.Conv2, [0.1f, 0.1f, 0.1f], [0, 0, 0])));
        Assert.Contains($".{form.Conv2}: the fixed per-channel weight qparams have 3 channels, but this Conv2d's weight [6, 4, 3, 3]", error.Message);
        Assert.Contains("has 6 output channels along axis 0", error.Message);
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void A_zero_point_outside_the_layers_dtype_fails_at_Prepare_naming_the_layer(Form form)
    {
        nn.Module model = Model(form);
        var error = Assert.Throws<ArgumentException>(() => form.Prepare(model, form.DefaultMapping(model).SetModuleQParams(form.Conv2, 0.1f, 300)));
        Assert.Contains($".{form.Conv2}: the QConfigMapping's fixed output qparams (scale=0.1, zero_point=300) do not fit", error.Message);
        Assert.Contains("torch.quint8's range 0..255", error.Message);

        error = Assert.Throws<ArgumentException>(() => form.Prepare(model, form.DefaultMapping(model).SetModuleWeightQParams(form.Fc, 0.1f, 128)));
        Assert.Contains($".{form.Fc}: the QConfigMapping's fixed weight qparams", error.Message);
        Assert.Contains("torch.qint8's range -128..127", error.Message);
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(-1f)]
    [InlineData(float.NaN)]
    [InlineData(float.NegativeInfinity)]
    public void A_bad_scale_is_refused_when_the_entry_is_set(float scale)
    {
        var mapping = new QConfigMapping(QConfig.X86);
        Assert.Contains("positive and finite", Assert.Throws<ArgumentException>(() => mapping.SetModuleQParams("conv1", scale, 0)).Message);
        Assert.Contains("channel 1", Assert.Throws<ArgumentException>(() => mapping.SetModuleWeightQParams("conv1", [0.1f, scale], [0, 0])).Message);
        Assert.Empty(mapping.FixedActivations);
        Assert.Empty(mapping.FixedWeights);
    }

    [Fact]
    public void Bad_layer_names_and_ranges_are_refused_when_the_entry_is_set()
    {
        var mapping = new QConfigMapping(QConfig.X86);
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => mapping.SetModuleQParams("", 0.1f, 0)).Message);
        Assert.Contains("empty segment", Assert.Throws<ArgumentException>(() => mapping.SetModuleRange("layer1..conv", 0f, 1f)).Message);
        Assert.Contains("greater than max", Assert.Throws<ArgumentException>(() => mapping.SetModuleRange("conv1", 1f, 0f)).Message);
        Assert.Contains("2 scales and 1 zero points", Assert.Throws<ArgumentException>(() => mapping.SetModuleWeightQParams("conv1", [0.1f, 0.2f], [0])).Message);
    }

    [Fact]
    public void The_mapping_prints_and_copies_its_fixed_entries()
    {
        QConfigMapping mapping = new QConfigMapping(QConfig.X86)
            .SetModuleQParams("conv1", 0.05f, 3)
            .SetModuleRange("quant", -1f, 1f)
            .SetModuleWeightQParams("conv1", [0.1f, 0.2f], [0, 0]);
        string text = mapping.ToString();
        Assert.Contains("fixed_output_qparams\n  conv1: scale=0.05, zero_point=3\n  quant: min_val=-1, max_val=1", text);
        Assert.Contains("fixed_weight_qparams\n  conv1: scales=[0.1, 0.2], zero_points=[0, 0], ch_axis=0", text);
        Assert.DoesNotContain("fixed_", new QConfigMapping(QConfig.X86).ToString());

        QConfigMapping copy = mapping.Clone();
        copy.SetModuleQParams("conv2", 0.1f, 0);
        Assert.Equal(3, copy.FixedActivations.Count);
        Assert.Equal(2, mapping.FixedActivations.Count);
        Assert.Single(copy.FixedWeights);

        // Setting a layer again replaces its entry in place.
        mapping.SetModuleQParams("conv1", 0.07f, 4);
        Assert.Equal("conv1", mapping.FixedActivations[0].Key);
        Assert.Equal(0.07f, mapping.FixedActivations[0].Value.Scales[0]);
    }

    /// <summary>max(x, 0) / 255 with zero point 0 (quint8): a one-sided observer of one's own, for ReLU outputs.</summary>
    private sealed class MaxOverUnsignedRange : IObserver
    {
        private float _max;

        public void Observe(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
        {
            foreach (float value in values)
            {
                _max = MathF.Max(_max, value);
            }
        }

        public QParams CalculateQParams() => QParams.PerTensor(_max / 255f, 0, QuantDType.QUInt8);
    }

    /// <summary>Symmetric qint8 per output channel (axis 0): max |w| / 127 for each channel.</summary>
    private sealed class PerChannelAbsMax : IObserver
    {
        private float[] _absMax = [];

        public void Observe(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
        {
            int channels = shape[0];
            int inner = values.Length / channels;
            _absMax = new float[channels];
            for (int c = 0; c < channels; c++)
            {
                foreach (float value in values.Slice(c * inner, inner))
                {
                    _absMax[c] = MathF.Max(_absMax[c], MathF.Abs(value));
                }
            }
        }

        public QParams CalculateQParams() => QParams.PerChannel(_absMax.Select(m => m / 127f).ToArray(), new int[_absMax.Length], 0, QuantDType.QInt8);
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void Custom_observers_in_a_qconfig_give_the_qparams_they_compute(Form form)
    {
        nn.Module model = Model(form);
        ObserverSpec activation = ObserverSpec.Custom(_ => new MaxOverUnsignedRange(), "MaxOverUnsignedRange");
        ObserverSpec weight = ObserverSpec.Custom(_ => new PerChannelAbsMax(), "PerChannelAbsMax", QuantDType.QInt8, QScheme.PerChannelSymmetric);
        QConfigMapping mapping = new QConfigMapping(QConfig.X86 with { Activation = activation })
            .SetModuleName(form.Conv1, QConfig.X86 with { Activation = activation, Weight = weight });
        using IObservedModel observed = form.Prepare(model, mapping);

        // The same batches as Calibrate, kept to work out the expected values with TorchSharp.
        using var generator = new torch.Generator(9);
        var batches = Enumerable.Range(0, 3).Select(_ => torch.randn(new long[] { 2, 3, 6, 6 }, generator: generator) * 3f).ToArray();
        using (torch.no_grad())
        {
            foreach (Tensor batch in batches)
            {
                observed.forward(batch, null).Dispose();
            }
        }

        IQuantizedModel int8 = form.Convert(observed);
        Dictionary<string, QParams> outputs = Outputs(int8);

        // The input's: the largest calibration value / 255.
        float inputMax = batches.Max(b => b.max().item<float>());
        AssertQParams(outputs[form.Input], inputMax / 255f, 0, form.Input);

        // conv1 (ReLU fused): the largest value of relu(conv2d(x)) over the batches, computed here by TorchSharp.
        Dictionary<string, Tensor> parameters = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        string prefix = form == Generated ? "conv1" : "features.conv-1";
        Tensor w1 = parameters[prefix + ".weight"];
        Tensor b1 = parameters[prefix + ".bias"];
        float conv1Max;
        using (torch.no_grad())
        {
            conv1Max = batches.Max(b => nn.functional.relu(nn.functional.conv2d(b, w1, b1, padding: [1, 1])).max().item<float>());
        }

        AssertQParams(outputs[form.Conv1], conv1Max / 255f, 0, form.Conv1);

        // conv1's weights: max |w| per output channel / 127 (PyTorch's PerChannelMinMaxObserver would divide by 127.5).
        float[] expectedScales = Enumerable.Range(0, 4).Select(c => w1[c].abs().max().item<float>() / 127f).ToArray();
        Assert.Equal(expectedScales, Weights(int8)[form.Conv1].Scales);

        // conv2 keeps X86's per-channel MinMax weights: symmetric, 127.5.
        Tensor w2 = parameters[(form == Generated ? "conv2" : "features.conv-2") + ".weight"];
        Assert.Equal(Enumerable.Range(0, 6).Select(c => w2[c].abs().max().item<float>() / 127.5f).ToArray(), Weights(int8)[form.Conv2].Scales);

        foreach (Tensor batch in batches)
        {
            batch.Dispose();
        }
    }
}
