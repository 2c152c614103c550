using System.Collections.Generic;
using System.Collections.Immutable;
using System.Composition;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace QuantGen.CodeFixes;

/// <summary>
/// QG0001: makes the [Quantize] class and every type around it <c>partial</c>, so the generated part can join them.
/// The diagnostic is reported at the class or at a containing type; either way it carries the class as its first
/// additional location, and the fix covers the whole chain, so one fix removes all of that class's QG0001s.
/// </summary>
[ExportCodeFixProvider(Microsoft.CodeAnalysis.LanguageNames.CSharp, Name = nameof(MakePartialCodeFixProvider)), Shared]
public sealed class MakePartialCodeFixProvider : QuantGenCodeFixProvider
{
    private const string Key = "QuantGen.MakePartial";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create(DiagnosticIds.NotPartial);

    internal override string FixAllTitle(string equivalenceKey) => "Make the [Quantize] classes and their containing types partial";

    internal override async Task<FixPlan?> PlanAsync(Document document, Diagnostic diagnostic, CancellationToken cancellationToken)
    {
        if (await document.GetSyntaxRootAsync(cancellationToken).ConfigureAwait(false) is not { } root
            || Lookups.EnclosingType(root, diagnostic.Location) is not { } reported)
        {
            return null;
        }

        TypeDeclarationSyntax quantized = diagnostic.AdditionalLocationIn(document, 0) is { } classLocation
            && Lookups.EnclosingType(root, classLocation) is { } found
            ? found
            : reported;

        // The class and every type around it that is not partial yet (the reported one is among them).
        var chain = new List<TypeDeclarationSyntax>();
        foreach (TypeDeclarationSyntax type in quantized.AncestorsAndSelf().OfType<TypeDeclarationSyntax>().Concat(reported.AncestorsAndSelf().OfType<TypeDeclarationSyntax>()))
        {
            if (!type.Modifiers.Any(Microsoft.CodeAnalysis.CSharp.SyntaxKind.PartialKeyword) && !chain.Contains(type))
            {
                chain.Add(type);
            }
        }

        if (chain.Count == 0)
        {
            return null;
        }

        string name = quantized.Identifier.ValueText;
        string title = chain.Count == 1 && chain[0] == quantized
            ? $"Make '{name}' partial"
            : chain.Contains(quantized) ? $"Make '{name}' and its containing types partial" : $"Make the types containing '{name}' partial";
        ImmutableArray<FixEdit> edits = chain
            .Select(type => new FixEdit(document, type, Key, static (editor, node) =>
                editor.ReplaceNode(node, static (current, _) => SyntaxEdits.AddPartial((TypeDeclarationSyntax)current))))
            .ToImmutableArray();
        return new FixPlan(title, Key, edits);
    }
}
