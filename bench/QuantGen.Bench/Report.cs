using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using TorchSharp;

namespace QuantGen.Bench;

/// <summary>The machine a run was measured on.</summary>
/// <param name="Date">`date -u`.</param>
/// <param name="Cpu">lscpu's model name.</param>
/// <param name="Cores">Logical CPUs.</param>
/// <param name="IsaFlags">Which of avx2, avx512bw, avx512_vnni, avx_vnni the CPU reports.</param>
/// <param name="Runtime">.NET runtime.</param>
public sealed record Machine(string Date, string Cpu, int Cores, string IsaFlags, string Runtime)
{
    /// <summary>Reads `date -u` and `lscpu` (falls back to .NET's view where they are missing).</summary>
    public static Machine Probe()
    {
        string date = Command("date", "-u") ?? DateTime.UtcNow.ToString("ddd MMM d HH:mm:ss 'UTC' yyyy", CultureInfo.InvariantCulture);
        string lscpu = Command("lscpu") ?? string.Empty;
        string Field(string name) => lscpu.Split('\n').Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim() == name).Select(p => p[1].Trim()).FirstOrDefault() ?? "?";
        HashSet<string> flags = [.. Field("Flags").Split(' ', StringSplitOptions.RemoveEmptyEntries)];
        string isa = string.Join(' ', new[] { "avx2", "avx512bw", "avx512_vnni", "avx_vnni" }.Select(f => flags.Contains(f) ? f : $"no-{f}"));
        return new Machine(date.Trim(), Field("Model name"), Environment.ProcessorCount, isa, System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription);
    }

    private static string? Command(string file, params string[] arguments)
    {
        try
        {
            var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, UseShellExecute = false };
            foreach (string a in arguments)
            {
                start.ArgumentList.Add(a);
            }

            start.Environment["LC_ALL"] = "C";
            using Process process = Process.Start(start)!;
            string text = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode == 0 ? text : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}

/// <summary>Turns <see cref="SideBySideResults"/> into the Markdown of docs/performance.md's measured section.</summary>
public static class Report
{
    /// <summary>Marks the start of the part of docs/performance.md that bench/run.sh rewrites.</summary>
    public const string BeginMarker = "<!-- BEGIN MEASURED: written by bench/run.sh; edits here are overwritten -->";

    /// <summary>Marks its end.</summary>
    public const string EndMarker = "<!-- END MEASURED -->";

    private static readonly string[] PeerColumns = [Peer.FloatSpan, Peer.QTensor, Peer.Scalar, Peer.OrtInt8, Peer.OrtFp32, Peer.TorchFp32];

