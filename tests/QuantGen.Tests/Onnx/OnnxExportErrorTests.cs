using System;
using System.Collections.Generic;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Onnx;
using QuantGen.Reports;

namespace QuantGen.Tests.Onnx;

/// <summary>What ONNX export refuses, and that each refusal names the model and the layer, in each int8 form (<see cref="Qdq"/>, <see cref="QOperator"/>).</summary>
public abstract class OnnxExportErrorTests(OnnxForm form)
{
    private const string Model = "Refused";
    private static readonly QParams U8 = QParams.PerTensor(0.02f, 64, QuantDType.QUInt8);

    [SkippableFact]
    public void FloatIslandIsNotSupported()
    {
        var model = new HandBuiltModel(Model, U8);
        model.Add(new QuantizeInput(Model, "island", U8), GraphOp.FloatIsland);
        var error = Assert.Throws<NotSupportedException>(() => Export(model));
        Assert.Contains("Refused.island", error.Message);
        Assert.Contains("float island", error.Message);
    }

    [SkippableFact]
    public void AdaptiveAvgPoolToMoreThanOneCellIsNotSupported()
    {
        var model = new HandBuiltModel(Model, U8);
        model.Add(new QuantizedAdaptiveAvgPool2d(Model, "pool", 2, 3), GraphOp.AdaptiveAvgPool2d);
        var error = Assert.Throws<NotSupportedException>(() => Export(model));
        Assert.Contains("Refused.pool", error.Message);
        Assert.Contains("2x3", error.Message);
    }

    [SkippableFact]
    public void AvgPoolWithDivisorOverrideIsNotSupported()
    {
        var model = new HandBuiltModel(Model, U8);
        model.Add(new QuantizedAvgPool2d(Model, "pool", Pool2dOptions.Square(2, divisorOverride: 3)), GraphOp.AvgPool2d);
        var error = Assert.Throws<NotSupportedException>(() => Export(model));
        Assert.Contains("Refused.pool", error.Message);
        Assert.Contains("divisor_override=3", error.Message);
    }

    [SkippableFact]
    public void FlattenThatKeepsTrailingDimensionsIsNotSupported()
    {
        var model = new HandBuiltModel(Model, U8);
        model.Add(new QuantizedFlatten(Model, "flatten", 1, 2), GraphOp.Flatten);
        var error = Assert.Throws<NotSupportedException>(() => Export(model, new OnnxExportOptions { InputShape = [1, 2, 3, 4] }));
        Assert.Contains("Refused.flatten", error.Message);
    }

    [SkippableFact]
    public void ReshapeWithAZeroSizeDimensionIsNotSupported()
    {
        var model = new HandBuiltModel(Model, U8);
        model.Add(new QuantizedReshape(Model, "view", [0, 4]), GraphOp.Reshape);
        var error = Assert.Throws<NotSupportedException>(() => Export(model, new OnnxExportOptions { InputShape = [2, 4] }));
        Assert.Contains("Refused.view", error.Message);
        Assert.Contains("zero-size", error.Message);
    }

    [SkippableFact]
    public void LinearOnARank1InputIsNotSupported()
    {
        var model = new HandBuiltModel(Model, U8);
        model.Add(new QuantizedLinear(Model, "fc", 4, 2, OnnxTestSupport.Weight(new Random(1), [2, 4], [0.01f], -1), null, U8, U8, false, QuantBackend.X86), GraphOp.Linear);
        var error = Assert.Throws<NotSupportedException>(() => Export(model, new OnnxExportOptions { InputShape = [4] }));
        Assert.Contains("Refused.fc", error.Message);
        Assert.Contains("rank 1", error.Message);
    }

    [SkippableFact]
    public void InputRankThatCannotBeToldNeedsTheInputShape()
    {
        var model = new HandBuiltModel(Model, U8);
        model.Add(new QuantizedReLU(Model, "relu"), GraphOp.ReLU);
        var error = Assert.Throws<NotSupportedException>(() => Export(model));
        Assert.Contains("InputShape", error.Message);
        Assert.NotEmpty(Export(model, new OnnxExportOptions { InputShape = [1, 4] }));
    }

    [SkippableTheory]
    [InlineData(12)]
    [InlineData(22)]
    public void OpsetOutsideTheWrittenRangeIsRejected(int opset)
    {
        var model = new HandBuiltModel(Model, U8);
        model.Add(new QuantizedReLU(Model, "relu"), GraphOp.ReLU);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Export(model, new OnnxExportOptions { Opset = opset, InputShape = [1, 4] }));
        Assert.Contains("13..21", error.Message);
    }

    [SkippableFact]
    public void ANodeWithoutItsLayerNamesBoth()
    {
        var model = new MismatchedModel();
        var error = Assert.Throws<InvalidOperationException>(() => Export(model));
        Assert.Contains("Refused.conv", error.Message);
        Assert.Contains("no layer of that name", error.Message);
    }

    [SkippableFact]
    public void ALayerOfTheWrongTypeNamesBoth()
    {
        var model = new HandBuiltModel(Model, U8);
        model.Add(new QuantizedReLU(Model, "conv"), GraphOp.Conv2d);
        var error = Assert.Throws<InvalidOperationException>(() => Export(model, new OnnxExportOptions { InputShape = [1, 4, 2, 2] }));
        Assert.Contains("Refused.conv", error.Message);
        Assert.Contains("QuantizedConv2d", error.Message);
        Assert.Contains("QuantizedReLU", error.Message);
    }

    private byte[] Export(IQuantizedModel model, OnnxExportOptions? options = null) =>
        OnnxExporter.Export(model, (options ?? new OnnxExportOptions()) with { Form = form });

    /// <summary>The QDQ form's refusals.</summary>
    public sealed class Qdq() : OnnxExportErrorTests(OnnxForm.Qdq);

    /// <summary>The QOperator form's refusals: the same, with the same messages.</summary>
    public sealed class QOperator() : OnnxExportErrorTests(OnnxForm.QOperator);

    /// <summary>A graph with a conv node whose layer list lacks the conv.</summary>
    private sealed class MismatchedModel : IQuantizedModel
    {
        public ModelGraph Graph { get; } = new(Model, "h", "input", "t1",
        [
            new GraphNode("quant", GraphOp.Quantize, ["input"], "t0", [], "M.cs(1)"),
            new GraphNode("conv", GraphOp.Conv2d, ["t0"], "t1", [], "M.cs(2)"),
        ]);

        public QuantizeInput Input { get; } = new(Model, "quant", U8);

        public IReadOnlyList<IQuantizedLayer> Layers => [Input];

        public QTensor forward(QTensor input) => throw new NotImplementedException();

        public QTensor forward(QTensor input, IQuantizedTap? tap) => throw new NotImplementedException();

        public float[] forward(ReadOnlySpan<float> input, int[] shape, out int[] outputShape) => throw new NotImplementedException();
    }
}
