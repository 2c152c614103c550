using System.Collections.Immutable;
using System.Composition;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Simplification;
using QuantGen.Generator.Diagnostics;
using static Microsoft.CodeAnalysis.CSharp.SyntaxFactory;

namespace QuantGen.CodeFixes;

/// <summary>
/// QG0007, QG0012, QG0017 inside the call of a member that can run in float as a whole (a Sequential, a [Quantize]
/// sub-module): adds <c>[NoQuantize]</c> to that member, so its call becomes one float island between a dequantize
/// and a quantize (PyTorch's <c>qconfig = None</c>) and nothing inside it has to be quantized. Offered only where the
/// generator set <see cref="FixProperties.NoQuantizeMember"/>: on a module type with no float-island form (a
/// Sigmoid member, say) the attribute would only turn the error into QG0021.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(AddNoQuantizeCodeFixProvider)), Shared]
public sealed class AddNoQuantizeCodeFixProvider : QuantGenCodeFixProvider
{
    private const string Key = "QuantGen.AddNoQuantize";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create(
        DiagnosticIds.UnsupportedModuleType,
        DiagnosticIds.BatchNormNotFused,
        DiagnosticIds.SequentialNotVisible);

    internal override string FixAllTitle(string equivalenceKey) => "Keep the members that cannot be quantized in float with [NoQuantize]";

    internal override async Task<FixPlan?> PlanAsync(Document document, Diagnostic diagnostic, CancellationToken cancellationToken)
    {
        if (diagnostic.Property(FixProperties.NoQuantizeMember) is not { } name
            || await Lookups.MemberAsync(document, diagnostic, name, cancellationToken).ConfigureAwait(false) is not { } found)
        {
            return null;
        }

        // Written in full and simplified to [NoQuantize] where 'using QuantGen;' is in scope. Brackets without elastic
        // trivia: the attribute stays on the member's line instead of being moved by the formatter.
        AttributeListSyntax attribute = AttributeList(
            Token(TriviaList(), SyntaxKind.OpenBracketToken, TriviaList()),
            null,
            SingletonSeparatedList(Attribute(ParseName("global::QuantGen.NoQuantize").WithAdditionalAnnotations(Simplifier.Annotation))),
            Token(TriviaList(), SyntaxKind.CloseBracketToken, TriviaList()));
        return new FixPlan(
            $"Keep '{name}' in float with [NoQuantize]",
            Key,
            ImmutableArray.Create(new FixEdit(found.Document, found.Declaration, Key, (editor, node) =>
                editor.ReplaceNode(node, (current, _) => SyntaxEdits.AddAttributeList((MemberDeclarationSyntax)current, attribute)))));
    }
}
