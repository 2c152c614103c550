using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Reports;
using QuantGen.Tests.Generator.Models.Detection;
using QuantGen.Tests.Generator.Models.Fashion;
using QuantGen.Tests.Generator.Models.ResNet;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantGen.Tests.Reports;

/// <summary>
/// QuantExplain: the explained integers, re-combined here with the numerics contract's formulas written out
/// (docs/numerics.md §4, §5), give the int8 model's actual output element, read through the test's own tap.
/// </summary>
public sealed class QuantExplainTests(ITestOutputHelper output)
{
    [Fact]
    public void ConvWithPaddingAddsUpToTheModelsOutputX86()
    {
        using var resnet = ReportModels.ResNet();
        using Tensor input = ReportModels.Batches(1, [2, 3, 32, 32], seed: 31)[0];
        Dictionary<string, QTensor> int8 = resnet.Int8Outputs(input);

        // A corner of layer1.0.conv1 (3x3, padding 1): 5 of the 9 taps per input channel are padding.
        int[] index = [1, 5, 0, 0];
        var explanation = Assert.IsType<AccumulatorExplanation>(Explain(resnet.Int8, input, "layer1.0.conv1", index));
        output.WriteLine(explanation.ToString());
        QTensor x = int8["maxpool"];
        QuantizedConv2d conv = resnet.Int8.layer1_0_conv1;
        Assert.Equal(16 * 9, explanation.Terms.Count);
        Assert.Equal(16 * 5, explanation.Terms.Count(t => t.Padding));
        Assert.Equal(x.Scale, explanation.InputScale);
        Assert.Equal(x.ZeroPoint, explanation.InputZeroPoint);
        Assert.Equal(conv.Weight.QParams.Scales[5], explanation.WeightScale);
        Assert.Equal(0, explanation.WeightZeroPoint);
        foreach (ReceptiveTerm term in explanation.Terms.Where(t => !t.Padding))
        {
            Assert.Equal(x.IntAt(term.InputIndex), term.Input);
            Assert.Equal(conv.Weight.IntAt(term.WeightIndex), term.Weight);
        }

        Assert.Equal(conv.Bias?[5] ?? 0f, explanation.Bias);
        int expected = X86(explanation.Terms, explanation.InputZeroPoint, explanation.WeightZeroPoint, explanation.Bias, explanation.InputScale, explanation.WeightScale, conv.OutputQParams, conv.FusedRelu);
        Assert.Equal(int8["layer1.0.conv1"].IntAt(index), expected);
        Assert.Equal(expected, explanation.Result);
        Assert.Equal(expected, explanation.ModelOutput);
        Assert.True(explanation.Agrees);
    }

    [Fact]
    public void LinearAddsUpToTheModelsOutputX86()
    {
        using var resnet = ReportModels.ResNet();
        using Tensor input = ReportModels.Batches(1, [2, 3, 32, 32], seed: 32)[0];
        Dictionary<string, QTensor> int8 = resnet.Int8Outputs(input);
        var explanation = Assert.IsType<AccumulatorExplanation>(Explain(resnet.Int8, input, "fc", [1, 7]));
        QuantizedLinear fc = resnet.Int8.fc;
        Assert.Equal(32, explanation.Terms.Count);
        Assert.All(explanation.Terms, t => Assert.Equal(int8["flatten"].IntAt(t.InputIndex), t.Input));
        int expected = X86(explanation.Terms, explanation.InputZeroPoint, explanation.WeightZeroPoint, fc.Bias![7], explanation.InputScale, fc.Weight.QParams.Scales[7], fc.OutputQParams, fc.FusedRelu);
        Assert.Equal(int8["fc"].IntAt(1, 7), expected);
        Assert.Equal(expected, explanation.Result);
    }

