using System;
using System.Runtime.InteropServices;
using TorchSharp;

namespace QuantGen.Observers;

/// <summary>The TorchSharp adapter for observers: the generated Observed forms call these.</summary>
public static class TensorObserverExtensions
{
    /// <summary>Records a float tensor (any device or layout) and returns it unchanged; records nothing while <see cref="Observation.Pause"/> is in effect on this thread.</summary>
    public static torch.Tensor Observe(this Observer observer, torch.Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(observer);
        ArgumentNullException.ThrowIfNull(tensor);
        if (Observation.IsPaused)
        {
            return tensor;
        }

        if (tensor.dtype != torch.ScalarType.Float32)
        {
            throw new ArgumentException($"{observer.Layer}: observers take float32 tensors, got {tensor.dtype}.");
        }

        using var cpu = tensor.detach().cpu().contiguous();
        int[] shape = Array.ConvertAll(cpu.shape, d => checked((int)d));
        observer.Observe(ContiguousValues(cpu), shape);
        return tensor;
    }

    /// <summary>
    /// Records <c>relu(tensor)</c> without computing it (<see cref="Observer.TryObserveRectified"/>); false when the observer
    /// needs the rectified values themselves. Records nothing (and returns true) while <see cref="Observation.Pause"/> is in effect.
    /// </summary>
    public static bool TryObserveRectified(this Observer observer, torch.Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(observer);
        ArgumentNullException.ThrowIfNull(tensor);
        if (Observation.IsPaused)
        {
            return true;
        }

        if (tensor.dtype != torch.ScalarType.Float32)
        {
            throw new ArgumentException($"{observer.Layer}: observers take float32 tensors, got {tensor.dtype}.");
        }

        using var cpu = tensor.detach().cpu().contiguous();
        int[] shape = Array.ConvertAll(cpu.shape, d => checked((int)d));
        return observer.TryObserveRectified(ContiguousValues(cpu), shape);
    }

    /// <summary>
    /// The values of a contiguous float32 CPU tensor, read in place through <c>Tensor.bytes</c> (a view of its
    /// storage): copying them out with <c>data&lt;float&gt;().ToArray()</c> cost 7–24 ns per element here, several
    /// times what the histogram observer itself spends, and made calibration much slower than the float forward.
    /// The span is valid while <paramref name="contiguous"/> is alive and unchanged.
    /// </summary>
    private static ReadOnlySpan<float> ContiguousValues(torch.Tensor contiguous) =>
        contiguous.numel() == 0 ? ReadOnlySpan<float>.Empty : MemoryMarshal.Cast<byte, float>(contiguous.bytes);
}
