using System;
using QuantGen.Modules;

namespace QuantGen.Serialization;

/// <summary>
/// One codec per <c>QuantGen.Modules</c> layer class: each writes what the class's public constructor
/// needs to rebuild the layer exactly, and reads it back through that constructor (weights are packed
/// again for this machine's kernel). A type switch, no reflection: NativeAOT- and trimming-safe.
/// Payload layouts are listed in docs/model-file.md.
/// </summary>
internal static class LayerCodecs
{
    /// <summary>The record kind of a layer, or null for a layer the format cannot hold.</summary>
    public static QGenLayerKind? KindOf(IQuantizedLayer layer) => layer switch
    {
        QuantizeInput => QGenLayerKind.Quantize,
        QuantizedConv2d => QGenLayerKind.Conv2d,
        QuantizedConvTranspose2d => QGenLayerKind.ConvTranspose2d,
        QuantizedLinear => QGenLayerKind.Linear,
        QuantizedBatchNorm2d => QGenLayerKind.BatchNorm2d,
        QuantizedReLU => QGenLayerKind.ReLU,
        QuantizedAdd => QGenLayerKind.Add,
        QuantizedCat => QGenLayerKind.Cat,
        QuantizedMaxPool2d => QGenLayerKind.MaxPool2d,
        QuantizedAvgPool2d => QGenLayerKind.AvgPool2d,
        QuantizedAdaptiveAvgPool2d => QGenLayerKind.AdaptiveAvgPool2d,
        QuantizedUpsampleNearest2d => QGenLayerKind.UpsampleNearest2d,
        QuantizedFlatten => QGenLayerKind.Flatten,
        QuantizedReshape => QGenLayerKind.Reshape,
        QuantizedHardtanh => QGenLayerKind.Hardtanh,
        QuantizedElementwise => QGenLayerKind.Elementwise,
        QuantizedMul => QGenLayerKind.Mul,
        QuantizedConstantOp => QGenLayerKind.ConstantOp,
        QuantizedMean => QGenLayerKind.Mean,
        Binding.BoundTopology => QGenLayerKind.BoundGraph,
        FloatOp => QGenLayerKind.FloatOp,
        FloatFallback { Stored: not null } => QGenLayerKind.FloatOp,
        _ => null,
    };

    /// <summary>The record kind that rebuilds a layer class, or null.</summary>
    public static QGenLayerKind? KindOf(Type type) =>
        type == typeof(QuantizeInput) ? QGenLayerKind.Quantize
        : type == typeof(QuantizedConv2d) ? QGenLayerKind.Conv2d
        : type == typeof(QuantizedConvTranspose2d) ? QGenLayerKind.ConvTranspose2d
        : type == typeof(QuantizedLinear) ? QGenLayerKind.Linear
        : type == typeof(QuantizedBatchNorm2d) ? QGenLayerKind.BatchNorm2d
        : type == typeof(QuantizedReLU) ? QGenLayerKind.ReLU
        : type == typeof(QuantizedAdd) ? QGenLayerKind.Add
        : type == typeof(QuantizedCat) ? QGenLayerKind.Cat
        : type == typeof(QuantizedMaxPool2d) ? QGenLayerKind.MaxPool2d
        : type == typeof(QuantizedAvgPool2d) ? QGenLayerKind.AvgPool2d
        : type == typeof(QuantizedAdaptiveAvgPool2d) ? QGenLayerKind.AdaptiveAvgPool2d
        : type == typeof(QuantizedUpsampleNearest2d) ? QGenLayerKind.UpsampleNearest2d
        : type == typeof(QuantizedFlatten) ? QGenLayerKind.Flatten
        : type == typeof(QuantizedReshape) ? QGenLayerKind.Reshape
        : type == typeof(QuantizedHardtanh) ? QGenLayerKind.Hardtanh
        : type == typeof(QuantizedElementwise) ? QGenLayerKind.Elementwise
        : type == typeof(QuantizedMul) ? QGenLayerKind.Mul
        : type == typeof(QuantizedConstantOp) ? QGenLayerKind.ConstantOp
        : type == typeof(QuantizedMean) ? QGenLayerKind.Mean
        : type == typeof(Binding.BoundTopology) ? QGenLayerKind.BoundGraph
        : type == typeof(FloatOp) ? QGenLayerKind.FloatOp
        : null;

