using System;
using System.Globalization;
using System.IO;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Reports;
using QuantGen.Tests.Binding;
using QuantGen.Tests.Generator.Models.ResNet;
using QuantGen.Tests.Onnx;
using QuantGen.Tests.Reports;
using QuantGen.Tool;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Tool;

/// <summary>
/// The quantgen commands run in-process, as the tool's Main runs them, on files saved here: a model bound at Prepare
/// (AppendNet: its file carries its graph) and a model of the generated form (SmallResNet: its graph is in its class).
/// Expected values come from the models in memory, not from the file reader the tool uses.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class QuantGenToolTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("quantgen-tool-").FullName;
    private readonly AppendNet.Quantized _bound;
    private readonly string _boundFile;

    public QuantGenToolTests()
    {
        torch.manual_seed(41);
        using var model = new AppendNet();
        model.eval();
        using AppendNet.Observed observed = model.Prepare();
        observed.Calibrate(Enumerable.Range(0, 3).Select(_ => torch.randn(2, 3, 8, 8)));
        _bound = observed.Convert();
        _boundFile = Path.Combine(_folder, "append.qgen");
        _bound.Save(_boundFile);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Inspect_lists_the_model_its_graph_hash_and_every_layer_with_its_qparams()
    {
        (int code, string output, string error) = Run("inspect", _boundFile);
        Assert.True(code == QuantGenTool.Success, error);
        Assert.Contains("AppendNet", output, StringComparison.Ordinal);
        Assert.Contains("bound at Prepare", output, StringComparison.Ordinal);
        Assert.Contains(QuantGen.Binding.CapturedModules.Find(typeof(AppendNet))!.Hash, output, StringComparison.Ordinal);
        foreach (IQuantizedLayer layer in _bound.Layers)
        {
            Assert.Contains(layer.Layer, output, StringComparison.Ordinal);
        }

        // The input quantizer's scale and zero point, and the conv weight's shape, as the model in memory has them.
        QParams input = ((IQuantizedModel)_bound).Input.QParams;
        Assert.Contains($"quint8 scale {input.Scale.ToString("R", CultureInfo.InvariantCulture)} zp {input.ZeroPoint}", output, StringComparison.Ordinal);
        QuantizedConv2d conv = _bound.Layers.OfType<QuantizedConv2d>().First();
        Assert.Contains($"qint8 [{string.Join(", ", conv.Weight.Shape)}] per-channel ({conv.Weight.Shape[0]} on axis 0)", output, StringComparison.Ordinal);
        long weights = _bound.Layers.OfType<QuantizedConv2d>().Sum(c => (long)c.Weight.Count) + _bound.Layers.OfType<QuantizedLinear>().Sum(l => (long)l.Weight.Count);
        Assert.Contains($"{weights:N0} int8 weights", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Inspect_reads_a_generated_form_file_and_names_its_class()
    {
        using var resnet = ReportModels.ResNet();
        string file = Path.Combine(_folder, "resnet.qgen");
        resnet.Int8.Save(file);
        (int code, string output, string error) = Run("inspect", file);
        Assert.True(code == QuantGenTool.Success, error);
        Assert.Contains(SmallResNet.Quantized.GraphHash, output, StringComparison.Ordinal);
        Assert.Contains("generated: the graph is compiled into the class SmallResNet", output, StringComparison.Ordinal);
        Assert.Contains("layer1.0.conv1", output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_damaged_or_missing_file_is_refused_with_its_name()
    {
        byte[] bytes = File.ReadAllBytes(_boundFile);
        bytes[bytes.Length / 2] ^= 0x40;
        string damaged = Path.Combine(_folder, "damaged.qgen");
        File.WriteAllBytes(damaged, bytes);
        (int code, string output, string error) = Run("inspect", damaged);
        Assert.Equal(QuantGenTool.InputError, code);
        Assert.Contains(damaged, error, StringComparison.Ordinal);
        Assert.Contains("checksum", error, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("AppendNet", output, StringComparison.Ordinal);

        (code, _, error) = Run("inspect", Path.Combine(_folder, "none.qgen"));
        Assert.Equal(QuantGenTool.InputError, code);
        Assert.Contains("none.qgen", error, StringComparison.Ordinal);

        (code, _, _) = Run("frobnicate", _boundFile);
        Assert.Equal(QuantGenTool.UsageError, code);
    }

    [SkippableFact]
    public void Export_writes_an_onnx_file_that_onnx_runtime_runs_like_the_int8_model()
    {
        string onnx = Path.Combine(_folder, "append.onnx");
        (int code, string output, string error) = Run("export", _boundFile, "--onnx", onnx);
        Assert.True(code == QuantGenTool.Success, error);
        Assert.Contains(onnx, output, StringComparison.Ordinal);

        var random = new Random(3);
        float[] image = Enumerable.Range(0, 2 * 3 * 8 * 8).Select(_ => (float)((random.NextDouble() * 4) - 2)).ToArray();
        float[] expected = _bound.forward(image, [2, 3, 8, 8], out int[] shape);
        float step = _bound.Layers.OfType<QuantizedLinear>().Last().OutputQParams.Scale;

        // ORT's float execution of the QDQ graph as written (the QDQ reference) loads and runs it on every CPU.
        OrtResult asWritten = OnnxTestSupport.RunQdqAsWritten(File.ReadAllBytes(onnx), image, [2, 3, 8, 8]);
        Assert.Equal(shape, asWritten.Shape);
        float drift = expected.Zip(asWritten.Output).Max(p => MathF.Abs(p.First - p.Second)) / step;
        Assert.True(drift <= 1.01f, $"the QDQ reference is {drift:F2} steps from the int8 model's logits");

        // ORT's int8 kernels (skipped, saying why, on a CPU where they disagree with ORT's own float execution).
        OrtResult ort = OnnxTestSupport.Run(File.ReadAllBytes(onnx), image, [2, 3, 8, 8]);
        Assert.Equal(shape, ort.Shape);
        float worst = expected.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second)) / step;
        Assert.True(worst <= 1.01f, $"ONNX Runtime's output is {worst:F2} steps from the int8 model's");
    }

    [Fact]
    public void Export_of_a_generated_form_file_needs_its_assembly_and_works_with_it()
    {
        using var resnet = ReportModels.ResNet();
        string file = Path.Combine(_folder, "resnet.qgen");
        resnet.Int8.Save(file);
        string onnx = Path.Combine(_folder, "resnet.onnx");

        (int code, _, string error) = Run("export", file, "--onnx", onnx);
        Assert.Equal(QuantGenTool.InputError, code);
        Assert.Contains("--assembly", error, StringComparison.Ordinal);
        Assert.Contains("SmallResNet.Quantized.Load", error, StringComparison.Ordinal);
        Assert.False(File.Exists(onnx));

        // SmallResNet is compiled into this test assembly.
        (code, _, error) = Run("export", file, "--onnx", onnx, "--assembly", typeof(SmallResNet).Assembly.Location);
        Assert.True(code == QuantGenTool.Success, error);
        Assert.Equal(OnnxExporterBytes(resnet.Int8), File.ReadAllBytes(onnx));
    }

    [Fact]
    public void Bench_times_every_thread_count_on_the_models_input_shape()
    {
        (int code, string output, string error) = Run("bench", _boundFile, "--threads", "1,2", "--iterations", "3", "--warmup", "1");
        Assert.True(code == QuantGenTool.Success, error);

        // AppendNet: 3 input channels; its linear reads 8 channels x 4 x 4 after one 2x2 max pool, so the input is 8x8.
        Assert.Contains("input [1, 3, 8, 8]", output, StringComparison.Ordinal);
        string[] rows = output.Split('\n').Select(l => l.Trim()).Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\d+( +\d+\.\d{3}){3}$")).ToArray();
        Assert.Equal(["1", "2"], rows.Select(r => r.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0]));
        Assert.All(rows, r => Assert.Equal(4, r.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length));

        (code, _, error) = Run("bench", _boundFile, "--threads", "0");
        Assert.Equal(QuantGenTool.InputError, code);
        Assert.Contains("--threads", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Report_renders_a_saved_report_as_a_table_and_an_html_page()
    {
        using var resnet = ReportModels.ResNet();
        Tensor[] batches = ReportModels.Batches(2, [2, 3, 32, 32], seed: 7);
        QuantReport report = QuantReport.Compare(resnet.Observed, resnet.Int8, batches);
        string json = Path.Combine(_folder, "report.json");
        report.WriteJson(json);
        string html = Path.Combine(_folder, "report.html");

        (int code, string output, string error) = Run("report", json, "--html", html);
        Assert.True(code == QuantGenTool.Success, error);
        foreach (LayerReport row in report.Layers)
        {
            Assert.Contains(row.Layer, output, StringComparison.Ordinal);
        }

        Assert.Equal(QuantReportTests.WithoutImages(ReportHtml.Create(report)), QuantReportTests.WithoutImages(File.ReadAllText(html)));

        // Another threshold marks other layers: above every layer's SQNR, all of them.
        (code, output, _) = Run("report", json, "--threshold", "1000");
        Assert.Equal(QuantGenTool.Success, code);
        Assert.Contains($"{report.Layers.Count(l => double.IsFinite(l.RankingSqnr))} layer(s) below 1000.0 dB", output, StringComparison.Ordinal);

        File.WriteAllText(json, "{\"model\": \"M\"}");
        (code, _, error) = Run("report", json);
        Assert.Equal(QuantGenTool.InputError, code);
        Assert.Contains("'graphHash' is missing", error, StringComparison.Ordinal);
        foreach (Tensor batch in batches)
        {
            batch.Dispose();
        }
    }

    private static byte[] OnnxExporterBytes(IQuantizedModel model) => QuantGen.Onnx.OnnxExporter.Export(model);

    private static (int Code, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = QuantGenTool.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }
}
