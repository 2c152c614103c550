using System;
using QuantGen.Kernels.Scalar;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// Tabulates a unary float op for <see cref="QuantizedElementwise"/>: runs the op itself (TorchSharp, float32) on
/// the 256 values the input integers dequantize to, <c>(float)(q - zp) * scale</c>, and quantizes each result with
/// the output qparams (the numerics contract's quantize). The table is therefore the op's QDQ reference.
/// </summary>
public static class ElementwiseTable
{
    /// <summary>PyTorch's fixed output qparams (backend_config's fixed-qparams ops), by module type; others are observed.</summary>
    /// <param name="moduleType">The TorchSharp module type's name.</param>
    /// <returns>The fixed qparams, or null when the output is observed.</returns>
    public static QParams? FixedOutputQParams(string moduleType) => moduleType switch
    {
        "Sigmoid" or "Hardsigmoid" => QParams.PerTensor(1f / 256f, 0, QuantDType.QUInt8),
        "Tanh" => QParams.PerTensor(2f / 256f, 128, QuantDType.QUInt8),
        _ => null,
    };

    /// <summary>The 256 output integers of <paramref name="op"/> for an input with <paramref name="input"/> qparams.</summary>
    /// <param name="name">"Model.layer", for messages.</param>
    /// <param name="op">The float op (an elementwise module's forward).</param>
    /// <param name="input">Per-tensor input qparams.</param>
    /// <param name="output">Per-tensor output qparams.</param>
    /// <returns>The table, indexed from the input dtype's minimum up.</returns>
    /// <exception cref="NotSupportedException">The op is not elementwise on these values (another shape back) or gives a non-finite value.</exception>
    public static int[] Create(string name, Func<Tensor, Tensor> op, QParams input, QParams output)
    {
        ArgumentNullException.ThrowIfNull(op);
        int inputMin = input.DType == QuantDType.QInt8 ? -128 : 0;
        var x = new float[256];
        for (int i = 0; i < 256; i++)
        {
            x[i] = (float)(inputMin + i - input.ZeroPoint) * input.Scale;
        }

        float[] y;
        using (torch.NewDisposeScope())
        using (torch.no_grad())
        {
            y = TensorInterop.ToArray(op(TensorInterop.FromArray(x, [1, 256])), out int[] shape);
            if (y.Length != 256)
            {
                throw new NotSupportedException($"{name}: the op gave {y.Length} values for 256 inputs; it is not elementwise.");
            }
        }

        (int min, int max) = output.DType == QuantDType.QInt8 ? (-128, 127) : (0, 255);
        float inverse = 1.0f / output.Scale;
        var table = new int[256];
        for (int i = 0; i < 256; i++)
        {
            if (!float.IsFinite(y[i]))
            {
                throw new NotSupportedException($"{name}: the op gives {y[i]} at input {x[i]}; an int8 table cannot hold it.");
            }

            table[i] = QuantizeScalar.QuantizeValue(y[i], inverse, output.ZeroPoint, min, max);
        }

        return table;
    }
}
