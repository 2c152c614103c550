// Fashion-MNIST accuracy benchmark: trains FashionCnn with TorchSharp (or loads its cached weights),
// quantizes it with every calibration method, with and without bias correction, and prints fp32 vs int8 top-1,
// model sizes and time per image; then keeps the most sensitive layers in float until a maximum drop is met.
// Needs Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist).
// Run: dotnet run -c Release --project examples/FashionMnist [-- --epochs 2 --train-limit N --test-limit N
//      --calibration 1000 --batch-size 256 --max-drop 0.3 --fallback-method Histogram --data DIR --cache DIR --onednn --ranges]
// With --qat [--qat-steps N] it prints the quantization-aware training table instead: fp32, the best post-training
// int8 and QAT int8 (8-bit, and 4-bit activations and weights, where post-training quantization loses), and the
// time of a QAT training step against a float one.
// With --report [DIR] it writes only the layer report of the default (X86, histogram) int8 model instead of the
// table: report.json, report.html, graph*.dot/.svg, and prints the report table and one explained value. Without
// a folder the files go outside the source tree, to <temp>/quantgen-reports/FashionMnist.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using FashionMnist;
using QuantGen;
using QuantGen.Kernels;
using QuantGen.Qat;
using TorchSharp;
using static TorchSharp.torch;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
int epochs = IntOption("--epochs", FashionCnnTraining.Default.Epochs);
int? trainLimit = args.Contains("--train-limit") ? IntOption("--train-limit", 0) : null;
int testLimit = IntOption("--test-limit", 10_000);
int calibrationCount = IntOption("--calibration", 1000);
int batchSize = IntOption("--batch-size", FashionCnnTraining.Default.BatchSize);
double maxDrop = DoubleOption("--max-drop", 0.3);
string fallbackMethod = StringOption("--fallback-method", "Histogram");
string? dataDirectory = StringOption("--data", null!);
string? cacheDirectory = StringOption("--cache", null!);
bool reduceRange = !args.Contains("--onednn");
bool printRanges = args.Contains("--ranges");
string? reportDirectory = args.Contains("--report") ? StringOption("--report", Path.Combine(Path.GetTempPath(), "quantgen-reports", "FashionMnist")) : null;

var total = Stopwatch.StartNew();
FashionMnistData data;
try
{
    data = FashionMnistData.Load(dataDirectory, testLimit: testLimit);
}
catch (FileNotFoundException missing)
{
    Console.Error.WriteLine(missing.Message);
    return 2;
}

var training = new FashionCnnTraining(epochs, trainLimit, BatchSize: batchSize, CacheDirectory: cacheDirectory, DataDirectory: dataDirectory);
int trained = training.TrainCount(data.Train.Count);
FashionMnistSplit validation = data.Train.Slice(data.Train.Count - FashionCnnTraining.ValidationCount, FashionCnnTraining.ValidationCount);
FashionMnistSplit calibration = data.Train.Slice(0, Math.Min(calibrationCount, trained));
FashionMnistSplit test = data.Test;
Console.WriteLine($"Fashion-MNIST from {data.Directory}: training on {trained} images for {epochs} epochs, {calibration.Count} calibration images,");
Console.WriteLine($"{validation.Count} validation images (training images {data.Train.Count - validation.Count}..{data.Train.Count - 1}, for the fallback's choices), {test.Count} test images.");
Console.WriteLine($"Activations quint8 affine{(reduceRange ? " with reduce_range (X86/fbgemm preset)" : " without reduce_range (onednn)")}, weights per-channel symmetric qint8; {KernelDispatch.KernelInfo}.");
Console.WriteLine();

var clock = Stopwatch.StartNew();
using FashionCnn model = FashionCnn.CreateTrained(training, data, Console.Out);
Console.WriteLine($"Model ready in {clock.Elapsed.TotalSeconds:F1} s.");
double floatTest = FashionCnnQuantization.Accuracy(model, test);
double floatValidation = FashionCnnQuantization.Accuracy(model, validation);
Console.WriteLine($"fp32 top-1: {floatTest:F2}% on the test images, {floatValidation:F2}% on the validation images.");
Console.WriteLine();
if (reportDirectory is not null)
{
    WriteReport(reportDirectory, model, calibration, test);
    return 0;
}

if (args.Contains("--qat"))
{
    int qatSteps = IntOption("--qat-steps", 300);
    QatTable(model, data.Train.Slice(0, trained), calibration, test, floatTest, new QatSchedule(Steps: qatSteps), new QatSchedule(Steps: 3 * qatSteps, LearningRate: 1e-3));
    Console.WriteLine($"Done in {total.Elapsed.TotalSeconds:F0} s.");
    return 0;
}

