using System;
using System.Collections.Generic;
using System.Linq;
using CenterNetHeadExample;
using QuantGen.Graphs;
using QuantGen.Onnx;
using QuantGen.Reports;
using QuickStart;
using ResNet18Example;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Onnx.OnnxTestSupport;
using static TorchSharp.torch;
using Fashion = QuantGen.Tests.Generator.Models.Fashion;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace QuantGen.Tests.Onnx;

/// <summary>
/// The examples' converted models exported and run in ONNX Runtime 1.31.1:
/// <list type="bullet">
/// <item>end to end, ORT's output against QuantGen's int8 output, in steps of the output's scale (the
/// share exactly equal is printed);</item>
/// <item>every single-input op in isolation — exported alone with its real weights and qparams and fed
/// exactly the integers QuantGen's forward gave it — within one step of QuantGen's output of that op;</item>
/// <item>ORT's optimized model made of int8 kernels (QLinearConv, QGemm, QLinearAdd ... and no float
/// Conv or Gemm);</item>
/// <item>the float form close to QuantGen's Reference (QDQ) forward.</item>
/// </list>
/// Every test runs in both int8 forms (<see cref="Qdq"/>, <see cref="QOperator"/>): the QOperator form
/// writes the kernels ORT fuses the QDQ form into, so the same bounds hold for the same reasons, and
/// its saved model (before ORT optimizes it) is checked to dequantize only into ops without a quantized
/// operator.
/// </summary>
public abstract class OnnxModelExportTests(ITestOutputHelper output, OnnxForm form)
{
    [SkippableFact]
    public void QuickStartM()
    {
        torch.manual_seed(8);
        using var model = new M();
        model.eval();
        using M.Observed observed = model.Prepare(QConfig.X86);
        float[] image = Calibrate(observed.forward, [1, 1, 2, 3], batches: 1);
        M.Quantized int8 = observed.Convert();
        using M.Reference reference = observed.ConvertReference();

        OrtResult ort = CheckEndToEnd("QuickStart M", int8, image, [1, 1, 2, 3], maxSteps: 1);
        Assert.Equal(2, ort.Count("QLinearConv"));
        Assert.DoesNotContain("Conv", ort.OptimizedOps);
        Assert.DoesNotContain("Relu", ort.OptimizedOps);
        CheckEveryOpInIsolation("QuickStart M", int8, image, [1, 1, 2, 3]);
        CheckFloatForm("QuickStart M", int8, reference.forward, image, [1, 1, 2, 3]);
    }

    /// <remarks>
    /// End to end the X86 preset is held to 3 steps, not 1: its requantization keeps the bias in float
    /// (fbgemm/onednn, docs/numerics.md §4) while ONNX's QLinearConv/QGemm take an int32 bias, so each
    /// conv lands one step apart on ~0.03% of its outputs; those differences are inputs to the next
    /// layers and compound through 20 convs and 8 residual adds (whose output step is finer than the
    /// conv's). Every op is within one step in isolation, which is what the export controls. The Qnnpack
    /// preset's arithmetic is ORT's (int32 bias, one float multiplier): its convs are exact and only
    /// the adds' requantization differs, on a few elements.
    /// </remarks>
    [SkippableTheory]
    [InlineData(QuantBackend.X86, 3)]
    [InlineData(QuantBackend.Qnnpack, 1)]
    public void ResNet18(QuantBackend backend, int maxSteps)
    {
        const int Size = 32;
        torch.manual_seed(3);
        using var model = new ResNet18(numClasses: 10);
        Randomize.BatchNormStatistics(model, 3);
        model.eval();
        using ResNet18.Observed observed = model.Prepare(QConfig.For(backend));
        float[] image = Calibrate(observed.forward, [2, 3, Size, Size], batches: 2);
        ResNet18.Quantized int8 = observed.Convert();
        using ResNet18.Reference reference = observed.ConvertReference();

        OrtResult ort = CheckEndToEnd($"ResNet18 {backend}", int8, image, [2, 3, Size, Size], maxSteps);
        Assert.Equal(20, ort.Count("QLinearConv"));
        Assert.Equal(8, ort.Count("com.microsoft:QLinearAdd"));
        Assert.Equal(1, ort.Count("com.microsoft:QGemm"));
        Assert.Equal(1, ort.Count("com.microsoft:QLinearGlobalAveragePool"));
        Assert.Equal(1, ort.Count("MaxPool"));
        Assert.DoesNotContain("Conv", ort.OptimizedOps);
        Assert.DoesNotContain("Add", ort.OptimizedOps);
        Assert.DoesNotContain("Relu", ort.OptimizedOps);
        CheckEveryOpInIsolation($"ResNet18 {backend}", int8, image, [2, 3, Size, Size]);
        CheckFloatForm($"ResNet18 {backend}", int8, reference.forward, image, [2, 3, Size, Size]);
    }