    /// <summary>Writes a layer's payload (its kind comes from <see cref="KindOf(IQuantizedLayer)"/>).</summary>
    public static void Write(ByteWriter writer, IQuantizedLayer layer)
    {
        switch (layer)
        {
            case QuantizeInput quantize:
                WriteQuantizerQParams(writer, quantize);
                break;
            case QuantizedConv2d conv:
                Conv2dOptions o = conv.Options;
                writer.Ints([o.InChannels, o.OutChannels, o.KernelHeight, o.KernelWidth, o.StrideHeight, o.StrideWidth, o.PadHeight, o.PadWidth, o.DilationHeight, o.DilationWidth, o.Groups]);
                WriteWeighted(writer, conv.Weight, conv.Bias, conv.InputQParams, conv.OutputQParams, conv.FusedRelu, conv.Backend);
                break;
            case QuantizedConvTranspose2d deconv:
                ConvTranspose2dOptions t = deconv.Options;
                writer.Ints([t.InChannels, t.OutChannels, t.KernelHeight, t.KernelWidth, t.StrideHeight, t.StrideWidth, t.PadHeight, t.PadWidth, t.OutputPadHeight, t.OutputPadWidth, t.DilationHeight, t.DilationWidth, t.Groups]);
                WriteWeighted(writer, deconv.Weight, deconv.Bias, deconv.InputQParams, deconv.OutputQParams, deconv.FusedRelu, deconv.Backend);
                break;
            case QuantizedLinear linear:
                writer.I32(linear.InFeatures);
                writer.I32(linear.OutFeatures);
                WriteWeighted(writer, linear.Weight, linear.Bias, linear.InputQParams, linear.OutputQParams, linear.FusedRelu, linear.Backend);
                break;
            case QuantizedBatchNorm2d norm:
                writer.U32((uint)norm.Channels);
                writer.Floats(norm.ChannelScale);
                writer.Floats(norm.ChannelShift);
                WriteQParams(writer, norm.OutputQParams);
                writer.Bool(norm.Relu);
                break;
            case QuantizedReLU:
                break;
            case QuantizedAdd add:
                WriteQParams(writer, add.OutputQParams);
                writer.Bool(add.Relu);
                break;
            case QuantizedCat cat:
                writer.I32(cat.Dim);
                WriteQParams(writer, cat.OutputQParams);
                break;
            case QuantizedMaxPool2d maxPool:
                WritePool(writer, maxPool.Options);
                break;
            case QuantizedAvgPool2d avgPool:
                WritePool(writer, avgPool.Options);
                break;
            case QuantizedAdaptiveAvgPool2d adaptive:
                writer.I32(adaptive.OutputHeight);
                writer.I32(adaptive.OutputWidth);
                break;
            case QuantizedUpsampleNearest2d upsample:
                WriteOptional(writer, upsample.OutputHeight);
                WriteOptional(writer, upsample.OutputWidth);
                WriteOptional(writer, upsample.ScaleHeight);
                WriteOptional(writer, upsample.ScaleWidth);
                break;
            case QuantizedFlatten flatten:
                writer.I32(flatten.StartDim);
                writer.I32(flatten.EndDim);
                break;
            case QuantizedReshape reshape:
                int[] shape = reshape.Shape;
                writer.U8((byte)shape.Length);
                writer.Ints(shape);
                break;
            case QuantizedHardtanh hardtanh:
                writer.Floats([hardtanh.MinValue, hardtanh.MaxValue]);
                break;
            case QuantizedElementwise elementwise:
                writer.String(elementwise.Function);
                WriteQParams(writer, elementwise.InputQParams);
                WriteQParams(writer, elementwise.OutputQParams);
                writer.Ints(elementwise.Table);
                break;
            case QuantizedMul mul:
                WriteQParams(writer, mul.OutputQParams);
                break;
            case QuantizedConstantOp constantOp:
                writer.U8((byte)constantOp.Operator);
                writer.F64(constantOp.Constant);
                break;
            case QuantizedMean mean:
                int[] dims = mean.Dims;
                writer.U8((byte)dims.Length);
                writer.Ints(dims);
                writer.Bool(mean.KeepDim);
                break;
            case Binding.BoundTopology topology:
                topology.Write(writer);
                break;
            case FloatOp floatOp:
                WriteFloatOp(writer, floatOp);
                break;
            case FloatFallback { Stored: { } stored }:
                WriteFloatOp(writer, stored);
                break;
            default:
                throw new NotSupportedException($"{layer.Model}: layer '{layer.Layer}' is a {layer.GetType().FullName}, which has no .qgen codec.");
        }
    }