var rows = new List<(string Method, string Correction, double Accuracy)>();
FashionCnn.Quantized? anyInt8 = null;
foreach (CalibrationMethod method in CalibrationMethod.All(reduceRange))
{
    clock.Restart();
    (FashionCnn.Quantized plain, FashionCnn.Quantized? corrected) = FashionCnnQuantization.Quantize(model, new QConfigMapping(method.QConfig), calibration, biasCorrection: true);
    double seconds = clock.Elapsed.TotalSeconds;
    rows.Add((method.Name, "no", FashionCnnQuantization.Accuracy(plain, test)));
    rows.Add((method.Name, "yes", FashionCnnQuantization.Accuracy(corrected!, test)));
    anyInt8 ??= plain;
    if (printRanges)
    {
        PrintRanges(method);
    }

    Console.WriteLine($"  {method.Name}: calibrated, converted and bias-corrected in {seconds:F1} s; int8 top-1 {rows[^2].Accuracy:F2}% / {rows[^1].Accuracy:F2}% with bias correction");
}

Console.WriteLine();
Console.WriteLine($"| method | bias correction | int8 top-1 (%) | drop vs fp32 {floatTest:F2}% (points) |");
Console.WriteLine("|---|---|---:|---:|");
foreach ((string method, string correction, double accuracy) in rows)
{
    Console.WriteLine($"| {method} | {correction} | {accuracy:F2} | {floatTest - accuracy:F2} |");
}

(string bestMethod, string bestCorrection, double bestAccuracy) = rows.MaxBy(r => r.Accuracy);
Console.WriteLine();
Console.WriteLine($"Best: {bestMethod}{(bestCorrection == "yes" ? " + bias correction" : string.Empty)}, {bestAccuracy:F2}% ({floatTest - bestAccuracy:F2} points below fp32; QuantGen aims for at most 0.3).");

long floatBytes = FashionCnnQuantization.FloatBytes(model);
long int8Bytes = FashionCnnQuantization.Int8Bytes(anyInt8!);
Console.WriteLine($"Model size: fp32 {floatBytes / 1024.0:F1} KiB (parameters and buffers), int8 {int8Bytes / 1024.0:F1} KiB (.qgen file), {(double)floatBytes / int8Bytes:F2}x smaller.");

foreach (int batch in new[] { 1, FashionCnnQuantization.BatchSize })
{
    int images = batch == 1 ? Math.Min(500, test.Count) : Math.Min(5000, test.Count);
    double floatMicros = TimePerImage(batch, images, (start, n) =>
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        model.forward(test.Images(start, n));
    });
    double int8Micros = TimePerImage(batch, images, (start, n) =>
        anyInt8!.forward(test.NormalizedValues(start, n), [n, 1, FashionMnistSplit.Side, FashionMnistSplit.Side], out _));
    Console.WriteLine($"Time per image, batch {batch}: fp32 (TorchSharp) {floatMicros:F1} µs, int8 (QuantGen) {int8Micros:F1} µs ({floatMicros / int8Micros:F2}x), best of 3 passes over {images} images, {Environment.ProcessorCount} cores.");
}

Console.WriteLine();
CalibrationMethod fallback = CalibrationMethod.All(reduceRange).FirstOrDefault(m => m.Name.Equals(fallbackMethod, StringComparison.OrdinalIgnoreCase))
    ?? throw new ArgumentException($"--fallback-method: unknown method '{fallbackMethod}'; one of {string.Join(", ", CalibrationMethod.All().Select(m => m.Name))}.");
Console.WriteLine($"Sensitivity fallback ({fallback.Name}, no bias correction, max drop {maxDrop:F2} points on the validation images, fp32 {floatValidation:F2}%):");
try
{
    clock.Restart();
    FallbackResult result = SensitivityFallback.Run(model, fallback.QConfig, calibration, validation, floatValidation, maxDrop, biasCorrection: false);
    Console.WriteLine($"  all int8: {result.AllInt8Accuracy:F2}% (drop {floatValidation - result.AllInt8Accuracy:F2})");
    foreach ((string layer, double accuracy) in result.Sensitivity)
    {
        double gain = accuracy - result.AllInt8Accuracy;
        string effect = gain >= 0 ? $"recovers {gain:F2} points" : $"loses {-gain:F2} points";
        Console.WriteLine($"  only {layer,-5} in float: {accuracy:F2}% ({effect})");
    }

    double fallbackTest = FashionCnnQuantization.Accuracy(result.Model, test);
    string kept = result.FloatLayers.Count == 0 ? "no layer needs to stay in float" : $"kept in float: {string.Join(", ", result.FloatLayers)}";
    bool met = floatValidation - result.ValidationAccuracy <= maxDrop;
    Console.WriteLine($"  {kept}; validation {result.ValidationAccuracy:F2}% (drop {floatValidation - result.ValidationAccuracy:F2}{(met ? string.Empty : ", still above the maximum with every candidate in float")}), test {fallbackTest:F2}% (drop {floatTest - fallbackTest:F2}) [{clock.Elapsed.TotalSeconds:F0} s]");
}
catch (NotSupportedException notYet)
{
    Console.WriteLine($"  not available in this build: {notYet.Message}");
}

