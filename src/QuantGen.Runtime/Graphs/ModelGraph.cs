using System;
using System.Collections.Generic;
using System.Linq;

namespace QuantGen.Graphs;

/// <summary>What an int8 op of a converted model computes.</summary>
public enum GraphOp
{
    /// <summary>Quantizes the float input (the QuantStub, or the model's entry in graph mode).</summary>
    Quantize,

    /// <summary>Conv2d, with any batch norm folded in and ReLU fused.</summary>
    Conv2d,

    /// <summary>ConvTranspose2d (per-channel weights on axis 1), with batch norm folded in and ReLU fused.</summary>
    ConvTranspose2d,

    /// <summary>Linear, with batch norm folded in and ReLU fused.</summary>
    Linear,

    /// <summary>A standalone BatchNorm2d (ReLU fused when followed by one).</summary>
    BatchNorm2d,

    /// <summary>ReLU on int8 values (qparams pass through).</summary>
    ReLU,

    /// <summary>Element-wise add of two tensors, ReLU fused when followed by one.</summary>
    Add,

    /// <summary>Concatenation along a dimension (one shared set of qparams for every input).</summary>
    Cat,

    /// <summary>Max pooling (qparams pass through).</summary>
    MaxPool2d,

    /// <summary>Average pooling.</summary>
    AvgPool2d,

    /// <summary>Adaptive average pooling.</summary>
    AdaptiveAvgPool2d,

    /// <summary>Nearest-neighbour upsampling (qparams pass through).</summary>
    UpsampleNearest2d,

    /// <summary>Flatten (qparams pass through).</summary>
    Flatten,

    /// <summary>View/reshape (qparams pass through).</summary>
    Reshape,

    /// <summary>A <c>[NoQuantize]</c> member run in float between a dequantize and a quantize.</summary>
    FloatIsland,

    /// <summary>Hardtanh / ReLU6 on int8 data: a clamp with the input's qparams.</summary>
    Hardtanh,

    /// <summary>A unary elementwise op (LeakyReLU, Hardswish, Sigmoid, ...) by a 256-entry table.</summary>
    Elementwise,

    /// <summary>The product of two int8 tensors with broadcasting, requantized to its own qparams.</summary>
    Mul,

    /// <summary>An int8 tensor multiplied by or added to a constant (new qparams, integers copied or moved).</summary>
    ConstantOp,

    /// <summary>The mean over dims of an int8 tensor, with the input's qparams.</summary>
    Mean,
}

/// <summary>A member of the user's model folded into one node (e.g. <c>conv1</c>, <c>bn1</c> and <c>relu</c> of a fused conv).</summary>
/// <param name="Path">The member's path, PyTorch-style (<c>layer1.0.bn1</c>).</param>
/// <param name="ModuleType">Its TorchSharp module type name (<c>Conv2d</c>, <c>BatchNorm2d</c>, <c>ReLU</c>, or a functional such as <c>functional.relu</c>).</param>
/// <param name="Source">Where the user's forward uses it: <c>File.cs(29)</c>.</param>
public sealed record GraphMember(string Path, string ModuleType, string Source);

/// <summary>One op of the converted model, in forward order.</summary>
/// <param name="Name">The layer's name, as taps, reports and errors use it (<c>layer1.0.conv1</c>).</param>
/// <param name="Op">What it computes.</param>
/// <param name="Inputs">The values it reads (<c>input</c>, <c>t1</c>, ...).</param>
/// <param name="Output">The value it writes.</param>
/// <param name="Members">The user's members folded into it, first the op itself, then what was fused into it.</param>
/// <param name="Source">Where the user's forward runs it: <c>File.cs(29)</c>.</param>
public sealed record GraphNode(string Name, GraphOp Op, IReadOnlyList<string> Inputs, string Output, IReadOnlyList<GraphMember> Members, string Source)
{
    /// <summary>Whether more than one member of the user's model was folded into this op.</summary>
    public bool IsFused => Members.Count > 1;

    /// <inheritdoc/>
    public bool Equals(GraphNode? other) =>
        other is not null && Name == other.Name && Op == other.Op && Output == other.Output && Source == other.Source
        && Inputs.SequenceEqual(other.Inputs) && Members.SequenceEqual(other.Members);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Name, Op, Output);
}

/// <summary>
/// The graph of a converted model as the generator planned it: the int8 ops in forward order, the
/// values between them and the user's members each op stands for. Exporters, the model file,
/// reports and drawings read it.
/// </summary>
public sealed class ModelGraph
{
    private readonly GraphNode[] _nodes;

    /// <summary>Creates a graph.</summary>
    /// <param name="model">The model class's name.</param>
    /// <param name="hash">The generated graph's identity (<c>M.Quantized.GraphHash</c>).</param>
    /// <param name="input">The value name of the float input.</param>
    /// <param name="output">The value name of the result.</param>
    /// <param name="nodes">The ops in forward order.</param>
    public ModelGraph(string model, string hash, string input, string output, IEnumerable<GraphNode> nodes)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Hash = hash ?? throw new ArgumentNullException(nameof(hash));
        Input = input ?? throw new ArgumentNullException(nameof(input));
        Output = output ?? throw new ArgumentNullException(nameof(output));
        _nodes = (nodes ?? throw new ArgumentNullException(nameof(nodes))).ToArray();
    }

    /// <summary>The model class's name.</summary>
    public string Model { get; }

    /// <summary>The generated graph's identity: changes whenever the generated code of the model does.</summary>
    public string Hash { get; }

    /// <summary>The value name of the float input (quantized by the first node).</summary>
    public string Input { get; }

    /// <summary>The value name of the result (dequantized by the caller).</summary>
    public string Output { get; }

    /// <summary>The ops in forward order.</summary>
    public IReadOnlyList<GraphNode> Nodes => _nodes;

    /// <summary>The node of a layer, or null.</summary>
    /// <param name="name">The layer name (<c>layer1.0.conv1</c>).</param>
    /// <returns>The node, or null when the graph has no such layer.</returns>
    public GraphNode? Find(string name) => Array.Find(_nodes, n => n.Name == name);

    /// <summary>The node of a layer.</summary>
    /// <param name="name">The layer name.</param>
    /// <returns>The node.</returns>
    /// <exception cref="ArgumentException">The graph has no such layer (the message lists the ones it has).</exception>
    public GraphNode Get(string name) =>
        Find(name) ?? throw new ArgumentException(
            $"{Model}: no layer named '{name}'; the layers are {string.Join(", ", _nodes.Select(n => n.Name))}.", nameof(name));

    /// <summary>The nodes that read a value.</summary>
    /// <param name="value">A value name.</param>
    /// <returns>The readers in forward order.</returns>
    public IEnumerable<GraphNode> Readers(string value) => _nodes.Where(n => n.Inputs.Contains(value));

    /// <summary>The node that writes a value, or null for the graph's input.</summary>
    /// <param name="value">A value name.</param>
    /// <returns>The writer, or null.</returns>
    public GraphNode? Writer(string value) => Array.Find(_nodes, n => n.Output == value);

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Model} graph {Hash}: " + string.Join(" → ", _nodes.Select(n => $"{n.Name}({n.Op})"));
}
