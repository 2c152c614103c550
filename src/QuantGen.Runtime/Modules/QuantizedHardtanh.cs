using System;
using System.Globalization;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// Hardtanh on a quantized tensor (PyTorch's quantized <c>hardtanh</c>; <c>ReLU6</c> is Hardtanh(0, 6)):
/// <c>clamp(q, quantize(min_val), quantize(max_val))</c> with the input's own qparams, exact in the integers; shape,
/// layout, dtype, scale and zero point pass through (PyTorch's output shares its input's observer).
/// </summary>
public sealed class QuantizedHardtanh : IQuantizedLayer
{
    /// <summary>Creates the op.</summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Layer name, for error messages.</param>
    /// <param name="minValue">min_val (0 for ReLU6).</param>
    /// <param name="maxValue">max_val (6 for ReLU6).</param>
    /// <exception cref="ArgumentException">A bound is not finite, or min_val is above max_val.</exception>
    public QuantizedHardtanh(string model, string layer, float minValue, float maxValue)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        if (!float.IsFinite(minValue) || !float.IsFinite(maxValue) || minValue > maxValue)
        {
            throw new ArgumentException($"{model}.{layer}: Hardtanh needs finite min_val <= max_val, got min_val={minValue.ToString("R", CultureInfo.InvariantCulture)}, max_val={maxValue.ToString("R", CultureInfo.InvariantCulture)}.");
        }

        Model = model;
        Layer = layer;
        MinValue = minValue;
        MaxValue = maxValue;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Layer name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>min_val.</summary>
    public float MinValue { get; }

    /// <summary>max_val.</summary>
    public float MaxValue { get; }

    /// <summary>The integer bounds for an input with <paramref name="qparams"/>, in the tensor's own dtype (aten's <c>quantize_val</c> of each bound).</summary>
    /// <param name="qparams">The input's per-tensor qparams.</param>
    /// <returns>(low, high) as integers of the dtype.</returns>
    public (int Low, int High) Bounds(QParams qparams)
    {
        ArgumentNullException.ThrowIfNull(qparams);
        (int min, int max) = qparams.DType == QuantDType.QInt8 ? (-128, 127) : (0, 255);
        float inverse = 1.0f / qparams.Scale;
        return (QuantizeScalar.QuantizeValue(MinValue, inverse, qparams.ZeroPoint, min, max),
                QuantizeScalar.QuantizeValue(MaxValue, inverse, qparams.ZeroPoint, min, max));
    }

    /// <summary>A new tensor holding the clamped values of <paramref name="input"/> (quint8 or qint8, per tensor).</summary>
    /// <exception cref="ArgumentException">The input has per-channel qparams.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>As <see cref="Forward(QTensor)"/>, writing into <paramref name="output"/> (which may hold the input); null allocates.</summary>
    /// <exception cref="ArgumentException">The input has per-channel qparams.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.QParams.IsPerChannel)
        {
            throw new ArgumentException($"{Model}.{Layer}: expected a per-tensor {QuantDType.QUInt8.ToTorchString()} or {QuantDType.QInt8.ToTorchString()} input, got {input.DType.ToTorchString()} {TorchText.Shape(input.ShapeSpan)} ({input.QParams}).", nameof(input));
        }

        (int low, int high) = Bounds(input.QParams);
        int offset = UInt8View.Offset(input.DType);
        ReadOnlySpan<byte> view = LayerScratch.Current.InputView(0, input, input.Format);
        QTensor result = LayerChecks.Output(output, input.ShapeSpan, input.QParams, input.Format);
        ClampKernel.Apply(view, result.StorageBytes, (byte)(low + offset), (byte)(high + offset));
        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>PyTorch's repr: <c>ReLU6()</c> for (0, 6), else <c>Hardtanh(min_val=..., max_val=...)</c>.</summary>
    public override string ToString() => MinValue == 0f && MaxValue == 6f
        ? "ReLU6()"
        : $"Hardtanh(min_val={TorchText.PythonFloat(MinValue)}, max_val={TorchText.PythonFloat(MaxValue)})";
}