    [SkippableFact]
    public void CenterNetHeadWithQInt8Activations()
    {
        const int Size = 32;
        torch.manual_seed(5);
        using var model = new CenterNetHead();
        model.eval();
        using CenterNetHead.Observed observed = model.Prepare();
        float[] image = Calibrate(observed.forward, [2, 3, Size, Size], batches: 2);
        CenterNetHead.Quantized int8 = observed.Convert();
        using CenterNetHead.Reference reference = observed.ConvertReference();

        // int8 activations as exported; the heads read one value three times, which ORT on x86 fuses only
        // with session.qdqisint8allowed (it turns s8 into u8 itself only for single-reader values).
        OrtResult ort = CheckEndToEnd("CenterNetHead (int8 activations)", int8, image, [2, 3, Size, Size], maxSteps: 1, int8Activations: true);
        Assert.Equal(10, ort.Count("QLinearConv"));
        Assert.Equal(1, ort.Count("com.microsoft:QLinearConcat"));
        Assert.DoesNotContain("Conv", ort.OptimizedOps);

        // ORT 1.31's CPU provider has no int8 ConvTranspose: the three deconvolutions run in float between DQ and Q.
        Assert.Equal(3, ort.Count("ConvTranspose"));

        // The same model with activations written as uint8 (+128): every conv fuses with ORT's defaults.
        OrtResult unsigned = CheckEndToEnd("CenterNetHead (activations as uint8)", int8, image, [2, 3, Size, Size], maxSteps: 1, options: new OnnxExportOptions { ActivationsAsUInt8 = true });
        Assert.Equal(10, unsigned.Count("QLinearConv"));
        Assert.Equal(ort.Output, unsigned.Output);

        CheckEveryOpInIsolation("CenterNetHead", int8, image, [2, 3, Size, Size], int8Activations: true);
        CheckFloatForm("CenterNetHead", int8, reference.forward, image, [2, 3, Size, Size]);
    }

    [SkippableFact]
    public void FashionMnistExampleWithResidualAdd()
    {
        torch.manual_seed(9);
        using var model = new FashionMnist.FashionCnn();
        model.eval();
        using FashionMnist.FashionCnn.Observed observed = model.Prepare(QConfig.X86);
        float[] image = Calibrate(observed.forward, [8, 1, 28, 28], batches: 2);
        FashionMnist.FashionCnn.Quantized int8 = observed.Convert();
        using FashionMnist.FashionCnn.Reference reference = observed.ConvertReference();

        OrtResult ort = CheckEndToEnd("FashionMnist example", int8, image, [8, 1, 28, 28], maxSteps: 1);
        Assert.Equal(3, ort.Count("QLinearConv"));
        Assert.Equal(1, ort.Count("com.microsoft:QLinearAdd"));
        Assert.Equal(2, ort.Count("com.microsoft:QGemm"));
        Assert.Equal(2, ort.Count("MaxPool"));
        Assert.DoesNotContain("Conv", ort.OptimizedOps);
        Assert.DoesNotContain("Gemm", ort.OptimizedOps);
        Assert.DoesNotContain("Relu", ort.OptimizedOps);
        CheckEveryOpInIsolation("FashionMnist example", int8, image, [8, 1, 28, 28]);
        CheckFloatForm("FashionMnist example", int8, reference.forward, image, [8, 1, 28, 28]);
    }