    /// <summary>
    /// Decodes one record's payload and rebuilds the layer through its constructor. Values the
    /// constructor rejects (a crafted file with a valid checksum) become <see cref="QGenFormatError.InvalidLayer"/>.
    /// </summary>
    public static IQuantizedLayer Read(QGenImage image, QGenLayerInfo info)
    {
        int start = (int)info.PayloadOffset;
        var reader = new ByteReader(image.Buffer, start, start + info.PayloadBytes, image.FileName, $"layer '{info.Name}' ({info.Kind} record)");
        string model = info.Model;
        string name = info.Name;
        IQuantizedLayer layer;
        try
        {
            layer = info.Kind switch
            {
                QGenLayerKind.Quantize => ReadQuantizer(ref reader, model, name, "the qparams"),
                QGenLayerKind.Conv2d => ReadConv2d(ref reader, model, name),
                QGenLayerKind.ConvTranspose2d => ReadConvTranspose2d(ref reader, model, name),
                QGenLayerKind.Linear => ReadLinear(ref reader, model, name),
                QGenLayerKind.BatchNorm2d => ReadBatchNorm2d(ref reader, model, name),
                QGenLayerKind.ReLU => new QuantizedReLU(model, name),
                QGenLayerKind.Add => new QuantizedAdd(model, name, ReadQParams(ref reader, "the output qparams"), reader.Bool("relu")),
                QGenLayerKind.Cat => new QuantizedCat(model, name, reader.I32("dim"), ReadQParams(ref reader, "the output qparams")),
                QGenLayerKind.MaxPool2d => new QuantizedMaxPool2d(model, name, ReadPool(ref reader)),
                QGenLayerKind.AvgPool2d => new QuantizedAvgPool2d(model, name, ReadPool(ref reader)),
                QGenLayerKind.AdaptiveAvgPool2d => new QuantizedAdaptiveAvgPool2d(model, name, reader.I32("output height"), reader.I32("output width")),
                QGenLayerKind.UpsampleNearest2d => new QuantizedUpsampleNearest2d(model, name,
                    ReadOptionalInt(ref reader, "output height"), ReadOptionalInt(ref reader, "output width"),
                    ReadOptionalDouble(ref reader, "height scale factor"), ReadOptionalDouble(ref reader, "width scale factor")),
                QGenLayerKind.Flatten => new QuantizedFlatten(model, name, reader.I32("start_dim"), reader.I32("end_dim")),
                QGenLayerKind.Reshape => new QuantizedReshape(model, name, ReadShape(ref reader, "the target shape", allowInferred: true)),
                QGenLayerKind.Hardtanh => ReadHardtanh(ref reader, model, name),
                QGenLayerKind.Elementwise => new QuantizedElementwise(model, name, reader.String("function"),
                    ReadQParams(ref reader, "the input qparams"), ReadQParams(ref reader, "the output qparams"), reader.Ints(256, "the table")),
                QGenLayerKind.Mul => new QuantizedMul(model, name, ReadQParams(ref reader, "the output qparams")),
                QGenLayerKind.ConstantOp => new QuantizedConstantOp(model, name, (ConstantOperator)reader.U8("the operator"), reader.F64("the constant")),
                QGenLayerKind.Mean => ReadMean(ref reader, model, name),
                QGenLayerKind.BoundGraph => Binding.BoundTopology.Read(ref reader, model, name),
                QGenLayerKind.FloatOp => ReadFloatOp(ref reader, model, name),
                _ => throw reader.Fail(QGenFormatError.Malformed, $"kind {info.Kind} has no codec", start),
            };
        }
        // A bad QUANTGEN_ISA surfaces here (packing the weights asks which kernel runs), but it is the machine's
        // setting, not the file: it goes to the caller as it is, not as a corrupt layer.
        catch (Exception ex) when (ex is ArgumentException or OverflowException or (InvalidOperationException and not QuantGenConfigurationException))
        {
            throw new QGenFormatException(image.FileName, QGenFormatError.InvalidLayer,
                $"{image.FileName}: layer '{name}' ({info.Kind} record at byte {start}): the stored values do not make a valid layer: {ex.Message}", ex);
        }

        if (reader.Remaining != 0)
        {
            throw reader.Fail(QGenFormatError.Malformed, $"{reader.Remaining} bytes of the payload are left over after a complete {info.Kind} layer", reader.Position);
        }

        return layer;
    }

