using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using QuantGen.Kernels;
using ResNet18Example;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Bench;

/// <summary>The peers of the side-by-side table (column order).</summary>
public static class Peer
{
    /// <summary>QuantGen int8, <c>forward(QTensor)</c>.</summary>
    public const string QTensor = "quantgen-qtensor";

    /// <summary>QuantGen int8, float span in / float[] out.</summary>
    public const string FloatSpan = "quantgen-span";

    /// <summary>QuantGen's scalar reference (<c>QUANTGEN_ISA=scalar</c>, own process), <c>forward(QTensor)</c>.</summary>
    public const string Scalar = "quantgen-scalar";

    /// <summary>ONNX Runtime on the QDQ export.</summary>
    public const string OrtInt8 = "ort-int8";

    /// <summary>ONNX Runtime on the float export.</summary>
    public const string OrtFp32 = "ort-fp32";

    /// <summary>TorchSharp float module.</summary>
    public const string TorchFp32 = "torch-fp32";
}

/// <summary>Everything one side-by-side run measured.</summary>
public sealed class SideBySideResults
{
    /// <summary>Forward timings by (model, threads, peer).</summary>
    public Dictionary<(BenchModel Model, int Threads, string Peer), Timing> Forward { get; } = [];

    /// <summary>Largest |ORT int8 − QuantGen| on the logits, in QuantGen output steps, per model.</summary>
    public Dictionary<BenchModel, double> OrtInt8Agreement { get; } = [];

    /// <summary>Whether the scalar reference's int8 output equalled the dispatched kernels' bit for bit, per model.</summary>
    public Dictionary<BenchModel, bool> ScalarBitIdentical { get; } = [];

    /// <summary>Bytes one new result tensor of the model's output shape allocates (the QTensor and its storage), per model.</summary>
    public Dictionary<BenchModel, long> ResultBytes { get; } = [];

    /// <summary>vpdpbusd peak GOPS by threads.</summary>
    public Dictionary<int, double> PeakGops { get; } = [];

    /// <summary>512-bit vpdpbusd peak GOPS by threads (the generated loop; NaN where it cannot run).</summary>
    public Dictionary<int, double> PeakGops512 { get; } = [];

    /// <summary>GEMM rows: (shape, threads) → (GEMM timing, conv timing).</summary>
    public Dictionary<(GemmShape Shape, int Threads), (Timing Gemm, Timing Conv)> Gemm { get; } = [];

    /// <summary>Calibration speed by threads: (float forward, observed forward).</summary>
    public Dictionary<int, (Timing Float, Timing Observed)> Calibration { get; } = [];

    /// <summary>The kernel line of the dispatched path and of the scalar process.</summary>
    public string KernelInfo { get; set; } = string.Empty;

    /// <summary>The scalar process's kernel line.</summary>
    public string ScalarKernelInfo { get; set; } = string.Empty;

    /// <summary>Threads measured.</summary>
    public int[] Threads { get; set; } = [1, 2];

    /// <summary>Wall time of the whole run.</summary>
    public TimeSpan Elapsed { get; set; }

    /// <summary>/proc/loadavg's 1/5/15-minute load averages when the run started (other processes' load).</summary>
    public string LoadAtStart { get; set; } = "?";

    /// <summary>Quick settings were used.</summary>
    public bool Quick { get; set; }
}

