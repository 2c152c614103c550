using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Reports;
using QuantGen.Serialization;
using QuantGen.Tests.Modules;

namespace QuantGen.Tests.Serialization;

/// <summary>
/// A hand-built <see cref="IQuantizedModel"/> holding any list of layers, so single layers and small
/// chains can go through the real file API. Its forward runs the layers one after another (a chain);
/// two-input layers are not chained.
/// </summary>
internal sealed class LayerListModel : IQuantizedModel
{
    public LayerListModel(string model, string hash, params IQuantizedLayer[] layers)
    {
        Layers = layers;
        Graph = new ModelGraph(model, hash, "input", $"t{layers.Length}",
            layers.Select((l, i) => new GraphNode(l.Layer, GraphOp.Reshape, [i == 0 ? "input" : $"t{i}"], $"t{i + 1}", [], "test")));
    }

    public ModelGraph Graph { get; }

    public IReadOnlyList<IQuantizedLayer> Layers { get; }

    public QuantizeInput Input => (QuantizeInput)Layers[0];

    public QTensor forward(QTensor input) => forward(input, null);

    public QTensor forward(QTensor input, IQuantizedTap? tap)
    {
        QTensor x = input;
        foreach (IQuantizedLayer layer in Layers.Skip(1))
        {
            x = SerializationTestSupport.ForwardOne(layer, x);
            tap?.OnLayer(layer.Layer, x);
        }

        return x;
    }

    public float[] forward(ReadOnlySpan<float> input, int[] shape, out int[] outputShape)
    {
        QTensor result = forward(Input.Forward(input, shape));
        outputShape = result.Shape;
        return result.Dequantize();
    }
}

/// <summary>A layer class the format does not know (stands in for a float island).</summary>
internal sealed class UnknownLayer(string model, string layer) : IQuantizedLayer
{
    public string Model { get; } = model;

    public string Layer { get; } = layer;
}

/// <summary>Builders of layers with random int8 weights, the test-side reading of the file layout, and comparisons.</summary>
internal static class SerializationTestSupport
{
    public const string Model = "Net";
    public const string Hash = "0123456789abcdef";

    /// <summary>A small chain quant → conv (per-channel, bias, ReLU) → maxpool → flatten → linear: a few hundred bytes.</summary>
    public static LayerListModel SmallChain(int seed = 5)
    {
        var random = new Random(seed);
        QParams qx = QParams.PerTensor(0.02f, 120, QuantDType.QUInt8);
        QParams qc = QParams.PerTensor(0.015f, 3, QuantDType.QUInt8);
        QParams qy = QParams.PerTensor(0.03f, 128, QuantDType.QUInt8);
        return new LayerListModel(Model, Hash,
            new QuantizeInput(Model, "quant", qx),
            Conv(random, "conv1", new Conv2dOptions(2, 3, 3, 3, PadHeight: 1, PadWidth: 1), perChannel: true, bias: true, qx, qc, relu: true, QuantBackend.X86),
            new QuantizedMaxPool2d(Model, "pool", Pool2dOptions.Square(2)),
            new QuantizedFlatten(Model, "flatten"),
            Linear(random, "fc", 3 * 2 * 2, 4, perChannel: false, bias: true, qc, qy, relu: false, QuantBackend.X86));
    }

    public static QTensor RandomWeight(Random random, int[] shape, QParams qparams, MemoryFormat format = MemoryFormat.Contiguous)
    {
        int count = shape.Aggregate(1, (a, b) => a * b);
        return OpTestSupport.FromLogical(ContractReference.RandomInts(random, count, -128, 127), shape, qparams, format);
    }

    public static QParams WeightQParams(Random random, int channels, int axis, bool perChannel) => perChannel
        ? QParams.PerChannel(ContractReference.RandomFloats(random, channels, 0.001f, 0.02f), new int[channels], axis, QuantDType.QInt8)
        : QParams.PerTensor(0.004f + (0.01f * random.NextSingle()), 0, QuantDType.QInt8);

    public static QuantizedConv2d Conv(Random random, string name, Conv2dOptions o, bool perChannel, bool bias, QParams input, QParams output, bool relu, QuantBackend backend, MemoryFormat weightFormat = MemoryFormat.Contiguous)
    {
        QTensor weight = RandomWeight(random, [o.OutChannels, o.InChannels / o.Groups, o.KernelHeight, o.KernelWidth], WeightQParams(random, o.OutChannels, 0, perChannel), weightFormat);
        return new QuantizedConv2d(Model, name, o, weight, bias ? ContractReference.RandomFloats(random, o.OutChannels, -1f, 1f) : null, input, output, relu, backend);
    }

