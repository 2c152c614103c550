// QuickStart: seed 000's eager-mode post-training static quantization, step by step, in C#.
// Model: QuantStub -> conv1 -> relu -> conv2 -> DeQuantStub (M.cs). Run: dotnet run --project examples/QuickStart
// With --report [dir] it also writes the layer report (report.json, report.html), the graphs (graph*.dot and .svg)
// and prints the report table and one explained output value: dotnet run --project examples/QuickStart -- --report
// Without a folder the files go outside the source tree, to <temp>/quantgen-reports/QuickStart (printed at the end).
// With --save [file] it also saves the int8 model (.qgen, m.qgen by default), for the quantgen tool (README "The quantgen tool").
using System;
using System.Linq;
using QuantGen;
using QuickStart;
using TorchSharp;
using static TorchSharp.torch;

// The seed only picks the random weights and input; pass another as the first argument to try it.
int reportOption = Array.IndexOf(args, "--report");
bool OptionHasValue(int at) => at >= 0 && at + 1 < args.Length && !args[at + 1].StartsWith("--", StringComparison.Ordinal);
string? reportDirectory = reportOption < 0 ? null
    : OptionHasValue(reportOption) ? args[reportOption + 1]
    : System.IO.Path.Combine(System.IO.Path.GetTempPath(), "quantgen-reports", "QuickStart");
int saveOption = Array.IndexOf(args, "--save");
string? saveFile = saveOption < 0 ? null : OptionHasValue(saveOption) ? args[saveOption + 1] : "m.qgen";
string[] positional = args.Where((a, i) =>
    i != reportOption && !(OptionHasValue(reportOption) && i == reportOption + 1)
    && i != saveOption && !(OptionHasValue(saveOption) && i == saveOption + 1)).ToArray();
int seed = positional.Length > 0 ? int.Parse(positional[0], System.Globalization.CultureInfo.InvariantCulture) : 8;
torch.manual_seed(seed);
using var model = new M();
model.eval();

Section("Floating-point model");
Console.WriteLine("M(");
foreach ((string name, torch.nn.Module child) in model.named_children())
{
    Console.WriteLine($"  ({name}): {Describe(child)}");
}

Console.WriteLine(")");

Section("Quantize: X86 preset (PyTorch's get_default_qconfig('fbgemm'))");
QConfig qconfig = QConfig.X86;
Console.WriteLine(qconfig);

Section("Fuse conv1 + relu, prepare");
using M.Observed observed = model.Prepare(qconfig);
Console.WriteLine(observed);

Section("Calibrate");
using Tensor input = torch.randn(1, 1, 2, 3);
// Calibrate runs the batches under no_grad in eval mode; ConsoleProgress draws a progress bar in a terminal.
QuantGen.Reports.ConsoleProgress.Calibrate("Calibrating", progress => observed.Calibrate([input], progress));

M.Quantized int8 = observed.Convert();
Console.WriteLine(int8);

Section("Float vs int8 output");
using (torch.no_grad())
{
    using Tensor int8Out = int8.forward(input);
    using Tensor floatOut = model.forward(input);
    Console.WriteLine($"int8:  {Format(int8Out)}");
    Console.WriteLine($"float: {Format(floatOut)}");
}

Section("conv1 weight: float vs int8 (per-channel symmetric, scale = |w| / 127.5)");
Console.WriteLine($"int8 (dequantized): {int8.conv1.Weight}");
Console.WriteLine($"float:              {Format(model.Conv1.weight!)}");
Console.WriteLine($"int_repr:           {int8.conv1.Weight.IntReprToString()}");

Section("What conv1 receives: the quantized input");
QTensor qx = int8.quant.Forward(input.data<float>().ToArray(), [1, 1, 2, 3]);
Console.WriteLine($"int_repr:    {qx.IntReprToString()}");
Console.WriteLine($"dequantized: {Show(qx.Dequantize(), qx.Shape)}");
Console.WriteLine($"input_fp32:  {Format(input)}");

Section("conv1 (fused with relu) re-computed by hand from the integers");
QTensor conv1Out = int8.conv1.Forward(qx);
double[] seedFormula = HandComputation.SeedFormula(qx, int8.conv1, out int[] shape);
int[] byHand = HandComputation.ContractX86(qx, int8.conv1, out _);
Console.WriteLine($"float re-computation  relu(Y_q*sw*sx + B):       {Show(seedFormula.Select(v => (float)v).ToArray(), shape)}");
Console.WriteLine($"  ... requantized     round(Y_a / s_out):          {Show(seedFormula.Select(v => (float)Math.Round(v / int8.conv1.Scale)).ToArray(), shape, 0)}");
Console.WriteLine($"contract integers (X86, docs/numerics.md §4):      {Show(byHand.Select(v => (float)v).ToArray(), shape, 0)}");
Console.WriteLine($"int8.conv1(qx).int_repr():                         {conv1Out.IntReprToString()}");
bool agree = byHand.SequenceEqual(conv1Out.IntRepr());
Console.WriteLine(agree
    ? "The hand computation agrees with the int8 conv1 element for element."
    : "MISMATCH between the hand computation and the int8 conv1.");

