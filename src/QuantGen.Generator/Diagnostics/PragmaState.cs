using System;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace QuantGen.Generator.Diagnostics;

/// <summary>
/// Whether <c>#pragma warning disable</c> is in effect for a rule at a place in the user's source. The generator's
/// diagnostics carry their location as plain data (<see cref="LocationInfo"/>) so the pipeline stays cacheable, and a
/// location rebuilt from a path is outside every syntax tree, where the compiler's pragma handling never reaches it; so
/// the warnings and infos a user may silence at a line (QG0023, QG0026) are checked here, where they are found.
/// </summary>
internal static class PragmaState
{
    /// <summary>True when the last <c>#pragma warning</c> before <paramref name="at"/> naming <paramref name="id"/> (or naming none) disables it.</summary>
    public static bool IsDisabled(SyntaxNode at, string id)
    {
        bool disabled = false;
        int position = at.SpanStart;
        var root = (CSharpSyntaxNode)at.SyntaxTree.GetRoot();
        for (DirectiveTriviaSyntax? directive = root.GetFirstDirective(); directive is not null && directive.SpanStart < position; directive = directive.GetNextDirective())
        {
            if (directive is not PragmaWarningDirectiveTriviaSyntax pragma)
            {
                continue;
            }

            bool names = pragma.ErrorCodes.Count == 0;
            foreach (ExpressionSyntax code in pragma.ErrorCodes)
            {
                names |= string.Equals(code.ToString().Trim(), id, StringComparison.OrdinalIgnoreCase);
            }

            if (names)
            {
                disabled = pragma.DisableOrRestoreKeyword.IsKind(SyntaxKind.DisableKeyword);
            }
        }

        return disabled;
    }
}
