using System.Collections.Immutable;
using System.Composition;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using QuantGen.Generator.Diagnostics;

namespace QuantGen.CodeFixes;

/// <summary>
/// [Fuse] errors (QG0003 unknown member, QG0004 not following each other, QG0005 unsupported sequence, QG0013 fused
/// twice, QG0020 a [NoQuantize] member): removes the bad entry, reorders the entries into forward's order, or removes
/// the attribute, as the diagnostic's <see cref="FixProperties.FuseFix"/> says. The generator picks the remedy that
/// leaves a valid group (a removed entry only when the rest is a supported sequence; a new order only when it is
/// both supported and the order forward calls the members in), so the fix never trades one [Fuse] error for another.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(FuseCodeFixProvider)), Shared]
public sealed class FuseCodeFixProvider : QuantGenCodeFixProvider
{
    private const string RemoveArgumentKey = "QuantGen.Fuse.RemoveArgument";
    private const string RemoveAttributeKey = "QuantGen.Fuse.RemoveAttribute";
    private const string ReorderKey = "QuantGen.Fuse.Reorder";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create(
        DiagnosticIds.FuseUnknownMember,
        DiagnosticIds.FuseNotConsecutive,
        DiagnosticIds.UnsupportedFusion,
        DiagnosticIds.FuseMemberRepeated,
        DiagnosticIds.FuseNoQuantizeMember);

    internal override string FixAllTitle(string equivalenceKey) => equivalenceKey switch
    {
        RemoveArgumentKey => "Remove the [Fuse] entries that cannot be fused",
        ReorderKey => "List [Fuse] entries in the order forward calls them",
        _ => "Remove the [Fuse] attributes that cannot be applied",
    };

    internal override async Task<FixPlan?> PlanAsync(Document document, Diagnostic diagnostic, CancellationToken cancellationToken)
    {
        if (await Lookups.FuseAttributeAsync(document, diagnostic, cancellationToken).ConfigureAwait(false) is not { ArgumentList: { } arguments } attribute)
        {
            return null;
        }

        SeparatedSyntaxList<AttributeArgumentSyntax> list = arguments.Arguments;
        string names = string.Join(", ", list.Select(SyntaxEdits.FuseArgumentName));
        switch (diagnostic.Property(FixProperties.FuseFix))
        {
            case FixProperties.RemoveFuseArgument
                when int.TryParse(diagnostic.Property(FixProperties.FuseArgument), NumberStyles.None, CultureInfo.InvariantCulture, out int index) && index < list.Count:
            {
                AttributeArgumentSyntax argument = list[index];
                return new FixPlan(
                    $"Remove '{SyntaxEdits.FuseArgumentName(argument)}' from [Fuse({names})]",
                    RemoveArgumentKey,
                    ImmutableArray.Create(new FixEdit(document, argument, RemoveArgumentKey, static (editor, node) => editor.RemoveNode(node))));
            }

            case FixProperties.ReorderFuse when Order(diagnostic.Property(FixProperties.FuseOrder), list.Count) is { } order:
            {
                string reordered = string.Join(", ", order.Select(i => SyntaxEdits.FuseArgumentName(list[i])));
                return new FixPlan(
                    $"Reorder to [Fuse({reordered})], the order forward calls them",
                    ReorderKey,
                    ImmutableArray.Create(new FixEdit(document, arguments, ReorderKey, (editor, node) =>
                        editor.ReplaceNode(node, (current, _) => Reorder((AttributeArgumentListSyntax)current, order)))));
            }

            case FixProperties.RemoveFuseAttribute:
                return new FixPlan(
                    $"Remove [Fuse({names})]",
                    RemoveAttributeKey,
                    ImmutableArray.Create(new FixEdit(document, attribute, RemoveAttributeKey, static (editor, node) =>
                    {
                        var original = (AttributeSyntax)node;
                        editor.ReplaceNode(node.Parent!.Parent!, (current, _) => SyntaxEdits.RemoveAttribute((MemberDeclarationSyntax)current, original));
                    })));

            default:
                return null;
        }
    }

    /// <summary>The indices in "1,0" when they are a permutation of the <paramref name="count"/> arguments.</summary>
    private static int[]? Order(string? text, int count)
    {
        int[]? order = text?.Split(',').Select(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int i) ? i : -1).ToArray();
        return order is not null && order.Length == count && order.OrderBy(i => i).SequenceEqual(Enumerable.Range(0, count)) ? order : null;
    }

    /// <summary>The arguments in the new order; separators (and the spacing after them) stay where they were.</summary>
    private static AttributeArgumentListSyntax Reorder(AttributeArgumentListSyntax list, int[] order)
    {
        SeparatedSyntaxList<AttributeArgumentSyntax> arguments = list.Arguments;
        AttributeArgumentSyntax[] moved = order
            .Select((from, to) => arguments[from].WithTriviaFrom(arguments[to]))
            .ToArray();
        return list.WithArguments(SyntaxFactory.SeparatedList(moved, arguments.GetSeparators()));
    }
}
