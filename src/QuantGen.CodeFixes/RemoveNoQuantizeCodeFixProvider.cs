using System.Collections.Immutable;
using System.Composition;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using QuantGen.Generator.Diagnostics;

namespace QuantGen.CodeFixes;

/// <summary>
/// QG0020 (a [NoQuantize] member in a [Fuse] group) and QG0021 ([NoQuantize] on a QuantStub, DeQuantStub, Identity or
/// Dropout, which run no op to keep in float): removes the member's <c>[NoQuantize]</c>. Offered where the generator
/// set <see cref="FixProperties.RemoveNoQuantizeMember"/>.
/// </summary>
[ExportCodeFixProvider(Microsoft.CodeAnalysis.LanguageNames.CSharp, Name = nameof(RemoveNoQuantizeCodeFixProvider)), Shared]
public sealed class RemoveNoQuantizeCodeFixProvider : QuantGenCodeFixProvider
{
    private const string Key = "QuantGen.RemoveNoQuantize";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create(
        DiagnosticIds.FuseNoQuantizeMember,
        DiagnosticIds.NoQuantizeUnsupported);

    internal override string FixAllTitle(string equivalenceKey) => "Remove [NoQuantize] where it cannot apply";

    internal override async Task<FixPlan?> PlanAsync(Document document, Diagnostic diagnostic, CancellationToken cancellationToken)
    {
        if (diagnostic.Property(FixProperties.RemoveNoQuantizeMember) is not { } name
            || await Lookups.MemberAsync(document, diagnostic, name, cancellationToken).ConfigureAwait(false) is not { } found
            || await found.Document.GetSemanticModelAsync(cancellationToken).ConfigureAwait(false) is not { } model)
        {
            return null;
        }

        AttributeSyntax? noQuantize = found.Declaration.AttributeLists
            .SelectMany(l => l.Attributes)
            .FirstOrDefault(a => model.GetTypeInfo(a, cancellationToken).Type?.ToDisplayString() == "QuantGen.NoQuantizeAttribute");
        if (noQuantize is null)
        {
            return null;
        }

        return new FixPlan(
            $"Remove [NoQuantize] from '{name}'",
            Key,
            ImmutableArray.Create(new FixEdit(found.Document, found.Declaration, Key, (editor, node) =>
                editor.ReplaceNode(node, (current, _) => SyntaxEdits.RemoveAttribute((MemberDeclarationSyntax)current, noQuantize)))));
    }
}
