using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using QuantGen.Graphs;

namespace QuantGen.Serialization;

/// <summary>
/// The <c>.qgen</c> model file: a converted model's int8 layers (weights, qparams, options) behind a
/// versioned, checksummed little-endian header — see docs/model-file.md. Generated <c>M.Quantized.Save</c>
/// and <c>Load</c> call this; nothing here touches TorchSharp, so an app loads and runs an int8 model
/// without libtorch.
/// </summary>
/// <remarks>
/// Loading reads the whole file once, checks its size against the header and its CRC-32C before
/// parsing anything, and never allocates for a count or length before checking it against the bytes
/// that are really there. Every problem is a <see cref="QGenFormatException"/> naming the file.
/// </remarks>
public static class QGenFile
{
    /// <summary>The usual file extension.</summary>
    public const string Extension = ".qgen";

    /// <summary>The format version this build writes (it also reads version 1, docs/model-file.md).</summary>
    public const int FormatVersion = QGenLayout.Version;

    /// <summary>Saves a converted model to a file, replacing it (written beside it first, then moved into place).</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="model">The converted model.</param>
    /// <exception cref="NotSupportedException">A layer the format cannot hold (e.g. a <c>[NoQuantize]</c> float island); the message names model and layer.</exception>
    public static void Save(string path, IQuantizedModel model)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ByteWriter file = Encode(model);
        string partial = path + ".partial";
        try
        {
            using (var stream = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1))
            {
                stream.Write(file.Buffer, 0, file.Length);
                stream.Flush(flushToDisk: true);
            }

