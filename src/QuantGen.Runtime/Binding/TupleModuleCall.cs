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
    private readonly ConditionalWeakTable<Tensor, Tensor[]> _results = new();
    private readonly Func<Tensor, Tensor[]> _run;

    private TupleModuleCall(nn.Module module, string typeName, string[] outputs, Func<Tensor, Tensor[]> run)
    {
        Module = module;
        TypeName = typeName;
        Outputs = outputs;
        _run = run;
    }

    /// <summary>The module called.</summary>
    public nn.Module Module { get; }

    /// <summary>Its type as PyTorch names it ("LSTM").</summary>
    public string TypeName { get; }

    /// <summary>The names of the tuple's elements, as PyTorch's documentation gives them ("output", "h_n", "c_n").</summary>
    public string[] Outputs { get; }

    /// <summary>The call for a module whose forward returns a tuple of tensors QuantGen knows, else null.</summary>
    /// <param name="module">The module a member holds.</param>
    public static TupleModuleCall? Create(nn.Module module) => module switch
    {
        // Initial states are left out, as the captured call did: zeros, as PyTorch starts.
        LSTM lstm => new(module, "LSTM", ["output", "h_n", "c_n"], x =>
        {
            (Tensor output, Tensor h, Tensor c) = lstm.forward(x);
            return [output, h, c];
        }),
        GRU gru => new(module, "GRU", ["output", "h_n"], x =>
        {
            (Tensor output, Tensor h) = gru.forward(x);
            return [output, h];
        }),
        RNN rnn => new(module, "RNN", ["output", "h_n"], x =>
        {
            (Tensor output, Tensor h) = rnn.forward(x, null);
            return [output, h];
        }),
        _ => null,
    };

    /// <summary>The same call running <paramref name="run"/> instead of the module (the dynamic int8 layer after Convert).</summary>
    internal TupleModuleCall With(Func<Tensor, Tensor[]> run) => new(Module, TypeName, Outputs, run);

    /// <summary>The call's outputs for <paramref name="input"/>: computed on the first element read, then reused for the others.</summary>
    /// <param name="input">The input tensor.</param>
    /// <returns>Every element of the tuple.</returns>
    public Tensor[] Run(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (_results.TryGetValue(input, out Tensor[]? outputs))
        {
            return outputs;
        }

        outputs = _run(input);
        _results.AddOrUpdate(input, outputs);
        return outputs;
    }
}