Console.WriteLine();
Console.WriteLine($"Done in {total.Elapsed.TotalSeconds:F0} s.");
return 0;

// --qat: PyTorch's QAT flow on the trained model against the best post-training result, at 8 and at 4 bits.
static void QatTable(FashionCnn model, FashionMnistSplit train, FashionMnistSplit calibration, FashionMnistSplit test, double floatTest, QatSchedule schedule, QatSchedule fourBitSchedule)
{
    var rows = new List<(string Setting, double Ptq, string PtqMethod, double Qat, double QatEval)>();
    double qatSeconds = 0;
    foreach ((string setting, QatQConfig qat, (string Name, QConfig QConfig)[] ptq, QatSchedule steps) in new[]
    {
        ("8-bit (X86 preset)", QConfig.QatX86, new[] { ("MinMax", CalibrationMethod.All()[0].QConfig), ("Histogram", CalibrationMethod.All()[2].QConfig), ("Entropy", CalibrationMethod.All()[4].QConfig) }, schedule),
        ("4-bit activations and weights", FashionCnnQat.FourBit, new[] { ("MinMax", FashionCnnQat.FourBitPtq(histogram: false)), ("Histogram", FashionCnnQat.FourBitPtq(histogram: true)) }, fourBitSchedule),
    })
    {
        Console.WriteLine($"{setting}: QAT runs {steps.Steps} steps of {steps.BatchSize} images from the trained weights (Adam, lr {steps.LearningRate}), observers frozen after {steps.FreezeObserversAt:P0}, BatchNorm after {steps.FreezeBatchNormAt:P0} of the steps.");
        (string bestName, double bestPtq) = ("", double.NegativeInfinity);
        foreach ((string name, QConfig qconfig) in ptq)
        {
            (FashionCnn.Quantized plain, FashionCnn.Quantized? corrected) = FashionCnnQuantization.Quantize(model, new QConfigMapping(qconfig), calibration, biasCorrection: true);
            foreach ((FashionCnn.Quantized candidate, string suffix) in new[] { (plain, ""), (corrected!, " + bias correction") })
            {
                double accuracy = FashionCnnQuantization.Accuracy(candidate, test);
                if (accuracy > bestPtq)
                {
                    (bestName, bestPtq) = (name + suffix, accuracy);
                }
            }
        }

        Console.WriteLine($"{setting}: best post-training {bestName} {bestPtq:F2}%; QAT fine-tuning...");
        (FashionCnn.Quantized int8, FashionCnn.Qat qatModel, double seconds) = FashionCnnQat.FineTune(model, train, qat, steps, Console.Out);
        double qatEval = FashionCnnQuantization.Accuracy(qatModel, test);
        double qatInt8 = FashionCnnQuantization.Accuracy(int8, test);
        if (ReferenceEquals(steps, schedule))
        {
            qatSeconds = seconds;
        }

        rows.Add((setting, bestPtq, bestName, qatInt8, qatEval));
        Console.WriteLine($"  QAT int8 {qatInt8:F2}% (the QAT model itself in eval mode: {qatEval:F2}%), {FashionCnnQat.Seconds(seconds)} of training steps.");
    }

    Console.WriteLine();
    Console.WriteLine($"| setting | fp32 top-1 (%) | best PTQ int8 (%) | PTQ drop | QAT int8 (%) | QAT drop | QAT model, eval (%) |");
    Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
    foreach ((string setting, double ptq, string method, double qatInt8, double qatEval) in rows)
    {
        Console.WriteLine($"| {setting} | {floatTest:F2} | {ptq:F2} ({method}) | {floatTest - ptq:F2} | {qatInt8:F2} | {floatTest - qatInt8:F2} | {qatEval:F2} |");
    }

    double floatSeconds = FashionCnnQat.FloatTrainingSeconds(model, train, schedule);
    int stepsPerEpoch = (train.Count + schedule.BatchSize - 1) / schedule.BatchSize;
    Console.WriteLine();
    Console.WriteLine($"Training step (batch {schedule.BatchSize}, {Environment.ProcessorCount} cores): float {1000 * floatSeconds / schedule.Steps:F1} ms, QAT {1000 * qatSeconds / schedule.Steps:F1} ms ({qatSeconds / floatSeconds:F2}x); " +
        $"an epoch of {train.Count} images: float {floatSeconds / schedule.Steps * stepsPerEpoch:F0} s, QAT {qatSeconds / schedule.Steps * stepsPerEpoch:F0} s.");
}

