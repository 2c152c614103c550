using System;
using System.Collections.Generic;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Reports;

namespace QuantGen;

/// <summary>
/// One int8 layer of a converted model (every class in <c>QuantGen.Modules</c> that the generated
/// <c>M.Quantized</c> holds). The names are what error messages, taps and reports use.
/// </summary>
public interface IQuantizedLayer
{
    /// <summary>The model class the layer belongs to (e.g. <c>ResNet18</c>).</summary>
    string Model { get; }

    /// <summary>The layer's path in the model, PyTorch-style (e.g. <c>layer1.0.conv1</c>).</summary>
    string Layer { get; }
}

/// <summary>
/// What every generated <c>M.Quantized</c> offers to tools that work on any model: its graph, its
/// layers in forward order and the int8 forward. Exporters, the model file and reports use this.
/// </summary>
/// <remarks>A generated model's forwards are safe to call from many threads at once on one instance.</remarks>
public interface IQuantizedModel
{
    /// <summary>This instance's graph: optional layers (a construction-time <c>if</c>) that are absent are left out.</summary>
    ModelGraph Graph { get; }

    /// <summary>The layers that exist, in forward order; <c>Layers[i].Layer</c> is the name of a node of <see cref="Graph"/>.</summary>
    IReadOnlyList<IQuantizedLayer> Layers { get; }

    /// <summary>The layer that quantizes the float input.</summary>
    QuantizeInput Input { get; }

    /// <summary>The quantized region: int8 in, int8 out.</summary>
    /// <param name="input">The input, quantized with <see cref="Input"/>'s qparams.</param>
    /// <returns>The int8 result.</returns>
    QTensor forward(QTensor input);

    /// <summary>The quantized region, reporting each layer's int8 output to <paramref name="tap"/>.</summary>
    /// <param name="input">The input, quantized with <see cref="Input"/>'s qparams.</param>
    /// <param name="tap">Receives each layer's output; null for none.</param>
    /// <returns>The int8 result.</returns>
    QTensor forward(QTensor input, IQuantizedTap? tap);

    /// <summary>Float in, float out without TorchSharp: values in logical row-major (NCHW) order.</summary>
    /// <param name="input">The input values.</param>
    /// <param name="shape">The input's logical shape.</param>
    /// <param name="outputShape">The result's logical shape.</param>
    /// <returns>The dequantized result.</returns>
    float[] forward(ReadOnlySpan<float> input, int[] shape, out int[] outputShape);
}
