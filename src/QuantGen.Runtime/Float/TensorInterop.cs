using System;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// Float tensors ↔ arrays, for the generated Quantized forward's Tensor overload and for reading
/// module parameters. Arrays are always float32 in logical row-major order (PyTorch's, NCHW for images).
/// </summary>
public static class TensorInterop
{
    /// <summary>
    /// A copy of the values of a float32 tensor in logical row-major order, and its shape. Tensors on
    /// another device or with a non-contiguous layout are copied to CPU row-major first; the tensor itself
    /// is not changed.
    /// </summary>
    /// <exception cref="ArgumentException">The tensor is not float32 (the message names its dtype).</exception>
    public static float[] ToArray(Tensor tensor, out int[] shape)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.dtype != ScalarType.Float32)
        {
            throw new ArgumentException($"TensorInterop: expected a Float32 tensor, got {tensor.dtype} {TorchText.Shape(ToIntShape(tensor.shape))}.", nameof(tensor));
        }

        shape = ToIntShape(tensor.shape);
        long count = tensor.numel();
        if (count > Array.MaxLength)
        {
            throw new ArgumentException($"TensorInterop: tensor {TorchText.Shape(shape)} holds {count} values, more than a .NET array can ({Array.MaxLength}).", nameof(tensor));
        }

        // An empty tensor (a batch of 0, an empty plane) has no storage to read: TorchSharp's data<T>()
        // throws ArgumentOutOfRangeException("startingIndex") for it. Its values are simply none.
        if (count == 0)
        {
            return [];
        }

        return CopyOutRowMajor<float>(tensor, count);
    }

    /// <summary>
    /// The values of any tensor of <typeparamref name="T"/>'s dtype in logical row-major order: straight from its storage
    /// when it is a contiguous CPU tensor (what float ops hand on), else through a row-major CPU copy. The direct read
    /// skips three TorchSharp calls (detach, cpu, contiguous), each a new tensor handle in a dispose scope — a few
    /// microseconds per float op, which a small model at batch 1 pays dozens of times per forward.
    /// </summary>
    private static T[] CopyOutRowMajor<T>(Tensor tensor, long count)
        where T : unmanaged
    {
        if (tensor.device_type == DeviceType.CPU && tensor.is_contiguous())
        {
            return CopyOut<T>(tensor, count);
        }

        using var scope = torch.NewDisposeScope();
        return CopyOut<T>(tensor.detach().cpu().contiguous(), count);
    }

    /// <summary>
    /// The values of a contiguous CPU tensor of <typeparamref name="T"/>'s dtype, copied as one block from its storage:
    /// TorchSharp's <c>data&lt;T&gt;().ToArray()</c> reads element by element through an accessor, about 30× slower
    /// (390 µs against 12 µs for 24 576 floats on the 2-core Xeon), which every float op of a converted model pays.
    /// </summary>
    internal static T[] CopyOut<T>(Tensor rowMajor, long count)
        where T : unmanaged
    {
        ReadOnlySpan<byte> bytes = rowMajor.bytes;
        if (bytes.Length != count * System.Runtime.CompilerServices.Unsafe.SizeOf<T>())
        {
            throw new ArgumentException($"TensorInterop: a tensor of {count} values holds {bytes.Length} bytes, not {count} × {System.Runtime.CompilerServices.Unsafe.SizeOf<T>()}.", nameof(rowMajor));
        }

        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(bytes).ToArray();
    }

    /// <summary>A copy of the values of a bool tensor in logical row-major order (a mask).</summary>
    /// <param name="tensor">A Bool tensor on any device, of any layout.</param>
    /// <exception cref="ArgumentException">The tensor is not bool.</exception>
    public static bool[] ToBoolArray(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.dtype != ScalarType.Bool)
        {
            throw new ArgumentException($"TensorInterop: expected a Bool tensor, got {tensor.dtype}.", nameof(tensor));
        }

        long count = tensor.numel();
        if (count == 0)
        {
            return [];
        }

        byte[] raw = CopyOutRowMajor<byte>(tensor, count);
        return Array.ConvertAll(raw, b => b != 0);
    }

    /// <summary>A new float32 CPU tensor holding a copy of <paramref name="values"/> with <paramref name="shape"/>.</summary>
    /// <exception cref="ArgumentException">The shape has a negative dimension or does not hold exactly <c>values.Length</c> elements.</exception>
    public static Tensor FromArray(float[] values, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        var dimensions = new long[shape.Length];
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] < 0)
            {
                throw new ArgumentException($"TensorInterop: shape {TorchText.Shape(shape)} has a negative dimension.", nameof(shape));
            }

            dimensions[i] = shape[i];
            count *= shape[i];
        }

        if (count != values.Length)
        {
            throw new ArgumentException($"TensorInterop: shape {TorchText.Shape(shape)} holds {count} values, got {values.Length}.", nameof(shape));
        }

        return torch.tensor(values, dimensions, ScalarType.Float32);
    }

    /// <summary>A tensor's shape as ints (QuantGen's sizes are int32; a larger dimension is refused with an <see cref="ArgumentException"/> naming the shape).</summary>
    internal static int[] ToIntShape(long[] shape)
    {
        foreach (long d in shape)
        {
            if (d > int.MaxValue || d < 0)
            {
                throw new ArgumentException($"TensorInterop: tensor of shape [{string.Join(", ", shape)}] has a dimension beyond QuantGen's int32 sizes ({int.MaxValue}).", nameof(shape));
            }
        }

        return Array.ConvertAll(shape, d => (int)d);
    }
}
