using System.Linq;
using QuantGen.Reports;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>The layer report and the graph drawing take a model bound at Prepare like a generated one.</summary>
[Collection(QuantGen.Tests.Binding.SeededTorchCollection.Name)]
public sealed class BoundModelReportTests
{
    [Fact]
    public void The_layer_report_and_the_drawing_cover_every_bound_op()
    {
        torch.manual_seed(8);
        using var model = new AppendNet();
        model.eval();
        using AppendNet.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            for (int i = 0; i < 3; i++)
            {
                observed.forward(torch.randn(2, 3, 8, 8)).Dispose();
            }
        }

        AppendNet.Quantized int8 = observed.Convert();
        Tensor[] inputs = Enumerable.Range(0, 2).Select(_ => torch.randn(1, 3, 8, 8)).ToArray();
        QuantReport report = QuantReport.Compare(observed, int8, inputs);
        string[] reported = report.Layers.Select(l => l.Layer).ToArray();
        foreach (var op in observed.Graph.Ops)
        {
            Assert.Contains(op.Name, reported);
        }

        // Every layer's int8 output tracks its float one (a tiny random model over two images: a loose bound, but a
        // layer wired to the wrong value or skipped lands far below it).
        Assert.All(report.Layers.Where(l => l.Layer != "input"), l => Assert.True(l.AccumulatedError.SqnrDb > 12, $"{l.Layer}: {l.AccumulatedError.SqnrDb:F1} dB"));

        string dot = GraphDrawing.ToDot(int8, GraphView.Quantized);
        foreach (var op in observed.Graph.Ops)
        {
            Assert.Contains(op.Name, dot, System.StringComparison.Ordinal);
        }
    }
}

/// <summary>The layer report on a bound model with float ops (LogSoftmax, a float expression) in it.</summary>
[Collection(QuantGen.Tests.Binding.SeededTorchCollection.Name)]
public sealed class BoundModelWithFloatOpsReportTests
{
    [Fact]
    public void Float_ops_are_reported_as_the_int8_model_hands_them_on()
    {
        torch.manual_seed(9);
        using var model = new IdiomNet();
        model.eval();
        using IdiomNet.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            for (int i = 0; i < 3; i++)
            {
                observed.forward(torch.randn(2, 3, 16, 16)).Dispose();
            }
        }

        IdiomNet.Quantized int8 = observed.Convert();
        QuantReport report = QuantReport.Compare(observed, int8, new[] { torch.randn(1, 3, 16, 16) });
        Assert.Contains(report.Layers, l => l.Layer == "act");
        Assert.Equal(observed.Graph.Ops.Count + 1, report.Layers.Count);
    }
}
