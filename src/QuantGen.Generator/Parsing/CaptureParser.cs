using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;
using QuantGen.Generator.Diagnostics;
using static QuantGen.Generator.Parsing.SourceValues;

namespace QuantGen.Generator.Parsing;

/// <summary>
/// Captures a module class's <c>forward</c> as a graph of calls without needing any member's concrete type
/// (PyTorch FX's graph, read from source instead of traced): module calls on members, loops over container
/// members, the functions QuantGen has int8 ops for, and every other tensor expression as a float node whose
/// C# the generator re-emits. What only the running model knows (which module a member holds, what a
/// Sequential contains) is decided at Prepare by QuantGen.Binding.ModelBinder. Every statement it cannot
/// capture is reported, all in one pass.
/// </summary>
internal sealed class CaptureParser
{
    private const int Unknown = -1;
    private const int MaxNesting = 256;
    private const int MaxNodes = 4096;

    private readonly SemanticModel _semanticModel;
    private readonly INamedTypeSymbol _type;
    private readonly string _fileName;
    private readonly List<DiagnosticInfo> _diagnostics = new();
    private readonly CancellationToken _cancellationToken;
    private readonly List<CapturedNodeSpec> _nodes = new();
    private readonly Dictionary<string, int> _variables = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<int>> _lists = new(StringComparer.Ordinal);

    /// <summary>Number and bool locals (<c>long length = tokens.shape[1];</c>) a float expression may read: their initializer and the tensors it read then.</summary>
    private readonly Dictionary<string, ScalarLocal> _scalars = new(StringComparer.Ordinal);

    /// <summary>Locals holding a tuple-returning module call (<c>var r = lstm.forward(x);</c>), read later with <c>r.Item1</c> or deconstructed.</summary>
    private readonly Dictionary<string, TupleCall> _tuples = new(StringComparer.Ordinal);
    private readonly HashSet<SyntaxNode> _reported = new();
    private readonly List<CapturedConditionSpec> _conditions = new();
    private readonly List<(int Condition, bool Negated, int Value)> _earlyReturns = new();
    private int _condition = -1;
    private bool _negated;

    /// <summary>After 'if (c) return a;', the rest of forward runs only when c is false: (condition, negated) or (-1, _).</summary>
    private (int Condition, bool Negated) _afterReturn = (-1, false);
    private bool _failed;
    private string? _firstProblem;

    private CaptureParser(SemanticModel semanticModel, INamedTypeSymbol type, string fileName, CancellationToken cancellationToken)
    {
        _semanticModel = semanticModel;
        _type = type;
        _fileName = fileName;
        _cancellationToken = cancellationToken;
    }

    /// <summary>Captures <paramref name="type"/>'s forward (a <c>forward(Tensor)</c> returning Tensor).</summary>
    public static CaptureResult Capture(INamedTypeSymbol type, MethodDeclarationSyntax forward, SemanticModel semanticModel, CancellationToken cancellationToken)
    {
        string fileName = FileName(forward.SyntaxTree.FilePath);
        var parser = new CaptureParser(semanticModel, type, fileName, cancellationToken);
        int result = parser.Trace(forward);
        string? notCaptured = parser._failed ? parser._firstProblem ?? "forward could not be captured" : null;
        List<CapturedNodeSpec> nodes = notCaptured is null ? WithoutUnreadItems(parser._nodes, result, out result) : parser._nodes;
        List<ContainingTypeSpec>? hosts = null;
        if (!IsReachable(type))
        {
            // A private block nested in the model (ResNet's BasicBlock): the registration goes inside the types
            // around it when they are partial, the only place generated code can name the class.
            hosts = Hosts(type, cancellationToken);
            if (hosts is null)
            {
                return new CaptureResult(null, parser._diagnostics.ToEquatableArray());
            }
        }

        string typeReference = type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
        string registration = "QuantGenCaptured_" + Sanitize(KnownTypes.MetadataName(type));
        var spec = new CaptureSpec(
            typeReference,
            type.ContainingNamespace is { IsGlobalNamespace: false } ns ? ns.ToDisplayString() : null,
            registration,
            registration + ".g.cs",
            Usings(forward.SyntaxTree, forward),
            fileName,
            notCaptured is null ? nodes.ToEquatableArray() : EquatableArray<CapturedNodeSpec>.Empty,
            notCaptured is null ? result : 0,
            parser._conditions.ToEquatableArray(),
            NoQuantizeMembers(type),
            notCaptured,
            hosts?.ToEquatableArray() ?? default);
        return new CaptureResult(spec, parser._diagnostics.ToEquatableArray());
    }

    /// <summary>
    /// Drops the tuple elements forward deconstructs but never reads (the <c>c</c> of <c>var (output, h, c) = lstm.forward(x)</c>),
    /// so the bound graph has no op, observer or output for them; the values after them are renumbered.
    /// </summary>
    private static List<CapturedNodeSpec> WithoutUnreadItems(List<CapturedNodeSpec> nodes, int result, out int newResult)
    {
        var read = new bool[nodes.Count + 1];
        if (result >= 0)
        {
            read[result] = true;
        }

        foreach (CapturedNodeSpec node in nodes)
        {
            foreach (int input in node.Inputs)
            {
                read[input] = true;
            }
        }

        newResult = result;
        if (!nodes.Where((n, i) => n.Op == "CallItem" && !read[i + 1]).Any())
        {
            return nodes;
        }

        var renumbered = new int[nodes.Count + 1];
        var kept = new List<CapturedNodeSpec>(nodes.Count);
        for (int i = 0; i < nodes.Count; i++)
        {
            if (nodes[i].Op == "CallItem" && !read[i + 1])
            {
                renumbered[i + 1] = -1;
                continue;
            }

            kept.Add(nodes[i] with { Inputs = nodes[i].Inputs.Select(v => renumbered[v]).ToEquatableArray() });
            renumbered[i + 1] = kept.Count;
        }

        newResult = result >= 0 ? renumbered[result] : result;
        return kept;
    }

    /// <summary>
    /// The partial, non-generic types around a nested class, outermost first, when a registration nested in the
    /// innermost one can be reached from the module (none of them private); else null.
    /// </summary>
    private static List<ContainingTypeSpec>? Hosts(INamedTypeSymbol type, CancellationToken cancellationToken)
    {
        if (type.IsGenericType || type.IsAbstract || type.ContainingType is null)
        {
            return null;
        }

        for (INamedTypeSymbol? current = type; current is not null; current = current.ContainingType)
        {
            if (current.IsFileLocal)
            {
                // A file-local type's parts must all be in its file: the generated one cannot be among them.
                return null;
            }
        }

        var hosts = new List<ContainingTypeSpec>();
        for (INamedTypeSymbol? outer = type.ContainingType; outer is not null; outer = outer.ContainingType)
        {
            if (outer.IsGenericType || outer.DeclaredAccessibility is Accessibility.Private or Accessibility.Protected or Accessibility.ProtectedAndInternal)
            {
                return null;
            }

            TypeDeclarationSyntax? part = outer.DeclaringSyntaxReferences
                .Select(r => r.GetSyntax(cancellationToken))
                .OfType<TypeDeclarationSyntax>()
                .FirstOrDefault();
            if (part is null || !part.Modifiers.Any(SyntaxKind.PartialKeyword) || outer.TypeKind is not (TypeKind.Class or TypeKind.Struct))
            {
                return null;
            }

            hosts.Insert(0, new ContainingTypeSpec(ModelParser.TypeKeyword(part), outer.Name));
        }

        return hosts;
    }

    /// <summary>True for a class generated code in its namespace can name (no private/protected nesting, no type parameters).</summary>
    private static bool IsReachable(INamedTypeSymbol type)
    {
        for (INamedTypeSymbol? current = type; current is not null; current = current.ContainingType)
        {
            if (current.IsGenericType || current.IsFileLocal || current.DeclaredAccessibility is Accessibility.Private or Accessibility.Protected or Accessibility.ProtectedAndInternal)
            {
                return false;
            }
        }

        return !type.IsAbstract;
    }

    private static EquatableArray<string> NoQuantizeMembers(INamedTypeSymbol type) =>
        type.GetMembers()
            .Where(m => m is IFieldSymbol or IPropertySymbol && m.GetAttributes().Any(a => a.AttributeClass is { } c && KnownTypes.MetadataName(c) == KnownTypes.NoQuantizeAttribute))
            .Select(m => m.Name)
            .ToEquatableArray();

    private static EquatableArray<string> Usings(SyntaxTree tree, SyntaxNode node)
    {
        var usings = new List<string>();
        if (tree.GetRoot() is CompilationUnitSyntax unit)
        {
            usings.AddRange(unit.Usings.Where(u => u.GlobalKeyword.IsKind(SyntaxKind.None)).Select(u => u.ToString().Trim()));
        }

        foreach (BaseNamespaceDeclarationSyntax ns in node.Ancestors().OfType<BaseNamespaceDeclarationSyntax>().Reverse())
        {
            usings.AddRange(ns.Usings.Select(u => u.ToString().Trim()));
        }

        return usings.Distinct(StringComparer.Ordinal).ToEquatableArray();
    }

    private int Trace(MethodDeclarationSyntax forward)
    {
        ParameterSyntax? parameter = forward.ParameterList.Parameters.FirstOrDefault();
        if (parameter is null)
        {
            Fail(forward.Identifier, forward, "forward takes no tensor");
            return Unknown;
        }

        _variables[parameter.Identifier.ValueText] = 0;

        // A module of several tensors (forward(x, skip)): each later parameter is a Parameter node, Ints = [its position],
        // bound at Prepare to the value the call passes there.
        for (int p = 1; p < forward.ParameterList.Parameters.Count; p++)
        {
            ParameterSyntax extra = forward.ParameterList.Parameters[p];
            _variables[extra.Identifier.ValueText] = AddNode("Parameter", [], new[] { p }.ToEquatableArray(), null, extra, extra.ToString());
        }

        if (forward.ExpressionBody is { } arrow)
        {
            return Value(arrow.Expression, arrow.Expression, arrow.Expression);
        }

        if (forward.Body is not { } body)
        {
            Fail(forward.Identifier, forward, "forward has no body");
            return Unknown;
        }

        int returned = Unknown;
        bool hasReturn = false;
        Statements(body.Statements, ref hasReturn, ref returned);
        if (!hasReturn)
        {
            Fail(forward.Identifier, forward, "it never returns a value outside an if; end forward with a return");
            return Unknown;
        }

        // An early 'return a;' inside a construction-time if: the result is chosen by that condition at Prepare.
        for (int i = _earlyReturns.Count - 1; i >= 0 && returned != Unknown; i--)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            (int condition, bool negated, int value) = _earlyReturns[i];
            int[] inputs = negated ? new[] { returned, value } : new[] { value, returned };
            returned = AddNode("Select", inputs, default, null, forward, forward.Identifier.ValueText, member: "", conditionOverride: condition);
        }