/// <summary>
/// The side-by-side runner: every peer of the table timed in one process with Stopwatch medians (the scalar
/// reference in a child process with <c>QUANTGEN_ISA=scalar</c>, since the dispatch is fixed at start-up),
/// the GEMM against the vpdpbusd peak, and calibration speed; then the report.
/// </summary>
public static class SideBySide
{
    /// <summary>Runs everything and returns the results.</summary>
    public static SideBySideResults Run(bool quick, TextWriter log)
    {
        var total = Stopwatch.StartNew();
        MeasureSettings settings = quick ? MeasureSettings.Quick : MeasureSettings.Default;
        var results = new SideBySideResults { KernelInfo = KernelDispatch.KernelInfo, Quick = quick, LoadAtStart = LoadAverage() };
        log.WriteLine(results.KernelInfo);
        log.WriteLine($"ONNX Runtime {OrtRunner.Version}, TorchSharp {typeof(torch).Assembly.GetName().Version}, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}");
        log.WriteLine($"Models in {BenchModels.WorkDirectory}");

        var models = new List<PreparedModel>();
        try
        {
            foreach (BenchModel model in new[] { BenchModel.ResNet18, BenchModel.FashionCnn, BenchModel.MobileNetV2, BenchModel.ResNet50, BenchModel.UNet, BenchModel.CenterNetHead })
            {
                var clock = Stopwatch.StartNew();
                models.Add(BenchModels.Prepare(model, reuseSaved: false, log));
                log.WriteLine($"  {models[^1].Name}: prepared, converted and exported in {clock.Elapsed.TotalSeconds:F1} s");
            }

            var int8Outputs = new Dictionary<BenchModel, int[]>();
            foreach (PreparedModel prepared in models)
            {
                MeasureModel(prepared, results, settings, int8Outputs, log);
            }

            MeasureGemm(results, settings, log);
            MeasureCalibration((ResNet18)models[0].FloatModel, models[0], results, log);
            RunScalarProcess(results, quick, int8Outputs, log);
        }
        finally
        {
            foreach (PreparedModel prepared in models)
            {
                prepared.Dispose();
            }
        }

        results.Elapsed = total.Elapsed;
        return results;
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
    }

    private static void MeasureModel(PreparedModel prepared, SideBySideResults results, MeasureSettings settings, Dictionary<BenchModel, int[]> int8Outputs, TextWriter log)
    {
        var quantgen = new QuantGenRunner(prepared);
        int outputCount = quantgen.ForwardFloatSpan().Length;
        QTensor result = quantgen.ForwardQTensor();
        int8Outputs[prepared.Model] = result.IntRepr();
        results.ResultBytes[prepared.Model] = ResultTensorBytes(result);
        using var torchRunner = new TorchRunner(prepared);
        foreach (int threads in results.Threads)
        {
            QuantGenRunner.SetThreads(threads);
            TorchRunner.SetThreads(threads);
            using var ortInt8 = new OrtRunner(prepared.QdqOnnxPath, threads, prepared.Input, prepared.InputShape, outputCount);
            using var ortFp32 = new OrtRunner(prepared.FloatOnnxPath, threads, prepared.Input, prepared.InputShape, outputCount);
            if (threads == results.Threads[0])
            {
                ortInt8.Run();
                results.OrtInt8Agreement[prepared.Model] = MaxSteps(quantgen.ForwardFloatSpan(), ortInt8.Output, prepared.Int8);
            }

            // Every peer in turn is warmed up until steady before any is timed (Stopwatches.WarmUntilSteady): the
            // JIT's background tier-up, ORT's first runs and libtorch's slow start (after the calibration at 2
            // threads, its 1-thread ResNet-18 forwards take 3–4× the steady time for dozens of calls) settle there;
            // on 2 cores a busy background thread also halves a 2-thread peer. Then the peers are timed in turns.
            string[] names = [Peer.QTensor, Peer.FloatSpan, Peer.OrtInt8, Peer.OrtFp32, Peer.TorchFp32];
            Action[] peers = [() => quantgen.ForwardQTensor(), () => quantgen.ForwardFloatSpan(), ortInt8.Run, ortFp32.Run, torchRunner.Run];
            var warmCalls = new int[peers.Length];
            for (int p = 0; p < peers.Length; p++)
            {
                warmCalls[p] = Stopwatches.WarmUntilSteady(peers[p], 2 * settings.WarmupSeconds);
            }

            log.WriteLine($"  {prepared.Model,-10} {threads} thread(s) warm-up calls until steady: {string.Join(", ", names.Select((n, p) => $"{n} {warmCalls[p]}"))}");

            Timing[] timings = Stopwatches.MeasureInterleaved(peers, settings);

            // QuantGen's allocations exactly: the calling thread's own counter plus what the kernel pool's workers
            // allocated (the process-wide counter also sees the runtime's and the other peers' background threads).
            timings[0] = timings[0] with { AllocatedBytesPerCall = QuantGenAllocatedPerCall(peers[0]) };
            timings[1] = timings[1] with { AllocatedBytesPerCall = QuantGenAllocatedPerCall(peers[1]) };
            for (int p = 0; p < peers.Length; p++)
            {
                Record(results, prepared, threads, names[p], timings[p], log);
            }
        }
    }