    [Fact]
    public void QnnpackQuantizesTheBiasAndAddsUp()
    {
        using var fashion = ReportModels.Fashion();
        using Tensor input = ReportModels.Batches(1, [2, 1, 28, 28], seed: 33)[0];
        Dictionary<string, QTensor> int8 = fashion.Int8Outputs(input);
        foreach ((string layer, int[] index) in new[] { ("conv1", new[] { 0, 3, 0, 27 }), ("conv2", new[] { 1, 30, 7, 4 }), ("fc1", new[] { 1, 100 }), ("fc2", new[] { 0, 9 }) })
        {
            var explanation = Assert.IsType<AccumulatorExplanation>(Explain(fashion.Int8, input, layer, index));
            Assert.Equal(QuantBackend.Qnnpack, explanation.Backend);

            // docs/numerics.md §4, Qnnpack: bq = rne(bias * (1f / (sx * sw))), M = (sw * sx) * (1f / sy),
            // q = clamp(rne((float)(acc + bq) * M) + zy, relu ? zy : 0, 255).
            float sx = explanation.InputScale, sw = explanation.WeightScale, sy = explanation.OutputQParams.Scale;
            int zy = explanation.OutputQParams.ZeroPoint;
            int acc = explanation.Terms.Sum(t => (t.Input - explanation.InputZeroPoint) * (t.Weight - explanation.WeightZeroPoint));
            Assert.Equal(acc, explanation.Accumulator);
            float product = sx * sw;
            int bq = (int)MathF.Round(explanation.Bias * (1.0f / product), MidpointRounding.ToEven);
            Assert.Equal(bq, explanation.QuantizedBias);
            float m = (sw * sx) * (1.0f / sy);
            float value = (float)(acc + bq) * m;
            int expected = Math.Clamp((int)MathF.Round(value, MidpointRounding.ToEven) + zy, explanation.Relu ? zy : 0, 255);
            Assert.Equal(int8[layer].IntAt(index), expected);
            Assert.Equal(expected, explanation.Result);
        }
    }

    [Fact]
    public void AddAddsUpToTheModelsOutput()
    {
        using var resnet = ReportModels.ResNet();
        using Tensor input = ReportModels.Batches(1, [2, 3, 32, 32], seed: 34)[0];
        Dictionary<string, QTensor> int8 = resnet.Int8Outputs(input);
        int[] index = [0, 9, 3, 4];
        Explanation explanation = Explain(resnet.Int8, input, "layer1.0.add", index);

        // docs/numerics.md §5: c = (qa - za) * sa + (qb - zb) * sb, relu, clamp(rne(c * (1f / sy)) + zy, 0, 255).
        QTensor a = int8["layer1.0.conv2"], b = int8["maxpool"];
        QParams y = int8["layer1.0.add"].QParams;
        float c = ((float)(a.IntAt(index) - a.ZeroPoint) * a.Scale) + ((float)(b.IntAt(index) - b.ZeroPoint) * b.Scale);
        c = MathF.Max(c, 0f);
        int expected = Math.Clamp((int)MathF.Round(c * (1.0f / y.Scale), MidpointRounding.ToEven) + y.ZeroPoint, 0, 255);
        Assert.Equal(int8["layer1.0.add"].IntAt(index), expected);
        Assert.Equal(expected, explanation.Result);
        Assert.Contains(explanation.Steps, s => s.Name == "relu");
    }

    [Fact]
    public void PoolsAddUpToTheModelsOutput()
    {
        using var resnet = ReportModels.ResNet();
        using Tensor input = ReportModels.Batches(1, [2, 3, 32, 32], seed: 35)[0];
        Dictionary<string, QTensor> int8 = resnet.Int8Outputs(input);

        // maxpool 3x3 stride 2 padding 1 on 16x16: output (0, 0) sees rows and columns 0..1.
        Explanation max = Explain(resnet.Int8, input, "maxpool", [1, 2, 0, 0]);
        QTensor x = int8["conv1"];
        int expectedMax = new[] { x.IntAt(1, 2, 0, 0), x.IntAt(1, 2, 0, 1), x.IntAt(1, 2, 1, 0), x.IntAt(1, 2, 1, 1) }.Max();
        Assert.Equal(int8["maxpool"].IntAt(1, 2, 0, 0), expectedMax);
        Assert.Equal(expectedMax, max.Result);

        // adaptive average pool to 1x1 over 4x4: acc = Σ (q - zx), multiplier = sx / sy / 16 (sx = sy),
        // q = clamp(zy + rne(acc * (1f / (1f / multiplier))), 0, 255).
        Explanation average = Explain(resnet.Int8, input, "avgpool", [0, 31, 0, 0]);
        QTensor v = int8["layer2.1.add"];
        int acc = 0;
        for (int h = 0; h < 4; h++)
        {
            for (int w = 0; w < 4; w++)
            {
                acc += v.IntAt(0, 31, h, w) - v.ZeroPoint;
            }
        }

        float multiplier = v.Scale / v.Scale / 16f;
        int expectedAverage = Math.Clamp(v.ZeroPoint + (int)MathF.Round(acc * (1.0f / (1.0f / multiplier)), MidpointRounding.ToEven), 0, 255);
        Assert.Equal(int8["avgpool"].IntAt(0, 31, 0, 0), expectedAverage);
        Assert.Equal(expectedAverage, average.Result);
    }

