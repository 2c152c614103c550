using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Text;
using ScottPlot;

namespace QuantGen.Reports;

/// <summary>
/// The report as one self-contained HTML page: the figures table, a per-layer SQNR bar chart and, for every
/// activation, a histogram of its float values with the chosen clipping range marked. Charts are ScottPlot
/// SVGs embedded as base64 data URIs, so the page needs no other file and no network.
/// </summary>
public static class ReportHtml
{
    private const int ChartWidth = 900;
    private const int SqnrChartHeight = 420;
    private const int HistogramWidth = 640;
    private const int HistogramHeight = 260;

    /// <summary>The page.</summary>
    /// <param name="report">The report.</param>
    /// <returns>The HTML text.</returns>
    public static string Create(QuantReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var html = new StringBuilder();
        string title = $"QuantGen accuracy report: {report.Model}";
        html.AppendLine("<!DOCTYPE html>");
        html.AppendLine("<html lang=\"en\"><head><meta charset=\"utf-8\">");
        html.Append("<title>").Append(Encode(title)).AppendLine("</title>");
        html.AppendLine("<style>");
        html.AppendLine("body{font-family:system-ui,sans-serif;margin:2em;color:#222} table{border-collapse:collapse;font-size:0.9em}");
        html.AppendLine("th,td{border:1px solid #ccc;padding:3px 8px;text-align:right} th{background:#f0f0f0} td.name,th.name{text-align:left}");
        html.AppendLine("tr.below td{background:#fdd;font-weight:bold} td.warn{background:#ffc} .chart{margin:1em 0} section.activation{margin:1.5em 0}");
        html.AppendLine("dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px} dt{font-weight:bold}");
        html.AppendLine("</style></head><body>");
        html.Append("<h1>").Append(Encode(title)).AppendLine("</h1>");
        html.Append("<p>Graph <code>").Append(Encode(report.GraphHash)).Append("</code>, ")
            .Append(report.Batches.ToString(CultureInfo.InvariantCulture)).Append(" input batch(es), ")
            .Append(report.Layers.Count.ToString(CultureInfo.InvariantCulture)).AppendLine(" quantized layers.</p>");
        AppendDefinitions(html, report);

        html.AppendLine("<h2 id=\"figures\">Figures per layer</h2>");
        AppendTable(html, report);

        html.AppendLine("<h2 id=\"sqnr\">SQNR per layer</h2>");
        html.Append("<p>Bars: the layer's own error, the accumulated error and (conv/linear) the weight error, in dB (higher is better; each int8 bit is worth about 6 dB). Exact matches (∞) are drawn at the top of the axis. The dashed line is the threshold, ")
            .Append(Encode(ReportText.Fixed(report.SqnrThresholdDb, 1))).AppendLine(" dB; layers below it have a red band behind their bars.</p>");
        html.Append("<div class=\"chart\">").Append(Image(SqnrChart(report), ChartWidth, SqnrChartHeight, "SQNR per layer")).AppendLine("</div>");

        html.AppendLine("<h2 id=\"activations\">Activations: float values and the chosen range</h2>");
        html.AppendLine("<p>Each histogram counts the float model's values at the layer's output; the dashed lines are the representable range <code>[(qmin − zp)·scale, (qmax − zp)·scale]</code>, and the shaded parts lie more than half a step (scale/2) outside it: the values there are clipped.</p>");
        foreach (LayerReport row in report.Layers)
        {
            AppendActivation(html, row);
        }

        html.AppendLine("</body></html>");
        return html.ToString();
    }

    /// <summary>Writes <see cref="Create"/> to a file.</summary>
    /// <param name="report">The report.</param>
    /// <param name="path">The file to create or overwrite.</param>
    public static void Write(QuantReport report, string path) => System.IO.File.WriteAllText(path, Create(report));

