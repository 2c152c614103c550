using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Reports;
using QuantGen.Tests.Generator.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Reports;

/// <summary>
/// GraphDrawing's DOT text, parsed here: one node per member (float and fused views) or per op (quantized view),
/// clusters exactly the fused groups, edges exactly the graph's Inputs/Output; SVG through Graphviz when installed.
/// </summary>
public sealed partial class GraphDrawingTests
{
    [Fact]
    public void FloatViewHasOneNodePerMemberAndTheGraphsEdges()
    {
        using var resnet = ReportModels.ResNet();
        ModelGraph graph = resnet.Int8.Graph;
        Dot dot = Dot.Parse(GraphDrawing.ToDot(resnet.Int8, GraphView.Float));

        // Every member occurrence is a node ("relu" of a block is used twice, so it appears twice).
        var expectedNodes = graph.Nodes.SelectMany(n => n.Members.Select((m, i) => ($"member:{n.Name}:{i}", m.Path))).ToList();
        Assert.Equal(expectedNodes.Count + 2, dot.Nodes.Count); // + input, output
        foreach ((string id, string path) in expectedNodes)
        {
            Assert.StartsWith(path + "\\n", dot.Nodes[id], StringComparison.Ordinal);
        }

        Assert.Empty(dot.Clusters);
        Assert.Equal(ExpectedFloatEdges(graph).OrderBy(e => e), dot.Edges.OrderBy(e => e));
    }

    [Fact]
    public void FusedViewGroupsEachFusionInACluster()
    {
        using var resnet = ReportModels.ResNet();
        ModelGraph graph = resnet.Int8.Graph;
        Dot dot = Dot.Parse(GraphDrawing.ToDot(resnet.Int8, GraphView.Fused));
        List<GraphNode> fused = graph.Nodes.Where(n => n.Members.Count > 1).ToList();
        Assert.Equal(fused.Count, dot.Clusters.Count);
        for (int i = 0; i < fused.Count; i++)
        {
            Assert.Equal(fused[i].Members.Select((m, k) => $"member:{fused[i].Name}:{k}"), dot.Clusters[i]);
        }

        Assert.Equal(ExpectedFloatEdges(graph).OrderBy(e => e), dot.Edges.OrderBy(e => e));
    }

    [Fact]
    public void QuantizedViewHasOneNodePerOpWithItsQParamsAndTheGraphsEdges()
    {
        using var resnet = ReportModels.ResNet();
        ModelGraph graph = resnet.Int8.Graph;
        Dot dot = Dot.Parse(GraphDrawing.ToDot(resnet.Int8, GraphView.Quantized));
        Assert.Equal(graph.Nodes.Count + 3, dot.Nodes.Count); // + input, dequantize, output
        foreach (GraphNode node in graph.Nodes)
        {
            Assert.True(dot.Nodes.ContainsKey("op:" + node.Name), node.Name);
        }

        // Edges: whoever writes each input value → the op; the result → dequantize → output.
        var writer = graph.Nodes.ToDictionary(n => n.Output, n => "op:" + n.Name);
        writer[graph.Input] = "input";
        var expected = graph.Nodes.SelectMany(n => n.Inputs.Select(v => $"{writer[v]} -> op:{n.Name}")).ToList();
        expected.Add($"{writer[graph.Output]} -> dequantize");
        expected.Add("dequantize -> output");
        Assert.Equal(expected.OrderBy(e => e), dot.Edges.OrderBy(e => e));

        // Labels carry the layers' own output qparams (conv) and the input quantization.
        QuantizedConv2d conv = resnet.Int8.layer1_0_conv1;
        Assert.Contains($"scale={conv.Scale:R} zp={conv.ZeroPoint}", dot.Nodes["op:layer1.0.conv1"], StringComparison.Ordinal);
        QuantizeInput entry = ((IQuantizedModel)resnet.Int8).Input;
        Assert.StartsWith("quantize", dot.Nodes["op:" + entry.Layer], StringComparison.Ordinal);
        Assert.Contains($"scale={entry.Scale:R} zp={entry.ZeroPoint}", dot.Nodes["op:" + entry.Layer], StringComparison.Ordinal);

        // A pass-through op (max pool) shows the qparams it passes on: conv1's.
        Assert.Contains($"scale={resnet.Int8.conv1.Scale:R}", dot.Nodes["op:maxpool"], StringComparison.Ordinal);
    }

