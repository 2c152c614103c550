using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;
using QuantGen.Generator.Diagnostics;
using static QuantGen.Generator.Parsing.SourceValues;

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
    private readonly List<ConditionSpec> _conditions = new();
    private int _condition = -1;
    private bool _negated;
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
            return _failed ? null : new ForwardSpec(fileName, _calls.ToEquatableArray(), result, LineOf(arrow), OneLine(arrow.Expression), _conditions.ToEquatableArray());
        }

        if (forward.Body is not { } body)
        {
            return null;
        }

        ReturnStatementSyntax? returned = null;
        int returnedValue = Unknown;
        Statements(body.Statements, ref returned, ref returnedValue);

        if (returned is null)
        {
            Unsupported(forward.Identifier, forward, "it never returns a value");
        }

        if (_failed || returned is null)
        {
            return null;
        }

        return new ForwardSpec(fileName, _calls.ToEquatableArray(), returnedValue, LineOf(returned), OneLine(returned), _conditions.ToEquatableArray());
    }

    private void Statements(IEnumerable<StatementSyntax> statements, ref ReturnStatementSyntax? returned, ref int returnedValue)
    {
        foreach (StatementSyntax statement in statements)
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
                        _cancellationToken.ThrowIfCancellationRequested();
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

                case ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax assignment }
                    when assignment.IsKind(SyntaxKind.AddAssignmentExpression)
                        && assignment.Left is IdentifierNameSyntax target
                        && _variables.ContainsKey(target.Identifier.ValueText):
                {
                    // out += identity: a residual add.
                    int left = _variables[target.Identifier.ValueText];
                    int right = Value(assignment.Right, statement, assignment.Right);
                    _variables[target.Identifier.ValueText] = left == Unknown || right == Unknown ? Unknown : AddNode(NodeKind.Add, new[] { left, right }, Array.Empty<int>(), statement, assignment);
                    break;
                }

                case ExpressionStatementSyntax { Expression: InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "add_", Expression: IdentifierNameSyntax receiver } } inPlace }
                    when _variables.ContainsKey(receiver.Identifier.ValueText):
                    // out.add_(identity): the variable now holds the sum.
                    _variables[receiver.Identifier.ValueText] = Value(inPlace, statement, inPlace);
                    break;

                case IfStatementSyntax ifStatement:
                    If(ifStatement, ref returned, ref returnedValue);
                    break;

                case BlockSyntax block when _condition >= 0:
                    Statements(block.Statements, ref returned, ref returnedValue);
                    break;

                case ForStatementSyntax or ForEachStatementSyntax or WhileStatementSyntax or DoStatementSyntax:
                    DataDependent(statement, "loops are not traced");
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

                case ReturnStatementSyntax when _condition >= 0:
                    Unsupported(statement, "a return inside an if is not traced; assign a variable in the if and return it after");
                    break;

                case ReturnStatementSyntax { Expression: { } expression } returnStatement:
                    returnedValue = Value(expression, statement, expression);
                    returned = returnStatement;
                    break;

                case SwitchStatementSyntax or TryStatementSyntax or BlockSyntax or UsingStatementSyntax:
                    Unsupported(statement, "forward must be straight-line code (no branches, loops, blocks or try)");
                    break;

                default:
                    Unsupported(statement, "this kind of statement is not traced");
                    break;
            }
        }
    }

    /// <summary>
    /// An if whose condition depends only on how the module was built: both branches are traced under the
    /// condition, and each variable they assign becomes a select of its two values after the if.
    /// </summary>
    private void If(IfStatementSyntax statement, ref ReturnStatementSyntax? returned, ref int returnedValue)
    {
        if (_condition >= 0)
        {
            Unsupported(statement, "nested construction-time if statements are not traced; combine the conditions");
            return;
        }

        ConditionSpec? condition = Condition(statement.Condition, out bool negate);
        if (condition is null)
        {
            DataDependent(statement, $"the condition '{OneLine(statement.Condition)}' depends on data, not only on how the module was constructed");
            return;
        }

        int index = _conditions.IndexOf(condition);
        if (index < 0)
        {
            _conditions.Add(condition);
            index = _conditions.Count - 1;
        }

        var before = new Dictionary<string, int>(_variables);
        _condition = index;
        _negated = negate;
        Statements(new[] { statement.Statement }, ref returned, ref returnedValue);
        var afterThen = new Dictionary<string, int>(_variables);
        foreach (KeyValuePair<string, int> saved in before)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            _variables[saved.Key] = saved.Value;
        }

        if (statement.Else is { } elseClause)
        {
            _negated = !negate;
            Statements(new[] { elseClause.Statement }, ref returned, ref returnedValue);
        }

        var afterElse = new Dictionary<string, int>(_variables);
        _condition = -1;
        _negated = false;
        _variables.Clear();
        foreach (KeyValuePair<string, int> entry in before)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            int whenTrue = afterThen[entry.Key], whenFalse = afterElse[entry.Key];
            if (negate)
            {
                (whenTrue, whenFalse) = (whenFalse, whenTrue);
            }

            _variables[entry.Key] = whenTrue == whenFalse || whenTrue == Unknown || whenFalse == Unknown
                ? (whenTrue == Unknown ? Unknown : whenFalse == Unknown ? Unknown : whenTrue)
                : AddNode(NodeKind.Select, new[] { whenTrue, whenFalse }, new[] { index }, statement, statement.Condition);
        }
    }

    /// <summary>A construction-time condition, or null when it depends on data.</summary>
    private ConditionSpec? Condition(ExpressionSyntax expression, out bool negate)
    {
        negate = false;
        while (true)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            if (expression is ParenthesizedExpressionSyntax parenthesized)
            {
                expression = parenthesized.Expression;
            }
            else if (expression is PrefixUnaryExpressionSyntax prefix && prefix.IsKind(SyntaxKind.LogicalNotExpression))
            {
                negate = !negate;
                expression = prefix.Operand;
            }
            else
            {
                break;
            }
        }

        string text = OneLine(expression);
        Optional<object?> constant = _semanticModel.GetConstantValue(expression, _cancellationToken);
        if (constant.HasValue && constant.Value is bool value)
        {
            return new ConditionSpec("const", string.Empty, value, text);
        }

        switch (expression)
        {
            case IsPatternExpressionSyntax { Pattern: ConstantPatternSyntax { Expression: LiteralExpressionSyntax literal } } pattern
                when literal.IsKind(SyntaxKind.NullLiteralExpression) && ModuleMember(pattern.Expression) is { } member:
                return new ConditionSpec("null", member, false, text);
            case IsPatternExpressionSyntax { Pattern: UnaryPatternSyntax { Pattern: ConstantPatternSyntax { Expression: LiteralExpressionSyntax literal } } } pattern
                when literal.IsKind(SyntaxKind.NullLiteralExpression) && ModuleMember(pattern.Expression) is { } member:
                return new ConditionSpec("notnull", member, false, text);
            case BinaryExpressionSyntax binary when binary.IsKind(SyntaxKind.EqualsExpression) || binary.IsKind(SyntaxKind.NotEqualsExpression):
            {
                ExpressionSyntax other = binary.Right.IsKind(SyntaxKind.NullLiteralExpression) ? binary.Left : binary.Left.IsKind(SyntaxKind.NullLiteralExpression) ? binary.Right : binary.Left;
                if (other != binary.Left || binary.Right.IsKind(SyntaxKind.NullLiteralExpression))
                {
                    if (ModuleMember(other) is { } member)
                    {
                        return new ConditionSpec(binary.IsKind(SyntaxKind.EqualsExpression) ? "null" : "notnull", member, false, text);
                    }
                }

                return null;
            }

            case IdentifierNameSyntax or MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax }:
            {
                ISymbol? symbol = _semanticModel.GetSymbolInfo(expression, _cancellationToken).Symbol;
                bool constructionTime = symbol switch
                {
                    IFieldSymbol field => field.IsReadOnly || field.IsConst,
                    IPropertySymbol property => property.SetMethod is null || property.SetMethod.IsInitOnly,
                    _ => false,
                };
                if (constructionTime && symbol is not null && !symbol.IsStatic
                    && symbol is IFieldSymbol { Type.SpecialType: SpecialType.System_Boolean } or IPropertySymbol { Type.SpecialType: SpecialType.System_Boolean }
                    && SymbolEqualityComparer.Default.Equals(symbol.ContainingType?.OriginalDefinition, _type.OriginalDefinition))
                {
                    return new ConditionSpec("field", symbol.Name, false, text);
                }

                return null;
            }

            default:
                return null;
        }
    }

    private int AddNode(NodeKind kind, int[] inputs, int[] ints, SyntaxNode statement, SyntaxNode node, string member = "")
    {
        string text = OneLine(statement);
        _calls.Add(new ForwardCall(member, inputs.Length > 0 ? inputs[0] : 0, text, LineOf(node), LocationInfo.From(node), kind, inputs.ToEquatableArray(), ints.ToEquatableArray(), kind == NodeKind.Select ? -1 : _condition, _negated));
        return _calls.Count;
    }

    private void DataDependent(SyntaxNode statement, string reason)
    {
        _failed = true;
        if (!_reported.Add(statement))
        {
            return;
        }

        _diagnostics.Add(DiagnosticInfo.Create(
            DiagnosticDescriptors.DataDependentControlFlow,
            LocationInfo.From(statement.GetLocation()),
            ShortenTo120(OneLine(statement is IfStatementSyntax ifStatement ? ifStatement.Condition : statement)),
            _type.Name,
            reason));
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
            _cancellationToken.ThrowIfCancellationRequested();
            expression = parenthesized.Expression;
        }

        while (wholeValue is ParenthesizedExpressionSyntax parenthesizedWhole)
        {
            _cancellationToken.ThrowIfCancellationRequested();
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
                _calls.Add(new ForwardCall(member, input, text, LineOf(invocation), LocationInfo.From(invocation), NodeKind.Module, new[] { input }.ToEquatableArray(), default, _condition, _negated));
                return _calls.Count;

            case InvocationExpressionSyntax invocation:
                return Functional(invocation, statement, wholeValue, depth);

            case BinaryExpressionSyntax binary when binary.IsKind(SyntaxKind.AddExpression) && IsTensorAddition(binary):
            {
                int left = Value(binary.Left, statement, wholeValue, depth + 1);
                int right = left == Unknown ? Unknown : Value(binary.Right, statement, wholeValue, depth + 1);
                return right == Unknown ? Unknown : AddNode(NodeKind.Add, new[] { left, right }, Array.Empty<int>(), expression == wholeValue ? statement : expression, binary);
            }

            case BinaryExpressionSyntax or PrefixUnaryExpressionSyntax or PostfixUnaryExpressionSyntax:
                Unsupported(statement, "this tensor arithmetic is not traced; QuantGen traces a + b of two tensors, torch.add, add_, torch.cat, flatten, view, reshape, functional.relu and max_pool2d");
                return Unknown;

            default:
                Unsupported(statement, $"'{OneLine(expression)}' is not a module call");
                return Unknown;
        }
    }

    private bool IsTensorAddition(BinaryExpressionSyntax binary) =>
        _semanticModel.GetSymbolInfo(binary, _cancellationToken).Symbol is IMethodSymbol { Parameters.Length: 2 } method
        && KnownTypes.IsTensor(method.Parameters[0].Type)
        && KnownTypes.IsTensor(method.Parameters[1].Type);

    /// <summary>
    /// A TorchSharp function or Tensor method QuantGen maps to an int8 op: add, cat, flatten, view, reshape,
    /// relu, max_pool2d. Constant arguments are read from the call (defaults included).
    /// </summary>
    private int Functional(InvocationExpressionSyntax invocation, SyntaxNode statement, ExpressionSyntax wholeValue, int depth)
    {
        SyntaxNode described = invocation == wholeValue ? statement : invocation;
        if (_semanticModel.GetOperation(invocation, _cancellationToken) is not IInvocationOperation operation)
        {
            Unsupported(statement, $"'{OneLine(invocation)}' is not a call QuantGen can resolve");
            return Unknown;
        }

        IMethodSymbol method = operation.TargetMethod;
        string container = KnownTypes.MetadataName(method.ContainingType);
        string name = method.Name;
        IOperation? ArgumentAt(int index) => operation.Arguments.FirstOrDefault(a => a.Parameter?.Ordinal == index)?.Value;

        // An omitted optional argument whose default is null (max_pool2d's stride, padding, dilation).
        bool DefaultNull(int index) => operation.Arguments.FirstOrDefault(a => a.Parameter?.Ordinal == index) is { ArgumentKind: ArgumentKind.DefaultValue } omitted
            && omitted.Parameter!.HasExplicitDefaultValue && omitted.Parameter.ExplicitDefaultValue is null;
        int TensorValue(IOperation? value) => value?.Syntax is ExpressionSyntax syntax && KnownTypes.IsTensor(Unwrap(value)?.Type)
            ? Value(syntax, statement, wholeValue, depth + 1)
            : UnsupportedValue($"'{OneLine(invocation)}' takes something other than a traced tensor");
        int UnsupportedValue(string reason)
        {
            Unsupported(statement, reason);
            return Unknown;
        }

        bool instance = container == KnownTypes.Tensor && !method.IsStatic;
        switch (container, name)
        {
            case (KnownTypes.Tensor, "add" or "add_") when instance && method.Parameters.Length == 1 && KnownTypes.IsTensor(method.Parameters[0].Type):
            case ("TorchSharp.torch", "add") when method.Parameters.Length == 2 && method.Parameters.All(p => KnownTypes.IsTensor(p.Type)):
            {
                int a = instance ? TensorValue(operation.Instance) : TensorValue(ArgumentAt(0));
                int b = a == Unknown ? Unknown : instance ? TensorValue(ArgumentAt(0)) : TensorValue(ArgumentAt(1));
                return b == Unknown ? Unknown : AddNode(NodeKind.Add, new[] { a, b }, Array.Empty<int>(), described, invocation);
            }

            case ("TorchSharp.torch", "cat"):
            {
                IOperation? list = Unwrap(ArgumentAt(0));
                IEnumerable<IOperation>? elements = list switch
                {
                    IArrayCreationOperation { Initializer: { } initializer } => initializer.ElementValues,
                    ICollectionExpressionOperation collection => collection.Elements,
                    _ => null,
                };
                int? dim = Constant(ArgumentAt(1));
                if (elements is null || dim is null)
                {
                    return UnsupportedValue("torch.cat needs a literal list of tensors (new[] { a, b } or [a, b]) and a constant dim");
                }

                var inputs = new List<int>();
                foreach (IOperation element in elements)
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    int value = TensorValue(element);
                    if (value == Unknown)
                    {
                        return Unknown;
                    }

                    inputs.Add(value);
                }

                return AddNode(NodeKind.Cat, inputs.ToArray(), new[] { dim.Value }, described, invocation);
            }

            case ("TorchSharp.torch", "flatten") when method.Parameters.Length == 3:
            case (KnownTypes.Tensor, "flatten") when instance && method.Parameters.Length == 2 && method.Parameters[0].Type.SpecialType == SpecialType.System_Int64:
            {
                int offset = instance ? 0 : 1;
                int? start = Constant(ArgumentAt(offset)), end = Constant(ArgumentAt(offset + 1));
                if (start is null || end is null)
                {
                    return UnsupportedValue("flatten's start_dim and end_dim must be constants");
                }

                int input = instance ? TensorValue(operation.Instance) : TensorValue(ArgumentAt(0));
                return input == Unknown ? Unknown : AddNode(NodeKind.Flatten, new[] { input }, new[] { start.Value, end.Value }, described, invocation);
            }

            case (KnownTypes.Tensor, "view" or "reshape") when instance && method.Parameters.Length == 1:
            {
                List<int>? shape = Constants(ArgumentAt(0));
                if (shape is null)
                {
                    return UnsupportedValue($"{name}'s sizes must be integer constants");
                }

                int input = TensorValue(operation.Instance);
                return input == Unknown ? Unknown : AddNode(NodeKind.Reshape, new[] { input }, shape.ToArray(), described, invocation);
            }

            case ("TorchSharp.torch+nn+functional", "relu"):
            case ("TorchSharp.torch", "relu"):
            case (KnownTypes.Tensor, "relu") when instance:
            {
                int input = instance ? TensorValue(operation.Instance) : TensorValue(ArgumentAt(0));
                return input == Unknown ? Unknown : AddNode(NodeKind.Relu, new[] { input }, Array.Empty<int>(), described, invocation);
            }

            case ("TorchSharp.torch+nn+functional", "max_pool2d"):
            {
                (int, int)? kernel = Pair(ArgumentAt(1), null), stride = Pair(DefaultNull(2) ? null : ArgumentAt(2), kernel), padding = Pair(DefaultNull(3) ? null : ArgumentAt(3), (0, 0)), dilation = Pair(DefaultNull(4) ? null : ArgumentAt(4), (1, 1));
                IArgumentOperation? ceilArgument = operation.Arguments.FirstOrDefault(a => a.Parameter?.Ordinal == 5);
                int? ceil = ceilArgument is { ArgumentKind: ArgumentKind.DefaultValue, Parameter.ExplicitDefaultValue: bool defaultCeil }
                    ? (defaultCeil ? 1 : 0)
                    : Unwrap(ceilArgument?.Value)?.ConstantValue is { HasValue: true, Value: bool ceilMode } ? (ceilMode ? 1 : 0) : null;
                if (kernel is null || stride is null || padding is null || dilation is null || ceil is null)
                {
                    return UnsupportedValue("max_pool2d's kernel size, stride, padding, dilation and ceil_mode must be constants");
                }

                int input = TensorValue(ArgumentAt(0));
                return input == Unknown ? Unknown : AddNode(
                    NodeKind.MaxPool2d,
                    new[] { input },
                    new[] { kernel.Value.Item1, kernel.Value.Item2, stride.Value.Item1, stride.Value.Item2, padding.Value.Item1, padding.Value.Item2, dilation.Value.Item1, dilation.Value.Item2, ceil.Value },
                    described,
                    invocation);
            }

            default:
                return UnsupportedValue($"'{OneLine(invocation)}' is not a call of a member module's forward(x) or call(x), nor a function QuantGen maps to an int8 op (add, cat, flatten, view, reshape, relu, max_pool2d)");
        }
    }

    /// <summary>A 2-D hyper-parameter: a constant, a (h, w) tuple, a long[] of one or two; null constant → <paramref name="whenNull"/>.</summary>
    private static (int, int)? Pair(IOperation? operation, (int, int)? whenNull)
    {
        operation = Unwrap(operation);
        if (operation is null || operation.ConstantValue is { HasValue: true, Value: null })
        {
            return whenNull;
        }

        if (operation is ITupleOperation { Elements.Length: 2 } tuple)
        {
            return Constant(tuple.Elements[0]) is int h && Constant(tuple.Elements[1]) is int w ? (h, w) : null;
        }

        List<int>? values = Constants(operation);
        return values switch
        {
            { Count: 1 } => (values[0], values[0]),
            { Count: 2 } => (values[0], values[1]),
            _ => null,
        };
    }

    /// <summary>The name of the module member a call's receiver denotes (<c>conv1</c> or <c>this.conv1</c>), or null.</summary>
    private string? ModuleMember(ExpressionSyntax receiver)
    {
        // downsample!.forward(x): the null-forgiving operator changes nothing at run time.
        while (receiver is PostfixUnaryExpressionSyntax postfix && postfix.IsKind(SyntaxKind.SuppressNullableWarningExpression))
        {
            _cancellationToken.ThrowIfCancellationRequested();
            receiver = postfix.Operand;
        }

        while (receiver is ParenthesizedExpressionSyntax parenthesized)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            receiver = parenthesized.Expression;
        }

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
            ShortenTo120(text),
            _type.Name,
            reason));
    }

    private static string ShortenTo120(string text) => SourceValues.Shorten(text, 120);
}
