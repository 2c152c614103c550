using System.CommandLine;
using System.IO;
using QuantGen.Reports;
using Spectre.Console;

namespace QuantGen.Tool.Commands;

/// <summary><c>quantgen report report.json --html out.html</c>: a saved layer report as a table, and as one HTML page.</summary>
internal static class ReportCommand
{
    public static Command Create(TextWriter output)
    {
        var file = new Argument<FileInfo>("report") { Description = "A report.json written by QuantReport.WriteJson (e.g. by `dotnet run --project examples/QuickStart -- --report out/`)." };
        var html = new Option<FileInfo?>("--html") { Description = "Also write the report as one self-contained HTML page (charts included) to this file." };
        var threshold = new Option<double?>("--threshold") { Description = "Mark the layers whose SQNR is below this many dB (default: the threshold saved in the report, 20 dB unless it was changed)." };
        var command = new Command("report", "Shows a saved layer report (per-layer error, SQNR, ranges, clipping) as a table, and renders it as an HTML page with --html.")
        {
            file,
            html,
            threshold,
        };
        command.SetAction(parsed =>
        {
            string path = parsed.GetValue(file)!.FullName;
            QuantReport report = QuantReport.ReadJson(path);
            if (parsed.GetValue(threshold) is double dB)
            {
                report = report.WithThreshold(dB);
            }

            IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Ansi = AnsiSupport.No,
                ColorSystem = ColorSystemSupport.NoColors,
                Interactive = InteractionSupport.No,
                Out = new AnsiConsoleOutput(output),
            });
            console.Profile.Width = 160;
            ReportTable.Write(report, console);
            output.WriteLine(report.BelowThreshold.Count == 0
                ? $"No layer below {report.SqnrThresholdDb:F1} dB."
                : $"{report.BelowThreshold.Count} layer(s) below {report.SqnrThresholdDb:F1} dB: {string.Join(", ", System.Linq.Enumerable.Select(report.BelowThreshold, l => l.Layer))}.");
            if (parsed.GetValue(html) is FileInfo page)
            {
                ReportHtml.Write(report, page.FullName);
                output.WriteLine($"Wrote {page.FullName}.");
            }

            return QuantGenTool.Success;
        });
        return command;
    }
}
