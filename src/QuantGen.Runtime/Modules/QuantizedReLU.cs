using System;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// ReLU on a quantized tensor (PyTorch's <c>nn.ReLU</c> applied to a quint8 tensor): <c>max(q, zp)</c>,
/// exact in the integers; shape, layout, scale and zero point pass through.
/// </summary>
public sealed class QuantizedReLU
{
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member name, for error messages.</param>
    public QuantizedReLU(string model, string layer)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        Model = model;
        Layer = layer;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>A new tensor holding <c>max(q, zp)</c> for every element of the quint8 <paramref name="input"/>.</summary>
    /// <exception cref="ArgumentException">The input is not quint8 with per-tensor qparams.</exception>
    public QTensor Forward(QTensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.DType != QuantDType.QUInt8 || input.QParams.IsPerChannel)
        {
            throw new ArgumentException($"{Model}.{Layer}: expected a per-tensor {QuantDType.QUInt8.ToTorchString()} input, got {input.DType.ToTorchString()} {TorchText.Shape(input.Shape)} ({input.QParams}).", nameof(input));
        }

        var output = new QTensor((int[])input.Shape.Clone(), input.QParams, input.Format);
        ReluScalar.Apply(input.AsUInt8(), output.AsUInt8(), input.ZeroPoint);
        return output;
    }

    /// <summary>PyTorch's repr: <c>ReLU()</c>.</summary>
    public override string ToString() => "ReLU()";
}
