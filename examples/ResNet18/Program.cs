// ResNet-18 in graph mode (seed 001): torchvision's architecture written in TorchSharp with no stubs and no
// hand-listed fusions; QuantGen fuses conv-bn-relu / conv-bn / add-relu and inlines the BasicBlocks.
// Run: dotnet run --project examples/ResNet18 [-- --size 224 --batches 4 --seed 0]
using System;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using QuantGen;
using QuantGen.Calibration;
using QuantGen.Observers;
using QuantGen.Reports;
using ResNet18Example;
using TorchSharp;
using static TorchSharp.torch;

int size = Option("--size", 224), batches = Option("--batches", 4), seed = Option("--seed", 0);
torch.manual_seed(seed);
using var model = new ResNet18();
Randomize.BatchNormStatistics(model, seed);
model.eval();

Console.WriteLine($"ResNet-18, input 1x3x{size}x{size}, {batches} synthetic calibration batches, random seed {seed}");
Console.WriteLine();

using ResNet18.Observed observed = model.Prepare();
// Each batch is made as Calibrate asks for it and disposed after it has run (no_grad and eval are Calibrate's).
CalibrationProgress calibrated = ConsoleProgress.Calibrate(
    "Calibrating",
    progress => observed.Calibrate(Enumerable.Range(0, batches).Select(_ => torch.randn(1, 3, size, size)), progress));
Console.WriteLine($"Calibrated in {calibrated.Elapsed.TotalSeconds:F1} s. The first activation observers, with the qparams each computes:");
foreach (Observer observer in observed.Observers.Take(3))
{
    QParams q = observer.CalculateQParams();
    Console.WriteLine($"{observer.Layer}: {observer.Spec}");
    Console.WriteLine($"  Scaling Factor: {q.Scale.ToString("R", CultureInfo.InvariantCulture)}, Zero Point: {q.ZeroPoint}");
}

ResNet18.Quantized int8 = observed.Convert();
Console.WriteLine();
Console.WriteLine("First layer (conv1 + bn1 + relu, fused):");
Console.WriteLine($"  {int8.conv1}");
Console.WriteLine($"  weight scales (first 4 of 64): {string.Join(", ", int8.conv1.Weight.QParams.Scales.Take(4).Select(s => s.ToString("G6", CultureInfo.InvariantCulture)))}");
Console.WriteLine($"  output scale {int8.conv1.Scale.ToString("R", CultureInfo.InvariantCulture)}, zero point {int8.conv1.ZeroPoint}");
Console.WriteLine($"  example weights [0, 0, 0, :] as integers: [{string.Join(", ", Enumerable.Range(0, 7).Select(k => int8.conv1.Weight.IntAt(0, 0, 0, k)))}]");

using Tensor image = torch.rand(1, 3, size, size);
var clock = Stopwatch.StartNew();
using Tensor floatLogits = model.forward(image);
double floatMs = clock.Elapsed.TotalMilliseconds;
clock.Restart();
using Tensor int8Logits = int8.forward(image);
double int8Ms = clock.Elapsed.TotalMilliseconds;
float cosine = torch.nn.functional.cosine_similarity(floatLogits, int8Logits, dim: 1).item<float>();
long floatTop = floatLogits.argmax(1).item<long>(), int8Top = int8Logits.argmax(1).item<long>();
Console.WriteLine();
Console.WriteLine($"Float vs int8 logits: cosine similarity {cosine:F4}; top-1 class {floatTop} vs {int8Top}.");
Console.WriteLine($"One forward: float (TorchSharp) {floatMs:F0} ms, int8 (QuantGen) {int8Ms:F0} ms (the first call includes JIT warm-up); {QuantGen.Kernels.KernelDispatch.KernelInfo}.");

int Option(string name, int fallback)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
}