    public static QuantizedConvTranspose2d ConvTranspose(Random random, string name, ConvTranspose2dOptions o, bool perChannel, bool bias, QParams input, QParams output, bool relu, QuantBackend backend)
    {
        QTensor weight = RandomWeight(random, [o.InChannels, o.OutChannels / o.Groups, o.KernelHeight, o.KernelWidth], WeightQParams(random, o.OutChannels / o.Groups, 1, perChannel));
        return new QuantizedConvTranspose2d(Model, name, o, weight, bias ? ContractReference.RandomFloats(random, o.OutChannels, -1f, 1f) : null, input, output, relu, backend);
    }

    public static QuantizedLinear Linear(Random random, string name, int inFeatures, int outFeatures, bool perChannel, bool bias, QParams input, QParams output, bool relu, QuantBackend backend)
    {
        QTensor weight = RandomWeight(random, [outFeatures, inFeatures], WeightQParams(random, outFeatures, 0, perChannel));
        return new QuantizedLinear(Model, name, inFeatures, outFeatures, weight, bias ? ContractReference.RandomFloats(random, outFeatures, -1f, 1f) : null, input, output, relu, backend);
    }

    /// <summary>Runs a one-input layer.</summary>
    public static QTensor ForwardOne(IQuantizedLayer layer, QTensor x) => layer switch
    {
        QuantizedConv2d l => l.Forward(x),
        QuantizedConvTranspose2d l => l.Forward(x),
        QuantizedLinear l => l.Forward(x),
        QuantizedBatchNorm2d l => l.Forward(x),
        QuantizedReLU l => l.Forward(x),
        QuantizedHardtanh l => l.Forward(x),
        QuantizedElementwise l => l.Forward(x),
        QuantizedMaxPool2d l => l.Forward(x),
        QuantizedAvgPool2d l => l.Forward(x),
        QuantizedAdaptiveAvgPool2d l => l.Forward(x),
        QuantizedUpsampleNearest2d l => l.Forward(x),
        QuantizedFlatten l => l.Forward(x),
        QuantizedReshape l => l.Forward(x),
        QuantizedConstantOp l => l.Forward(x),
        QuantizedMean l => l.Forward(x),
        _ => throw new ArgumentException($"{layer.GetType().Name} is not a one-input layer."),
    };

    /// <summary>Reads the next record as the same class as <paramref name="like"/> (the generated Load names the class statically).</summary>
    public static IQuantizedLayer ReadLike(QGenReader reader, IQuantizedLayer like) => like switch
    {
        QuantizeInput => reader.Read<QuantizeInput>(like.Layer),
        QuantizedConv2d => reader.Read<QuantizedConv2d>(like.Layer),
        QuantizedConvTranspose2d => reader.Read<QuantizedConvTranspose2d>(like.Layer),
        QuantizedLinear => reader.Read<QuantizedLinear>(like.Layer),
        QuantizedBatchNorm2d => reader.Read<QuantizedBatchNorm2d>(like.Layer),
        QuantizedReLU => reader.Read<QuantizedReLU>(like.Layer),
        QuantizedHardtanh => reader.Read<QuantizedHardtanh>(like.Layer),
        QuantizedElementwise => reader.Read<QuantizedElementwise>(like.Layer),
        QuantizedAdd => reader.Read<QuantizedAdd>(like.Layer),
        QuantizedCat => reader.Read<QuantizedCat>(like.Layer),
        QuantizedMaxPool2d => reader.Read<QuantizedMaxPool2d>(like.Layer),
        QuantizedAvgPool2d => reader.Read<QuantizedAvgPool2d>(like.Layer),
        QuantizedAdaptiveAvgPool2d => reader.Read<QuantizedAdaptiveAvgPool2d>(like.Layer),
        QuantizedUpsampleNearest2d => reader.Read<QuantizedUpsampleNearest2d>(like.Layer),
        QuantizedFlatten => reader.Read<QuantizedFlatten>(like.Layer),
        QuantizedReshape => reader.Read<QuantizedReshape>(like.Layer),
        QuantizedMul => reader.Read<QuantizedMul>(like.Layer),
        QuantizedConstantOp => reader.Read<QuantizedConstantOp>(like.Layer),
        QuantizedMean => reader.Read<QuantizedMean>(like.Layer),
        _ => throw new ArgumentException(like.GetType().Name),
    };

    public static byte[] SaveToBytes(IQuantizedModel model)
    {
        using var stream = new MemoryStream();
        QGenFile.Save(stream, model);
        return stream.ToArray();
    }

