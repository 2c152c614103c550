using System;
using System.Buffers.Binary;
using System.IO;

namespace QuantGen.Serialization;

/// <summary>The fixed facts of the <c>.qgen</c> layout (docs/model-file.md) and its limits.</summary>
internal static class QGenLayout
{
    /// <summary>
    /// The format version this build writes. Version 2 stores the integer weights of dynamic and weight-only float ops
    /// as bytes (version 1 stored them as float32, four times the size); every other payload is the same.
    /// </summary>
    public const int Version = 2;

    /// <summary>The oldest format version this build reads: a version-1 file is read as version 2 (its float32 tensors are still valid).</summary>
    public const int OldestReadableVersion = 1;

    /// <summary>magic (8) + version (2) + flags (2) + body length (8).</summary>
    public const int PreambleBytes = 20;

    /// <summary>The CRC-32C after the body.</summary>
    public const int ChecksumBytes = 4;

    /// <summary>Longest model name, graph hash or layer name, in UTF-8 bytes.</summary>
    public const int MaxStringBytes = 1024;

    /// <summary>Most layer records in one file.</summary>
    public const int MaxLayers = 100_000;

    /// <summary>Highest rank of a stored weight tensor or reshape target.</summary>
    public const int MaxRank = 8;

    /// <summary>kind (2) + empty-name length (2) + owner length (2) + payload length (4): no record is shorter.</summary>
    public const int MinRecordBytes = 10;

    /// <summary>Largest body: the whole file must fit one array (one read, no streaming parser).</summary>
    public const long MaxBodyBytes = (long)int.MaxValue - PreambleBytes - ChecksumBytes - 64;

    /// <summary>The magic: "QGEN", then CR LF, Ctrl-Z, LF (as PNG's, so text-mode transfers and truncated <c>type</c> output show as corruption).</summary>
    public static ReadOnlySpan<byte> Magic => [0x51, 0x47, 0x45, 0x4E, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>A non-seekable stream is read in growing chunks so a header's claim is never allocated before the bytes arrive.</summary>
    public const int FirstChunkBytes = 64 * 1024;
}

/// <summary>
/// A whole <c>.qgen</c> file in memory, checked: magic, version, flags, size, checksum (before anything
/// else is parsed), then the body's header and record framing. Payloads are decoded later by
/// <see cref="LayerCodecs"/>.
/// </summary>
internal sealed class QGenImage
{
    private QGenImage(byte[] buffer, string fileName, int version, int flags, string model, string graphHash, uint checksum, QGenLayerInfo[] layers)
    {
        Buffer = buffer;
        FileName = fileName;
        Version = version;
        Flags = flags;
        Model = model;
        GraphHash = graphHash;
        Checksum = checksum;
        Layers = layers;
    }

    public byte[] Buffer { get; }

    public string FileName { get; }

    public int Version { get; }

    public int Flags { get; }

    public string Model { get; }

    public string GraphHash { get; }

    public uint Checksum { get; }

    public QGenLayerInfo[] Layers { get; }

    public QGenFileInfo ToInfo() => new(FileName, Version, Flags, Model, GraphHash, Buffer.Length, Checksum, Layers);

    /// <summary>Opens and reads a whole file; it must end where its header says.</summary>
    public static QGenImage Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        return Read(stream, path, toEndOfStream: true);
    }

    /// <summary>
    /// Reads one model from <paramref name="stream"/>'s current position, exactly as many bytes as its
    /// header states. With <paramref name="toEndOfStream"/>, bytes after it are an error.
    /// </summary>
    public static QGenImage Read(Stream stream, string fileName, bool toEndOfStream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead)
        {
            throw new ArgumentException($"{fileName}: the stream cannot be read.", nameof(stream));
        }

        var preamble = new byte[QGenLayout.PreambleBytes];
        int got = stream.ReadAtLeast(preamble, preamble.Length, throwOnEndOfStream: false);
        long total = CheckPreamble(preamble.AsSpan(0, got), fileName, out int version, out int flags);
        byte[] buffer = stream.CanSeek
            ? ReadSeekable(stream, preamble, total, fileName, toEndOfStream)
            : ReadInChunks(stream, preamble, total, fileName);

