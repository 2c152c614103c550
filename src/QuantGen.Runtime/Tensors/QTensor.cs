using System;

namespace QuantGen;

/// <summary>How a 4-D tensor's elements are laid out in <see cref="QTensor.Storage"/>.</summary>
public enum MemoryFormat
{
    /// <summary>Row-major in the logical shape (NCHW for 4-D).</summary>
    Contiguous,

    /// <summary>NHWC for a logical [N, C, H, W] shape: what the int8 conv kernels read and write.</summary>
    ChannelsLast,
}

/// <summary>
/// A quantized tensor: 8-bit integers plus <see cref="QParams"/>. The logical <see cref="Shape"/> is
/// PyTorch's (NCHW for images); 4-D activations are stored channels-last. Never touches TorchSharp.
/// </summary>
public sealed class QTensor
{
    // TODO(helper B1): implement everything below.

    /// <summary>A zero-point-filled tensor.</summary>
    public QTensor(int[] shape, QParams qparams, MemoryFormat format = MemoryFormat.Contiguous) => throw new NotImplementedException();

    /// <summary>Wraps existing storage (length must equal the element count; 8-bit patterns, qint8 as two's complement).</summary>
    public QTensor(int[] shape, QParams qparams, byte[] storage, MemoryFormat format = MemoryFormat.Contiguous) => throw new NotImplementedException();

    /// <summary>Logical shape (NCHW for 4-D), PyTorch's order.</summary>
    public int[] Shape => throw new NotImplementedException();

    /// <summary>Scale(s) and zero point(s).</summary>
    public QParams QParams => throw new NotImplementedException();

    /// <summary>Element type (from <see cref="QParams"/>).</summary>
    public QuantDType DType => QParams.DType;

    /// <summary>Storage layout.</summary>
    public MemoryFormat Format => throw new NotImplementedException();

    /// <summary>Raw 8-bit storage in <see cref="Format"/> order.</summary>
    public byte[] Storage => throw new NotImplementedException();

    /// <summary>Per-tensor scale.</summary>
    public float Scale => QParams.Scale;

    /// <summary>Per-tensor zero point.</summary>
    public int ZeroPoint => QParams.ZeroPoint;

    /// <summary>Number of elements.</summary>
    public int Count => throw new NotImplementedException();

    /// <summary>Storage as unsigned bytes (quint8).</summary>
    public Span<byte> AsUInt8() => throw new NotImplementedException();

    /// <summary>Storage as signed bytes (qint8).</summary>
    public Span<sbyte> AsInt8() => throw new NotImplementedException();

    /// <summary>The integer values in logical row-major order (PyTorch's <c>int_repr()</c>, flattened).</summary>
    public int[] IntRepr() => throw new NotImplementedException();

    /// <summary>The integer at a logical index (e.g. [n, c, h, w]).</summary>
    public int IntAt(params int[] index) => throw new NotImplementedException();

    /// <summary><c>(q - zp) * scale</c> in float32, in logical row-major order.</summary>
    public float[] Dequantize() => throw new NotImplementedException();

    /// <summary>The same values in another layout (returns this when already in it).</summary>
    public QTensor WithFormat(MemoryFormat format) => throw new NotImplementedException();

    /// <summary>Quantizes float values given in logical row-major order into the requested layout.</summary>
    public static QTensor Quantize(ReadOnlySpan<float> values, int[] shape, QParams qparams, MemoryFormat format = MemoryFormat.Contiguous) => throw new NotImplementedException();

    /// <summary>PyTorch-like printing of the dequantized values, shape and qparams.</summary>
    public override string ToString() => throw new NotImplementedException();

    /// <summary>PyTorch-like printing of <see cref="IntRepr"/> with the shape (nested brackets).</summary>
    public string IntReprToString() => throw new NotImplementedException();
}
