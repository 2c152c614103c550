// QuantGen benchmarks. Run through bench/run.sh, which builds Release first.
//   table [--quick] [--out docs/performance.md]   side-by-side runner: every peer in one process (Stopwatch medians),
//                                                   the scalar reference in a child process, GEMM vs peak, calibration;
//                                                   prints the table and writes it into the Markdown file
//   bdn [BenchmarkDotNet arguments]               the BenchmarkDotNet classes (MemoryDiagnoser on), e.g. --filter '*ResNet18*'
//                                                   (QUANTGEN_BENCH_JOB=quick for a medium job)
//   scalar-worker --out FILE [--quick]            internal: the scalar-reference child process of `table`
using System;
using System.IO;
using System.Linq;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using QuantGen.Bench;

System.Globalization.CultureInfo.DefaultThreadCurrentCulture = System.Globalization.CultureInfo.InvariantCulture;
System.Globalization.CultureInfo.CurrentCulture = System.Globalization.CultureInfo.InvariantCulture;

string mode = args.Length > 0 ? args[0] : string.Empty;
string[] rest = args.Skip(1).ToArray();
switch (mode)
{
    case "table":
    {
        bool quick = rest.Contains("--quick");
        string? output = Option(rest, "--out");
        SideBySideResults results = SideBySide.Run(quick, Console.Out);
        string markdown = Report.Markdown(results, Machine.Probe());
        Console.WriteLine();
        Console.WriteLine(markdown);
        if (output is not null)
        {
            Report.WriteInto(output, markdown);
            Console.WriteLine($"Written into {Path.GetFullPath(output)}.");
        }

        return 0;
    }

    case "scalar-worker":
        return SideBySide.ScalarWorker(Option(rest, "--out") ?? throw new ArgumentException("scalar-worker needs --out FILE"), rest.Contains("--quick"));

    case "bdn":
    {
        // The classes carry their own jobs ([Config]); the global config adds none, so the scalar class runs only
        // in its QUANTGEN_ISA=scalar job.
        var config = ManualConfig.CreateMinimumViable()
            .AddExporter(BenchmarkDotNet.Exporters.MarkdownExporter.GitHub)
            .WithOptions(ConfigOptions.JoinSummary);
        BenchmarkSwitcher.FromAssembly(typeof(BenchModels).Assembly).Run(rest, config);
        return 0;
    }

    default:
        Console.Error.WriteLine("usage: QuantGen.Bench table [--quick] [--out FILE] | bdn [BenchmarkDotNet args] | scalar-worker --out FILE");
        return 2;
}

static string? Option(string[] arguments, string name)
{
    int at = Array.IndexOf(arguments, name);
    return at >= 0 && at + 1 < arguments.Length ? arguments[at + 1] : null;
}
