using System;
using System.Threading;
using static TorchSharp.torch;

namespace QuantGen.Qat;

/// <summary>
/// Notes that a gradient with a NaN reached a fake quantize in a backward pass. The backward runs inside libtorch's
/// autograd engine, where an exception cannot be thrown safely, so the fake quantize only records it there; the next
/// forward of the fake quantize (or of the QAT model holding it) throws, naming the quantization point.
/// </summary>
public sealed class GradientWatch
{
    private int _nanBackwards;

    /// <summary>The quantization point watched, "Model.member".</summary>
    /// <param name="layer">Named in the error.</param>
    public GradientWatch(string layer)
    {
        ArgumentException.ThrowIfNullOrEmpty(layer);
        Layer = layer;
    }

    /// <summary>The quantization point, "Model.member".</summary>
    public string Layer { get; }

    /// <summary>True once a backward pass brought a NaN gradient here (until <see cref="Reset"/>).</summary>
    public bool NaNSeen => Volatile.Read(ref _nanBackwards) > 0;

    /// <summary>Forgets a NaN seen before (after the caller restored finite weights, say).</summary>
    public void Reset() => Interlocked.Exchange(ref _nanBackwards, 0);

    /// <summary>Throws when a NaN gradient was seen.</summary>
    /// <exception cref="InvalidOperationException">A backward pass brought a NaN gradient to this quantization point.</exception>
    public void ThrowIfNaNSeen()
    {
        if (NaNSeen)
        {
            throw new InvalidOperationException(
                $"{Layer}: a NaN gradient reached this fake quantize in an earlier backward pass, so the optimizer has updated the weights with NaN. " +
                "The loss overflowed or the learning rate is too high; restore the weights from a checkpoint and lower the learning rate (then call Reset on the watch, or prepare again).");
        }
    }

    /// <summary>Called in the backward: records whether <paramref name="gradient"/> holds a NaN.</summary>
    internal void Check(Tensor gradient)
    {
        using Tensor nan = gradient.isnan();
        using Tensor any = nan.any();
        if (any.item<bool>())
        {
            ReportNaN();
        }
    }

    /// <summary>Called in the backward when a NaN was found there.</summary>
    internal void ReportNaN() => Interlocked.Increment(ref _nanBackwards);
}
