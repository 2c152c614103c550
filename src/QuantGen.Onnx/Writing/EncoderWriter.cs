using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Onnx.Protobuf;
using static QuantGen.Onnx.Writing.OnnxGraphBuilder;

namespace QuantGen.Onnx.Writing;

/// <summary>
/// A dynamic Transformer encoder layer (<see cref="FloatOpKind.DynamicEncoderLayer"/>) or a stack of them
/// (<see cref="FloatOpKind.DynamicEncoder"/>), post-norm and sequence first as TorchSharp's layer (docs/numerics.md §12):
/// the four projections as the dynamic Linear's export (<see cref="WriteDynamicLinear"/> in the int8 forms,
/// <see cref="WriteDequantizedLinear"/> in the float form), and the attention, residual adds, LayerNorms and activation
/// as ONNX's float operators, as the int8 layer computes them in float32.
/// </summary>
internal sealed partial class ModelWriter
{
    private bool IsEncoder(GraphNode node) =>
        _layers.TryGetValue(node.Name, out IQuantizedLayer? layer) && StoredFloatOp(layer) is { Kind: FloatOpKind.DynamicEncoderLayer or FloatOpKind.DynamicEncoder };

    /// <summary>
    /// Why an encoder's mask cannot be written, or null when it has none or can. The attention mask (added to the
    /// scores) is read as any float value is: the model's input, or the result of an op the export writes. A value
    /// computed by forward's own C# (a tensor expression such as <c>ones(L, L).triu(1)</c> or <c>tokens.eq(0)</c>, or a
    /// constant) is run by the int8 model as code, which the file does not describe. The key padding mask is a bool tensor,
    /// and no op the export writes makes one: only such C# can, so it is always refused.
    /// </summary>
    private string? EncoderMaskRefusal(GraphNode node, FloatOp op)
    {
        int slots = op.Kind == FloatOpKind.DynamicEncoder ? 7 : 6;
        long mask = op.Ints[slots], padding = op.Ints[slots + 1];
        string? Unreadable(long input)
        {
            string value = node.Inputs[checked((int)input)];
            GraphNode? writer = _graph.Writer(value);
            if (writer is null || writer.Op != GraphOp.FloatIsland)
            {
                return null;
            }

            string source = string.Join(", ", writer.Members.Select(m => m.Source).Append(writer.Source).Where(s => !string.IsNullOrEmpty(s)).Distinct());
            return !_layers.TryGetValue(writer.Name, out IQuantizedLayer? layer) || StoredFloatOp(layer) is not { } written
                ? $"'{value}' is computed by forward's own code at {source} (a constant or an expression of no input), which ONNX export cannot see"
                : written.Kind == FloatOpKind.Function
                    ? $"'{value}' is computed by a tensor expression of forward ('{string.Join(", ", writer.Members.Select(m => m.Source))}'), C# that ONNX export cannot read"
                    : null;
        }

        if (padding > 0)
        {
            return $"its src_key_padding_mask {Unreadable(padding) ?? $"'{node.Inputs[checked((int)padding)]}' is not a bool tensor the export can write"}; " +
                "a key padding mask is a bool tensor, which only forward's own C# makes (tokens.eq(padding)), and ONNX export writes only the ops described as data. " +
                "Export a model that calls the layer without it, or give the mask as an additive float src_mask written by ops QuantGen describes";
        }

        return mask > 0 && Unreadable(mask) is { } why
            ? $"its src_mask {why}; ONNX export writes an attention mask that is the model's input or the result of an op it writes. Export a model that calls the layer without the mask"
            : null;
    }

    /// <summary>The encoder layer, or each layer of the stack in turn given the same attention mask; <paramref name="x"/> is the float source [length, batch, d_model], then the mask.</summary>
    private string WriteEncoder(GraphNode node, FloatOp op, string[] x)
    {
        bool stack = op.Kind == FloatOpKind.DynamicEncoder;
        int first = stack ? 1 : 0;
        int layers = stack ? checked((int)op.Ints[0]) : 1;
        int mask = checked((int)op.Ints[first + 6]);
        var shape = new EncoderShape(
            checked((int)op.Ints[first]),
            checked((int)op.Ints[first + 1]),
            (QuantGen.Dynamic.EncoderActivation)op.Ints[first + 3] == QuantGen.Dynamic.EncoderActivation.GELU,
            (float)op.Floats[0],
            mask > 0 ? x[mask] : null);
        string y = x[0];
        for (int layer = 0; layer < layers; layer++)
        {
            y = stack
                ? WriteEncoderLayer(op, $"layers.{layer}.", $"{node.Name}.layers.{layer}", y, shape)
                : WriteEncoderLayer(op, "", node.Name, y, shape);
        }

        return y;
    }

