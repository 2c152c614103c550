using System;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// ReLU on a quantized tensor (PyTorch's <c>nn.ReLU</c> applied to a quint8 or qint8 tensor):
/// <c>max(q, zp)</c>, exact in the integers; shape, layout, dtype, scale and zero point pass through.
/// </summary>
public sealed class QuantizedReLU : IQuantizedLayer
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

    /// <summary>A new tensor holding <c>max(q, zp)</c> for every element of <paramref name="input"/> (quint8 or qint8).</summary>
    /// <exception cref="ArgumentException">The input has per-channel qparams.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>
    /// As <see cref="Forward(QTensor)"/>, writing into <paramref name="output"/>'s buffer (a steady-state
    /// call then allocates nothing); null allocates a new tensor. The slot may hold the input (in place).
    /// </summary>
    /// <exception cref="ArgumentException">The input has per-channel qparams.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.QParams.IsPerChannel)
        {
            throw new ArgumentException($"{Model}.{Layer}: expected a per-tensor {QuantDType.QUInt8.ToTorchString()} or {QuantDType.QInt8.ToTorchString()} input, got {input.DType.ToTorchString()} {TorchText.Shape(input.ShapeSpan)} ({input.QParams}).", nameof(input));
        }

        // In the unsigned view (qint8 shifted by 128) the order of values is kept, so max(q, zp) there is
        // max(q, zp) here. Element for element, so the output may be the input's own storage.
        ReadOnlySpan<byte> view = LayerScratch.Current.InputView(0, input, input.Format);
        QTensor result = LayerChecks.Output(output, input.ShapeSpan, input.QParams, input.Format);
        ReluKernel.Apply(view, result.StorageBytes, LayerChecks.ViewZeroPoint(input.QParams));
        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>PyTorch's repr: <c>ReLU()</c>.</summary>
    public override string ToString() => "ReLU()";
}
