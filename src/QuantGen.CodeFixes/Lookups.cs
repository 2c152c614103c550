using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace QuantGen.CodeFixes;

/// <summary>Finding what a diagnostic is about: its class, the member a property names, its [Fuse] attribute.</summary>
internal static class Lookups
{
    /// <summary>The value of a diagnostic property, or null.</summary>
    public static string? Property(this Diagnostic diagnostic, string key) =>
        diagnostic.Properties.TryGetValue(key, out string? value) && !string.IsNullOrEmpty(value) ? value : null;

    /// <summary>The diagnostic's additional location <paramref name="index"/> when it is in <paramref name="document"/>.</summary>
    public static Location? AdditionalLocationIn(this Diagnostic diagnostic, Document document, int index)
    {
        if (diagnostic.AdditionalLocations.Count <= index)
        {
            return null;
        }

        Location location = diagnostic.AdditionalLocations[index];
        return location.GetLineSpan().Path == document.FilePath || location.SourceTree?.FilePath == document.FilePath ? location : null;
    }

    /// <summary>The innermost type declaration around the diagnostic: the [Quantize] class for one in forward or on the class.</summary>
    public static TypeDeclarationSyntax? EnclosingType(SyntaxNode root, Location location)
    {
        if (!root.FullSpan.Contains(location.SourceSpan))
        {
            return null;
        }

        return root.FindToken(location.SourceSpan.Start).Parent?.AncestorsAndSelf().OfType<TypeDeclarationSyntax>().FirstOrDefault();
    }

    /// <summary>
    /// The declaration of the field or property <paramref name="name"/> of the class the diagnostic is in, and the
    /// document that holds it (another part of a partial class is fine). Null for a field declared together with
    /// others (<c>Conv2d a, b;</c>), which an attribute or a type change would affect as well.
    /// </summary>
    public static async Task<(Document Document, MemberDeclarationSyntax Declaration, ISymbol Member)?> MemberAsync(
        Document document, Diagnostic diagnostic, string name, CancellationToken cancellationToken)
    {
        SyntaxNode? root = await document.GetSyntaxRootAsync(cancellationToken).ConfigureAwait(false);
        SemanticModel? model = await document.GetSemanticModelAsync(cancellationToken).ConfigureAwait(false);
        if (root is null || model is null || EnclosingType(root, diagnostic.Location) is not { } typeSyntax
            || model.GetDeclaredSymbol(typeSyntax, cancellationToken) is not INamedTypeSymbol type)
        {
            return null;
        }

        ISymbol? member = type.GetMembers(name).FirstOrDefault(m => m is IFieldSymbol or IPropertySymbol && !m.IsStatic);
        SyntaxReference? reference = member?.DeclaringSyntaxReferences.FirstOrDefault();
        if (member is null || reference is null)
        {
            return null;
        }

        SyntaxNode syntax = await reference.GetSyntaxAsync(cancellationToken).ConfigureAwait(false);
        MemberDeclarationSyntax? declaration = syntax switch
        {
            VariableDeclaratorSyntax { Parent: VariableDeclarationSyntax { Variables.Count: 1, Parent: FieldDeclarationSyntax field } } => field,
            PropertyDeclarationSyntax property => property,
            _ => null,
        };
        Document? holder = document.Project.Solution.GetDocument(syntax.SyntaxTree);
        return declaration is null || holder is null ? null : (holder, declaration, member);
    }

    /// <summary>The [Fuse] attribute at the diagnostic's first additional location, with one argument per member.</summary>
    public static async Task<AttributeSyntax?> FuseAttributeAsync(Document document, Diagnostic diagnostic, CancellationToken cancellationToken)
    {
        if (diagnostic.AdditionalLocationIn(document, 0) is not { } location
            || await document.GetSyntaxRootAsync(cancellationToken).ConfigureAwait(false) is not { } root
            || !root.FullSpan.Contains(location.SourceSpan))
        {
            return null;
        }

        return root.FindNode(location.SourceSpan).AncestorsAndSelf().OfType<AttributeSyntax>().FirstOrDefault() is { ArgumentList: not null } attribute
            && attribute.Parent?.Parent is MemberDeclarationSyntax
            ? attribute
            : null;
    }
}