            File.Move(partial, path, overwrite: true);
        }
        catch
        {
            File.Delete(partial);
            throw;
        }
    }

    /// <summary>Writes a converted model to a stream at its current position (one write).</summary>
    /// <param name="stream">Where to write.</param>
    /// <param name="model">The converted model.</param>
    /// <exception cref="NotSupportedException">A layer the format cannot hold; the message names model and layer.</exception>
    public static void Save(Stream stream, IQuantizedModel model)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ByteWriter file = Encode(model);
        stream.Write(file.Buffer, 0, file.Length);
    }

    /// <summary>Opens a model file for the generated <c>Load</c>: reads and verifies it, and checks it holds <paramref name="model"/> at <paramref name="graphHash"/>.</summary>
    /// <param name="path">The file.</param>
    /// <param name="model">The model class that loads it (<c>Net</c>).</param>
    /// <param name="graphHash">That class's <c>Quantized.GraphHash</c>.</param>
    /// <returns>A reader positioned at the first layer record.</returns>
    /// <exception cref="QGenFormatException">The file is corrupted, truncated, not a model file, or saved from another model or another version of this one.</exception>
    public static QGenReader OpenRead(string path, string model, string graphHash) =>
        Open(QGenImage.Read(path), model, graphHash);

    /// <summary>
    /// As <see cref="OpenRead(string, string, string)"/>, reading one model from the stream's current
    /// position: exactly the bytes its header states (the stream is left just after them, so a model can
    /// sit inside a larger container). A non-seekable stream is read in growing chunks.
    /// </summary>
    /// <param name="stream">The stream.</param>
    /// <param name="model">The model class that loads it.</param>
    /// <param name="graphHash">That class's <c>Quantized.GraphHash</c>.</param>
    /// <returns>A reader positioned at the first layer record.</returns>
    /// <exception cref="QGenFormatException">As for the path overload (bytes after the model are not checked).</exception>
    public static QGenReader OpenRead(Stream stream, string model, string graphHash)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return Open(QGenImage.Read(stream, QGenImage.NameOf(stream), toEndOfStream: false), model, graphHash);
    }

    /// <summary>Reads a model file's header and layer list without its model class (for tools); the checksum is verified.</summary>
    /// <param name="path">The file.</param>
    /// <returns>Model name, graph hash, version, size and the layer records.</returns>
    /// <exception cref="QGenFormatException">The file is corrupted, truncated or not a model file.</exception>
    public static QGenFileInfo ReadInfo(string path) => QGenImage.Read(path).ToInfo();

    /// <summary>As <see cref="ReadInfo(string)"/>, for one model at the stream's current position.</summary>
    /// <param name="stream">The stream.</param>
    /// <returns>Model name, graph hash, version, size and the layer records.</returns>
    /// <exception cref="QGenFormatException">The bytes are corrupted, truncated or not a model file.</exception>
    public static QGenFileInfo ReadInfo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return QGenImage.Read(stream, QGenImage.NameOf(stream), toEndOfStream: false).ToInfo();
    }

    /// <summary>
    /// Reads and decodes every layer record of a model file without its model class (for tools such as
    /// <c>quantgen inspect</c>): the same checks as a load — size, checksum, framing, and each layer rebuilt through its
    /// constructor, which refuses invalid values — but not the model name and graph hash, which are returned instead.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <returns>The header and layer list, and each layer as its int8 class (weights, qparams, options).</returns>
    /// <exception cref="QGenFormatException">The file is corrupted, truncated, not a model file, or a layer's values are invalid.</exception>
    public static QGenFileContents ReadContents(string path)
    {
        QGenImage image = QGenImage.Read(path);
        var layers = new IQuantizedLayer[image.Layers.Length];
        for (int i = 0; i < layers.Length; i++)
        {
            layers[i] = LayerCodecs.Read(image, image.Layers[i]);
        }

        return new QGenFileContents(image.ToInfo(), layers);
    }

    /// <summary>
    /// Loads a model bound at <c>Prepare()</c> from its file without its model class: such a file carries the bound graph
    /// (which layer reads which value), so the int8 model runs as saved — for tools (<c>quantgen export</c>, <c>bench</c>).
    /// </summary>
    /// <param name="path">The file.</param>
    /// <returns>The int8 model.</returns>
    /// <exception cref="QGenFormatException">The file is corrupted, truncated, not a model file, or its graph or layers are invalid.</exception>
    /// <exception cref="NotSupportedException">
    /// The file holds a model of the generated form, whose graph is compiled into its class and not stored in the file;
    /// the message says how to load it (with the class, <c>M.Quantized.Load(path)</c>).
    /// </exception>
    public static Binding.BoundQuantizedModel LoadBoundModel(string path)
    {
        QGenImage image = QGenImage.Read(path);
        if (!CarriesGraph(image.ToInfo()))
        {
            throw new NotSupportedException(
                $"{image.FileName}: model {image.Model} was saved from its generated form: which layer reads which value is compiled into the class {image.Model}, not stored in the file, so the file cannot run without that class. Load it in code with {image.Model}.Quantized.Load(path).");
        }

        using var reader = new QGenReader(image);
        return new Binding.FileBoundQuantizedModel(Binding.BoundQuantizedPlan.Read(reader, image.Model, image.GraphHash));
    }

    /// <summary>Whether a file holds a model bound at <c>Prepare()</c>, whose first record is its graph (so <see cref="LoadBoundModel"/> can load it).</summary>
    /// <param name="info">The file's header and layer list.</param>
    /// <returns>True for a bound model's file.</returns>
    public static bool CarriesGraph(QGenFileInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        return info.Layers.Count > 0 && info.Layers[0].Kind == QGenLayerKind.BoundGraph;
    }

    private static QGenReader Open(QGenImage image, string model, string graphHash)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentNullException.ThrowIfNull(graphHash);
        string file = image.FileName;
        if (image.Model != model)
        {
            throw new QGenFormatException(file, QGenFormatError.ModelMismatch,
                $"{file}: the file holds model {image.Model}, not {model}.");
        }

        if (image.GraphHash != graphHash)
        {
            throw new QGenFormatException(file, QGenFormatError.GraphMismatch,
                $"{file}: the file was saved from a different version of model {model} (graph {image.GraphHash}, this build is {graphHash}); re-export it: Prepare, calibrate, Convert and Save with this build.");
        }

        return new QGenReader(image);
    }

    // The whole file in memory: preamble, body (header, then one record per layer), CRC-32C.
    private static ByteWriter Encode(IQuantizedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        ModelGraph graph = model.Graph ?? throw new ArgumentException("The model's Graph is null.", nameof(model));
        IReadOnlyList<IQuantizedLayer> layers = model.Layers ?? throw new ArgumentException($"{graph.Model}: the model's Layers is null.", nameof(model));
        string modelName = graph.Model;
        CheckString(modelName, modelName, "model name");
        CheckString(modelName, graph.Hash, "graph hash");
        if (modelName.Length == 0)
        {
            throw new ArgumentException("The model's name is empty.", nameof(model));
        }

        if (layers.Count > QGenLayout.MaxLayers)
        {
            throw new NotSupportedException($"{modelName}: {layers.Count} layers; a .qgen file holds at most {QGenLayout.MaxLayers}.");
        }

        var writer = new ByteWriter(EstimateBytes(layers));
        writer.Bytes(QGenLayout.Magic);
        writer.U16(QGenLayout.Version);
        writer.U16(0);
        writer.U64(0); // body length, patched below
        writer.String(modelName);
        writer.String(graph.Hash);
        writer.U32((uint)layers.Count);
        for (int i = 0; i < layers.Count; i++)
        {
            IQuantizedLayer layer = layers[i] ?? throw new ArgumentException($"{modelName}: Layers[{i}] is null.", nameof(model));
            QGenLayerKind kind = LayerCodecs.KindOf(layer) ?? throw new NotSupportedException(
                $"{modelName}: layer '{layer.Layer}' is a {layer.GetType().FullName}, which a .qgen file cannot hold: the file stores int8 layers and float ops described as data, and this op runs code QuantGen cannot describe (a [NoQuantize] island's module, a fallback made from a function). Quantize that op, or keep the model in code.");
            CheckString(modelName, layer.Layer, $"layer name '{layer.Layer}'");
            CheckString(modelName, layer.Model, $"model name of layer '{layer.Layer}'");
            if (string.IsNullOrEmpty(layer.Layer))
            {
                throw new ArgumentException($"{modelName}: Layers[{i}] has an empty name.", nameof(model));
            }

            writer.U16((ushort)kind);
            writer.String(layer.Layer);
            writer.String(layer.Model == modelName ? string.Empty : layer.Model);
            int lengthAt = writer.ReserveU32();
            int start = writer.Length;
            LayerCodecs.Write(writer, layer);
            writer.PatchU32(lengthAt, (uint)(writer.Length - start));
        }

        writer.PatchU64(12, (ulong)(writer.Length - QGenLayout.PreambleBytes));
        writer.U32(Crc32C.Compute(writer.Written));
        return writer;
    }

    private static void CheckString(string model, string? value, string what)
    {
        ArgumentNullException.ThrowIfNull(value, what);
        if (Encoding.UTF8.GetByteCount(value) > QGenLayout.MaxStringBytes)
        {
            throw new ArgumentException($"{model}: the {what} is longer than the {QGenLayout.MaxStringBytes} UTF-8 bytes a .qgen file stores.");
        }
    }

    // Weights dominate: one byte per element, plus a little per layer.
    private static int EstimateBytes(IReadOnlyList<IQuantizedLayer> layers)
    {
        long bytes = 4096;
        foreach (IQuantizedLayer layer in layers)
        {
            bytes += 256 + layer switch
            {
                Modules.QuantizedConv2d conv => conv.Weight.Count + (8L * conv.Options.OutChannels),
                Modules.QuantizedConvTranspose2d deconv => deconv.Weight.Count + (8L * deconv.Options.OutChannels),
                Modules.QuantizedLinear linear => linear.Weight.Count + (8L * linear.OutFeatures),
                Modules.QuantizedBatchNorm2d norm => 8L * norm.Channels,
                _ => 0,
            };
        }

        return (int)Math.Min(bytes, Array.MaxLength);
    }
}
