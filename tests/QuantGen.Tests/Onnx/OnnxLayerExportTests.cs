using System;
using System.Linq;
using Microsoft.ML.OnnxRuntime;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Onnx;
using Xunit.Abstractions;
using static QuantGen.Tests.Onnx.OnnxTestSupport;

namespace QuantGen.Tests.Onnx;

/// <summary>
/// Each int8 op exported alone (behind the input's QuantizeLinear) and run in ONNX Runtime 1.31: ORT's
/// output is within one quantization step of QuantGen's own int8 output, and ORT's optimized model
/// shows the int8 kernel it runs (no float op of that kind left). Every test runs in both int8 forms:
/// <see cref="Qdq"/>, whose QDQ groups ORT fuses into QLinearConv, QGemm ..., and <see cref="QOperator"/>,
/// which writes those operators itself — the same kernels, so the same bounds hold for the same reasons.
/// </summary>
/// <remarks>
/// Inputs are drawn on the input's quantization grid so both sides quantize them to the same integers
/// (ORT divides by the scale, QuantGen multiplies by its reciprocal: they can differ on ties, measured
/// on its own in <see cref="QuantizeLinearMatchesQuantizeInput"/>); what is compared is the op.
/// </remarks>
public abstract class OnnxLayerExportTests(ITestOutputHelper output, OnnxForm form)
{
    private const string Model = "OnnxOp";
    private static readonly QParams U8Input = QParams.PerTensor(0.02f, 64, QuantDType.QUInt8);
    private static readonly QParams S8Input = QParams.PerTensor(0.02f, 0, QuantDType.QInt8);

    [SkippableFact]
    public void QuantizeLinearMatchesQuantizeInput()
    {
        // Off-grid input: this is the one place the two quantizations are compared on arbitrary floats.
        var model = new HandBuiltModel(Model, U8Input);
        float[] input = Uniform(new Random(1), 4 * 3 * 16 * 16, -2f, 4f);
        int[] shape = [4, 3, 16, 16];
        OrtResult ort = Run(OnnxExporter.Export(model, Options(new OnnxExportOptions { InputShape = shape })), input, shape);
        float[] quantGen = model.forward(input, shape, out _);

        (int exact, int worst) = Steps(quantGen, ort.Output, U8Input);
        output.WriteLine($"{form} QuantizeLinear vs QuantizeInput: {exact}/{input.Length} exact, max {worst} step(s)");
        Assert.True(worst <= 1);
        Assert.True(exact >= input.Length - 2, $"{input.Length - exact} inputs quantized differently");
    }

    [SkippableTheory]
    [InlineData(QuantBackend.X86, true, false, 1, 1, 1, 1)]
    [InlineData(QuantBackend.X86, true, true, 1, 2, 1, 1)]
    [InlineData(QuantBackend.X86, false, true, 2, 1, 0, 2)]
    [InlineData(QuantBackend.Qnnpack, false, false, 1, 1, 1, 1)]
    [InlineData(QuantBackend.Qnnpack, true, true, 4, 2, 1, 1)]
    public void Conv2dFusesToQLinearConv(QuantBackend backend, bool perChannel, bool relu, int groups, int stride, int pad, int dilation)
    {
        var random = new Random(10 + groups + stride);
        int inC = 8, outC = 12, k = 3;
        var options = new Conv2dOptions(inC, outC, k, k, stride, stride, pad, pad, dilation, dilation, groups);
        QTensor weight = Weight(random, [outC, inC / groups, k, k], perChannel ? Uniform(random, outC, 0.002f, 0.01f) : [0.006f], perChannel ? 0 : -1);
        float[] bias = Uniform(random, outC, -0.3f, 0.3f);
        int[] shape = [2, inC, 13, 11];
        float[] input = OnGrid(random, shape.Aggregate(1, (a, b) => a * b), U8Input);

        QParams outputQParams = OutputQParamsFor(
            q => new QuantizedConv2d(Model, "conv", options, weight, bias, U8Input, q, relu, backend), (l, x) => l.Forward(x), input, shape, U8Input, QuantDType.QUInt8);
        var conv = new QuantizedConv2d(Model, "conv", options, weight, bias, U8Input, outputQParams, relu, backend);
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(conv, GraphOp.Conv2d);

        (float[] quantGen, OrtResult ort) = Both(model, input, shape);
        double share = WithinOneStep($"conv {backend} perChannel={perChannel} relu={relu} g={groups} s={stride}", quantGen, ort, outputQParams, Forward(model, input, shape).Shape);
        Assert.Equal(1, ort.Count("QLinearConv"));
        Assert.DoesNotContain("Conv", ort.OptimizedOps);
        Assert.DoesNotContain("Relu", ort.OptimizedOps);
        if (backend == QuantBackend.Qnnpack)
        {
            // Same int32 bias, same float requantization: only the last bit of sx·sw/sy may differ.
            Assert.True(share >= 0.999, $"Qnnpack conv only {share:P3} exact");
        }
    }

