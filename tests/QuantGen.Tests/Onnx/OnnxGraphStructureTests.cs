using System;
using System.Linq;
using System.Runtime.InteropServices;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Onnx;
using QuantGen.Onnx.Protobuf;
using static QuantGen.Tests.Onnx.OnnxTestSupport;

namespace QuantGen.Tests.Onnx;

/// <summary>
/// What the exporter writes, read back with the protobuf classes (no ONNX Runtime): the QDQ pattern
/// around each op, initializer types and values, per-channel axes, the int32 bias, the ReLU placement,
/// opset and IR version, the input's type, and the float form. The QOperator form (the tests named
/// QOperator...): each op its quantized operator (QLinearConv, com.microsoft QGemm, QLinearAdd ...)
/// reading the int8 weights and int32 bias directly, DequantizeLinear only into the ops without one
/// (ConvTranspose, BatchNormalization), a ReLU above the dtype's minimum as Clip on the integers, every
/// activation in one type, and the com.microsoft import.
/// </summary>
public sealed class OnnxGraphStructureTests
{
    private const string Model = "Structure";
    private static readonly QParams U8Input = QParams.PerTensor(0.02f, 64, QuantDType.QUInt8);
    private static readonly OnnxExportOptions QOperatorForm = new() { Form = OnnxForm.QOperator };

    [SkippableFact]
    public void ConvIsDequantizeLinearConvQuantizeLinearWithInt8WeightsAndInt32Bias()
    {
        var random = new Random(1);
        QTensor weight = Weight(random, [3, 2, 3, 3], [0.01f, 0.02f, 0.005f], 0);
        float[] bias = [0.5f, -0.25f, 1.3f];
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedConv2d(Model, "conv1", new Conv2dOptions(2, 3, 3, 3, 2, 2, 1, 1), weight, bias, U8Input, QParams.PerTensor(0.1f, 10, QuantDType.QUInt8), false, QuantBackend.X86), GraphOp.Conv2d);

        ModelProto proto = ModelProto.Parser.ParseFrom(OnnxExporter.Export(model));
        GraphProto graph = proto.Graph;
        Assert.Equal(
            ["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv", "QuantizeLinear", "DequantizeLinear"],
            graph.Node.Select(n => n.OpType));

        NodeProto conv = graph.Node.Single(n => n.OpType == "Conv");
        Assert.Equal([3L, 3L], Ints(conv, "kernel_shape"));
        Assert.Equal([2L, 2L], Ints(conv, "strides"));
        Assert.Equal([1L, 1L, 1L, 1L], Ints(conv, "pads"));
        Assert.Equal(1L, Attribute(conv, "group").I);

        // The weight: int8 [3, 2, 3, 3] holding exactly the layer's integers, per-channel on axis 0.
        NodeProto weightDq = Producer(graph, conv.Input[1]);
        Assert.Equal(0L, Attribute(weightDq, "axis").I);
        TensorProto weightInit = Initializer(graph, weightDq.Input[0]);
        Assert.Equal((int)TensorProto.Types.DataType.Int8, weightInit.DataType);
        Assert.Equal([3L, 2L, 3L, 3L], weightInit.Dims);
        Assert.Equal(weight.IntRepr(), weightInit.RawData.ToByteArray().Select(b => (int)(sbyte)b));
        Assert.Equal([0.01f, 0.02f, 0.005f], Floats(Initializer(graph, weightDq.Input[1])));
        Assert.Equal((int)TensorProto.Types.DataType.Int8, Initializer(graph, weightDq.Input[2]).DataType);

        // The bias: int32 = rne(b / (sx * sw_c)) with scale sx * sw_c, zero point 0 — hand-derived integers.
        NodeProto biasDq = Producer(graph, conv.Input[2]);
        TensorProto biasInit = Initializer(graph, biasDq.Input[0]);
        Assert.Equal((int)TensorProto.Types.DataType.Int32, biasInit.DataType);
        Assert.Equal([2500, -625, 13000], MemoryMarshal.Cast<byte, int>(biasInit.RawData.Span).ToArray());
        Assert.Equal([0.02f * 0.01f, 0.02f * 0.02f, 0.02f * 0.005f], Floats(Initializer(graph, biasDq.Input[1])));
        Assert.Equal(0L, Attribute(biasDq, "axis").I);

