using System.Collections.Immutable;
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

/// <summary>One entry of a diagnostic's properties (keys in <see cref="FixProperties"/>).</summary>
internal sealed record DiagnosticProperty(string Key, string Value);

/// <summary>
/// A diagnostic as equatable data: the rule's ID, where it points and its message arguments; for the code
/// fixes, further locations and properties (<see cref="FixProperties"/>).
/// </summary>
internal sealed record DiagnosticInfo(string Id, LocationInfo? Location, EquatableArray<string> MessageArgs)
{
    /// <summary>Places a code fix edits besides <see cref="Location"/> (the [Quantize] class, the [Fuse] attribute).</summary>
    public EquatableArray<LocationInfo> AdditionalLocations { get; init; }

    /// <summary>What a code fix needs to know; empty when no fix applies.</summary>
    public EquatableArray<DiagnosticProperty> Properties { get; init; }

    /// <summary>A diagnostic for <paramref name="descriptor"/> with its message arguments.</summary>
    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, LocationInfo? location, params string[] messageArgs) =>
        new(descriptor.Id, location, messageArgs.ToEquatableArray());

    /// <summary>The same diagnostic with one more additional location (ignored when null).</summary>
    public DiagnosticInfo WithAdditionalLocation(LocationInfo? location) =>
        location is null ? this : this with { AdditionalLocations = AdditionalLocations.Append(location).ToEquatableArray() };

    /// <summary>The same diagnostic with one more property.</summary>
    public DiagnosticInfo WithProperty(string key, string value) =>
        this with { Properties = Properties.Append(new DiagnosticProperty(key, value)).ToEquatableArray() };

    /// <summary>The rule's severity.</summary>
    public bool IsError => DiagnosticDescriptors.Get(Id).DefaultSeverity == DiagnosticSeverity.Error;

    /// <summary>
    /// Turns the data back into a Roslyn diagnostic when it is reported, with its help link in the documentation
    /// at <paramref name="documentationUrl"/> (see <see cref="DiagnosticDescriptors.HelpLink"/>).
    /// </summary>
    public Diagnostic ToDiagnostic(string? documentationUrl = null) => Diagnostic.Create(
        DiagnosticDescriptors.Get(Id, documentationUrl),
        Location?.ToLocation() ?? Microsoft.CodeAnalysis.Location.None,
        AdditionalLocations.Select(l => l.ToLocation()),
        Properties.Count == 0 ? null : Properties.ToImmutableDictionary(p => p.Key, p => (string?)p.Value),
        MessageArgs.Cast<object?>().ToArray());
}
