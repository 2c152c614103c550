using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Reports;
using QuantGen.Tests.Generator.Models.ResNet;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Reports;

/// <summary>
/// QuantReport's figures, each against a computation written out here: cosine and SQNR re-computed in double
/// from the test's own taps, the layer error from the int8 layer run by hand on the float model's value, the
/// weight error from TorchSharp's float weights folded here, the clipping share counted directly.
/// </summary>
public sealed class QuantReportTests(QuantReportTests.Fixture fixture) : IClassFixture<QuantReportTests.Fixture>
{
    private readonly Calibrated<SmallResNet, SmallResNet.Observed, SmallResNet.Quantized> _resnet = fixture.ResNet;
    private readonly Tensor[] _inputs = fixture.Inputs;

    /// <summary>One calibrated model, its report inputs and its report, shared by the tests (the report is only read).</summary>
    public sealed class Fixture : IDisposable
    {
        public Fixture()
        {
            ResNet = ReportModels.ResNet();

            // Spread 1.5: the report's inputs are wider than the calibration data, so some activations clip.
            Inputs = ReportModels.Batches(2, [2, 3, 32, 32], seed: 21, spread: 1.5f);
            Report = QuantReport.Compare(ResNet.FloatSide, ResNet.Int8, Inputs);
        }

        internal Calibrated<SmallResNet, SmallResNet.Observed, SmallResNet.Quantized> ResNet { get; }

        public Tensor[] Inputs { get; }

        public QuantReport Report { get; }

        public void Dispose()
        {
            foreach (Tensor input in Inputs)
            {
                input.Dispose();
            }

            ResNet.Dispose();
        }
    }

    [Fact]
    public void OneRowPerGraphNodeInForwardOrder()
    {
        QuantReport report = Compare();
        Assert.Equal(_resnet.Int8.Graph.Nodes.Select(n => n.Name), report.Layers.Select(l => l.Layer));
        Assert.Equal(_resnet.Int8.Graph.Nodes.Select(n => n.Op), report.Layers.Select(l => l.Op));
        Assert.Equal("SmallResNet", report.Model);
        Assert.Equal(SmallResNet.Quantized.GraphHash, report.GraphHash);
        Assert.Equal(2, report.Batches);
    }

    [Fact]
    public void AccumulatedErrorIsCosineAndSqnrOfInt8AgainstFloatAtEachLayer()
    {
        QuantReport report = Compare();
        List<Dictionary<string, (float[] Values, long[] Shape)>> floats = _inputs.Select(_resnet.FloatOutputs).ToList();
        List<Dictionary<string, QTensor>> int8s = _inputs.Select(_resnet.Int8Outputs).ToList();
        foreach (LayerReport row in report.Layers)
        {
            var pairs = floats.Zip(int8s, (f, q) => (f[row.Layer].Values, q[row.Layer].Dequantize())).ToList();
            (double cosine, double sqnr, long elements) = Figures(pairs);
            AssertFigure(cosine, sqnr, elements, row.AccumulatedError, row.Layer);
        }
    }

    [Fact]
    public void LayerErrorRunsTheInt8LayerAloneOnTheFloatModelsInput()
    {
        QuantReport report = Compare();
        List<Dictionary<string, (float[] Values, long[] Shape)>> floats = _inputs.Select(_resnet.FloatOutputs).ToList();
        List<Dictionary<string, QTensor>> int8s = _inputs.Select(_resnet.Int8Outputs).ToList();

        // layer1.0.conv2 reads layer1.0.conv1's output: feed it the float value there, quantized with the
        // int8 model's qparams there (written out by name, not through the graph).
        QTensor Quantized(Dictionary<string, (float[] Values, long[] Shape)> f, Dictionary<string, QTensor> q, string layer) =>
            QTensor.Quantize(f[layer].Values, Array.ConvertAll(f[layer].Shape, d => (int)d), q[layer].QParams, q[layer].Format);
        var conv = floats.Zip(int8s, (f, q) => (f["layer1.0.conv2"].Values, _resnet.Int8.layer1_0_conv2.Forward(Quantized(f, q, "layer1.0.conv1")).Dequantize())).ToList();
        (double cosine, double sqnr, long elements) = Figures(conv);
        AssertFigure(cosine, sqnr, elements, report["layer1.0.conv2"].LayerError!.Value, "layer1.0.conv2");

        // The residual add reads layer1.0.conv2 (a) and maxpool (b).
        QuantizedAdd add = _resnet.Int8.Layers.OfType<QuantizedAdd>().Single(l => l.Layer == "layer1.0.add");
        var sums = floats.Zip(int8s, (f, q) => (f["layer1.0.add"].Values, add.Forward(Quantized(f, q, "layer1.0.conv2"), Quantized(f, q, "maxpool")).Dequantize())).ToList();
        (cosine, sqnr, elements) = Figures(sums);
        AssertFigure(cosine, sqnr, elements, report["layer1.0.add"].LayerError!.Value, "layer1.0.add");

        // The entry quantizes the float input itself: its layer error is the input's quantization error.
        var entry = _inputs.Select(x => (x.data<float>().ToArray(), ((IQuantizedModel)_resnet.Int8).Input.Forward(x.data<float>().ToArray(), [2, 3, 32, 32]).Dequantize())).ToList();
        (cosine, sqnr, elements) = Figures(entry);
        AssertFigure(cosine, sqnr, elements, report["input"].LayerError!.Value, "input");
    }

