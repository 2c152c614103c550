using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Onnx;
using QuantGen.Reports;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Onnx;

/// <summary>
/// Each float op's ONNX form computes what the op computes: a graph of quantize → the float op, run by ONNX Runtime
/// with its float kernels, against <see cref="FloatOp.Forward"/> (libtorch, the same op as the user's module) on the
/// same dequantized input.
/// </summary>
public sealed class FloatOpOnnxTests
{
    private static readonly QuantizeInput Quantize = new("M", "input", QParams.PerTensor(4f / 255f, 128, QuantDType.QUInt8));

    private static FloatOpTensor Random(string name, int[] shape, int seed, float low = -1f, float high = 1f)
    {
        var random = new Random(seed);
        int count = shape.Aggregate(1, (a, b) => a * b);
        return new FloatOpTensor(name, shape, Enumerable.Range(0, count).Select(_ => low + (float)random.NextDouble() * (high - low)).ToArray());
    }

    private static FloatOp Op(FloatOpKind kind, long[]? ints = null, double[]? floats = null, string text = "", FloatOpTensor[]? tensors = null, bool relu = false, int inputs = 1) =>
        new("M", "op", kind, text, ints ?? [], floats ?? [], tensors ?? [], relu, inputs, new QuantizeInput("M", "op", QParams.PerTensor(0.05f, 128, QuantDType.QUInt8)));

