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
/// opset and IR version, the input's type, and the float form.
/// </summary>
public sealed class OnnxGraphStructureTests
{
    private const string Model = "Structure";
    private static readonly QParams U8Input = QParams.PerTensor(0.02f, 64, QuantDType.QUInt8);

    [Fact]
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

    [Fact]
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

    [Fact]
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

    [Fact]
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

    [Fact]
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

    private static AttributeProto Attribute(NodeProto node, string name) => node.Attribute.Single(a => a.Name == name);

    private static long[] Ints(NodeProto node, string name) => Attribute(node, name).Ints.ToArray();

    private static NodeProto Producer(GraphProto graph, string value) => graph.Node.Single(n => n.Output.Contains(value));

    private static TensorProto Initializer(GraphProto graph, string name) => graph.Initializer.Single(t => t.Name == name);

    private static float[] Floats(TensorProto tensor) => MemoryMarshal.Cast<byte, float>(tensor.RawData.Span).ToArray();
}