    private static QuantizedMean ReadMean(ref ByteReader reader, string model, string name)
    {
        int count = reader.U8("the number of dims");
        int[] dims = reader.Ints(count, "the dims");
        return new QuantizedMean(model, name, dims, reader.Bool("keepdim"));
    }

    private static QuantizedHardtanh ReadHardtanh(ref ByteReader reader, string model, string name)
    {
        float[] bounds = reader.Floats(2, "min_val and max_val");
        return new QuantizedHardtanh(model, name, bounds[0], bounds[1]);
    }

    // u16 kind, string text, u32 count + i64 ints, u32 count + f64 floats, u8 tensor count, each: string name,
    // u8 rank (bit 7 set: float16 values), rank × i32 sizes, u32 count + f32 values (u16 binary16 patterns when float16);
    // bool relu, u16 input count, the output qparams. Only kinds 31 and 32 hold float16 tensors, so a reader that predates
    // them refuses such a record at its kind, before it meets the flag.
    private static void WriteFloatOp(ByteWriter writer, FloatOp op)
    {
        writer.U16((ushort)op.Kind);
        writer.String(op.Text);
        long[] ints = op.Ints;
        writer.U32((uint)ints.Length);
        foreach (long value in ints)
        {
            writer.I64(value);
        }

        double[] floats = op.Floats;
        writer.U32((uint)floats.Length);
        foreach (double value in floats)
        {
            writer.F64(value);
        }

        if (op.Tensors.Count > byte.MaxValue)
        {
            throw new NotSupportedException($"{op.Model}.{op.Layer}: a float op of {op.Tensors.Count} tensors cannot be stored; a record holds at most {byte.MaxValue}.");
        }

        writer.U8((byte)op.Tensors.Count);
        foreach (FloatOpTensor tensor in op.Tensors)
        {
            writer.String(tensor.Name);
            writer.U8((byte)(tensor.Shape.Length | (ElementTypeCode(tensor.ElementType) << ElementTypeShift)));
            writer.Ints(tensor.Shape);
            writer.U32((uint)tensor.Values.Length);
            switch (tensor.ElementType)
            {
                case FloatOpElementType.Float16:
                    writer.Halves(tensor.Values);
                    break;
                case FloatOpElementType.Int8 or FloatOpElementType.UInt8 or FloatOpElementType.UInt4:
                    (int low, int high) = FloatOp.IntegerRange(tensor.ElementType);
                    writer.SmallIntegers(tensor.Values, low, high, tensor.ElementType == FloatOpElementType.UInt4, $"{op.Model}.{op.Layer}: tensor '{tensor.Name}'");
                    break;
                default:
                    writer.Floats(tensor.Values);
                    break;
            }
        }

        writer.Bool(op.Relu);
        writer.U16(checked((ushort)op.InputCount));
        WriteQuantizerQParams(writer, op.Output);
    }