    [Fact]
    public void WeightErrorComparesDequantizedWeightsWithTorchSharpsFoldedWeights()
    {
        QuantReport report = Compare();

        // fc has no batch norm: its float weight is the module's own.
        float[] fcFloat = ((TorchSharp.Modules.Linear)Member("fc")).weight!.data<float>().ToArray();
        (double cosine, double sqnr, long elements) = Figures([(fcFloat, _resnet.Int8.fc.Weight.Dequantize())]);
        AssertFigure(cosine, sqnr, elements, report["fc"].WeightError!.Value, "fc");

        // conv1 + bn1, folded here with TorchSharp ops: w * (gamma * (1 / sqrt(var + eps))) per output channel.
        var conv1 = (TorchSharp.Modules.Conv2d)Member("conv1");
        var bn1 = (TorchSharp.Modules.BatchNorm2d)Member("bn1");
        using Tensor factor = bn1.weight! * (1.0f / torch.sqrt(bn1.running_var! + 1e-5f));
        using Tensor folded = conv1.weight! * factor.view(-1, 1, 1, 1);
        (cosine, sqnr, elements) = Figures([(folded.data<float>().ToArray(), _resnet.Int8.conv1.Weight.Dequantize())]);

        // TorchSharp's vectorised float32 fold may differ from the runtime's scalar fold in the last bit of a
        // weight; that moves the figures by far less than 1e-6 (cosine) and 1e-3 dB (SQNR).
        Assert.Equal(elements, report["conv1"].WeightError!.Value.Elements);
        Assert.Equal(cosine, report["conv1"].WeightError!.Value.Cosine, 1e-6);
        Assert.Equal(sqnr, report["conv1"].WeightError!.Value.SqnrDb, 1e-3);

        // Ops without weights have none.
        Assert.Null(report["maxpool"].WeightError);
        Assert.Null(report["layer1.0.add"].WeightError);
    }

    [Fact]
    public void ClippingShareCountsValuesMoreThanHalfAStepOutsideTheRepresentableRange()
    {
        QuantReport report = Compare();
        List<Dictionary<string, (float[] Values, long[] Shape)>> floats = _inputs.Select(_resnet.FloatOutputs).ToList();
        Dictionary<string, QTensor> int8 = _resnet.Int8Outputs(_inputs[0]);
        long clippedAnywhere = 0;
        foreach (LayerReport row in report.Layers)
        {
            QParams q = int8[row.Layer].QParams;
            int qmin = q.DType == QuantDType.QUInt8 ? 0 : -128, qmax = q.DType == QuantDType.QUInt8 ? 255 : 127;
            float low = (float)(qmin - q.ZeroPoint) * q.Scale, high = (float)(qmax - q.ZeroPoint) * q.Scale;

            // Clipped: quantize moves the value by more than half a step, i.e. beyond [low − s/2, high + s/2].
            double clipLow = low - (0.5 * (double)q.Scale), clipHigh = high + (0.5 * (double)q.Scale);
            float[] all = floats.SelectMany(f => f[row.Layer].Values).ToArray();
            long clipped = all.Count(v => v < clipLow || v > clipHigh);
            Assert.Equal(low, row.Range.Min);
            Assert.Equal(high, row.Range.Max);
            Assert.Equal(clipLow, row.Range.ClipLow, 1e-6);
            Assert.Equal(clipHigh, row.Range.ClipHigh, 1e-6);
            Assert.Equal(low - (0.5 * (double)q.Scale), row.Range.ClipLow);
            Assert.Equal(high + (0.5 * (double)q.Scale), row.Range.ClipHigh);
            Assert.Equal(q.Scale, row.Range.Scale);
            Assert.Equal(q.ZeroPoint, row.Range.ZeroPoint);
            Assert.Equal(all.Length, row.Range.Values);
            Assert.Equal(clipped, row.Range.Clipped);
            Assert.Equal(all.Min(), row.Range.FloatMin);
            Assert.Equal(all.Max(), row.Range.FloatMax);
            Assert.Equal(all.Length, row.Range.Histogram.Counts.Sum());
            clippedAnywhere += clipped;
        }

        Assert.True(clippedAnywhere > 0, "inputs 1.5x wider than the calibration data should clip somewhere");
    }

