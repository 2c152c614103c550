using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Binding;

/// <summary>What a bound op is, decided from the running module's type (or the captured function).</summary>
public enum BoundKind
{
    /// <summary>Conv2d, with a following BatchNorm2d folded and a ReLU fused when the graph allows.</summary>
    Conv2d,

    /// <summary>Linear, with a following ReLU fused.</summary>
    Linear,

    /// <summary>ConvTranspose2d, with a following BatchNorm2d folded and a ReLU fused.</summary>
    ConvTranspose2d,

    /// <summary>A BatchNorm2d no conv absorbed, with a following ReLU fused.</summary>
    BatchNorm2d,

    /// <summary>ReLU (module or function) that nothing absorbed.</summary>
    ReLU,

    /// <summary>Hardtanh / ReLU6 (module or function): a clamp in the integers with the input's qparams.</summary>
    Hardtanh,

    /// <summary>A unary elementwise module (LeakyReLU, Hardswish, Hardsigmoid, SiLU, Sigmoid, Tanh, ELU, GELU, ...): a table in int8.</summary>
    Elementwise,

    /// <summary>MaxPool2d module.</summary>
    MaxPool2d,

    /// <summary>AvgPool2d module.</summary>
    AvgPool2d,

    /// <summary>AdaptiveAvgPool2d module.</summary>
    AdaptiveAvgPool2d,

    /// <summary>Flatten module or function.</summary>
    Flatten,

    /// <summary>view / reshape with constant sizes.</summary>
    Reshape,

    /// <summary>Tensor addition, with a following ReLU fused.</summary>
    Add,

    /// <summary>torch.cat.</summary>
    Cat,

    /// <summary>Tensor × tensor with broadcasting (its own output observer).</summary>
    Mul,

    /// <summary>A tensor multiplied by a constant (Floats = [c]): output qparams follow from the input's.</summary>
    MulConstant,

    /// <summary>A constant added to a tensor (Floats = [c]): output qparams follow from the input's.</summary>
    AddConstant,

    /// <summary>Mean over dims (Ints = [keepdim ? 1 : 0, dims...]): the input's qparams.</summary>
    Mean,

    /// <summary>A module with no int8 op: runs in float between dequantize and quantize.</summary>
    FloatModule,

    /// <summary>A tensor expression with no int8 op: runs in float.</summary>
    FloatFunction,
}

/// <summary>One op of the bound graph: a module call bound to the instance's module, or a function.</summary>
public sealed class BoundOp
{
    internal BoundOp(BoundKind kind, string name, int[] inputs, int output, string source, string text)
    {
        Kind = kind;
        Name = name;
        Inputs = inputs;
        Output = output;
        Source = source;
        Text = text;
    }

    /// <summary>What the op is.</summary>
    public BoundKind Kind { get; internal set; }

    /// <summary>The op's layer name: the module's PyTorch-style path ("layer1.0.conv1"), or scope + function ("layer1.0.add").</summary>
    public string Name { get; }

    /// <summary>The values read (0 is the model input).</summary>
    public int[] Inputs { get; }

    /// <summary>The value written; after fusion, the last fused op's value.</summary>
    public int Output { get; internal set; }

    /// <summary>Where the user wrote the call.</summary>
    public string Source { get; }

    /// <summary>The statement as written.</summary>
    public string Text { get; }

    /// <summary>The module the call is bound to (null for functions).</summary>
    public nn.Module? Module { get; internal init; }

    /// <summary>A BatchNorm (2d) folded into this conv, with its path.</summary>
    public (string Path, nn.Module Module)? FusedBatchNorm { get; internal set; }

    /// <summary>The path of the ReLU fused into this op, or null.</summary>
    public string? FusedRelu { get; internal set; }

    /// <summary>Constant arguments (Cat's dim, Flatten's dims, Reshape's shape).</summary>
    public int[] Ints { get; internal init; } = Array.Empty<int>();

    /// <summary>Constant float arguments (Hardtanh's min_val and max_val).</summary>
    public float[] Floats { get; internal init; } = Array.Empty<float>();

    /// <summary>The float expression of a <see cref="BoundKind.FloatFunction"/>.</summary>
    public Func<Tensor[], Tensor>? Function { get; internal init; }

    /// <summary>For one element of an LSTM/GRU/RNN call (Ints = [element]): the call, shared by the elements read from it.</summary>
    public TupleModuleCall? TupleCall { get; internal init; }

    /// <summary>The captured forward that holds a <see cref="BoundKind.FloatFunction"/>'s expression (a file refers to it by class and node).</summary>
    public CapturedForward? FunctionOwner { get; internal init; }

    /// <summary>For a float function that reads number members of the module: their values, read at Prepare.</summary>
    public double[] ScalarValues { get; internal init; } = Array.Empty<double>();

    /// <summary>The index of the expression's node in <see cref="FunctionOwner"/>.</summary>
    public int FunctionNode { get; internal init; } = -1;

    /// <summary>Why a float op stays in float ("no int8 op for LeakyReLU", "[NoQuantize]", "qconfig None").</summary>
    public string? FloatReason { get; internal set; }

    /// <summary>The module type's name as PyTorch users know it ("Conv2d"), or the function.</summary>
    public string TypeName { get; internal init; } = string.Empty;

    /// <summary>Every user member this op stands for (a fused op stands for several), with where it was called.</summary>
    public List<GraphMember> Members { get; } = new();

    /// <summary>True when the op runs in float in the converted model.</summary>
    public bool IsFloat => Kind is BoundKind.FloatModule or BoundKind.FloatFunction;

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {Kind}{(FusedBatchNorm is null ? "" : "+BatchNorm2d")}{(FusedRelu is null ? "" : "+ReLU")} ({Source})";
}

/// <summary>
/// A captured forward bound to one model instance: containers unrolled, modules resolved to their runtime
/// types, fusions applied. What <c>Prepare()</c> plans quantization on.
/// </summary>
public sealed class BoundGraph
{
    internal BoundGraph(string model, IReadOnlyList<BoundOp> ops, int valueCount, int result)
    {
        Model = model;
        Ops = ops;
        ValueCount = valueCount;
        Result = result;
    }

    /// <summary>The model's name.</summary>
    public string Model { get; }

    /// <summary>Ops in evaluation order.</summary>
    public IReadOnlyList<BoundOp> Ops { get; }

    /// <summary>How many values there are (value 0 is the input).</summary>
    public int ValueCount { get; }

    /// <summary>The value the model returns.</summary>
    public int Result { get; }

    /// <summary>A stable identity of what was bound: op kinds, names, fusions and edges.</summary>
    public string Hash()
    {
        // FNV-1a over a canonical text: stable across processes (string.GetHashCode is not).
        ulong hash = 14695981039346656037UL;
        void Mix(string text)
        {
            foreach (char c in text)
            {
                hash = (hash ^ c) * 1099511628211UL;
            }

            hash = (hash ^ '|') * 1099511628211UL;
        }

        foreach (BoundOp op in Ops)
        {
            Mix(op.Kind.ToString());
            Mix(op.Name);
            Mix(op.TypeName);
            Mix(string.Join(",", op.Inputs));
            Mix(op.Output.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Mix(op.FusedBatchNorm?.Path ?? "");
            Mix(op.FusedRelu ?? "");
            Mix(string.Join(",", op.Ints));
            Mix(string.Join(",", op.Floats.Select(f => f.ToString("R", System.Globalization.CultureInfo.InvariantCulture))));
        }

        Mix(Result.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return hash.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <inheritdoc/>
    public override string ToString() => string.Join(Environment.NewLine, Ops.Select(o => o.ToString()));
}
