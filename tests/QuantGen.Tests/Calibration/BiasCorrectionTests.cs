using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Calibration;
using QuantGen.Modules;
using QuantGen.Reports;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantGen.Tests.Calibration;

/// <summary>
/// Bias correction: the corrected biases equal a re-computation written here (plain loops over the taps' outputs, the
/// layers corrected one after another by hand on a second converted copy), and the correction shrinks the int8
/// model's mean output error on data it was not computed on.
/// </summary>
public sealed class BiasCorrectionTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string[] Corrected = ["conv1", "conv2", "fc"];

    private readonly List<Tensor> _owned = [];

    public void Dispose()
    {
        foreach (Tensor tensor in _owned)
        {
            tensor.Dispose();
        }
    }

    private List<Tensor> Batches(int seed, int count, int size = 6)
    {
        torch.manual_seed(seed);
        var batches = new List<Tensor>();
        for (int i = 0; i < count; i++)
        {
            Tensor batch = torch.randn(size, 3, 8, 8);
            _owned.Add(batch);
            batches.Add(batch);
        }

        return batches;
    }

    private static (CalibrationNet Model, CalibrationNet.Observed Observed) Calibrated(QConfig qconfig, List<Tensor> batches, int seed = 5, float exaggerate = 1f)
    {
        torch.manual_seed(seed);
        var model = new CalibrationNet();
        model.RandomizeBatchNorm(seed);
        model.ExaggerateFirstOutputChannel(exaggerate);
        model.eval();
        CalibrationNet.Observed observed = model.Prepare(qconfig);
        using (torch.no_grad())
        {
            foreach (Tensor batch in batches)
            {
                observed.forward(batch).Dispose();
            }
        }

        return (model, observed);
    }

    private static IQuantizedLayer Layer(CalibrationNet.Quantized int8, string name) => int8.Layers.Single(l => l.Layer == name);

    private static float[] BiasOf(IQuantizedLayer layer, int channels) => layer switch
    {
        QuantizedConv2d conv => conv.Bias ?? new float[channels],
        QuantizedLinear linear => linear.Bias ?? new float[channels],
        _ => throw new ArgumentException(layer.Layer),
    };

    private static int ChannelsOf(IQuantizedLayer layer) => layer is QuantizedConv2d conv ? conv.Options.OutChannels : ((QuantizedLinear)layer).OutFeatures;

    private static void SetBias(IQuantizedLayer layer, float[] bias)
    {
        if (layer is QuantizedConv2d conv)
        {
            conv.SetBias(bias);
        }
        else
        {
            ((QuantizedLinear)layer).SetBias(bias);
        }
    }

    /// <summary>Σ over batches, samples and positions, per channel (axis 1 of an NCHW or [N, C] output), in double; and the count.</summary>
    private static void Accumulate(double[] sums, ref long count, float[] values, int[] shape)
    {
        int n = shape[0], c = shape[1], positions = shape.Length == 4 ? shape[2] * shape[3] : 1;
        for (int sample = 0; sample < n; sample++)
        {
            for (int channel = 0; channel < c; channel++)
            {
                for (int p = 0; p < positions; p++)
                {
                    sums[channel] += values[(((sample * c) + channel) * positions) + p];
                }
            }
        }

        count += (long)n * positions;
    }

    [Theory]
    [InlineData(BiasCorrectionReference.FloatModel)]
    [InlineData(BiasCorrectionReference.LayerInput)]
    public void CorrectedBiasesEqualAnIndependentLayerByLayerRecomputation(BiasCorrectionReference reference)
    {
        List<Tensor> batches = Batches(seed: 21, count: 3);
        (CalibrationNet model, CalibrationNet.Observed observed) = Calibrated(QConfig.X86, batches);
        using (model)
        using (observed)
        {
            CalibrationNet.Quantized corrected = observed.Convert();
            CalibrationNet.Quantized byHand = observed.Convert();
            IReadOnlyList<BiasCorrectionLayer> report = BiasCorrection.Apply(corrected, observed.forward, batches, reference);
            output.WriteLine(BiasCorrection.Describe(report));
            Assert.Equal(Corrected, report.Select(r => r.Layer));

            foreach (string name in Corrected)
            {
                IQuantizedLayer layer = Layer(byHand, name);
                int channels = ChannelsOf(layer);
                var floatSums = new double[channels];
                var int8Sums = new double[channels];
                long floatCount = 0, int8Count = 0;
                foreach (Tensor batch in batches)
                {
                    // The int8 side: every layer's output of the hand-corrected copy.
                    var int8Outputs = new Dictionary<string, QTensor>();
                    QTensor input = ((IQuantizedModel)byHand).Input.Forward(batch.data<float>().ToArray(), [.. batch.shape.Select(d => (int)d)]);
                    byHand.forward(input, new RecordAll(int8Outputs));
                    Accumulate(int8Sums, ref int8Count, int8Outputs[name].Dequantize(), int8Outputs[name].Shape);

                    // The float side: the same batch through the float model; for LayerInput every layer's output is
                    // replaced by the int8 one, so the op at `name` computes on exactly the int8 model's input.
                    var tap = new FloatSide(name, reference == BiasCorrectionReference.LayerInput ? int8Outputs : null);
                    using (torch.no_grad())
                    {
                        observed.forward(batch, tap).Dispose();
                    }

                    Accumulate(floatSums, ref floatCount, tap.Values!, tap.Shape!);
                }

                float[] before = BiasOf(layer, channels);
                var expected = new float[channels];
                for (int c = 0; c < channels; c++)
                {
                    expected[c] = (float)(before[c] + ((floatSums[c] / floatCount) - (int8Sums[c] / int8Count)));
                }

                BiasCorrectionLayer row = report.Single(r => r.Layer == name);
                Assert.Equal(before, row.BiasBefore);
                Assert.Equal(row.BiasAfter, BiasOf(Layer(corrected, name), channels));
                Assert.Contains(expected.Zip(before), pair => pair.First != pair.Second);

                // The int8 sides are bit-identical; the float side is recomputed by a second float forward, and libtorch's
                // CPU GEMM may sum in another order when its input buffers are aligned differently (MKL without
                // conditional numerical reproducibility), moving a float output by an ulp or so: 1e-6 absolute on
                // biases of order 0.01..1 is far below any real difference and far above that jitter.
                for (int c = 0; c < channels; c++)
                {
                    Assert.True(Math.Abs(expected[c] - row.BiasAfter[c]) <= 1e-6, $"{name}[{c}]: expected {expected[c]:R}, corrected {row.BiasAfter[c]:R}");
                }

                // The next layer is measured with this one corrected, as the correction does (with its exact values, so
                // the two int8 copies stay identical).
                SetBias(layer, row.BiasAfter);
            }
        }
    }

    [Fact]
    public void CorrectionShrinksTheMeanOutputErrorOnHeldOutData()
    {
        // Per-tensor weights (the Qnnpack preset) with one output channel 20x larger than the rest: the other channels'
        // weights round coarsely, so each carries a systematic offset — the error the correction is for.
        List<Tensor> calibration = Batches(seed: 31, count: 8, size: 64);
        List<Tensor> heldOut = Batches(seed: 32, count: 8, size: 64);
        (CalibrationNet model, CalibrationNet.Observed observed) = Calibrated(QConfig.Qnnpack, calibration, seed: 7, exaggerate: 20f);
        using (model)
        using (observed)
        {
            CalibrationNet.Quantized plain = observed.Convert();
            CalibrationNet.Quantized corrected = observed.Convert();
            BiasCorrection.Apply(corrected, observed.forward, calibration);

            Dictionary<string, double> before = MeanAbsChannelError(plain, observed, heldOut);
            Dictionary<string, double> after = MeanAbsChannelError(corrected, observed, heldOut);
            foreach (string name in Corrected)
            {
                output.WriteLine($"{name}: mean |E[float] - E[int8]| over channels {before[name]:E3} -> {after[name]:E3}");
            }

            // The model's output (fc) must get closer to the float model's on average; halving is a clear margin for a
            // correction that removes the calibration data's mean error exactly and sees the same distribution here.
            Assert.True(after["fc"] < before["fc"] / 2, $"fc: {after["fc"]:E3} is not below half of {before["fc"]:E3}");
            Assert.True(Corrected.Sum(n => after[n]) < Corrected.Sum(n => before[n]));
        }
    }

    [Fact]
    public void BadRequestsNameTheModelAndLayer()
    {
        List<Tensor> batches = Batches(seed: 41, count: 1);
        (CalibrationNet model, CalibrationNet.Observed observed) = Calibrated(QConfig.X86, batches);
        using (model)
        using (observed)
        {
            CalibrationNet.Quantized int8 = observed.Convert();
            var none = Assert.Throws<ArgumentException>(() => BiasCorrection.Apply(int8, observed.forward, []));
            Assert.Contains("CalibrationNet: bias correction needs at least one calibration batch", none.Message);
            var unknown = Assert.Throws<ArgumentException>(() => BiasCorrection.Apply(int8, observed.forward, batches, layers: ["conv9"]));
            Assert.Contains("'conv9'", unknown.Message);
            Assert.Contains("conv1", unknown.Message);
            var notConv = Assert.Throws<ArgumentException>(() => BiasCorrection.Apply(int8, observed.forward, batches, layers: ["pool"]));
            Assert.Contains("CalibrationNet.pool: bias correction applies to conv and linear layers", notConv.Message);
            var wrongLength = Assert.Throws<ArgumentException>(() => ((QuantizedConv2d)Layer(int8, "conv1")).SetBias(new float[3]));
            Assert.Contains("CalibrationNet.conv1", wrongLength.Message);
        }
    }

    [Fact]
    public void OnlyTheNamedLayersChange()
    {
        List<Tensor> batches = Batches(seed: 51, count: 2);
        (CalibrationNet model, CalibrationNet.Observed observed) = Calibrated(QConfig.X86, batches);
        using (model)
        using (observed)
        {
            CalibrationNet.Quantized int8 = observed.Convert();
            float[] conv1 = BiasOf(Layer(int8, "conv1"), 8), fc = BiasOf(Layer(int8, "fc"), 5);
            IReadOnlyList<BiasCorrectionLayer> report = BiasCorrection.Apply(int8, observed.forward, batches, layers: ["conv2"]);
            Assert.Equal(["conv2"], report.Select(r => r.Layer));
            Assert.Equal(conv1, BiasOf(Layer(int8, "conv1"), 8));
            Assert.Equal(fc, BiasOf(Layer(int8, "fc"), 5));
        }
    }

    private static Dictionary<string, double> MeanAbsChannelError(CalibrationNet.Quantized int8, CalibrationNet.Observed observed, List<Tensor> batches)
    {
        var result = new Dictionary<string, double>();
        foreach (string name in Corrected)
        {
            int channels = ChannelsOf(Layer(int8, name));
            var floatSums = new double[channels];
            var int8Sums = new double[channels];
            long floatCount = 0, int8Count = 0;
            foreach (Tensor batch in batches)
            {
                var outputs = new Dictionary<string, QTensor>();
                int8.forward(((IQuantizedModel)int8).Input.Forward(batch.data<float>().ToArray(), [.. batch.shape.Select(d => (int)d)]), new RecordAll(outputs));
                Accumulate(int8Sums, ref int8Count, outputs[name].Dequantize(), outputs[name].Shape);
                var tap = new FloatSide(name, null);
                using (torch.no_grad())
                {
                    observed.forward(batch, tap).Dispose();
                }

                Accumulate(floatSums, ref floatCount, tap.Values!, tap.Shape!);
            }

            result[name] = Enumerable.Range(0, channels).Average(c => Math.Abs((floatSums[c] / floatCount) - (int8Sums[c] / int8Count)));
        }

        return result;
    }

    private sealed class RecordAll(Dictionary<string, QTensor> outputs) : IQuantizedTap
    {
        public void OnLayer(string layer, QTensor output) => outputs[layer] = output;
    }

    /// <summary>Keeps a copy of one layer's float output; optionally feeds every layer the int8 model's output instead.</summary>
    private sealed class FloatSide(string layer, Dictionary<string, QTensor>? replaceWith) : IFloatTap
    {
        public float[]? Values { get; private set; }

        public int[]? Shape { get; private set; }

        public Tensor? OnLayer(string name, Tensor output)
        {
            if (name == layer)
            {
                using Tensor rowMajor = output.contiguous();
                Values = rowMajor.data<float>().ToArray();
                Shape = [.. output.shape.Select(d => (int)d)];
            }

            if (replaceWith is not null && replaceWith.TryGetValue(name, out QTensor? int8))
            {
                return torch.tensor(int8.Dequantize(), [.. int8.Shape.Select(d => (long)d)]);
            }

            return null;
        }
    }
}