    /// <summary>Loads every layer of <paramref name="like"/>'s list back from <paramref name="bytes"/>, as the generated Load does.</summary>
    public static IQuantizedLayer[] LoadLayers(byte[] bytes, IQuantizedModel like, string? model = null, string? hash = null)
    {
        using QGenReader reader = QGenFile.OpenRead(new MemoryStream(bytes), model ?? like.Graph.Model, hash ?? like.Graph.Hash);
        return like.Layers.Select(l => ReadLike(reader, l)).ToArray();
    }

    /// <summary>Every piece of state a layer's constructor takes, compared exactly (floats by bit pattern).</summary>
    public static void AssertSameLayer(IQuantizedLayer expected, IQuantizedLayer actual)
    {
        Assert.Equal(expected.GetType(), actual.GetType());
        Assert.Equal(expected.Model, actual.Model);
        Assert.Equal(expected.Layer, actual.Layer);
        switch (expected)
        {
            case QuantizeInput e:
                AssertSameQParams(e.QParams, ((QuantizeInput)actual).QParams);
                break;
            case QuantizedConv2d e:
                var conv = (QuantizedConv2d)actual;
                Assert.Equal(e.Options, conv.Options);
                AssertSameWeighted(e.Weight, e.Bias, e.InputQParams, e.OutputQParams, e.FusedRelu, e.Backend, conv.Weight, conv.Bias, conv.InputQParams, conv.OutputQParams, conv.FusedRelu, conv.Backend);
                break;
            case QuantizedConvTranspose2d e:
                var deconv = (QuantizedConvTranspose2d)actual;
                Assert.Equal(e.Options, deconv.Options);
                AssertSameWeighted(e.Weight, e.Bias, e.InputQParams, e.OutputQParams, e.FusedRelu, e.Backend, deconv.Weight, deconv.Bias, deconv.InputQParams, deconv.OutputQParams, deconv.FusedRelu, deconv.Backend);
                break;
            case QuantizedLinear e:
                var linear = (QuantizedLinear)actual;
                Assert.Equal((e.InFeatures, e.OutFeatures), (linear.InFeatures, linear.OutFeatures));
                AssertSameWeighted(e.Weight, e.Bias, e.InputQParams, e.OutputQParams, e.FusedRelu, e.Backend, linear.Weight, linear.Bias, linear.InputQParams, linear.OutputQParams, linear.FusedRelu, linear.Backend);
                break;
            case QuantizedBatchNorm2d e:
                var norm = (QuantizedBatchNorm2d)actual;
                Assert.Equal(Bits(e.ChannelScale), Bits(norm.ChannelScale));
                Assert.Equal(Bits(e.ChannelShift), Bits(norm.ChannelShift));
                AssertSameQParams(e.OutputQParams, norm.OutputQParams);
                Assert.Equal(e.Relu, norm.Relu);
                break;
            case QuantizedReLU:
                break;
            case QuantizedHardtanh e:
                Assert.Equal((BitConverter.SingleToInt32Bits(e.MinValue), BitConverter.SingleToInt32Bits(e.MaxValue)),
                    (BitConverter.SingleToInt32Bits(((QuantizedHardtanh)actual).MinValue), BitConverter.SingleToInt32Bits(((QuantizedHardtanh)actual).MaxValue)));
                break;
            case QuantizedElementwise e:
                var table = (QuantizedElementwise)actual;
                Assert.Equal(e.Function, table.Function);
                AssertSameQParams(e.InputQParams, table.InputQParams);
                AssertSameQParams(e.OutputQParams, table.OutputQParams);
                Assert.Equal(e.Table, table.Table);
                break;
            case QuantizedAdd e:
                AssertSameQParams(e.OutputQParams, ((QuantizedAdd)actual).OutputQParams);
                Assert.Equal(e.Relu, ((QuantizedAdd)actual).Relu);
                break;
            case QuantizedCat e:
                Assert.Equal(e.Dim, ((QuantizedCat)actual).Dim);
                AssertSameQParams(e.OutputQParams, ((QuantizedCat)actual).OutputQParams);
                break;
            case QuantizedMaxPool2d e:
                Assert.Equal(e.Options, ((QuantizedMaxPool2d)actual).Options);
                break;
            case QuantizedAvgPool2d e:
                Assert.Equal(e.Options, ((QuantizedAvgPool2d)actual).Options);
                break;
            case QuantizedAdaptiveAvgPool2d e:
                Assert.Equal((e.OutputHeight, e.OutputWidth), (((QuantizedAdaptiveAvgPool2d)actual).OutputHeight, ((QuantizedAdaptiveAvgPool2d)actual).OutputWidth));
                break;
            case QuantizedUpsampleNearest2d e:
                var up = (QuantizedUpsampleNearest2d)actual;
                Assert.Equal((e.OutputHeight, e.OutputWidth, e.ScaleHeight, e.ScaleWidth), (up.OutputHeight, up.OutputWidth, up.ScaleHeight, up.ScaleWidth));
                break;
            case QuantizedFlatten e:
                Assert.Equal((e.StartDim, e.EndDim), (((QuantizedFlatten)actual).StartDim, ((QuantizedFlatten)actual).EndDim));
                break;
            case QuantizedReshape e:
                Assert.Equal(e.Shape, ((QuantizedReshape)actual).Shape);
                break;
            case QuantizedMul e:
                AssertSameQParams(e.OutputQParams, ((QuantizedMul)actual).OutputQParams);
                break;
            case QuantizedConstantOp e:
                var constantOp = (QuantizedConstantOp)actual;
                Assert.Equal((e.Operator, BitConverter.DoubleToInt64Bits(e.Constant)), (constantOp.Operator, BitConverter.DoubleToInt64Bits(constantOp.Constant)));
                break;
            case QuantizedMean e:
                Assert.Equal(e.Dims, ((QuantizedMean)actual).Dims);
                Assert.Equal(e.KeepDim, ((QuantizedMean)actual).KeepDim);
                break;
            default:
                throw new ArgumentException(expected.GetType().Name);
        }
    }

