using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.ComponentModel;
using static TorchSharp.torch;

namespace QuantGen.Binding;

/// <summary>What one node of a captured <c>forward</c> does.</summary>
public enum CapturedOp
{
    /// <summary><c>member.forward(x)</c> / <c>member.call(x)</c>: bound at Prepare to whatever module the member holds.</summary>
    Call,

    /// <summary><c>foreach (var m in member) x = m.forward(x);</c> (or the <c>for</c> form): each child of the container in turn.</summary>
    Loop,

    /// <summary><c>a + b</c>, <c>torch.add</c>, <c>add_</c>, <c>+=</c>.</summary>
    Add,

    /// <summary><c>functional.relu(x)</c>, <c>x.relu()</c>, <c>relu_</c>.</summary>
    Relu,

    /// <summary><c>torch.cat(tensors, dim)</c>; Ints = [dim].</summary>
    Cat,

    /// <summary><c>flatten(start, end)</c>, <c>x.view(x.shape[0], -1)</c>; Ints = [start, end].</summary>
    Flatten,

    /// <summary><c>view</c>/<c>reshape</c> with constant sizes; Ints = the shape.</summary>
    Reshape,

    /// <summary>Returns its input: <c>MoveToOuterDisposeScope()</c>, <c>contiguous()</c>, <c>detach()</c>.</summary>
    Identity,

    /// <summary><c>functional.relu6</c>, <c>functional.hardtanh</c>, <c>clamp</c> with constant bounds; Floats = [min, max].</summary>
    Hardtanh,

    /// <summary><c>functional.adaptive_avg_pool2d(x, size)</c> with a constant size; Ints = [height, width].</summary>
    AdaptiveAvgPool2d,

    /// <summary>Any other tensor expression: runs in float through the delegate the generator wrote from the source.</summary>
    Float,

    /// <summary>A value chosen by a construction-time condition; Inputs = [then, else].</summary>
    Select,

    /// <summary><c>a * b</c>, <c>torch.mul(a, b)</c>, <c>a.mul(b)</c>, <c>mul_</c>, <c>*=</c> of two tensors (broadcasting).</summary>
    Mul,

    /// <summary><c>x * c</c>, <c>c * x</c>, <c>x.mul(c)</c>, <c>torch.mul(x, c)</c> with a constant c; Floats = [c].</summary>
    MulConstant,

    /// <summary><c>x + c</c>, <c>c + x</c>, <c>x.add(c)</c>, <c>torch.add(x, c)</c> with a constant c; Floats = [c].</summary>
    AddConstant,

    /// <summary><c>x.mean(dims, keepdim)</c> / <c>torch.mean(x, dims, keepdim)</c> with constant dims; Ints = [keepdim ? 1 : 0, dims...].</summary>
    Mean,

    /// <summary>
    /// One element of a module call that returns a tuple of tensors (<c>var (output, h, c) = lstm.forward(x);</c>,
    /// <c>gru.forward(x).Item1</c>); Ints = [element, element count]. Elements of one call on one input run the module once.
    /// </summary>
    CallItem,

    /// <summary>
    /// A forward parameter after the first (<c>forward(x, skip)</c> of a module of several tensors); Ints = [its position,
    /// 1 or more]. Inlined at Prepare as the value the call passes there.
    /// </summary>
    Parameter,
}

/// <summary>How a construction-time condition is decided at Prepare.</summary>
public enum CapturedConditionKind
{
    /// <summary>A constant.</summary>
    Constant,

    /// <summary><c>member is null</c> / <c>member == null</c>.</summary>
    MemberIsNull,

    /// <summary><c>member is not null</c> / <c>member != null</c>.</summary>
    MemberIsNotNull,

    /// <summary>A readonly bool field or get-only bool property of the module.</summary>
    BoolMember,
}

