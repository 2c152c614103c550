using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Observers;
using TorchSharp;

namespace QuantGen.Reports;

/// <summary>
/// "Explain this output value": every integer step that produced one output element of an int8 layer, from
/// the integers the layer really received in a forward of the model, re-computed with the numerics
/// contract's formulas (docs/numerics.md) and checked against the model's own output.
/// </summary>
/// <remarks>
/// Conv2d, ConvTranspose2d and Linear get the full form (receptive field, accumulator, bias, multiplier,
/// rounding, clamp, and the usual hand calculations checked against it); add, the pools, batch norm, cat,
/// ReLU, flatten/reshape, upsampling and the input quantization a short form. A float island's quantizer is
/// reported, not re-computed (its float module ran on values this tool does not see).
/// </remarks>
public static class QuantExplain
{
    /// <summary>Explains one output element of a layer for an int8 input.</summary>
    /// <param name="model">The int8 model.</param>
    /// <param name="input">The model's input, quantized with <c>model.Input</c>'s qparams.</param>
    /// <param name="layer">The layer name (<c>conv1</c>, <c>layer1.0.conv1</c>).</param>
    /// <param name="outputIndex">The element's logical index in the layer's output (<c>[n, c, y, x]</c>).</param>
    /// <returns>The explanation.</returns>
    /// <exception cref="ArgumentException">No such layer (the message lists the model's layers).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The index is outside the layer's output (the message gives its shape).</exception>
    public static Explanation Explain(IQuantizedModel model, QTensor input, string layer, int[] outputIndex)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(input);
        return Core(model, input, null, layer, outputIndex, null);
    }

    /// <summary>Explains one output element of a layer for a float input, next to the float model's value there.</summary>
    /// <param name="model">The int8 model.</param>
    /// <param name="floatModel">The fused float model (<see cref="FloatModel.FromModule"/>).</param>
    /// <param name="input">A float input batch (quantized with <c>model.Input</c> for the int8 side).</param>
    /// <param name="layer">The layer name.</param>
    /// <param name="outputIndex">The element's logical index in the layer's output.</param>
    /// <returns>The explanation, with <see cref="Explanation.FloatValue"/> set.</returns>
    /// <exception cref="ArgumentException">No such layer, or the two models are different architectures.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The index is outside the layer's output.</exception>
    public static Explanation Explain(IQuantizedModel model, IFloatModel floatModel, torch.Tensor input, string layer, int[] outputIndex)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(floatModel);
        ArgumentNullException.ThrowIfNull(input);
        if (floatModel.Model != model.Graph.Model)
        {
            throw new ArgumentException($"QuantExplain: cannot compare different models: the float model is {floatModel.Model}, the int8 model {model.Graph.Model}.", nameof(floatModel));
        }

        model.Graph.Get(layer);
        float[] values = TensorInterop.ToArray(input, out int[] shape);
        var tap = new OneLayerFloatTap(layer);
        using (torch.NewDisposeScope())
        using (torch.no_grad())
        using (Observation.Pause())
        {
            floatModel.Forward(input, tap).Dispose();
        }

        if (tap.Output is null)
        {
            throw new ArgumentException($"{model.Graph.Model}.{layer}: the float model did not report this layer; the two models are not the same architecture.", nameof(floatModel));
        }

        return Core(model, model.Input.Forward(values, shape), (values, shape), layer, outputIndex, tap.Output);
    }

    private static Explanation Core(IQuantizedModel model, QTensor input, (float[] Values, int[] Shape)? floatInput, string layer, int[] outputIndex, (float[] Values, int[] Shape)? floatOutput)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentNullException.ThrowIfNull(outputIndex);
        ModelGraph graph = model.Graph;
        GraphNode node = graph.Get(layer);
        IQuantizedLayer quantizedLayer = model.Layers.FirstOrDefault(l => l.Layer == layer)
            ?? throw new ArgumentException($"{graph.Model}: the graph has a layer '{layer}' but the model holds no such int8 layer.", nameof(layer));

        var recorder = new Recorder();
        model.forward(input, recorder);
        var values = new Dictionary<string, QTensor>(StringComparer.Ordinal);
        foreach (GraphNode n in graph.Nodes)
        {
            if (recorder.Outputs.TryGetValue(n.Name, out QTensor? value))
            {
                values[n.Output] = value;
            }
        }

        QTensor output = recorder.Outputs.TryGetValue(layer, out QTensor? o) ? o
            : throw new InvalidOperationException($"{graph.Model}.{layer}: the int8 forward did not report this layer.");
        int[] outputShape = output.Shape;
        CheckIndex(graph.Model, layer, outputIndex, outputShape);
        if (floatOutput is { } fo && !fo.Shape.AsSpan().SequenceEqual(outputShape))
        {
            throw new ArgumentException($"{graph.Model}.{layer}: the float model's output is {ReportText.Shape(fo.Shape)} but the int8 model's is {ReportText.Shape(outputShape)}; the two are not the same architecture.");
        }

        QTensor In(int i) => values.TryGetValue(node.Inputs[i], out QTensor? v) ? v
            : throw new InvalidOperationException($"{graph.Model}.{layer}: input value '{node.Inputs[i]}' was not produced by any layer.");

        var context = new Context(graph.Model, layer, node.Op, (int[])outputIndex.Clone(), outputShape, output.QParams, output.IntAt(outputIndex),
            floatOutput is { } f ? f.Values[FlatIndex(outputIndex, f.Shape)] : null);
        return quantizedLayer switch
        {
            QuantizedConv2d conv => ExplainOps.Conv2d(context, conv, In(0)),
            QuantizedConvTranspose2d convTranspose => ExplainOps.ConvTranspose2d(context, convTranspose, In(0)),
            QuantizedLinear linear => ExplainOps.Linear(context, linear, In(0)),
            QuantizedAdd add => ExplainOps.Add(context, add, In(0), In(1)),
            QuantizedMul => ExplainOps.Mul(context, In(0), In(1)),
            QuantizedMean mean => ExplainOps.Mean(context, mean, In(0)),
            QuantizedMaxPool2d maxPool => ExplainOps.MaxPool2d(context, maxPool, In(0)),
            QuantizedAvgPool2d avgPool => ExplainOps.AvgPool2d(context, avgPool, In(0)),
            QuantizedAdaptiveAvgPool2d adaptive => ExplainOps.AdaptiveAvgPool2d(context, adaptive, In(0)),
            QuantizedBatchNorm2d batchNorm => ExplainOps.BatchNorm2d(context, batchNorm, In(0)),
            QuantizedReLU => ExplainOps.Relu(context, In(0)),
            QuantizedFlatten or QuantizedReshape => ExplainOps.Copy(context, In(0), FlatIndex(outputIndex, outputShape), "flatten/reshape keeps the logical row-major order: the element at the same flat index"),
            QuantizedUpsampleNearest2d upsample => ExplainOps.Upsample(context, upsample, In(0)),
            QuantizedCat cat => ExplainOps.Cat(context, cat, Enumerable.Range(0, node.Inputs.Count).Select(In).ToArray()),
            QuantizeInput quantize when node.Op == GraphOp.Quantize => ExplainOps.Quantize(context, quantize, floatInput is { } fi ? fi.Values[FlatIndex(outputIndex, fi.Shape)] : null),
            _ => ExplainOps.Reported(context, $"{node.Op}: the value is reported as the int8 model produced it, not re-computed"),
        };
    }

    private static void CheckIndex(string model, string layer, int[] index, int[] shape)
    {
        if (index.Length != shape.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(index), $"{model}.{layer}: output index {ReportText.Index(index)} has {index.Length} components but the output {ReportText.Shape(shape)} has rank {shape.Length}.");
        }

        for (int d = 0; d < index.Length; d++)
        {
            if (index[d] < 0 || index[d] >= shape[d])
            {
                throw new ArgumentOutOfRangeException(nameof(index), $"{model}.{layer}: output index {ReportText.Index(index)} is outside the output {ReportText.Shape(shape)}: dimension {d} must be in 0..{shape[d] - 1}, got {index[d]}.");
            }
        }
    }

    /// <summary>The logical row-major offset of an index.</summary>
    internal static int FlatIndex(int[] index, int[] shape)
    {
        int flat = 0;
        for (int d = 0; d < shape.Length; d++)
        {
            flat = (flat * shape[d]) + index[d];
        }

        return flat;
    }

    /// <summary>The logical index of a row-major offset.</summary>
    internal static int[] Unflatten(int flat, int[] shape)
    {
        var index = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            index[d] = flat % shape[d];
            flat /= shape[d];
        }

        return index;
    }

    private sealed class Recorder : IQuantizedTap
    {
        public Dictionary<string, QTensor> Outputs { get; } = new(StringComparer.Ordinal);

        // A copy: the int8 forward may reuse a layer's buffer for a later layer.
        public void OnLayer(string layer, QTensor output) => Outputs[layer] = new QTensor(output.Shape, output.QParams, output.StorageBytes.ToArray(), output.Format);
    }

    private sealed class OneLayerFloatTap(string layer) : IFloatTap
    {
        public (float[] Values, int[] Shape)? Output { get; private set; }

        public torch.Tensor? OnLayer(string name, torch.Tensor output)
        {
            if (name == layer)
            {
                Output = (TensorInterop.ToArray(output, out int[] shape), shape);
            }

            return null;
        }
    }
}

/// <summary>What every explanation shares: which element, its qparams, the model's value and the float value.</summary>
internal sealed record Context(string Model, string Layer, GraphOp Op, int[] Index, int[] OutputShape, QParams OutputQParams, int ModelOutput, float? FloatValue);
