using System;
using QuantGen.Modules;
using static TorchSharp.torch;

namespace QuantGen.Reference;

/// <summary>
/// Quantize→dequantize in float (the "QDQ" pair of PyTorch's reference model and of ONNX), with the contract's
/// exact quantize formula (docs/numerics.md §2), on TorchSharp tensors.
/// </summary>
/// <remarks>
/// Every element becomes <c>(float)(q - zp) * scale</c> with
/// <c>q = clamp(round_half_even(x * (1f / scale)) + zp, dtype_min, dtype_max)</c>, its channel's scale and
/// zero point for per-channel parameters, the clamp to the FULL dtype range. It goes through the same scalar
/// quantize/dequantize as <see cref="QTensor.Quantize"/> and <see cref="QTensor.Dequantize()"/>, so the result
/// is exactly the int8 model's dequantized value, bit for bit, including the non-finite rules
/// (+inf → dtype max, −inf → dtype min, NaN → the zero point, i.e. 0.0; docs/numerics.md §6). libtorch's own
/// <c>fake_quantize_per_tensor_affine</c> is not used: it rounds <c>x * inv_scale</c> with its own
/// vectorisation and maps NaN differently.
/// </remarks>
public static class FakeQuant
{
    /// <summary>
    /// A new float32 CPU tensor of <paramref name="input"/>'s shape holding its values quantized with
    /// <paramref name="qparams"/> and dequantized again; <paramref name="input"/> is not changed.
    /// </summary>
    /// <param name="input">A float32 tensor (any shape; per-channel parameters need the channel axis in range).</param>
    /// <param name="qparams">Per-tensor, or per-channel along <see cref="QParams.Axis"/> with one scale per channel there.</param>
    /// <exception cref="ArgumentException">The input is not float32, or the qparams do not fit its shape or dtype range.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A scale that is not positive and finite, or a zero point outside the dtype range.</exception>
    public static Tensor Apply(Tensor input, QParams qparams)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(qparams);
        float[] values = TensorInterop.ToArray(input, out int[] shape);
        float[] result = Apply(values, shape, qparams);
        return TensorInterop.FromArray(result, shape);
    }

    /// <summary>The same on plain arrays: values in logical row-major order with their shape; returns a new array.</summary>
    /// <exception cref="ArgumentException">The values do not fill the shape, or the qparams do not fit it.</exception>
    public static float[] Apply(ReadOnlySpan<float> values, int[] shape, QParams qparams)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(qparams);
        return QTensor.Quantize(values, shape, qparams).Dequantize();
    }
}
