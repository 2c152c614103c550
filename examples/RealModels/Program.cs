// Real models: ResNet-50, MobileNetV2 and VGG-16-BN written the way TorchSharp users write them (fields typed
// Module<Tensor, Tensor>, Sequentials built in loops and helpers, blocks that are plain modules, dispose scopes in
// forward), with only [Quantize] and partial added. Each one is prepared, calibrated on random batches, converted
// to int8 and compared with the float model on a fixed random batch. Ops without an int8 kernel (e.g. ReLU6) run
// in float; Summary() lists them.
// Run: dotnet run --project examples/RealModels [-- resnet50|mobilenetv2|vgg16] [--size N] [--batches N] [--seed N]
//                                               [--allow-near-ties]
// Exit code 0 when every model run has SQNR >= 25 dB and the same top-1 class as float on every image, 1 if
// not, 2 for bad arguments.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using RealModels;
using TorchSharp;
using static TorchSharp.torch;

const int EvalImages = 4;
const int LatencyRuns = 9;
string[] modelNames = { "resnet50", "mobilenetv2", "vgg16" };

var chosen = new List<string>();
int? sizeOption = null;
int batches = 4, seed = 0;
bool allowNearTies = false;
for (int i = 0; i < args.Length; i++)
{
    string a = args[i];
    switch (a)
    {
        case "--size":
        case "--batches":
        case "--seed":
            if (i + 1 >= args.Length || !int.TryParse(args[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int value))
            {
                Console.Error.WriteLine($"{a} needs an integer value.");
                return 2;
            }

            i++;
            if (a == "--size") sizeOption = value;
            else if (a == "--batches") batches = value;
            else seed = value;
            break;
        case "--allow-near-ties": allowNearTies = true; break;
        case "-h":
        case "--help":
            Usage(Console.Out);
            return 0;
        default:
            if (a.StartsWith('-') || !modelNames.Contains(a.ToLowerInvariant()))
            {
                Console.Error.WriteLine($"Unknown argument '{a}'.");
                Usage(Console.Error);
                return 2;
            }

            chosen.Add(a.ToLowerInvariant());
            break;
    }
}

if (sizeOption is < 32 || batches < 1)
{
    Console.Error.WriteLine("--size must be at least 32 (five stride-2 stages) and --batches at least 1.");
    return 2;
}

if (chosen.Count == 0) chosen.AddRange(modelNames);

Console.WriteLine($"QuantGen on real TorchSharp models: {string.Join(", ", chosen)}; {batches} calibration batches, {EvalImages} test images, random seed {seed}.");
var results = new List<(string Model, Comparison.Result? Result, string? Failure)>();
foreach (string name in chosen)
{
    // Every model starts from the same seed, so running one alone prints the same numbers as the full run.
    torch.manual_seed(seed);
    int size = sizeOption ?? 224;
    var run = name switch
    {
        "resnet50" => Run("ResNet-50", () => new ResNet50(), m => m.Prepare(), o => o.Convert(), size),
        "mobilenetv2" => Run("MobileNetV2", () => new MobileNetV2(), m => m.Prepare(), o => o.Convert(), size),
        _ => Run("VGG-16-BN", () => new Vgg16Bn(), m => m.Prepare(), o => o.Convert(), size),
    };
    results.Add(run);
    GC.Collect();
}

Console.WriteLine();
Console.WriteLine("Summary:");
foreach (var (model, result, failure) in results)
{
    Console.WriteLine($"  {model,-12} {(failure is null ? "PASS" : "FAIL")}  {result?.ToString() ?? ""}{(failure is null ? "" : $"  <- {failure}")}");
}

int failed = results.Count(r => r.Failure is not null);
if (failed > 0)
{
    Console.WriteLine();
    Console.WriteLine($"FAILED: {failed} of {results.Count} models do not match float closely enough (need SQNR >= {Comparison.MinSqnrDb:F0} dB and the same top-1 class on every image{(allowNearTies ? ", near ties allowed" : "")}).");
    return 1;
}

return 0;

// One model through the user's flow: build, Prepare, calibrate, Convert, compare with float.
(string, Comparison.Result?, string?) Run<TModel, TObserved, TQuantized>(
    string title, Func<TModel> create, Func<TModel, TObserved> prepare, Func<TObserved, TQuantized> convert, int size)
    where TModel : nn.Module<Tensor, Tensor>
    where TObserved : QuantGen.Binding.BoundObservedModel
    where TQuantized : QuantGen.Binding.BoundQuantizedModel
{
    var clock = Stopwatch.StartNew();
    using TModel model = create();
    Setup(title, model, size, clock);
    using TObserved observed = prepare(model);
    Calibrate(observed, size);
    string summary = observed.Summary();
    clock.Restart();
    TQuantized int8 = convert(observed);
    Console.WriteLine($"Converted in {clock.Elapsed.TotalSeconds:F1} s.");
    return Evaluate(title, model, x => int8.forward(x), summary, size);
}

void Setup(string title, nn.Module<Tensor, Tensor> model, int size, Stopwatch built)
{
    Randomize.BatchNormStatistics(model, seed);
    model.eval();
    long parameters = model.parameters().Sum(p => p.numel());
    Console.WriteLine();
    Console.WriteLine($"== {title}: {parameters / 1e6:F1} M parameters, input Nx3x{size}x{size} (built in {built.Elapsed.TotalSeconds:F1} s) ==");
}

void Calibrate(QuantGen.IObservedModel observed, int size)
{
    QuantGen.Calibration.CalibrationProgress done = QuantGen.Reports.ConsoleProgress.Calibrate(
        "Calibrating",
        progress => observed.Calibrate(Enumerable.Range(0, batches).Select(_ => torch.randn(1, 3, size, size)), progress));
    Console.WriteLine($"Calibrated on {done.BatchesDone} random 1x3x{size}x{size} batches in {done.Elapsed.TotalSeconds:F1} s.");
}

(string, Comparison.Result?, string?) Evaluate(string title, nn.Module<Tensor, Tensor> model, Func<Tensor, Tensor> int8Forward, string summary, int size)
{
    Console.WriteLine(summary.TrimEnd());

    using Tensor images = torch.randn(EvalImages, 3, size, size);
    var clock = Stopwatch.StartNew();
    Tensor floatLogits;
    using (torch.no_grad())
    {
        floatLogits = model.forward(images);
    }

    double floatMs = clock.Elapsed.TotalMilliseconds;
    Tensor int8Logits;
    double int8Ms;
    try
    {
        clock.Restart();
        int8Logits = int8Forward(images);
        int8Ms = clock.Elapsed.TotalMilliseconds;
    }
    catch (Exception e)
    {
        floatLogits.Dispose();
        Console.WriteLine($"FAIL: the int8 forward threw {e.GetType().Name}: {e.Message}");
        return (title, null, $"int8 forward threw {e.GetType().Name}");
    }

    using (floatLogits)
    using (int8Logits)
    {
        Comparison.Result result = Comparison.Compare(floatLogits, int8Logits);
        string margins = string.Join(", ", result.FloatMargins.Select(m => m.ToString("F1", CultureInfo.InvariantCulture)));
        Console.WriteLine($"Float vs int8 logits on {EvalImages} random images: {result}");
        Console.WriteLine($"  top-1 float [{string.Join(", ", result.FloatTop1)}], int8 [{string.Join(", ", result.Int8Top1)}]; float top-1/top-2 gap in int8 RMS errors: [{margins}]");
        Console.WriteLine($"  first forward of {EvalImages}x3x{size}x{size} (includes warm-up): float (TorchSharp) {floatMs:F0} ms, int8 (QuantGen) {int8Ms:F0} ms");
        using Tensor one = images[0..1];
        double floatMedian = MedianMs(() => model.forward(one).Dispose());
        double int8Median = MedianMs(() => int8Forward(one).Dispose());
        Console.WriteLine($"  batch-1 latency, median of {LatencyRuns} after warm-up, {KernelThreadsText()}: float (TorchSharp) {floatMedian:F2} ms, int8 (QuantGen) {int8Median:F2} ms ({floatMedian / int8Median:F2}x)");
        string? failure = result.Failure(allowNearTies: allowNearTies);
        Console.WriteLine(failure is null ? $"{title}: PASS" : $"{title}: FAIL: {failure}");
        return (title, result, failure);
    }
}

static double MedianMs(Action forward)
{
    using var noGrad = torch.no_grad();
    forward();
    forward();
    var times = new double[LatencyRuns];
    for (int i = 0; i < times.Length; i++)
    {
        var clock = Stopwatch.StartNew();
        forward();
        times[i] = clock.Elapsed.TotalMilliseconds;
    }

    Array.Sort(times);
    return times[times.Length / 2];
}

static string KernelThreadsText() => $"{Environment.ProcessorCount} cores";

static void Usage(System.IO.TextWriter to)
{
    to.WriteLine("Usage: dotnet run --project examples/RealModels -- [resnet50|mobilenetv2|vgg16 ...] [--size N] [--batches N] [--seed N] [--allow-near-ties]");
    to.WriteLine("  (no model: all three in turn; --size: input height and width, default 224; --batches: calibration batches, default 4)");
}