/// <summary>A condition of forward that depends only on how the module was built (decided once, at Prepare).</summary>
/// <param name="Kind">How it is decided.</param>
/// <param name="Member">The member it reads ("" for a constant).</param>
/// <param name="Constant">The value of a constant condition.</param>
/// <param name="Text">The condition as written.</param>
public sealed record CapturedCondition(CapturedConditionKind Kind, string Member, bool Constant, string Text);

/// <summary>One node of a captured forward: node i produces value i + 1 (value 0 is forward's parameter).</summary>
/// <param name="Op">What it does.</param>
/// <param name="Inputs">The values it reads.</param>
/// <param name="Member">The member called (Call, Loop), else "".</param>
/// <param name="Ints">Constant arguments (Cat's dim, Flatten's dims, Reshape's shape).</param>
/// <param name="Float">For <see cref="CapturedOp.Float"/>: the expression, over the input tensors in order.</param>
/// <param name="Condition">Index of the construction-time condition guarding the node, or -1 (for Select: the condition chosen on).</param>
/// <param name="Negated">The node runs when the condition is false.</param>
/// <param name="Source">"File.cs(12)": where the user wrote it.</param>
/// <param name="Text">The statement or expression as written.</param>
/// <param name="Floats">Constant float arguments (Hardtanh's bounds).</param>
/// <param name="FloatOf">For a <see cref="CapturedOp.Float"/> expression that reads number members of the module: the
/// expression over the input tensors and the members' values, in the order of <paramref name="Scalars"/>.</param>
/// <param name="Scalars">The number and bool members <paramref name="FloatOf"/> reads, read once at Prepare.</param>
public sealed record CapturedNode(
    CapturedOp Op,
    int[] Inputs,
    string Member = "",
    int[]? Ints = null,
    Func<Tensor[], Tensor>? Float = null,
    int Condition = -1,
    bool Negated = false,
    string Source = "",
    string Text = "",
    float[]? Floats = null,
    Func<Tensor[], double[], Tensor>? FloatOf = null,
    string[]? Scalars = null);

/// <summary>
/// A module class's <c>forward</c> as the generator captured it from source: a graph of calls whose module
/// calls name members, not types. <c>Prepare()</c> binds it to the running instance (<see cref="ModelBinder"/>).
/// </summary>
public sealed class CapturedForward
{
    /// <summary>Creates a captured forward (generated code calls this).</summary>
    /// <param name="moduleType">The class whose forward this is.</param>
    /// <param name="nodes">Nodes in evaluation order.</param>
    /// <param name="result">The value forward returns.</param>
    /// <param name="conditions">Construction-time conditions the nodes refer to.</param>
    /// <param name="noQuantize">Members marked [NoQuantize]: their calls stay in float whatever they hold.</param>
    public CapturedForward(Type moduleType, CapturedNode[] nodes, int result, CapturedCondition[]? conditions = null, string[]? noQuantize = null)
    {
        ModuleType = moduleType ?? throw new ArgumentNullException(nameof(moduleType));
        Nodes = nodes ?? throw new ArgumentNullException(nameof(nodes));
        if (result < 0 || result > nodes.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(result), $"{moduleType.Name}: the result value {result} is not produced by the {nodes.Length} nodes.");
        }

