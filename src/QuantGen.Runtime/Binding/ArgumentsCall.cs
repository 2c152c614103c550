using System;
using static TorchSharp.torch;

namespace QuantGen.Binding;

/// <summary>
/// A module called with several tensor arguments as the user's forward wrote it (<c>layer.call(x, null, padding)</c>):
/// the call's slots say which of the op's inputs each parameter receives (−1: null), and the module runs through
/// TorchSharp's <c>nn.IModule</c> interface of that arity.
/// </summary>
internal static class ArgumentsCall
{
    /// <summary>The slot of a bool parameter given the constant <c>false</c> (<c>need_weights: false</c>).</summary>
    public const int ConstantFalse = -2;

    /// <summary>The slot of a bool parameter given the constant <c>true</c>.</summary>
    public const int ConstantTrue = -3;

    /// <summary>The tensor a slot receives: an input, or null for a null slot.</summary>
    public static Tensor? Argument(Tensor[] inputs, int slot) => slot < 0 ? null : inputs[slot];

    /// <summary>The call, or null when the module does not take that many tensors.</summary>
    /// <param name="module">The module the member holds.</param>
    /// <param name="slots">Per parameter, the input index it receives, or −1 for null.</param>
    public static Func<Tensor[], Tensor>? Create(nn.Module module, int[] slots)
    {
        Tensor? Argument(Tensor[] inputs, int parameter) => slots[parameter] < 0 ? null : inputs[slots[parameter]];
        return (slots.Length, module) switch
        {
            (1, nn.IModule<Tensor, Tensor> one) => a => one.call(a[slots[0]]),
            (2, nn.IModule<Tensor, Tensor, Tensor> two) => a => two.call(a[slots[0]], Argument(a, 1)!),
            (3, nn.IModule<Tensor, Tensor, Tensor, Tensor> three) => a => three.call(a[slots[0]], Argument(a, 1)!, Argument(a, 2)!),
            (4, nn.IModule<Tensor, Tensor, Tensor, Tensor, Tensor> four) => a => four.call(a[slots[0]], Argument(a, 1)!, Argument(a, 2)!, Argument(a, 3)!),
            _ => null,
        };
    }
}