    [Fact]
    public void FloatIslandsAreMarked()
    {
        using var model = new IslandNet();
        model.eval();
        using IslandNet.Observed observed = model.Prepare();
        using (torch.no_grad())
        using (var generator = new torch.Generator(3))
        using (Tensor batch = torch.randn([1, 2, 5, 5], generator: generator))
        {
            observed.forward(batch).Dispose();
        }

        IslandNet.Quantized int8 = observed.Convert();
        GraphNode island = Assert.Single(int8.Graph.Nodes, n => n.Op == GraphOp.FloatIsland);
        string text = GraphDrawing.ToDot(int8, GraphView.Quantized);
        Dot dot = Dot.Parse(text);
        Assert.StartsWith("float island\\n" + island.Name, dot.Nodes["op:" + island.Name], StringComparison.Ordinal);
        Assert.Matches($"\"op:{Regex.Escape(island.Name)}\" \\[label=\"[^\"]*\", style=\"rounded,filled,dashed\"", text);
    }

    [Fact]
    public void SvgRendersWhenGraphvizIsInstalled()
    {
        using var resnet = ReportModels.ResNet();
        string dot = GraphDrawing.ToDot(resnet.Int8, GraphView.Quantized);
        if (GraphDrawing.FindDot() is null)
        {
            // Without Graphviz the error names the package to install.
            var missing = Assert.Throws<GraphvizNotFoundException>(() => GraphDrawing.ToSvg(dot));
            Assert.Contains("apt-get install graphviz", missing.Message, StringComparison.Ordinal);
            return;
        }

        string svg = GraphDrawing.ToSvg(dot);
        Assert.Contains("<svg", svg, StringComparison.Ordinal);
        Assert.Contains("layer2.0.downsample.0", svg, StringComparison.Ordinal);
        Assert.Equal(resnet.Int8.Graph.Nodes.Count + 3, Regex.Matches(svg, "class=\"node\"").Count);
    }

    [Fact]
    public void AMissingDotNamesThePackage()
    {
        string nowhere = Path.Combine(Path.GetTempPath(), "no-such-dir-" + Guid.NewGuid().ToString("N"), "dot");
        var error = Assert.Throws<GraphvizNotFoundException>(() => GraphDrawing.ToSvg("digraph g { a -> b; }", nowhere));
        Assert.Contains(nowhere, error.Message, StringComparison.Ordinal);
        Assert.Contains("'graphviz'", error.Message, StringComparison.Ordinal);
        Assert.Contains("apt-get install graphviz", error.Message, StringComparison.Ordinal);
    }

    /// <summary>The float graph's edges as the test derives them: member chains inside an op, then value edges.</summary>
    private static List<string> ExpectedFloatEdges(ModelGraph graph)
    {
        var tail = new Dictionary<string, string> { [graph.Input] = "input" };
        var edges = new List<string>();
        foreach (GraphNode node in graph.Nodes)
        {
            if (node.Members.Count == 0)
            {
                tail[node.Output] = tail[node.Inputs[0]];
                continue;
            }

            for (int i = 1; i < node.Members.Count; i++)
            {
                edges.Add($"member:{node.Name}:{i - 1} -> member:{node.Name}:{i}");
            }

            edges.AddRange(node.Inputs.Select(v => $"{tail[v]} -> member:{node.Name}:0"));
            tail[node.Output] = $"member:{node.Name}:{node.Members.Count - 1}";
        }

        edges.Add($"{tail[graph.Output]} -> output");
        return edges;
    }

    [GeneratedRegex("^\\s*\"(?<id>[^\"]+)\" \\[label=\"(?<label>(?:[^\"\\\\]|\\\\.)*)\"")]
    private static partial Regex NodeLine();

    [GeneratedRegex("^\\s*\"(?<from>[^\"]+)\" -> \"(?<to>[^\"]+)\"")]
    private static partial Regex EdgeLine();

    /// <summary>The nodes, edges and clusters of DOT text written one statement per line.</summary>
    private sealed record Dot(Dictionary<string, string> Nodes, List<string> Edges, List<List<string>> Clusters)
    {
        public static Dot Parse(string text)
        {
            var dot = new Dot(new Dictionary<string, string>(), new List<string>(), new List<List<string>>());
            List<string>? cluster = null;
            foreach (string line in text.Split('\n'))
            {
                if (line.TrimStart().StartsWith("subgraph \"cluster_", StringComparison.Ordinal))
                {
                    cluster = new List<string>();
                    dot.Clusters.Add(cluster);
                }
                else if (line.Trim() == "}")
                {
                    cluster = null;
                }
                else if (EdgeLine().Match(line) is { Success: true } edge)
                {
                    dot.Edges.Add($"{edge.Groups["from"].Value} -> {edge.Groups["to"].Value}");
                }
                else if (NodeLine().Match(line) is { Success: true } node)
                {
                    Assert.False(dot.Nodes.ContainsKey(node.Groups["id"].Value), "duplicate node " + node.Groups["id"].Value);
                    dot.Nodes[node.Groups["id"].Value] = node.Groups["label"].Value;
                    cluster?.Add(node.Groups["id"].Value);
                }
            }

            return dot;
        }
    }
}
