using System;
using System.Text;
using System.Threading;

namespace QuantGen.Generator.Emitting;

/// <summary>
/// Writes C# line by line with four-space indentation and '\n' line ends, so the output is the same on
/// every machine (baselines compare it as text).
/// </summary>
internal sealed class SourceWriter
{
    private readonly StringBuilder _text = new();
    private readonly CancellationToken _cancellationToken;
    private int _indent;

    /// <summary>A writer whose every line checks <paramref name="cancellationToken"/>, so each emitter loop stops when the build is cancelled.</summary>
    public SourceWriter(CancellationToken cancellationToken = default) => _cancellationToken = cancellationToken;

    /// <summary>Writes one line at the current indentation (an empty line has no indentation).</summary>
    public void Line(string line = "")
    {
        _cancellationToken.ThrowIfCancellationRequested();
        if (line.Length > 0)
        {
            _text.Append(' ', _indent * 4);
            _text.Append(line);
        }

        _text.Append('\n');
    }

    /// <summary>Writes <c>{</c> and indents.</summary>
    public void Open()
    {
        Line("{");
        _indent++;
    }

    /// <summary>Unindents and writes <c>}</c> followed by <paramref name="suffix"/>.</summary>
    public void Close(string suffix = "")
    {
        if (_indent == 0)
        {
            throw new InvalidOperationException("Close() without a matching Open().");
        }

        _indent--;
        Line("}" + suffix);
    }

    /// <summary>Indents the lines written until the returned scope is disposed.</summary>
    public IndentScope Indent()
    {
        _indent++;
        return new IndentScope(this);
    }

    /// <summary>Writes a <c>// </c> comment line.</summary>
    public void Comment(string text) => Line("// " + text);

    /// <inheritdoc/>
    public override string ToString() => _text.ToString();

    /// <summary>Undoes one <see cref="Indent"/>.</summary>
    public readonly struct IndentScope : IDisposable
    {
        private readonly SourceWriter _writer;

        public IndentScope(SourceWriter writer) => _writer = writer;

        public void Dispose() => _writer._indent--;
    }
}