    /// <summary>
    /// What allocating one result tensor like <paramref name="result"/> costs: a steady-state forward may allocate
    /// its result ("output buffer aside"), and the goal is nothing beyond it.
    /// </summary>
    private static long ResultTensorBytes(QTensor result)
    {
        int[] shape = result.Shape;
        _ = new QTensor(shape, result.QParams, result.Format);
        long before = GC.GetAllocatedBytesForCurrentThread();
        _ = new QTensor(shape, result.QParams, result.Format);
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    /// <summary>Managed bytes one QuantGen forward allocates: calling thread + kernel workers, over 200 calls.</summary>
    private static double QuantGenAllocatedPerCall(Action call)
    {
        const int Calls = 200;
        call();
        long thread = GC.GetAllocatedBytesForCurrentThread();
        long workers = KernelThreads.WorkerAllocatedBytes;
        for (int i = 0; i < Calls; i++)
        {
            call();
        }

        return (double)(GC.GetAllocatedBytesForCurrentThread() - thread + (KernelThreads.WorkerAllocatedBytes - workers)) / Calls;
    }

    private static double MaxSteps(float[] quantgen, float[] ort, IQuantizedModel model)
    {
        // The logits are the dequantized output of the last layer: its scale is the grid both sides round to.
        float scale = OutputScale(model);
        double max = 0;
        for (int i = 0; i < quantgen.Length; i++)
        {
            max = Math.Max(max, Math.Abs(quantgen[i] - ort[i]) / scale);
        }

        return max;
    }

    private static float OutputScale(IQuantizedModel model)
    {
        IQuantizedLayer last = model.Layers[^1];
        return last.GetType().GetProperty("Scale")?.GetValue(last) is float scale ? scale : float.NaN;
    }

    private static void Record(SideBySideResults results, PreparedModel prepared, int threads, string peer, Timing timing, TextWriter log)
    {
        results.Forward[(prepared.Model, threads, peer)] = timing;
        log.WriteLine(FormattableString.Invariant($"  {prepared.Model,-10} {threads} thread(s) {peer,-17} median {timing.MedianMs,9:F3} ms (min {timing.MinMs:F3}, n={timing.Iterations}, {timing.AllocatedBytesPerCall:F0} B/call)"));
    }

    private static void MeasureGemm(SideBySideResults results, MeasureSettings settings, TextWriter log)
    {
        foreach (int threads in results.Threads)
        {
            results.PeakGops[threads] = VnniPeak.MeasureGops(threads);
            results.PeakGops512[threads] = VnniPeak.MeasureGops512(threads);
            log.WriteLine(FormattableString.Invariant($"  vpdpbusd peak, {threads} thread(s): 256-bit {results.PeakGops[threads]:F1} GOPS, 512-bit (generated loop) {results.PeakGops512[threads]:F1} GOPS"));
        }

        foreach (GemmShape shape in GemmShape.ResNet18)
        {
            var gemm = new GemmCase(shape);
            foreach (int threads in results.Threads)
            {
                QuantGenRunner.SetThreads(threads);
                Timing[] gc = Stopwatches.MeasureInterleaved([gemm.RunGemm, gemm.RunConv], settings);
                Timing g = gc[0], c = gc[1];
                results.Gemm[(shape, threads)] = (g, c);
                log.WriteLine(FormattableString.Invariant($"  {shape,-28} {threads} thread(s): GEMM {shape.Operations / g.MedianMs / 1e6,6:F1} GOPS, conv {shape.Operations / c.MedianMs / 1e6,6:F1} GOPS ({gemm.Config.Name})"));
            }
        }
    }

    private static void MeasureCalibration(ResNet18 floatModel, PreparedModel prepared, SideBySideResults results, TextWriter log)
    {
        using ResNet18.Observed observed = floatModel.Prepare();
        using Tensor input = torch.tensor(prepared.Input, Array.ConvertAll(prepared.InputShape, d => (long)d));
        foreach (int threads in results.Threads)
        {
            TorchRunner.SetThreads(threads);
            Timing[] fo = Stopwatches.MeasureInterleaved(
                [
                    () => { using var g = torch.no_grad(); floatModel.forward(input).Dispose(); },
                    () => { using var g = torch.no_grad(); observed.forward(input).Dispose(); },
                ],
                MeasureSettings.Calibration);
            Timing f = fo[0], o = fo[1];
            results.Calibration[threads] = (f, o);
            log.WriteLine(FormattableString.Invariant($"  calibration, {threads} thread(s): float forward {f.MedianMs:F2} ms, observed (HistogramObserver) {o.MedianMs:F2} ms, ratio {o.MedianMs / f.MedianMs:F2}"));
        }
    }

    private static void RunScalarProcess(SideBySideResults results, bool quick, Dictionary<BenchModel, int[]> int8Outputs, TextWriter log)
    {
        string output = Path.Combine(BenchModels.WorkDirectory, "scalar-results.txt");
        File.Delete(output);
        var start = new ProcessStartInfo { FileName = Environment.ProcessPath!, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
        {
            start.ArgumentList.Add(typeof(SideBySide).Assembly.Location);
        }

        start.ArgumentList.Add("scalar-worker");
        start.ArgumentList.Add("--out");
        start.ArgumentList.Add(output);
        if (quick)
        {
            start.ArgumentList.Add("--quick");
        }

        start.Environment[KernelDispatch.OverrideVariable] = "scalar";
        start.Environment[BenchModels.WorkDirectoryVariable] = BenchModels.WorkDirectory;
        log.WriteLine($"  scalar reference: child process with {KernelDispatch.OverrideVariable}=scalar ...");
        using Process child = Process.Start(start)!;
        child.WaitForExit();
        if (child.ExitCode != 0 || !File.Exists(output))
        {
            throw new InvalidOperationException($"The scalar-reference process failed (exit code {child.ExitCode}).");
        }

        foreach (string line in File.ReadAllLines(output))
        {
            string[] parts = line.Split('\t');
            switch (parts[0])
            {
                case "kernels":
                    results.ScalarKernelInfo = parts[1];
                    break;
                case "forward":
                    results.Forward[(Enum.Parse<BenchModel>(parts[1]), int.Parse(parts[2], CultureInfo.InvariantCulture), Peer.Scalar)] = Timing.Parse(parts[3]);
                    break;
                case "output":
                    BenchModel model = Enum.Parse<BenchModel>(parts[1]);
                    int[] scalar = Array.ConvertAll(parts[2].Split(','), s => int.Parse(s, CultureInfo.InvariantCulture));
                    results.ScalarBitIdentical[model] = int8Outputs.TryGetValue(model, out int[]? int8) && int8.SequenceEqual(scalar);
                    break;
            }
        }

        foreach (((BenchModel model, int threads, string peer), Timing timing) in results.Forward.Where(e => e.Key.Peer == Peer.Scalar))
        {
            log.WriteLine(FormattableString.Invariant($"  {model,-10} {threads} thread(s) {peer,-17} median {timing.MedianMs,9:F3} ms (min {timing.MinMs:F3}, n={timing.Iterations})"));
        }
    }

    /// <summary>
    /// The child process of <see cref="RunScalarProcess"/>: loads the saved int8 models (packed now for the
    /// scalar reference) and times <c>forward(QTensor)</c> at each thread count.
    /// </summary>
    public static int ScalarWorker(string outputPath, bool quick)
    {
        if (KernelDispatch.Isa != KernelIsa.Scalar)
        {
            Console.Error.WriteLine($"scalar-worker: expected {KernelDispatch.OverrideVariable}=scalar, kernels are {KernelDispatch.Isa}.");
            return 2;
        }

        var lines = new List<string> { $"kernels\t{KernelDispatch.KernelInfo}" };
        foreach (BenchModel model in new[] { BenchModel.ResNet18, BenchModel.FashionCnn })
        {
            using PreparedModel prepared = BenchModels.Prepare(model, reuseSaved: true);
            var runner = new QuantGenRunner(prepared);
            lines.Add($"output\t{model}\t{string.Join(',', runner.ForwardQTensor().IntRepr())}");
            MeasureSettings settings = model == BenchModel.ResNet18 ? MeasureSettings.Slow : (quick ? MeasureSettings.Quick : MeasureSettings.Default);
            foreach (int threads in new[] { 1, 2 })
            {
                QuantGenRunner.SetThreads(threads);
                Timing timing = Stopwatches.Measure(() => runner.ForwardQTensor(), settings);
                lines.Add($"forward\t{model}\t{threads}\t{timing}");
            }
        }

        File.WriteAllLines(outputPath, lines);
        return 0;
    }
}