    [SkippableFact]
    public void Qint8ConvWithReluAboveTheMinimumKeepsTheConvFusable()
    {
        // Symmetric qint8 activations: the fused ReLU's output zero point is 0, not -128, so the QuantizeLinear
        // does not clamp at 0 by itself. Exported as Conv → Q → DQ → Relu → Q (QDQ), QLinearConv → Clip(min = 0) (QOperator).
        var random = new Random(21);
        var options = new Conv2dOptions(4, 6, 3, 3, PadHeight: 1, PadWidth: 1);
        QTensor weight = Weight(random, [6, 4, 3, 3], Uniform(random, 6, 0.003f, 0.01f), 0);
        float[] bias = Uniform(random, 6, -0.2f, 0.2f);
        int[] shape = [1, 4, 9, 9];
        float[] input = OnGrid(random, 4 * 81, S8Input);
        QParams outputQParams = QParams.PerTensor(0.01f, 0, QuantDType.QInt8);
        var conv = new QuantizedConv2d(Model, "conv", options, weight, bias, S8Input, outputQParams, fusedRelu: true, QuantBackend.X86);
        var model = new HandBuiltModel(Model, S8Input);
        model.Add(conv, GraphOp.Conv2d);

        float[] quantGen = model.forward(input, shape, out int[] outputShape);
        Assert.Contains(quantGen, v => v == 0f);
        OrtResult ort = Run(OnnxExporter.Export(model, Options()), input, shape);
        WithinOneStep("qint8 conv+relu", quantGen, ort, outputQParams, outputShape);
        Assert.Equal(1, ort.Count("QLinearConv"));
        Assert.DoesNotContain("Conv", ort.OptimizedOps);
    }

    [SkippableTheory]
    [InlineData(1, true)]
    [InlineData(2, false)]
    public void ConvTranspose2dPerChannelOnAxis1(int groups, bool relu)
    {
        var random = new Random(30 + groups);
        int inC = 6, outC = 8, k = 4;
        var options = new ConvTranspose2dOptions(inC, outC, k, k, 2, 2, 1, 1, 1, 1, 1, 1, groups);
        QTensor weight = Weight(random, [inC, outC / groups, k, k], Uniform(random, outC / groups, 0.003f, 0.01f), 1);
        float[] bias = Uniform(random, outC, -0.2f, 0.2f);
        int[] shape = [1, inC, 5, 6];
        float[] input = OnGrid(random, inC * 30, U8Input);
        QParams outputQParams = OutputQParamsFor(
            q => new QuantizedConvTranspose2d(Model, "up", options, weight, bias, U8Input, q, relu, QuantBackend.X86), (l, x) => l.Forward(x), input, shape, U8Input, QuantDType.QUInt8);
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedConvTranspose2d(Model, "up", options, weight, bias, U8Input, outputQParams, relu, QuantBackend.X86), GraphOp.ConvTranspose2d);

        (float[] quantGen, OrtResult ort) = Both(model, input, shape);
        WithinOneStep($"conv_transpose g={groups} relu={relu}", quantGen, ort, outputQParams, Forward(model, input, shape).Shape);

