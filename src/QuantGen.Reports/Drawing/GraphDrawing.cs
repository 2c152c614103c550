using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using QuantGen.Graphs;
using QuantGen.Modules;

namespace QuantGen.Reports;

/// <summary>Which graph of a model to draw.</summary>
public enum GraphView
{
    /// <summary>The user's float model: every member its own node (a member used twice appears twice), in forward order.</summary>
    Float,

    /// <summary>The float model after fusion: the members folded into one op grouped in a cluster.</summary>
    Fused,

    /// <summary>The int8 model: one node per op with its output scale/zero point, the quantize point, float islands marked.</summary>
    Quantized,
}

/// <summary>
/// Draws a generated model's graph (<see cref="IQuantizedModel.Graph"/>) as Graphviz DOT, and as SVG through
/// Graphviz's <c>dot</c> when it is installed (Debian/Ubuntu package <c>graphviz</c>).
/// </summary>
/// <remarks>
/// The DOT text is deterministic and written one statement per line: nodes as <c>"id" [label="..." ...];</c>,
/// edges as <c>"from" -&gt; "to" [...];</c>, fused groups as <c>subgraph "cluster_N"</c>. Node ids: <c>input</c> and
/// <c>output</c> for the model's float input and result; <c>member:&lt;layer&gt;:&lt;i&gt;</c> for the i-th member of a
/// layer (float and fused views); <c>op:&lt;layer&gt;</c> for an op (quantized view) plus <c>dequantize</c>.
/// </remarks>
public static class GraphDrawing
{
    /// <summary>The Debian/Ubuntu package that provides <c>dot</c>.</summary>
    public const string GraphvizPackage = "graphviz";

    /// <summary>The DOT text of one view of a model's graph.</summary>
    /// <param name="model">The int8 model (its layers give the quantized view its scales and zero points).</param>
    /// <param name="view">Which graph.</param>
    /// <returns>The DOT text.</returns>
    public static string ToDot(IQuantizedModel model, GraphView view)
    {
        ArgumentNullException.ThrowIfNull(model);
        return ToDot(model.Graph, view, model.Layers);
    }

    /// <summary>The DOT text of one view of a graph.</summary>
    /// <param name="graph">The graph.</param>
    /// <param name="view">Which graph.</param>
    /// <param name="layers">The int8 layers (for scales and zero points in the quantized view); null to leave them out.</param>
    /// <returns>The DOT text.</returns>
    public static string ToDot(ModelGraph graph, GraphView view, IReadOnlyList<IQuantizedLayer>? layers = null)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var dot = new StringBuilder();
        string title = view switch
        {
            GraphView.Float => "float model",
            GraphView.Fused => "fused float model",
            _ => "int8 model",
        };
        dot.Append("digraph ").Append(Quote($"{graph.Model} ({title})")).AppendLine(" {");
        dot.AppendLine("  rankdir=TB;");
        dot.Append("  label=").Append(Quote($"{graph.Model}: {title}, graph {graph.Hash}")).AppendLine(";");
        dot.AppendLine("  labelloc=t;");
        dot.AppendLine("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", fontname=\"Helvetica\", fontsize=10];");
        dot.AppendLine("  edge [fontname=\"Helvetica\", fontsize=9];");
        dot.AppendLine("  \"input\" [label=\"input (float)\", shape=ellipse, fillcolor=\"#ffffff\"];");
        dot.AppendLine("  \"output\" [label=\"output (float)\", shape=ellipse, fillcolor=\"#ffffff\"];");
        if (view == GraphView.Quantized)
        {
            WriteQuantized(dot, graph, layers);
        }
        else
        {
            WriteFloat(dot, graph, clusters: view == GraphView.Fused);
        }

