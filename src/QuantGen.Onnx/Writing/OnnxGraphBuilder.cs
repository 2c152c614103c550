using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using Google.Protobuf;
using QuantGen.Onnx.Protobuf;

namespace QuantGen.Onnx.Writing;

/// <summary>
/// Accumulates one ONNX graph: nodes in the order they are added (which is topological, because the
/// exporter walks the model's graph in forward order), initializers, and unique value and node names.
/// </summary>
internal sealed class OnnxGraphBuilder
{
    private readonly HashSet<string> _valueNames = new(StringComparer.Ordinal);
    private readonly HashSet<string> _nodeNames = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _domains = new(StringComparer.Ordinal);

    /// <summary>ONNX Runtime's contrib operator domain (QLinearAdd, QGemm, QLinearConcat ...), opset version 1.</summary>
    public const string MicrosoftDomain = "com.microsoft";

    /// <summary>The graph being built.</summary>
    public GraphProto Graph { get; } = new();

    /// <summary>The operator domains other than ai.onnx that the graph's nodes use: the model must import each.</summary>
    public IReadOnlyCollection<string> Domains => _domains;

    /// <summary>Reserves <paramref name="name"/> as a value name, or <c>name_1</c>, <c>name_2</c> ... when taken.</summary>
    public string UniqueValue(string name) => Reserve(_valueNames, name);

    /// <summary>Appends a node of the default (ai.onnx) domain and returns its single output's name.</summary>
    /// <param name="opType">The operator, e.g. <c>Conv</c>.</param>
    /// <param name="name">The node's name (made unique).</param>
    /// <param name="inputs">Input value names; an empty string stands for an omitted optional input.</param>
    /// <param name="output">The output value's name (made unique).</param>
    /// <param name="attributes">The node's attributes.</param>
    public string Node(string opType, string name, IEnumerable<string> inputs, string output, params AttributeProto[] attributes) =>
        NodeWithOutput(opType, name, inputs, UniqueValue(output), attributes);

    /// <summary>As <see cref="Node"/>, writing to <paramref name="outputName"/> exactly: a name the caller reserved with <see cref="UniqueValue"/>.</summary>
    public string NodeWithOutput(string opType, string name, IEnumerable<string> inputs, string outputName, params AttributeProto[] attributes) =>
        Add(string.Empty, opType, name, inputs, outputName, attributes);

    /// <summary>As <see cref="Node"/> for an operator with several outputs (DynamicQuantizeLinear, LSTM); returns their names.</summary>
    public string[] NodeWithOutputs(string opType, string name, IEnumerable<string> inputs, IEnumerable<string> outputs, params AttributeProto[] attributes) =>
        AddWithOutputs(string.Empty, opType, name, inputs, outputs, attributes);

    /// <summary>As <see cref="NodeWithOutputs"/>, for an operator of ONNX Runtime's <see cref="MicrosoftDomain"/> (DynamicQuantizeLSTM).</summary>
    public string[] ContribNodeWithOutputs(string opType, string name, IEnumerable<string> inputs, IEnumerable<string> outputs, params AttributeProto[] attributes)
    {
        _domains.Add(MicrosoftDomain);
        return AddWithOutputs(MicrosoftDomain, opType, name, inputs, outputs, attributes);
    }

    private string[] AddWithOutputs(string domain, string opType, string name, IEnumerable<string> inputs, IEnumerable<string> outputs, AttributeProto[] attributes)
    {
        string[] names = outputs.Select(UniqueValue).ToArray();
        var node = new NodeProto { Domain = domain, OpType = opType, Name = Reserve(_nodeNames, name) };
        node.Input.AddRange(inputs);
        node.Output.AddRange(names);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return names;
    }