        // ORT 1.31's CPU provider has no QDQ rule and no quantized operator for ConvTranspose: both forms write
        // DQ → ConvTranspose (float) → Q, and it runs so.
        Assert.Equal(1, ort.Count("ConvTranspose"));
    }

    [SkippableTheory]
    [InlineData(QuantBackend.X86, true, true)]
    [InlineData(QuantBackend.Qnnpack, false, false)]
    public void LinearFusesToQGemm(QuantBackend backend, bool perChannel, bool relu)
    {
        var random = new Random(40);
        int inF = 40, outF = 24;
        QTensor weight = Weight(random, [outF, inF], perChannel ? Uniform(random, outF, 0.002f, 0.01f) : [0.005f], perChannel ? 0 : -1);
        float[] bias = Uniform(random, outF, -0.3f, 0.3f);
        int[] shape = [5, inF];
        float[] input = OnGrid(random, 5 * inF, U8Input);
        QParams outputQParams = OutputQParamsFor(
            q => new QuantizedLinear(Model, "fc", inF, outF, weight, bias, U8Input, q, relu, backend), (l, x) => l.Forward(x), input, shape, U8Input, QuantDType.QUInt8);
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedLinear(Model, "fc", inF, outF, weight, bias, U8Input, outputQParams, relu, backend), GraphOp.Linear);

        (float[] quantGen, OrtResult ort) = Both(model, input, shape);
        double share = WithinOneStep($"linear {backend} perChannel={perChannel} relu={relu}", quantGen, ort, outputQParams, [5, outF]);
        Assert.Equal(1, ort.Count("com.microsoft:QGemm"));
        Assert.DoesNotContain("Gemm", ort.OptimizedOps);
        if (backend == QuantBackend.Qnnpack)
        {
            Assert.True(share >= 0.99, $"Qnnpack linear only {share:P3} exact");
        }
    }

    [SkippableTheory]
    [InlineData(GraphOp.Conv2d)]
    [InlineData(GraphOp.Linear)]
    public void PerChannelWeightZeroPointsThatDiffer(GraphOp op)
    {
        // QuantGen takes any qint8 zero point per output channel; ORT 1.31's QLinearConv and QGemm take them too.
        var random = new Random(150);
        int[] weightShape = op == GraphOp.Conv2d ? [4, 3, 3, 3] : [4, 12];
        byte[] storage = Enumerable.Range(0, weightShape.Aggregate(1, (a, b) => a * b)).Select(_ => unchecked((byte)(sbyte)random.Next(-100, 101))).ToArray();
        var weight = new QTensor(weightShape, QParams.PerChannel([0.01f, 0.02f, 0.01f, 0.03f], [0, 3, -2, 0], 0, QuantDType.QInt8), storage, MemoryFormat.Contiguous);
        float[] bias = Uniform(random, 4, -0.3f, 0.3f);
        int[] shape = op == GraphOp.Conv2d ? [2, 3, 6, 5] : [6, 12];
        float[] input = OnGrid(random, shape.Aggregate(1, (a, b) => a * b), U8Input);
        Func<QParams, IQuantizedLayer> make = q => op == GraphOp.Conv2d
            ? new QuantizedConv2d(Model, "conv", new Conv2dOptions(3, 4, 3, 3, PadHeight: 1, PadWidth: 1), weight, bias, U8Input, q, false, QuantBackend.X86)
            : new QuantizedLinear(Model, "fc", 12, 4, weight, bias, U8Input, q, false, QuantBackend.X86);
        QParams outputQParams = OutputQParamsFor(make, (l, x) => l is QuantizedConv2d conv ? conv.Forward(x) : ((QuantizedLinear)l).Forward(x), input, shape, U8Input, QuantDType.QUInt8);
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(make(outputQParams), op);

        (float[] quantGen, OrtResult ort) = Both(model, input, shape);
        WithinOneStep($"{op} with weight zero points 0, 3, -2, 0", quantGen, ort, outputQParams, Forward(model, input, shape).Shape);
        Assert.Equal(1, ort.Count(op == GraphOp.Conv2d ? "QLinearConv" : "com.microsoft:QGemm"));
    }

    [SkippableFact]
    public void LinearOnRank3Input()
    {
        var random = new Random(41);
        int inF = 16, outF = 8;
        QTensor weight = Weight(random, [outF, inF], Uniform(random, outF, 0.004f, 0.01f), 0);
        float[] bias = Uniform(random, outF, -0.2f, 0.2f);
        int[] shape = [2, 3, inF];
        float[] input = OnGrid(random, 6 * inF, U8Input);
        QParams outputQParams = OutputQParamsFor(
            q => new QuantizedLinear(Model, "fc", inF, outF, weight, bias, U8Input, q, false, QuantBackend.X86), (l, x) => l.Forward(x), input, shape, U8Input, QuantDType.QUInt8);
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedLinear(Model, "fc", inF, outF, weight, bias, U8Input, outputQParams, false, QuantBackend.X86), GraphOp.Linear);

        (float[] quantGen, OrtResult ort) = Both(model, input, shape, new OnnxExportOptions { InputShape = shape });
        // QDQ: MatMul with the transposed weight, then Add (ORT: MatMulIntegerToFloat); QOperator: QGemm between Reshapes.
        WithinOneStep("linear rank 3", quantGen, ort, outputQParams, [2, 3, outF]);
        Assert.DoesNotContain("MatMul", ort.OptimizedOps);
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void StandaloneBatchNorm(bool relu)
    {
        var random = new Random(50);
        int c = 5;
        int[] shape = [2, c, 6, 7];
        float[] input = OnGrid(random, 2 * c * 42, U8Input);
        float[] gamma = Uniform(random, c, 0.5f, 2f), beta = Uniform(random, c, -0.5f, 0.5f), mean = Uniform(random, c, -0.2f, 0.2f), variance = Uniform(random, c, 0.5f, 2f);
        QParams outputQParams = OutputQParamsFor(
            q => QuantizedBatchNorm2d.FromStatistics(Model, "bn", gamma, beta, mean, variance, 1e-5, q, relu), (l, x) => l.Forward(x), input, shape, U8Input, QuantDType.QUInt8);
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(QuantizedBatchNorm2d.FromStatistics(Model, "bn", gamma, beta, mean, variance, 1e-5, outputQParams, relu), GraphOp.BatchNorm2d);

        (float[] quantGen, OrtResult ort) = Both(model, input, shape);
        WithinOneStep($"batch_norm relu={relu}", quantGen, ort, outputQParams, shape);
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void AddFusesToQLinearAdd(bool relu)
    {
        // conv (same size) then add(conv, input): two inputs with different qparams.
        var random = new Random(60);
        int c = 4;
        int[] shape = [1, c, 8, 8];
        float[] input = OnGrid(random, c * 64, U8Input);
        var convOptions = new Conv2dOptions(c, c, 3, 3, PadHeight: 1, PadWidth: 1);
        QTensor weight = Weight(random, [c, c, 3, 3], Uniform(random, c, 0.003f, 0.01f), 0);
        var conv = new QuantizedConv2d(Model, "conv", convOptions, weight, null, U8Input, QParams.PerTensor(0.03f, 100, QuantDType.QUInt8), false, QuantBackend.X86);
        QParams outputQParams = relu ? QParams.PerTensor(0.04f, 0, QuantDType.QUInt8) : QParams.PerTensor(0.05f, 90, QuantDType.QUInt8);
        var model = new HandBuiltModel(Model, U8Input);
        string convOut = model.Add(conv, GraphOp.Conv2d);
        model.Add(new QuantizedAdd(Model, "add", outputQParams, relu), GraphOp.Add, convOut, "t0");

        (float[] quantGen, OrtResult ort) = Both(model, input, shape);
        WithinOneStep($"add relu={relu}", quantGen, ort, outputQParams, shape);
        Assert.Equal(1, ort.Count("com.microsoft:QLinearAdd"));
        Assert.DoesNotContain("Add", ort.OptimizedOps);
    }

    [SkippableFact]
    public void CatFusesToQLinearConcat()
    {
        var random = new Random(70);
        int[] shape = [1, 3, 5, 5];
        float[] input = OnGrid(random, 75, U8Input);
        var conv = new QuantizedConv2d(Model, "conv", new Conv2dOptions(3, 2, 1, 1), Weight(random, [2, 3, 1, 1], [0.01f, 0.02f], 0), [0.1f, -0.1f], U8Input, QParams.PerTensor(0.025f, 40, QuantDType.QUInt8), false, QuantBackend.X86);
        QParams outputQParams = QParams.PerTensor(0.03f, 50, QuantDType.QUInt8);
        var model = new HandBuiltModel(Model, U8Input);
        string convOut = model.Add(conv, GraphOp.Conv2d);
        model.Add(new QuantizedCat(Model, "cat", 1, outputQParams), GraphOp.Cat, "t0", convOut);

        (float[] quantGen, OrtResult ort) = Both(model, input, shape);
        WithinOneStep("cat", quantGen, ort, outputQParams, [1, 5, 5, 5]);
        Assert.Equal(1, ort.Count("com.microsoft:QLinearConcat"));
        Assert.DoesNotContain("Concat", ort.OptimizedOps);
    }

    [SkippableTheory]
    [InlineData(3, 2, 1, 1, false)]
    [InlineData(2, 2, 0, 1, true)]
    [InlineData(3, 2, 1, 2, true)]
    public void MaxPoolRunsOnUInt8(int kernel, int stride, int pad, int dilation, bool ceilMode)
    {
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedMaxPool2d(Model, "pool", Pool2dOptions.Square(kernel, stride, pad, dilation, ceilMode)), GraphOp.MaxPool2d);
        int[] shape = [2, 3, 11, 10];
        float[] input = OnGrid(new Random(80), 2 * 3 * 110, U8Input);

        (float[] quantGen, OrtResult ort) = Both(model, input, shape);
        double share = WithinOneStep($"max_pool k={kernel} s={stride} p={pad} d={dilation} ceil={ceilMode}", quantGen, ort, U8Input, Forward(model, input, shape).Shape);
        Assert.Equal(1.0, share);
        Assert.Equal(["QuantizeLinear", "MaxPool", "DequantizeLinear"], ort.OptimizedOps);
    }

    [SkippableTheory]
    [InlineData(3, 2, 1, false, true)]
    [InlineData(2, 2, 0, false, true)]
    [InlineData(3, 2, 1, true, false)]
    public void AvgPoolFusesToQLinearAveragePool(int kernel, int stride, int pad, bool ceilMode, bool countIncludePad)
    {
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedAvgPool2d(Model, "pool", Pool2dOptions.Square(kernel, stride, pad, ceilMode: ceilMode, countIncludePad: countIncludePad)), GraphOp.AvgPool2d);
        int[] shape = [1, 4, 9, 12];
        float[] input = OnGrid(new Random(90), 4 * 108, U8Input);

        (float[] quantGen, OrtResult ort) = Both(model, input, shape);
        WithinOneStep($"avg_pool k={kernel} s={stride} p={pad} ceil={ceilMode} include_pad={countIncludePad}", quantGen, ort, U8Input, Forward(model, input, shape).Shape);
        Assert.Equal(1, ort.Count("com.microsoft:QLinearAveragePool"));
    }

    [SkippableFact]
    public void AdaptiveAvgPoolToOneByOneFusesToQLinearGlobalAveragePool()
    {
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedAdaptiveAvgPool2d(Model, "avgpool", 1, 1), GraphOp.AdaptiveAvgPool2d);
        int[] shape = [3, 16, 7, 7];
        float[] input = OnGrid(new Random(100), 3 * 16 * 49, U8Input);

        (float[] quantGen, OrtResult ort) = Both(model, input, shape);
        WithinOneStep("adaptive_avg_pool (1, 1)", quantGen, ort, U8Input, [3, 16, 1, 1]);
        Assert.Equal(1, ort.Count("com.microsoft:QLinearGlobalAveragePool"));
    }

    [SkippableTheory]
    [InlineData(21, null, null, 2.0, 2.0)]
    [InlineData(13, null, null, 2.0, 3.0)]
    [InlineData(21, 7, 9, null, null)]
    [InlineData(13, 7, 9, null, null)]
    public void UpsampleNearestIsResizeOnUInt8(int opset, int? outH, int? outW, double? scaleH, double? scaleW)
    {
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedUpsampleNearest2d(Model, "up", outH, outW, scaleH, scaleW), GraphOp.UpsampleNearest2d);
        int[] shape = [2, 3, 4, 5];
        float[] input = OnGrid(new Random(110), 120, U8Input);

        float[] quantGen = model.forward(input, shape, out int[] outputShape);
        OrtResult ort = Run(OnnxExporter.Export(model, Options(new OnnxExportOptions { Opset = opset })), input, shape);
        double share = WithinOneStep($"upsample opset {opset}", quantGen, ort, U8Input, outputShape);
        Assert.Equal(1.0, share);
        Assert.Equal(1, ort.Count("Resize"));
        Assert.DoesNotContain("DequantizeLinear", ort.OptimizedOps.Take(ort.OptimizedOps.Count - 1));
    }

    [SkippableTheory]
    [InlineData(GraphOp.Flatten)]
    [InlineData(GraphOp.Reshape)]
    [InlineData(GraphOp.ReLU)]
    public void ShapeOpsAndReluPassQParamsThrough(GraphOp op)
    {
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(op switch
        {
            GraphOp.Flatten => new QuantizedFlatten(Model, "flatten", 1, -1),
            GraphOp.Reshape => new QuantizedReshape(Model, "view", [-1, 12]),
            _ => new QuantizedReLU(Model, "relu"),
        }, op);
        int[] shape = [2, 3, 2, 4];
        float[] input = OnGrid(new Random(120), 48, U8Input);

        // A first op that does not fix the input's rank needs the input shape.
        (float[] quantGen, OrtResult ort) = Both(model, input, shape, new OnnxExportOptions { InputShape = shape });
        double share = WithinOneStep(op.ToString(), quantGen, ort, U8Input, Forward(model, input, shape).Shape);
        Assert.Equal(1.0, share);
    }

    [SkippableTheory]
    [InlineData(0, -1)]
    [InlineData(2, 3)]
    [InlineData(1, 1)]
    public void FlattenRangesBecomeReshapeOrNothing(int start, int end)
    {
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedFlatten(Model, "flatten", start, end), GraphOp.Flatten);
        int[] shape = [2, 3, 2, 4];
        float[] input = OnGrid(new Random(121), 48, U8Input);

        (float[] quantGen, OrtResult ort) = Both(model, input, shape, new OnnxExportOptions { InputShape = shape });
        Assert.Equal(1.0, WithinOneStep($"flatten({start}, {end})", quantGen, ort, U8Input, Forward(model, input, shape).Shape));
    }

    private (float[] QuantGen, OrtResult Ort) Both(HandBuiltModel model, float[] input, int[] shape, OnnxExportOptions? options = null) =>
        (model.forward(input, shape, out _), Run(OnnxExporter.Export(model, Options(options)), input, shape));

    /// <summary>The options in this class's form.</summary>
    private OnnxExportOptions Options(OnnxExportOptions? options = null) => (options ?? new OnnxExportOptions()) with { Form = form };

    private double WithinOneStep(string what, float[] quantGen, OrtResult ort, QParams outputQParams, int[] expectedShape) =>
        AssertWithinOneStep(output, $"{form} {what}", quantGen, ort, outputQParams, expectedShape);

    private static QTensor Forward(HandBuiltModel model, float[] input, int[] shape) => model.forward(model.Input.Forward(input, shape));

    /// <summary>
    /// Output qparams that fit the layer's results on this input: run it once with a wide provisional
    /// scale (widened until nothing saturates), then take the affine qparams of the observed range.
    /// </summary>
    private static QParams OutputQParamsFor<T>(Func<QParams, T> make, Func<T, QTensor, QTensor> run, float[] input, int[] shape, QParams inputQParams, QuantDType dtype)
    {
        QTensor x = QTensor.Quantize(input, shape, inputQParams, shape.Length == 4 ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous);
        for (float scale = 0.05f; ; scale *= 4f)
        {
            QParams provisional = QParams.PerTensor(scale, dtype == QuantDType.QUInt8 ? 128 : 0, dtype);
            int[] ints = run(make(provisional), x).IntRepr();
            if (ints.All(v => v > dtype.Min() && v < dtype.Max()))
            {
                float[] values = ints.Select(v => (v - provisional.ZeroPoint) * scale).ToArray();
                return Affine(values.Min(), values.Max(), dtype);
            }
        }
    }

    /// <summary>The QDQ form's layer tests.</summary>
    public sealed class Qdq(ITestOutputHelper output) : OnnxLayerExportTests(output, OnnxForm.Qdq);

    /// <summary>The QOperator form's layer tests, and what only it does.</summary>
    public sealed class QOperator(ITestOutputHelper output) : OnnxLayerExportTests(output, OnnxForm.QOperator)
    {
        [SkippableFact]
        public void ActivationsOfTheOtherTypeAreWrittenInTheInputsType()
        {
            // quint8 input, a conv writing qint8, a conv reading it: ORT's QLinearConv computes in one type, so
            // the qint8 value is written as uint8 with its zero point + 128 — the same values.
            var random = new Random(140);
            int[] shape = [1, 3, 7, 7];
            float[] input = OnGrid(random, 3 * 49, U8Input);
            QParams s8 = QParams.PerTensor(0.04f, -20, QuantDType.QInt8);
            QParams u8 = QParams.PerTensor(0.05f, 120, QuantDType.QUInt8);
            var model = new HandBuiltModel(Model, U8Input);
            model.Add(new QuantizedConv2d(Model, "conv1", new Conv2dOptions(3, 4, 3, 3, PadHeight: 1, PadWidth: 1), Weight(random, [4, 3, 3, 3], Uniform(random, 4, 0.003f, 0.01f), 0), Uniform(random, 4, -0.2f, 0.2f), U8Input, s8, false, QuantBackend.X86), GraphOp.Conv2d);
            model.Add(new QuantizedConv2d(Model, "conv2", new Conv2dOptions(4, 2, 1, 1), Weight(random, [2, 4, 1, 1], [0.01f, 0.02f], 0), null, s8, u8, false, QuantBackend.X86), GraphOp.Conv2d);

            (float[] quantGen, OrtResult ort) = Both(model, input, shape);
            WithinOneStep("quint8 → qint8 → quint8 convs", quantGen, ort, u8, [1, 2, 7, 7]);
            Assert.Equal(2, ort.Count("QLinearConv"));
        }

        [SkippableTheory]
        [InlineData(13)]
        [InlineData(21)]
        public void RunsItsInt8KernelsWithGraphOptimizationsOff(int opset)
        {
            // What the form is for: a session that fuses no QDQ group (optimizations off) still runs the int8
            // kernels, as written. conv → add+ReLU (zero point above 0: Clip) → avg pool → linear.
            var random = new Random(160);
            int[] shape = [2, 4, 6, 6];
            float[] input = OnGrid(random, 2 * 4 * 36, U8Input);
            QParams convOutput = QParams.PerTensor(0.03f, 100, QuantDType.QUInt8);
            QParams addOutput = QParams.PerTensor(0.04f, 90, QuantDType.QUInt8);
            var model = new HandBuiltModel(Model, U8Input);
            string conv = model.Add(new QuantizedConv2d(Model, "conv", new Conv2dOptions(4, 4, 3, 3, PadHeight: 1, PadWidth: 1), Weight(random, [4, 4, 3, 3], Uniform(random, 4, 0.003f, 0.01f), 0), Uniform(random, 4, -0.2f, 0.2f), U8Input, convOutput, false, QuantBackend.X86), GraphOp.Conv2d);
            model.Add(new QuantizedAdd(Model, "add", addOutput, relu: true), GraphOp.Add, conv, "t0");
            model.Add(new QuantizedAvgPool2d(Model, "pool", Pool2dOptions.Square(2)), GraphOp.AvgPool2d);
            model.Add(new QuantizedReshape(Model, "view", [-1, 36]), GraphOp.Reshape);
            model.Add(new QuantizedLinear(Model, "fc", 36, 5, Weight(random, [5, 36], Uniform(random, 5, 0.003f, 0.01f), 0), Uniform(random, 5, -0.2f, 0.2f), addOutput, addOutput, false, QuantBackend.X86), GraphOp.Linear);

            float[] quantGen = model.forward(input, shape, out int[] outputShape);
            OrtResult ort = Run(OnnxExporter.Export(model, Options(new OnnxExportOptions { Opset = opset })), input, shape, optimizations: GraphOptimizationLevel.ORT_DISABLE_ALL);
            WithinOneStep($"opset {opset}, optimizations off", quantGen, ort, addOutput, outputShape);
            Assert.Equal(
                ["QuantizeLinear", "QLinearConv", "com.microsoft:QLinearAdd", "Clip", "com.microsoft:QLinearAveragePool", "Reshape", "com.microsoft:QGemm", "DequantizeLinear"],
                ort.OptimizedOps);
        }
    }

    /// <summary>The float form (the same in both int8 forms' classes, so tested once).</summary>
    public sealed class FloatForm(ITestOutputHelper output)
    {
        [SkippableTheory]
        [InlineData(GraphOp.Conv2d)]
        [InlineData(GraphOp.ConvTranspose2d)]
        [InlineData(GraphOp.Linear)]
        public void FloatFormQuantizedIsWithinOneStepOfTheInt8Op(GraphOp op)
        {
            // The float form computes the op on the dequantized input and weights with the float bias: quantizing
            // its result with the output qparams (docs/numerics.md §2, re-written here) is the QDQ reference of
            // the int8 op, which the contract holds within one step of it.
            var random = new Random(130);
            QParams outputQParams = QParams.PerTensor(0.05f, 100, QuantDType.QUInt8);
            var model = new HandBuiltModel(Model, U8Input);
            int[] shape;
            switch (op)
            {
                case GraphOp.Conv2d:
                    shape = [1, 4, 7, 7];
                    model.Add(new QuantizedConv2d(Model, "conv", new Conv2dOptions(4, 6, 3, 3, PadHeight: 1, PadWidth: 1), Weight(random, [6, 4, 3, 3], Uniform(random, 6, 0.002f, 0.006f), 0), Uniform(random, 6, -1f, 1f), U8Input, outputQParams, false, QuantBackend.X86), op);
                    break;
                case GraphOp.ConvTranspose2d:
                    shape = [1, 4, 5, 5];
                    model.Add(new QuantizedConvTranspose2d(Model, "up", new ConvTranspose2dOptions(4, 6, 4, 4, 2, 2, 1, 1), Weight(random, [4, 6, 4, 4], Uniform(random, 6, 0.002f, 0.006f), 1), Uniform(random, 6, -1f, 1f), U8Input, outputQParams, false, QuantBackend.X86), op);
                    break;
                default:
                    shape = [3, 30];
                    model.Add(new QuantizedLinear(Model, "fc", 30, 8, Weight(random, [8, 30], Uniform(random, 8, 0.002f, 0.006f), 0), Uniform(random, 8, -1f, 1f), U8Input, outputQParams, false, QuantBackend.X86), op);
                    break;
            }

            float[] input = OnGrid(random, shape.Aggregate(1, (a, b) => a * b), U8Input);
            QTensor int8 = Forward(model, input, shape);
            OrtResult ort = Run(OnnxExporter.Export(model, new OnnxExportOptions { Form = OnnxForm.Float }), input, shape);
            Assert.Equal(int8.Shape, ort.Shape);
            Assert.DoesNotContain("QuantizeLinear", ort.OptimizedOps);
            int[] reference = ort.Output.Select(v => Math.Clamp((int)MathF.Round(v * (1f / outputQParams.Scale), MidpointRounding.ToEven) + outputQParams.ZeroPoint, 0, 255)).ToArray();
            int[] ours = int8.IntRepr();
            int exact = reference.Zip(ours).Count(p => p.First == p.Second);
            int worst = reference.Zip(ours).Max(p => Math.Abs(p.First - p.Second));
            output.WriteLine($"{op} float form: {exact}/{ours.Length} exact vs the int8 op, max {worst} step(s); ORT ran {ort.Summary()}");
            Assert.True(worst <= 1, $"{op}: the float form is {worst} steps from the int8 op");
        }
    }
}