    [SkippableFact]
    public void AFloatIslandIsRefusedNamingTheLayer()
    {
        torch.manual_seed(10);
        using var model = new Generator.Models.IslandNet();
        model.eval();
        using Generator.Models.IslandNet.Observed observed = model.Prepare();
        Calibrate(observed.forward, [1, 2, 5, 5], batches: 1);
        var error = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(observed.Convert(), new OnnxExportOptions { Form = form }));
        Assert.Contains("IslandNet.conv2", error.Message);
        Assert.Contains("float island", error.Message);
    }

    [SkippableFact]
    public void FashionCnn()
    {
        torch.manual_seed(7);
        using var model = new Fashion.FashionCnn();
        model.eval();
        using Fashion.FashionCnn.Observed observed = model.Prepare();
        float[] image = Calibrate(observed.forward, [8, 1, 28, 28], batches: 2);
        Fashion.FashionCnn.Quantized int8 = observed.Convert();
        using Fashion.FashionCnn.Reference reference = observed.ConvertReference();

        OrtResult ort = CheckEndToEnd("FashionCnn", int8, image, [8, 1, 28, 28], maxSteps: 1);
        Assert.Equal(2, ort.Count("QLinearConv"));
        Assert.Equal(2, ort.Count("com.microsoft:QGemm"));
        Assert.Equal(2, ort.Count("MaxPool"));
        Assert.DoesNotContain("Conv", ort.OptimizedOps);
        Assert.DoesNotContain("Gemm", ort.OptimizedOps);
        CheckEveryOpInIsolation("FashionCnn", int8, image, [8, 1, 28, 28]);
        CheckFloatForm("FashionCnn", int8, reference.forward, image, [8, 1, 28, 28]);
    }

    /// <summary>Feeds random normal batches to the observed model; returns the last one's values, the test input (inside the calibrated ranges).</summary>
    private static float[] Calibrate(Func<Tensor, Tensor> forward, long[] shape, int batches)
    {
        using var noGrad = torch.no_grad();
        float[] last = [];
        for (int i = 0; i < batches; i++)
        {
            using Tensor batch = torch.randn(shape);
            forward(batch).Dispose();
            last = batch.data<float>().ToArray();
        }

        return last;
    }

    /// <summary>
    /// Exports the class's form, runs it in ORT and asserts its output is within <paramref name="maxSteps"/> of
    /// QuantGen's int8 forward. A QOperator model must also dequantize only into ops without a quantized
    /// operator, and give exactly ORT's output of the QDQ form (whose groups ORT fuses into the same kernels).
    /// </summary>
    private OrtResult CheckEndToEnd(string name, IQuantizedModel int8, float[] image, int[] shape, int maxSteps, bool int8Activations = false, OnnxExportOptions? options = null)
    {
        var clock = Stopwatch.StartNew();
        options ??= new OnnxExportOptions();
        QTensor result = int8.forward(int8.Input.Forward(image, shape));
        byte[] onnx = OnnxExporter.Export(int8, options with { Form = form });
        OrtResult ort = Run(onnx, image, shape, int8Activations);
        Assert.Equal(result.Shape, ort.Shape);
        (int exact, int worst) = Steps(result.Dequantize(), ort.Output, result.QParams);
        output.WriteLine($"{form} {name}: end to end {exact}/{ort.Output.Length} exact ({100.0 * exact / ort.Output.Length:F2}%), max {worst} step(s); {onnx.Length} bytes; ORT ran {ort.Summary()} ({clock.ElapsedMilliseconds} ms)");
        Assert.True(worst <= maxSteps, $"{name}: ORT's output is {worst} steps from QuantGen's (allowed {maxSteps})");
        if (form == OnnxForm.QOperator)
        {
            output.WriteLine($"  saved QOperator model: {AssertQuantizedOperators(onnx)}");
            OrtResult qdq = Run(OnnxExporter.Export(int8, options with { Form = OnnxForm.Qdq }), image, shape, int8Activations);
            Assert.Equal(qdq.Output, ort.Output);
        }

        return ort;
    }

    /// <summary>
    /// Each single-input op exported alone (its input quantized with the qparams QuantGen's input to it
    /// had) and fed those very integers (as exactly representable floats): ORT's output of the op within
    /// one step of QuantGen's. Multi-input ops (add, cat) are covered by <see cref="OnnxLayerExportTests"/>.
    /// </summary>
    private void CheckEveryOpInIsolation(string name, IQuantizedModel int8, float[] image, int[] shape, bool int8Activations = false)
    {
        var clock = Stopwatch.StartNew();
        var tap = new CollectingTap();
        QTensor input = int8.Input.Forward(image, shape);
        int8.forward(input, tap);
        var values = new Dictionary<string, QTensor>(StringComparer.Ordinal);
        foreach (GraphNode node in int8.Graph.Nodes)
        {
            values[node.Output] = node.Op == GraphOp.Quantize ? input : tap.Outputs[node.Name];
        }

        var layers = int8.Layers.ToDictionary(l => l.Layer);
        long total = 0, exactTotal = 0;
        int checkedOps = 0;
        foreach (GraphNode node in int8.Graph.Nodes.Where(n => n.Op != GraphOp.Quantize && n.Inputs.Count == 1))
        {
            QTensor x = values[node.Inputs[0]], expected = values[node.Output];
            var single = new HandBuiltModel(int8.Graph.Model, x.QParams);
            single.Add(layers[node.Name], node.Op);
            OrtResult ort = Run(OnnxExporter.Export(single, new OnnxExportOptions { InputShape = x.Shape, Form = form }), x.Dequantize(), x.Shape, int8Activations);
            Assert.Equal(expected.Shape, ort.Shape);
            (int exact, int worst) = Steps(expected.Dequantize(), ort.Output, expected.QParams);
            output.WriteLine($"  {node.Name} ({node.Op}) alone: {exact}/{ort.Output.Length} exact ({100.0 * exact / ort.Output.Length:F3}%), max {worst}");
            Assert.True(worst <= 1, $"{name}.{node.Name}: ORT's op is {worst} steps from QuantGen's on the same input");
            total += ort.Output.Length;
            exactTotal += exact;
            checkedOps++;
        }

        output.WriteLine($"{form} {name}: {checkedOps} ops in isolation, {exactTotal}/{total} outputs exact ({100.0 * exactTotal / total:F3}%), none more than one step off ({clock.ElapsedMilliseconds} ms)");
    }

    /// <summary>
    /// The float form in ORT against QuantGen's Reference forward on the same (calibration) input. Both use
    /// the dequantized weights; the Reference also rounds every activation to its layer's grid (and clamps
    /// it to the calibrated range), so they differ by the accumulated rounding — held to a mean below two
    /// output steps. The float form does not depend on the int8 form under test: it is checked once, with the QDQ tests.
    /// </summary>
    private void CheckFloatForm(string name, IQuantizedModel int8, Func<Tensor, Tensor> reference, float[] image, int[] shape)
    {
        if (form != OnnxForm.Qdq)
        {
            return;
        }

        var clock = Stopwatch.StartNew();
        QTensor result = int8.forward(int8.Input.Forward(image, shape));
        OrtResult ort = Run(OnnxExporter.Export(int8, new OnnxExportOptions { Form = OnnxForm.Float }), image, shape);
        Assert.DoesNotContain("QuantizeLinear", ort.OptimizedOps);
        Assert.DoesNotContain("DequantizeLinear", ort.OptimizedOps);
        float[] expected;
        using (torch.no_grad())
        using (Tensor x = torch.tensor(image, shape.Select(d => (long)d).ToArray()))
        using (Tensor y = reference(x))
        {
            expected = y.contiguous().data<float>().ToArray();
        }

        Assert.Equal(expected.Length, ort.Output.Length);
        float scale = result.QParams.Scale;
        double meanSteps = expected.Zip(ort.Output).Average(p => Math.Abs(p.First - p.Second)) / scale;
        double maxSteps = expected.Zip(ort.Output).Max(p => Math.Abs(p.First - p.Second)) / scale;
        output.WriteLine($"{name}: float form vs Reference: mean |diff| {meanSteps:F3} output steps, max {maxSteps:F2}; ORT ran {ort.Summary()} ({clock.ElapsedMilliseconds} ms)");
        Assert.True(meanSteps < 2, $"{name}: the float form is {meanSteps:F3} steps from the Reference on average");
    }

    /// <summary>The QDQ form's model tests (and the float form's).</summary>
    /// <remarks>
    /// One collection with <see cref="QOperator"/>: the fixtures seed TorchSharp's global generator
    /// (<c>torch.manual_seed</c>), so the two classes run one after the other to build the same models, and while no
    /// other test runs (<see cref="OnnxModelExportCollection"/>).
    /// </remarks>
    [Collection(nameof(OnnxModelExportTests))]
    public sealed class Qdq(ITestOutputHelper output) : OnnxModelExportTests(output, OnnxForm.Qdq);

    /// <summary>The QOperator form's model tests.</summary>
    [Collection(nameof(OnnxModelExportTests))]
    public sealed class QOperator(ITestOutputHelper output) : OnnxModelExportTests(output, OnnxForm.QOperator);

    private sealed class CollectingTap : IQuantizedTap
    {
        public Dictionary<string, QTensor> Outputs { get; } = new(StringComparer.Ordinal);

        public void OnLayer(string layer, QTensor output) => Outputs[layer] = output;
    }
}

/// <summary>
/// The ONNX model tests' collection, run while no other test runs: they seed libtorch's one global generator and draw
/// their models and inputs from it, and a test of another collection drawing at the same time changed the input a
/// ResNet-18 comparison saw (a CI run found ORT 2 steps from QuantGen where the seeded input gives at most 1).
/// </summary>
[CollectionDefinition(nameof(OnnxModelExportTests), DisableParallelization = true)]
public sealed class OnnxModelExportCollection
{
}
