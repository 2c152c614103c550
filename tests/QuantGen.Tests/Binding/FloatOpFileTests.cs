using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Onnx;
using QuantGen.Serialization;
using QuantGen.Tests.Onnx;
using QuantGen.Tests.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// Float ops inside a bound model are stored as data (<see cref="FloatOp"/>): a converted model with float ops saves to
/// .qgen and loads back with the same results to the bit, each stored op computes what its module computes, a
/// forged float-op record is refused before anything runs, and ONNX export writes each as its float operator.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class FloatOpFileTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly int[] InputShape = [1, 3, 8, 8];

    private static (FloatOpsNet Model, FloatOpsNet.Quantized Int8) Converted(int seed, QConfigMapping? mapping = null)
    {
        torch.manual_seed(seed);
        var model = new FloatOpsNet();
        RealModels.Randomize.BatchNormStatistics(model, seed);
        model.eval();
        using FloatOpsNet.Observed observed = mapping is null ? model.Prepare() : model.Prepare(mapping);
        using (torch.no_grad())
        {
            for (int i = 0; i < 4; i++)
            {
                observed.forward(torch.randn(2, 3, 8, 8)).Dispose();
            }
        }

        return (model, observed.Convert());
    }

    private static byte[] Saved(Action<Stream> save)
    {
        using var stream = new MemoryStream();
        save(stream);
        return stream.ToArray();
    }

    private static float[] RandomInput(int seed, int count)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
    }

    [Fact]
    public void A_model_with_float_ops_saves_and_loads_with_the_same_results_to_the_bit()
    {
        (FloatOpsNet model, FloatOpsNet.Quantized int8) = Converted(41);
        using (model)
        {
            Assert.Equal(
                new[] { "shuffle", "norm", "gelu", "conv3", "pool", "up", "layerNorm", "flatten", "head" },
                int8.FloatOps.Select(f => f.Layer).ToArray());
            byte[] file = Saved(int8.Save);
            QGenFileInfo info = QGenFile.ReadInfo(new MemoryStream(file));
            Assert.Equal(9, info.Layers.Count(l => l.Kind == QGenLayerKind.FloatOp));

            FloatOpsNet.Quantized loaded = FloatOpsNet.Quantized.Load(new MemoryStream(file));
            Assert.Equal(int8.FloatOps.Select(f => f.Layer), loaded.FloatOps.Select(f => f.Layer));
            for (int i = 0; i < 3; i++)
            {
                float[] x = RandomInput(i, 3 * 8 * 8);
                float[] expected = int8.forward(x, InputShape, out int[] expectedShape);
                float[] actual = loaded.forward(x, InputShape, out int[] actualShape);
                Assert.Equal([1, 10], expectedShape);
                Assert.Equal(expectedShape, actualShape);
                Assert.Equal(expected, actual);

                // The model ends in a float LogSoftmax: its result is a log-probability per class.
                Assert.Equal(1.0, expected.Sum(v => Math.Exp(v)), 4);
            }

            using Tensor input = torch.randn(2, 3, 8, 8);
            using Tensor a = int8.forward(input), b = loaded.forward(input);
            Assert.True(a.eq(b).all().item<bool>());
        }
    }

    [Fact]
    public void Each_stored_float_op_computes_what_its_module_computes()
    {
        (FloatOpsNet model, FloatOpsNet.Quantized int8) = Converted(42);
        using (model)
        {
            // The input each op sees in this model.
            var shapes = new Dictionary<string, long[]>
            {
                ["shuffle"] = [2, 16, 8, 8], ["norm"] = [2, 4, 16, 16], ["gelu"] = [2, 4, 16, 16], ["conv3"] = [2, 8, 16, 16],
                ["pool"] = [2, 8, 16, 16], ["up"] = [2, 8, 8, 8], ["layerNorm"] = [2, 8, 16, 16], ["flatten"] = [2, 8, 16, 16], ["head"] = [2, 10],
            };
            var modules = model.named_modules().ToDictionary(m => m.name, m => (nn.Module<Tensor, Tensor>)m.module);
            FloatOp[] floatOps = int8.Layers.OfType<FloatOp>().ToArray();
            Assert.Equal(shapes.Keys.Order(), floatOps.Select(f => f.Layer).Order());
            using var noGrad = torch.no_grad();
            foreach (FloatOp op in floatOps)
            {
                using var scope = torch.NewDisposeScope();
                Tensor x = torch.randn(shapes[op.Layer]) * 3;
                Tensor expected = modules[op.Layer].forward(x);
                Tensor actual = op.Forward([x]);
                Assert.True(expected.eq(actual).all().item<bool>(), $"{op.Layer} ({op.Kind} {op.Text}): the stored op differs from the module (max {(expected - actual).abs().max().item<float>()})");
            }
        }
    }

    [Fact]
    public void A_conv_the_mapping_keeps_in_float_is_stored_with_its_batch_norm_folded_and_relu_fused()
    {
        (FloatOpsNet model, FloatOpsNet.Quantized int8) = Converted(43, FloatOpsNet.DefaultQConfigMapping().SetModuleName("conv2", null));
        using (model)
        {
            FloatOp conv = int8.Layers.OfType<FloatOp>().Single(f => f.Layer == "conv2");
            Assert.Equal(FloatOpKind.Conv2d, conv.Kind);
            Assert.True(conv.Relu);
            Assert.Contains(int8.FloatOps, f => f.Layer == "conv2" && f.Reason.Contains("qconfig is None", StringComparison.Ordinal));

            var modules = model.named_modules().ToDictionary(m => m.name, m => (nn.Module<Tensor, Tensor>)m.module);
            using (torch.no_grad())
            using (torch.NewDisposeScope())
            {
                Tensor x = torch.randn(2, 4, 16, 16);
                Tensor expected = modules["relu2"].forward(modules["bn2"].forward(modules["conv2"].forward(x)));
                Tensor actual = conv.Forward([x]);

                // Folding the batch norm into the weights rounds differently in the last bits, as PyTorch's fused module does.
                float worst = (expected - actual).abs().max().item<float>();
                Assert.True(worst <= 1e-4f * Math.Max(1f, expected.abs().max().item<float>()), $"folded conv-bn-relu differs by {worst}");
            }

            byte[] file = Saved(int8.Save);
            FloatOpsNet.Quantized loaded = FloatOpsNet.Quantized.Load(new MemoryStream(file));
            float[] input = RandomInput(7, 3 * 8 * 8);
            Assert.Equal(int8.forward(input, InputShape, out _), loaded.forward(input, InputShape, out _));
        }
    }

    [Fact]
    public void A_tensor_expression_of_forward_is_stored_by_reference_and_found_again_at_Load()
    {
        torch.manual_seed(4);
        using var model = new IdiomNet();
        model.eval();
        using IdiomNet.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            observed.forward(torch.randn(1, 3, 16, 16)).Dispose();
        }

        IdiomNet.Quantized int8 = observed.Convert();
        FloatOp function = int8.Layers.OfType<FloatOp>().Single(f => f.Kind == FloatOpKind.Function);
        Assert.StartsWith(typeof(IdiomNet).FullName + "|bound-", function.Text, StringComparison.Ordinal);

        byte[] file = Saved(int8.Save);
        IdiomNet.Quantized loaded = IdiomNet.Quantized.Load(new MemoryStream(file));
        float[] input = RandomInput(9, 3 * 16 * 16);
        Assert.Equal(int8.forward(input, [1, 3, 16, 16], out _), loaded.forward(input, [1, 3, 16, 16], out _));

        // ONNX cannot read C#: the export names the expression instead of writing something else.
        var error = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(int8));
        Assert.Contains("tensor expression", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_float_op_that_cannot_be_described_is_refused_at_Save_naming_it_and_why()
    {
        torch.manual_seed(5);
        using var model = new PReluNet();
        model.eval();
        using PReluNet.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            observed.forward(torch.randn(1, 3, 8, 8)).Dispose();
        }

        PReluNet.Quantized int8 = observed.Convert();
        var error = Assert.Throws<NotSupportedException>(() => int8.Save(new MemoryStream()));
        Assert.Contains("act", error.Message, StringComparison.Ordinal);
        Assert.Contains("PReLU", error.Message, StringComparison.Ordinal);
        Assert.Contains("cannot describe", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(999, QGenFormatError.Malformed)]        // a kind this version does not know
    [InlineData(15, QGenFormatError.InvalidLayer)]      // a conv's constants read as a PixelShuffle's
    public void A_forged_float_op_record_is_refused_before_anything_runs(int kind, QGenFormatError expected)
    {
        (FloatOpsNet model, FloatOpsNet.Quantized int8) = Converted(44);
        model.Dispose();
        byte[] file = Saved(int8.Save);
        QGenFileInfo info = QGenFile.ReadInfo(new MemoryStream(file));
        QGenLayerInfo conv3 = info.Layers.Single(l => l.Name == "conv3");
        Assert.Equal(QGenLayerKind.FloatOp, conv3.Kind);
        BitConverter.TryWriteBytes(file.AsSpan((int)conv3.PayloadOffset), (ushort)kind);

        var error = Assert.Throws<QGenFormatException>(() => FloatOpsNet.Quantized.Load(new MemoryStream(FileLayout.Reseal(file))));
        Assert.Equal(expected, error.Error);
        Assert.Contains("conv3", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_float_op_constructor_refuses_values_that_do_not_make_its_op()
    {
        var output = new QuantizeInput("M", "op", QParams.PerTensor(0.1f, 128, QuantDType.QUInt8));
        FloatOpTensor[] weight = [new("weight", [4, 3, 3, 3], new float[4 * 27])];
        long[] conv = [3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1];
        Assert.Equal(FloatOpKind.Conv2d, new FloatOp("M", "op", FloatOpKind.Conv2d, "", conv, [], weight, false, 1, output).Kind);

        var shape = Assert.Throws<ArgumentException>(() => new FloatOp("M", "op", FloatOpKind.Conv2d, "", [3, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1], [], weight, false, 1, output));
        Assert.Contains("M.op", shape.Message, StringComparison.Ordinal);
        Assert.Contains("[8, 3, 3, 3]", shape.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new FloatOp("M", "op", FloatOpKind.Conv2d, "", conv, [], [new("weight", [4, 3, 3, 3], new float[5])], false, 1, output));
        Assert.Throws<ArgumentException>(() => new FloatOp("M", "op", FloatOpKind.Elementwise, "Launch", [], [], [], false, 1, output));
        Assert.Throws<ArgumentException>(() => new FloatOp("M", "op", FloatOpKind.Add, "", [], [], [], false, 1, output));
        Assert.Throws<ArgumentException>(() => new FloatOp("M", "op", FloatOpKind.Hardtanh, "", [], [6, 0], [], false, 1, output));
        Assert.Throws<ArgumentException>(() => new FloatOp("M", "op", FloatOpKind.Upsample, "Nearest", [1, 0], [], [], false, 1, output));
        Assert.Throws<ArgumentException>(() => new FloatOp("M", "op", (FloatOpKind)77, "", [], [], [], false, 1, output));
        Assert.Throws<ArgumentException>(() => new FloatOp("M", "op", FloatOpKind.MaxPool2d, "", [2, 2, 2, 2, -1, 0, 1, 1, 0], [], [], false, 1, output));
        Assert.Throws<ArgumentException>(() => new FloatOp("M", "op", FloatOpKind.AvgPool2d, "", [2, 2, 2, 2, 0, 0, 0, 0, -3], [], [], false, 1, output));

        // An input the op cannot take: libtorch's refusal comes back naming the model, the layer and the shape.
        var shuffle = new FloatOp("M", "op", FloatOpKind.PixelShuffle, "", [2], [], [], false, 1, output);
        using (Tensor odd = torch.zeros(1, 3, 4, 4))
        {
            var wrong = Assert.Throws<ArgumentException>(() => shuffle.Forward([odd]));
            Assert.Contains("M.op", wrong.Message, StringComparison.Ordinal);
            Assert.Contains("[1, 3, 4, 4]", wrong.Message, StringComparison.Ordinal);
        }

        // A function is found when the op first runs: a class no loaded assembly registered is named in the error.
        var function = new FloatOp("M", "op", FloatOpKind.Function, "Nowhere.Model|bound-0", [0], [], [], false, 1, output);
        using Tensor x = torch.zeros(1);
        var missing = Assert.Throws<InvalidOperationException>(() => function.Forward([x]));
        Assert.Contains("Nowhere.Model", missing.Message, StringComparison.Ordinal);
    }

    [SkippableTheory]
    [InlineData(OnnxForm.Qdq)]
    [InlineData(OnnxForm.QOperator)]
    public void Float_ops_export_as_their_float_operators_and_ORT_agrees(OnnxForm form)
    {
        (FloatOpsNet model, FloatOpsNet.Quantized int8) = Converted(45);
        model.Dispose();
        byte[] onnx = OnnxExporter.Export(int8, new OnnxExportOptions { Form = form });
        var proto = QuantGen.Onnx.Protobuf.ModelProto.Parser.ParseFrom(onnx);
        string[] ops = proto.Graph.Node.Select(n => n.OpType).ToArray();
        foreach (string op in new[] { "DepthToSpace", "GroupNormalization", "Gelu", "MaxPool", "Resize", "LayerNormalization", "LogSoftmax" })
        {
            Assert.Contains(op, ops);
        }

        float[] image = RandomInput(11, 3 * 8 * 8);
        float[] quantGen = int8.forward(image, InputShape, out int[] shape);
        float step = int8.Layers.OfType<QuantizedLinear>().Last().OutputQParams.Scale;
        // The int8 ops after a float op (conv2 after GroupNorm and GELU, fc after LayerNorm) read its result quantized with
        // its observer's qparams, as the int8 model does: a QuantizeLinear → DequantizeLinear pair in the graph. ORT runs
        // the float ops on its own kernels (each within 2e-5 of libtorch alone, FloatOpOnnxTests), so a value could land
        // on the other side of a rounding boundary now and then: held to one logit step, 0.00 measured. (When the int8
        // ops read the float results unquantized, the QDQ graph drifted to 7.9 logit steps.)
        if (form == OnnxForm.Qdq)
        {
            OrtResult asWritten = OnnxTestSupport.RunQdqAsWritten(onnx, image, InputShape);
            Assert.Equal(shape, asWritten.Shape);
            float drift = quantGen.Zip(asWritten.Output).Max(p => MathF.Abs(p.First - p.Second)) / step;
            float range = (quantGen.Max() - quantGen.Min()) / step;
            output.WriteLine($"QDQ graph in ORT vs QuantGen: max {drift:F2} logit steps, the log-probabilities span {range:F1} steps");
            Assert.True(drift <= 1.01f, $"the QDQ graph's result is {drift:F2} logit steps from QuantGen's");
        }

        OrtResult ort = OnnxTestSupport.Run(onnx, image, InputShape);
        Assert.Equal(shape, ort.Shape);
        float worst = quantGen.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second)) / step;
        output.WriteLine($"{form} in ORT vs QuantGen: max {worst:F2} logit steps");
        Assert.True(worst <= 1.01f, $"{form}: ORT's output is {worst:F2} logit steps from QuantGen's");
    }
}