    private static void AppendDefinitions(StringBuilder html, QuantReport report)
    {
        html.AppendLine("<dl>");
        html.AppendLine("<dt>layer error</dt><dd>the int8 layer by itself, fed the float model's input to it quantized with the int8 model's qparams there, against the float layer: what this layer adds.</dd>");
        html.AppendLine("<dt>accumulated error</dt><dd>the int8 model against the float model at the layer's output: everything up to here.</dd>");
        html.AppendLine("<dt>weight error</dt><dd>dequantized int8 weights against the fused float weights (batch norm folded in).</dd>");
        html.AppendLine("<dt>cos / SQNR</dt><dd>cosine similarity Σrq/√(Σr²Σq²) and 10·log10(Σr²/Σ(r−q)²) dB over all elements of all batches, r the float value, q the dequantized int8 value.</dd>");
        html.AppendLine("<dt>clipped</dt><dd>share of the float values more than half a step outside the representable range of the layer's output qparams (closer values round onto its ends like any other value).</dd>");
        string marked = string.Join(", ", report.BelowThreshold.Select(l => l.Layer));
        html.Append("<dt>threshold</dt><dd>").Append(Encode(ReportText.Fixed(report.SqnrThresholdDb, 1)))
            .AppendLine(" dB: a layer whose layer-error SQNR (else accumulated) is below it is highlighted in red (ReportOptions.SqnrThresholdDb).</dd>");
        html.Append("<dt>below the threshold</dt><dd>").Append(Encode(marked.Length == 0 ? "none: every layer is at or above it" : marked)).AppendLine("</dd>");
        html.AppendLine("</dl>");
    }

    private static void AppendTable(StringBuilder html, QuantReport report)
    {
        html.AppendLine("<table><thead><tr><th class=\"name\">layer</th><th class=\"name\">op</th><th class=\"name\">source</th>"
            + "<th>layer cos</th><th>layer SQNR dB</th><th>accum. cos</th><th>accum. SQNR dB</th><th>weight cos</th><th>weight SQNR dB</th>"
            + "<th>dtype</th><th>scale</th><th>zero point</th><th>range</th><th>float min</th><th>float max</th><th>clipped</th></tr></thead><tbody>");
        foreach (LayerReport row in report.Layers)
        {
            ActivationRange range = row.Range;
            html.Append(row.BelowThreshold ? "<tr class=\"below\">" : "<tr>")
                .Append("<td class=\"name\"><a href=\"#act-").Append(Anchor(row.Layer)).Append("\">").Append(Encode(row.Layer)).Append("</a></td>")
                .Append("<td class=\"name\">").Append(Encode(row.Op.ToString())).Append("</td>")
                .Append("<td class=\"name\">").Append(Encode(row.Source)).Append("</td>");
            AppendFigure(html, row.LayerError);
            AppendFigure(html, row.AccumulatedError);
            AppendFigure(html, row.WeightError);
            html.Append("<td>").Append(Encode(range.DType)).Append("</td>")
                .Append("<td>").Append(ReportText.Exact(range.Scale)).Append("</td>")
                .Append("<td>").Append(ReportText.Int(range.ZeroPoint)).Append("</td>")
                .Append("<td>[").Append(ReportText.Fixed(range.Min, 4)).Append(", ").Append(ReportText.Fixed(range.Max, 4)).Append("]</td>")
                .Append("<td>").Append(ReportText.Fixed(range.FloatMin, 4)).Append("</td>")
                .Append("<td>").Append(ReportText.Fixed(range.FloatMax, 4)).Append("</td>")
                .Append(range.Clipped > 0 ? "<td class=\"warn\">" : "<td>").Append(ReportText.Fixed(range.ClippedShare * 100, 3)).Append("%</td>")
                .AppendLine("</tr>");
        }

        html.AppendLine("</tbody></table>");
    }

    private static void AppendFigure(StringBuilder html, ErrorFigure? figure)
    {
        if (figure is null)
        {
            html.Append("<td>–</td><td>–</td>");
            return;
        }

        html.Append(figure.Value.Cosine < ReportTable.CosineWarning ? "<td class=\"warn\">" : "<td>").Append(ReportText.Fixed(figure.Value.Cosine, 5)).Append("</td>")
            .Append("<td>").Append(ReportText.Fixed(figure.Value.SqnrDb, 2)).Append("</td>");
    }

