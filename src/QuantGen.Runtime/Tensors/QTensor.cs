using System;
using System.Collections.Generic;
using System.Globalization;
using System.Runtime.InteropServices;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;

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
/// <remarks>
/// Everything that takes or returns element order (<see cref="Quantize"/>, <see cref="IntRepr"/>,
/// <see cref="Dequantize()"/>, <see cref="IntAt"/>) speaks the LOGICAL row-major order, whatever the
/// storage <see cref="Format"/>; only <see cref="Storage"/>, <see cref="StorageBytes"/>, <see cref="AsUInt8"/> and
/// <see cref="AsInt8"/> expose the storage order.
/// <para>
/// A tensor handed out by a <see cref="Buffers.BufferSlot"/> is a view over the slot's reusable buffer:
/// its <see cref="Storage"/> array may be longer than <see cref="Count"/> (the elements are its first
/// <see cref="Count"/> bytes), and its values are valid until the slot is written again.
/// </para>
/// </remarks>
public sealed class QTensor
{
    private readonly int[] _shape;

    // Not readonly: a BufferSlot re-points the views it owns at its new buffer when it grows.
    private byte[] _storage;

    /// <summary>A zero-point-filled tensor (each channel's own zero point for per-channel parameters).</summary>
    public QTensor(int[] shape, QParams qparams, MemoryFormat format = MemoryFormat.Contiguous)
        : this(format, shape, qparams, null)
    {
    }

    /// <summary>Wraps existing storage (length must equal the element count; 8-bit patterns, qint8 as two's complement).</summary>
    /// <remarks>The array is used as is, not copied: writes through <see cref="Storage"/> are visible to both.</remarks>
    public QTensor(int[] shape, QParams qparams, byte[] storage, MemoryFormat format = MemoryFormat.Contiguous)
        : this(format, shape, qparams, storage ?? throw new ArgumentNullException(nameof(storage)))
    {
    }

    // storage null: allocate and fill with zero points.
    private QTensor(MemoryFormat format, int[] shape, QParams qparams, byte[]? storage)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(qparams);
        Count = ValidateShape(shape);
        ValidateQParams(shape, qparams);
        ValidateFormat(shape, format);
        _shape = (int[])shape.Clone();
        QParams = qparams;
        Format = format;

