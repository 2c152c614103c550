using System;

namespace QuantGen.Onnx;

/// <summary>What an exported ONNX graph computes with.</summary>
public enum OnnxForm
{
    /// <summary>
    /// QuantizeLinear on the input, then every op as DequantizeLinear → float op → QuantizeLinear with
    /// the layer's qparams; weights int8 and biases int32 initializers behind DequantizeLinear. The form
    /// ONNX Runtime fuses into QLinearConv, QGemm, QLinearAdd ... and TensorRT consumes.
    /// </summary>
    Qdq,

    /// <summary>
    /// The same graph in float: weights dequantized (so the float model computes with the very values
    /// the int8 one does), float biases, no QuantizeLinear/DequantizeLinear. The fp32 peer in benchmarks.
    /// </summary>
    Float,

    /// <summary>
    /// The int8 graph written with quantized operators, as ONNX Runtime's quantizer writes with
    /// <c>QuantFormat.QOperator</c>: QuantizeLinear on the input, QLinearConv, com.microsoft QGemm,
    /// QLinearAdd, QLinearConcat, QLinearAveragePool and QLinearGlobalAveragePool, MaxPool, Resize, Flatten
    /// and Reshape on the integers, DequantizeLinear on the output; ops without a quantized operator in
    /// ORT (ConvTranspose, a standalone BatchNormalization) stay DequantizeLinear → float op →
    /// QuantizeLinear. For runtimes that take ORT's quantized operators but do not fuse QDQ graphs; every
    /// activation is in the input's type (uint8 for a quint8 input or with <see cref="OnnxExportOptions.ActivationsAsUInt8"/>).
    /// </summary>
    QOperator,
}

/// <summary>Choices for <see cref="OnnxExporter"/>.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>The lowest opset the exporter writes: per-axis QuantizeLinear/DequantizeLinear need 13.</summary>
    public const int MinOpset = 13;

    /// <summary>The highest opset the exporter writes (ONNX Runtime 1.31 runs it and fuses its QDQ graphs).</summary>
    public const int MaxOpset = 21;

    /// <summary>The ai.onnx opset to import, <see cref="MinOpset"/>..<see cref="MaxOpset"/>; 21 by default.</summary>
    public int Opset { get; init; } = 21;

    /// <summary>QDQ (default), QOperator or float.</summary>
    public OnnxForm Form { get; init; } = OnnxForm.Qdq;

    /// <summary>
    /// The input's logical shape (NCHW for images, e.g. <c>[1, 3, 224, 224]</c>); null leaves every
    /// dimension but the channels (or features) symbolic, taking the rank and channel count from the
    /// first layer that reads the input.
    /// </summary>
    public int[]? InputShape { get; init; }

    /// <summary>Makes the batch dimension (dimension 0) symbolic (<c>batch</c>) even when <see cref="InputShape"/> fixes it. True by default.</summary>
    public bool DynamicBatch { get; init; } = true;

    /// <summary>
    /// Writes qint8 activations as uint8 with the zero point moved by +128 — the same values (every
    /// quantize and dequantize gives the integers shifted by 128), as ONNX Runtime on x86 converts them
    /// itself where it can. With it ORT on x86 fuses every QDQ group with its u8s8 kernels, including a
    /// value read by several ops, which otherwise stays int8 and keeps its readers in float unless the
    /// session sets <c>session.qdqisint8allowed</c>. False by default: TensorRT takes int8 activations
    /// with zero point 0 only. In <see cref="OnnxForm.QOperator"/> form every activation is then uint8
    /// (else each is in the model input's type).
    /// </summary>
    public bool ActivationsAsUInt8 { get; init; }

    /// <summary>The graph input's name; <c>input</c> by default.</summary>
    public string InputName { get; init; } = "input";

    /// <summary>The graph output's name; <c>output</c> by default.</summary>
    public string OutputName { get; init; } = "output";

    /// <summary>Throws <see cref="ArgumentException"/> for an opset out of range, an empty name or a non-positive dimension.</summary>
    internal void Validate()
    {
        if (Opset < MinOpset || Opset > MaxOpset)
        {
            throw new ArgumentOutOfRangeException(nameof(Opset), Opset, $"ONNX export writes opsets {MinOpset}..{MaxOpset} (per-axis QuantizeLinear needs 13), got {Opset}.");
        }

        if (string.IsNullOrEmpty(InputName) || string.IsNullOrEmpty(OutputName) || InputName == OutputName)
        {
            throw new ArgumentException($"The input and output names must be non-empty and different, got '{InputName}' and '{OutputName}'.");
        }

        if (InputShape is { } shape && (shape.Length == 0 || Array.Exists(shape, d => d < 1)))
        {
            throw new ArgumentException($"InputShape must have at least one dimension, each positive, got [{string.Join(", ", shape)}].");
        }
    }
}
