using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Modules;

namespace QuantGen.Serialization;

/// <summary>
/// A <c>.qgen</c> file opened for one model (<see cref="QGenFile.OpenRead(string, string, string)"/>):
/// already read in full, checksum verified, model name and graph hash matched. The generated
/// <c>M.Quantized.Load</c> reads the layers in forward order, one <see cref="Read{T}"/> or
/// <see cref="ReadOptional{T}"/> per constructor argument.
/// </summary>
/// <remarks>
/// <see cref="Dispose"/> checks that every record was read: a file with layer records the model did not
/// ask for is refused there (unless a read already failed, or nothing was read at all). Not thread-safe.
/// </remarks>
public sealed class QGenReader : IDisposable
{
    private QGenImage? _image;
    private readonly QGenLayerInfo[] _layers;
    private int _next;
    private bool _failed;

    internal QGenReader(QGenImage image)
    {
        _image = image;
        _layers = image.Layers;
        FileName = image.FileName;
        Model = image.Model;
        GraphHash = image.GraphHash;
        Version = image.Version;
    }

    /// <summary>The file's path, or a description of the stream.</summary>
    public string FileName { get; }

    /// <summary>The model class the file holds.</summary>
    public string Model { get; }

    /// <summary>The graph hash the file was saved with.</summary>
    public string GraphHash { get; }

    /// <summary>The file's format version.</summary>
    public int Version { get; }

    /// <summary>The layer records in file order.</summary>
    public IReadOnlyList<QGenLayerInfo> Layers => _layers;

    /// <summary>How many layer records have been read.</summary>
    public int LayersRead => _next;

    /// <summary>Reads the next layer record, which must be <paramref name="layer"/> of class <typeparamref name="T"/>.</summary>
    /// <typeparam name="T">The layer class (one of <c>QuantGen.Modules</c>' int8 layers).</typeparam>
    /// <param name="layer">The layer name the model expects next (<c>layer1.0.conv1</c>).</param>
    /// <returns>The layer, rebuilt through its public constructor.</returns>
    /// <exception cref="QGenFormatException">The next record is missing, has another name or kind, or its values are invalid.</exception>
    public T Read<T>(string layer) where T : class, IQuantizedLayer =>
        ReadNext<T>(layer, optional: false)!;

    /// <summary>
    /// Reads the next layer record if it is <paramref name="layer"/>; returns null (and reads nothing) when
    /// the next record is another layer or there is none: an optional layer that was absent when saved.
    /// </summary>
    /// <typeparam name="T">The layer class.</typeparam>
    /// <param name="layer">The optional layer's name.</param>
    /// <returns>The layer, or null.</returns>
    /// <exception cref="QGenFormatException">The record has that name but another kind, or its values are invalid.</exception>
    public T? ReadOptional<T>(string layer) where T : class, IQuantizedLayer =>
        ReadNext<T>(layer, optional: true);

    /// <summary>
    /// Reads the next record of an op the QConfigMapping may have kept in float: the int8 layer of class
    /// <typeparamref name="T"/>, or a float op record of that name (then returned as a <see cref="FloatFallback"/>).
    /// </summary>
    /// <typeparam name="T">The int8 layer class.</typeparam>
    /// <param name="layer">The layer name the model expects next.</param>
    /// <param name="optional">The layer is optional (a construction-time condition): both are null when the next record is another layer.</param>
    /// <returns>Exactly one of the two, or neither for an absent optional layer.</returns>
    /// <exception cref="QGenFormatException">The record is missing, has another name or kind, or its values are invalid.</exception>
    public (T? Int8, FloatFallback? Float) ReadInt8OrFloat<T>(string layer, bool optional) where T : class, IQuantizedLayer
    {
        ArgumentException.ThrowIfNullOrEmpty(layer);
        if (_image is not null && _next < _layers.Length && _layers[_next].Name == layer && _layers[_next].Kind == QGenLayerKind.FloatOp)
        {
            var op = (FloatOp)ReadNext(layer, QGenLayerKind.FloatOp);
            return (null, new FloatFallback(op.Model, op.Layer, op, op.ToString()));
        }

        return (ReadNext<T>(layer, optional), null);
    }

    /// <summary>Releases the file's bytes, after checking that the model read every layer record.</summary>
    /// <exception cref="QGenFormatException">Layers were read, none failed, and records remain unread.</exception>
    public void Dispose()
    {
        if (_image is null)
        {
            return;
        }

        _image = null;
        if (!_failed && _next > 0 && _next < _layers.Length)
        {
            throw new QGenFormatException(FileName, QGenFormatError.LayerMismatch,
                $"{FileName}: model {Model} read {_next} layers, but the file holds {_layers.Length}; not read: {string.Join(", ", _layers.Skip(_next).Select(l => $"'{l.Name}' ({l.Kind})"))}.");
        }
    }

    private T? ReadNext<T>(string layer, bool optional) where T : class, IQuantizedLayer
    {
        QGenLayerKind expected = LayerCodecs.KindOf(typeof(T))
            ?? throw new NotSupportedException($"{Model}: layer '{layer}': {typeof(T).FullName} is not a layer class a .qgen file holds.");
        return (T?)ReadNext(layer, expected, typeof(T).Name, optional);
    }

    /// <summary>Reads the next record, which must be <paramref name="layer"/> of kind <paramref name="expected"/> (a model bound at Prepare reads its kinds from its graph record).</summary>
    internal IQuantizedLayer ReadNext(string layer, QGenLayerKind expected) => ReadNext(layer, expected, expected.ToString(), optional: false)!;

    private IQuantizedLayer? ReadNext(string layer, QGenLayerKind expected, string expectedType, bool optional)
    {
        ArgumentException.ThrowIfNullOrEmpty(layer);
        QGenImage image = _image ?? throw new ObjectDisposedException(nameof(QGenReader), $"{FileName}: the reader is disposed.");
        try
        {
            if (_next >= _layers.Length)
            {
                if (optional)
                {
                    return null;
                }

                throw Mismatch($"model {Model} expects layer '{layer}' ({expected}) next, but the file ends after its {_layers.Length} layer records");
            }

            QGenLayerInfo record = _layers[_next];
            if (record.Name != layer)
            {
                if (optional)
                {
                    return null;
                }

                throw Mismatch($"model {Model} expects layer '{layer}' ({expected}) as record {_next}, but the file has '{record.Name}' ({record.Kind}) there");
            }

            if (record.Kind != expected)
            {
                throw Mismatch($"layer '{layer}' is a {record.Kind} record, but model {Model} expects a {expected} ({expectedType})");
            }

            IQuantizedLayer result = LayerCodecs.Read(image, record);
            _next++;
            return result;
        }
        catch
        {
            _failed = true;
            throw;
        }
    }

    private QGenFormatException Mismatch(string message) =>
        new(FileName, QGenFormatError.LayerMismatch, $"{FileName}: {message}.");
}