    private static void AppendActivation(StringBuilder html, LayerReport row)
    {
        ActivationRange range = row.Range;
        html.Append("<section class=\"activation\" id=\"act-").Append(Anchor(row.Layer)).AppendLine("\">");
        html.Append("<h3>").Append(Encode(row.Layer)).Append(" <small>(").Append(Encode(row.Op.ToString()))
            .Append(row.Members.Count > 0 ? ": " + Encode(string.Join(" + ", row.Members)) : string.Empty).AppendLine(")</small></h3>");
        html.Append("<p>").Append(Encode(range.DType)).Append(", scale ").Append(ReportText.Exact(range.Scale))
            .Append(", zero point ").Append(ReportText.Int(range.ZeroPoint))
            .Append(" → representable [").Append(ReportText.Exact(range.Min)).Append(", ").Append(ReportText.Exact(range.Max)).Append("]; float values in [")
            .Append(ReportText.Exact(range.FloatMin)).Append(", ").Append(ReportText.Exact(range.FloatMax)).Append("]; ")
            .Append(ReportText.Int(range.Clipped)).Append(" of ").Append(ReportText.Int(range.Values)).Append(" clipped (")
            .Append(ReportText.Fixed(range.ClippedShare * 100, 3)).AppendLine("%).</p>");
        html.Append("<div class=\"chart\">").Append(Image(HistogramChart(row), HistogramWidth, HistogramHeight, "histogram of " + row.Layer)).AppendLine("</div>");
        html.AppendLine("</section>");
    }