    // A float op tensor's rank byte: the rank in bits 0–4, the element type in bits 5–7 — 0 float32, 4 float16 (bit 7,
    // as format version 1 wrote it), 1 int8, 2 uint8, 3 two 4-bit values per byte (format version 2).
    private const int ElementTypeShift = 5;
    private const int RankMask = (1 << ElementTypeShift) - 1;

    private static int ElementTypeCode(FloatOpElementType type) => type switch
    {
        FloatOpElementType.Float32 => 0,
        FloatOpElementType.Float16 => 4,
        FloatOpElementType.Int8 => 1,
        FloatOpElementType.UInt8 => 2,
        FloatOpElementType.UInt4 => 3,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Not an element type the format stores."),
    };

    private static FloatOpElementType? ElementTypeOfCode(int code) => code switch
    {
        0 => FloatOpElementType.Float32,
        4 => FloatOpElementType.Float16,
        1 => FloatOpElementType.Int8,
        2 => FloatOpElementType.UInt8,
        3 => FloatOpElementType.UInt4,
        _ => null,
    };

    private static FloatOp ReadFloatOp(ref ByteReader reader, string model, string name)
    {
        int at = reader.Position;
        ushort code = reader.U16("the float op kind");
        if (!Enum.IsDefined((FloatOpKind)code))
        {
            throw reader.Fail(QGenFormatError.Malformed, $"float op kind {code} is not one this version knows", at);
        }

        string text = reader.String("the float op's text");
        int intCount = reader.Count("the integer constant count", 8, 64);
        var ints = new long[intCount];
        for (int i = 0; i < intCount; i++)
        {
            ints[i] = reader.I64("an integer constant");
        }

        int floatCount = reader.Count("the float constant count", 8, 64);
        var floats = new double[floatCount];
        for (int i = 0; i < floatCount; i++)
        {
            floats[i] = reader.F64("a float constant");
        }

        int tensorCount = reader.U8("the tensor count");
        var tensors = new FloatOpTensor[tensorCount];
        for (int i = 0; i < tensorCount; i++)
        {
            string tensorName = reader.String("a tensor name");
            int rankAt = reader.Position;
            byte rankByte = reader.U8($"tensor '{tensorName}' rank");
            FloatOpElementType elementType = ElementTypeOfCode(rankByte >> ElementTypeShift)
                ?? throw reader.Fail(QGenFormatError.Malformed, $"tensor '{tensorName}' has element type code {rankByte >> ElementTypeShift}, which is not one this version knows", rankAt);
            int[] shape = ReadShape(ref reader, $"tensor '{tensorName}'", allowInferred: false, rankByte & RankMask, rankAt);
            // 4-bit values take half a byte each: the length is checked against the remaining bytes when they are read, before allocating.
            int bytesPerValue = elementType switch { FloatOpElementType.Float32 => 4, FloatOpElementType.Float16 => 2, FloatOpElementType.UInt4 => 0, _ => 1 };
            int count = reader.Count($"tensor '{tensorName}' length", bytesPerValue, int.MaxValue);
            float[] values = elementType switch
            {
                FloatOpElementType.Float32 => reader.Floats(count, $"tensor '{tensorName}'"),
                FloatOpElementType.Float16 => reader.Halves(count, $"tensor '{tensorName}'"),
                FloatOpElementType.Int8 => reader.SignedBytes(count, $"tensor '{tensorName}'"),
                FloatOpElementType.UInt8 => reader.UnsignedBytes(count, $"tensor '{tensorName}'"),
                _ => reader.Nibbles(count, $"tensor '{tensorName}'"),
            };
            tensors[i] = new FloatOpTensor(tensorName, shape, values) { ElementType = elementType };
        }

        bool relu = reader.Bool("relu");
        int inputs = reader.U16("the input count");
        QuantizeInput output = ReadQuantizer(ref reader, model, name, "the output qparams");

        // The constructor checks that the constants and weights make the op its kind says (shapes against
        // options, counts per kind) before anything runs it.
        return new FloatOp(model, name, (FloatOpKind)code, text, ints, floats, tensors, relu, inputs, output);
    }

