using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Reports;
using QuantGen.Tests.QConfigs;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace QuantGen.Tests.EndToEnd;

/// <summary>
/// The steps of docs/migrating-from-pytorch.md: a model calibrated in PyTorch (eager mode, the tutorial's names) is
/// converted with exactly PyTorch's qparams. No PyTorch runs here, so the two files PyTorch would write are made by
/// TorchSharp.PyBridge's pickler in the same format: the float state_dict, and the qparams of the quantized
/// state_dict (<c>quant.scale</c>, <c>conv1.scale</c>, <c>conv1.zero_point</c>, ... with the dtypes and shapes PyTorch's
/// quantized modules save them with), then read back as a user would read PyTorch's files.
/// </summary>
[Collection(QuantGen.Tests.Binding.SeededTorchCollection.Name)]
public sealed class PyTorchStateDictTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("quantgen-pytorch-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    // Hand-chosen activation qparams, as PyTorch's x86 HistogramObservers might have left them (quint8, reduce_range).
    private const float InputScale = 0.095f;
    private const int InputZeroPoint = 63;
    private const float Conv1Scale = 0.025f;
    private const int Conv1ZeroPoint = 0;
    private const float Conv2Scale = 0.05f;
    private const int Conv2ZeroPoint = 60;
    private const float FcScale = 0.04f;
    private const int FcZeroPoint = 64;

    /// <summary>PyTorch's per_channel_symmetric qint8 weight scales: max |w| per output channel / 127.5, as float64 (q_per_channel_scales() returns double).</summary>
    private static double[] WeightScales(Tensor weight) =>
        Enumerable.Range(0, (int)weight.shape[0]).Select(c => (double)(weight[c].abs().max().item<float>() / 127.5f)).ToArray();

    /// <summary>
    /// The qparams part of <c>quantized_model.state_dict()</c> for <see cref="EagerNet"/>: the QuantStub's Quantize keeps
    /// [1]-shaped float32/int64 buffers, Conv2d/Linear save 0-dim float32 <c>scale</c> and int64 <c>zero_point</c>, and
    /// the weights' qparams are saved under the names of the quantized weight's methods. A float bias is left in, as
    /// a whole state_dict would have it: it must be ignored.
    /// </summary>
    private static Dictionary<string, Tensor> QuantizedStateDict(IReadOnlyDictionary<string, Tensor> weights)
    {
        var entries = new Dictionary<string, Tensor>
        {
            ["quant.scale"] = torch.tensor(new[] { InputScale }),
            ["quant.zero_point"] = torch.tensor(new long[] { InputZeroPoint }),
            ["conv1.scale"] = torch.tensor(Conv1Scale),
            ["conv1.zero_point"] = torch.tensor((long)Conv1ZeroPoint),
            ["conv1.bias"] = weights["conv1.bias"].clone(),
            ["conv2.scale"] = torch.tensor(Conv2Scale),
            ["conv2.zero_point"] = torch.tensor((long)Conv2ZeroPoint),
            ["fc.scale"] = torch.tensor(FcScale),
            ["fc.zero_point"] = torch.tensor((long)FcZeroPoint),
        };
        foreach (string layer in new[] { "conv1", "conv2", "fc" })
        {
            double[] scales = WeightScales(weights[layer + ".weight"]);
            entries[layer + ".weight.q_per_channel_scales"] = torch.tensor(scales);
            entries[layer + ".weight.q_per_channel_zero_points"] = torch.zeros(scales.Length, ScalarType.Int64);
            entries[layer + ".weight.q_per_channel_axis"] = torch.tensor(0L);
        }

        return entries;
    }

    /// <summary>Records each int8 layer's output, dequantized.</summary>
    private sealed class Recorder : IQuantizedTap
    {
        public Dictionary<string, (float[] Values, long[] Shape, QParams QParams)> Outputs { get; } = new();

        public void OnLayer(string layer, QTensor output) =>
            Outputs[layer] = (output.Dequantize(), output.Shape.Select(d => (long)d).ToArray(), output.QParams);
    }

    /// <summary>PyTorch's quantize→dequantize with libtorch's own quantize_per_tensor (clamps to the full quint8 range).</summary>
    private static Tensor FakeQuant(Tensor x, float scale, int zeroPoint)
    {
        using Tensor q = torch.quantize_per_tensor(x, scale, zeroPoint, ScalarType.QUInt8);
        return q.dequantize();
    }

    private static Tensor FakeQuantWeight(Tensor w, double[] scales)
    {
        using Tensor s = torch.tensor(scales);
        using Tensor z = torch.zeros(scales.Length, ScalarType.Int64);
        using Tensor q = torch.quantize_per_channel(w, s, z, 0, ScalarType.QInt8);
        return q.dequantize();
    }

    [Fact]
    public void A_PyTorch_calibrated_model_converts_with_exactly_its_qparams()
    {
        // 1. Float weights: torch.save(model.state_dict(), "float.pth") in PyTorch, model.load_py("float.pth") here.
        string floatPath = Path.Combine(_folder, "float.pth");
        torch.manual_seed(21);
        var trained = new EagerNet();
        trained.save_py(floatPath);
        torch.manual_seed(99);
        var model = new EagerNet();
        model.load_py(floatPath);
        model.eval();
        Dictionary<string, Tensor> weights = model.state_dict().ToDictionary(p => p.Key, p => p.Value);
        foreach ((string name, Tensor trainedValue) in trained.state_dict())
        {
            Assert.True(trainedValue.eq(weights[name]).all().item<bool>(), name);
        }

        // 2. Qparams: the quantized model's scale/zero_point entries saved with torch.save, read with PyBridge.
        string qparamsPath = Path.Combine(_folder, "qparams.pth");
        Dictionary<string, Tensor> saved = QuantizedStateDict(weights);
        PyTorchPickler.PickleStateDict(qparamsPath, saved);
        Hashtable stateDict = PyTorchUnpickler.UnpickleStateDict(qparamsPath);

        // 3. Prepare with them and convert: no calibration, every qparam is PyTorch's.
        QConfigMapping mapping = EagerNet.DefaultQConfigMapping().SetQParamsFromStateDict(stateDict);
        using EagerNet.Observed observed = model.Prepare(mapping);
        EagerNet.Quantized int8 = observed.Convert();

        // Every int8 layer has exactly the given scale and zero point, its input the previous layer's.
        void Same(QParams actual, float scale, int zeroPoint, string what)
        {
            Assert.True(actual.Scale == scale && actual.ZeroPoint == zeroPoint, $"{what}: {actual}, expected scale={scale:R}, zero_point={zeroPoint}");
        }

        Same(int8.quant.QParams, InputScale, InputZeroPoint, "quant");
        Same(int8.conv1!.InputQParams, InputScale, InputZeroPoint, "conv1 input");
        Same(int8.conv1.OutputQParams, Conv1Scale, Conv1ZeroPoint, "conv1");
        Same(int8.conv2!.InputQParams, Conv1Scale, Conv1ZeroPoint, "conv2 input");
        Same(int8.conv2.OutputQParams, Conv2Scale, Conv2ZeroPoint, "conv2");
        Same(int8.fc!.InputQParams, Conv2Scale, Conv2ZeroPoint, "fc input");
        Same(int8.fc.OutputQParams, FcScale, FcZeroPoint, "fc");
        foreach ((string layer, QParams actual) in new[] { ("conv1", int8.conv1.Weight.QParams), ("conv2", int8.conv2.Weight.QParams), ("fc", int8.fc.Weight.QParams) })
        {
            double[] expected = WeightScales(weights[layer + ".weight"]);
            Assert.Equal(expected.Select(s => (float)s).ToArray(), actual.Scales);
            Assert.All(actual.ZeroPoints, z => Assert.Equal(0, z));
            Assert.Equal(0, actual.Axis);
        }

        // 4. Each int8 op equals its QDQ reference — libtorch's quantize/dequantize around the float op, with the given
        // qparams, on the int8 model's own input to that op — within one quantization step of its output.
        torch.manual_seed(5);
        using Tensor x = torch.randn(4, 3, 6, 6) * 2f;
        var recorder = new Recorder();
        float[] xValues = x.data<float>().ToArray();
        QTensor result = int8.forward(int8.quant.Forward(xValues, [4, 3, 6, 6]), recorder);

        using var noGrad = torch.no_grad();
        Tensor Int8Output(string layer) => torch.tensor(recorder.Outputs[layer].Values, recorder.Outputs[layer].Shape);
        Tensor Weight(string layer) => FakeQuantWeight(weights[layer + ".weight"], WeightScales(weights[layer + ".weight"]));

        using Tensor quantized = Int8Output("quant");
        using Tensor quantizedReference = FakeQuant(x, InputScale, InputZeroPoint);
        AssertWithinOneStep(quantizedReference, quantized, InputScale, "quant");

        using Tensor conv1Reference = FakeQuant(nn.functional.relu(nn.functional.conv2d(quantized, Weight("conv1"), weights["conv1.bias"], padding: [1, 1])), Conv1Scale, Conv1ZeroPoint);
        using Tensor conv1 = Int8Output("conv1");
        AssertWithinOneStep(conv1Reference, conv1, Conv1Scale, "conv1");

        using Tensor conv2Reference = FakeQuant(nn.functional.conv2d(conv1, Weight("conv2"), weights["conv2.bias"]), Conv2Scale, Conv2ZeroPoint);
        using Tensor conv2 = Int8Output("conv2");
        AssertWithinOneStep(conv2Reference, conv2, Conv2Scale, "conv2");

        using Tensor fcReference = FakeQuant(nn.functional.linear(conv2.flatten(1), Weight("fc"), weights["fc.bias"]), FcScale, FcZeroPoint);
        using Tensor fc = Int8Output("fc");
        AssertWithinOneStep(fcReference, fc, FcScale, "fc");

        // The float-in, float-out forward is that same int8 computation.
        Assert.Equal(recorder.Outputs["fc"].Values, result.Dequantize());
        using Tensor floatOut = int8.forward(x);
        Assert.Equal(recorder.Outputs["fc"].Values, floatOut.data<float>().ToArray());
    }

    private static void AssertWithinOneStep(Tensor reference, Tensor actual, float scale, string layer)
    {
        Assert.Equal(reference.shape, actual.shape);

        // Not a vacuous match: the outputs spread over many steps rather than all clamping to one value.
        Assert.True(actual.std().item<float>() > 4 * scale, $"{layer}: the outputs barely vary ({actual.std().item<float>():R} vs a step of {scale:R}).");
        float worst = (reference - actual).abs().max().item<float>();

        // One step of the output grid; the 1e-6 relative slack covers float32 rounding of (q - zp) * scale itself.
        Assert.True(worst <= scale * (1f + 1e-6f), $"{layer}: int8 and its QDQ reference differ by {worst:R} (> one step, {scale:R}).");
        // Only rounding ties may land a step apart; a zero point or scale off by a little would move most values.
        long differing = (reference - actual).abs().gt(scale / 2).sum().item<long>();
        Assert.True(differing * 20 <= reference.numel(), $"{layer}: {differing} of {reference.numel()} values are a step off; only rounding ties should be.");
    }

    [Fact]
    public void State_dict_entries_that_cannot_be_read_are_refused_naming_the_key()
    {
        var mapping = new QConfigMapping(QConfig.X86);
        var error = Assert.Throws<ArgumentException>(() => mapping.SetQParamsFromStateDict(new Dictionary<string, Tensor> { ["conv1.scale"] = torch.tensor(0.1f) }));
        Assert.Contains("'conv1.scale' but not 'conv1.zero_point'", error.Message);

        error = Assert.Throws<ArgumentException>(() => mapping.SetQParamsFromStateDict(new Dictionary<string, Tensor> { ["conv1.zero_point"] = torch.tensor(3L) }));
        Assert.Contains("'conv1.zero_point' but not 'conv1.scale'", error.Message);

        error = Assert.Throws<ArgumentException>(() => mapping.SetQParamsFromStateDict(new Dictionary<string, Tensor>
        {
            ["conv1.scale"] = torch.tensor(new[] { 0.1f, 0.2f }),
            ["conv1.zero_point"] = torch.tensor(new long[] { 0, 0 }),
        }));
        Assert.Contains("'conv1.scale' holds 2 values where one is expected", error.Message);

        error = Assert.Throws<ArgumentException>(() => mapping.SetQParamsFromStateDict(new Dictionary<string, object> { ["fc.scale"] = "0.1", ["fc.zero_point"] = 0 }));
        Assert.Contains("'fc.scale' is a String", error.Message);

        error = Assert.Throws<ArgumentException>(() => mapping.SetQParamsFromStateDict(new Dictionary<string, object> { ["fc.scale"] = 0.0, ["fc.zero_point"] = 0 }));
        Assert.Contains("'fc.scale' is 0; a scale must be positive and finite", error.Message);

        error = Assert.Throws<ArgumentException>(() => mapping.SetQParamsFromStateDict(new Dictionary<string, object> { ["fc.scale"] = 0.1, ["fc.zero_point"] = 2.5 }));
        Assert.Contains("'fc.zero_point' is 2.5; it must be a whole number", error.Message);

        using Tensor quantizedWeight = torch.quantize_per_tensor(torch.ones(2, 2), 0.1, 0, ScalarType.QInt8);
        error = Assert.Throws<ArgumentException>(() => mapping.SetQParamsFromStateDict(new Dictionary<string, Tensor>
        {
            ["conv1.weight.q_scale"] = quantizedWeight,
            ["conv1.weight.q_zero_point"] = torch.tensor(0L),
        }));
        Assert.Contains("'conv1.weight.q_scale' is a quantized tensor", error.Message);

        Assert.Empty(mapping.FixedActivations);
        Assert.Empty(mapping.FixedWeights);
    }

    [Fact]
    public void Plain_numbers_work_too_and_other_keys_are_ignored()
    {
        QConfigMapping mapping = new QConfigMapping(QConfig.X86).SetQParamsFromStateDict(new Dictionary<string, object>
        {
            ["quant.scale"] = new[] { 0.5 },
            ["quant.zero_point"] = new long[] { 7 },
            ["fc.weight.q_scale"] = 0.25f,
            ["fc.weight.q_zero_point"] = 0,
            ["fc.bias"] = new[] { 1.0, 2.0 },
            ["fc._packed_params.dtype"] = "torch.qint8",
        });
        KeyValuePair<string, QuantGen.Observers.FixedObserverValues> input = Assert.Single(mapping.FixedActivations);
        Assert.Equal("quant", input.Key);
        Assert.Equal("scale=0.5, zero_point=7", input.Value.ToString());
        Assert.Equal("scale=0.25, zero_point=0", Assert.Single(mapping.FixedWeights).Value.ToString());
    }
}
