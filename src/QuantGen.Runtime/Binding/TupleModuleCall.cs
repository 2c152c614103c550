using System;
using System.Linq;
using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Binding;

/// <summary>
/// A module call whose tuple <c>forward</c> takes apart (<c>var (output, h, c) = lstm.forward(x);</c>,
/// <c>var (a, _) = attn.call(x, x, x, null, false, null);</c>): each element read is an op of the bound graph, and the elements
/// of one call on one input tensor run the module once. The outputs are kept
/// beside the input tensor object itself (a weak table), so concurrent calls — which never share an input tensor — never share them.
/// </summary>
public sealed class TupleModuleCall
{
    private readonly ConditionalWeakTable<Tensor, Entry> _results = new();
    private readonly Func<Tensor[], Tensor[]> _run;

    private TupleModuleCall(nn.Module module, string typeName, string[] outputs, int[] inputCounts, Func<Tensor[], Tensor[]> run, int[]? slots = null)
    {
        Module = module;
        TypeName = typeName;
        Outputs = outputs;
        InputCounts = inputCounts;
        Slots = slots;
        _run = run;
    }

    /// <summary>The module called.</summary>
    public nn.Module Module { get; }

    /// <summary>Its type as PyTorch names it ("LSTM").</summary>
    public string TypeName { get; }

    /// <summary>The names of the tuple's elements, as PyTorch's documentation gives them ("output", "h_n", "c_n").</summary>
    public string[] Outputs { get; }

    /// <summary>How many tensors a call may take: the input alone, or with its initial state (LSTM: 1 or 3, GRU/RNN: 1 or 2).</summary>
    public int[] InputCounts { get; }

    /// <summary>
    /// For a call written with all its arguments (a MultiheadAttention's): per parameter of forward, the input it receives,
    /// −1 for null, or <see cref="ArgumentsCall.ConstantFalse"/>/<see cref="ArgumentsCall.ConstantTrue"/> for a bool; else null.
    /// </summary>
    public int[]? Slots { get; }

    /// <summary>The call for a module whose forward returns a tuple of tensors QuantGen knows, else null.</summary>
    /// <param name="module">The module a member holds.</param>
    /// <param name="slots">The call's slots as the generator wrote them (see <see cref="Slots"/>), or null for a recurrent call (the input, then the state).</param>
    public static TupleModuleCall? Create(nn.Module module, int[]? slots = null) => (module, slots) switch
    {
        // query, key, value, key_padding_mask, need_weights, attn_mask — as TorchSharp's forward takes them.
        (MultiheadAttention attention, { Length: 6 }) when IsAttentionCall(slots) => new(
            module,
            "MultiheadAttention",
            ["attn_output", "attn_output_weights"],
            [slots.Max() + 1],
            a =>
            {
                (Tensor output, Tensor weights) = attention.forward(a[slots[0]], a[slots[1]], a[slots[2]], ArgumentsCall.Argument(a, slots[3]), slots[4] == ArgumentsCall.ConstantTrue, ArgumentsCall.Argument(a, slots[5]));
                return [output, weights];
            },
            (int[])slots.Clone()),
        (_, not null) => null,

        // [x] starts from zeros, as PyTorch does; [x, h0, c0] / [x, h0] is the initial state forward wrote.
        (LSTM lstm, _) => new(module, "LSTM", ["output", "h_n", "c_n"], [1, 3], a =>
        {
            (Tensor output, Tensor h, Tensor c) = lstm.forward(a[0], a.Length == 3 ? (a[1], a[2]) : null);
            return [output, h, c];
        }),
        (GRU gru, _) => new(module, "GRU", ["output", "h_n"], [1, 2], a =>
        {
            (Tensor output, Tensor h) = gru.forward(a[0], a.Length == 2 ? a[1] : null);
            return [output, h];
        }),
        (RNN rnn, _) => new(module, "RNN", ["output", "h_n"], [1, 2], a =>
        {
            (Tensor output, Tensor h) = rnn.forward(a[0], a.Length == 2 ? a[1] : null);
            return [output, h];
        }),
        _ => null,
    };

    /// <summary>The same call running <paramref name="run"/> instead of the module (the dynamic int8 layer after Convert).</summary>
    internal TupleModuleCall With(Func<Tensor[], Tensor[]> run) => new(Module, TypeName, Outputs, InputCounts, run, Slots);

    /// <summary>Query, key and value are inputs, the masks inputs or null, need_weights a constant.</summary>
    private static bool IsAttentionCall(int[] slots) =>
        slots[0] >= 0 && slots[1] >= 0 && slots[2] >= 0 && slots[3] >= -1 && slots[5] >= -1
        && slots[4] is ArgumentsCall.ConstantFalse or ArgumentsCall.ConstantTrue;

    /// <summary>The call's outputs for <paramref name="inputs"/>: computed on the first element read, then reused for the others.</summary>
    /// <param name="inputs">The input tensor, then the initial state's tensors if forward gave them.</param>
    /// <returns>Every element of the tuple.</returns>
    public Tensor[] Run(params Tensor[] inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Length == 0 || Array.IndexOf(InputCounts, inputs.Length) < 0)
        {
            throw new ArgumentException($"{TypeName}: expected {string.Join(" or ", InputCounts)} tensors (the input, then the initial state), got {inputs.Length}.", nameof(inputs));
        }

        if (_results.TryGetValue(inputs[0], out Entry? entry) && SameTensors(entry.Inputs, inputs))
        {
            return entry.Outputs;
        }

        Tensor[] outputs = _run(inputs);
        _results.AddOrUpdate(inputs[0], new Entry((Tensor[])inputs.Clone(), outputs));
        return outputs;
    }

    private static bool SameTensors(Tensor[] a, Tensor[] b)
    {
        if (a.Length != b.Length)
        {
            return false;
        }

        for (int i = 0; i < a.Length; i++)
        {
            if (!ReferenceEquals(a[i], b[i]))
            {
                return false;
            }
        }

        return true;
    }

    private sealed record Entry(Tensor[] Inputs, Tensor[] Outputs);
}
