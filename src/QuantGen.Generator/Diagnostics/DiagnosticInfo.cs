using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace QuantGen.Generator.Diagnostics;

/// <summary>
/// Where a diagnostic points, as plain data: a <see cref="Location"/> would keep the syntax tree (and
/// through it the compilation) alive in the incremental cache.
/// </summary>
internal sealed record LocationInfo(
    string FilePath, int Start, int Length, int StartLine, int StartCharacter, int EndLine, int EndCharacter)
{
    /// <summary>Captures a source location; null for locations outside source.</summary>
    public static LocationInfo? From(Location? location)
    {
        if (location is null || !location.IsInSource)
        {
            return null;
        }

        FileLinePositionSpan lines = location.GetLineSpan();
        return new LocationInfo(
            lines.Path ?? string.Empty,
            location.SourceSpan.Start,
            location.SourceSpan.Length,
            lines.StartLinePosition.Line,
            lines.StartLinePosition.Character,
            lines.EndLinePosition.Line,
            lines.EndLinePosition.Character);
    }

    /// <summary>Captures the location of a syntax node.</summary>
    public static LocationInfo? From(SyntaxNode? node) => From(node?.GetLocation());

    /// <summary>Captures the location of a token.</summary>
    public static LocationInfo? From(SyntaxToken token) => From(token.GetLocation());

    /// <summary>Rebuilds a Roslyn location at report time.</summary>
    public Location ToLocation() => Location.Create(
        FilePath,
        new TextSpan(Start, Length),
        new LinePositionSpan(new LinePosition(StartLine, StartCharacter), new LinePosition(EndLine, EndCharacter)));
}

/// <summary>A diagnostic as equatable data: the rule's ID, where it points and its message arguments.</summary>
internal sealed record DiagnosticInfo(string Id, LocationInfo? Location, EquatableArray<string> MessageArgs)
{
    /// <summary>A diagnostic for <paramref name="descriptor"/> with its message arguments.</summary>
    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, LocationInfo? location, params string[] messageArgs) =>
        new(descriptor.Id, location, messageArgs.ToEquatableArray());

    /// <summary>The rule's severity.</summary>
    public bool IsError => DiagnosticDescriptors.Get(Id).DefaultSeverity == DiagnosticSeverity.Error;

    /// <summary>Turns the data back into a Roslyn diagnostic when it is reported.</summary>
    public Diagnostic ToDiagnostic() => Diagnostic.Create(
        DiagnosticDescriptors.Get(Id),
        Location?.ToLocation() ?? Microsoft.CodeAnalysis.Location.None,
        MessageArgs.Cast<object?>().ToArray());
}
