using System;
using System.IO;

namespace QuantGen.Serialization;

/// <summary>What was wrong with a <c>.qgen</c> file (see docs/model-file.md).</summary>
public enum QGenFormatError
{
    /// <summary>The file ends before the size its header states, or is shorter than a header.</summary>
    Truncated,

    /// <summary>The first 8 bytes are not the <c>.qgen</c> magic: not a QuantGen model file.</summary>
    BadMagic,

    /// <summary>A format version this build does not read.</summary>
    UnsupportedVersion,

    /// <summary>Header flags this build does not know.</summary>
    UnknownFlags,

    /// <summary>The header claims more bytes than the format allows (about 2 GB).</summary>
    TooLarge,

    /// <summary>The CRC-32C of the content does not match the one stored at the end: the file is corrupted.</summary>
    ChecksumMismatch,

    /// <summary>Bytes after the end the header states, or after the last layer record.</summary>
    TrailingData,

    /// <summary>A string, count, size or tag that cannot be right (longer than what remains, over a limit, not UTF-8, unknown).</summary>
    Malformed,

    /// <summary>The file holds a different model class.</summary>
    ModelMismatch,

    /// <summary>The file was saved from a different version of the model's code (its graph hash differs).</summary>
    GraphMismatch,

    /// <summary>The layer records do not line up with the layers the model reads (name, kind, missing or extra).</summary>
    LayerMismatch,

    /// <summary>A layer's stored values are rejected by its constructor (a bad scale, shape or option).</summary>
    InvalidLayer,
}

/// <summary>
/// A <c>.qgen</c> model file that cannot be loaded: corrupted, truncated, not a model file, or saved from a
/// different model. The message names the file and what was wrong; <see cref="Error"/> says which check failed.
/// </summary>
/// <remarks>
/// An <see cref="IOException"/> (<see cref="InvalidDataException"/>, the natural base, is sealed), so a
/// caller's <c>catch (IOException)</c> around a load covers a missing file and a bad one alike.
/// </remarks>
public sealed class QGenFormatException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="fileName">The file's path, or a description of the stream.</param>
    /// <param name="error">Which check failed.</param>
    /// <param name="message">The full message (it starts with <paramref name="fileName"/>).</param>
    /// <param name="inner">The exception that revealed the problem, if any.</param>
    public QGenFormatException(string fileName, QGenFormatError error, string message, Exception? inner = null)
        : base(message, inner)
    {
        FileName = fileName;
        Error = error;
    }

    /// <summary>The file's path, or a description of the stream it was read from.</summary>
    public string FileName { get; }

    /// <summary>Which check failed.</summary>
    public QGenFormatError Error { get; }
}