        return returned;
    }

    private void Statements(IEnumerable<StatementSyntax> statements, ref bool hasReturn, ref int returned)
    {
        foreach (StatementSyntax statement in statements)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            if (hasReturn)
            {
                Fail(statement, "it comes after the return");
                continue;
            }

            Statement(statement, ref hasReturn, ref returned);
        }
    }

    private void Statement(StatementSyntax statement, ref bool hasReturn, ref int returned)
    {
        switch (statement)
        {
            case EmptyStatementSyntax:
                return;

            case BlockSyntax block:
                Statements(block.Statements, ref hasReturn, ref returned);
                return;

            case UsingStatementSyntax { Statement: { } inner }:
                // using (var scope = torch.NewDisposeScope()) { ... } / using (torch.no_grad()) { ... }
                Statements(new[] { inner }, ref hasReturn, ref returned);
                return;

            case LocalDeclarationStatementSyntax local:
                Local(local);
                return;

            case ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax assignment }:
                Assignment(statement, assignment);
                return;

            case ExpressionStatementSyntax { Expression: InvocationExpressionSyntax invocation }:
                InvocationStatement(statement, invocation);
                return;

            case IfStatementSyntax ifStatement:
                If(ifStatement, ref hasReturn, ref returned);
                return;

            case ForEachStatementSyntax forEach:
                ForEach(forEach);
                return;

            case ForStatementSyntax forStatement:
                For(forStatement);
                return;

            case ReturnStatementSyntax { Expression: { } expression } returnStatement:
                if (_condition >= 0)
                {
                    int value = Value(expression, statement, expression);
                    if (_earlyReturns.Count > 0)
                    {
                        Fail(statement, "only one return inside an if is captured; assign a variable in the ifs and return it once");
                    }

                    _earlyReturns.Add((_condition, _negated, value));
                    return;
                }

                returned = Value(expression, statement, expression);
                hasReturn = true;
                return;

            case WhileStatementSyntax or DoStatementSyntax:
                Fail(statement, "while/do loops depend on data; loop over a ModuleList or Sequential member with foreach instead", dataDependent: true);
                return;

            default:
                Fail(statement, "this kind of statement is not captured");
                return;
        }
    }

    private void Local(LocalDeclarationStatementSyntax local)
    {
        foreach (VariableDeclaratorSyntax variable in local.Declaration.Variables)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            string name = variable.Identifier.ValueText;
            ITypeSymbol? type = (_semanticModel.GetDeclaredSymbol(variable, _cancellationToken) as ILocalSymbol)?.Type;
            if (KnownTypes.IsTensor(type))
            {
                if (variable.Initializer is { } initializer)
                {
                    _variables[name] = Value(initializer.Value, local, initializer.Value);
                }
                else
                {
                    _variables[name] = Unknown;
                }
            }
            else if (IsTensorTuple(type))
            {
                // var r = lstm.forward(x); ... r.Item1: the call is captured where its elements are read.
                if (variable.Initializer is { } initializer && TupleCallOf(initializer.Value, local, initializer.Value, 0) is { } call)
                {
                    _tuples[name] = call;
                }
                else
                {
                    _tuples.Remove(name);
                    Fail(local, $"'{name}' holds a tuple that is not a module call's result; a tuple is captured as the result of a module call such as 'lstm.forward(x)'");
                }
            }
            else if (IsTensorCollection(type))
            {
                var values = new List<int>();
                if (variable.Initializer is { } initializer && SyntaxElements(initializer.Value) is { } elements)
                {
                    foreach (ExpressionSyntax element in elements)
                    {
                        _cancellationToken.ThrowIfCancellationRequested();
                        values.Add(Value(element, local, element));
                    }
                }

                _lists[name] = values;
            }
            else if (variable.Initializer is { } scalarInitializer && IsScalar(type) && IsShapeArithmetic(scalarInitializer.Value)
                && _semanticModel.GetDeclaredSymbol(variable, _cancellationToken) is ILocalSymbol scalarSymbol)
            {
                // long length = tokens.shape[1]: a float expression that reads it writes the initializer out in place,
                // over the tensors as they were here (a later 'x = ...' must not change what it read).
                _scalars[name] = new ScalarLocal(scalarSymbol, scalarInitializer.Value, new Dictionary<string, int>(_variables, StringComparer.Ordinal));
            }

            // Anything else (a dispose scope, a no_grad guard) is not a tensor: it is left to the float expressions
            // that may read it, which say so if they cannot.
        }
    }

    private void Assignment(StatementSyntax statement, AssignmentExpressionSyntax assignment)
    {
        if (assignment.IsKind(SyntaxKind.SimpleAssignmentExpression) && DeconstructionTargets(assignment.Left) is { } targets)
        {
            Deconstruction(statement, targets, assignment.Right);
            return;
        }

        if (assignment.Left is not IdentifierNameSyntax target || !_variables.ContainsKey(target.Identifier.ValueText))
        {
            if (assignment.Left is IdentifierNameSyntax listTarget && _lists.ContainsKey(listTarget.Identifier.ValueText) && SyntaxElements(assignment.Right) is { } elements)
            {
                _lists[listTarget.Identifier.ValueText] = elements.Select(e => Value(e, statement, e)).ToList();
                return;
            }

            Fail(statement, "only forward's parameter and local tensor variables can be assigned");
            return;
        }

        string name = target.Identifier.ValueText;
        switch (assignment.Kind())
        {
            case SyntaxKind.SimpleAssignmentExpression:
                _variables[name] = Value(assignment.Right, statement, assignment.Right);
                return;
            case SyntaxKind.AddAssignmentExpression when IsTensor(assignment.Right):
            {
                int left = _variables[name];
                int right = Value(assignment.Right, statement, assignment.Right);
                _variables[name] = left == Unknown || right == Unknown ? Unknown : AddNode("Add", new[] { left, right }, default, null, statement, OneLine(statement));
                return;
            }

            case SyntaxKind.MultiplyAssignmentExpression when IsTensor(assignment.Right):
            {
                int left = _variables[name];
                int right = Value(assignment.Right, statement, assignment.Right);
                _variables[name] = left == Unknown || right == Unknown ? Unknown : AddNode("Mul", new[] { left, right }, default, null, statement, OneLine(statement));
                return;
            }

            case SyntaxKind.AddAssignmentExpression or SyntaxKind.MultiplyAssignmentExpression when ScalarConstant(assignment.Right) is float constant:
            {
                int left = _variables[name];
                string op = assignment.IsKind(SyntaxKind.MultiplyAssignmentExpression) ? "MulConstant" : "AddConstant";
                _variables[name] = left == Unknown ? Unknown : AddNode(op, new[] { left }, default, null, statement, OneLine(statement), floats: new[] { constant });
                return;
            }

            case SyntaxKind.AddAssignmentExpression or SyntaxKind.SubtractAssignmentExpression or SyntaxKind.MultiplyAssignmentExpression or SyntaxKind.DivideAssignmentExpression:
            {
                string op = assignment.OperatorToken.ValueText.TrimEnd('=');
                _variables[name] = FloatNode(assignment.Right, statement, prefix: (_variables[name], op));
                return;
            }

            default:
                Fail(statement, $"'{assignment.OperatorToken.ValueText}' on a tensor is not captured");
                return;
        }
    }

    /// <summary>
    /// <c>var (output, h, c) = lstm.forward(x);</c>, <c>(Tensor output, _, _) = gru.call(x, null);</c>, <c>(x, h) = rnn.forward(x);</c>:
    /// one CallItem node per named element, all reading the same call (the binder runs it once per input).
    /// </summary>
    private void Deconstruction(StatementSyntax statement, List<string?> targets, ExpressionSyntax right)
    {
        TupleCall? call = TupleCallOf(right, statement, right, 0);
        if (call is null)
        {
            Fail(statement, "a deconstruction is captured when it takes apart a module call that returns tensors, as 'var (output, h, c) = lstm.forward(x);'");
        }
        else if (call.Arity != targets.Count)
        {
            Fail(statement, $"'{call.Text}' returns {call.Arity} tensors, but {targets.Count} are taken");
            call = null;
        }

        for (int k = 0; k < targets.Count; k++)
        {
            if (targets[k] is not { } name)
            {
                continue;
            }

            _variables[name] = call?.Inputs is not { } callInputs || !ReadsWrittenWeights(call, k, statement)
                ? Unknown
                : AddNode("CallItem", callInputs, call.ItemInts(k), null, statement, OneLine(statement), member: call.Member);
        }
    }

    /// <summary>
    /// False (after reporting it) when <paramref name="element"/> is the attention weights of a MultiheadAttention call
    /// (query, key, value, key_padding_mask, need_weights, attn_mask) that passes need_weights: false: TorchSharp returns no
    /// tensor there.
    /// </summary>
    private bool ReadsWrittenWeights(TupleCall call, int element, SyntaxNode statement)
    {
        if (element == 1 && call.Slots is { Length: 6 } slots && slots[4] == ConstantFalseSlot)
        {
            Fail(statement, $"'{call.Text}' passes need_weights: false, so its second element (the attention weights) is no tensor; pass true or discard it with '_'");
            return false;
        }

        return true;
    }

    /// <summary>The variables a deconstruction assigns, in order (null for a discard), or null when <paramref name="left"/> is not one.</summary>
    private List<string?>? DeconstructionTargets(ExpressionSyntax left)
    {
        switch (left)
        {
            case DeclarationExpressionSyntax { Designation: ParenthesizedVariableDesignationSyntax designation }:
                return designation.Variables.Select(v => v switch
                {
                    SingleVariableDesignationSyntax single => single.Identifier.ValueText,
                    _ => (string?)null,
                }).ToList();

            case TupleExpressionSyntax tuple:
            {
                var targets = new List<string?>();
                foreach (ArgumentSyntax argument in tuple.Arguments)
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    switch (argument.Expression)
                    {
                        case DeclarationExpressionSyntax { Designation: SingleVariableDesignationSyntax single }:
                            targets.Add(single.Identifier.ValueText);
                            break;
                        case DeclarationExpressionSyntax { Designation: DiscardDesignationSyntax }:
                            targets.Add(null);
                            break;
                        case IdentifierNameSyntax { Identifier.ValueText: "_" } when !_variables.ContainsKey("_"):
                            targets.Add(null);
                            break;
                        case IdentifierNameSyntax identifier when _variables.ContainsKey(identifier.Identifier.ValueText):
                            targets.Add(identifier.Identifier.ValueText);
                            break;
                        default:
                            return null;
                    }
                }

                return targets;
            }

            default:
                return null;
        }
    }

    /// <summary>
    /// A module call that returns a tuple of tensors (LSTM's (output, h_n, c_n), GRU's (output, h_n)) — written here or held by a
    /// local — with its input captured; null (after reporting why, if it is such a call) otherwise.
    /// </summary>
    private TupleCall? TupleCallOf(ExpressionSyntax expression, SyntaxNode statement, ExpressionSyntax wholeValue, int depth)
    {
        expression = Unparenthesize(expression);
        if (expression is IdentifierNameSyntax identifier && _tuples.TryGetValue(identifier.Identifier.ValueText, out TupleCall? held))
        {
            return held;
        }

        if (expression is not InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "forward" or "call" } access } invocation
            || ModuleMember(access.Expression) is not { } member
            || !IsTensorTuple(_semanticModel.GetTypeInfo(invocation, _cancellationToken).Type))
        {
            return null;
        }

        int arity = TupleArity(_semanticModel.GetTypeInfo(invocation, _cancellationToken).Type!);
        SeparatedSyntaxList<ArgumentSyntax> arguments = invocation.ArgumentList.Arguments;
        if (_semanticModel.GetSymbolInfo(invocation, _cancellationToken).Symbol is IMethodSymbol { Parameters.Length: > 2 })
        {
            // attn.call(q, k, v, null, false, mask): every argument by its parameter, as a call returning one tensor is,
            // with bool parameters (need_weights) as constants.
            if (CallArguments(invocation, statement, wholeValue, depth, firstArgument: null, constantBools: true) is not { } written)
            {
                return null;
            }

            ReportNoInt8Op(access.Expression, invocation);
            return new TupleCall(member, written.Inputs.Contains(Unknown) ? null : written.Inputs, arity, OneLine(invocation), written.Slots);
        }

        if (arguments.Count is < 1 or > 2)
        {
            Fail(statement, $"'{OneLine(invocation)}' is captured with its input and, optionally, its initial state");
            return null;
        }

        // The initial state: none (zeros), an LSTM's (h0, c0) pair written as a tuple, or a GRU/RNN's h0 tensor.
        var inputs = new List<int> { Value(arguments[0].Expression, statement, wholeValue, depth + 1) };
        if (arguments.Count == 2 && !IsNullOrDefault(arguments[1].Expression))
        {
            ExpressionSyntax state = Unparenthesize(arguments[1].Expression);
            if (state is TupleExpressionSyntax { Arguments.Count: 2 } pair && pair.Arguments.All(a => IsTensor(a.Expression)))
            {
                inputs.AddRange(pair.Arguments.Select(a => Value(a.Expression, statement, wholeValue, depth + 1)));
            }
            else if (IsTensor(state))
            {
                inputs.Add(Value(state, statement, wholeValue, depth + 1));
            }
            else
            {
                Fail(statement, $"'{OneLine(invocation)}': the initial state is captured when written as a tensor (a GRU's h0) or a pair '(h0, c0)' of tensors (an LSTM's), not as '{OneLine(state)}'");
                return null;
            }
        }

        ReportNoInt8Op(access.Expression, invocation);
        return new TupleCall(member, inputs.Contains(Unknown) ? null : inputs.ToArray(), arity, OneLine(invocation));
    }

    /// <summary>The declared type of a called member already says it runs in float (or has a dynamic form): tell the user at the line, not only in Summary().</summary>
    private void ReportNoInt8Op(ExpressionSyntax receiver, InvocationExpressionSyntax invocation)
    {
        if (NoInt8Op(receiver) is not { } floatType)
        {
            return;
        }

        // A type the mapping can quantize is the usual case: not a problem to warn about, since the mapping decides (info, not warning).
        string? dynamicForm = floatType switch
        {
            "LSTM" or "GRU" => $"QConfig.Dynamic() for it in the QConfigMapping makes it PyTorch's dynamic int8 {floatType}",
            "MultiheadAttention" => "QConfig.Dynamic() for it in the QConfigMapping gives it dynamic int8 projections (scores and softmax stay float)",
            "Embedding" => "QConfig.FloatQParamsWeightOnly for it in the QConfigMapping makes it a table of 8-bit rows (PyTorch's float_qparams_weight_only_qconfig)",
            "TransformerEncoderLayer" => "QConfig.Dynamic() for it in the QConfigMapping gives it dynamic int8 projections (attention and LayerNorm stay float)",
            _ => null,
        };
        AddUnlessDisabled(invocation, DiagnosticInfo.Create(
            dynamicForm is null ? DiagnosticDescriptors.RunsInFloat : DiagnosticDescriptors.DynamicForm,
            LocationInfo.From(invocation),
            ShortenTo160(OneLine(invocation)),
            _type.Name,
            dynamicForm ?? $"QuantGen has no int8 op for {floatType}, so it runs between dequantize and quantize"));
    }

    /// <summary>
    /// The arguments of a module call with more than one (<c>layer.call(x, null, padding)</c>), by the called method's
    /// parameters: Slots[p] is the input index that parameter p receives, or −1 for null (written, or an omitted
    /// parameter whose default is null). Every parameter must be a tensor; null when the call is not captured (reported).
    /// <paramref name="firstArgument"/>, when given, is the value of the first argument (a loop's running tensor).
    /// </summary>
    private (int[] Inputs, int[] Slots)? CallArguments(InvocationExpressionSyntax invocation, SyntaxNode statement, ExpressionSyntax wholeValue, int depth, int? firstArgument, bool constantBools = false)
    {
        string text = OneLine(invocation);
        if (_semanticModel.GetSymbolInfo(invocation, _cancellationToken).Symbol is not IMethodSymbol method)
        {
            Fail(statement, $"'{text}': the called method could not be resolved, so its arguments cannot be matched to its parameters");
            return null;
        }

        SeparatedSyntaxList<ArgumentSyntax> arguments = invocation.ArgumentList.Arguments;
        var byParameter = new ArgumentSyntax?[method.Parameters.Length];
        for (int a = 0; a < arguments.Count; a++)
        {
            int parameter = arguments[a].NameColon is { } named
                ? method.Parameters.IndexOf(method.Parameters.FirstOrDefault(p => p.Name == named.Name.Identifier.ValueText)!)
                : a;
            if (parameter < 0 || parameter >= byParameter.Length)
            {
                Fail(statement, $"'{text}': argument {a + 1} matches no parameter of {method.Name}");
                return null;
            }

            byParameter[parameter] = arguments[a];
        }

        var inputs = new List<int>();
        var slots = new int[byParameter.Length];
        for (int p = 0; p < byParameter.Length; p++)
        {
            IParameterSymbol parameter = method.Parameters[p];
            if (constantBools && parameter.Type.SpecialType == SpecialType.System_Boolean)
            {
                // need_weights: a constant the binder passes as written (ConstantFalse / ConstantTrue slots).
                object? constant = byParameter[p] is { } given
                    ? _semanticModel.GetConstantValue(given.Expression, _cancellationToken) is { HasValue: true, Value: bool written } ? written : null
                    : parameter.HasExplicitDefaultValue ? parameter.ExplicitDefaultValue : null;
                if (constant is not bool flag)
                {
                    Fail(statement, $"'{text}' is captured when '{parameter.Name}' is a constant (true or false), as the binder decides once what the call returns; '{(byParameter[p] is { } b ? OneLine(b.Expression) : "(left out)")}' is not");
                    return null;
                }

                slots[p] = flag ? ConstantTrueSlot : ConstantFalseSlot;
                continue;
            }

            if (!KnownTypes.IsTensor(parameter.Type))
            {
                Fail(statement, $"'{text}' is captured when every parameter of {method.Name} is a tensor; '{parameter.Name}' is {parameter.Type.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat)}");
                return null;
            }

            ArgumentSyntax? argument = byParameter[p];
            if (argument is null)
            {
                if (!parameter.HasExplicitDefaultValue || parameter.ExplicitDefaultValue is not null)
                {
                    Fail(statement, $"'{text}' leaves out '{parameter.Name}', which has no null default");
                    return null;
                }

                slots[p] = -1;
            }
            else if (IsNullOrDefault(argument.Expression))
            {
                if (constantBools && p > 0 && parameter.NullableAnnotation == NullableAnnotation.NotAnnotated)
                {
                    // attn.call(x, x, null): TorchSharp's attention would fail on it at run time; say so at the line.
                    Fail(statement, $"'{text}': '{parameter.Name}' takes a tensor, not null");
                    return null;
                }

                slots[p] = p == 0 ? Unknown : -1;
                if (p == 0)
                {
                    Fail(statement, $"'{text}' passes null as the module's input");
                    return null;
                }
            }
            else if (p == 0 && firstArgument is { } first)
            {
                slots[p] = inputs.Count;
                inputs.Add(first);
            }
            else if (IsTensor(argument.Expression))
            {
                // One tensor given twice (attn.call(x, x, x)) is one input: the binder sees self-attention in the slots.
                int argumentValue = Value(argument.Expression, statement, wholeValue, depth + 1);
                int seen = argumentValue == Unknown ? -1 : inputs.IndexOf(argumentValue);
                slots[p] = seen >= 0 ? seen : inputs.Count;
                if (seen < 0)
                {
                    inputs.Add(argumentValue);
                }
            }
            else
            {
                Fail(statement, $"'{text}': '{OneLine(argument.Expression)}' is neither a tensor nor null");
                return null;
            }
        }

        if (slots.Length == 0 || slots[0] != 0)
        {
            Fail(statement, $"'{text}' is captured when its first argument is the tensor the module transforms");
            return null;
        }

        return (inputs.ToArray(), slots);
    }

    /// <summary><c>call.ItemN</c> or <c>local.ItemN</c> of a tuple-returning module call (decided without capturing anything).</summary>
    private bool IsTupleItem(MemberAccessExpressionSyntax access)
    {
        if (!access.Name.Identifier.ValueText.StartsWith("Item", StringComparison.Ordinal))
        {
            return false;
        }

        ExpressionSyntax receiver = Unparenthesize(access.Expression);
        return receiver is IdentifierNameSyntax identifier
            ? _tuples.ContainsKey(identifier.Identifier.ValueText)
            : receiver is InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "forward" or "call" } call } invocation
                && ModuleMember(call.Expression) is not null
                && IsTensorTuple(_semanticModel.GetTypeInfo(invocation, _cancellationToken).Type);
    }

    private static bool IsNullOrDefault(ExpressionSyntax expression) =>
        Unparenthesize(expression) is LiteralExpressionSyntax literal && (literal.IsKind(SyntaxKind.NullLiteralExpression) || literal.IsKind(SyntaxKind.DefaultLiteralExpression));

    /// <summary>A value tuple of two or more tensors (LSTM's), or a <c>System.Tuple</c> of them (MultiheadAttention's <c>Tuple&lt;Tensor, Tensor&gt;</c>).</summary>
    private static bool IsTensorTuple(ITypeSymbol? type) =>
        type is INamedTypeSymbol { IsTupleType: true } tuple
            ? tuple.TupleElements.Length >= 2 && tuple.TupleElements.All(e => KnownTypes.IsTensor(e.Type))
            : type is INamedTypeSymbol { IsGenericType: true, TypeArguments.Length: >= 2 and <= 7 } reference
                && reference.OriginalDefinition.ContainingNamespace?.ToDisplayString() == "System" && reference.Name == "Tuple"
                && reference.TypeArguments.All(KnownTypes.IsTensor);

    private static int TupleArity(ITypeSymbol type) =>
        type is INamedTypeSymbol { IsTupleType: true } tuple ? tuple.TupleElements.Length : ((INamedTypeSymbol)type).TypeArguments.Length;

    private static bool IsScalar(ITypeSymbol? type) =>
        type?.SpecialType is SpecialType.System_Int32 or SpecialType.System_Int64 or SpecialType.System_Single or SpecialType.System_Double or SpecialType.System_Boolean;

    /// <summary>
    /// True for arithmetic over constants, locals and tensor sizes only (<c>x.shape[1]</c>, <c>x.size(0)</c>, <c>x.dim()</c>,
    /// <c>x.numel()</c>, Math.Min/Max): what can be evaluated where it is read instead of where it was written.
    /// </summary>
    private static bool IsShapeArithmetic(ExpressionSyntax expression)
    {
        foreach (SyntaxNode node in expression.DescendantNodesAndSelf())
        {
            switch (node)
            {
                case InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "size" or "dim" or "numel" or "Min" or "Max" } }:
                    break;
                case InvocationExpressionSyntax or ObjectCreationExpressionSyntax or ImplicitObjectCreationExpressionSyntax or AssignmentExpressionSyntax
                    or AnonymousFunctionExpressionSyntax or AwaitExpressionSyntax or PrefixUnaryExpressionSyntax { RawKind: (int)SyntaxKind.PreIncrementExpression or (int)SyntaxKind.PreDecrementExpression }
                    or PostfixUnaryExpressionSyntax { RawKind: (int)SyntaxKind.PostIncrementExpression or (int)SyntaxKind.PostDecrementExpression }:
                    return false;
            }
        }

        return true;
    }

    /// <summary>A number or bool local of forward: its symbol, its initializer, and the tensor variables' values where it was declared.</summary>
    private sealed record ScalarLocal(ILocalSymbol Symbol, ExpressionSyntax Initializer, IReadOnlyDictionary<string, int> Variables);

    /// <summary>A captured module call returning <paramref name="Arity"/> tensors; <paramref name="Inputs"/> is [x] or [x, initial state...], null when one was not captured.</summary>
    /// <summary>A tuple-returning module call; <paramref name="Slots"/> are the call's slots when it was written with all its arguments (MultiheadAttention's), else null.</summary>
    /// <summary>The runtime's ArgumentsCall.ConstantFalse and ConstantTrue: a bool parameter given a constant.</summary>
    private const int ConstantFalseSlot = -2, ConstantTrueSlot = -3;

    private sealed record TupleCall(string Member, int[]? Inputs, int Arity, string Text, int[]? Slots = null)
    {
        /// <summary>A CallItem node's Ints: the element, the element count, then the call's slots if any.</summary>
        public EquatableArray<int> ItemInts(int element) => new[] { element, Arity }.Concat(Slots ?? Array.Empty<int>()).ToArray().ToEquatableArray();
    }

    private void InvocationStatement(StatementSyntax statement, InvocationExpressionSyntax invocation)
    {
        if (invocation.Expression is MemberAccessExpressionSyntax { Expression: IdentifierNameSyntax receiver, Name: var method })
        {
            string name = receiver.Identifier.ValueText;
            if (_lists.TryGetValue(name, out List<int>? list) && method.Identifier.ValueText == "Add" && invocation.ArgumentList.Arguments.Count == 1)
            {
                ExpressionSyntax element = invocation.ArgumentList.Arguments[0].Expression;
                list.Add(Value(element, statement, element));
                return;
            }

            if (_variables.ContainsKey(name) && method.Identifier.ValueText.EndsWith("_", StringComparison.Ordinal))
            {
                // x.add_(y); x.relu_(); ...: in place, so the variable now holds the result.
                _variables[name] = Value(invocation, statement, invocation);
                return;
            }

            if (_variables.ContainsKey(name) && method.Identifier.ValueText is "Dispose" or "print")
            {
                return;
            }
        }

        Fail(statement, "its result is not assigned to a variable or returned");
    }

    /// <summary><c>foreach (var layer in member) x = layer.forward(x);</c>: a Loop node over the member's children.</summary>
    private void ForEach(ForEachStatementSyntax forEach)
    {
        string? container = ModuleMember(forEach.Expression);
        if (container is null)
        {
            Fail(forEach, $"a foreach in forward is captured when it runs over a module member (a ModuleList or Sequential), not over '{OneLine(forEach.Expression)}'", dataDependent: true);
            return;
        }

        if (SingleStatement(forEach.Statement) is ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax assignment } body
            && assignment.IsKind(SyntaxKind.SimpleAssignmentExpression)
            && assignment.Left is IdentifierNameSyntax target
            && _variables.ContainsKey(target.Identifier.ValueText)
            && Unparenthesize(assignment.Right) is InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "forward" or "call", Expression: IdentifierNameSyntax loopVariable } } call
            && loopVariable.Identifier.ValueText == forEach.Identifier.ValueText
            && IsRunningTensor(call, target))
        {
            int input = _variables[target.Identifier.ValueText];
            string text = OneLine(forEach.WithStatement(SyntaxFactory.EmptyStatement())).TrimEnd(';') + " " + OneLine(body);
            _variables[target.Identifier.ValueText] = LoopNode(call, body, assignment.Right, input, container, text, target.Identifier.ValueText, forEach.Identifier.ValueText);
            return;
        }

        Fail(forEach, $"a loop over {container} is captured in the form 'foreach (var m in {container}) x = m.forward(x);'");
    }

    /// <summary><c>for (int i = 0; i &lt; member.Count; i++) x = member[i].forward(x);</c>: a Loop node.</summary>
    private void For(ForStatementSyntax forStatement)
    {
        if (forStatement.Declaration?.Variables.Count == 1
            && forStatement.Declaration.Variables[0] is { Initializer.Value: LiteralExpressionSyntax zero } index
            && zero.Token.Value is 0
            && forStatement.Condition is BinaryExpressionSyntax { RawKind: (int)SyntaxKind.LessThanExpression, Left: IdentifierNameSyntax i, Right: var bound }
            && i.Identifier.ValueText == index.Identifier.ValueText
            && SingleStatement(forStatement.Statement) is ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax assignment } body
            && assignment.IsKind(SyntaxKind.SimpleAssignmentExpression)
            && assignment.Left is IdentifierNameSyntax target
            && _variables.ContainsKey(target.Identifier.ValueText)
            && Unparenthesize(assignment.Right) is InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "forward" or "call", Expression: ElementAccessExpressionSyntax element } } call
            && element.ArgumentList.Arguments.Count == 1
            && element.ArgumentList.Arguments[0].Expression is IdentifierNameSyntax subscript
            && subscript.Identifier.ValueText == index.Identifier.ValueText
            && ModuleMember(element.Expression) is { } container
            && bound is MemberAccessExpressionSyntax { Name.Identifier.ValueText: "Count" or "Length" } or InvocationExpressionSyntax
            && OneLine(bound).StartsWith(OneLine(element.Expression), StringComparison.Ordinal)
            && IsRunningTensor(call, target))
        {
            int input = _variables[target.Identifier.ValueText];
            _variables[target.Identifier.ValueText] = LoopNode(call, body, assignment.Right, input, container, OneLine(body), target.Identifier.ValueText, index.Identifier.ValueText);
            return;
        }

        Fail(forStatement, "a for loop is captured in the form 'for (int i = 0; i < member.Count; i++) x = member[i].forward(x);' over a ModuleList or Sequential member", dataDependent: true);
    }

    /// <summary>The call's first (positional) argument is the loop's running tensor <paramref name="target"/>.</summary>
    private static bool IsRunningTensor(InvocationExpressionSyntax call, IdentifierNameSyntax target) =>
        call.ArgumentList.Arguments.Count >= 1
        && call.ArgumentList.Arguments[0].NameColon is null
        && Unparenthesize(call.ArgumentList.Arguments[0].Expression) is IdentifierNameSyntax argument
        && argument.Identifier.ValueText == target.Identifier.ValueText;

    /// <summary>
    /// A Loop node: each child called on the running tensor, with the same further arguments (tensors computed before the
    /// loop, or null) when the call has them (<c>x = layer.call(x, null, padding)</c>); Ints are then the call's slots.
    /// </summary>
    private int LoopNode(InvocationExpressionSyntax call, StatementSyntax body, ExpressionSyntax wholeValue, int input, string container, string text, string running, string loopVariable)
    {
        if (input == Unknown)
        {
            return Unknown;
        }

        if (call.ArgumentList.Arguments.Count == 1)
        {
            return AddNode("Loop", new[] { input }, default, null, body, text, member: container);
        }

        // The further arguments are evaluated once, before the loop: they may not read the running tensor or the child.
        foreach (ArgumentSyntax argument in call.ArgumentList.Arguments.Skip(1))
        {
            if (argument.Expression.DescendantNodesAndSelf().OfType<IdentifierNameSyntax>().Any(n => n.Identifier.ValueText == running || n.Identifier.ValueText == loopVariable))
            {
                Fail(body, $"'{OneLine(call)}': the arguments after the first are captured when they do not change inside the loop; '{OneLine(argument.Expression)}' reads {running} or {loopVariable}");
                return Unknown;
            }
        }

        return CallArguments(call, body, wholeValue, 0, firstArgument: input) is { } arguments && !arguments.Inputs.Contains(Unknown)
            ? AddNode("Loop", arguments.Inputs, arguments.Slots.ToEquatableArray(), null, body, text, member: container)
            : Unknown;
    }

    private static StatementSyntax SingleStatement(StatementSyntax statement) =>
        statement is BlockSyntax { Statements.Count: 1 } block ? block.Statements[0] : statement;

    private void If(IfStatementSyntax statement, ref bool hasReturn, ref int returned)
    {
        if (_condition >= 0 || _afterReturn.Condition >= 0)
        {
            Fail(statement, _condition >= 0
                ? "nested construction-time ifs are not captured; combine the conditions"
                : "an if after an early return is not captured; assign a variable in each branch and return it once");
            return;
        }

        CapturedConditionSpec? condition = Condition(statement.Condition, out bool negate);
        if (condition is null)
        {
            Fail(statement, $"the condition '{OneLine(statement.Condition)}' depends on data, not only on how the module was built (a member null check, a readonly bool field, a constant)", dataDependent: true);
            return;
        }

        int index = _conditions.IndexOf(condition);
        if (index < 0)
        {
            _conditions.Add(condition);
            index = _conditions.Count - 1;
        }

        var before = new Dictionary<string, int>(_variables, StringComparer.Ordinal);
        _condition = index;
        _negated = negate;
        bool branchReturned = false;
        int unused = Unknown;
        Statement(statement.Statement, ref branchReturned, ref unused);
        var afterThen = new Dictionary<string, int>(_variables, StringComparer.Ordinal);
        foreach (KeyValuePair<string, int> saved in before)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            _variables[saved.Key] = saved.Value;
        }

        if (statement.Else is { } elseClause)
        {
            _negated = !negate;
            Statement(elseClause.Statement, ref branchReturned, ref unused);
        }

        var afterElse = new Dictionary<string, int>(_variables, StringComparer.Ordinal);
        _condition = -1;
        _negated = false;
        if (_earlyReturns.Count > 0 && _earlyReturns[_earlyReturns.Count - 1].Condition == index)
        {
            // The statements after 'if (c) return a;' run only on the other branch.
            _afterReturn = (index, !_earlyReturns[_earlyReturns.Count - 1].Negated);
        }

        foreach (KeyValuePair<string, int> entry in before)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            int whenTrue = afterThen[entry.Key], whenFalse = afterElse[entry.Key];
            if (negate)
            {
                (whenTrue, whenFalse) = (whenFalse, whenTrue);
            }

            _variables[entry.Key] = whenTrue == whenFalse || whenTrue == Unknown || whenFalse == Unknown
                ? (whenTrue == Unknown || whenFalse == Unknown ? Unknown : whenTrue)
                : AddNode("Select", new[] { whenTrue, whenFalse }, default, null, statement, OneLine(statement.Condition), member: "", conditionOverride: index);
        }

        // Variables first declared inside a branch do not outlive it.
        foreach (string name in _variables.Keys.Where(k => !before.ContainsKey(k)).ToList())
        {
            _cancellationToken.ThrowIfCancellationRequested();
            _variables.Remove(name);
        }
    }

    private CapturedConditionSpec? Condition(ExpressionSyntax expression, out bool negate)
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
            return new CapturedConditionSpec("Constant", string.Empty, value, text);
        }

        switch (expression)
        {
            case IsPatternExpressionSyntax { Pattern: ConstantPatternSyntax { Expression: LiteralExpressionSyntax literal } } pattern
                when literal.IsKind(SyntaxKind.NullLiteralExpression) && InstanceMember(pattern.Expression) is { } member:
                return new CapturedConditionSpec("MemberIsNull", member, false, text);
            case IsPatternExpressionSyntax { Pattern: UnaryPatternSyntax { Pattern: ConstantPatternSyntax { Expression: LiteralExpressionSyntax literal } } } pattern
                when literal.IsKind(SyntaxKind.NullLiteralExpression) && InstanceMember(pattern.Expression) is { } member:
                return new CapturedConditionSpec("MemberIsNotNull", member, false, text);
            case BinaryExpressionSyntax binary when (binary.IsKind(SyntaxKind.EqualsExpression) || binary.IsKind(SyntaxKind.NotEqualsExpression))
                && (binary.Right.IsKind(SyntaxKind.NullLiteralExpression) || binary.Left.IsKind(SyntaxKind.NullLiteralExpression)):
            {
                ExpressionSyntax? other = binary.Right.IsKind(SyntaxKind.NullLiteralExpression) ? binary.Left : binary.Left.IsKind(SyntaxKind.NullLiteralExpression) ? binary.Right : null;
                if (other is not null && InstanceMember(other) is { } member)
                {
                    return new CapturedConditionSpec(binary.IsKind(SyntaxKind.EqualsExpression) ? "MemberIsNull" : "MemberIsNotNull", member, false, text);
                }

                return null;
            }

            case BinaryExpressionSyntax binary when (binary.IsKind(SyntaxKind.EqualsExpression) || binary.IsKind(SyntaxKind.NotEqualsExpression))
                && (binary.Right.IsKind(SyntaxKind.FalseLiteralExpression) || binary.Right.IsKind(SyntaxKind.TrueLiteralExpression)):
            {
                // if (training == false): the bool member, negated as written.
                CapturedConditionSpec? inner = Condition(binary.Left, out bool innerNegated);
                if (inner is null || inner.Kind != "BoolMember")
                {
                    return null;
                }

                negate = innerNegated ^ (binary.IsKind(SyntaxKind.EqualsExpression) == binary.Right.IsKind(SyntaxKind.FalseLiteralExpression));
                return inner with { Text = text };
            }

            case IdentifierNameSyntax or MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax }:
            {
                // Any bool field or property of the module (readonly or not, inherited ones such as TorchSharp's
                // 'training' too) is read once, at Prepare, on the instance: what FX's tracing would see then.
                ISymbol? symbol = _semanticModel.GetSymbolInfo(expression, _cancellationToken).Symbol;
                if (symbol is { IsStatic: false } && symbol is IFieldSymbol { Type.SpecialType: SpecialType.System_Boolean } or IPropertySymbol { Type.SpecialType: SpecialType.System_Boolean, IsIndexer: false })
                {
                    return new CapturedConditionSpec("BoolMember", symbol.Name, false, text);
                }

                return null;
            }

            default:
                return null;
        }
    }

    /// <summary>The value an expression evaluates to, adding nodes for what it computes.</summary>
    private int Value(ExpressionSyntax expression, SyntaxNode statement, ExpressionSyntax wholeValue, int depth = 0)
    {
        if (depth > MaxNesting || _nodes.Count > MaxNodes)
        {
            Fail(statement, depth > MaxNesting ? $"calls are nested more than {MaxNesting} deep" : $"forward has more than {MaxNodes} operations");
            return Unknown;
        }

        expression = Unparenthesize(expression);
        string Described(SyntaxNode node) => node == Unparenthesize(wholeValue) ? OneLine(statement) : OneLine(node);
        switch (expression)
        {
            case IdentifierNameSyntax identifier when _variables.TryGetValue(identifier.Identifier.ValueText, out int value):
                if (value == Unknown)
                {
                    Fail(statement, $"'{identifier.Identifier.ValueText}' has no captured value here (declared without one, or assigned in a statement that was not captured)");
                }

                return value;

            case PostfixUnaryExpressionSyntax { RawKind: (int)SyntaxKind.SuppressNullableWarningExpression } suppressed:
                return Value(suppressed.Operand, statement, wholeValue, depth + 1);

            // lstm.forward(x).Item1, r.Item2: one element of a tuple-returning module call.
            case MemberAccessExpressionSyntax { Name.Identifier.ValueText: var item } access
                when item.StartsWith("Item", StringComparison.Ordinal) && int.TryParse(item.Substring(4), out int position)
                && TupleCallOf(access.Expression, statement, wholeValue, depth) is { } call:
            {
                if (position < 1 || position > call.Arity)
                {
                    Fail(statement, $"'{call.Text}' returns {call.Arity} tensors; there is no {item}");
                    return Unknown;
                }

                return call.Inputs is not { } callInputs || !ReadsWrittenWeights(call, position - 1, statement) ? Unknown : AddNode("CallItem", callInputs, call.ItemInts(position - 1), null, access, Described(access), member: call.Member);
            }

            case InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "forward" or "call" } access } invocation
                when ModuleMember(access.Expression) is { } member:
            {
                if (_semanticModel.GetTypeInfo(invocation, _cancellationToken).Type is { TypeKind: not TypeKind.Error } returned && !KnownTypes.IsTensor(returned))
                {
                    // Without this, 'lstm.forward(x).Item1' became a tensor-valued call whose float code did not compile.
                    Fail(statement, $"'{OneLine(invocation)}' returns {returned.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat)}, not one tensor; module calls are captured when they return a tensor, or a tuple of tensors taken apart ('var (output, h, c) = lstm.forward(x);') or read with .Item1");
                    return Unknown;
                }

                if (invocation.ArgumentList.Arguments.Count != 1)
                {
                    // layer.call(x, null, padding): every argument a tensor or null, bound to the call of that arity.
                    if (CallArguments(invocation, statement, wholeValue, depth, firstArgument: null) is not { } arguments)
                    {
                        return Unknown;
                    }

                    ReportNoInt8Op(access.Expression, invocation);
                    return arguments.Inputs.Contains(Unknown) ? Unknown : AddNode("Call", arguments.Inputs, arguments.Slots.ToEquatableArray(), null, invocation, Described(invocation), member: member);
                }

                int input = Value(invocation.ArgumentList.Arguments[0].Expression, statement, wholeValue, depth + 1);
                ReportNoInt8Op(access.Expression, invocation);
                return input == Unknown ? Unknown : AddNode("Call", new[] { input }, default, null, invocation, Described(invocation), member: member);
            }

            case InvocationExpressionSyntax invocation when Known(invocation, statement, wholeValue, depth) is { } known:
                return known;

            case BinaryExpressionSyntax binary when binary.IsKind(SyntaxKind.AddExpression) && IsTensor(binary.Left) && IsTensor(binary.Right):
            {
                int left = Value(binary.Left, statement, wholeValue, depth + 1);
                int right = Value(binary.Right, statement, wholeValue, depth + 1);
                return left == Unknown || right == Unknown ? Unknown : AddNode("Add", new[] { left, right }, default, null, binary, Described(binary));
            }

            case BinaryExpressionSyntax binary when binary.IsKind(SyntaxKind.MultiplyExpression) && IsTensor(binary.Left) && IsTensor(binary.Right):
            {
                int left = Value(binary.Left, statement, wholeValue, depth + 1);
                int right = Value(binary.Right, statement, wholeValue, depth + 1);
                return left == Unknown || right == Unknown ? Unknown : AddNode("Mul", new[] { left, right }, default, null, binary, Described(binary));
            }

            // x * c, c * x, x + c, c + x with a numeric constant c: aten's mul_scalar / add_scalar.
            case BinaryExpressionSyntax binary when binary.IsKind(SyntaxKind.MultiplyExpression) || binary.IsKind(SyntaxKind.AddExpression):
            {
                ExpressionSyntax? tensor = null;
                float? constant = null;
                if (IsTensor(binary.Left) && ScalarConstant(binary.Right) is float right)
                {
                    (tensor, constant) = (binary.Left, right);
                }
                else if (IsTensor(binary.Right) && ScalarConstant(binary.Left) is float left)
                {
                    (tensor, constant) = (binary.Right, left);
                }

                if (tensor is null)
                {
                    goto default;
                }

                int input = Value(tensor, statement, wholeValue, depth + 1);
                string op = binary.IsKind(SyntaxKind.MultiplyExpression) ? "MulConstant" : "AddConstant";
                return input == Unknown ? Unknown : AddNode(op, new[] { input }, default, null, binary, Described(binary), floats: new[] { constant!.Value });
            }

            default:
                if (!IsTensor(expression))
                {
                    Fail(statement, $"'{OneLine(expression)}' is not a tensor this forward computes");
                    return Unknown;
                }

                return FloatNode(expression, statement, prefix: null, depth);
        }
    }

    /// <summary>
    /// Functions with an int8 op or no effect: add, relu, cat, flatten, view/reshape, MoveToOuterDisposeScope,
    /// contiguous. Null when the call is something else (it then becomes a float node).
    /// </summary>
    private int? Known(InvocationExpressionSyntax invocation, SyntaxNode statement, ExpressionSyntax wholeValue, int depth)
    {
        if (_semanticModel.GetOperation(invocation, _cancellationToken) is not IInvocationOperation operation)
        {
            return null;
        }

        IMethodSymbol method = operation.TargetMethod;
        string container = KnownTypes.MetadataName(method.ContainingType);
        bool instance = container == KnownTypes.Tensor && !method.IsStatic;
        string text = invocation == Unparenthesize(wholeValue) ? OneLine(statement) : OneLine(invocation);
        IOperation? ArgumentAt(int index) => operation.Arguments.FirstOrDefault(a => a.Parameter?.Ordinal == index)?.Value;
        int TensorOf(IOperation? value) => value?.Syntax is ExpressionSyntax syntax ? Value(syntax, statement, wholeValue, depth + 1) : Unknown;
        int Node(string op, int[] inputs, int[]? ints = null, float[]? floats = null) =>
            inputs.Any(i => i == Unknown) ? Unknown : AddNode(op, inputs, ints?.ToEquatableArray() ?? default, null, invocation, text, floats: floats);

        switch (container, method.Name)
        {
            case (KnownTypes.Tensor, "MoveToOuterDisposeScope" or "contiguous" or "DetachFromDisposeScope") when instance:
                return Node("Identity", new[] { TensorOf(operation.Instance) });

            case (KnownTypes.Tensor, "add" or "add_") when instance && method.Parameters.Length == 1 && KnownTypes.IsTensor(method.Parameters[0].Type):
                return Node("Add", new[] { TensorOf(operation.Instance), TensorOf(ArgumentAt(0)) });
            case ("TorchSharp.torch", "add") when method.Parameters.Length == 2 && method.Parameters.All(p => KnownTypes.IsTensor(p.Type)):
                return Node("Add", new[] { TensorOf(ArgumentAt(0)), TensorOf(ArgumentAt(1)) });

            case (KnownTypes.Tensor, "mul" or "mul_" or "multiply" or "multiply_") when instance && method.Parameters.Length == 1:
                return KnownTypes.IsTensor(method.Parameters[0].Type)
                    ? Node("Mul", new[] { TensorOf(operation.Instance), TensorOf(ArgumentAt(0)) })
                    : FloatConstant(ArgumentAt(0)) is float factor ? Node("MulConstant", new[] { TensorOf(operation.Instance) }, floats: new[] { factor }) : null;
            case ("TorchSharp.torch", "mul" or "multiply") when method.Parameters.Length == 2 && KnownTypes.IsTensor(method.Parameters[0].Type):
                return KnownTypes.IsTensor(method.Parameters[1].Type)
                    ? Node("Mul", new[] { TensorOf(ArgumentAt(0)), TensorOf(ArgumentAt(1)) })
                    : FloatConstant(ArgumentAt(1)) is float scalar ? Node("MulConstant", new[] { TensorOf(ArgumentAt(0)) }, floats: new[] { scalar }) : null;
            case (KnownTypes.Tensor, "add" or "add_") when instance && method.Parameters.Length == 1 && FloatConstant(ArgumentAt(0)) is float addend:
                return Node("AddConstant", new[] { TensorOf(operation.Instance) }, floats: new[] { addend });
            case ("TorchSharp.torch", "add") when method.Parameters.Length == 2 && KnownTypes.IsTensor(method.Parameters[0].Type) && FloatConstant(ArgumentAt(1)) is float summand:
                return Node("AddConstant", new[] { TensorOf(ArgumentAt(0)) }, floats: new[] { summand });

            // x.mean(new long[] { 2, 3 }, keepdim: true): constant dims, constant keepdim, no dtype.
            case (KnownTypes.Tensor, "mean") when instance:
            case ("TorchSharp.torch", "mean") when !instance && method.Parameters.Length >= 2 && KnownTypes.IsTensor(method.Parameters[0].Type):
            {
                int offset = instance ? 0 : 1;
                List<int>? dims = Constants(Unwrap(ArgumentAt(offset)));
                object? keep = ArgumentAt(offset + 1) is { } keepArgument ? Unwrap(keepArgument)?.ConstantValue is { HasValue: true } keepValue ? keepValue.Value : null : false;
                IArgumentOperation? dtype = operation.Arguments.FirstOrDefault(a => a.Parameter?.Ordinal == offset + 2);
                bool noDtype = dtype is null || dtype.ArgumentKind == ArgumentKind.DefaultValue || Unwrap(dtype.Value)?.ConstantValue is { HasValue: true, Value: null };
                if (dims is not { Count: > 0 } || keep is not bool keepDim || !noDtype)
                {
                    return null;
                }

                return Node("Mean", new[] { instance ? TensorOf(operation.Instance) : TensorOf(ArgumentAt(0)) }, new[] { keepDim ? 1 : 0 }.Concat(dims).ToArray());
            }

            case (KnownTypes.Tensor, "relu" or "relu_") when instance:
                return Node("Relu", new[] { TensorOf(operation.Instance) });
            case ("TorchSharp.torch+nn+functional", "relu" or "relu_"):
            case ("TorchSharp.torch", "relu" or "relu_"):
                return Node("Relu", new[] { TensorOf(ArgumentAt(0)) });

            case ("TorchSharp.torch+nn+functional", "relu6"):
                return Node("Hardtanh", new[] { TensorOf(ArgumentAt(0)) }, floats: new[] { 0f, 6f });
            case ("TorchSharp.torch+nn+functional", "hardtanh"):
            case (KnownTypes.Tensor, "clamp" or "clamp_" or "clip") when instance:
            {
                int offset = instance ? 0 : 1;
                float? low = FloatConstant(ArgumentAt(offset)), high = FloatConstant(ArgumentAt(offset + 1));
                if (low is null || high is null || low > high)
                {
                    return null;
                }

                return Node("Hardtanh", new[] { instance ? TensorOf(operation.Instance) : TensorOf(ArgumentAt(0)) }, floats: new[] { low.Value, high.Value });
            }

            case ("TorchSharp.torch+nn+functional", "adaptive_avg_pool2d"):
            {
                List<int>? size = Constants(Unwrap(ArgumentAt(1)));
                if (size is not { Count: 1 or 2 } || size.Any(s => s <= 0))
                {
                    return null;
                }

                return Node("AdaptiveAvgPool2d", new[] { TensorOf(ArgumentAt(0)) }, new[] { size[0], size[size.Count - 1] });
            }

            case ("TorchSharp.torch", "cat" or "concat" or "concatenate"):
            {
                IOperation? list = Unwrap(ArgumentAt(0));
                int? dim = ArgumentAt(1) is null ? 0 : Constant(ArgumentAt(1));
                List<int>? values = list switch
                {
                    IArrayCreationOperation { Initializer: { } initializer } => initializer.ElementValues.Select(TensorOf).ToList(),
                    ICollectionExpressionOperation collection => collection.Elements.Select(TensorOf).ToList(),
                    ILocalReferenceOperation local when _lists.TryGetValue(local.Local.Name, out List<int>? tracked) => tracked.ToList(),
                    // new List<Tensor> { a, b }: each element is an Add(...) invocation.
                    IObjectCreationOperation { Initializer: { } initializer } when initializer.Initializers.All(i => i is IInvocationOperation { Arguments.Length: 1 }) =>
                        initializer.Initializers.Cast<IInvocationOperation>().Select(i => TensorOf(i.Arguments[0].Value)).ToList(),
                    _ => null,
                };
                if (values is null || dim is null)
                {
                    return null;
                }

                return Node("Cat", values.ToArray(), new[] { dim.Value });
            }

            case ("TorchSharp.torch", "flatten") when method.Parameters.Length == 3:
            case (KnownTypes.Tensor, "flatten") when instance && method.Parameters.Length == 2 && method.Parameters[0].Type.SpecialType == SpecialType.System_Int64:
            {
                int offset = instance ? 0 : 1;
                int? start = Constant(ArgumentAt(offset)), end = Constant(ArgumentAt(offset + 1));
                if (start is null || end is null)
                {
                    return null;
                }

                return Node("Flatten", new[] { instance ? TensorOf(operation.Instance) : TensorOf(ArgumentAt(0)) }, new[] { start.Value, end.Value });
            }

            case (KnownTypes.Tensor, "view" or "reshape") when instance && method.Parameters.Length == 1:
            {
                IOperation? sizes = Unwrap(ArgumentAt(0));
                if (Constants(sizes) is { } shape)
                {
                    return Node("Reshape", new[] { TensorOf(operation.Instance) }, shape.ToArray());
                }

                // x.view(x.shape[0], -1) / x.view(x.size(0), -1): flatten from dim 1, whatever the batch.
                if (Elements(sizes) is { Count: 2 } pair && Constant(pair[1]) == -1 && IsBatchSize(pair[0], operation.Instance))
                {
                    return Node("Flatten", new[] { TensorOf(operation.Instance) }, new[] { 1, -1 });
                }

                // x.view(new long[] { x.shape[0], 256 * 2 * 2 }): the batch then constants is reshape(-1, ...).
                if (Elements(sizes) is { Count: >= 2 } batchFirst && IsBatchSize(batchFirst[0], operation.Instance)
                    && batchFirst.Skip(1).Select(Constant).ToList() is var rest && rest.All(r => r is > 0))
                {
                    return Node("Reshape", new[] { TensorOf(operation.Instance) }, new[] { -1 }.Concat(rest.Select(r => r!.Value)).ToArray());
                }

                return null;
            }

            default:
                return null;
        }
    }

    /// <summary><c>x.shape[0]</c>, <c>x.size(0)</c> or <c>x.size()[0]</c> of the same variable as <paramref name="receiver"/>.</summary>
    private static bool IsBatchSize(IOperation element, IOperation? receiver)
    {
        string? receiverName = (Unwrap(receiver) as ILocalReferenceOperation)?.Local.Name ?? (Unwrap(receiver) as IParameterReferenceOperation)?.Parameter.Name;
        if (receiverName is null)
        {
            return false;
        }

        string text = OneLine(Unwrap(element)!.Syntax);
        return text == receiverName + ".shape[0]" || text == receiverName + ".size(0)" || text == receiverName + ".size()[0]";
    }

    /// <summary>Elements of a collection initializer / array creation / collection expression in syntax.</summary>
    private static List<ExpressionSyntax>? SyntaxElements(ExpressionSyntax expression) => Unparenthesize(expression) switch
    {
        ImplicitArrayCreationExpressionSyntax array => array.Initializer.Expressions.ToList(),
        ArrayCreationExpressionSyntax { Initializer: { } initializer } => initializer.Expressions.ToList(),
        BaseObjectCreationExpressionSyntax { Initializer: { } initializer } => initializer.Expressions.ToList(),
        BaseObjectCreationExpressionSyntax => new List<ExpressionSyntax>(),
        CollectionExpressionSyntax collection => collection.Elements.OfType<ExpressionElementSyntax>().Select(e => e.Expression).ToList(),
        InitializerExpressionSyntax initializer => initializer.Expressions.ToList(),
        _ => null,
    };

    /// <summary>
    /// A tensor expression with no int8 op: the generator re-emits it as <c>static v =&gt; ...</c> with each
    /// tensor variable it reads replaced by <c>v[k]</c> (module calls inside it are captured first).
    /// </summary>
    private int FloatNode(ExpressionSyntax expression, SyntaxNode statement, (int Value, string Operator)? prefix, int depth = 0)
    {
        var inputs = new List<int>();
        if (prefix is { } p)
        {
            if (p.Value == Unknown)
            {
                return Unknown;
            }

            inputs.Add(p.Value);
        }

        int Slot(int value)
        {
            int slot = inputs.IndexOf(value);
            if (slot < 0)
            {
                inputs.Add(value);
                slot = inputs.Count - 1;
            }

            return slot;
        }

        ExpressionSyntax SlotSyntax(int value) => SyntaxFactory.ParseExpression($"v[{Slot(value)}]");

        bool ok = true;

        // Number and bool members of the module read in the expression (x.view(-1, hidden), x * scale): read once at
        // Prepare from the running instance, as FX's tracing would see them, and passed in as s[k].
        var scalars = new List<string>();
        ExpressionSyntax? ScalarMember(ISymbol symbol)
        {
            ITypeSymbol? type = symbol switch
            {
                IFieldSymbol { IsStatic: false, IsConst: false } field => field.Type,
                IPropertySymbol { IsStatic: false, IsIndexer: false, Parameters.Length: 0 } property => property.Type,
                _ => null,
            };
            if (type is null || symbol.ContainingType is not { } owner || !IsModelOrBase(owner) || !IsScalar(type))
            {
                return null;
            }

            if (symbol is IFieldSymbol { IsReadOnly: false } || symbol is IPropertySymbol { SetMethod: { IsInitOnly: false } })
            {
                Fail(statement, $"'{OneLine(expression)}' runs in float and reads '{symbol.Name}', which forward could change; QuantGen reads a member's value once, at Prepare, so make it readonly (or a get-only property)");
                ok = false;
                return SyntaxFactory.ParseExpression("0");
            }

            int k = scalars.IndexOf(symbol.Name);
            if (k < 0)
            {
                scalars.Add(symbol.Name);
                k = scalars.Count - 1;
            }

            string read = $"s[{k.ToString(System.Globalization.CultureInfo.InvariantCulture)}]";
            return SyntaxFactory.ParseExpression(type.SpecialType switch
            {
                SpecialType.System_Boolean => $"({read} != 0)",
                SpecialType.System_Double => $"({read})",
                _ => $"(({type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat)}){read})",
            });
        }

        // The expression with tensors as v[k]; a scalar local it reads (long length = x.shape[1]) is written out in
        // place with the tensors its initializer read where it was declared.
        ExpressionSyntax? Rewrite(ExpressionSyntax target, IReadOnlyDictionary<string, int> variables, int scalarDepth)
        {
            var replacements = new Dictionary<SyntaxNode, SyntaxNode>();
            foreach (SyntaxNode node in target.DescendantNodesAndSelf(n => !replacements.Keys.Any(r => r.Contains(n) && r != n)))
            {
                _cancellationToken.ThrowIfCancellationRequested();
                if (replacements.Keys.Any(r => r.Span.Contains(node.Span) && r != node))
                {
                    continue;
                }

                switch (node)
                {
                    case MemberAccessExpressionSyntax itemAccess when IsTupleItem(itemAccess):
                    {
                        // lstm.forward(x).Item1[.., -1]: the element is captured, the indexing around it runs in float.
                        int value = Value(itemAccess, statement, itemAccess, depth + 1);
                        if (value == Unknown)
                        {
                            return null;
                        }

                        replacements[itemAccess] = SlotSyntax(value);
                        break;
                    }

                    case InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "forward" or "call" } access } call
                        when ModuleMember(access.Expression) is not null:
                    {
                        int value = Value(call, statement, call, depth + 1);
                        if (value == Unknown)
                        {
                            return null;
                        }

                        replacements[call] = SlotSyntax(value);
                        break;
                    }

                    case IdentifierNameSyntax identifier when node.Parent is not NameColonSyntax && (node.Parent is not MemberAccessExpressionSyntax { Name: var name } || name != node):
                    {
                        ISymbol? symbol = _semanticModel.GetSymbolInfo(identifier, _cancellationToken).Symbol;
                        if (symbol is ILocalSymbol or IParameterSymbol)
                        {
                            if (variables.TryGetValue(identifier.Identifier.ValueText, out int value) && value != Unknown)
                            {
                                replacements[identifier] = SlotSyntax(value);
                            }
                            else if (_scalars.TryGetValue(identifier.Identifier.ValueText, out ScalarLocal? scalar) && scalarDepth < 16
                                && SymbolEqualityComparer.Default.Equals(symbol, scalar.Symbol))
                            {
                                ExpressionSyntax? written = Rewrite(scalar.Initializer, scalar.Variables, scalarDepth + 1);
                                if (written is null)
                                {
                                    return null;
                                }

                                replacements[identifier] = SyntaxFactory.ParenthesizedExpression(written.WithoutTrivia());
                            }
                            else if (symbol is ILocalSymbol { IsConst: true } constLocal && constLocal.HasConstantValue)
                            {
                                replacements[identifier] = SyntaxFactory.ParseExpression(Literal(constLocal.ConstantValue));
                            }
                            else
                            {
                                Fail(statement, $"'{OneLine(expression)}' runs in float, but it reads '{identifier.Identifier.ValueText}', which is neither a tensor computed in forward nor a number computed from tensor sizes (x.shape[1], x.size(0)) and constants; compute it in the constructor and store it in a readonly field, or use a constant");
                                ok = false;
                            }
                        }
                        else if (symbol is not null && ScalarMember(symbol) is { } scalarMember)
                        {
                            replacements[identifier] = scalarMember;
                        }
                        else if (symbol is { IsStatic: false } && symbol is IFieldSymbol or IPropertySymbol or IMethodSymbol or IEventSymbol)
                        {
                            Fail(statement, $"'{OneLine(expression)}' runs in float, but it reads the member '{identifier.Identifier.ValueText}' of {_type.Name}; only tensors computed in forward, constants and static members can be read there");
                            ok = false;
                        }
                        else if (symbol is IFieldSymbol { IsConst: true, HasConstantValue: true, ConstantValue: not null } constantField
                            && constantField.Type.SpecialType is SpecialType.System_Int32 or SpecialType.System_Int64 or SpecialType.System_Single or SpecialType.System_Double or SpecialType.System_Boolean or SpecialType.System_String)
                        {
                            // A const of the class (or one it derives from or sits in), which the registration class outside it
                            // cannot name unqualified: its value, as a const local's.
                            replacements[identifier] = SyntaxFactory.ParseExpression(Literal(constantField.ConstantValue));
                        }
                        else if (symbol is { IsStatic: true, DeclaredAccessibility: Accessibility.Private or Accessibility.Protected or Accessibility.ProtectedAndInternal } && symbol.ContainingType is { } hidden && IsModelOrAround(hidden))
                        {
                            Fail(statement, $"'{OneLine(expression)}' runs in float, but it reads the private static member '{identifier.Identifier.ValueText}'; make it internal");
                            ok = false;
                        }
                        else if (symbol is { IsStatic: true } && symbol is IFieldSymbol or IPropertySymbol or IMethodSymbol && symbol.ContainingType is { } owner && IsModelOrAround(owner))
                        {
                            // A static member of the class named unqualified: the registration class is outside it.
                            replacements[identifier] = SyntaxFactory.ParseExpression(owner.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) + "." + identifier.Identifier.ValueText);
                        }

                        break;
                    }

                    case MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax } thisAccess
                        when _semanticModel.GetSymbolInfo(thisAccess, _cancellationToken).Symbol is { } thisMember && ScalarMember(thisMember) is { } thisScalar:
                        replacements[thisAccess] = thisScalar;
                        break;

                    case ThisExpressionSyntax or BaseExpressionSyntax:
                        Fail(statement, $"'{OneLine(expression)}' runs in float, but it reads the module itself; only tensors computed in forward, constants and static members can be read there");
                        ok = false;
                        break;
                }
            }

            return !ok ? null : replacements.Count == 0 ? target : target.ReplaceNodes(replacements.Keys, (original, _) => replacements[original].WithTriviaFrom(original));
        }

        ExpressionSyntax? rewritten = Rewrite(expression, _variables, 0);
        if (rewritten is null || !ok)
        {
            return Unknown;
        }

        string body = OneLine(rewritten);
        if (prefix is { } prefixed)
        {
            body = $"v[0] {prefixed.Operator} ({body})";
        }

        string text = OneLine(statement is ExpressionStatementSyntax or LocalDeclarationStatementSyntax or ReturnStatementSyntax ? statement : expression);
        AddUnlessDisabled(expression, DiagnosticInfo.Create(
            DiagnosticDescriptors.RunsInFloat,
            LocationInfo.From(expression),
            ShortenTo160(OneLine(expression)),
            _type.Name,
            "QuantGen has no int8 op for this expression, so it runs between dequantize and quantize"));
        return AddNode("Float", inputs.ToArray(), default, body, expression, text, scalars: scalars.ToArray());
    }

    /// <summary>True for the model class or a class it derives from (whose instance members it reads unqualified).</summary>
    private bool IsModelOrBase(INamedTypeSymbol owner)
    {
        for (INamedTypeSymbol? type = _type; type is not null; type = type.BaseType)
        {
            if (SymbolEqualityComparer.Default.Equals(type.OriginalDefinition, owner.OriginalDefinition))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True for the model class, a class it derives from, or a class it is nested in (whose members it names unqualified).</summary>
    private bool IsModelOrAround(INamedTypeSymbol owner)
    {
        for (INamedTypeSymbol? type = _type; type is not null; type = type.BaseType)
        {
            if (SymbolEqualityComparer.Default.Equals(type.OriginalDefinition, owner.OriginalDefinition))
            {
                return true;
            }
        }

        for (INamedTypeSymbol? outer = _type.ContainingType; outer is not null; outer = outer.ContainingType)
        {
            if (SymbolEqualityComparer.Default.Equals(outer.OriginalDefinition, owner.OriginalDefinition))
            {
                return true;
            }
        }

        return false;
    }

    private static string Literal(object? value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        float f => f.ToString("R", System.Globalization.CultureInfo.InvariantCulture) + "f",
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture) + "d",
        long l => l.ToString(System.Globalization.CultureInfo.InvariantCulture) + "L",
        string s => SymbolDisplay.FormatLiteral(s, quote: true),
        IFormattable formattable => formattable.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "null",
    };

    private int AddNode(string op, int[] inputs, EquatableArray<int> ints, string? floatBody, SyntaxNode node, string text, string member = "", int conditionOverride = -2, float[]? floats = null, string[]? scalars = null)
    {
        bool select = conditionOverride != -2;
        _nodes.Add(new CapturedNodeSpec(
            op,
            inputs.ToEquatableArray(),
            member,
            ints,
            floatBody,
            select ? conditionOverride : _condition >= 0 ? _condition : _afterReturn.Condition,
            !select && (_condition >= 0 ? _negated : _afterReturn.Negated),
            LineOf(node),
            ShortenTo160(text),
            floats?.Select(f => f.ToString("R", System.Globalization.CultureInfo.InvariantCulture) + "f").ToEquatableArray() ?? default,
            scalars is { Length: > 0 } ? scalars.ToEquatableArray() : default));
        return _nodes.Count;
    }

    private bool IsTensor(ExpressionSyntax expression) =>
        KnownTypes.IsTensor(_semanticModel.GetTypeInfo(expression, _cancellationToken).Type);

    private static bool IsTensorCollection(ITypeSymbol? type) =>
        type is IArrayTypeSymbol { ElementType: var element } ? KnownTypes.IsTensor(element)
        : type is INamedTypeSymbol { IsGenericType: true, TypeArguments.Length: 1 } named
            && named.OriginalDefinition.ToDisplayString() is "System.Collections.Generic.List<T>"
            && KnownTypes.IsTensor(named.TypeArguments[0]);

    /// <summary>The name of the instance module member a receiver denotes (<c>conv1</c>, <c>this.conv1</c>), of any module type.</summary>
    private string? ModuleMember(ExpressionSyntax receiver)
    {
        receiver = Unparenthesize(receiver);
        while (receiver is PostfixUnaryExpressionSyntax postfix && postfix.IsKind(SyntaxKind.SuppressNullableWarningExpression))
        {
            _cancellationToken.ThrowIfCancellationRequested();
            receiver = Unparenthesize(postfix.Operand);
        }

        if (receiver is not (IdentifierNameSyntax or MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax }))
        {
            return null;
        }

        ISymbol? symbol = _semanticModel.GetSymbolInfo(receiver, _cancellationToken).Symbol;
        ITypeSymbol? type = symbol switch
        {
            IFieldSymbol field => field.Type,
            IPropertySymbol property => property.Type,
            _ => null,
        };
        return type is not null && !symbol!.IsStatic && KnownTypes.IsModule(type) ? symbol.Name : null;
    }

    /// <summary>TorchSharp module types the binder runs in int8 (or unrolls, or drops in eval).</summary>
    private static readonly HashSet<string> BoundInt8Types = new(StringComparer.Ordinal)
    {
        "Conv2d", "ConvTranspose2d", "BatchNorm2d", "Linear", "ReLU", "ReLU6", "Hardtanh", "MaxPool2d", "AvgPool2d",
        "AdaptiveAvgPool2d", "Flatten", "Identity", "Dropout", "Dropout1d", "Dropout2d", "AlphaDropout", "FeatureAlphaDropout",
        "Sequential", "ModuleList", "ModuleDict",
        "LeakyReLU", "Hardswish", "Hardsigmoid", "SiLU", "Sigmoid", "Tanh", "ELU", "CELU", "SELU", "GELU", "Mish",
        "Softplus", "Softsign", "Tanhshrink", "Hardshrink", "Softshrink", "LogSigmoid", "Threshold",
    };

    /// <summary>The name of a member's declared TorchSharp module type when the binder has no int8 op for it, else null.</summary>
    private string? NoInt8Op(ExpressionSyntax receiver)
    {
        receiver = Unparenthesize(receiver);
        while (receiver is PostfixUnaryExpressionSyntax postfix && postfix.IsKind(SyntaxKind.SuppressNullableWarningExpression))
        {
            _cancellationToken.ThrowIfCancellationRequested();
            receiver = Unparenthesize(postfix.Operand);
        }

        ITypeSymbol? type = _semanticModel.GetSymbolInfo(receiver, _cancellationToken).Symbol switch
        {
            IFieldSymbol field => field.Type,
            IPropertySymbol property => property.Type,
            _ => null,
        };
        return type is INamedTypeSymbol named
            && named.ContainingNamespace?.ToDisplayString() == "TorchSharp.Modules"
            && !BoundInt8Types.Contains(named.Name)
            && !named.IsAbstract
            ? named.Name
            : null;
    }

    /// <summary>An instance field or property of the class named by a receiver (for conditions).</summary>
    private string? InstanceMember(ExpressionSyntax receiver)
    {
        receiver = Unparenthesize(receiver);
        if (receiver is not (IdentifierNameSyntax or MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax }))
        {
            return null;
        }

        ISymbol? symbol = _semanticModel.GetSymbolInfo(receiver, _cancellationToken).Symbol;
        return symbol is IFieldSymbol or IPropertySymbol && !symbol.IsStatic ? symbol.Name : null;
    }

    private static ExpressionSyntax Unparenthesize(ExpressionSyntax expression)
    {
        while (expression is ParenthesizedExpressionSyntax parenthesized)
        {
            expression = parenthesized.Expression;
        }

        return expression;
    }

    /// <summary>A numeric constant operand of a tensor operator (<c>x * 0.5f</c>, <c>x + 3</c>) as float32, or null.</summary>
    private float? ScalarConstant(ExpressionSyntax expression) =>
        IsTensor(expression) ? null : FloatConstant(_semanticModel.GetOperation(Unparenthesize(expression), _cancellationToken));

    /// <summary>A numeric constant as float32 (a double constant is rounded to float as the float op would use it), or null.</summary>
    private static float? FloatConstant(IOperation? operation)
    {
        operation = Unwrap(operation);
        if (operation is IUnaryOperation { OperatorKind: UnaryOperatorKind.Minus } negation && FloatConstant(negation.Operand) is float negated)
        {
            return -negated;
        }

        return operation?.ConstantValue is { HasValue: true, Value: { } value } && value is int or long or float or double
            ? (float?)System.Convert.ToSingle(value, System.Globalization.CultureInfo.InvariantCulture)
            : null;
    }

    /// <summary>Adds a warning or info unless the user's <c>#pragma warning disable</c> covers it at <paramref name="at"/>.</summary>
    private void AddUnlessDisabled(SyntaxNode at, DiagnosticInfo diagnostic)
    {
        if (!PragmaState.IsDisabled(at, diagnostic.Id))
        {
            _diagnostics.Add(diagnostic);
        }
    }

    private void Fail(SyntaxNode statement, string reason, bool dataDependent = false) => Fail(statement, statement, reason, dataDependent);

    private void Fail(SyntaxNodeOrToken where, SyntaxNode statement, string reason, bool dataDependent = false)
    {
        _failed = true;
        string text = statement is MethodDeclarationSyntax method ? method.Identifier.ValueText : OneLine(statement);
        _firstProblem ??= $"{_fileName}({LineOf(statement)}): '{ShortenTo160(text)}': {reason}";
        if (!_reported.Add(statement))
        {
            return;
        }

        _diagnostics.Add(DiagnosticInfo.Create(
            dataDependent ? DiagnosticDescriptors.DataDependentControlFlow : DiagnosticDescriptors.UnsupportedForwardStatement,
            LocationInfo.From(where.GetLocation()),
            ShortenTo160(statement is IfStatementSyntax ifStatement ? OneLine(ifStatement.Condition) : text),
            _type.Name,
            reason));
    }

    private static string Sanitize(string name)
    {
        var text = new System.Text.StringBuilder(name.Length);
        foreach (char c in name)
        {
            text.Append(char.IsLetterOrDigit(c) ? c : '_');
        }

        return text.ToString();
    }


    private static string ShortenTo160(string text) => SourceValues.Shorten(text, 160);
}

