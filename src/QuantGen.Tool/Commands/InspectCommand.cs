using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Globalization;
using System.IO;
using System.Linq;
using QuantGen.Binding;
using QuantGen.Modules;
using QuantGen.Serialization;

namespace QuantGen.Tool.Commands;

/// <summary><c>quantgen inspect model.qgen</c>: the file's header, graph hash and every layer with its qparams, weights and size.</summary>
internal static class InspectCommand
{
    public static Command Create(TextWriter output)
    {
        var file = new Argument<FileInfo>("model") { Description = "A .qgen file saved by M.Quantized.Save." };
        var command = new Command("inspect", "Shows what a .qgen file holds: model, graph hash, format, and every layer with its output qparams, weights and size. The file is verified (size, checksum, every layer's values) before anything is shown.")
        {
            file,
        };
        command.SetAction(parsed =>
        {
            Write(parsed.GetValue(file)!.FullName, output);
            return QuantGenTool.Success;
        });
        return command;
    }

    private static void Write(string path, TextWriter output)
    {
        QGenFileContents contents = QGenFile.ReadContents(path);
        QGenFileInfo info = contents.Info;
        bool bound = QGenFile.CarriesGraph(info);
        long weights = contents.Layers.Sum(l => WeightOf(l)?.Count ?? 0);
        output.WriteLine(path);
        output.WriteLine($"  model        {info.Model}");
        output.WriteLine($"  graph hash   {info.GraphHash}");
        output.WriteLine(bound
            ? "  form         bound at Prepare: the file carries its graph, so `quantgen export` and `bench` run it as it is"
            : $"  form         generated: the graph is compiled into the class {info.Model}; `export` and `bench` need --assembly with the compiled project");
        output.WriteLine(Invariant($"  file         .qgen format v{info.Version}, {Bytes(info.ByteSize)}, CRC-32C {info.Checksum:x8} (verified)"));
        output.WriteLine(Invariant($"  layers       {contents.Layers.Count(l => l is not BoundTopology)} int8 layers, {weights:N0} int8 weights ({Bytes(weights)})"));
        if (contents.Layers.FirstOrDefault() is BoundTopology topology)
        {
            output.WriteLine(Invariant($"  graph        {topology.Steps.Count} int8 steps over {topology.ValueCount} values"));
        }

        output.WriteLine();
        var rows = new List<string[]> { new[] { "layer", "kind", "output", "weight", "payload" } };
        for (int i = 0; i < contents.Layers.Count; i++)
        {
            IQuantizedLayer layer = contents.Layers[i];
            QGenLayerInfo record = info.Layers[i];
            rows.Add([record.Name, record.Kind.ToString(), Output(layer), Weight(layer), Bytes(record.PayloadBytes)]);
        }

        int[] widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        foreach (string[] row in rows)
        {
            output.WriteLine("  " + string.Join("  ", row.Select((cell, c) => c == row.Length - 1 ? cell.PadLeft(widths[c]) : cell.PadRight(widths[c]))).TrimEnd());
        }

        output.WriteLine();
        output.WriteLine("  output: the layer's output dtype, scale and zero point; \"as input\" where the op passes its input's qparams on");
        output.WriteLine("  weight: dtype, shape, per-tensor or per-channel (how many channels) and the scales' range");
    }

    /// <summary>The output qparams a layer sets, or how it passes them on.</summary>
    private static string Output(IQuantizedLayer layer)
    {
        QParams? qparams = layer switch
        {
            QuantizeInput { IsObserved: true } quantize => quantize.QParams,
            QuantizedConv2d conv => conv.OutputQParams,
            QuantizedConvTranspose2d deconv => deconv.OutputQParams,
            QuantizedLinear linear => linear.OutputQParams,
            QuantizedBatchNorm2d norm => norm.OutputQParams,
            QuantizedAdd add => add.OutputQParams,
            QuantizedCat cat => cat.OutputQParams,
            QuantizedElementwise elementwise => elementwise.OutputQParams,
            _ => null,
        };
        return layer switch
        {
            BoundTopology => "(the graph: which layer reads which value)",
            _ when qparams is not null => Describe(qparams),
            _ => "as input",
        };
    }

    private static string Weight(IQuantizedLayer layer) => WeightOf(layer) is QTensor weight
        ? $"{weight.QParams.DType.ToTorchString().Replace("torch.", string.Empty, StringComparison.Ordinal)} [{string.Join(", ", weight.Shape)}] {Scales(weight.QParams)}"
        : string.Empty;

    private static QTensor? WeightOf(IQuantizedLayer layer) => layer switch
    {
        QuantizedConv2d conv => conv.Weight,
        QuantizedConvTranspose2d deconv => deconv.Weight,
        QuantizedLinear linear => linear.Weight,
        _ => null,
    };

    private static string Describe(QParams q) =>
        q.IsPerChannel
            ? $"{q.DType.ToTorchString().Replace("torch.", string.Empty, StringComparison.Ordinal)} {Scales(q)}"
            : Invariant($"{q.DType.ToTorchString().Replace("torch.", string.Empty, StringComparison.Ordinal)} scale {q.Scale.ToString("R", CultureInfo.InvariantCulture)} zp {q.ZeroPoint}");

    private static string Scales(QParams q) =>
        q.IsPerChannel
            ? Invariant($"per-channel ({q.Scales.Length} on axis {q.Axis}) scale {q.Scales.Min():G4}..{q.Scales.Max():G4}")
            : Invariant($"per-tensor scale {q.Scale.ToString("R", CultureInfo.InvariantCulture)} zp {q.ZeroPoint}");

    private static string Bytes(long bytes) => bytes switch
    {
        < 10 * 1024 => Invariant($"{bytes} B"),
        < 10 * 1024 * 1024 => Invariant($"{bytes / 1024.0:F1} KB"),
        _ => Invariant($"{bytes / (1024.0 * 1024.0):F1} MB"),
    };

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