    /// <summary>The measured section (between the markers, markers excluded).</summary>
    public static string Markdown(SideBySideResults r, Machine machine)
    {
        var s = new StringBuilder();
        string torchVersion = typeof(torch).Assembly.GetName().Version?.ToString(3) ?? "?";
        s.AppendLine($"Measured {machine.Date} on **{machine.Cpu}**, {machine.Cores} cores ({machine.IsaFlags}); {machine.Runtime}; ONNX Runtime {OrtRunner.Version}; TorchSharp {torchVersion}.");
        s.AppendLine();
        s.AppendLine($"- Kernels: {r.KernelInfo}");
        s.AppendLine($"- Scalar column (own process): {r.ScalarKernelInfo}");
        MeasureSettings m = r.Quick ? MeasureSettings.Quick : MeasureSettings.Default;
        s.AppendLine(Invariant($"- Stopwatch medians in one process{(r.Quick ? " (`--quick`)" : string.Empty)}. Per model × threads row every peer first runs ≥ 20 calls and ≥ {2 * m.WarmupSeconds:0.#} s and until steady (median of its last 9 calls within 40% of its fastest, 15 s at most; the JIT's tier-up and libtorch's slow first dozens of forwards after a change of thread count settle there), then ≥ {m.MinWarmupCalls} calls / {m.WarmupSeconds:0.#} s more; then the peers take turns in rounds of ~0.1 s (10 ms pause and one untimed call before each turn) until each has ≥ {m.MinIterations} timed calls and ≥ {m.MeasureSeconds:0.#} s, so load from other processes hits all peers alike. Scalar ResNet-18: 2 warm-up + 10 timed calls; GEMM and conv of a shape, and the float and observed forwards of calibration (≥ 1 s warm-up, 20 timed calls each), are timed in turns the same way. Whole run {r.Elapsed.TotalMinutes:F1} min; load average at its start {r.LoadAtStart} (the Release build run.sh does just before adds to it; a 1-minute figure well above that means another busy process, which on 2 cores slows the 2-thread rows most)."));
        s.AppendLine();

        s.AppendLine("### Forward latency, batch 1 (median ms; in brackets the ratio to QuantGen int8 float-in/float-out, > 1 = slower than QuantGen)");
        s.AppendLine();
        s.AppendLine("| model | threads | QuantGen int8 | QuantGen int8, QTensor in/out | QuantGen scalar reference | ORT int8 (QDQ) | ORT fp32 | TorchSharp fp32 |");
        s.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (BenchModel model in Models(r))
        {
            foreach (int threads in r.Threads)
            {
                double baseline = Median(r, model, threads, Peer.FloatSpan);
                var cells = PeerColumns.Select(peer =>
                {
                    double ms = Median(r, model, threads, peer);
                    if (double.IsNaN(ms))
                    {
                        return "–";
                    }

                    return peer == Peer.FloatSpan ? Ms(ms) : $"{Ms(ms)} ({Ratio(ms / baseline)})";
                });
                s.AppendLine($"| {Name(model)} | {threads} | {string.Join(" | ", cells)} |");
            }
        }

        s.AppendLine();
        s.AppendLine("QuantGen int8 = `forward(ReadOnlySpan<float>, shape, out shape)`: quantize the input, int8 model, dequantize the logits — the same work as the peers (float in, float out). QTensor = `forward(QTensor)` on an input quantized beforehand (the int8 region alone).");
        foreach (BenchModel model in Models(r))
        {
            string identical = r.ScalarBitIdentical.TryGetValue(model, out bool same) ? (same ? "bit-identical" : "**different**") : "not compared";
            string agreement = r.OrtInt8Agreement.TryGetValue(model, out double steps) ? Invariant($"{steps:0.##}") : "?";
            s.AppendLine($"{Name(model)}: scalar reference output vs dispatched kernels: {identical}; ORT int8 logits vs QuantGen: max |Δ| = {agreement} output steps.");
        }

        s.AppendLine();
        s.AppendLine("### Threads: speed-up from 1 to 2 threads (1-thread median ÷ 2-thread median)");
        s.AppendLine();
        s.AppendLine("| model | QuantGen int8 | QuantGen int8, QTensor | ORT int8 | ORT fp32 | TorchSharp fp32 |");
        s.AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (BenchModel model in Models(r))
        {
            var cells = new[] { Peer.FloatSpan, Peer.QTensor, Peer.OrtInt8, Peer.OrtFp32, Peer.TorchFp32 }
                .Select(peer => Invariant($"{Median(r, model, 1, peer) / Median(r, model, 2, peer):F2}×"));
            s.AppendLine($"| {Name(model)} | {string.Join(" | ", cells)} |");
        }

        s.AppendLine();
        s.AppendLine("### Managed bytes allocated per QuantGen forward (the calling thread's `GC.GetAllocatedBytesForCurrentThread()` plus `KernelThreads.WorkerAllocatedBytes`, over 200 steady-state calls)");
        s.AppendLine();
        s.AppendLine("| model | threads | `forward(QTensor)` | a new result tensor of its shape | beyond the result | `forward(span)` (float[] result and output shape included) |");
        s.AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (BenchModel model in Models(r))
        {
            long result = r.ResultBytes.GetValueOrDefault(model, 0);
            foreach (int threads in r.Threads)
            {
                double beyond = Allocated(r, model, threads, Peer.QTensor) - result;
                s.AppendLine(Invariant($"| {Name(model)} | {threads} | {Bytes(r, model, threads, Peer.QTensor)} | {result} B | {beyond:F0} B | {Bytes(r, model, threads, Peer.FloatSpan)} |"));
            }
        }

        s.AppendLine();
        s.AppendLine("### int8 GEMM of ResNet-18's convolutions vs the vpdpbusd peak");
        s.AppendLine();
        static string Peaks(Dictionary<int, double> gops) => string.Join(", ", gops.OrderBy(p => p.Key).Select(p => double.IsFinite(p.Value) ? Invariant($"{p.Value:F1} GOPS on {p.Key} thread{(p.Key > 1 ? "s" : string.Empty)}") : "not measured here"));
        bool generated = r.KernelInfo.Contains("generated", StringComparison.Ordinal) && r.PeakGops512.Values.Any(double.IsFinite);
        Dictionary<int, double> reference = generated ? r.PeakGops512 : r.PeakGops;
        s.AppendLine($"Peaks, measured in the same run: 256-bit (12 independent `AvxVnni.MultiplyWideningAndAdd` chains on registers, 2·32 ops per instruction; needs AVX-VNNI): {Peaks(r.PeakGops)}; 512-bit (the same with `vpdpbusd zmm` in a generated loop, 2·64 ops per instruction; needs AVX-512 VNNI): {Peaks(r.PeakGops512)}. % of peak is against the {(generated ? "512" : "256")}-bit peak, the width of the kernels that ran.");
        s.AppendLine("GEMM = `LinearKernel.Run` over M rows of K bytes (the GemmDriver on direct rows); conv = `Conv2dKernel.Run` on the real geometry (IGEMM row pointers for 3×3; for the 3-channel stem, whole 7-pixel kernel rows, 21 bytes padded to 24, read from a zero-point-padded copy of the input). Both requantize to uint8 with fused ReLU; GOPS = 2·M·N·K / median time.");
        s.AppendLine();
        var header = new StringBuilder("| layer | M×N×K |");
        var rule = new StringBuilder("|---|---|");
        foreach (int threads in r.Threads)
        {
            header.Append($" GEMM GOPS, {threads}T | % of peak | conv GOPS, {threads}T | % of peak |");
            rule.Append("---:|---:|---:|---:|");
        }

        s.AppendLine(header.ToString());
        s.AppendLine(rule.ToString());
        foreach (GemmShape shape in GemmShape.ResNet18)
        {
            var row = new StringBuilder($"| {shape.Layer} | {shape.Dimensions} |");
            foreach (int threads in r.Threads)
            {
                if (!r.Gemm.TryGetValue((shape, threads), out var t))
                {
                    row.Append(" – | – | – | – |");
                    continue;
                }

                double gemm = shape.Operations / t.Gemm.MedianMs / 1e6, conv = shape.Operations / t.Conv.MedianMs / 1e6;
                double peak = reference.GetValueOrDefault(threads, double.NaN);
                row.Append(double.IsFinite(peak)
                    ? Invariant($" {gemm:F1} | {100 * gemm / peak:F0}% | {conv:F1} | {100 * conv / peak:F0}% |")
                    : Invariant($" {gemm:F1} | – | {conv:F1} | – |"));
            }

            s.AppendLine(row.ToString());
        }

        s.AppendLine();
        s.AppendLine("### Calibration speed: ResNet-18 `Observed.forward` (default X86 qconfig, HistogramObserver) vs the float model, 1×3×224×224");
        s.AppendLine();
        s.AppendLine("| threads | float forward (ms) | observed forward (ms) | ratio (target ≤ 2×) |");
        s.AppendLine("|---:|---:|---:|---:|");
        foreach ((int threads, (Timing f, Timing o)) in r.Calibration.OrderBy(c => c.Key))
        {
            s.AppendLine(Invariant($"| {threads} | {f.MedianMs:F1} | {o.MedianMs:F1} | {o.MedianMs / f.MedianMs:F2}× |"));
        }

        s.AppendLine();
        s.AppendLine("### Performance targets, checked on the figures above");
        s.AppendLine();
        s.AppendLine("| target | measured | met |");
        s.AppendLine("|---|---|:---:|");
        foreach ((string goal, string measured, bool met) in Goals(r))
        {
            s.AppendLine($"| {goal} | {measured} | {(met ? "yes" : "**no**")} |");
        }

        return s.ToString();
    }