Section("Scale and zero point of every quantization point");
Console.WriteLine($"quant:  scale={int8.quant.Scale:R}, zero_point={int8.quant.ZeroPoint}");
Console.WriteLine($"conv1:  scale={int8.conv1.Scale:R}, zero_point={int8.conv1.ZeroPoint}, weight scales=[{string.Join(", ", int8.conv1.Weight.QParams.Scales.Select(s => s.ToString("R")))}]");
Console.WriteLine($"conv2:  scale={int8.conv2.Scale:R}, zero_point={int8.conv2.ZeroPoint}, weight scales=[{string.Join(", ", int8.conv2.Weight.QParams.Scales.Select(s => s.ToString("R")))}]");
if (reportDirectory is not null)
{
    WriteReports(reportDirectory, model, observed, int8, input);
}

if (saveFile is not null)
{
    int8.Save(saveFile);
    Console.WriteLine($"Saved the int8 model to {System.IO.Path.GetFullPath(saveFile)}.");
}

return agree ? 0 : 1;

// --report: the accuracy report, one explained value and the graph drawings (docs/reports.md).
static void WriteReports(string directory, M model, M.Observed observed, M.Quantized int8, Tensor calibration)
{
    System.IO.Directory.CreateDirectory(directory);
    QuantGen.Reports.IFloatModel floatModel = QuantGen.Reports.FloatModel.FromModule(model, int8.Graph, observed.forward);
    Tensor[] inputs = [calibration, .. Enumerable.Range(0, 3).Select(_ => torch.randn(1, 1, 2, 3))];
    var report = QuantGen.Reports.QuantReport.Compare(floatModel, int8, inputs);
    Section("Layer report (int8 vs fused float)");
    QuantGen.Reports.ReportTable.Write(report);
    Console.WriteLine(report.BelowThreshold.Count == 0
        ? $"No layer below {report.SqnrThresholdDb:F0} dB."
        : $"{report.BelowThreshold.Count} layer(s) below {report.SqnrThresholdDb:F0} dB ({string.Join(", ", report.BelowThreshold.Select(l => l.Layer))}): the QuickStart calibrates on one 1x1x2x3 input, as seed 000 does, and three of the report's four inputs are new random ones, partly outside the ranges calibration saw (see the clipped column).");
    report.WriteJson(System.IO.Path.Combine(directory, "report.json"));
    QuantGen.Reports.ReportHtml.Write(report, System.IO.Path.Combine(directory, "report.html"));

    Section("Explain conv1[0, 0, 0, 0]");
    Console.WriteLine(QuantGen.Reports.QuantExplain.Explain(int8, floatModel, calibration, "conv1", [0, 0, 0, 0]));

    Section("Graphs");
    foreach ((QuantGen.Reports.GraphView view, string name) in new[] { (QuantGen.Reports.GraphView.Float, "graph-float"), (QuantGen.Reports.GraphView.Fused, "graph-fused"), (QuantGen.Reports.GraphView.Quantized, "graph") })
    {
        string dot = QuantGen.Reports.GraphDrawing.ToDot(int8, view);
        System.IO.File.WriteAllText(System.IO.Path.Combine(directory, name + ".dot"), dot);
        try
        {
            System.IO.File.WriteAllText(System.IO.Path.Combine(directory, name + ".svg"), QuantGen.Reports.GraphDrawing.ToSvg(dot));
        }
        catch (QuantGen.Reports.GraphvizNotFoundException missing)
        {
            Console.WriteLine(missing.Message);
        }
    }

    Console.WriteLine($"Wrote report.json, report.html, graph-float/graph-fused/graph .dot (and .svg where Graphviz is installed) to {System.IO.Path.GetFullPath(directory)}.");
    foreach (Tensor extra in inputs.Skip(1))
    {
        extra.Dispose();
    }
}

static string Describe(torch.nn.Module module) => module switch
{
    TorchSharp.Modules.Conv2d c => $"Conv2d({c.in_channels}, {c.out_channels}, kernel_size=({string.Join(", ", c.kernel_size)}), stride=({string.Join(", ", c.stride)}))",
    _ => module.GetType().Name + "()",
};

static void Section(string title)
{
    Console.WriteLine();
    Console.WriteLine($"## {title}");
}

static string Format(Tensor t)
{
    using Tensor cpu = t.detach().cpu().contiguous();
    return Show(cpu.data<float>().ToArray(), Array.ConvertAll(cpu.shape, d => (int)d));
}

// Nested brackets with 4 decimals, like torch prints a float tensor.
static string Show(float[] values, int[] shape, int decimals = 4)
{
    var text = new System.Text.StringBuilder("tensor(");
    int index = 0;
    Write(0);
    return text.Append(')').ToString();

    void Write(int dim)
    {
        text.Append('[');
        for (int i = 0; i < shape[dim]; i++)
        {
            if (i > 0)
            {
                text.Append(", ");
            }

            if (dim == shape.Length - 1)
            {
                text.Append(values[index++].ToString("F" + decimals, System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                Write(dim + 1);
            }
        }

        text.Append(']');
    }
}
