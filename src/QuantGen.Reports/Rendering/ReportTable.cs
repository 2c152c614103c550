using System;
using System.IO;
using System.Linq;
using Spectre.Console;

namespace QuantGen.Reports;

/// <summary>The report as a terminal table (Spectre.Console): one row per layer, those below the report's SQNR threshold in red.</summary>
public static class ReportTable
{
    /// <summary>Cosine similarity below which a figure is shown in yellow (a common rule of thumb: above 0.99 is fine).</summary>
    public const double CosineWarning = 0.99;

    /// <summary>The table.</summary>
    /// <param name="report">The report.</param>
    /// <returns>A Spectre.Console table to write to any <see cref="IAnsiConsole"/>.</returns>
    public static Table Create(QuantReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var table = new Table()
            .Border(TableBorder.Rounded)
            .Title($"[bold]{Markup.Escape(report.Model)}[/]: int8 vs float, {report.Batches} batch(es)")
            .Caption($"layer = int8 layer alone on the float model's input; accumulated = int8 model vs float model; SQNR in dB; [red]red[/] = {Markup.Escape(ThresholdText(report))}; clipped = values more than half a step outside the range");
        table.AddColumn("layer");
        table.AddColumn("op");
        table.AddColumn(new TableColumn("layer error\ncos · SQNR dB").RightAligned());
        table.AddColumn(new TableColumn("accumulated\ncos · SQNR dB").RightAligned());
        table.AddColumn(new TableColumn("weight\ncos · SQNR dB").RightAligned());
        table.AddColumn(new TableColumn("scale").RightAligned());
        table.AddColumn(new TableColumn("zp").RightAligned());
        table.AddColumn(new TableColumn("range").RightAligned());
        table.AddColumn(new TableColumn("clipped").RightAligned());
        foreach (LayerReport row in report.Layers)
        {
            string Style(string text) => row.BelowThreshold ? $"[bold red]{text}[/]" : text;
            string Figure(ErrorFigure? figure)
            {
                if (figure is not ErrorFigure f)
                {
                    return "–";
                }

                string cosine = ReportText.Fixed(f.Cosine, 4);
                cosine = f.Cosine < CosineWarning && !row.BelowThreshold ? $"[yellow]{cosine}[/]" : cosine;
                return Style($"{cosine} · {ReportText.Fixed(f.SqnrDb, 1)}");
            }

            ActivationRange range = row.Range;
            table.AddRow(
                Style(Markup.Escape(row.Layer)),
                Markup.Escape(row.Op.ToString()),
                Figure(row.LayerError),
                Figure(row.AccumulatedError),
                Figure(row.WeightError),
                ReportText.Exact(range.Scale),
                ReportText.Int(range.ZeroPoint),
                $"[[{ReportText.Fixed(range.Min, 3)}, {ReportText.Fixed(range.Max, 3)}]]",
                range.Clipped > 0 ? $"[yellow]{ReportText.Fixed(range.ClippedShare * 100, 2)}%[/]" : "0%");
        }

        return table;
    }

    /// <summary>Writes the table to a console (the default: <see cref="AnsiConsole.Console"/>).</summary>
    /// <param name="report">The report.</param>
    /// <param name="console">Where to write; null for the process's console.</param>
    /// <remarks>When standard output is redirected (a file, a pipe), the table is laid out 160 columns wide instead of Spectre's default 80.</remarks>
    public static void Write(QuantReport report, IAnsiConsole? console = null)
    {
        if (console is null && Console.IsOutputRedirected)
        {
            console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
            console.Profile.Width = Math.Max(console.Profile.Width, 160);
        }

        (console ?? AnsiConsole.Console).Write(Create(report));
    }

    /// <summary>The table as text without colours or escape codes (for logs and <see cref="QuantReport.ToString"/>).</summary>
    /// <param name="report">The report.</param>
    /// <param name="width">Line width to lay the table out for.</param>
    /// <returns>The text.</returns>
    public static string ToPlainText(QuantReport report, int width = 200)
    {
        var writer = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = width;
        console.Write(Create(report));
        writer.WriteLine(MarkedText(report));
        return writer.ToString();
    }

    /// <summary>What red means: <c>layer SQNR below 20 dB</c>.</summary>
    internal static string ThresholdText(QuantReport report) =>
        $"layer SQNR below {ReportText.Fixed(report.SqnrThresholdDb, 1)} dB";

    /// <summary>The marked layers in one line: <c>below 20.0 dB (layer SQNR): conv2, fc</c>, or that there are none.</summary>
    internal static string MarkedText(QuantReport report)
    {
        string marked = string.Join(", ", report.BelowThreshold.Select(l => l.Layer));
        return marked.Length == 0
            ? $"no layer below {ReportText.Fixed(report.SqnrThresholdDb, 1)} dB (layer SQNR)"
            : $"below {ReportText.Fixed(report.SqnrThresholdDb, 1)} dB (layer SQNR): {marked}";
    }
}