    /// <summary>The goal checks: (goal, measured, met).</summary>
    public static IEnumerable<(string Goal, string Measured, bool Met)> Goals(SideBySideResults r)
    {
        const BenchModel R = BenchModel.ResNet18, F = BenchModel.FashionCnn;
        double q1 = Median(r, R, 1, Peer.FloatSpan), q2 = Median(r, R, 2, Peer.FloatSpan);
        double ortInt8 = Median(r, R, 1, Peer.OrtInt8), ortFp32 = Median(r, R, 1, Peer.OrtFp32), torchFp32 = Median(r, R, 1, Peer.TorchFp32);
        yield return ("ResNet-18 int8, 1 thread: ≤ 2.0× ORT int8's latency", Invariant($"{q1 / ortInt8:F2}× ({Ms(q1)} vs {Ms(ortInt8)} ms)"), q1 <= 2.0 * ortInt8);
        yield return ("ResNet-18 int8, 1 thread: ≥ 3× faster than TorchSharp fp32", Invariant($"{torchFp32 / q1:F2}× ({Ms(torchFp32)} ms)"), torchFp32 >= 3.0 * q1);
        yield return ("ResNet-18 int8, 1 thread: faster than ORT fp32", Invariant($"{ortFp32 / q1:F2}× ({Ms(ortFp32)} ms)"), q1 < ortFp32);
        foreach (int threads in r.Threads)
        {
            double qf = Median(r, F, threads, Peer.FloatSpan), of = Median(r, F, threads, Peer.OrtInt8);
            yield return ($"FashionCnn int8, {threads} thread{(threads > 1 ? "s" : string.Empty)}: faster than ORT int8", Invariant($"{Ms(qf)} vs {Ms(of)} ms ({of / qf:F2}×)"), qf < of);
        }

        foreach (BenchModel model in new[] { BenchModel.MobileNetV2, BenchModel.ResNet50 })
        {
            foreach (int threads in r.Threads)
            {
                double q = Median(r, model, threads, Peer.FloatSpan), oi = Median(r, model, threads, Peer.OrtInt8), of = Median(r, model, threads, Peer.OrtFp32);
                if (double.IsNaN(q))
                {
                    continue;
                }

                string t = $"{threads} thread{(threads > 1 ? "s" : string.Empty)}";
                yield return ($"{Name(model)} int8, {t}: faster than ORT int8", Invariant($"{Ms(q)} vs {Ms(oi)} ms ({oi / q:F2}×)"), q < oi);
                yield return ($"{Name(model)} int8, {t}: faster than ORT fp32", Invariant($"{Ms(q)} vs {Ms(of)} ms ({of / q:F2}×)"), q < of);
            }
        }

        // Issue 13's bar for the models with up-sampling: faster in int8 than TorchSharp fp32 (the user's own float model).
        foreach (BenchModel model in new[] { BenchModel.MobileNetV2, BenchModel.UNet, BenchModel.CenterNetHead })
        {
            foreach (int threads in r.Threads)
            {
                double q = Median(r, model, threads, Peer.FloatSpan), tf = Median(r, model, threads, Peer.TorchFp32);
                if (double.IsNaN(q) || double.IsNaN(tf))
                {
                    continue;
                }

                string t = $"{threads} thread{(threads > 1 ? "s" : string.Empty)}";
                yield return ($"{Name(model)} int8, {t}: faster than TorchSharp fp32", Invariant($"{Ms(q)} vs {Ms(tf)} ms ({tf / q:F2}×)"), q < tf);
            }
        }

        yield return ("ResNet-18: 2 threads ≥ 1.8× faster than 1", Invariant($"{q1 / q2:F2}× ({Ms(q1)} → {Ms(q2)} ms)"), q1 / q2 >= 1.8);
        double worst = r.Forward.Where(e => e.Key.Peer == Peer.QTensor).Select(e => e.Value.AllocatedBytesPerCall - r.ResultBytes.GetValueOrDefault(e.Key.Model, 0)).DefaultIfEmpty(double.NaN).Max();
        yield return ("0 bytes allocated per steady-state forward (`forward(QTensor)`), its result tensor aside", Invariant($"{worst:F0} B per call beyond the result at most"), worst < 1);
        foreach ((int threads, (Timing f, Timing o)) in r.Calibration.OrderBy(c => c.Key))
        {
            yield return ($"Calibration (HistogramObserver) ≤ 2× the float forward, {threads} thread{(threads > 1 ? "s" : string.Empty)}", Invariant($"{o.MedianMs / f.MedianMs:F2}×"), o.MedianMs <= 2 * f.MedianMs);
        }
    }

