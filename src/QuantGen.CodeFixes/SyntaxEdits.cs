using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using static Microsoft.CodeAnalysis.CSharp.SyntaxFactory;

namespace QuantGen.CodeFixes;

/// <summary>
/// The syntax changes the fixes make, written so the user's layout survives: comments and indentation stay where
/// they were, a removed attribute takes its own line with it, an added one goes where attributes already are.
/// </summary>
internal static class SyntaxEdits
{
    /// <summary>The declaration with <c>partial</c> as its last modifier (C# wants it right before the keyword).</summary>
    public static TypeDeclarationSyntax AddPartial(TypeDeclarationSyntax declaration)
    {
        if (declaration.Modifiers.Any(SyntaxKind.PartialKeyword))
        {
            return declaration;
        }

        if (declaration.Modifiers.Count == 0)
        {
            // "class M" → "partial class M": the keyword's indentation moves to the new first token.
            SyntaxToken keyword = declaration.Keyword;
            SyntaxToken partial = Token(keyword.LeadingTrivia, SyntaxKind.PartialKeyword, TriviaList(Space));
            return declaration
                .WithKeyword(keyword.WithLeadingTrivia())
                .WithModifiers(TokenList(partial));
        }

        return declaration.WithModifiers(declaration.Modifiers.Add(Token(TriviaList(), SyntaxKind.PartialKeyword, TriviaList(Space))));
    }

    /// <summary>
    /// The member with <paramref name="list"/> after its attributes, on the same line as the modifiers
    /// (<c>[NoQuantize] private readonly Sequential layers</c>).
    /// </summary>
    public static MemberDeclarationSyntax AddAttributeList(MemberDeclarationSyntax member, AttributeListSyntax list)
    {
        SyntaxToken next = member.AttributeLists.Count > 0
            ? member.AttributeLists[member.AttributeLists.Count - 1].GetLastToken().GetNextToken()
            : member.GetFirstToken();
        MemberDeclarationSyntax moved = member.ReplaceToken(next, next.WithLeadingTrivia());
        return moved.AddAttributeLists(list.WithLeadingTrivia(next.LeadingTrivia).WithTrailingTrivia(Space));
    }

    /// <summary>
    /// The declaration without the attribute equivalent to <paramref name="attribute"/> (found by its text, since the
    /// declaration may be a newer version of the one the attribute came from). A list left empty goes too, and
    /// when it stood on its own line, its line goes with it while comments before it stay.
    /// </summary>
    public static MemberDeclarationSyntax RemoveAttribute(MemberDeclarationSyntax declaration, AttributeSyntax attribute)
    {
        AttributeListSyntax? list = declaration.AttributeLists.FirstOrDefault(l => l.Attributes.Any(a => a.IsEquivalentTo(attribute)));
        if (list is null)
        {
            return declaration;
        }

        if (list.Attributes.Count > 1)
        {
            AttributeSyntax current = list.Attributes.First(a => a.IsEquivalentTo(attribute));
            return declaration.ReplaceNode(list, list.WithAttributes(list.Attributes.Remove(current)));
        }

        int index = declaration.AttributeLists.IndexOf(list);
        SyntaxToken next = list.GetLastToken().GetNextToken();
        bool ownLine = list.GetTrailingTrivia().Any(SyntaxKind.EndOfLineTrivia);
        SyntaxTriviaList leading = list.GetLeadingTrivia();
        if (ownLine)
        {
            // Drop the list's indentation; the next line brings its own.
            int keep = leading.Count;
            while (keep > 0 && leading[keep - 1].IsKind(SyntaxKind.WhitespaceTrivia))
            {
                keep--;
            }

            leading = TriviaList(leading.Take(keep));
        }

        MemberDeclarationSyntax moved = declaration.ReplaceToken(next, next.WithLeadingTrivia(leading.AddRange(next.LeadingTrivia)));
        return moved.WithAttributeLists(moved.AttributeLists.RemoveAt(index));
    }

    /// <summary>The member name an argument of [Fuse] gives: <c>nameof(conv1)</c> and <c>"conv1"</c> are both "conv1".</summary>
    public static string FuseArgumentName(AttributeArgumentSyntax argument) => argument.Expression switch
    {
        LiteralExpressionSyntax literal when literal.IsKind(SyntaxKind.StringLiteralExpression) => literal.Token.ValueText,
        InvocationExpressionSyntax { Expression: IdentifierNameSyntax { Identifier.ValueText: "nameof" }, ArgumentList.Arguments: { Count: 1 } arguments } =>
            arguments[0].Expression.ToString(),
        _ => argument.Expression.ToString(),
    };
}