    /// <summary>
    /// One post-norm encoder layer on <c>[length, batch, d_model]</c>:
    /// <code>
    /// q, k, v = Split(in_proj(x))                          each [L, B, d]
    /// q_h, k_h, v_h = heads of q · (1/√head_dim), k, v      Reshape [L, B·H, head_dim], Transpose to [B·H, L, head_dim] (k: [B·H, head_dim, L])
    /// a = MatMul(Softmax(MatMul(q_h, k_h) + mask), v_h)    [B·H, L, head_dim]
    /// x = LayerNormalization(x + out_proj(merge(a)))        merge: Transpose to [L, B·H, head_dim], Reshape [L, B, d]
    /// y = LayerNormalization(x + linear2(act(linear1(x))))
    /// </code>
    /// Row b·H + h of the merged batch is head h of sequence b, as libtorch's <c>view(L, B·H, head_dim)</c> makes it; the
    /// length and batch stay whatever the input's are (Reshape copies dimension 0 and infers the merged one). q is scaled
    /// before the products, libtorch's order.
    /// </summary>
    /// <param name="op">The encoder op holding the tensors.</param>
    /// <param name="tensors">The layer's tensor prefix ("" or "layers.{i}.").</param>
    /// <param name="name">The layer's name in the ONNX graph.</param>
    /// <param name="x">The float input.</param>
    /// <param name="shape">d_model, heads, activation, eps and the float attention mask (null: none).</param>
    private string WriteEncoderLayer(FloatOp op, string tensors, string name, string x, EncoderShape shape)
    {
        int d = shape.ModelDim, headDim = d / shape.Heads;
        string Node(string type, IEnumerable<string> operands, params AttributeProto[] attributes) =>
            _builder.Node(type, name + "/" + type, operands, name + "/" + type.ToLowerInvariant(), attributes);
        string Shape(string what, params long[] dims) => _builder.Initializer($"{name}.{what}_shape", Int64([dims.Length], dims));
        string Projection(string which, string input)
        {
            string projection = $"{name}.{which}";
            string ProjectionNode(string type, IEnumerable<string> operands, AttributeProto[] attributes) =>
                _builder.Node(type, projection + "/" + type, operands, projection + "/" + type.ToLowerInvariant(), attributes);
            return Quantized
                ? WriteDynamicLinear(op, input, projection, ProjectionNode, tensors + which + ".")
                : WriteDequantizedLinear(op, input, projection, 3, ProjectionNode, tensors + which + ".");
        }

        string Norm(string which, string residual, string update)
        {
            string sum = Node("Add", [residual, update]);
            string weight = _builder.Initializer($"{name}.{which}.weight", Float([d], op.Tensor($"{tensors}{which}.weight")!.Values));
            string bias = _builder.Initializer($"{name}.{which}.bias", Float([d], op.Tensor($"{tensors}{which}.bias")!.Values));
            return Node("LayerNormalization", [sum, weight, bias], Int("axis", -1), Float("epsilon", shape.Eps));
        }

        // Attention.
        string qkv = Projection("in_proj", x);
        string[] parts = _builder.NodeWithOutputs("Split", name + "/Split", [qkv, _builder.Initializer(name + ".split", Int64([3], [d, d, d]))], [name + "/q", name + "/k", name + "/v"], Int("axis", -1));
        string scaling = _builder.Initializer(name + ".scaling", Float([], [(float)(1.0 / Math.Sqrt(headDim))]));
        string headShape = Shape("heads", 0, -1, headDim);
        string Heads(string value, params long[] perm) => Node("Transpose", [Node("Reshape", [value, headShape])], Ints("perm", perm));
        string queries = Heads(Node("Mul", [parts[0], scaling]), 1, 0, 2);
        string keys = Heads(parts[1], 1, 2, 0);
        string values = Heads(parts[2], 1, 0, 2);
        string scores = Node("MatMul", [queries, keys]);
        if (shape.Mask is { } mask)
        {
            // [L, L] broadcast over the B·H heads: added to the scores (−∞ masks), as libtorch adds src_mask.
            scores = Node("Add", [scores, mask]);
        }

        string attended = Node("MatMul", [Node("Softmax", [scores], Int("axis", -1)), values]);
        string merged = Node("Reshape", [Node("Transpose", [attended], Ints("perm", 1, 0, 2)), Shape("merged", 0, -1, d)]);
        string normalized = Norm("norm1", x, Projection("out_proj", merged));

        // Feed-forward.
        string hidden = Projection("linear1", normalized);
        hidden = shape.Gelu ? WriteExactGelu(hidden, name, Node) : Node("Relu", [hidden]);
        return Norm("norm2", normalized, Projection("linear2", hidden));
    }

    /// <summary>
    /// The exact (erf) GELU libtorch's encoder layer uses: ONNX's <c>Gelu</c> from opset 20, and below it its definition
    /// <c>x · ½ · (1 + erf(x · (1/√2)))</c> in Mul, Erf and Add, which opset 17 (the LayerNorms' minimum) has.
    /// </summary>
    private string WriteExactGelu(string x, string name, Func<string, IEnumerable<string>, AttributeProto[], string> node)
    {
        if (_options.Opset >= 20)
        {
            return node("Gelu", [x], [String("approximate", "none")]);
        }

        string Scalar(string what, float value) => _builder.Initializer($"{name}.gelu_{what}", Float([], [value]));
        string erf = node("Erf", [node("Mul", [x, Scalar("sqrt1_2", (float)(1.0 / Math.Sqrt(2.0)))], [])], []);
        string onePlus = node("Add", [erf, Scalar("one", 1f)], []);
        return node("Mul", [node("Mul", [x, Scalar("half", 0.5f)], []), onePlus], []);
    }

    /// <summary>What every layer of an encoder op shares: d_model, nhead, the activation (GELU or ReLU), LayerNorm's eps and the attention mask's float value.</summary>
    private sealed record EncoderShape(int ModelDim, int Heads, bool Gelu, float Eps, string? Mask);
}
