using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace QuantGen.Serialization;

/// <summary>
/// The kind tag of a layer record: which <c>QuantGen.Modules</c> class it rebuilds. The numbers are part
/// of the file format (docs/model-file.md) and never change meaning.
/// </summary>
public enum QGenLayerKind : ushort
{
    /// <summary><see cref="Modules.QuantizeInput"/>.</summary>
    Quantize = 1,

    /// <summary><see cref="Modules.QuantizedConv2d"/>.</summary>
    Conv2d = 2,

    /// <summary><see cref="Modules.QuantizedConvTranspose2d"/>.</summary>
    ConvTranspose2d = 3,

    /// <summary><see cref="Modules.QuantizedLinear"/>.</summary>
    Linear = 4,

    /// <summary><see cref="Modules.QuantizedBatchNorm2d"/>.</summary>
    BatchNorm2d = 5,

    /// <summary><see cref="Modules.QuantizedReLU"/>.</summary>
    ReLU = 6,

    /// <summary><see cref="Modules.QuantizedAdd"/>.</summary>
    Add = 7,

    /// <summary><see cref="Modules.QuantizedCat"/>.</summary>
    Cat = 8,

    /// <summary><see cref="Modules.QuantizedMaxPool2d"/>.</summary>
    MaxPool2d = 9,

    /// <summary><see cref="Modules.QuantizedAvgPool2d"/>.</summary>
    AvgPool2d = 10,

    /// <summary><see cref="Modules.QuantizedAdaptiveAvgPool2d"/>.</summary>
    AdaptiveAvgPool2d = 11,

    /// <summary><see cref="Modules.QuantizedUpsampleNearest2d"/>.</summary>
    UpsampleNearest2d = 12,

    /// <summary><see cref="Modules.QuantizedFlatten"/>.</summary>
    Flatten = 13,

    /// <summary><see cref="Modules.QuantizedReshape"/>.</summary>
    Reshape = 14,

    /// <summary><see cref="Modules.QuantizedHardtanh"/> (ReLU6, Hardtanh).</summary>
    Hardtanh = 15,

    /// <summary><see cref="Binding.BoundTopology"/>: the ops and edges of a model bound at Prepare (first record of its file).</summary>
    BoundGraph = 16,

    /// <summary><see cref="Modules.QuantizedElementwise"/>: a unary op by table.</summary>
    Elementwise = 17,

    /// <summary><see cref="Modules.FloatOp"/>: an op that stays float, its constants and weights, and its result's quantizer.</summary>
    FloatOp = 18,

    /// <summary><see cref="Modules.QuantizedMul"/>: the product of two tensors with broadcasting.</summary>
    Mul = 19,

    /// <summary><see cref="Modules.QuantizedConstantOp"/>: mul or add by a constant.</summary>
    ConstantOp = 20,

    /// <summary><see cref="Modules.QuantizedMean"/>: the mean over dims.</summary>
    Mean = 21,
}

/// <summary>One layer record of a <c>.qgen</c> file, as its framing describes it (the payload is not decoded).</summary>
/// <param name="Name">The layer's name (<c>layer1.0.conv1</c>).</param>
/// <param name="Kind">Which layer class the record rebuilds.</param>
/// <param name="Model">The model the layer reports in its messages (usually the file's model).</param>
/// <param name="PayloadOffset">Where the payload starts, in bytes from the start of the file.</param>
/// <param name="PayloadBytes">The payload's length in bytes.</param>
public sealed record QGenLayerInfo(string Name, QGenLayerKind Kind, string Model, long PayloadOffset, int PayloadBytes);

/// <summary>
/// What a <c>.qgen</c> file's header and record framing say, read without the model's class (for tools):
/// <see cref="QGenFile.ReadInfo(string)"/>. The checksum has been verified.
/// </summary>
public sealed class QGenFileInfo
{
    internal QGenFileInfo(string fileName, int version, int flags, string model, string graphHash, long byteSize, uint checksum, IReadOnlyList<QGenLayerInfo> layers)
    {
        FileName = fileName;
        Version = version;
        Flags = flags;
        Model = model;
        GraphHash = graphHash;
        ByteSize = byteSize;
        Checksum = checksum;
        Layers = layers;
    }

    /// <summary>The file's path, or a description of the stream.</summary>
    public string FileName { get; }

    /// <summary>The format version the file was written in.</summary>
    public int Version { get; }

    /// <summary>The header's flags (0 in version 1).</summary>
    public int Flags { get; }

    /// <summary>The model class the file holds (<c>ResNet18</c>).</summary>
    public string Model { get; }

    /// <summary>The graph hash of the generated code that saved it (<c>M.Quantized.GraphHash</c>).</summary>
    public string GraphHash { get; }

    /// <summary>The file's size in bytes, header and checksum included.</summary>
    public long ByteSize { get; }

    /// <summary>The stored CRC-32C of the content (verified).</summary>
    public uint Checksum { get; }

    /// <summary>The layer records in file (forward) order.</summary>
    public IReadOnlyList<QGenLayerInfo> Layers { get; }

    /// <summary>A multi-line summary: the header, then one line per layer.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{FileName}: .qgen v{Version}, model {Model}, graph {GraphHash}, {ByteSize} bytes, {Layers.Count} layers, crc32c {Checksum:x8}");
        foreach (QGenLayerInfo layer in Layers)
        {
            text.AppendLine().Append(CultureInfo.InvariantCulture, $"  {layer.Name,-32} {layer.Kind,-18} {layer.PayloadBytes,10} bytes");
            if (layer.Model != Model)
            {
                text.Append(CultureInfo.InvariantCulture, $"  (model {layer.Model})");
            }
        }

        return text.ToString();
    }
}