    /// <summary>The cases: a name, the op and the input shape.</summary>
    public static IEnumerable<object[]> Cases()
    {
        int[] image = [1, 4, 6, 6];
        object[] Case(string name, FloatOp op, int[]? shape = null) => [name, op, shape ?? image];
        yield return Case("conv", Op(FloatOpKind.Conv2d, [4, 6, 3, 3, 2, 1, 1, 0, 1, 1, 2], tensors: [Random("weight", [6, 2, 3, 3], 1), Random("bias", [6], 2)], relu: true));
        yield return Case("conv_transpose", Op(FloatOpKind.ConvTranspose2d, [4, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2], tensors: [Random("weight", [4, 3, 3, 3], 3), Random("bias", [6], 4)]));
        yield return Case("linear_gemm", Op(FloatOpKind.Linear, [12, 5, -1], tensors: [Random("weight", [5, 12], 5), Random("bias", [5], 6)]), [3, 12]);
        yield return Case("linear_matmul", Op(FloatOpKind.Linear, [6, 5, -1], tensors: [Random("weight", [5, 6], 7)]));
        yield return Case("batch_norm", Op(FloatOpKind.BatchNorm2d, floats: [1e-5], tensors: [Random("running_mean", [4], 8), Random("running_var", [4], 9, 0.5f, 1.5f), Random("weight", [4], 10), Random("bias", [4], 11)]));
        yield return Case("relu", Op(FloatOpKind.ReLU));
        yield return Case("hardtanh", Op(FloatOpKind.Hardtanh, floats: [-0.5, 1.25]));
        yield return Case("add", Op(FloatOpKind.Add, inputs: 2, relu: true));
        yield return Case("cat", Op(FloatOpKind.Cat, [1], inputs: 2));
        yield return Case("flatten", Op(FloatOpKind.Flatten, [1, 2]));
        yield return Case("reshape", Op(FloatOpKind.Reshape, [1, -1, 12]));
        yield return Case("max_pool", Op(FloatOpKind.MaxPool2d, [3, 3, 2, 2, 1, 1, 1, 1, 1]));
        yield return Case("avg_pool", Op(FloatOpKind.AvgPool2d, [2, 2, 2, 2, 1, 1, 0, 0, 0]));
        yield return Case("global_avg_pool", Op(FloatOpKind.AdaptiveAvgPool2d, [1, 1]));
        foreach ((string function, double[] parameters) in new (string, double[])[]
        {
            ("LeakyReLU", [0.1]), ("ELU", [0.7]), ("CELU", [1.3]), ("SELU", []), ("GELU", [0]), ("GELU", [1]), ("Hardswish", []), ("Hardsigmoid", []),
            ("Sigmoid", []), ("Tanh", []), ("SiLU", []), ("Mish", []), ("Softplus", [1, 20]), ("Softsign", []),
        })
        {
            yield return Case(function + string.Join("_", parameters), Op(FloatOpKind.Elementwise, floats: parameters, text: function));
        }

        yield return Case("pixel_shuffle", Op(FloatOpKind.PixelShuffle, [2]));
        yield return Case("softmax", Op(FloatOpKind.Softmax, [1]));
        yield return Case("log_softmax", Op(FloatOpKind.LogSoftmax, [-1]));
        yield return Case("upsample_nearest", Op(FloatOpKind.Upsample, [-1, 0], [2, 2], "Nearest"));
        yield return Case("upsample_nearest_size", Op(FloatOpKind.Upsample, [9, 12, -1, 0], text: "Nearest"));
        yield return Case("upsample_bilinear", Op(FloatOpKind.Upsample, [0, 0], [2, 2], "Bilinear"));
        yield return Case("upsample_bilinear_align", Op(FloatOpKind.Upsample, [1, 0], [2, 2], "Bilinear"));
        yield return Case("upsample_bicubic", Op(FloatOpKind.Upsample, [0, 0], [2, 2], "Bicubic"));
        yield return Case("layer_norm", Op(FloatOpKind.LayerNorm, [6, 6], [1e-5], tensors: [Random("weight", [6, 6], 12), Random("bias", [6, 6], 13)]));
        yield return Case("layer_norm_plain", Op(FloatOpKind.LayerNorm, [6], [1e-5]));
        yield return Case("group_norm", Op(FloatOpKind.GroupNorm, [2], [1e-5], tensors: [Random("weight", [4], 14), Random("bias", [4], 15)]));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_float_op_exports_as_an_ONNX_operator_that_computes_the_same(string name, FloatOp op, int[] shape)
    {
        var model = new OneOpModel(op);
        byte[] onnx = OnnxExporter.Export(model, new OnnxExportOptions { InputShape = shape });

        var random = new Random(name.Length);
        float[] x = Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        OrtResult ort = OnnxTestSupport.RunQdqAsWritten(onnx, x, shape);

        float[] expected;
        int[] expectedShape;
        using (torch.NewDisposeScope())
        using (torch.no_grad())
        {
            QTensor q = Quantize.Forward(x, shape);
            Tensor input = TensorInterop.FromArray(q.Dequantize(), shape);
            Tensor[] inputs = Enumerable.Repeat(input, op.InputCount).ToArray();
            expected = TensorInterop.ToArray(op.Forward(inputs), out expectedShape);
        }

        Assert.Equal(expectedShape, ort.Shape);
        float scale = Math.Max(1f, expected.Max(MathF.Abs));
        float worst = expected.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second));
        Assert.True(worst <= 2e-5f * scale, $"{name}: ONNX Runtime differs from the float op by {worst} (values up to {scale})");
    }

    [Fact]
    public void A_float_op_ONNX_cannot_express_is_refused_naming_it()
    {
        var error = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(new OneOpModel(Op(FloatOpKind.PixelUnshuffle, [2]))));
        Assert.Contains("M.op", error.Message, StringComparison.Ordinal);
        Assert.Contains("PixelUnshuffle", error.Message, StringComparison.Ordinal);
        Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(new OneOpModel(Op(FloatOpKind.Elementwise, floats: [2, 20], text: "Softplus"))));
        Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(new OneOpModel(Op(FloatOpKind.GroupNorm, [2], [1e-5], tensors: [Random("weight", [4], 1)])), new OnnxExportOptions { Opset = 20 }));
    }

    /// <summary>A model of one float op after the input quantizer: what a converted model holds, with nothing else around it.</summary>
    private sealed class OneOpModel(FloatOp op) : IQuantizedModel
    {
        public ModelGraph Graph { get; } = new("M", "test", "input", "y",
        [
            new GraphNode("input", GraphOp.Quantize, ["input"], "q_input", [], ""),
            new GraphNode("op", GraphOp.FloatIsland, Enumerable.Repeat("q_input", op.InputCount).ToArray(), "y", [new GraphMember("op", op.Kind.ToString(), "")], ""),
        ]);

        public IReadOnlyList<IQuantizedLayer> Layers { get; } = [Quantize, op];

        public QuantizeInput Input => Quantize;

        public QTensor forward(QTensor input) => throw new NotSupportedException();

        public QTensor forward(QTensor input, IQuantizedTap? tap) => throw new NotSupportedException();

        public float[] forward(ReadOnlySpan<float> input, int[] shape, out int[] outputShape) => throw new NotSupportedException();
    }
}