    /// <summary>Grouped bars per layer: layer, accumulated and weight SQNR; infinite values drawn at the top.</summary>
    internal static Plot SqnrChart(QuantReport report)
    {
        var plot = new Plot();
        var finite = report.Layers
            .SelectMany(l => new[] { l.LayerError, l.AccumulatedError, l.WeightError })
            .Where(f => f is not null && double.IsFinite(f.Value.SqnrDb))
            .Select(f => f!.Value.SqnrDb)
            .ToList();
        double top = finite.Count == 0 ? 60 : Math.Max(finite.Max() + 15, 15);
        double bottom = finite.Count == 0 ? 0 : Math.Min(finite.Min(), 0);
        if (double.IsFinite(report.SqnrThresholdDb))
        {
            // The threshold line stays on the chart.
            top = Math.Max(top, report.SqnrThresholdDb + 5);
            bottom = Math.Min(bottom, report.SqnrThresholdDb);
        }

        double Height(ErrorFigure figure) => double.IsPositiveInfinity(figure.SqnrDb) ? top : double.IsNegativeInfinity(figure.SqnrDb) ? bottom : figure.SqnrDb;

        (string Name, Func<LayerReport, ErrorFigure?> Figure, Color Color, double Offset)[] series =
        [
            ("layer error", l => l.LayerError, Colors.SteelBlue, -0.27),
            ("accumulated error", l => l.AccumulatedError, Colors.DarkOrange, 0),
            ("weight error", l => l.WeightError, Colors.SeaGreen, 0.27),
        ];
        // Layers below the threshold get a light red band behind their bars (the bars keep their series' colours).
        for (int i = 0; i < report.Layers.Count; i++)
        {
            if (report.Layers[i].BelowThreshold)
            {
                plot.Add.HorizontalSpan(i - 0.45, i + 0.45, Colors.Crimson.WithAlpha(0.15));
            }
        }

        foreach ((string name, Func<LayerReport, ErrorFigure?> pick, Color color, double offset) in series)
        {
            var bars = new List<Bar>();
            for (int i = 0; i < report.Layers.Count; i++)
            {
                LayerReport row = report.Layers[i];
                if (pick(row) is ErrorFigure figure)
                {
                    bars.Add(new Bar
                    {
                        Position = i + offset,
                        Value = Height(figure),
                        Size = 0.25,
                        FillColor = color,
                        LineWidth = 0,
                    });
                }
            }

            if (bars.Count > 0)
            {
                var plottable = plot.Add.Bars(bars.ToArray());
                plottable.LegendText = name;
                plottable.Color = color;
            }
        }

        double[] positions = Enumerable.Range(0, report.Layers.Count).Select(i => (double)i).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(positions, report.Layers.Select(l => l.Layer).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;

        // Rotated labels need room below the plot and to its right (ScottPlot does not measure rotated text).
        float labelRoom = (report.Layers.Count == 0 ? 0 : report.Layers.Max(l => l.Layer.Length) * 6.5f) + 20;
        if (plot.Axes.Bottom is ScottPlot.AxisPanels.AxisBase bottomAxis && plot.Axes.Right is ScottPlot.AxisPanels.AxisBase rightAxis)
        {
            bottomAxis.MinimumSize = labelRoom;
            rightAxis.MinimumSize = labelRoom * 0.7f;
        }

        if (double.IsFinite(report.SqnrThresholdDb))
        {
            var threshold = plot.Add.HorizontalLine(report.SqnrThresholdDb, 1, Colors.Crimson, LinePattern.Dashed);
            threshold.Text = "threshold " + ReportText.Fixed(report.SqnrThresholdDb, 1) + " dB";
        }

        plot.Axes.SetLimitsY(bottom, top + 5);
        plot.YLabel("SQNR (dB)");
        plot.Title($"{report.Model}: SQNR per layer");
        plot.ShowLegend(Alignment.UpperCenter, Orientation.Horizontal);
        return plot;
    }

    /// <summary>The float values' histogram with the representable range marked and the clipped parts shaded.</summary>
    internal static Plot HistogramChart(LayerReport row)
    {
        ActivationRange range = row.Range;
        ValueHistogram histogram = range.Histogram;
        var plot = new Plot();
        long[] counts = histogram.Counts;
        double width = histogram.BinWidth;
        var bars = new Bar[counts.Length];
        for (int b = 0; b < counts.Length; b++)
        {
            double center = histogram.Edge(b) + (width / 2);
            bool outside = center < range.ClipLow || center > range.ClipHigh;
            bars[b] = new Bar { Position = center, Value = counts[b], Size = width, FillColor = outside ? Colors.Crimson : Colors.SteelBlue, LineWidth = 0 };
        }

        plot.Add.Bars(bars);
        if (Math.Min(histogram.Low, range.FloatMin) < range.ClipLow)
        {
            plot.Add.HorizontalSpan(Math.Min(histogram.Low, range.FloatMin), range.ClipLow, Colors.Crimson.WithAlpha(0.12));
        }

        if (Math.Max(histogram.High, range.FloatMax) > range.ClipHigh)
        {
            plot.Add.HorizontalSpan(range.ClipHigh, Math.Max(histogram.High, range.FloatMax), Colors.Crimson.WithAlpha(0.12));
        }

        foreach ((double x, string label) in new[] { ((double)range.Min, "min " + ReportText.Fixed(range.Min, 4)), ((double)range.Max, "max " + ReportText.Fixed(range.Max, 4)) })
        {
            var line = plot.Add.VerticalLine(x, 2, Colors.Black, LinePattern.Dashed);
            line.Text = label;
        }

        // Show the data and the range, not the whole (power-of-two grown) histogram extent.
        double low = Math.Min(range.FloatMin, range.Min), high = Math.Max(range.FloatMax, range.Max);
        double margin = Math.Max((high - low) * 0.08, width);
        plot.Axes.SetLimitsX(low - margin, high + margin);
        plot.XLabel("float value");
        plot.YLabel("count");
        plot.Title($"{row.Layer}: {ReportText.Fixed(range.ClippedShare * 100, 3)}% clipped");
        return plot;
    }

    private static string Image(Plot plot, int width, int height, string alt)
    {
        string svg = plot.GetSvgXml(width, height);
        string data = Convert.ToBase64String(Encoding.UTF8.GetBytes(svg));
        return $"<img alt=\"{Encode(alt)}\" width=\"{width}\" height=\"{height}\" src=\"data:image/svg+xml;base64,{data}\">";
    }

    private static string Anchor(string layer) => new(layer.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-').ToArray());

    private static string Encode(string text) => WebUtility.HtmlEncode(text);
}
