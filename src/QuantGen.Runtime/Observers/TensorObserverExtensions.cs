using System;
using TorchSharp;

namespace QuantGen.Observers;

/// <summary>The TorchSharp adapter for observers: the generated Observed forms call these.</summary>
public static class TensorObserverExtensions
{
    /// <summary>Records a float tensor (any device or layout) and returns it unchanged.</summary>
    public static torch.Tensor Observe(this Observer observer, torch.Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(observer);
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.dtype != torch.ScalarType.Float32)
        {
            throw new ArgumentException($"{observer.Layer}: observers take float32 tensors, got {tensor.dtype}.");
        }

        using var cpu = tensor.detach().cpu().contiguous();
        float[] values = cpu.data<float>().ToArray();
        int[] shape = Array.ConvertAll(cpu.shape, d => checked((int)d));
        observer.Observe(values, shape);
        return tensor;
    }
}
