using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Reports;

namespace QuantGen.Tests.Onnx;

/// <summary>
/// A converted model put together by hand from QuantGen's layer classes, for exporting single ops and
/// small graphs without the generator: <see cref="Add"/> appends a layer reading named values, and
/// <see cref="forward(QTensor)"/> runs the graph by calling each layer's own <c>Forward</c>.
/// </summary>
internal sealed class HandBuiltModel : IQuantizedModel
{
    private readonly List<GraphNode> _nodes = [];
    private readonly List<IQuantizedLayer> _layers = [];
    private int _nextValue;

    /// <summary>Starts a model whose float input is quantized with <paramref name="inputQParams"/>.</summary>
    public HandBuiltModel(string model, QParams inputQParams)
    {
        Model = model;
        Input = new QuantizeInput(model, "quant", inputQParams);
        _layers.Add(Input);
        _nodes.Add(new GraphNode("quant", GraphOp.Quantize, ["input"], "t0", [new GraphMember("quant", "QuantStub", "Test.cs(1)")], "Test.cs(1)"));
        Last = "t0";
    }

    /// <summary>The model's name.</summary>
    public string Model { get; }

    /// <summary>The value the last added layer writes.</summary>
    public string Last { get; private set; }

    /// <inheritdoc/>
    public ModelGraph Graph => new(Model, "hand-built", "input", Last, _nodes);

    /// <inheritdoc/>
    public IReadOnlyList<IQuantizedLayer> Layers => _layers;

    /// <inheritdoc/>
    public QuantizeInput Input { get; }

    /// <summary>Appends <paramref name="layer"/> as a node reading <paramref name="inputs"/> (the last value when none are given); returns the value it writes.</summary>
    public string Add(IQuantizedLayer layer, GraphOp op, params string[] inputs)
    {
        string output = "t" + (++_nextValue).ToString(System.Globalization.CultureInfo.InvariantCulture);
        _nodes.Add(new GraphNode(layer.Layer, op, inputs.Length == 0 ? [Last] : inputs, output, [new GraphMember(layer.Layer, op.ToString(), "Test.cs(2)")], "Test.cs(2)"));
        _layers.Add(layer);
        Last = output;
        return output;
    }

    /// <inheritdoc/>
    public QTensor forward(QTensor input) => forward(input, null);

    /// <inheritdoc/>
    public QTensor forward(QTensor input, IQuantizedTap? tap)
    {
        var values = new Dictionary<string, QTensor> { ["t0"] = input };
        foreach ((GraphNode node, IQuantizedLayer layer) in _nodes.Zip(_layers).Skip(1))
        {
            QTensor[] inputs = node.Inputs.Select(v => values[v]).ToArray();
            QTensor output = layer switch
            {
                QuantizedConv2d conv => conv.Forward(inputs[0]),
                QuantizedConvTranspose2d conv => conv.Forward(inputs[0]),
                QuantizedLinear linear => linear.Forward(inputs[0]),
                QuantizedBatchNorm2d batchNorm => batchNorm.Forward(inputs[0]),
                QuantizedReLU relu => relu.Forward(inputs[0]),
                QuantizedAdd add => add.Forward(inputs[0], inputs[1]),
                QuantizedCat cat => cat.Forward(inputs),
                QuantizedMaxPool2d pool => pool.Forward(inputs[0]),
                QuantizedAvgPool2d pool => pool.Forward(inputs[0]),
                QuantizedAdaptiveAvgPool2d pool => pool.Forward(inputs[0]),
                QuantizedUpsampleNearest2d upsample => upsample.Forward(inputs[0]),
                QuantizedFlatten flatten => flatten.Forward(inputs[0]),
                QuantizedReshape reshape => reshape.Forward(inputs[0]),
                _ => throw new NotSupportedException(layer.GetType().Name),
            };
            tap?.OnLayer(node.Name, output);
            values[node.Output] = output;
        }

        return values[Last];
    }

    /// <inheritdoc/>
    public float[] forward(ReadOnlySpan<float> input, int[] shape, out int[] outputShape)
    {
        QTensor result = forward(Input.Forward(input, shape));
        outputShape = result.Shape;
        return result.Dequantize();
    }
}