/// <summary>The capture pipeline's transform: every module class with a <c>forward(Tensor)</c> of its own.</summary>
internal static class ModuleClassCapture
{
    /// <summary>Cheap syntax filter: a class that declares a method named forward.</summary>
    public static bool MayBeModule(SyntaxNode node) =>
        node is ClassDeclarationSyntax { BaseList: not null } declaration
        && declaration.Members.Any(m => m is MethodDeclarationSyntax { Identifier.ValueText: "forward" });

    /// <summary>
    /// The forward of a Module&lt;Tensor, Tensor&gt; (one tensor), or of a module of 2–4 tensors (its forward takes each,
    /// the parameters after the first captured as Parameter nodes); null for any other class.
    /// </summary>
    private static MethodDeclarationSyntax? ForwardOf(INamedTypeSymbol type, CancellationToken cancellationToken)
    {
        if (ModelParser.DerivesFromTensorModule(type))
        {
            return ModelParser.FindForward(type, cancellationToken);
        }

        if (!ModelParser.DerivesFromMultiTensorModule(type))
        {
            return null;
        }

        for (int parameters = 2; parameters <= 4; parameters++)
        {
            if (ModelParser.FindForward(type, cancellationToken, parameters) is { } forward)
            {
                return forward;
            }
        }

        return null;
    }

    /// <summary>The class's capture, or null when it is not a tensor module with a forward body here.</summary>
    public static CaptureSpec? Capture(GeneratorSyntaxContext context, CancellationToken cancellationToken)
    {
        if (context.SemanticModel.GetDeclaredSymbol(context.Node, cancellationToken) is not INamedTypeSymbol type
            || type.TypeParameters.Length > 0
            || KnownTypes.IsQuantizeClass(type)
            || ForwardOf(type, cancellationToken) is not { } forward
            || !context.Node.Span.Contains(forward.Span)
            || forward.SyntaxTree != context.Node.SyntaxTree)
        {
            return null;
        }

        try
        {
            return CaptureParser.Capture(type, forward, context.SemanticModel, cancellationToken).Spec;
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // The generator never throws: a class it cannot capture runs in float as a whole.
            return null;
        }
    }
}