    [Fact]
    public void LayersBelowTheDefaultTwentyDecibelsAreMarkedAndNoOthers()
    {
        QuantReport report = Compare();
        Assert.Equal(20.0, report.SqnrThresholdDb);
        string[] expected = report.Layers.Where(l => l.LayerError!.Value.SqnrDb < 20.0).OrderBy(l => l.LayerError!.Value.SqnrDb).Select(l => l.Layer).ToArray();
        Assert.Equal(expected, report.BelowThreshold.Select(l => l.Layer));
        Assert.All(report.Layers, l => Assert.Equal(l.LayerError!.Value.SqnrDb < 20.0, l.BelowThreshold));
    }

    [Fact]
    public void TheThresholdIsAnOption()
    {
        // Between the lowest and the highest layer SQNR: exactly the layers under it are marked, however many.
        double[] sqnr = Compare().Layers.Select(l => l.LayerError!.Value.SqnrDb).Where(double.IsFinite).Order().ToArray();
        double middle = (sqnr[0] + sqnr[^1]) / 2;
        QuantReport report = QuantReport.Compare(_resnet.FloatSide, _resnet.Int8, _inputs, new ReportOptions { SqnrThresholdDb = middle });
        Assert.Equal(middle, report.SqnrThresholdDb);
        Assert.Equal(sqnr.Count(v => v < middle), report.BelowThreshold.Count);
        Assert.Contains($"below {middle:F1} dB (layer SQNR): ", report.ToString(), StringComparison.Ordinal);

        // Below every layer: none marked, and the table says so.
        QuantReport none = report.WithThreshold(sqnr[0] - 1);
        Assert.Empty(none.BelowThreshold);
        Assert.DoesNotContain(none.Layers, l => l.BelowThreshold);
        Assert.Contains($"no layer below {sqnr[0] - 1:F1} dB", none.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, ReportHtml.Create(none).Split("<tr class=\"below\">").Length - 1);

        Assert.Throws<ArgumentException>(() => QuantReport.Compare(_resnet.FloatSide, _resnet.Int8, _inputs, new ReportOptions { SqnrThresholdDb = double.NaN }));
    }

    [Fact]
    public void JsonCarriesEveryFigure()
    {
        QuantReport report = Compare();
        using JsonDocument json = JsonDocument.Parse(report.ToJson());
        JsonElement root = json.RootElement;
        Assert.Equal("SmallResNet", root.GetProperty("model").GetString());
        Assert.Equal(20.0, root.GetProperty("sqnrThresholdDb").GetDouble());
        JsonElement[] layers = root.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(report.Layers.Count, layers.Length);
        for (int i = 0; i < layers.Length; i++)
        {
            LayerReport row = report.Layers[i];
            Assert.Equal(row.Layer, layers[i].GetProperty("layer").GetString());
            Assert.Equal(row.Op.ToString(), layers[i].GetProperty("op").GetString());
            Assert.Equal(row.AccumulatedError.Cosine, layers[i].GetProperty("accumulatedError").GetProperty("cosine").GetDouble());
            Assert.Equal(row.AccumulatedError.SqnrDb, layers[i].GetProperty("accumulatedError").GetProperty("sqnrDb").GetDouble());
            Assert.Equal(row.Range.Clipped, layers[i].GetProperty("range").GetProperty("clipped").GetInt64());
            Assert.Equal(row.BelowThreshold, layers[i].GetProperty("belowThreshold").GetBoolean());
            Assert.Equal(row.Range.ClipLow, layers[i].GetProperty("range").GetProperty("clipLow").GetDouble());
            Assert.Equal(row.WeightError is null, layers[i].GetProperty("weightError").ValueKind == JsonValueKind.Null);
        }
    }

