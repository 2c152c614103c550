using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Reports;
using ResNet18Example;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Graphs;

/// <summary>
/// The graph description the generator emits on every Quantized (IQuantizedModel), checked on ResNet-18
/// against torchvision's architecture written out by hand here, and against what forward actually runs.
/// </summary>
public sealed class ModelGraphTests
{
    private static ResNet18.Quantized Converted(int seed)
    {
        torch.manual_seed(seed);
        using var model = new ResNet18(numClasses: 10);
        Randomize.BatchNormStatistics(model, seed);
        model.eval();
        using ResNet18.Observed observed = model.Prepare(QConfig.X86);
        using (torch.no_grad())
        {
            using Tensor batch = torch.randn(1, 3, 32, 32);
            observed.forward(batch).Dispose();
        }

        return observed.Convert();
    }

    [Fact]
    public void ResNet18sGraphHasTorchvisionsOpsInForwardOrder()
    {
        IQuantizedModel int8 = Converted(seed: 3);
        ModelGraph graph = int8.Graph;

        // torchvision's resnet18 after fusion: conv1(+bn1+relu), maxpool, 8 blocks of conv1(+bn+relu),
        // conv2(+bn), [downsample conv(+bn) in layer2..4 block 0], add(+relu); avgpool, flatten, fc.
        var expected = new List<string> { "input", "conv1", "maxpool" };
        for (int layer = 1; layer <= 4; layer++)
        {
            for (int block = 0; block < 2; block++)
            {
                string b = $"layer{layer}.{block}";
                expected.Add(b + ".conv1");
                expected.Add(b + ".conv2");
                if (layer > 1 && block == 0)
                {
                    expected.Add(b + ".downsample.0");
                }

                expected.Add(b + ".add");
            }
        }

        expected.AddRange(["avgpool", "flatten", "fc"]);
        List<string> names = graph.Nodes.Select(n => n.Name).ToList();
        Assert.Equal(expected.OrderBy(n => n, StringComparer.Ordinal), names.OrderBy(n => n, StringComparer.Ordinal));
        Assert.Equal(names, int8.Layers.Select(l => l.Layer));
        Assert.Equal(ResNet18.Quantized.GraphHash, graph.Hash);
        Assert.Equal("ResNet18", graph.Model);

        // Every value is written once, before it is read; the first node quantizes the float input.
        Assert.Equal(GraphOp.Quantize, graph.Nodes[0].Op);
        Assert.Equal([graph.Input], graph.Nodes[0].Inputs);
        var written = new HashSet<string>();
        foreach (GraphNode node in graph.Nodes)
        {
            if (node.Op != GraphOp.Quantize)
            {
                Assert.All(node.Inputs, value => Assert.Contains(value, written));
            }

            Assert.True(written.Add(node.Output), $"{node.Name} writes {node.Output} again");
        }

        Assert.Equal(graph.Output, graph.Get("fc").Output);

        // The residual adds read the block's conv2 and its identity: the block input, or the downsample.
        Assert.Equal([graph.Get("layer1.0.conv2").Output, graph.Get("maxpool").Output], graph.Get("layer1.0.add").Inputs.OrderBy(v => v == graph.Get("maxpool").Output));
        Assert.Contains(graph.Get("layer2.0.downsample.0").Output, graph.Get("layer2.0.add").Inputs);
        Assert.Equal(graph.Get("layer1.1.add").Output, graph.Get("layer2.0.downsample.0").Inputs.Single());

        // Fusions: the stem conv carries its bn and relu; the add carries the block's relu.
        Assert.Equal(
            [("conv1", "Conv2d"), ("bn1", "BatchNorm2d"), ("relu", "ReLU")],
            graph.Get("conv1").Members.Select(m => (m.Path, m.ModuleType)));
        Assert.Equal(GraphOp.Add, graph.Get("layer3.1.add").Op);
        Assert.Contains(graph.Get("layer3.1.add").Members, m => m.ModuleType == "ReLU");
        Assert.Matches(@"^ResNet\.cs\(\d+\)$", graph.Get("layer1.0.conv1").Source);
        Assert.Throws<ArgumentException>(() => graph.Get("layer9.conv"));
    }

    [Fact]
    public void TheInt8AndFloatTapsReportTheGraphsNodesInOrder()
    {
        torch.manual_seed(5);
        using var model = new ResNet18(numClasses: 10);
        model.eval();
        using ResNet18.Observed observed = model.Prepare(QConfig.X86);
        var floatLayers = new List<string>();
        using (torch.no_grad())
        {
            using Tensor batch = torch.randn(1, 3, 32, 32);
            observed.forward(batch, new FloatNames(floatLayers)).Dispose();
        }

        ResNet18.Quantized int8 = observed.Convert();
        var int8Layers = new List<string>();
        var rng = new Random(5);
        float[] image = Enumerable.Range(0, 3 * 32 * 32).Select(_ => (float)rng.NextDouble()).ToArray();
        int8.forward(int8.input.Forward(image, [1, 3, 32, 32]), new Int8Names(int8Layers));

        List<string> nodes = int8.Graph.Nodes.Select(n => n.Name).ToList();
        Assert.Equal(nodes, int8Layers);
        Assert.Equal(nodes, floatLayers);
    }

    [Fact]
    public void TheGraphHashIsTheModelsIdentity()
    {
        Assert.Matches("^[0-9a-f]{16}$", ResNet18.Quantized.GraphHash);
        Assert.NotEqual(ResNet18.Quantized.GraphHash, BasicBlock.Quantized.GraphHash);
    }

    [Fact]
    public void ABoolFieldOfAnInlinedSubModuleDecidesItsBranchPerInstance()
    {
        // FlagBlock's forward runs its pool only when its readonly bool says so; the parent inlines two of them.
        torch.manual_seed(9);
        using var model = new QuantGen.Tests.Generator.Models.FlagBlockNet();
        model.eval();
        using var observed = model.Prepare();
        using (torch.no_grad())
        {
            using Tensor batch = torch.randn(1, 2, 8, 8);
            observed.forward(batch).Dispose();
        }

        var int8 = observed.Convert();
        Assert.Equal(["input", "stem", "first.conv", "first.pool", "second.conv"], int8.Graph.Nodes.Select(n => n.Name));
        var random = new Random(9);
        float[] image = Enumerable.Range(0, 2 * 8 * 8).Select(_ => (float)random.NextDouble()).ToArray();
        float[] result = int8.forward(image, [1, 2, 8, 8], out int[] shape);
        Assert.Equal([1, 3, 4, 4], shape);
        Assert.Equal(48, result.Length);
    }

    private sealed class FloatNames(List<string> names) : IFloatTap
    {
        public Tensor? OnLayer(string layer, Tensor output)
        {
            names.Add(layer);
            return null;
        }
    }

    private sealed class Int8Names(List<string> names) : IQuantizedTap
    {
        public void OnLayer(string layer, QTensor output) => names.Add(layer);
    }
}