// --report: the accuracy report of the default int8 model, one explained value and the graph drawings (docs/reports.md).
static void WriteReport(string directory, FashionCnn model, FashionMnistSplit calibration, FashionMnistSplit test)
{
    Directory.CreateDirectory(directory);
    using FashionCnn.Observed observed = model.Prepare();
    List<Tensor> batches = FashionCnnQuantization.Batches(calibration);
    QuantGen.Reports.ConsoleProgress.Calibrate("Calibrating", progress => observed.Calibrate(batches, progress));

    FashionCnn.Quantized int8 = observed.Convert();
    using Tensor images = test.Images(0, Math.Min(64, test.Count));
    QuantGen.Reports.IFloatModel floatModel = QuantGen.Reports.FloatModel.FromModule(model, int8.Graph, observed.forward);
    var report = QuantGen.Reports.QuantReport.Compare(floatModel, int8, [images]);
    QuantGen.Reports.ReportTable.Write(report);
    report.WriteJson(Path.Combine(directory, "report.json"));
    QuantGen.Reports.ReportHtml.Write(report, Path.Combine(directory, "report.html"));
    Console.WriteLine();
    Console.WriteLine(QuantGen.Reports.QuantExplain.Explain(int8, floatModel, images, "fc2", [0, 0]));
    foreach ((QuantGen.Reports.GraphView view, string name) in new[] { (QuantGen.Reports.GraphView.Float, "graph-float"), (QuantGen.Reports.GraphView.Fused, "graph-fused"), (QuantGen.Reports.GraphView.Quantized, "graph") })
    {
        string dot = QuantGen.Reports.GraphDrawing.ToDot(int8, view);
        File.WriteAllText(Path.Combine(directory, name + ".dot"), dot);
        try
        {
            File.WriteAllText(Path.Combine(directory, name + ".svg"), QuantGen.Reports.GraphDrawing.ToSvg(dot));
        }
        catch (QuantGen.Reports.GraphvizNotFoundException missing)
        {
            Console.WriteLine(missing.Message);
        }
    }

    Console.WriteLine($"Wrote report.json, report.html, graph-float/graph-fused/graph .dot (and .svg) to {Path.GetFullPath(directory)}.");
    foreach (Tensor batch in batches)
    {
        batch.Dispose();
    }
}

// --ranges: each activation observer's chosen range (clipping methods report their search) and qparams.
void PrintRanges(CalibrationMethod method)
{
    using FashionCnn.Observed observed = model.Prepare(method.QConfig);
    using (torch.no_grad())
    {
        foreach (Tensor batch in FashionCnnQuantization.Batches(calibration))
        {
            observed.forward(batch).Dispose();
            batch.Dispose();
        }
    }

    foreach (QuantGen.Observers.Observer observer in observed.Observers)
    {
        string range = observer switch
        {
            QuantGen.Observers.ClippingRangeObserver clipping => $"data [{clipping.Min:G4}, {clipping.Max:G4}], clipped to [{clipping.SearchClippingRange().Min:G4}, {clipping.SearchClippingRange().Max:G4}]",
            QuantGen.Observers.HistogramObserver histogram => $"data [{histogram.Min:G4}, {histogram.Max:G4}], clipped to [{histogram.SearchClippingRange().Min:G4}, {histogram.SearchClippingRange().Max:G4}]",
            _ => string.Empty,
        };
        Console.WriteLine($"    {observer.Layer}: {observer.CalculateQParams()} {range}");
    }
}

// The best of three passes: on a shared machine the fastest pass is the one least disturbed by other processes.
static double TimePerImage(int batch, int images, Action<int, int> run)
{
    run(0, batch); // warm-up (JIT, first-call allocations)
    double best = double.PositiveInfinity;
    for (int pass = 0; pass < 3; pass++)
    {
        var clock = Stopwatch.StartNew();
        int done = 0;
        for (int start = 0; start + batch <= images; start += batch)
        {
            run(start, batch);
            done += batch;
        }

        best = Math.Min(best, clock.Elapsed.TotalMilliseconds * 1000.0 / Math.Max(1, done));
    }

    return best;
}

int IntOption(string name, int fallback) => int.Parse(StringOption(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

double DoubleOption(string name, double fallback) => double.Parse(StringOption(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

string StringOption(string name, string fallback)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length && !args[at + 1].StartsWith("--", StringComparison.Ordinal) ? args[at + 1] : fallback;
}