    [Fact]
    public void HtmlIsSelfContainedWithTheSqnrChartAndOneHistogramPerActivation()
    {
        QuantReport report = Compare();
        string html = ReportHtml.Create(report);
        Assert.StartsWith("<!DOCTYPE html>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("http://", html.Replace("http://www.w3.org", string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);
        const string marker = "data:image/svg+xml;base64,";
        string[] images = html.Split(marker).Skip(1).Select(part => part[..part.IndexOf('"', StringComparison.Ordinal)]).ToArray();
        Assert.Equal(1 + report.Layers.Count, images.Length);
        string sqnrChart = Encoding.UTF8.GetString(Convert.FromBase64String(images[0]));
        Assert.Contains("<svg", sqnrChart, StringComparison.Ordinal);
        Assert.Contains("SQNR", sqnrChart, StringComparison.Ordinal);
        for (int i = 0; i < report.Layers.Count; i++)
        {
            LayerReport row = report.Layers[i];
            Assert.Contains($"id=\"act-{row.Layer.Replace('.', '-')}\"", html, StringComparison.Ordinal);
            string histogram = Encoding.UTF8.GetString(Convert.FromBase64String(images[1 + i]));
            Assert.Contains("<svg", histogram, StringComparison.Ordinal);
            Assert.Contains($"max {row.Range.Max:F4}", histogram, StringComparison.Ordinal);
        }

        Assert.Equal(report.BelowThreshold.Count, html.Split("<tr class=\"below\">").Length - 1);
        Assert.Contains("<dt>threshold</dt><dd>20.0 dB", html, StringComparison.Ordinal);
    }

    [Fact]
    public void TerminalTableNamesEveryLayerAndTheWorst()
    {
        QuantReport report = Compare();
        string text = ReportTable.ToPlainText(report);
        foreach (LayerReport row in report.Layers)
        {
            Assert.Contains(row.Layer, text, StringComparison.Ordinal);
        }

        string expected = report.BelowThreshold.Count == 0
            ? "no layer below 20.0 dB (layer SQNR)"
            : "below 20.0 dB (layer SQNR): " + string.Join(", ", report.BelowThreshold.Select(l => l.Layer));
        Assert.Contains(expected, text, StringComparison.Ordinal);
        Assert.Contains("red = layer SQNR below 20.0 dB", text.ReplaceLineEndings(" ").Replace("  ", " ", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public void TheJsonReadsBackToTheSameReport()
    {
        QuantReport report = Compare();
        QuantReport again = QuantReport.FromJson(report.ToJson(), "report.json");
        Assert.Equal(report.ToJson(), again.ToJson());
        Assert.Equal(report.Layers.Select(l => l.Range.Histogram.Counts.Sum()), again.Layers.Select(l => l.Range.Histogram.Counts.Sum()));
        Assert.Equal(WithoutImages(ReportHtml.Create(report)), WithoutImages(ReportHtml.Create(again)));
    }

    /// <summary>The page without its embedded SVG charts: ScottPlot numbers the clip paths inside them from a process-wide counter.</summary>
    internal static string WithoutImages(string html) =>
        System.Text.RegularExpressions.Regex.Replace(html, "data:image/svg\\+xml;base64,[A-Za-z0-9+/=]+", "data:image/svg+xml;base64,…");

    [Fact]
    public void JsonThatIsNotAReportIsRefusedNamingWhatIsMissing()
    {
        var notJson = Assert.Throws<FormatException>(() => QuantReport.FromJson("{ not json", "out/report.json"));
        Assert.Contains("out/report.json", notJson.Message, StringComparison.Ordinal);
        Assert.Contains("not JSON", notJson.Message, StringComparison.Ordinal);

        // The first layer's range cut away: the message names the file, the layer and the property.
        var root = System.Text.Json.Nodes.JsonNode.Parse(Compare().ToJson())!;
        root["layers"]![0]!.AsObject().Remove("range");
        var missing = Assert.Throws<FormatException>(() => QuantReport.FromJson(root.ToJsonString(), "out/report.json"));
        Assert.Contains("out/report.json", missing.Message, StringComparison.Ordinal);
        Assert.Contains("'input'", missing.Message, StringComparison.Ordinal);
        Assert.Contains("'range' is missing", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheModuleOverloadGivesTheSameReport()
    {
        QuantReport again = QuantReport.Compare(_resnet.Model, _resnet.Forward, _resnet.Int8, _inputs);
        Assert.Equal(Compare().ToJson(), again.ToJson());
    }

    [Fact]
    public void TheObservedModelOverloadGivesTheSameReport()
    {
        // The generated Observed is an IObservedModel: QuantReport.Compare(observed, int8, inputs) in one call.
        QuantReport again = QuantReport.Compare(_resnet.Observed, _resnet.Int8, _inputs);
        Assert.Equal(Compare().ToJson(), again.ToJson());
    }

    [Fact]
    public void AnEmptyInputSetIsRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => QuantReport.Compare(_resnet.FloatSide, _resnet.Int8, Array.Empty<Tensor>()));
        Assert.Contains("SmallResNet", error.Message, StringComparison.Ordinal);
        Assert.Contains("input set is empty", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DifferentModelsAreRefused()
    {
        using var fashion = ReportModels.Fashion();
        var error = Assert.Throws<ArgumentException>(() => QuantReport.Compare(fashion.FloatSide, _resnet.Int8, _inputs));
        Assert.Contains("FashionCnn", error.Message, StringComparison.Ordinal);
        Assert.Contains("SmallResNet", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AFloatModelWithOtherLayersIsRefusedNamingThem()
    {
        using var fashion = ReportModels.Fashion();
        using Tensor image = torch.randn(2, 1, 28, 28);

        // Same class name, another architecture: the layers differ, and the message says which.
        IFloatModel impostor = FloatModel.Create("SmallResNet", (x, tap) => fashion.Forward(image, tap));
        var error = Assert.Throws<ArgumentException>(() => QuantReport.Compare(impostor, _resnet.Int8, _inputs));
        Assert.Contains("not the same architecture", error.Message, StringComparison.Ordinal);
        Assert.Contains("layer1.0.conv1", error.Message, StringComparison.Ordinal);
        Assert.Contains("fc1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnknownLayerNameListsTheLayers()
    {
        QuantReport report = Compare();
        var error = Assert.Throws<ArgumentException>(() => report["layer9.conv"]);
        Assert.Contains("layer9.conv", error.Message, StringComparison.Ordinal);
        Assert.Contains("layer1.0.conv1", error.Message, StringComparison.Ordinal);
    }

    private nn.Module Member(string path) => _resnet.Model.named_modules().Single(m => m.name == path).module;

    private QuantReport Compare() => fixture.Report;

    /// <summary>Cosine similarity and SQNR in double, written out: Σrq/√(Σr²·Σq²) and 10·log10(Σr²/Σ(r−q)²).</summary>
    private static (double Cosine, double Sqnr, long Elements) Figures(IEnumerable<(float[] Reference, float[] Quantized)> pairs)
    {
        double rq = 0, rr = 0, qq = 0, noise = 0;
        long elements = 0;
        foreach ((float[] reference, float[] quantized) in pairs)
        {
            Assert.Equal(reference.Length, quantized.Length);
            for (int i = 0; i < reference.Length; i++)
            {
                double r = reference[i], q = quantized[i];
                rq += r * q;
                rr += r * r;
                qq += q * q;
                noise += (r - q) * (r - q);
            }

            elements += reference.Length;
        }

        return (rq / (Math.Sqrt(rr) * Math.Sqrt(qq)), 10 * Math.Log10(rr / noise), elements);
    }

    private static void AssertFigure(double cosine, double sqnr, long elements, ErrorFigure actual, string layer)
    {
        Assert.True(elements == actual.Elements, $"{layer}: {elements} elements expected, {actual.Elements} in the report");

        // √(a·b) here vs √a·√b in the report's sums can differ in the last bits of a double.
        Assert.True(Math.Abs(cosine - actual.Cosine) < 1e-12, $"{layer}: cosine {cosine} expected, {actual.Cosine} in the report");
        Assert.True(Math.Abs(sqnr - actual.SqnrDb) < 1e-9, $"{layer}: SQNR {sqnr} expected, {actual.SqnrDb} in the report");
    }
}
