using System;
using System.IO;
using System.Linq;
using QuantGen.Binding;
using QuantGen.Graphs;
using QuantGen.Serialization;
using QuantGen.Tests.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// A model bound at Prepare saves its bound graph and layers to a .qgen file, and the generated Load rebuilds the same
/// int8 model with no model instance; a forged graph record is refused before any kernel runs.
/// </summary>
[Collection(QuantGen.Tests.Binding.SeededTorchCollection.Name)]
public sealed class BoundModelFileTests
{
    private static AppendNet.Quantized Converted(int seed)
    {
        torch.manual_seed(seed);
        using var model = new AppendNet();
        model.eval();
        using AppendNet.Observed observed = model.Prepare();
        using var noGrad = torch.no_grad();
        for (int i = 0; i < 3; i++)
        {
            observed.forward(torch.randn(2, 3, 8, 8)).Dispose();
        }

        return observed.Convert();
    }

    private static byte[] Saved(AppendNet.Quantized int8)
    {
        using var stream = new MemoryStream();
        int8.Save(stream);
        return stream.ToArray();
    }

    [Fact]
    public void Save_and_Load_give_the_same_int8_model_without_the_float_model()
    {
        AppendNet.Quantized int8 = Converted(21);
        byte[] file = Saved(int8);
        AppendNet.Quantized loaded = AppendNet.Quantized.Load(new MemoryStream(file));

        Assert.Equal(int8.Graph.Nodes.Select(n => (n.Name, n.Op, string.Join(",", n.Inputs), n.Output)), loaded.Graph.Nodes.Select(n => (n.Name, n.Op, string.Join(",", n.Inputs), n.Output)));
        var random = new Random(3);
        for (int i = 0; i < 4; i++)
        {
            float[] x = Enumerable.Range(0, 3 * 8 * 8).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
            float[] expected = int8.forward(x, [1, 3, 8, 8], out int[] expectedShape);
            float[] actual = loaded.forward(x, [1, 3, 8, 8], out int[] actualShape);
            Assert.Equal(expectedShape, actualShape);
            Assert.Equal(expected, actual);
        }

        QGenFileInfo info = QGenFile.ReadInfo(new MemoryStream(file));
        Assert.Equal(QGenLayerKind.BoundGraph, info.Layers[0].Kind);
        Assert.StartsWith("bound-", info.GraphHash, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_of_another_model_is_refused()
    {
        byte[] file = Saved(Converted(5));
        var error = Assert.Throws<QGenFormatException>(() => UnguardedNet.Quantized.Load(new MemoryStream(file)));
        Assert.Equal(QGenFormatError.ModelMismatch, error.Error);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void A_forged_graph_record_is_refused_before_any_kernel_runs(int forgery)
    {
        byte[] file = Saved(Converted(6));
        QGenFileInfo info = QGenFile.ReadInfo(new MemoryStream(file));
        int at = (int)info.Layers[0].PayloadOffset;
        // Payload: u32 value count, i32 result, u32 step count, then per step: name, u16 op, u32 input count, inputs, i32 output.
        switch (forgery)
        {
            case 0: BitConverter.TryWriteBytes(file.AsSpan(at), 0x7FFFFFFF); break;          // value count
            case 1: BitConverter.TryWriteBytes(file.AsSpan(at + 4), 999); break;             // result out of range
            case 2: BitConverter.TryWriteBytes(file.AsSpan(at + 8), 100000); break;          // step count beyond the record
            case 3:
            {
                // The first step reads a value no step wrote: its first input becomes 5.
                int nameLength = BitConverter.ToUInt16(file, at + 12);
                int inputsAt = at + 12 + 2 + nameLength + 2 + 4;
                BitConverter.TryWriteBytes(file.AsSpan(inputsAt), 5);
                break;
            }
        }

        byte[] resealed = FileLayout.Reseal(file);
        var error = Assert.Throws<QGenFormatException>(() => AppendNet.Quantized.Load(new MemoryStream(resealed)));
        Assert.Contains("graph", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_topology_constructor_refuses_graphs_that_read_unwritten_values()
    {
        Assert.Throws<ArgumentException>(() => new BoundTopology("M", 3, 2, new[] { new BoundTopologyStep("a", GraphOp.ReLU, new[] { 2 }, 1), new BoundTopologyStep("b", GraphOp.ReLU, new[] { 1 }, 2) }));
        Assert.Throws<ArgumentException>(() => new BoundTopology("M", 3, 2, new[] { new BoundTopologyStep("a", GraphOp.ReLU, new[] { 0 }, 1) }));
        Assert.Throws<ArgumentException>(() => new BoundTopology("M", 3, 1, new[] { new BoundTopologyStep("a", GraphOp.Add, new[] { 0 }, 1) }));
        Assert.Throws<ArgumentException>(() => new BoundTopology("M", 3, 1, new[] { new BoundTopologyStep("a", GraphOp.Quantize, new[] { 0 }, 1) }));
        var ok = new BoundTopology("M", 3, 2, new[] { new BoundTopologyStep("a", GraphOp.ReLU, new[] { 0 }, 1), new BoundTopologyStep("b", GraphOp.Add, new[] { 0, 1 }, 2) });
        Assert.Equal(2, ok.Steps.Count);
    }
}