    public static void AssertSameQParams(QParams expected, QParams actual)
    {
        Assert.Equal(expected.DType, actual.DType);
        Assert.Equal(expected.Axis, actual.Axis);
        Assert.Equal(Bits(expected.Scales), Bits(actual.Scales));
        Assert.Equal(expected.ZeroPoints, actual.ZeroPoints);
    }

    /// <summary>Same shape, qparams, layout and storage bytes.</summary>
    public static void AssertSameTensor(QTensor expected, QTensor actual)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        Assert.Equal(expected.Format, actual.Format);
        AssertSameQParams(expected.QParams, actual.QParams);
        Assert.Equal(expected.Storage, actual.Storage);
    }

    public static int[] Bits(float[] values) => Array.ConvertAll(values, BitConverter.SingleToInt32Bits);

    private static void AssertSameWeighted(QTensor ew, float[]? eb, QParams ei, QParams eo, bool er, QuantBackend ebk, QTensor aw, float[]? ab, QParams ai, QParams ao, bool ar, QuantBackend abk)
    {
        AssertSameTensor(ew, aw);
        Assert.Equal(eb is null, ab is null);
        if (eb is not null)
        {
            Assert.Equal(Bits(eb), Bits(ab!));
        }

        AssertSameQParams(ei, ai);
        AssertSameQParams(eo, ao);
        Assert.Equal(er, ar);
        Assert.Equal(ebk, abk);
    }
}

/// <summary>
/// The test's own reading of the layout in docs/model-file.md (independent of QuantGen.Serialization):
/// preamble offsets, the record walk, and a bit-by-bit CRC-32C to re-seal patched files.
/// </summary>
internal static class FileLayout
{
    public const int VersionAt = 8, FlagsAt = 10, BodyLengthAt = 12, BodyAt = 20;

    /// <summary>CRC-32C bit by bit: reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int bit = 0; bit < 8; bit++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
            }
        }

        return ~crc;
    }

    /// <summary>Rewrites the trailing checksum so a patched file passes the CRC check and reaches the later ones.</summary>
    public static byte[] Reseal(byte[] file)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(file.Length - 4), Crc32C(file.AsSpan(0, file.Length - 4)));
        return file;
    }

    /// <summary>The records: (name, kind, offset of the kind field, offset of the payload-length field, payload offset, payload length).</summary>
    public static List<(string Name, int Kind, int KindAt, int LengthAt, int PayloadAt, int PayloadLength)> Records(byte[] file)
    {
        int at = BodyAt;
        string ReadString()
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(at));
            string s = System.Text.Encoding.UTF8.GetString(file, at + 2, length);
            at += 2 + length;
            return s;
        }

        ReadString(); // model
        ReadString(); // graph hash
        int count = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(at));
        at += 4;
        var records = new List<(string, int, int, int, int, int)>();
        for (int i = 0; i < count; i++)
        {
            int kindAt = at;
            int kind = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(at));
            at += 2;
            string name = ReadString();
            ReadString(); // owner model
            int lengthAt = at;
            int length = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(at));
            at += 4;
            records.Add((name, kind, kindAt, lengthAt, at, length));
            at += length;
        }

        Assert.Equal(file.Length - 4, at);
        return records;
    }

    /// <summary>Offset of the layer-count field.</summary>
    public static int LayerCountAt(byte[] file)
    {
        int at = BodyAt;
        at += 2 + BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(at));
        at += 2 + BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(at));
        return at;
    }
}
