using System;
using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Binding;

/// <summary>
/// A recurrent module's call whose tuple <c>forward</c> takes apart (<c>var (output, h, c) = lstm.forward(x);</c>): each element
/// read is an op of the bound graph, and the elements of one call on one input tensor run the module once. The outputs are kept
/// beside the input tensor object itself (a weak table), so concurrent calls — which never share an input tensor — never share them.
/// </summary>
public sealed class TupleModuleCall
{
    private readonly ConditionalWeakTable<Tensor, Entry> _results = new();
    private readonly Func<Tensor[], Tensor[]> _run;

    private TupleModuleCall(nn.Module module, string typeName, string[] outputs, int[] inputCounts, Func<Tensor[], Tensor[]> run)
    {
        Module = module;
        TypeName = typeName;
        Outputs = outputs;
        InputCounts = inputCounts;
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

    /// <summary>The call for a module whose forward returns a tuple of tensors QuantGen knows, else null.</summary>
    /// <param name="module">The module a member holds.</param>
    public static TupleModuleCall? Create(nn.Module module) => module switch
    {
        // [x] starts from zeros, as PyTorch does; [x, h0, c0] / [x, h0] is the initial state forward wrote.
        LSTM lstm => new(module, "LSTM", ["output", "h_n", "c_n"], [1, 3], a =>
        {
            (Tensor output, Tensor h, Tensor c) = lstm.forward(a[0], a.Length == 3 ? (a[1], a[2]) : null);
            return [output, h, c];
        }),
        GRU gru => new(module, "GRU", ["output", "h_n"], [1, 2], a =>
        {
            (Tensor output, Tensor h) = gru.forward(a[0], a.Length == 2 ? a[1] : null);
            return [output, h];
        }),
        RNN rnn => new(module, "RNN", ["output", "h_n"], [1, 2], a =>
        {
            (Tensor output, Tensor h) = rnn.forward(a[0], a.Length == 2 ? a[1] : null);
            return [output, h];
        }),
        _ => null,
    };

    /// <summary>The same call running <paramref name="run"/> instead of the module (the dynamic int8 layer after Convert).</summary>
    internal TupleModuleCall With(Func<Tensor[], Tensor[]> run) => new(Module, TypeName, Outputs, InputCounts, run);

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