    // Conv, transposed conv and linear share their tail: weight, bias, input and output qparams, fused ReLU, backend.
    private static void WriteWeighted(ByteWriter writer, QTensor weight, float[]? bias, QParams inputQParams, QParams outputQParams, bool fusedRelu, QuantBackend backend)
    {
        WriteTensor(writer, weight);
        writer.Bool(bias is not null);
        if (bias is not null)
        {
            writer.U32((uint)bias.Length);
            writer.Floats(bias);
        }

        WriteQParams(writer, inputQParams);
        WriteQParams(writer, outputQParams);
        writer.Bool(fusedRelu);
        writer.U8(backend switch
        {
            QuantBackend.X86 => 0,
            QuantBackend.Qnnpack => 1,
            _ => throw new NotSupportedException($"Backend {backend} has no .qgen code."),
        });
    }

    private readonly record struct Weighted(QTensor Weight, float[]? Bias, QParams InputQParams, QParams OutputQParams, bool FusedRelu, QuantBackend Backend);

    private static Weighted ReadWeighted(ref ByteReader reader)
    {
        QTensor weight = ReadTensor(ref reader, "the weight");
        float[]? bias = null;
        if (reader.Bool("has-bias"))
        {
            int count = reader.Count("the bias length", 4, int.MaxValue);
            bias = reader.Floats(count, "the bias");
        }

        QParams input = ReadQParams(ref reader, "the input qparams");
        QParams output = ReadQParams(ref reader, "the output qparams");
        bool relu = reader.Bool("fused relu");
        int at = reader.Position;
        QuantBackend backend = reader.U8("the backend") switch
        {
            0 => QuantBackend.X86,
            1 => QuantBackend.Qnnpack,
            byte other => throw reader.Fail(QGenFormatError.Malformed, $"backend code {other} is neither 0 (X86) nor 1 (Qnnpack)", at),
        };
        return new Weighted(weight, bias, input, output, relu, backend);
    }