    /// <summary>Writes the measured section into <paramref name="path"/>, keeping everything outside the markers (or a skeleton when the file is new).</summary>
    public static void WriteInto(string path, string measured)
    {
        string block = $"{BeginMarker}\n{measured.TrimEnd()}\n{EndMarker}";
        string text;
        if (File.Exists(path) && File.ReadAllText(path) is string existing && existing.Contains(BeginMarker, StringComparison.Ordinal) && existing.Contains(EndMarker, StringComparison.Ordinal))
        {
            int start = existing.IndexOf(BeginMarker, StringComparison.Ordinal);
            int end = existing.IndexOf(EndMarker, StringComparison.Ordinal) + EndMarker.Length;
            text = existing[..start] + block + existing[end..];
        }
        else
        {
            text = $"# Performance\n\n{block}\n";
        }

        File.WriteAllText(path, text.Replace("\r\n", "\n", StringComparison.Ordinal));
    }

    private static IEnumerable<BenchModel> Models(SideBySideResults r) => r.Forward.Keys.Select(k => k.Model).Distinct().OrderBy(m => m);

    private static string Name(BenchModel model) => BenchModels.DisplayName(model);

    private static double Median(SideBySideResults r, BenchModel model, int threads, string peer) =>
        r.Forward.TryGetValue((model, threads, peer), out Timing? t) ? t.MedianMs : double.NaN;

    private static double Allocated(SideBySideResults r, BenchModel model, int threads, string peer) =>
        r.Forward.TryGetValue((model, threads, peer), out Timing? t) ? t.AllocatedBytesPerCall : double.NaN;

    private static string Bytes(SideBySideResults r, BenchModel model, int threads, string peer) =>
        r.Forward.TryGetValue((model, threads, peer), out Timing? t) ? Invariant($"{t.AllocatedBytesPerCall:F0} B") : "–";

    private static string Ms(double ms) => ms switch
    {
        double.NaN => "–",
        >= 100 => Invariant($"{ms:F0}"),
        >= 10 => Invariant($"{ms:F1}"),
        >= 1 => Invariant($"{ms:F2}"),
        _ => Invariant($"{ms:F3}"),
    };

    private static string Ratio(double ratio) => Invariant($"{ratio:F2}×");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