    [Fact]
    public void EveryLayerOfThreeModelsAgreesWithTheModel()
    {
        // Sweeps every op kind the test models have (conv, conv-transpose, linear, add, cat, pools, flatten,
        // view, quantize) at a few positions: each explanation must land on the int8 model's integer.
        var rng = new Random(41);
        int explained = 0;
        void Sweep<TModel, TObserved, TQuantized>(Calibrated<TModel, TObserved, TQuantized> model, long[] shape)
            where TModel : nn.Module
            where TObserved : IDisposable
            where TQuantized : IQuantizedModel
        {
            using Tensor input = ReportModels.Batches(1, shape, seed: 36)[0];
            Dictionary<string, QTensor> int8 = model.Int8Outputs(input);
            IFloatModel floatSide = model.FloatSide;
            foreach (GraphNode node in model.Int8.Graph.Nodes)
            {
                int[] outputShape = int8[node.Name].Shape;
                for (int k = 0; k < 2; k++)
                {
                    int[] index = outputShape.Select(d => rng.Next(d)).ToArray();
                    Explanation explanation = QuantExplain.Explain(model.Int8, floatSide, input, node.Name, index);
                    Assert.True(explanation.Agrees, explanation.ToString());
                    Assert.Equal(int8[node.Name].IntAt(index), explanation.ModelOutput);
                    explained++;
                }
            }
        }

        using (var resnet = ReportModels.ResNet())
        {
            Sweep(resnet, [2, 3, 32, 32]);
        }

        using (var centerNet = ReportModels.CenterNet())
        {
            Sweep(centerNet, [1, 3, 16, 16]);
        }

        using (var fashion = ReportModels.Fashion())
        {
            Sweep(fashion, [2, 1, 28, 28]);
        }

        Assert.Equal(2 * (19 + 16 + 8), explained);
    }

    [Fact]
    public void ConvTransposeListsOnlyTheTapsThatReachTheOutput()
    {
        using var centerNet = ReportModels.CenterNet();
        using Tensor input = ReportModels.Batches(1, [1, 3, 16, 16], seed: 37)[0];
        Dictionary<string, QTensor> int8 = centerNet.Int8Outputs(input);

        // deconv.1: kernel 4, stride 2, padding 1 on 4x4 → 8x8. Output row 3 is reached from input rows
        // (3 + 1 - kh) / 2 for kh = 0 and 2 (rows 2 and 1), likewise columns: 2x2 taps per input channel.
        var explanation = Assert.IsType<AccumulatorExplanation>(Explain(centerNet.Int8, input, "deconv.1", [0, 4, 3, 3]));
        Assert.Equal(32 * 4, explanation.Terms.Count);
        Assert.All(explanation.Terms, t => Assert.Contains(t.InputIndex[2], new[] { 1, 2 }));
        QuantizedConvTranspose2d layer = centerNet.Int8.Layers.OfType<QuantizedConvTranspose2d>().First();
        int expected = X86(explanation.Terms, explanation.InputZeroPoint, explanation.WeightZeroPoint, layer.Bias?[4] ?? 0f, explanation.InputScale, explanation.WeightScale, layer.OutputQParams, layer.FusedRelu);
        Assert.Equal(int8["deconv.1"].IntAt(0, 4, 3, 3), expected);
    }