    private static QuantizedConv2d ReadConv2d(ref ByteReader reader, string model, string name)
    {
        int[] o = reader.Ints(11, "the conv options");
        var options = new Conv2dOptions(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8], o[9], o[10]);
        Weighted w = ReadWeighted(ref reader);
        return new QuantizedConv2d(model, name, options, w.Weight, w.Bias, w.InputQParams, w.OutputQParams, w.FusedRelu, w.Backend);
    }

    private static QuantizedConvTranspose2d ReadConvTranspose2d(ref ByteReader reader, string model, string name)
    {
        int[] o = reader.Ints(13, "the transposed conv options");
        var options = new ConvTranspose2dOptions(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8], o[9], o[10], o[11], o[12]);
        Weighted w = ReadWeighted(ref reader);
        return new QuantizedConvTranspose2d(model, name, options, w.Weight, w.Bias, w.InputQParams, w.OutputQParams, w.FusedRelu, w.Backend);
    }

    private static QuantizedLinear ReadLinear(ref ByteReader reader, string model, string name)
    {
        int inFeatures = reader.I32("in_features");
        int outFeatures = reader.I32("out_features");
        Weighted w = ReadWeighted(ref reader);
        return new QuantizedLinear(model, name, inFeatures, outFeatures, w.Weight, w.Bias, w.InputQParams, w.OutputQParams, w.FusedRelu, w.Backend);
    }

    private static QuantizedBatchNorm2d ReadBatchNorm2d(ref ByteReader reader, string model, string name)
    {
        int channels = reader.Count("the channel count", 8, int.MaxValue);
        float[] scale = reader.Floats(channels, "the channel scales");
        float[] shift = reader.Floats(channels, "the channel shifts");
        QParams output = ReadQParams(ref reader, "the output qparams");
        return new QuantizedBatchNorm2d(model, name, scale, shift, output, reader.Bool("relu"));
    }

    // u8 dtype, i32 axis (-1: per tensor), u32 count, count f32 scales, count i32 zero points.
    private static void WriteQParams(ByteWriter writer, QParams qparams)
    {
        writer.U8(DTypeCode(qparams.DType));
        writer.I32(qparams.Axis);
        writer.U32((uint)qparams.Scales.Length);
        writer.Floats(qparams.Scales);
        writer.Ints(qparams.ZeroPoints);
    }

    // A quantizer's qparams, or for a value no observer saw (a model converted without calibration) the record with
    // no scale: the quint8 code, axis -1 and a count of 0, which no quantizer with qparams can have.
    private static void WriteQuantizerQParams(ByteWriter writer, QuantizeInput quantizer)
    {
        if (quantizer.IsObserved)
        {
            WriteQParams(writer, quantizer.QParams);
            return;
        }

        writer.U8(DTypeCode(QuantDType.QUInt8));
        writer.I32(-1);
        writer.U32(0);
    }

    private static QuantizeInput ReadQuantizer(ref ByteReader reader, string model, string name, string what) =>
        ReadQParams(ref reader, what, notObservedAllowed: true) is { } qparams
            ? new QuantizeInput(model, name, qparams)
            : QuantizeInput.NotObserved(model, name);

    private static QParams ReadQParams(ref ByteReader reader, string what) => ReadQParams(ref reader, what, notObservedAllowed: false)!;

    // Null only for a quantizer's not-observed record (axis -1, no scale), where the caller allows it.
    private static QParams? ReadQParams(ref ByteReader reader, string what, bool notObservedAllowed)
    {
        QuantDType dtype = ReadDType(ref reader, what);
        int at = reader.Position;
        int axis = reader.I32(what + " axis");
        if (axis < -1 || axis >= QGenLayout.MaxRank)
        {
            throw reader.Fail(QGenFormatError.Malformed, $"{what} has axis {axis}; it must be -1 (per tensor) or a dimension below {QGenLayout.MaxRank}", at);
        }

        at = reader.Position;
        int count = reader.Count(what + " channel count", 8, int.MaxValue);
        if (notObservedAllowed && axis == -1 && count == 0)
        {
            return null;
        }

        if (count == 0 || (axis == -1 && count != 1))
        {
            throw reader.Fail(QGenFormatError.Malformed, $"{what} has {count} scales for {(axis == -1 ? "per-tensor parameters (1 expected)" : $"axis {axis} (at least 1 expected)")}", at);
        }

        float[] scales = reader.Floats(count, what + " scales");
        int[] zeroPoints = reader.Ints(count, what + " zero points");
        return axis == -1
            ? QParams.PerTensor(scales[0], zeroPoints[0], dtype)
            : QParams.PerChannel(scales, zeroPoints, axis, dtype);
    }

    // u8 rank, rank i32 dims, u8 memory format, qparams, then the elements as bytes in logical row-major order.
    private static void WriteTensor(ByteWriter writer, QTensor tensor)
    {
        writer.U8((byte)tensor.Rank);
        writer.Ints(tensor.Shape);
        writer.U8(tensor.Format switch
        {
            MemoryFormat.Contiguous => 0,
            MemoryFormat.ChannelsLast => 1,
            _ => throw new NotSupportedException($"Memory format {tensor.Format} has no .qgen code."),
        });
        WriteQParams(writer, tensor.QParams);
        writer.Bytes(tensor.WithFormat(MemoryFormat.Contiguous).Storage);
    }

    private static QTensor ReadTensor(ref ByteReader reader, string what)
    {
        int[] shape = ReadShape(ref reader, what + " shape", allowInferred: false);
        int at = reader.Position;
        MemoryFormat format = reader.U8(what + " memory format") switch
        {
            0 => MemoryFormat.Contiguous,
            1 => MemoryFormat.ChannelsLast,
            byte other => throw reader.Fail(QGenFormatError.Malformed, $"{what} has memory format code {other}, neither 0 (contiguous) nor 1 (channels-last)", at),
        };
        QParams qparams = ReadQParams(ref reader, what + " qparams");
        long elements = 1;
        foreach (int size in shape)
        {
            elements *= size; // at most 8 sizes below 2^31 that each fit the record: checked against the bytes below
            if (elements > reader.Remaining)
            {
                throw reader.Fail(QGenFormatError.Malformed, $"{what} shape [{string.Join(", ", shape)}] needs more bytes than the {reader.Remaining} that remain in the record", reader.Position);
            }
        }

        byte[] storage = reader.Bytes((int)elements, what + " values");
        var tensor = new QTensor(shape, qparams, storage, MemoryFormat.Contiguous);
        return tensor.WithFormat(format);
    }

    // u8 rank, then rank i32 sizes (≥ 0; a reshape target may hold -1).
    private static int[] ReadShape(ref ByteReader reader, string what, bool allowInferred)
    {
        int at = reader.Position;
        return ReadShape(ref reader, what, allowInferred, reader.U8(what + " rank"), at);
    }

    // The sizes after a rank the caller has read (at byte `at`).
    private static int[] ReadShape(ref ByteReader reader, string what, bool allowInferred, int rank, int at)
    {
        if (rank > QGenLayout.MaxRank)
        {
            throw reader.Fail(QGenFormatError.Malformed, $"{what} has rank {rank}; at most {QGenLayout.MaxRank} is stored", at);
        }

        at = reader.Position;
        int[] shape = reader.Ints(rank, what);
        int lowest = allowInferred ? -1 : 0;
        if (Array.Exists(shape, s => s < lowest))
        {
            throw reader.Fail(QGenFormatError.Malformed, $"{what} [{string.Join(", ", shape)}] has a size below {lowest}", at);
        }

        return shape;
    }

    // 8 i32 (kernel, stride, padding, dilation as height/width pairs), ceil_mode, count_include_pad, optional divisor_override.
    private static void WritePool(ByteWriter writer, Pool2dOptions o)
    {
        writer.Ints([o.KernelHeight, o.KernelWidth, o.StrideHeight, o.StrideWidth, o.PadHeight, o.PadWidth, o.DilationHeight, o.DilationWidth]);
        writer.Bool(o.CeilMode);
        writer.Bool(o.CountIncludePad);
        WriteOptional(writer, o.DivisorOverride);
    }

    private static Pool2dOptions ReadPool(ref ByteReader reader)
    {
        int[] o = reader.Ints(8, "the pool options");
        bool ceilMode = reader.Bool("ceil_mode");
        bool countIncludePad = reader.Bool("count_include_pad");
        int? divisor = ReadOptionalInt(ref reader, "divisor_override");
        return new Pool2dOptions(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], ceilMode, countIncludePad, divisor);
    }

    // An optional value: a presence byte, then the value only when present.
    private static void WriteOptional(ByteWriter writer, int? value)
    {
        writer.Bool(value.HasValue);
        if (value is int v)
        {
            writer.I32(v);
        }
    }

    private static void WriteOptional(ByteWriter writer, double? value)
    {
        writer.Bool(value.HasValue);
        if (value is double v)
        {
            writer.F64(v);
        }
    }

    private static int? ReadOptionalInt(ref ByteReader reader, string what) =>
        reader.Bool("has-" + what) ? reader.I32(what) : null;

    private static double? ReadOptionalDouble(ref ByteReader reader, string what) =>
        reader.Bool("has-" + what) ? reader.F64(what) : null;

    private static byte DTypeCode(QuantDType dtype) => dtype switch
    {
        QuantDType.QUInt8 => 0,
        QuantDType.QInt8 => 1,
        _ => throw new NotSupportedException($"dtype {dtype} has no .qgen code."),
    };

    private static QuantDType ReadDType(ref ByteReader reader, string what)
    {
        int at = reader.Position;
        return reader.U8(what + " dtype") switch
        {
            0 => QuantDType.QUInt8,
            1 => QuantDType.QInt8,
            byte other => throw reader.Fail(QGenFormatError.Malformed, $"{what} has dtype code {other}, neither 0 (quint8) nor 1 (qint8)", at),
        };
    }
}