        Result = result;
        Conditions = conditions ?? Array.Empty<CapturedCondition>();
        NoQuantize = noQuantize ?? Array.Empty<string>();
        ParameterCount = 1;
        foreach (CapturedNode node in nodes)
        {
            if (node.Op == CapturedOp.Parameter)
            {
                if (node.Ints is not { Length: 1 } || node.Ints[0] < 1)
                {
                    throw new ArgumentException($"{moduleType.Name}: a Parameter node names its position (1 or more) as its one constant.", nameof(nodes));
                }

                ParameterCount = Math.Max(ParameterCount, node.Ints[0] + 1);
            }
        }
    }

    /// <summary>How many tensors forward takes: 1, or more for a module of several tensors (its Parameter nodes).</summary>
    public int ParameterCount { get; }

    /// <summary>The class whose forward this is.</summary>
    public Type ModuleType { get; }

    /// <summary>Nodes in evaluation order; node i produces value i + 1.</summary>
    public IReadOnlyList<CapturedNode> Nodes { get; }

    /// <summary>The value forward returns.</summary>
    public int Result { get; }

    /// <summary>Construction-time conditions.</summary>
    public IReadOnlyList<CapturedCondition> Conditions { get; }

    /// <summary>Members marked [NoQuantize].</summary>
    public IReadOnlyList<string> NoQuantize { get; }

    /// <summary>
    /// A stable identity of the captured forward (ops, edges, members, constants, conditions): a <c>.qgen</c> file
    /// records it, so a file saved before the model's code changed is refused.
    /// </summary>
    public string Hash => _hash ??= ComputeHash();

    private string? _hash;

    private string ComputeHash()
    {
        // FNV-1a over a canonical text: stable across processes, unlike string.GetHashCode.
        ulong hash = 14695981039346656037UL;
        void Mix(string text)
        {
            foreach (char c in text)
            {
                hash = (hash ^ c) * 1099511628211UL;
            }

            hash = (hash ^ '|') * 1099511628211UL;
        }

        Mix(ModuleType.FullName ?? ModuleType.Name);
        foreach (CapturedNode node in Nodes)
        {
            Mix(node.Op.ToString());
            Mix(string.Join(",", node.Inputs));
            Mix(node.Member);
            Mix(string.Join(",", node.Ints ?? Array.Empty<int>()));
            Mix(string.Join(",", node.Floats ?? Array.Empty<float>()));
            Mix(node.Text);
            Mix(node.Condition + (node.Negated ? "!" : ""));
            if (node.Scalars is { Length: > 0 } scalars)
            {
                Mix(string.Join(",", scalars));
            }
        }

        foreach (CapturedCondition condition in Conditions)
        {
            Mix(condition.Kind + condition.Member + condition.Constant);
        }

        Mix(Result.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return "bound-" + hash.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// The forwards the generator captured, by class: a module of such a class met while binding is inlined
/// (as FX traces through a user's submodule); any other module without an int8 op runs in float.
/// Generated code registers every module class of the compilation from a module initializer.
/// </summary>
public static class CapturedModules
{
    private static readonly ConcurrentDictionary<Type, CapturedForward> s_forwards = new();
    private static readonly ConcurrentDictionary<Type, string> s_notCaptured = new();

    /// <summary>Registers a class's captured forward.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public static void Register(CapturedForward forward)
    {
        ArgumentNullException.ThrowIfNull(forward);
        s_forwards[forward.ModuleType] = forward;
    }

    /// <summary>Records why a module class's forward could not be captured (it then runs in float as a whole).</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public static void RegisterNotCaptured(Type moduleType, string reason)
    {
        ArgumentNullException.ThrowIfNull(moduleType);
        s_notCaptured[moduleType] = reason ?? string.Empty;
    }

    /// <summary>The captured forward of <paramref name="moduleType"/>, if the generator captured one.</summary>
    public static CapturedForward? Find(Type moduleType) =>
        s_forwards.TryGetValue(moduleType, out CapturedForward? forward) ? forward : null;

    /// <summary>The captured forward of the class with this full name (a saved float expression names its class so), if registered.</summary>
    /// <param name="fullName">The class's <see cref="Type.FullName"/>.</param>
    public static CapturedForward? FindByName(string fullName)
    {
        foreach (KeyValuePair<Type, CapturedForward> entry in s_forwards)
        {
            if (string.Equals(entry.Key.FullName, fullName, StringComparison.Ordinal))
            {
                return entry.Value;
            }
        }

        return null;
    }

    /// <summary>Why the generator could not capture <paramref name="moduleType"/>'s forward, if it tried.</summary>
    public static string? WhyNotCaptured(Type moduleType) =>
        s_notCaptured.TryGetValue(moduleType, out string? reason) ? reason : null;
}