        if (storage is null)
        {
            _storage = new byte[Count];
            FillWithZeroPoints();
        }
        else
        {
            if (storage.Length != Count)
            {
                throw new ArgumentException($"QTensor: shape {FormatShape(shape)} has {Count} elements but the storage has {storage.Length} bytes.", nameof(storage));
            }

            _storage = storage;
        }
    }

    /// <summary>
    /// A view of <paramref name="count"/> elements at the start of <paramref name="storage"/> (which may be
    /// longer), taking ownership of <paramref name="shape"/>; validated like the public constructors.
    /// </summary>
    internal QTensor(int[] shape, QParams qparams, byte[] storage, int count, MemoryFormat format)
    {
        Count = ValidateShape(shape);
        ValidateQParams(shape, qparams);
        ValidateFormat(shape, format);
        if (Count != count || storage.Length < count)
        {
            throw new ArgumentException($"QTensor: shape {FormatShape(shape)} has {Count} elements; a view of {count} over {storage.Length} bytes does not fit it.", nameof(storage));
        }

        _shape = shape;
        QParams = qparams;
        Format = format;
        _storage = storage;
    }

    /// <summary>Logical shape (NCHW for 4-D), PyTorch's order. A copy: use <see cref="Rank"/>, <see cref="Dim"/> or <see cref="ShapeSpan"/> to read it without allocating.</summary>
    public int[] Shape => (int[])_shape.Clone();

    /// <summary>The logical shape without a copy (read-only).</summary>
    public ReadOnlySpan<int> ShapeSpan => _shape;

    /// <summary>Number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>Scale(s) and zero point(s).</summary>
    public QParams QParams { get; }

    /// <summary>Element type (from <see cref="QParams"/>).</summary>
    public QuantDType DType => QParams.DType;

    /// <summary>Storage layout.</summary>
    public MemoryFormat Format { get; }

    /// <summary>
    /// The backing array, raw 8-bit values in <see cref="Format"/> order. The elements are its first
    /// <see cref="Count"/> bytes: the array is exactly <see cref="Count"/> long for a tensor made with a
    /// constructor, and may be longer for a view handed out by a <see cref="Buffers.BufferSlot"/>. Prefer
    /// <see cref="StorageBytes"/>, <see cref="AsUInt8"/> or <see cref="AsInt8"/>, which are exactly the elements.
    /// </summary>
    public byte[] Storage => _storage;

    /// <summary>The raw 8-bit elements in <see cref="Format"/> order (exactly <see cref="Count"/> bytes; qint8 as two's complement).</summary>
    public Span<byte> StorageBytes => _storage.AsSpan(0, Count);

    /// <summary>Per-tensor scale.</summary>
    public float Scale => QParams.Scale;

    /// <summary>Per-tensor zero point.</summary>
    public int ZeroPoint => QParams.ZeroPoint;

    /// <summary>Number of elements.</summary>
    public int Count { get; }

    /// <summary>The size of logical dimension <paramref name="axis"/> (negative counts from the end, as PyTorch's <c>size(dim)</c>).</summary>
    public int Dim(int axis)
    {
        int resolved = axis < 0 ? axis + _shape.Length : axis;
        if ((uint)resolved >= (uint)_shape.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(axis), axis, $"QTensor: dimension {axis} is out of range for a rank-{_shape.Length} tensor of shape {FormatShape(_shape)}.");
        }

        return _shape[resolved];
    }

    /// <summary>Storage as unsigned bytes (quint8).</summary>
    public Span<byte> AsUInt8()
    {
        if (DType != QuantDType.QUInt8)
        {
            throw new InvalidOperationException($"QTensor: AsUInt8() needs a torch.quint8 tensor, this one is {DType.ToTorchString()} (use AsInt8()).");
        }

        return _storage.AsSpan(0, Count);
    }

    /// <summary>Storage as signed bytes (qint8).</summary>
    public Span<sbyte> AsInt8()
    {
        if (DType != QuantDType.QInt8)
        {
            throw new InvalidOperationException($"QTensor: AsInt8() needs a torch.qint8 tensor, this one is {DType.ToTorchString()} (use AsUInt8()).");
        }

        return MemoryMarshal.Cast<byte, sbyte>(_storage.AsSpan(0, Count));
    }

    /// <summary>The integer values in logical row-major order (PyTorch's <c>int_repr()</c>, flattened).</summary>
    public int[] IntRepr()
    {
        var result = new int[Count];
        if (Format == MemoryFormat.Contiguous)
        {
            // Storage order is logical order: widen in one pass (a model load reads every weight this way).
            ReadOnlySpan<byte> storage = StorageBytes;
            if (DType == QuantDType.QInt8)
            {
                ReadOnlySpan<sbyte> signed = MemoryMarshal.Cast<byte, sbyte>(storage);
                for (int i = 0; i < signed.Length; i++)
                {
                    result[i] = signed[i];
                }
            }
            else
            {
                for (int i = 0; i < storage.Length; i++)
                {
                    result[i] = storage[i];
                }
            }

            return result;
        }

        for (int i = 0; i < result.Length; i++)
        {
            result[i] = Read(StorageOffsetOfLogical(i));
        }

        return result;
    }

    /// <summary>
    /// The qint8 values in logical row-major order as a new array (weights on their way to packing): a
    /// straight copy of contiguous storage, without <see cref="IntRepr"/>'s int32 detour.
    /// </summary>
    internal sbyte[] Int8Logical()
    {
        if (DType != QuantDType.QInt8)
        {
            throw new InvalidOperationException($"QTensor: Int8Logical() needs a torch.qint8 tensor, this one is {DType.ToTorchString()}.");
        }

        var result = new sbyte[Count];
        if (Format == MemoryFormat.Contiguous)
        {
            MemoryMarshal.Cast<byte, sbyte>(StorageBytes).CopyTo(result);
            return result;
        }

        for (int i = 0; i < result.Length; i++)
        {
            result[i] = unchecked((sbyte)_storage[StorageOffsetOfLogical(i)]);
        }

        return result;
    }

    /// <summary>The integer at a logical index (e.g. [n, c, h, w]).</summary>
    public int IntAt(params int[] index)
    {
        ArgumentNullException.ThrowIfNull(index);
        if (index.Length != _shape.Length)
        {
            throw new ArgumentException($"QTensor: index [{string.Join(", ", index)}] has {index.Length} components, the tensor has rank {_shape.Length} (shape {FormatShape(_shape)}).", nameof(index));
        }

        int logical = 0;
        for (int d = 0; d < index.Length; d++)
        {
            if ((uint)index[d] >= (uint)_shape[d])
            {
                throw new ArgumentOutOfRangeException(nameof(index), $"QTensor: index [{string.Join(", ", index)}] is out of range for shape {FormatShape(_shape)} (dimension {d}).");
            }

            logical = (logical * _shape[d]) + index[d];
        }

        return Read(StorageOffsetOfLogical(logical));
    }

    /// <summary><c>(q - zp) * scale</c> in float32, in logical row-major order.</summary>
    public float[] Dequantize()
    {
        var result = new float[Count];
        Dequantize(result);
        return result;
    }

    /// <summary><c>(q - zp) * scale</c> in float32, in logical row-major order, into <paramref name="destination"/> (exactly <see cref="Count"/> long).</summary>
    public void Dequantize(Span<float> destination)
    {
        if (destination.Length != Count)
        {
            throw new ArgumentException($"QTensor: destination has {destination.Length} elements, the tensor {Count} (shape {FormatShape(_shape)}).", nameof(destination));
        }

        (int channelStride, int channels) = ChannelLayout(_shape, QParams);
        float[] scales = QParams.Scales;
        int[] zeroPoints = QParams.ZeroPoints;
        for (int i = 0; i < destination.Length; i++)
        {
            int channel = (i / channelStride) % channels;
            destination[i] = QuantizeScalar.DequantizeValue(Read(StorageOffsetOfLogical(i)), scales[channel], zeroPoints[channel]);
        }
    }

    /// <summary>The same values in another layout (returns this when already in it).</summary>
    public QTensor WithFormat(MemoryFormat format)
    {
        if (format == Format)
        {
            return this;
        }

        ValidateFormat(_shape, format);
        var storage = new byte[Count];
        CopyTo(storage, format, flipTopBit: false);
        return new QTensor((int[])_shape.Clone(), QParams, storage, Count, format);
    }

    /// <summary>Quantizes float values given in logical row-major order into the requested layout.</summary>
    /// <remarks>Per element: <c>clamp(round_half_even(x * (1f / scale)) + zp, dtype_min, dtype_max)</c> with its channel's scale and zero point; non-finite values as <see cref="QuantizeScalar"/> documents.</remarks>
    public static QTensor Quantize(ReadOnlySpan<float> values, int[] shape, QParams qparams, MemoryFormat format = MemoryFormat.Contiguous)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(qparams);
        QTensor tensor = Allocate(shape, qparams, format);
        tensor.QuantizeFrom(values);
        return tensor;
    }

    /// <summary>A tensor over a new, uninitialised (zero) array, taking a copy of <paramref name="shape"/>.</summary>
    internal static QTensor Allocate(ReadOnlySpan<int> shape, QParams qparams, MemoryFormat format)
    {
        int[] owned = shape.ToArray();
        int count = ValidateShape(owned);
        return new QTensor(owned, qparams, new byte[count], count, format);
    }

    /// <summary>Re-points a view at a slot's new (larger) buffer; only <see cref="Buffers.BufferSlot"/> calls it.</summary>
    internal void Rebind(byte[] storage) => _storage = storage;

    /// <summary>
    /// Writes the elements into <paramref name="destination"/> (<see cref="Count"/> bytes) in
    /// <paramref name="format"/> order, flipping every top bit when <paramref name="flipTopBit"/> (the
    /// qint8 ↔ unsigned-view move).
    /// </summary>
    internal void CopyTo(Span<byte> destination, MemoryFormat format, bool flipTopBit)
    {
        if (destination.Length != Count)
        {
            throw new ArgumentException($"QTensor: destination has {destination.Length} bytes, the tensor {Count} elements.", nameof(destination));
        }

        ValidateFormat(_shape, format);
        ReadOnlySpan<byte> source = StorageBytes;
        byte flip = flipTopBit ? (byte)0x80 : (byte)0;
        if (format == Format)
        {
            if (flipTopBit)
            {
                UInt8View.Convert(source, destination, QuantDType.QInt8);
            }
            else
            {
                source.CopyTo(destination);
            }

            return;
        }

        // NCHW <-> NHWC: one plane (n, c) of H·W values against a stride-C column of the pixels. Sizes were
        // checked above (Count, the format's rank), so the loops index without bounds checks: this transpose
        // runs on every flatten of a convolution's output.
        int batch = _shape[0], channels = _shape[1], pixels = _shape[2] * _shape[3];
        unsafe
        {
            fixed (byte* from = source)
            fixed (byte* to = destination)
            {
                for (int n = 0; n < batch; n++)
                {
                    nint imageStart = (nint)n * channels * pixels;
                    for (int c = 0; c < channels; c++)
                    {
                        byte* plane = (format == MemoryFormat.ChannelsLast ? from : to) + imageStart + ((nint)c * pixels);
                        byte* column = (format == MemoryFormat.ChannelsLast ? to : from) + imageStart + c;
                        if (format == MemoryFormat.ChannelsLast)
                        {
                            for (int p = 0; p < pixels; p++, column += channels)
                            {
                                *column = (byte)(plane[p] ^ flip);
                            }
                        }
                        else
                        {
                            for (int p = 0; p < pixels; p++, column += channels)
                            {
                                plane[p] = (byte)(*column ^ flip);
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Quantizes <paramref name="values"/> (logical row-major order) into this tensor's storage, as <see cref="Quantize"/>.</summary>
    internal void QuantizeFrom(ReadOnlySpan<float> values)
    {
        if (values.Length != Count)
        {
            throw new ArgumentException($"QTensor.Quantize: {values.Length} values for shape {FormatShape(_shape)} ({Count} elements).", nameof(values));
        }

        Span<byte> storage = StorageBytes;
        if (!QParams.IsPerChannel)
        {
            // In the unsigned view (qint8 + 128, zero point + 128) the quantization gives exactly the
            // shifted value, so one kernel serves both dtypes; the top bit is flipped back for qint8.
            int offset = UInt8View.Offset(DType);
            float inverseScale = 1.0f / QParams.Scale;
            int viewZeroPoint = QParams.ZeroPoint + offset;
            if (Format == MemoryFormat.Contiguous)
            {
                QuantizeKernel.ToView(values, storage, inverseScale, viewZeroPoint);
            }
            else
            {
                QuantizePlanesToChannelsLast(values, storage, inverseScale, viewZeroPoint);
            }

            if (offset != 0)
            {
                UInt8View.Convert(storage, storage, QuantDType.QInt8);
            }

            return;
        }

        (int channelStride, int channels) = ChannelLayout(_shape, QParams);
        int quantMin = DType.Min(), quantMax = DType.Max();
        float[] scales = QParams.Scales;
        int[] zeroPoints = QParams.ZeroPoints;
        for (int i = 0; i < values.Length; i++)
        {
            int channel = (i / channelStride) % channels;
            int q = QuantizeScalar.QuantizeValue(values[i], 1.0f / scales[channel], zeroPoints[channel], quantMin, quantMax);
            _storage[StorageOffsetOfLogical(i)] = unchecked((byte)q);
        }
    }

    // NCHW floats -> NHWC bytes: each plane quantized a chunk at a time on the stack, then scattered with stride C.
    private void QuantizePlanesToChannelsLast(ReadOnlySpan<float> values, Span<byte> storage, float inverseScale, int viewZeroPoint)
    {
        int batch = _shape[0], channels = _shape[1], pixels = _shape[2] * _shape[3];
        Span<byte> chunk = stackalloc byte[512];
        for (int n = 0; n < batch; n++)
        {
            int imageStart = n * channels * pixels;
            for (int c = 0; c < channels; c++)
            {
                int plane = imageStart + (c * pixels);
                for (int p0 = 0; p0 < pixels; p0 += chunk.Length)
                {
                    int length = Math.Min(chunk.Length, pixels - p0);
                    Span<byte> quantized = chunk[..length];
                    QuantizeKernel.ToView(values.Slice(plane + p0, length), quantized, inverseScale, viewZeroPoint);
                    int target = imageStart + c + (p0 * channels);
                    for (int p = 0; p < length; p++, target += channels)
                    {
                        storage[target] = quantized[p];
                    }
                }
            }
        }
    }

    /// <summary>PyTorch-like printing of the dequantized values, shape and qparams.</summary>
    /// <remarks>
    /// As PyTorch prints a quantized tensor: values with 4 decimals, then <c>size</c>, <c>dtype</c>,
    /// <c>quantization_scheme</c> (always the affine schemes, as PyTorch's quantized tensors are), and
    /// the scale as Python prints the double PyTorch stores (the float32 scale widened, so
    /// <c>0.006616627331823111</c> for 0.006616627f) or, per channel, as a float64 tensor.
    /// </remarks>
    public override string ToString()
    {
        float[] dequantized = Dequantize();
        var values = new double[dequantized.Length];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = dequantized[i];
        }

        var suffixes = new List<string>
        {
            "size=" + TorchStylePrinter.PythonTuple(_shape),
            "dtype=" + DType.ToTorchString(),
        };
        if (QParams.IsPerChannel)
        {
            var scales = new double[QParams.Scales.Length];
            var zeroPoints = new double[QParams.ZeroPoints.Length];
            for (int c = 0; c < scales.Length; c++)
            {
                scales[c] = QParams.Scales[c];
                zeroPoints[c] = QParams.ZeroPoints[c];
            }

            int[] channelShape = [scales.Length];
            suffixes.Add("quantization_scheme=" + QScheme.PerChannelAffine.ToTorchString());
            suffixes.Add("scale=" + TorchStylePrinter.Format(scales, channelShape, floating: true, ["dtype=torch.float64"]));
            suffixes.Add("zero_point=" + TorchStylePrinter.Format(zeroPoints, channelShape, floating: false, []));
            suffixes.Add("axis=" + QParams.Axis.ToString(CultureInfo.InvariantCulture));
        }
        else
        {
            suffixes.Add("quantization_scheme=" + QScheme.PerTensorAffine.ToTorchString());
            suffixes.Add("scale=" + TorchStylePrinter.PythonFloatRepr(QParams.Scale));
            suffixes.Add("zero_point=" + QParams.ZeroPoint.ToString(CultureInfo.InvariantCulture));
        }

        return TorchStylePrinter.Format(values, _shape, floating: true, suffixes);
    }

    /// <summary>PyTorch-like printing of <see cref="IntRepr"/> with the shape (nested brackets).</summary>
    public string IntReprToString()
    {
        int[] ints = IntRepr();
        var values = new double[ints.Length];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = ints[i];
        }

        string dtype = DType == QuantDType.QUInt8 ? "torch.uint8" : "torch.int8";
        return TorchStylePrinter.Format(values, _shape, floating: false, ["dtype=" + dtype]);
    }

    /// <summary>Formats a shape for messages: <c>[1, 3, 224, 224]</c>.</summary>
    internal static string FormatShape(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    private int Read(int storageOffset) => DType == QuantDType.QInt8
        ? unchecked((sbyte)_storage[storageOffset])
        : _storage[storageOffset];

    // Logical row-major index -> storage offset. Channels-last: logical [n, c, h, w] lives at ((n*H + h)*W + w)*C + c.
    private int StorageOffsetOfLogical(int logical)
    {
        if (Format == MemoryFormat.Contiguous)
        {
            return logical;
        }

        int channels = _shape[1], height = _shape[2], width = _shape[3];
        int w = logical % width;
        int rest = logical / width;
        int h = rest % height;
        rest /= height;
        int c = rest % channels;
        int n = rest / channels;
        return ((((n * height) + h) * width) + w) * channels + c;
    }

    private void FillWithZeroPoints()
    {
        (int channelStride, int channels) = ChannelLayout(_shape, QParams);
        int[] zeroPoints = QParams.ZeroPoints;
        for (int i = 0; i < Count; i++)
        {
            _storage[StorageOffsetOfLogical(i)] = unchecked((byte)zeroPoints[(i / channelStride) % channels]);
        }
    }

    // For logical index i, the channel is (i / stride) % channels; per-tensor parameters are one channel.
    private static (int Stride, int Channels) ChannelLayout(int[] shape, QParams qparams)
    {
        if (!qparams.IsPerChannel)
        {
            return (1, 1);
        }

        int stride = 1;
        for (int d = qparams.Axis + 1; d < shape.Length; d++)
        {
            stride *= shape[d];
        }

        return (Math.Max(stride, 1), shape[qparams.Axis]);
    }

    /// <summary>Checks shape, qparams and format as the constructors do; returns the element count.</summary>
    internal static int ValidateView(ReadOnlySpan<int> shape, QParams qparams, MemoryFormat format)
    {
        int count = ValidateShape(shape);
        ValidateQParams(shape, qparams);
        ValidateFormat(shape, format);
        return count;
    }

    internal static int ValidateShape(ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int size in shape)
        {
            if (size < 0)
            {
                throw new ArgumentException($"QTensor: shape {FormatShape(shape)} has a negative dimension.", nameof(shape));
            }

            // Capped, not checked per step: [65536, 65536, 0] holds no elements (as in PyTorch), and the cap
            // keeps the 64-bit product from wrapping around.
            count = Math.Min(count * size, (long)Array.MaxLength + 1);
        }

        if (count > Array.MaxLength)
        {
            throw new ArgumentException($"QTensor: shape {FormatShape(shape)} has more elements than an array can hold.", nameof(shape));
        }

        return (int)count;
    }

    private static void ValidateQParams(ReadOnlySpan<int> shape, QParams qparams)
    {
        if (qparams.DType is not (QuantDType.QUInt8 or QuantDType.QInt8))
        {
            throw new ArgumentException($"QTensor: unsupported dtype {qparams.DType}; QTensor holds torch.quint8 or torch.qint8.", nameof(qparams));
        }

        if (qparams.IsPerChannel)
        {
            if (qparams.Axis >= shape.Length)
            {
                throw new ArgumentException($"QTensor: per-channel axis {qparams.Axis} is out of range for shape {FormatShape(shape)} (rank {shape.Length}).", nameof(qparams));
            }

            if (qparams.Scales.Length != shape[qparams.Axis])
            {
                throw new ArgumentException($"QTensor: {qparams.Scales.Length} per-channel scales along axis {qparams.Axis}, but shape {FormatShape(shape)} has {shape[qparams.Axis]} channels there.", nameof(qparams));
            }
        }
        else if (qparams.Scales.Length != 1)
        {
            throw new ArgumentException($"QTensor: per-tensor parameters need exactly one scale, got {qparams.Scales.Length}.", nameof(qparams));
        }

        for (int c = 0; c < qparams.Scales.Length; c++)
        {
            string what = qparams.IsPerChannel ? $"QTensor channel {c}" : "QTensor";
            QuantizeScalar.ValidateScale(qparams.Scales[c], what);
            QuantizeScalar.ValidateZeroPoint(qparams.ZeroPoints[c], qparams.DType, what);
        }
    }

    private static void ValidateFormat(ReadOnlySpan<int> shape, MemoryFormat format)
    {
        if (format is not (MemoryFormat.Contiguous or MemoryFormat.ChannelsLast))
        {
            throw new ArgumentOutOfRangeException(nameof(format), format, "QTensor: unknown memory format.");
        }

        if (format == MemoryFormat.ChannelsLast && shape.Length != 4)
        {
            throw new ArgumentException($"QTensor: ChannelsLast needs a rank-4 [N, C, H, W] shape, got {FormatShape(shape)} (rank {shape.Length}).", nameof(format));
        }
    }
}