        // Activations: the input quantizes to uint8 with its qparams; the conv's output with the layer's.
        NodeProto quantizeInput = graph.Node[0];
        Assert.Equal("input", quantizeInput.Input[0]);
        Assert.Equal([0.02f], Floats(Initializer(graph, quantizeInput.Input[1])));
        TensorProto inputZeroPoint = Initializer(graph, quantizeInput.Input[2]);
        Assert.Equal((int)TensorProto.Types.DataType.Uint8, inputZeroPoint.DataType);
        Assert.Empty(inputZeroPoint.Dims);
        Assert.Equal([64], inputZeroPoint.RawData.ToByteArray());
        NodeProto quantizeOutput = graph.Node[5];
        Assert.Equal([0.1f], Floats(Initializer(graph, quantizeOutput.Input[1])));
        Assert.Equal([10], Initializer(graph, quantizeOutput.Input[2]).RawData.ToByteArray());
        Assert.Equal("output", graph.Node[^1].Output[0]);
    }

    [SkippableFact]
    public void OpsetIrVersionInputTypeAndMetadata()
    {
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedConv2d(Model, "conv", new Conv2dOptions(3, 4, 1, 1), Weight(new Random(2), [4, 3, 1, 1], [0.01f], -1), null, U8Input, U8Input, false, QuantBackend.Qnnpack), GraphOp.Conv2d);

        ModelProto defaults = ModelProto.Parser.ParseFrom(OnnxExporter.Export(model));
        Assert.Equal(21L, defaults.OpsetImport.Single().Version);
        Assert.Equal(string.Empty, defaults.OpsetImport.Single().Domain);
        Assert.Equal(10L, defaults.IrVersion);
        Assert.Equal("QuantGen", defaults.ProducerName);
        Assert.Contains(defaults.MetadataProps, p => p.Key == "quantgen.model" && p.Value == Model);
        ValueInfoProto input = defaults.Graph.Input.Single();
        Assert.Equal((int)TensorProto.Types.DataType.Float, input.Type.TensorType.ElemType);
        Assert.Equal(["batch", "3", "height", "width"], input.Type.TensorType.Shape.Dim.Select(d => d.HasDimParam ? d.DimParam : d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture)));

        ModelProto fixedShape = ModelProto.Parser.ParseFrom(OnnxExporter.Export(model, new OnnxExportOptions { Opset = 13, InputShape = [2, 3, 8, 8], DynamicBatch = false }));
        Assert.Equal(13L, fixedShape.OpsetImport.Single().Version);
        Assert.Equal(7L, fixedShape.IrVersion);
        Assert.Equal([2L, 3L, 8L, 8L], fixedShape.Graph.Input.Single().Type.TensorType.Shape.Dim.Select(d => d.DimValue));

        // No bias: Conv has two inputs, and per-tensor weights have scalar qparams and no axis.
        NodeProto conv = defaults.Graph.Node.Single(n => n.OpType == "Conv");
        Assert.Equal(2, conv.Input.Count);
        NodeProto weightDq = Producer(defaults.Graph, conv.Input[1]);
        Assert.DoesNotContain(weightDq.Attribute, a => a.Name == "axis");
        Assert.Empty(Initializer(defaults.Graph, weightDq.Input[1]).Dims);
    }

    [SkippableFact]
    public void ConvTransposeWeightsArePerChannelOnAxis1AndGemmReadsTheWeightTransposed()
    {
        var random = new Random(3);
        var model = new HandBuiltModel(Model, U8Input);
        QTensor upWeight = Weight(random, [4, 3, 2, 2], [0.01f, 0.02f, 0.03f], 1);
        model.Add(new QuantizedConvTranspose2d(Model, "up", new ConvTranspose2dOptions(4, 3, 2, 2, 2, 2), upWeight, [0.1f, 0.2f, 0.3f], U8Input, U8Input, false, QuantBackend.X86), GraphOp.ConvTranspose2d);
        model.Add(new QuantizedFlatten(Model, "flatten", 1, -1), GraphOp.Flatten);
        QTensor fcWeight = Weight(random, [5, 48], Uniform(random, 5, 0.01f, 0.02f), 0);
        model.Add(new QuantizedLinear(Model, "fc", 48, 5, fcWeight, null, U8Input, U8Input, false, QuantBackend.X86), GraphOp.Linear);

        GraphProto graph = ModelProto.Parser.ParseFrom(OnnxExporter.Export(model, new OnnxExportOptions { InputShape = [1, 4, 2, 2] })).Graph;
        NodeProto convTranspose = graph.Node.Single(n => n.OpType == "ConvTranspose");
        NodeProto upWeightDq = Producer(graph, convTranspose.Input[1]);
        Assert.Equal(1L, Attribute(upWeightDq, "axis").I);
        Assert.Equal([4L, 3L, 2L, 2L], Initializer(graph, upWeightDq.Input[0]).Dims);

        Assert.Equal(1L, Attribute(graph.Node.Single(n => n.OpType == "Flatten"), "axis").I);
        NodeProto gemm = graph.Node.Single(n => n.OpType == "Gemm");
        Assert.Equal(1L, Attribute(gemm, "transB").I);
        NodeProto fcWeightDq = Producer(graph, gemm.Input[1]);
        Assert.Equal(0L, Attribute(fcWeightDq, "axis").I);
        Assert.Equal([5L, 48L], Initializer(graph, fcWeightDq.Input[0]).Dims);
    }

    [SkippableFact]
    public void FusedReluIsFoldableWhenTheZeroPointIsTheMinimumAndAfterAQdqPairOtherwise()
    {
        var random = new Random(4);
        QTensor weight = Weight(random, [2, 2, 1, 1], [0.01f, 0.01f], 0);

        var atMinimum = new HandBuiltModel(Model, U8Input);
        atMinimum.Add(new QuantizedConv2d(Model, "conv", new Conv2dOptions(2, 2, 1, 1), weight, null, U8Input, QParams.PerTensor(0.1f, 0, QuantDType.QUInt8), true, QuantBackend.X86), GraphOp.Conv2d);
        Assert.Equal(
            ["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv", "Relu", "QuantizeLinear", "DequantizeLinear"],
            ModelProto.Parser.ParseFrom(OnnxExporter.Export(atMinimum)).Graph.Node.Select(n => n.OpType));

        QParams s8 = QParams.PerTensor(0.02f, 0, QuantDType.QInt8);
        var aboveMinimum = new HandBuiltModel(Model, s8);
        aboveMinimum.Add(new QuantizedConv2d(Model, "conv", new Conv2dOptions(2, 2, 1, 1), weight, null, s8, QParams.PerTensor(0.1f, 0, QuantDType.QInt8), true, QuantBackend.X86), GraphOp.Conv2d);
        GraphProto graph = ModelProto.Parser.ParseFrom(OnnxExporter.Export(aboveMinimum)).Graph;
        Assert.Equal(
            ["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv", "QuantizeLinear", "DequantizeLinear", "Relu", "QuantizeLinear", "DequantizeLinear"],
            graph.Node.Select(n => n.OpType));
        Assert.Equal((int)TensorProto.Types.DataType.Int8, Initializer(graph, graph.Node[0].Input[2]).DataType);
    }

    [SkippableFact]
    public void FloatFormHasTheDequantizedWeightsTheFloatBiasAndNoQdq()
    {
        var random = new Random(5);
        QTensor weight = Weight(random, [3, 2, 1, 1], [0.01f, 0.02f, 0.04f], 0);
        float[] bias = [0.5f, -0.25f, 1.3f];
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedConv2d(Model, "conv", new Conv2dOptions(2, 3, 1, 1), weight, bias, U8Input, QParams.PerTensor(0.1f, 0, QuantDType.QUInt8), true, QuantBackend.X86), GraphOp.Conv2d);

        GraphProto graph = ModelProto.Parser.ParseFrom(OnnxExporter.Export(model, new OnnxExportOptions { Form = OnnxForm.Float })).Graph;
        Assert.Equal(["Conv", "Relu", "Identity"], graph.Node.Select(n => n.OpType));
        NodeProto conv = graph.Node[0];
        Assert.Equal("input", conv.Input[0]);
        int[] ints = weight.IntRepr();
        float[] scales = [0.01f, 0.02f, 0.04f];
        Assert.Equal(ints.Select((q, i) => q * scales[i / 2]), Floats(Initializer(graph, conv.Input[1])));
        Assert.Equal(bias, Floats(Initializer(graph, conv.Input[2])));
    }

    [SkippableFact]
    public void QOperatorConvIsQLinearConvReadingInt8WeightsAndTheInt32Bias()
    {
        // The conv of ConvIsDequantizeLinearConvQuantizeLinearWithInt8WeightsAndInt32Bias, in QOperator form.
        var random = new Random(1);
        QTensor weight = Weight(random, [3, 2, 3, 3], [0.01f, 0.02f, 0.005f], 0);
        var model = new HandBuiltModel(Model, U8Input);
        model.Add(new QuantizedConv2d(Model, "conv1", new Conv2dOptions(2, 3, 3, 3, 2, 2, 1, 1), weight, [0.5f, -0.25f, 1.3f], U8Input, QParams.PerTensor(0.1f, 10, QuantDType.QUInt8), false, QuantBackend.X86), GraphOp.Conv2d);

        ModelProto proto = ModelProto.Parser.ParseFrom(OnnxExporter.Export(model, QOperatorForm));
        GraphProto graph = proto.Graph;
        Assert.Equal(["QuantizeLinear", "QLinearConv", "DequantizeLinear"], graph.Node.Select(n => n.OpType));
        Assert.Contains(proto.MetadataProps, p => p.Key == "quantgen.form" && p.Value == "QOperator");

        // QLinearConv is ai.onnx: no contrib op, no com.microsoft import.
        Assert.Equal(string.Empty, proto.OpsetImport.Single().Domain);
        NodeProto conv = graph.Node[1];
        Assert.Equal(string.Empty, conv.Domain);
        Assert.Equal([3L, 3L], Ints(conv, "kernel_shape"));
        Assert.Equal([2L, 2L], Ints(conv, "strides"));
        Assert.Equal([1L, 1L, 1L, 1L], Ints(conv, "pads"));

        // x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B.
        Assert.Equal(9, conv.Input.Count);
        Assert.Equal(graph.Node[0].Output[0], conv.Input[0]);
        Assert.Equal([0.02f], Floats(Initializer(graph, conv.Input[1])));
        Assert.Equal([64], Initializer(graph, conv.Input[2]).RawData.ToByteArray());
        TensorProto weightInit = Initializer(graph, conv.Input[3]);
        Assert.Equal((int)TensorProto.Types.DataType.Int8, weightInit.DataType);
        Assert.Equal([3L, 2L, 3L, 3L], weightInit.Dims);
        Assert.Equal(weight.IntRepr(), weightInit.RawData.ToByteArray().Select(b => (int)(sbyte)b));
        Assert.Equal([0.01f, 0.02f, 0.005f], Floats(Initializer(graph, conv.Input[4])));
        Assert.Equal([3L], Initializer(graph, conv.Input[5]).Dims);
        Assert.Equal([0.1f], Floats(Initializer(graph, conv.Input[6])));
        Assert.Equal([10], Initializer(graph, conv.Input[7]).RawData.ToByteArray());

        // rne(b / (sx * sw_c)), the same hand-derived integers as the QDQ form's, read directly.
        TensorProto bias = Initializer(graph, conv.Input[8]);
        Assert.Equal((int)TensorProto.Types.DataType.Int32, bias.DataType);
        Assert.Equal([2500, -625, 13000], MemoryMarshal.Cast<byte, int>(bias.RawData.Span).ToArray());
    }

    [SkippableFact]
    public void QOperatorWritesEveryOpAsItsQuantizedOperatorAndDequantizesOnlyForConvTransposeAndBatchNorm()
    {
        byte[] bytes = OnnxExporter.Export(EveryOp(), QOperatorForm with { InputShape = [1, 4, 8, 8] });
        ModelProto proto = ModelProto.Parser.ParseFrom(bytes);
        GraphProto graph = proto.Graph;
        Assert.Equal(
        [
            "QuantizeLinear",
            "QLinearConv", "MaxPool", "Resize", "com.microsoft:QLinearAdd", "com.microsoft:QLinearConcat",
            "DequantizeLinear", "DequantizeLinear", "DequantizeLinear", "ConvTranspose", "QuantizeLinear",
            "DequantizeLinear", "BatchNormalization", "Relu", "QuantizeLinear",
            "com.microsoft:QLinearAveragePool", "Clip", "com.microsoft:QLinearGlobalAveragePool", "Flatten", "com.microsoft:QGemm", "Reshape",
            "Reshape", "com.microsoft:QGemm", "Shape", "Slice", "Concat", "Reshape",
            "DequantizeLinear",
        ],
            graph.Node.Select(n => string.IsNullOrEmpty(n.Domain) ? n.OpType : n.Domain + ":" + n.OpType));
        AssertQuantizedOperators(bytes);
        Assert.Equal([(string.Empty, 21L), ("com.microsoft", 1L)], proto.OpsetImport.Select(o => (o.Domain, o.Version)));

        // The fused add+ReLU has its output zero point at 0: the QLinearAdd's saturation is the ReLU, no Clip.
        Assert.Equal(graph.Node.Single(n => n.OpType == "QLinearAdd").Output[0], graph.Node.Single(n => n.OpType == "QLinearConcat").Input[2]);

        // Average pools read and write the input's qparams: [x, s, z, s, z].
        NodeProto average = graph.Node.Single(n => n.OpType == "QLinearAveragePool");
        Assert.Equal([average.Input[1], average.Input[2]], new[] { average.Input[3], average.Input[4] });
        Assert.Equal([2L, 2L], Ints(average, "kernel_shape"));

        // The standalone ReLU: Clip on the integers with min = its input's zero point initializer (uint8 100).
        NodeProto clip = graph.Node.Single(n => n.OpType == "Clip");
        Assert.Equal(average.Input[2], clip.Input[1]);
        Assert.Equal([100], Initializer(graph, clip.Input[1]).RawData.ToByteArray());

        // Linear: QGemm(transB = 1) on the [out, in] int8 weight with the int32 bias; rank 3 between Reshapes to [-1, in] and back.
        NodeProto[] gemms = graph.Node.Where(n => n.OpType == "QGemm").ToArray();
        Assert.All(gemms, g => Assert.Equal(1L, Attribute(g, "transB").I));
        Assert.Equal([6L, 4L], Initializer(graph, gemms[0].Input[3]).Dims);
        Assert.Equal((int)TensorProto.Types.DataType.Int32, Initializer(graph, gemms[0].Input[6]).DataType);
        Assert.Equal([-1L, 3L], MemoryMarshal.Cast<byte, long>(Initializer(graph, Producer(graph, gemms[1].Input[0]).Input[1]).RawData.Span).ToArray());
        Assert.Equal("fc3", graph.Node[^2].Output[0]);
    }

    [SkippableFact]
    public void QOperatorReluAboveTheMinimumIsAClipAtTheZeroPointInTheWrittenType()
    {
        var random = new Random(6);
        QTensor weight = Weight(random, [2, 2, 1, 1], [0.01f, 0.01f], 0);
        QParams s8 = QParams.PerTensor(0.02f, 0, QuantDType.QInt8);
        var model = new HandBuiltModel(Model, s8);
        model.Add(new QuantizedConv2d(Model, "conv", new Conv2dOptions(2, 2, 1, 1), weight, null, s8, QParams.PerTensor(0.1f, 0, QuantDType.QInt8), true, QuantBackend.X86), GraphOp.Conv2d);

        // Symmetric qint8: zero point 0 is not the minimum, so QLinearConv → Clip(min = 0), in int8.
        GraphProto graph = ModelProto.Parser.ParseFrom(OnnxExporter.Export(model, QOperatorForm)).Graph;
        Assert.Equal(["QuantizeLinear", "QLinearConv", "Clip", "DequantizeLinear"], graph.Node.Select(n => n.OpType));
        TensorProto min = Initializer(graph, graph.Node[2].Input[1]);
        Assert.Equal((int)TensorProto.Types.DataType.Int8, min.DataType);
        Assert.Equal([0], min.RawData.ToByteArray());
        Assert.Equal(graph.Node[1].Input[7], graph.Node[2].Input[1]);

        // Activations as uint8: every zero point + 128, the Clip's too.
        graph = ModelProto.Parser.ParseFrom(OnnxExporter.Export(model, QOperatorForm with { ActivationsAsUInt8 = true })).Graph;
        TensorProto[] zeroPoints = [Initializer(graph, graph.Node[0].Input[2]), Initializer(graph, graph.Node[1].Input[7]), Initializer(graph, graph.Node[2].Input[1])];
        Assert.All(zeroPoints, z => Assert.Equal((int)TensorProto.Types.DataType.Uint8, z.DataType));
        Assert.All(zeroPoints, z => Assert.Equal([128], z.RawData.ToByteArray()));
    }

    [SkippableTheory]
    [InlineData(QuantDType.QUInt8)]
    [InlineData(QuantDType.QInt8)]
    public void QOperatorWritesEveryActivationInTheInputsType(QuantDType inputType)
    {
        // One conv writes the other type; QLinearConv computes in one type, so its output is written in the
        // input's with the zero point moved by 128 (qint8 -20 → uint8 108; quint8 100 → int8 -28).
        var random = new Random(7);
        QParams input = inputType == QuantDType.QUInt8 ? U8Input : QParams.PerTensor(0.02f, 0, QuantDType.QInt8);
        QParams other = inputType == QuantDType.QUInt8 ? QParams.PerTensor(0.1f, -20, QuantDType.QInt8) : QParams.PerTensor(0.1f, 100, QuantDType.QUInt8);
        var model = new HandBuiltModel(Model, input);
        model.Add(new QuantizedConv2d(Model, "conv", new Conv2dOptions(2, 2, 1, 1), Weight(random, [2, 2, 1, 1], [0.01f], -1), null, input, other, false, QuantBackend.X86), GraphOp.Conv2d);

        GraphProto graph = ModelProto.Parser.ParseFrom(OnnxExporter.Export(model, QOperatorForm)).Graph;
        TensorProto zeroPoint = Initializer(graph, graph.Node.Single(n => n.OpType == "QLinearConv").Input[7]);
        if (inputType == QuantDType.QUInt8)
        {
            Assert.Equal((int)TensorProto.Types.DataType.Uint8, zeroPoint.DataType);
            Assert.Equal([108], zeroPoint.RawData.ToByteArray());
        }
        else
        {
            Assert.Equal((int)TensorProto.Types.DataType.Int8, zeroPoint.DataType);
            Assert.Equal([unchecked((byte)(sbyte)-28)], zeroPoint.RawData.ToByteArray());
        }
    }

    [SkippableFact]
    public void OnlyTheQOperatorFormImportsComMicrosoft()
    {
        HandBuiltModel model = EveryOp();
        foreach (OnnxForm form in new[] { OnnxForm.Qdq, OnnxForm.Float })
        {
            ModelProto proto = ModelProto.Parser.ParseFrom(OnnxExporter.Export(model, new OnnxExportOptions { Form = form, InputShape = [1, 4, 8, 8] }));
            Assert.Equal(string.Empty, proto.OpsetImport.Single().Domain);
            Assert.All(proto.Graph.Node, n => Assert.Equal(string.Empty, n.Domain));
        }
    }

    /// <summary>
    /// Every op the exporter writes, on a [1, 4, 8, 8] input: conv+ReLU, max pool, upsample, add+ReLU, cat,
    /// transposed conv, batch norm+ReLU, average pool, ReLU, global average pool, flatten, linear, view to
    /// rank 3 and a linear on it.
    /// </summary>
    private static HandBuiltModel EveryOp()
    {
        var random = new Random(8);
        QParams afterRelu = QParams.PerTensor(0.05f, 0, QuantDType.QUInt8);
        QParams affine = QParams.PerTensor(0.05f, 100, QuantDType.QUInt8);
        var model = new HandBuiltModel(Model, U8Input);
        string conv = model.Add(new QuantizedConv2d(Model, "conv", new Conv2dOptions(4, 4, 3, 3, PadHeight: 1, PadWidth: 1), Weight(random, [4, 4, 3, 3], Uniform(random, 4, 0.005f, 0.01f), 0), Uniform(random, 4, -0.1f, 0.1f), U8Input, afterRelu, true, QuantBackend.X86), GraphOp.Conv2d);
        model.Add(new QuantizedMaxPool2d(Model, "pool", Pool2dOptions.Square(2)), GraphOp.MaxPool2d);
        string up = model.Add(new QuantizedUpsampleNearest2d(Model, "up", null, null, 2.0, 2.0), GraphOp.UpsampleNearest2d);
        string add = model.Add(new QuantizedAdd(Model, "add", afterRelu, relu: true), GraphOp.Add, up, conv);
        model.Add(new QuantizedCat(Model, "cat", 1, afterRelu), GraphOp.Cat, add, conv);
        model.Add(new QuantizedConvTranspose2d(Model, "deconv", new ConvTranspose2dOptions(8, 4, 2, 2, 2, 2), Weight(random, [8, 4, 2, 2], Uniform(random, 4, 0.005f, 0.01f), 1), Uniform(random, 4, -0.1f, 0.1f), afterRelu, affine, false, QuantBackend.X86), GraphOp.ConvTranspose2d);
        model.Add(new QuantizedBatchNorm2d(Model, "bn", Uniform(random, 4, 0.5f, 2f), Uniform(random, 4, -0.5f, 0.5f), affine, relu: true), GraphOp.BatchNorm2d);
        model.Add(new QuantizedAvgPool2d(Model, "avg", Pool2dOptions.Square(2)), GraphOp.AvgPool2d);
        model.Add(new QuantizedReLU(Model, "relu"), GraphOp.ReLU);
        model.Add(new QuantizedAdaptiveAvgPool2d(Model, "gap", 1, 1), GraphOp.AdaptiveAvgPool2d);
        model.Add(new QuantizedFlatten(Model, "flatten", 1, -1), GraphOp.Flatten);
        model.Add(new QuantizedLinear(Model, "fc", 4, 6, Weight(random, [6, 4], Uniform(random, 6, 0.005f, 0.01f), 0), Uniform(random, 6, -0.1f, 0.1f), affine, affine, false, QuantBackend.X86), GraphOp.Linear);
        model.Add(new QuantizedReshape(Model, "view", [-1, 2, 3]), GraphOp.Reshape);
        model.Add(new QuantizedLinear(Model, "fc3", 3, 2, Weight(random, [2, 3], Uniform(random, 2, 0.005f, 0.01f), 0), Uniform(random, 2, -0.1f, 0.1f), affine, affine, false, QuantBackend.X86), GraphOp.Linear);
        return model;
    }

    private static AttributeProto Attribute(NodeProto node, string name) => node.Attribute.Single(a => a.Name == name);

    private static long[] Ints(NodeProto node, string name) => Attribute(node, name).Ints.ToArray();

    private static NodeProto Producer(GraphProto graph, string value) => graph.Node.Single(n => n.Output.Contains(value));

    private static TensorProto Initializer(GraphProto graph, string name) => graph.Initializer.Single(t => t.Name == name);

    private static float[] Floats(TensorProto tensor) => MemoryMarshal.Cast<byte, float>(tensor.RawData.Span).ToArray();
}