    [Fact]
    public void TheFloatModelsValueIsShownAtTheSamePosition()
    {
        using var resnet = ReportModels.ResNet();
        using Tensor input = ReportModels.Batches(1, [2, 3, 32, 32], seed: 38)[0];
        Dictionary<string, (float[] Values, long[] Shape)> floats = resnet.FloatOutputs(input);
        int[] index = [1, 20, 2, 3];
        Explanation explanation = QuantExplain.Explain(resnet.Int8, resnet.FloatSide, input, "layer2.0.conv2", index);
        long[] shape = floats["layer2.0.conv2"].Shape;
        Assert.Equal([2L, 32, 4, 4], shape);
        long flat = (((((1 * 32) + 20) * 4) + 2) * 4) + 3;
        Assert.Equal(floats["layer2.0.conv2"].Values[flat], explanation.FloatValue);
        Assert.Contains("float model", explanation.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnknownLayerListsTheLayers()
    {
        using var resnet = ReportModels.ResNet();
        using Tensor input = ReportModels.Batches(1, [2, 3, 32, 32], seed: 39)[0];
        var error = Assert.Throws<ArgumentException>(() => Explain(resnet.Int8, input, "layer3.0.conv1", [0, 0, 0, 0]));
        Assert.Contains("SmallResNet", error.Message, StringComparison.Ordinal);
        Assert.Contains("'layer3.0.conv1'", error.Message, StringComparison.Ordinal);
        Assert.Contains("layer2.1.conv2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnIndexOutsideTheOutputIsRefusedWithItsShape()
    {
        using var resnet = ReportModels.ResNet();
        using Tensor input = ReportModels.Batches(1, [2, 3, 32, 32], seed: 40)[0];
        var outside = Assert.Throws<ArgumentOutOfRangeException>(() => Explain(resnet.Int8, input, "layer1.0.conv1", [0, 16, 0, 0]));
        Assert.Contains("SmallResNet.layer1.0.conv1", outside.Message, StringComparison.Ordinal);
        Assert.Contains("[2, 16, 8, 8]", outside.Message, StringComparison.Ordinal);
        Assert.Contains("dimension 1", outside.Message, StringComparison.Ordinal);
        var rank = Assert.Throws<ArgumentOutOfRangeException>(() => Explain(resnet.Int8, input, "fc", [0, 0, 0]));
        Assert.Contains("rank 2", rank.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DifferentModelsAreRefused()
    {
        using var resnet = ReportModels.ResNet();
        using var fashion = ReportModels.Fashion();
        using Tensor input = ReportModels.Batches(1, [2, 3, 32, 32], seed: 41)[0];
        var error = Assert.Throws<ArgumentException>(() => QuantExplain.Explain(resnet.Int8, fashion.FloatSide, input, "fc", [0, 0]));
        Assert.Contains("FashionCnn", error.Message, StringComparison.Ordinal);
        Assert.Contains("SmallResNet", error.Message, StringComparison.Ordinal);
    }

    private static Explanation Explain(IQuantizedModel model, Tensor input, string layer, int[] index) =>
        QuantExplain.Explain(model, model.Input.Forward(input.data<float>().ToArray(), Array.ConvertAll(input.shape, d => (int)d)), layer, index);

    /// <summary>docs/numerics.md §4, X86, written out: float bias, bs = (1f/sx)(1f/sw), M = (1f/sy)/bs, rne(v + zy).</summary>
    private static int X86(IEnumerable<ReceptiveTerm> terms, int zx, int zw, float bias, float sx, float sw, QParams output, bool relu)
    {
        int acc = 0;
        foreach (ReceptiveTerm term in terms)
        {
            acc += (term.Input - zx) * (term.Weight - zw);
        }

        float bs = (1.0f / sx) * (1.0f / sw);
        float m = (1.0f / output.Scale) / bs;
        float biasTerm = bias * bs;
        float v = ((float)acc + biasTerm) * m;
        if (relu)
        {
            v = MathF.Max(v, 0f);
        }

        float shifted = v + output.ZeroPoint;
        return (int)Math.Clamp(MathF.Round(shifted, MidpointRounding.ToEven), 0f, 255f);
    }
}