    /// <summary>As <see cref="Node"/>, for an operator of ONNX Runtime's <see cref="MicrosoftDomain"/> (recorded in <see cref="Domains"/>).</summary>
    public string ContribNode(string opType, string name, IEnumerable<string> inputs, string output, params AttributeProto[] attributes)
    {
        _domains.Add(MicrosoftDomain);
        return Add(MicrosoftDomain, opType, name, inputs, UniqueValue(output), attributes);
    }

    private string Add(string domain, string opType, string name, IEnumerable<string> inputs, string outputName, AttributeProto[] attributes)
    {
        var node = new NodeProto { Domain = domain, OpType = opType, Name = Reserve(_nodeNames, name) };
        node.Input.AddRange(inputs);
        node.Output.Add(outputName);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return outputName;
    }

    /// <summary>Adds a constant initializer under a unique name derived from <paramref name="name"/> and returns that name.</summary>
    public string Initializer(string name, TensorProto tensor)
    {
        tensor.Name = UniqueValue(name);
        Graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>A float32 tensor of the given shape (dims empty for a scalar).</summary>
    public static TensorProto Float(long[] dims, ReadOnlySpan<float> values) =>
        Raw(TensorProto.Types.DataType.Float, dims, MemoryMarshal.AsBytes(values));

    /// <summary>A float16 tensor (IEEE binary16 patterns, as ONNX's FLOAT16 stores them).</summary>
    public static TensorProto Float16(long[] dims, ReadOnlySpan<Half> values) =>
        Raw(TensorProto.Types.DataType.Float16, dims, MemoryMarshal.AsBytes(values));

    /// <summary>An int8 tensor.</summary>
    public static TensorProto Int8(long[] dims, ReadOnlySpan<sbyte> values) =>
        Raw(TensorProto.Types.DataType.Int8, dims, MemoryMarshal.AsBytes(values));

    /// <summary>A uint8 tensor.</summary>
    public static TensorProto UInt8(long[] dims, ReadOnlySpan<byte> values) =>
        Raw(TensorProto.Types.DataType.Uint8, dims, values);

    /// <summary>An int32 tensor.</summary>
    public static TensorProto Int32(long[] dims, ReadOnlySpan<int> values) =>
        Raw(TensorProto.Types.DataType.Int32, dims, MemoryMarshal.AsBytes(values));

    /// <summary>An int64 tensor.</summary>
    public static TensorProto Int64(long[] dims, ReadOnlySpan<long> values) =>
        Raw(TensorProto.Types.DataType.Int64, dims, MemoryMarshal.AsBytes(values));

    /// <summary>An int attribute.</summary>
    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    /// <summary>An ints attribute.</summary>
    public static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    /// <summary>A float attribute.</summary>
    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    /// <summary>A string attribute (UTF-8).</summary>
    public static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    /// <summary>A tensor value's type: element type and dimensions, each a number or a symbolic name (a string).</summary>
    public static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType elementType, IReadOnlyList<object>? dims)
    {
        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)elementType };
        if (dims is not null)
        {
            tensorType.Shape = new TensorShapeProto();
            tensorType.Shape.Dim.AddRange(dims.Select(d => d switch
            {
                int value => new TensorShapeProto.Types.Dimension { DimValue = value },
                string symbol => new TensorShapeProto.Types.Dimension { DimParam = symbol },
                _ => new TensorShapeProto.Types.Dimension(),
            }));
        }

        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }

    private static TensorProto Raw(TensorProto.Types.DataType dataType, long[] dims, ReadOnlySpan<byte> bytes)
    {
        // raw_data is little-endian by the format's definition; so is every platform .NET runs on.
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX export writes raw little-endian tensor data; this platform is big-endian.");
        }

        var tensor = new TensorProto { DataType = (int)dataType, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    private static string Reserve(HashSet<string> names, string name)
    {
        if (names.Add(name))
        {
            return name;
        }

        for (int suffix = 1; ; suffix++)
        {
            string candidate = name + "_" + suffix.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (names.Add(candidate))
            {
                return candidate;
            }
        }
    }
}