        int checksumAt = buffer.Length - QGenLayout.ChecksumBytes;
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(checksumAt));
        uint computed = Crc32C.Compute(buffer.AsSpan(0, checksumAt));
        if (computed != stored)
        {
            throw new QGenFormatException(fileName, QGenFormatError.ChecksumMismatch,
                $"{fileName}: checksum mismatch: the content's CRC-32C is {computed:x8} but the file stores {stored:x8}; the file is corrupted or was changed after it was saved.");
        }

        return Parse(buffer, fileName, version, flags, stored);
    }

    // Checks what the first 20 bytes say before anything else is read; returns the file's total size.
    private static long CheckPreamble(ReadOnlySpan<byte> preamble, string fileName, out int version, out int flags)
    {
        version = 0;
        flags = 0;
        ReadOnlySpan<byte> magic = QGenLayout.Magic;
        int magicBytes = Math.Min(preamble.Length, magic.Length);
        if (!preamble[..magicBytes].SequenceEqual(magic[..magicBytes]))
        {
            throw new QGenFormatException(fileName, QGenFormatError.BadMagic,
                $"{fileName}: not a QuantGen model file: it starts with {Convert.ToHexString(preamble[..magicBytes])}, a .qgen file with {Convert.ToHexString(magic)} (\"QGEN\\r\\n\\x1A\\n\").");
        }

        if (preamble.Length < QGenLayout.PreambleBytes)
        {
            throw new QGenFormatException(fileName, QGenFormatError.Truncated,
                $"{fileName}: truncated: {(preamble.Length == 0 ? "the file is empty" : $"only {preamble.Length} bytes")}; a .qgen header alone is {QGenLayout.PreambleBytes} bytes.");
        }

        version = BinaryPrimitives.ReadUInt16LittleEndian(preamble[8..]);
        if (version is < QGenLayout.OldestReadableVersion or > QGenLayout.Version)
        {
            string why = version > QGenLayout.Version ? " (written by a newer QuantGen: update QuantGen.Runtime, or re-save the model with this one)" : string.Empty;
            throw new QGenFormatException(fileName, QGenFormatError.UnsupportedVersion,
                $"{fileName}: format version {version}; this build of QuantGen reads versions {QGenLayout.OldestReadableVersion} to {QGenLayout.Version}{why}.");
        }

        flags = BinaryPrimitives.ReadUInt16LittleEndian(preamble[10..]);
        if (flags != 0)
        {
            throw new QGenFormatException(fileName, QGenFormatError.UnknownFlags,
                $"{fileName}: header flags 0x{flags:x4}; version {version} defines none, so this file needs a newer reader or is corrupted.");
        }

        ulong body = BinaryPrimitives.ReadUInt64LittleEndian(preamble[12..]);
        if (body > QGenLayout.MaxBodyBytes)
        {
            throw new QGenFormatException(fileName, QGenFormatError.TooLarge,
                $"{fileName}: the header claims a body of {body} bytes; a .qgen file holds at most {QGenLayout.MaxBodyBytes} (the header is corrupted).");
        }

        return QGenLayout.PreambleBytes + (long)body + QGenLayout.ChecksumBytes;
    }

    // The stream's length is known: compare the claim with it before allocating anything.
    private static byte[] ReadSeekable(Stream stream, byte[] preamble, long total, string fileName, bool toEndOfStream)
    {
        long expected = total - QGenLayout.PreambleBytes;
        long available = stream.Length - stream.Position;
        if (available < expected)
        {
            throw new QGenFormatException(fileName, QGenFormatError.Truncated,
                $"{fileName}: truncated: the header says the file is {total} bytes, but it has only {QGenLayout.PreambleBytes + available}.");
        }

        if (toEndOfStream && available > expected)
        {
            throw new QGenFormatException(fileName, QGenFormatError.TrailingData,
                $"{fileName}: {available - expected} bytes follow the end of the model ({total} bytes, as the header says); the file was appended to or is not one .qgen file.");
        }

        var buffer = new byte[total];
        preamble.CopyTo(buffer, 0);
        int read = stream.ReadAtLeast(buffer.AsSpan(QGenLayout.PreambleBytes), (int)expected, throwOnEndOfStream: false);
        if (read < expected)
        {
            throw new QGenFormatException(fileName, QGenFormatError.Truncated,
                $"{fileName}: truncated: the header says the file is {total} bytes, but reading stopped after {QGenLayout.PreambleBytes + read}.");
        }

        return buffer;
    }

    // Unknown length: grow as bytes arrive, so a false claim costs at most twice what was really sent.
    private static byte[] ReadInChunks(Stream stream, byte[] preamble, long total, string fileName)
    {
        var buffer = new byte[Math.Min(total, QGenLayout.PreambleBytes + QGenLayout.FirstChunkBytes)];
        preamble.CopyTo(buffer, 0);
        int filled = QGenLayout.PreambleBytes;
        while (filled < total)
        {
            if (filled == buffer.Length)
            {
                Array.Resize(ref buffer, (int)Math.Min(total, (long)buffer.Length * 2));
            }

            int read = stream.Read(buffer, filled, buffer.Length - filled);
            if (read == 0)
            {
                throw new QGenFormatException(fileName, QGenFormatError.Truncated,
                    $"{fileName}: truncated: the header says the file is {total} bytes, but the stream ends after {filled}.");
            }

            filled += read;
        }

        return buffer;
    }

    // The body: model name, graph hash, layer count, then each record's framing (payloads are skipped).
    private static QGenImage Parse(byte[] buffer, string fileName, int version, int flags, uint checksum)
    {
        var body = new ByteReader(buffer, QGenLayout.PreambleBytes, buffer.Length - QGenLayout.ChecksumBytes, fileName, "header");
        int at = body.Position;
        string model = body.String("the model name");
        if (model.Length == 0)
        {
            throw body.Fail(QGenFormatError.Malformed, "the model name is empty", at);
        }

        string graphHash = body.String("the graph hash");
        int count = body.Count("the layer count", QGenLayout.MinRecordBytes, QGenLayout.MaxLayers);
        var layers = new QGenLayerInfo[count];
        for (int i = 0; i < count; i++)
        {
            at = body.Position;
            ushort kind = body.U16($"layer record {i}'s kind");
            if (!Enum.IsDefined((QGenLayerKind)kind))
            {
                throw body.Fail(QGenFormatError.Malformed, $"layer record {i} has kind {kind}, which this build of QuantGen does not know", at);
            }

            at = body.Position;
            string name = body.String($"layer record {i}'s name");
            if (name.Length == 0)
            {
                throw body.Fail(QGenFormatError.Malformed, $"layer record {i} has an empty name", at);
            }

            string owner = body.String($"layer '{name}''s model name");
            at = body.Position;
            uint payload = body.U32($"layer '{name}''s payload length");
            body.CheckFits(payload, $"layer '{name}''s payload ({payload} bytes, as its record claims)", at);
            layers[i] = new QGenLayerInfo(name, (QGenLayerKind)kind, owner.Length == 0 ? model : owner, body.Position, (int)payload);
            body.Skip((int)payload, $"layer '{name}''s payload");
        }

        if (body.Remaining != 0)
        {
            throw new QGenFormatException(fileName, QGenFormatError.TrailingData,
                $"{fileName}: {body.Remaining} bytes follow the last of the {count} layer records the header announces (at byte {body.Position}).");
        }

        return new QGenImage(buffer, fileName, version, flags, model, graphHash, checksum, layers);
    }

    /// <summary>A name for a stream in messages: a FileStream's path, else its type.</summary>
    public static string NameOf(Stream stream) => stream is FileStream file ? file.Name : $"<{stream.GetType().Name}>";
}