        dot.AppendLine("}");
        return dot.ToString();
    }

    /// <summary>Renders DOT text to SVG with Graphviz's <c>dot -Tsvg</c>.</summary>
    /// <param name="dot">The DOT text.</param>
    /// <param name="dotExecutable">The <c>dot</c> program; null to look for it on PATH.</param>
    /// <returns>The SVG text.</returns>
    /// <exception cref="GraphvizNotFoundException"><c>dot</c> is not installed (the message names the package that provides it).</exception>
    /// <exception cref="InvalidOperationException"><c>dot</c> failed (the message has its error output).</exception>
    public static string ToSvg(string dot, string? dotExecutable = null)
    {
        ArgumentNullException.ThrowIfNull(dot);
        string executable = dotExecutable ?? FindDot() ?? throw new GraphvizNotFoundException(null);
        if (!File.Exists(executable))
        {
            throw new GraphvizNotFoundException(executable);
        }

        var start = new ProcessStartInfo(executable, "-Tsvg")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardInputEncoding = new UTF8Encoding(false),
            StandardOutputEncoding = Encoding.UTF8,
        };
        using Process process = Process.Start(start) ?? throw new InvalidOperationException($"GraphDrawing: could not start {executable}.");
        var error = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEndAsync();
        process.StandardInput.Write(dot);
        process.StandardInput.Close();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"GraphDrawing: {executable} -Tsvg failed with exit code {process.ExitCode}: {error.Result.Trim()}");
        }

        return output.Result;
    }

    /// <summary>Writes one view of a model's graph as DOT text to a file.</summary>
    /// <param name="model">The int8 model.</param>
    /// <param name="view">Which graph.</param>
    /// <param name="path">The <c>.dot</c> file to create or overwrite.</param>
    public static void WriteDot(IQuantizedModel model, GraphView view, string path) => File.WriteAllText(path, ToDot(model, view));

    /// <summary>Writes one view of a model's graph as SVG (needs Graphviz's <c>dot</c>).</summary>
    /// <param name="model">The int8 model.</param>
    /// <param name="view">Which graph.</param>
    /// <param name="path">The <c>.svg</c> file to create or overwrite.</param>
    /// <param name="dotExecutable">The <c>dot</c> program; null to look for it on PATH.</param>
    /// <exception cref="GraphvizNotFoundException"><c>dot</c> is not installed.</exception>
    public static void WriteSvg(IQuantizedModel model, GraphView view, string path, string? dotExecutable = null) =>
        File.WriteAllText(path, ToSvg(ToDot(model, view), dotExecutable));

    /// <summary>Graphviz's <c>dot</c> on PATH, or null.</summary>
    /// <returns>Its full path, or null when it is not installed.</returns>
    public static string? FindDot()
    {
        string name = OperatingSystem.IsWindows() ? "dot.exe" : "dot";
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static void WriteFloat(StringBuilder dot, ModelGraph graph, bool clusters)
    {
        // The float node standing for each value: the last member of the op that wrote it (or the input).
        var tail = new Dictionary<string, string>(StringComparer.Ordinal) { [graph.Input] = "input" };

        // The name an edge shows for a value: the float input's own name through a memberless quantize.
        var shown = new Dictionary<string, string>(StringComparer.Ordinal);
        string Shown(string value) => shown.TryGetValue(value, out string? name) ? name : value;
        var edges = new List<string>();
        int cluster = 0;
        foreach (GraphNode node in graph.Nodes)
        {
            string[] sources = node.Inputs.Select(v => tail.TryGetValue(v, out string? id) ? id : "input").ToArray();
            if (node.Members.Count == 0)
            {
                // The entry of a model without QuantStub: nothing in the float model; the value passes through.
                tail[node.Output] = sources.Length > 0 ? sources[0] : "input";
                shown[node.Output] = node.Inputs.Count > 0 ? Shown(node.Inputs[0]) : graph.Input;
                continue;
            }

            bool grouped = clusters && node.IsFused;
            string indent = grouped ? "    " : "  ";
            if (grouped)
            {
                dot.Append("  subgraph ").Append(Quote("cluster_" + cluster.ToString(CultureInfo.InvariantCulture))).AppendLine(" {");
                dot.Append("    label=").Append(Quote($"{node.Name}: {string.Join(" + ", node.Members.Select(m => m.ModuleType))} → one {node.Op}")).AppendLine(";");
                dot.AppendLine("    style=\"rounded,dashed\";");
                dot.AppendLine("    color=\"#4a78c2\";");
                cluster++;
            }

            for (int i = 0; i < node.Members.Count; i++)
            {
                GraphMember member = node.Members[i];
                string label = $"{member.Path}\n{member.ModuleType}" + (member.Source.Length > 0 ? $"\n{member.Source}" : string.Empty);
                dot.Append(indent).Append(Quote(MemberId(node, i))).Append(" [label=").Append(Quote(label))
                    .Append(node.Op == GraphOp.FloatIsland ? ", fillcolor=\"#fde7c8\"" : string.Empty).AppendLine("];");
                if (i > 0)
                {
                    edges.Add($"  {Quote(MemberId(node, i - 1))} -> {Quote(MemberId(node, i))};");
                }
            }

            if (grouped)
            {
                dot.AppendLine("  }");
            }

            for (int k = 0; k < node.Inputs.Count; k++)
            {
                edges.Add($"  {Quote(sources[k])} -> {Quote(MemberId(node, 0))} [label={Quote(Shown(node.Inputs[k]))}];");
            }

            tail[node.Output] = MemberId(node, node.Members.Count - 1);
        }

        edges.Add($"  {Quote(tail.TryGetValue(graph.Output, out string? last) ? last : "input")} -> \"output\" [label={Quote(Shown(graph.Output))}];");
        foreach (string edge in edges)
        {
            dot.AppendLine(edge);
        }
    }

    private static void WriteQuantized(StringBuilder dot, ModelGraph graph, IReadOnlyList<IQuantizedLayer>? layers)
    {
        Dictionary<string, IQuantizedLayer> byName = (layers ?? []).ToDictionary(l => l.Layer, StringComparer.Ordinal);
        var valueQParams = new Dictionary<string, QParams>(StringComparer.Ordinal);
        var edges = new List<string>();
        var writer = new Dictionary<string, string>(StringComparer.Ordinal) { [graph.Input] = "input" };
        foreach (GraphNode node in graph.Nodes)
        {
            byName.TryGetValue(node.Name, out IQuantizedLayer? layer);
            QParams? output = OwnOutputQParams(layer) ?? (node.Inputs.Count > 0 && valueQParams.TryGetValue(node.Inputs[0], out QParams? passed) ? passed : null);
            if (output is not null)
            {
                valueQParams[node.Output] = output;
            }

            var label = new StringBuilder();
            string attributes;
            switch (node.Op)
            {
                case GraphOp.Quantize:
                    label.Append("quantize\n").Append(node.Name);
                    attributes = "shape=invhouse, fillcolor=\"#d9f2d9\"";
                    break;
                case GraphOp.FloatIsland:
                    label.Append("float island\n").Append(node.Name).Append('\n').Append(string.Join(" + ", node.Members.Select(m => m.ModuleType)))
                        .Append("\ndequantize → float → quantize");
                    attributes = "style=\"rounded,filled,dashed\", fillcolor=\"#fde7c8\"";
                    break;
                default:
                    label.Append(node.Name).Append('\n').Append(OpText(node, layer));
                    attributes = node.IsFused ? "fillcolor=\"#dde8fa\"" : "fillcolor=\"#eef3fb\"";
                    break;
            }

            if (output is not null)
            {
                label.Append('\n').Append(QParamsText(output));
            }

            if (WeightText(layer) is string weight)
            {
                label.Append('\n').Append(weight);
            }

            if (node.Source.Length > 0)
            {
                label.Append('\n').Append(node.Source);
            }

            string id = "op:" + node.Name;
            dot.Append("  ").Append(Quote(id)).Append(" [label=").Append(Quote(label.ToString())).Append(", ").Append(attributes).AppendLine("];");
            foreach (string value in node.Inputs)
            {
                string from = writer.TryGetValue(value, out string? source) ? source : "input";
                string edgeLabel = value == graph.Input ? $"{value} (float)" : valueQParams.TryGetValue(value, out QParams? q) ? $"{value}\n{QParamsText(q)}" : value;
                edges.Add($"  {Quote(from)} -> {Quote(id)} [label={Quote(edgeLabel)}];");
            }

            writer[node.Output] = id;
        }

        string resultLabel = valueQParams.TryGetValue(graph.Output, out QParams? result) ? $"dequantize\n(float)(q − zp)·scale" : "dequantize";
        dot.Append("  \"dequantize\" [label=").Append(Quote(resultLabel)).AppendLine(", shape=house, fillcolor=\"#d9f2d9\"];");
        string resultEdge = result is null ? graph.Output : $"{graph.Output}\n{QParamsText(result)}";
        edges.Add($"  {Quote(writer.TryGetValue(graph.Output, out string? last) ? last : "input")} -> \"dequantize\" [label={Quote(resultEdge)}];");
        edges.Add("  \"dequantize\" -> \"output\";");
        foreach (string edge in edges)
        {
            dot.AppendLine(edge);
        }
    }

    /// <summary>The qparams a layer gives its output itself; null for the ops that pass their input's through.</summary>
    internal static QParams? OwnOutputQParams(IQuantizedLayer? layer) => layer switch
    {
        QuantizeInput { IsObserved: true } quantize => quantize.QParams,
        FloatOp { Output.IsObserved: true } floatOp => floatOp.Output.QParams,
        QuantizedConv2d conv => conv.OutputQParams,
        QuantizedLinear linear => linear.OutputQParams,
        QuantizedConvTranspose2d convTranspose => convTranspose.OutputQParams,
        QuantizedBatchNorm2d batchNorm => batchNorm.OutputQParams,
        QuantizedAdd add => add.OutputQParams,
        QuantizedCat cat => cat.OutputQParams,
        _ => null,
    };

    private static string OpText(GraphNode node, IQuantizedLayer? layer)
    {
        bool relu = layer switch
        {
            QuantizedConv2d conv => conv.FusedRelu,
            QuantizedLinear linear => linear.FusedRelu,
            QuantizedConvTranspose2d convTranspose => convTranspose.FusedRelu,
            QuantizedBatchNorm2d batchNorm => batchNorm.Relu,
            QuantizedAdd add => add.Relu,
            _ => false,
        };
        string text = node.Op + (relu ? "+ReLU" : string.Empty);
        return node.IsFused ? $"{text} (fused: {string.Join(" + ", node.Members.Select(m => m.Path))})" : text;
    }

    private static string? WeightText(IQuantizedLayer? layer)
    {
        QTensor? weight = layer switch
        {
            QuantizedConv2d conv => conv.Weight,
            QuantizedLinear linear => linear.Weight,
            QuantizedConvTranspose2d convTranspose => convTranspose.Weight,
            _ => null,
        };
        if (weight is null)
        {
            return null;
        }

        QParams q = weight.QParams;
        return q.IsPerChannel
            ? $"weight {ReportText.Shape(weight.Shape)} {q.DType.ToTorchString()}, per-channel (axis {q.Axis}) " + (q.Scales.Length == 1
                ? $"scale {ReportText.Exact(q.Scales[0])}"
                : $"scales {ReportText.Exact(q.Scales.Min())}..{ReportText.Exact(q.Scales.Max())}")
            : $"weight {ReportText.Shape(weight.Shape)} {q.DType.ToTorchString()}, scale {ReportText.Exact(q.Scale)}, zp {ReportText.Int(q.ZeroPoint)}";
    }

    private static string QParamsText(QParams q) =>
        q.IsPerChannel
            ? $"{q.DType.ToTorchString()} per-channel"
            : $"{q.DType.ToTorchString()} scale={ReportText.Exact(q.Scale)} zp={ReportText.Int(q.ZeroPoint)}";

    private static string MemberId(GraphNode node, int index) => $"member:{node.Name}:{index.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>A DOT double-quoted string (backslashes and quotes escaped, newlines as centred line breaks).</summary>
    private static string Quote(string text) =>
        "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal) + "\"";
}

/// <summary>Graphviz's <c>dot</c> is not installed (or not where it was said to be).</summary>
public sealed class GraphvizNotFoundException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The path that was tried, or null when PATH was searched.</param>
    public GraphvizNotFoundException(string? path)
        : base(path is null
            ? $"GraphDrawing: Graphviz's 'dot' program was not found on PATH; install the '{GraphDrawing.GraphvizPackage}' package (Debian/Ubuntu: apt-get install {GraphDrawing.GraphvizPackage}) to render SVG, or render the DOT text from GraphDrawing.ToDot elsewhere."
            : $"GraphDrawing: Graphviz's 'dot' program was not found at {path}; install the '{GraphDrawing.GraphvizPackage}' package (Debian/Ubuntu: apt-get install {GraphDrawing.GraphvizPackage}) to render SVG.")
    {
        Path = path;
    }

    /// <summary>The path that was tried, or null when PATH was searched.</summary>
    public string? Path { get; }
}
