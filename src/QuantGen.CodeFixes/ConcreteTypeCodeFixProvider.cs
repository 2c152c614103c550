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

namespace QuantGen.CodeFixes;

/// <summary>
/// QG0007 on a member declared with a general type (<c>Module&lt;Tensor, Tensor&gt; conv1</c>, assigned
/// <c>Conv2d(...)</c>) in a class that keeps the generated form (it has QuantStub/DeQuantStub, [Fuse] or [QConfig]; a
/// class without them is bound at Prepare, where the general type is fine and no QG0007 fires): declares the member
/// with the type every assignment creates. Offered only where the generator found that one type and it is one it
/// quantizes (<see cref="FixProperties.ConcreteType"/>).
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(ConcreteTypeCodeFixProvider)), Shared]
public sealed class ConcreteTypeCodeFixProvider : QuantGenCodeFixProvider
{
    private const string Key = "QuantGen.ConcreteType";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create(DiagnosticIds.UnsupportedModuleType);

    internal override string FixAllTitle(string equivalenceKey) => "Declare module members with the type they are assigned";

    internal override async Task<FixPlan?> PlanAsync(Document document, Diagnostic diagnostic, CancellationToken cancellationToken)
    {
        if (diagnostic.Property(FixProperties.ConcreteTypeMember) is not { } name
            || diagnostic.Property(FixProperties.ConcreteType) is not { } typeName
            || await Lookups.MemberAsync(document, diagnostic, name, cancellationToken).ConfigureAwait(false) is not { } found)
        {
            return null;
        }

        TypeSyntax? declared = found.Declaration switch
        {
            FieldDeclarationSyntax field => field.Declaration.Type,
            PropertyDeclarationSyntax property => property.Type,
            _ => null,
        };
        if (declared is null)
        {
            return null;
        }

        // Fully qualified, then simplified as far as the file's usings allow; a nullable declaration stays nullable.
        TypeSyntax concrete = SyntaxFactory.ParseTypeName(typeName).WithAdditionalAnnotations(Simplifier.Annotation);
        TypeSyntax replacement = (declared is NullableTypeSyntax ? SyntaxFactory.NullableType(concrete) : concrete).WithTriviaFrom(declared);
        string shortName = typeName.Substring(typeName.LastIndexOf('.') + 1);
        return new FixPlan(
            $"Declare '{name}' as {shortName}",
            Key,
            ImmutableArray.Create(new FixEdit(found.Document, declared, Key, (editor, node) => editor.ReplaceNode(node, replacement))));
    }
}
