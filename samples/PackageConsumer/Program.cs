// Installs QuantGen the way a user does (packages from a feed, nothing from the repository), quantizes a
// small model and checks the int8 result, then uses the optional packages on it: QuantGen.Onnx exports it,
// QuantGen.Reports compares it layer by layer with the float model. Exit code 0 only if every check holds;
// otherwise the last line names the checks that failed.
// Run: bash build/pack-and-consume.sh
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using PackageConsumer;
using QuantGen.Kernels;
using QuantGen.Onnx;
using QuantGen.Reports;
using TorchSharp;
using static TorchSharp.torch;

torch.manual_seed(0);
using var model = new TinyNet();
model.eval();

// Calibrate on random images, as PyTorch's prepare/convert flow does with real ones.
using TinyNet.Observed observed = model.Prepare();
using (torch.no_grad())
{
    for (int i = 0; i < 8; i++)
    {
        using Tensor batch = torch.randn(4, 3, 32, 32);
        observed.forward(batch).Dispose();
    }
}

TinyNet.Quantized int8 = observed.Convert();
string runtimeVersion = typeof(KernelDispatch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "?";
Console.WriteLine($"TinyNet converted to int8 with QuantGen.Runtime {runtimeVersion}");
Console.WriteLine(KernelDispatch.KernelInfo);

using Tensor images = torch.randn(16, 3, 32, 32);
using Tensor floatLogits = model.forward(images);
using Tensor int8Logits = int8.forward(images);

// The same int8 forward without TorchSharp (float[] in, float[] out) must give the same numbers.
float[] values = images.data<float>().ToArray();
float[] spanLogits = int8.forward(values, [16, 3, 32, 32], out int[] outputShape);
bool spanSame = outputShape.SequenceEqual(new[] { 16, 10 }) && spanLogits.SequenceEqual(int8Logits.data<float>().ToArray());

// The model file: save, load back (the packaged generator emits Save/Load), same numbers.
string file = Path.Combine(Path.GetTempPath(), $"PackageConsumer-{Environment.ProcessId}.qgen");
bool fileSame;
try
{
    int8.Save(file);
    float[] loadedLogits = TinyNet.Quantized.Load(file).forward(values, [16, 3, 32, 32], out _);
    fileSame = loadedLogits.SequenceEqual(spanLogits);
    Console.WriteLine($"saved and loaded {new FileInfo(file).Length} bytes: same logits: {fileSame}");
}
finally
{
    File.Delete(file);
}

// --save-model PATH keeps a copy of the model file (build/pack-and-consume.sh runs the packaged quantgen tool on it).
int saveOption = Array.IndexOf(args, "--save-model");
if (saveOption >= 0 && saveOption + 1 < args.Length)
{
    int8.Save(args[saveOption + 1]);
    Console.WriteLine($"saved the model file to {args[saveOption + 1]}");
}

// int8 vs float: how many output quantization steps apart, and whether the predicted class agrees.
float step = int8.fc.Scale;
float maxDiff = (floatLogits - int8Logits).abs().max().item<float>();
long agree = floatLogits.argmax(1).eq(int8Logits.argmax(1)).sum().item<long>();
float cosine = torch.nn.functional.cosine_similarity(floatLogits.flatten(), int8Logits.flatten(), dim: 0).item<float>();
Console.WriteLine($"int8 vs float logits (16 images x 10 classes): max |diff| {maxDiff:G4} = {maxDiff / step:F2} output steps (scale {step:G4}); cosine {cosine:F4}; top-1 agrees on {agree}/16");
Console.WriteLine($"span forward (no TorchSharp) equals the Tensor forward: {spanSame}");

var failed = new List<string>();
void Check(bool ok, string what)
{
    if (!ok)
    {
        failed.Add(what);
    }
}

Check(spanSame, "span forward differs from the Tensor forward");
Check(fileSame, "the loaded model file gives other logits");
// Post-training quantization of a random model: a few steps of accumulated rounding is expected; more would
// mean the generated code or the kernels are wrong. (The repository's tests check exactness per op.)
Check(maxDiff <= 4 * step, $"int8 logits are {maxDiff / step:F2} output steps from float (at most 4 expected)");
Check(cosine >= 0.99f, $"int8 vs float cosine {cosine:F4} (at least 0.99 expected)");

// QuantGen.Onnx: the int8 model as a QDQ ONNX file. (Whether ONNX Runtime computes the same numbers is the
// repository's tests' business; here it is enough that the package loads, with protobuf, and writes.)
string onnxFile = Path.Combine(Path.GetTempPath(), $"PackageConsumer-{Environment.ProcessId}.onnx");
try
{
    OnnxExporter.Export(int8, onnxFile);
    long onnxBytes = File.Exists(onnxFile) ? new FileInfo(onnxFile).Length : 0;
    Console.WriteLine($"QuantGen.Onnx: exported {onnxBytes} bytes of QDQ ONNX");
    Check(onnxBytes > 0, $"QuantGen.Onnx: OnnxExporter.Export left {onnxFile} missing or empty");
}
finally
{
    File.Delete(onnxFile);
}

// QuantGen.Reports: the layer report on two batches, one row per node of the int8 graph, in forward order.
// (The report runs the observed model with observation paused: the observers do not see these batches.)
using Tensor batch1 = torch.randn(4, 3, 32, 32);
using Tensor batch2 = torch.randn(4, 3, 32, 32);
QuantReport report = QuantReport.Compare(observed, int8, [batch1, batch2]);
string[] reportLayers = report.Layers.Select(l => l.Layer).ToArray();
string[] graphLayers = int8.Graph.Nodes.Select(n => n.Name).ToArray();
LayerReport worst = report.Layers.OrderBy(l => l.RankingSqnr).First();
Console.WriteLine($"QuantGen.Reports: {reportLayers.Length} layer rows for {graphLayers.Length} graph nodes over {report.Batches} batches; lowest layer SQNR {worst.RankingSqnr:F1} dB ({worst.Layer}); {report.BelowThreshold.Count} below {report.SqnrThresholdDb:F0} dB");
Check(reportLayers.SequenceEqual(graphLayers), $"QuantGen.Reports: the report's rows [{string.Join(", ", reportLayers)}] are not the graph's layers [{string.Join(", ", graphLayers)}]");

Console.WriteLine(failed.Count == 0 ? "PackageConsumer: OK" : $"PackageConsumer: FAILED: {string.Join("; ", failed)}");
return failed.Count == 0 ? 0 : 1;
