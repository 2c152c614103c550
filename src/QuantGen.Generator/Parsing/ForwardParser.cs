using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using QuantGen.Generator.Diagnostics;

namespace QuantGen.Generator.Parsing;

/// <summary>
/// Traces the data flow of a straight-line <c>forward</c>: which member module is called on which value.
/// Anything it cannot follow becomes a QG0006 on the statement; the trace is then dropped, because a
/// partial graph would generate a model that silently differs from the user's.
/// </summary>
internal sealed class ForwardParser
{
    /// <summary>A value whose origin is unknown because its statement was already reported.</summary>
    private const int Unknown = -1;

    /// <summary>How deeply module calls may nest in one expression.</summary>
    private const int MaxNesting = 256;

    private readonly SemanticModel _semanticModel;
    private readonly INamedTypeSymbol _type;
    private readonly HashSet<string> _moduleMembers;
    private readonly List<DiagnosticInfo> _diagnostics;
    private readonly CancellationToken _cancellationToken;
    private readonly List<ForwardCall> _calls = new();
    private readonly Dictionary<string, int> _variables = new();
    private readonly HashSet<SyntaxNode> _reported = new();
    private bool _failed;

    private ForwardParser(SemanticModel semanticModel, INamedTypeSymbol type, IEnumerable<MemberSpec> members, List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
    {
        _semanticModel = semanticModel;
        _type = type;
        _moduleMembers = new HashSet<string>(members.Select(m => m.Name));
        _diagnostics = diagnostics;
        _cancellationToken = cancellationToken;
    }

    /// <summary>
    /// The traced forward, or null when some statement could not be traced (its QG0006 is added to
    /// <paramref name="diagnostics"/>).
    /// </summary>
    public static ForwardSpec? Parse(
        MethodDeclarationSyntax forward,
        SemanticModel semanticModel,
        INamedTypeSymbol type,
        IEnumerable<MemberSpec> members,
        List<DiagnosticInfo> diagnostics,
        CancellationToken cancellationToken) =>
        new ForwardParser(semanticModel, type, members, diagnostics, cancellationToken).Trace(forward);

    private ForwardSpec? Trace(MethodDeclarationSyntax forward)
    {
        string fileName = FileName(forward.SyntaxTree.FilePath);
        ParameterSyntax? parameter = forward.ParameterList.Parameters.FirstOrDefault();
        if (parameter is null)
        {
            return null;
        }

        _variables[parameter.Identifier.ValueText] = 0;

        if (forward.ExpressionBody is { } arrow)
        {
            int result = Value(arrow.Expression, arrow.Expression, arrow.Expression);
            return _failed ? null : new ForwardSpec(fileName, _calls.ToEquatableArray(), result, LineOf(arrow), OneLine(arrow.Expression));
        }

        if (forward.Body is not { } body)
        {
            return null;
        }

        ReturnStatementSyntax? returned = null;
        int returnedValue = Unknown;
        foreach (StatementSyntax statement in body.Statements)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            if (returned is not null)
            {
                Unsupported(statement, "it comes after the return");
                continue;
            }

            switch (statement)
            {
                case EmptyStatementSyntax:
                    break;

                case LocalDeclarationStatementSyntax { IsConst: false, AwaitKeyword.RawKind: 0 } local
                    when local.Declaration.Variables.Count == 1 && local.Declaration.Variables[0].Initializer is { } initializer:
                    _variables[local.Declaration.Variables[0].Identifier.ValueText] = Value(initializer.Value, statement, initializer.Value);
                    break;

                case LocalDeclarationStatementSyntax local:
                    foreach (VariableDeclaratorSyntax variable in local.Declaration.Variables)
                    {
                        _variables[variable.Identifier.ValueText] = Unknown;
                    }

                    Unsupported(statement, local switch
                    {
                        { AwaitKeyword.RawKind: not 0 } => "'await using' is not traced",
                        { IsConst: true } => "constants are not tensors",
                        { Declaration.Variables.Count: > 1 } => "declare one variable per statement",
                        _ => "declare the variable with a module call as its initializer",
                    });
                    break;

                case ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax assignment }
                    when assignment.IsKind(SyntaxKind.SimpleAssignmentExpression)
                        && assignment.Left is IdentifierNameSyntax target
                        && _variables.ContainsKey(target.Identifier.ValueText):
                    _variables[target.Identifier.ValueText] = Value(assignment.Right, statement, assignment.Right);
                    break;

                case ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax assignment }:
                    if (assignment.Left is IdentifierNameSyntax poisoned)
                    {
                        _variables[poisoned.Identifier.ValueText] = Unknown;
                    }

                    Unsupported(statement, assignment.IsKind(SyntaxKind.SimpleAssignmentExpression)
                        ? "only forward's parameter and local variables can be assigned"
                        : "only plain '=' assignments are traced");
                    break;

                case ExpressionStatementSyntax { Expression: InvocationExpressionSyntax }:
                    Unsupported(statement, "its result is not assigned to a variable or returned");
                    break;

                case ReturnStatementSyntax { Expression: { } expression } returnStatement:
                    returnedValue = Value(expression, statement, expression);
                    returned = returnStatement;
                    break;

                case IfStatementSyntax or SwitchStatementSyntax or ForStatementSyntax or ForEachStatementSyntax
                    or WhileStatementSyntax or DoStatementSyntax or TryStatementSyntax or BlockSyntax or UsingStatementSyntax:
                    Unsupported(statement, "forward must be straight-line code (no branches, loops, blocks or try)");
                    break;

                default:
                    Unsupported(statement, "this kind of statement is not traced");
                    break;
            }
        }

        if (returned is null)
        {
            Unsupported(forward.Identifier, forward, "it never returns a value");
        }

        if (_failed || returned is null)
        {
            return null;
        }

        return new ForwardSpec(fileName, _calls.ToEquatableArray(), returnedValue, LineOf(returned), OneLine(returned));
    }

    /// <summary>
    /// The value an expression evaluates to, adding a <see cref="ForwardCall"/> for each module call.
    /// <paramref name="wholeValue"/> is the statement's whole right-hand side: a call that is all of it is
    /// described by the statement's text, a nested one by its own.
    /// </summary>
    private int Value(ExpressionSyntax expression, SyntaxNode statement, ExpressionSyntax wholeValue, int depth = 0)
    {
        if (depth > MaxNesting)
        {
            // Keeps the recursion far from the stack limit, which would crash the compiler.
            Unsupported(statement, $"calls are nested more than {MaxNesting} deep");
            return Unknown;
        }

        while (expression is ParenthesizedExpressionSyntax parenthesized)
        {
            expression = parenthesized.Expression;
        }

        while (wholeValue is ParenthesizedExpressionSyntax parenthesizedWhole)
        {
            wholeValue = parenthesizedWhole.Expression;
        }

        switch (expression)
        {
            case IdentifierNameSyntax identifier:
                if (_variables.TryGetValue(identifier.Identifier.ValueText, out int value))
                {
                    return value;
                }

                Unsupported(statement, $"'{identifier.Identifier.ValueText}' is neither forward's parameter nor a variable set earlier in forward");
                return Unknown;

            case InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax access } invocation
                when access.IsKind(SyntaxKind.SimpleMemberAccessExpression) && access.Name.Identifier.ValueText is "forward" or "call":
                string? member = ModuleMember(access.Expression);
                if (member is null)
                {
                    Unsupported(statement, $"'{OneLine(access.Expression)}' is not a module field or property of {_type.Name}");
                    return Unknown;
                }

                if (invocation.ArgumentList.Arguments.Count != 1 || !invocation.ArgumentList.Arguments[0].RefKindKeyword.IsKind(SyntaxKind.None))
                {
                    Unsupported(statement, $"'{member}.{access.Name.Identifier.ValueText}' must be called with exactly one tensor");
                    return Unknown;
                }

                int input = Value(invocation.ArgumentList.Arguments[0].Expression, statement, wholeValue, depth + 1);
                if (input == Unknown)
                {
                    return Unknown;
                }

                string text = expression == wholeValue ? OneLine(statement) : OneLine(invocation);
                _calls.Add(new ForwardCall(member, input, text, LineOf(invocation), LocationInfo.From(invocation)));
                return _calls.Count;

            case InvocationExpressionSyntax:
                Unsupported(statement, $"'{OneLine(expression)}' is not a call of a member module's forward(x) or call(x)");
                return Unknown;

            case BinaryExpressionSyntax or PrefixUnaryExpressionSyntax or PostfixUnaryExpressionSyntax:
                Unsupported(statement, "tensor arithmetic is not traced; use a module");
                return Unknown;

            default:
                Unsupported(statement, $"'{OneLine(expression)}' is not a module call");
                return Unknown;
        }
    }

    /// <summary>The name of the module member a call's receiver denotes (<c>conv1</c> or <c>this.conv1</c>), or null.</summary>
    private string? ModuleMember(ExpressionSyntax receiver)
    {
        string? name = receiver switch
        {
            IdentifierNameSyntax identifier => identifier.Identifier.ValueText,
            MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax, Name: IdentifierNameSyntax identifier } => identifier.Identifier.ValueText,
            _ => null,
        };
        if (name is null || !_moduleMembers.Contains(name))
        {
            return null;
        }

        // A local or parameter with the member's name hides it; then the call is not the member's.
        ISymbol? symbol = _semanticModel.GetSymbolInfo(receiver, _cancellationToken).Symbol;
        if (symbol is not null
            && !(symbol is IFieldSymbol or IPropertySymbol
                && SymbolEqualityComparer.Default.Equals(symbol.ContainingType?.OriginalDefinition, _type.OriginalDefinition)))
        {
            return null;
        }

        return name;
    }

    private void Unsupported(SyntaxNode statement, string reason) => Unsupported(statement, statement, reason);

    private void Unsupported(SyntaxNodeOrToken where, SyntaxNode statement, string reason)
    {
        _failed = true;
        if (!_reported.Add(statement))
        {
            return;
        }

        string text = statement is MethodDeclarationSyntax method ? method.Identifier.ValueText : OneLine(statement);
        _diagnostics.Add(DiagnosticInfo.Create(
            DiagnosticDescriptors.UnsupportedForwardStatement,
            LocationInfo.From(where.GetLocation()),
            Shorten(text),
            _type.Name,
            reason));
    }

    private static int LineOf(SyntaxNode node) =>
        node.SyntaxTree.GetLineSpan(node.Span).StartLinePosition.Line + 1;

    /// <summary>The node's text on one line, whitespace runs collapsed, without a trailing ';'.</summary>
    internal static string OneLine(SyntaxNode node)
    {
        string text = node.ToString();
        var line = new StringBuilder(text.Length);
        bool space = false;
        foreach (char c in text)
        {
            if (char.IsWhiteSpace(c))
            {
                space = line.Length > 0;
                continue;
            }

            if (space)
            {
                line.Append(' ');
                space = false;
            }

            line.Append(c);
        }

        return line.ToString().TrimEnd(';').TrimEnd();
    }

    private static string Shorten(string text) => text.Length <= 120 ? text : text.Substring(0, 117) + "...";

    private static string FileName(string path)
    {
        int slash = path.LastIndexOfAny(new[] { '/', '\\' });
        return slash < 0 ? path : path.Substring(slash + 1);
    }
}
