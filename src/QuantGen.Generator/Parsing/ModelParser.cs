using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;
using QuantGen.Generator.Diagnostics;

namespace QuantGen.Generator.Parsing;

/// <summary>
/// Syntax and symbols of a [Quantize] class → <see cref="ModelSpec"/> plus diagnostics. This is the only
/// stage that sees Roslyn's symbols and syntax; everything it returns is plain equatable data.
/// </summary>
internal static class ModelParser
{
    /// <summary>Names of the members the generated code adds to the class.</summary>
    private static readonly string[] GeneratedMemberNames = { "Prepare", "Observed", "Quantized", "Reference", "Observers" };

    /// <summary>The transform of <c>ForAttributeWithMetadataName</c>; never throws (except on cancellation).</summary>
    public static ParseResult Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
    {
        string className = context.TargetSymbol.Name;
        LocationInfo? classLocation = context.TargetNode is TypeDeclarationSyntax declaration
            ? LocationInfo.From(declaration.Identifier)
            : LocationInfo.From(context.TargetNode);
        return Guard.Run(className, classLocation, () => ParseCore(context, classLocation, cancellationToken), static diagnostics => new ParseResult(null, diagnostics));
    }

    private static ParseResult ParseCore(GeneratorAttributeSyntaxContext context, LocationInfo? classLocation, CancellationToken cancellationToken)
    {
        var diagnostics = new List<DiagnosticInfo>();
        if (context.TargetSymbol is not INamedTypeSymbol type || context.TargetNode is not TypeDeclarationSyntax syntax)
        {
            return new ParseResult(null, EquatableArray<DiagnosticInfo>.Empty);
        }

        string name = type.Name;

        // The generated file is another part of the class and of every type around it. A class or containing type
        // that is not partial gets nothing generated; QG0001 itself comes from QuantizeClassAnalyzer, which
        // analyzer-only tools (dotnet format, language servers) run too.
        bool notPartial = !syntax.Modifiers.Any(SyntaxKind.PartialKeyword);

        for (INamedTypeSymbol? local = type; local is not null; local = local.ContainingType)
        {
            if (local.IsFileLocal)
            {
                // All parts of a file-local type live in its one file; a generated part would not compile.
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.FileLocalClass, classLocation, name, local.Equals(type, SymbolEqualityComparer.Default) ? "is" : $"is nested in '{local.Name}', which is"));
                break;
            }
        }

        var containingTypes = new List<ContainingTypeSpec>();
        for (INamedTypeSymbol? outer = type.ContainingType; outer is not null; outer = outer.ContainingType)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // The part that encloses this declaration (the containing type may be split over files).
            List<TypeDeclarationSyntax> outerParts = outer.DeclaringSyntaxReferences
                .Select(r => r.GetSyntax(cancellationToken))
                .OfType<TypeDeclarationSyntax>()
                .ToList();
            TypeDeclarationSyntax? outerSyntax =
                outerParts.FirstOrDefault(s => s.SyntaxTree == syntax.SyntaxTree && s.Span.Contains(syntax.Span))
                ?? outerParts.FirstOrDefault();
            if (outerSyntax is null)
            {
                // Not declared in source: a [Quantize] class cannot be nested in a metadata type.
                return new ParseResult(null, EquatableArray<DiagnosticInfo>.Empty);
            }

            notPartial |= !outerSyntax.Modifiers.Any(SyntaxKind.PartialKeyword);

            containingTypes.Insert(0, new ContainingTypeSpec(TypeKeyword(outerSyntax), outer.Name + TypeParameterList(outer)));
        }

        if (!DerivesFromTensorModule(type))
        {
            string baseName = type.BaseType?.ToDisplayString() ?? "object";
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotATensorModule, LocationInfo.From(syntax.BaseList) ?? classLocation, name, baseName));
        }

        if (diagnostics.Count > 0 || notPartial)
        {
            // Member and forward checks on something that is not a partial tensor module would be noise.
            return new ParseResult(null, diagnostics.ToEquatableArray());
        }

        AttributeData quantize = context.Attributes[0];
        if (quantize.AttributeConstructor is null || !CarriesFirstQuantizeAttribute(type, syntax))
        {
            // Bad attribute arguments, or [Quantize] repeated on another part of the class: the compiler
            // reports both, and one model must not be generated twice.
            return new ParseResult(null, EquatableArray<DiagnosticInfo>.Empty);
        }

        string? backend = ReadBackend(quantize, out int backendValue);
        if (backend is null)
        {
            LocationInfo? attributeLocation = LocationInfo.From(quantize.ApplicationSyntaxReference?.GetSyntax(cancellationToken)) ?? classLocation;
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnknownBackend, attributeLocation, name, backendValue.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        foreach (string generated in GeneratedMemberNames)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (ISymbol taken in type.GetMembers(generated))
            {
                cancellationToken.ThrowIfCancellationRequested();
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.GeneratedNameTaken, LocationInfo.From(taken.Locations.FirstOrDefault()) ?? classLocation, name, generated));
            }
        }

        // A [Quantize] base class gets its own Prepare/Observed/Quantized, which these must hide.
        bool hidesInherited = false;
        for (INamedTypeSymbol? baseType = type.BaseType; baseType is not null; baseType = baseType.BaseType)
        {
            cancellationToken.ThrowIfCancellationRequested();
            hidesInherited |= GeneratedMemberNames.Any(n => !baseType.GetMembers(n).IsEmpty)
                || baseType.GetAttributes().Any(a => a.AttributeClass is { } c && KnownTypes.MetadataName(c) == KnownTypes.QuantizeAttribute);
        }

        Compilation compilation = context.SemanticModel.Compilation;
        SemanticModel ModelFor(SyntaxTree tree) =>
            tree == context.SemanticModel.SyntaxTree ? context.SemanticModel : compilation.GetSemanticModel(tree);

        List<MemberSpec> members = ReadMembers(type, ModelFor, cancellationToken);
        List<FuseGroupSpec> fuseGroups = ReadFuseGroups(type, cancellationToken);

        ForwardSpec? forward = null;
        MethodDeclarationSyntax? forwardSyntax = FindForward(type, cancellationToken);
        if (forwardSyntax is null)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MissingForward, classLocation, name));
        }
        else
        {
            forward = ForwardParser.Parse(forwardSyntax, ModelFor(forwardSyntax.SyntaxTree), type, members, diagnostics, cancellationToken);
        }

        // The bound form, used when only the running model can settle what the generated form needs to know
        // (QuantGen.Generator.QuantizeGenerator decides which one a class gets).
        BoundModelSpec? bound = null;
        EquatableArray<DiagnosticInfo> boundDiagnostics = default;
        if (forwardSyntax is not null && type.TypeParameters.Length == 0)
        {
            CaptureResult capture = CaptureParser.Capture(type, forwardSyntax, ModelFor(forwardSyntax.SyntaxTree), cancellationToken);
            if (capture.Spec is { } captured)
            {
                bound = new BoundModelSpec(
                    name,
                    type.ContainingNamespace is { IsGlobalNamespace: false } boundNamespace ? boundNamespace.ToDisplayString() : null,
                    containingTypes.ToEquatableArray(),
                    backend ?? "X86",
                    ReadAutoFuse(quantize),
                    captured,
                    captured.RegistrationName + ".Model.g.cs");
                boundDiagnostics = capture.Diagnostics;
            }
        }

        var spec = new ModelSpec(
            name,
            TypeParameterList(type),
            type.ContainingNamespace is { IsGlobalNamespace: false } ns ? ns.ToDisplayString() : null,
            containingTypes.ToEquatableArray(),
            backend ?? "X86",
            members.ToEquatableArray(),
            fuseGroups.ToEquatableArray(),
            forward,
            hidesInherited,
            classLocation,
            KnownTypes.MetadataName(type),
            ReadAutoFuse(quantize),
            ReadQConfigs(type));
        return new ParseResult(spec, diagnostics.ToEquatableArray(), bound, boundDiagnostics);
    }

    /// <summary>
    /// Whether <paramref name="declaration"/> holds the class's first [Quantize]. When several parts carry
    /// one (a compile error), every part is a target, and only one may produce the model.
    /// </summary>
    private static bool CarriesFirstQuantizeAttribute(INamedTypeSymbol type, TypeDeclarationSyntax declaration)
    {
        SyntaxReference? first = type.GetAttributes()
            .FirstOrDefault(a => a.AttributeClass is { } c && KnownTypes.MetadataName(c) == KnownTypes.QuantizeAttribute)?
            .ApplicationSyntaxReference;
        return first is null || (first.SyntaxTree == declaration.SyntaxTree && declaration.Span.Contains(first.Span));
    }

    internal static bool DerivesFromTensorModule(INamedTypeSymbol type)
    {
        for (INamedTypeSymbol? current = type.BaseType; current is not null; current = current.BaseType)
        {
            if (KnownTypes.MetadataName(current) == KnownTypes.GenericModule)
            {
                return current.TypeArguments.Length == 2 && current.TypeArguments.All(KnownTypes.IsTensor);
            }
        }

        return false;
    }

    /// <summary>
    /// True for a <c>Module&lt;Tensor, ..., Tensor&gt;</c> of 2 to 4 tensor inputs (TorchSharp's Module`3 to Module`5 with
    /// every type argument a tensor): a user block such as a UNet's up-sampling stage, <c>forward(x, skip)</c>.
    /// </summary>
    internal static bool DerivesFromMultiTensorModule(INamedTypeSymbol type)
    {
        for (INamedTypeSymbol? current = type.BaseType; current is not null; current = current.BaseType)
        {
            if (KnownTypes.MetadataName(current) is KnownTypes.GenericModule3 or KnownTypes.GenericModule4 or KnownTypes.GenericModule5)
            {
                return current.TypeArguments.All(KnownTypes.IsTensor);
            }
        }

        return false;
    }

    /// <summary>The QuantBackend member name, or null (with its numeric value) when it names none.</summary>
    private static string? ReadBackend(AttributeData attribute, out int value)
    {
        value = 0;
        if (attribute.ConstructorArguments.Length == 1 && attribute.ConstructorArguments[0].Value is int positional)
        {
            value = positional;
        }

        foreach (KeyValuePair<string, TypedConstant> named in attribute.NamedArguments)
        {
            if (named.Key == "Backend" && named.Value.Value is int namedValue)
            {
                value = namedValue;
            }
        }

        return value switch
        {
            0 => "X86",
            1 => "Qnnpack",
            _ => null,
        };
    }

    private static List<MemberSpec> ReadMembers(INamedTypeSymbol type, Func<SyntaxTree, SemanticModel> modelFor, CancellationToken cancellationToken)
    {
        var members = new List<MemberSpec>();
        foreach (ISymbol member in type.GetMembers())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (member.IsStatic || member.IsImplicitlyDeclared)
            {
                continue;
            }

            ITypeSymbol? memberType = member switch
            {
                IFieldSymbol field => field.Type,
                IPropertySymbol { IsIndexer: false } property => property.Type,
                _ => null,
            };
            if (memberType is null || !KnownTypes.IsModule(memberType))
            {
                continue;
            }

            ModuleKind kind = KnownTypes.KindOf(memberType);
            string? subModelType = null;
            if (kind == ModuleKind.Unsupported && KnownTypes.IsQuantizeClass(memberType))
            {
                kind = ModuleKind.SubModel;
                subModelType = KnownTypes.MetadataName(memberType);
            }

            (int? start, int? end) = kind == ModuleKind.Flatten ? ReadFlattenDims(member, modelFor, cancellationToken) : (null, null);
            EquatableArray<SequentialChild> children = default;
            string? childrenProblem = null;
            if (kind == ModuleKind.Sequential)
            {
                children = ReadSequentialChildren(type, member, modelFor, cancellationToken, out childrenProblem);
            }

            string? concreteType = kind == ModuleKind.Unsupported ? AssignedSupportedType(type, member, modelFor, cancellationToken) : null;
            members.Add(new MemberSpec(member.Name, kind, memberType.ToDisplayString(), start, end, LocationInfo.From(member.Locations.FirstOrDefault()), subModelType, children, childrenProblem,
                member.GetAttributes().Any(a => a.AttributeClass is not null && KnownTypes.MetadataName(a.AttributeClass) == KnownTypes.NoQuantizeAttribute),
                concreteType));
        }

        return members;
    }

    /// <summary>
    /// For a member whose declared type QuantGen does not quantize (<c>Module&lt;Tensor, Tensor&gt; conv1</c>): the one
    /// type every value assigned to it is created with, fully qualified, when that type is one QuantGen quantizes
    /// (a TorchSharp module it knows or a [Quantize] class); otherwise null. Declaring the member with that type is
    /// what QG0007's code fix does, so it is offered only when every assignment in the class (initializer,
    /// constructors, methods) creates that same type.
    /// </summary>
    private static string? AssignedSupportedType(INamedTypeSymbol type, ISymbol member, Func<SyntaxTree, SemanticModel> modelFor, CancellationToken cancellationToken)
    {
        var values = new List<ExpressionSyntax>();
        SyntaxNode? declaration = member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(cancellationToken);
        if (declaration is VariableDeclaratorSyntax { Initializer.Value: { } fieldValue })
        {
            values.Add(fieldValue);
        }
        else if (declaration is PropertyDeclarationSyntax { Initializer.Value: { } propertyValue })
        {
            values.Add(propertyValue);
        }

        foreach (SyntaxReference part in type.DeclaringSyntaxReferences)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (AssignmentExpressionSyntax assignment in part.GetSyntax(cancellationToken).DescendantNodes().OfType<AssignmentExpressionSyntax>())
            {
                cancellationToken.ThrowIfCancellationRequested();
                string? target = assignment.Left switch
                {
                    IdentifierNameSyntax identifier => identifier.Identifier.ValueText,
                    MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax, Name: IdentifierNameSyntax identifier } => identifier.Identifier.ValueText,
                    _ => null,
                };
                if (target == member.Name)
                {
                    values.Add(assignment.Right);
                }
            }
        }

        ITypeSymbol? found = null;
        foreach (ExpressionSyntax value in values)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ExpressionSyntax current = value;
            while (current is ParenthesizedExpressionSyntax parenthesized)
            {
                current = parenthesized.Expression;
            }

            if (current.IsKind(SyntaxKind.NullLiteralExpression))
            {
                continue;
            }

            IOperation? created = Unwrap(modelFor(current.SyntaxTree).GetOperation(current, cancellationToken));
            if (created is not (IInvocationOperation or IObjectCreationOperation) || created.Type is not { } createdType
                || (found is not null && !SymbolEqualityComparer.Default.Equals(found, createdType)))
            {
                return null;
            }

            found = createdType;
        }

        return found is not null && (KnownTypes.KindOf(found) != ModuleKind.Unsupported || KnownTypes.IsQuantizeClass(found))
            ? found.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat)
            : null;
    }

    /// <summary>
    /// start_dim and end_dim of a Flatten member when its initializer gives them as constants (or leaves
    /// them at their defaults); (null, null) when they are only known at run time.
    /// </summary>
    private static (int? Start, int? End) ReadFlattenDims(ISymbol member, Func<SyntaxTree, SemanticModel> modelFor, CancellationToken cancellationToken)
    {
        SyntaxNode? declaration = member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(cancellationToken);
        ExpressionSyntax? initializer = declaration switch
        {
            VariableDeclaratorSyntax variable => variable.Initializer?.Value,
            PropertyDeclarationSyntax property => property.Initializer?.Value,
            _ => null,
        };
        if (initializer is null)
        {
            return (null, null);
        }

        IOperation? operation = modelFor(initializer.SyntaxTree).GetOperation(initializer, cancellationToken);
        while (operation is IConversionOperation conversion)
        {
            cancellationToken.ThrowIfCancellationRequested();
            operation = conversion.Operand;
        }

        IEnumerable<IArgumentOperation>? arguments = operation switch
        {
            IInvocationOperation invocation => invocation.Arguments,
            IObjectCreationOperation creation => creation.Arguments,
            _ => null,
        };
        if (arguments is null)
        {
            return (null, null);
        }

        int? start = 1, end = -1;
        foreach (IArgumentOperation argument in arguments)
        {
            cancellationToken.ThrowIfCancellationRequested();
            string? parameter = argument.Parameter?.Name;
            if (parameter is not ("start_dim" or "end_dim" or "startDim" or "endDim"))
            {
                continue;
            }

            Optional<object?> constant = argument.Value.ConstantValue;
            int? dim = constant.HasValue && constant.Value is not null && IsInteger(constant.Value)
                ? (int?)Convert.ToInt64(constant.Value, System.Globalization.CultureInfo.InvariantCulture)
                : null;
            if (dim is null)
            {
                return (null, null);
            }

            if (parameter is "start_dim" or "startDim")
            {
                start = dim;
            }
            else
            {
                end = dim;
            }
        }

        return (start, end);
    }

    /// <summary>The [QConfig] attributes on the class, in source order, with only the named arguments given.</summary>
    private static EquatableArray<QConfigSpec> ReadQConfigs(INamedTypeSymbol type)
    {
        var specs = new List<QConfigSpec>();
        foreach (AttributeData attribute in type.GetAttributes())
        {
            if (attribute.AttributeClass is null
                || KnownTypes.MetadataName(attribute.AttributeClass) != KnownTypes.QConfigAttribute
                || attribute.AttributeConstructor is null)
            {
                continue;
            }

            QConfigTarget target = QConfigTarget.Global;
            string key = string.Empty;
            if (attribute.ConstructorArguments.Length == 1)
            {
                TypedConstant argument = attribute.ConstructorArguments[0];
                if (argument.Kind == TypedConstantKind.Type && argument.Value is ITypeSymbol moduleType)
                {
                    target = QConfigTarget.ModuleType;
                    key = moduleType.MetadataName;
                }
                else if (argument.Value is string path)
                {
                    target = QConfigTarget.MemberPath;
                    key = path;
                }
                else
                {
                    // typeof(missing type) or a null path: the compiler (or QConfigMapping at Prepare) reports it.
                    continue;
                }
            }

            var properties = new List<QConfigProperty>();
            foreach (KeyValuePair<string, TypedConstant> named in attribute.NamedArguments)
            {
                if (ConstantText(named.Value) is string value)
                {
                    properties.Add(new QConfigProperty(named.Key, value));
                }
            }

            specs.Add(new QConfigSpec(target, key, properties.ToEquatableArray()));
        }

        return specs.ToEquatableArray();
    }

    /// <summary>A bool, int, double, float or enum attribute argument as C# (an enum by member name when it has one).</summary>
    private static string? ConstantText(TypedConstant constant)
    {
        if (constant.Value is bool flag)
        {
            return flag ? "true" : "false";
        }

        if (constant.Type is INamedTypeSymbol { TypeKind: TypeKind.Enum } enumType && constant.Value is not null)
        {
            string typeName = enumType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
            foreach (IFieldSymbol field in enumType.GetMembers().OfType<IFieldSymbol>())
            {
                if (field.HasConstantValue && Equals(field.ConstantValue, constant.Value))
                {
                    return typeName + "." + field.Name;
                }
            }

            return $"(({typeName})({System.Convert.ToString(constant.Value, System.Globalization.CultureInfo.InvariantCulture)}))";
        }

        // Doubles and floats (ActivationPercentile) as round-trippable, culture-invariant literals.
        return constant.Value switch
        {
            int number => number.ToString(System.Globalization.CultureInfo.InvariantCulture),
            double real => double.IsNaN(real) ? "double.NaN" : double.IsInfinity(real) ? (real > 0 ? "double.PositiveInfinity" : "double.NegativeInfinity")
                : real.ToString("R", System.Globalization.CultureInfo.InvariantCulture) + "d",
            float single => float.IsNaN(single) ? "float.NaN" : float.IsInfinity(single) ? (single > 0 ? "float.PositiveInfinity" : "float.NegativeInfinity")
                : single.ToString("R", System.Globalization.CultureInfo.InvariantCulture) + "f",
            _ => null,
        };
    }

    private static bool ReadAutoFuse(AttributeData attribute)
    {
        foreach (KeyValuePair<string, TypedConstant> named in attribute.NamedArguments)
        {
            if (named.Key == "AutoFuse" && named.Value.Value is bool value)
            {
                return value;
            }
        }

        return true;
    }

    /// <summary>
    /// The children of a Sequential member, read from the literal list it is created with in its initializer
    /// or in a constructor (<c>Sequential(Conv2d(...), BatchNorm2d(...))</c>, <c>Sequential(("conv", Conv2d(...)))</c>,
    /// <c>Sequential(new Block(...))</c>); a <c>cond ? Sequential(...) : null</c> gives the non-null list.
    /// </summary>
    private static EquatableArray<SequentialChild> ReadSequentialChildren(INamedTypeSymbol type, ISymbol member, Func<SyntaxTree, SemanticModel> modelFor, CancellationToken cancellationToken, out string? problem)
    {
        problem = null;
        var values = new List<ExpressionSyntax>();
        SyntaxNode? declaration = member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(cancellationToken);
        ExpressionSyntax? initializer = declaration switch
        {
            VariableDeclaratorSyntax variable => variable.Initializer?.Value,
            PropertyDeclarationSyntax property => property.Initializer?.Value,
            _ => null,
        };
        if (initializer is not null)
        {
            values.Add(initializer);
        }

        foreach (IMethodSymbol constructor in type.InstanceConstructors)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (SyntaxReference reference in constructor.DeclaringSyntaxReferences)
            {
                cancellationToken.ThrowIfCancellationRequested();
                foreach (AssignmentExpressionSyntax assignment in reference.GetSyntax(cancellationToken).DescendantNodes().OfType<AssignmentExpressionSyntax>())
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    string? target = assignment.Left switch
                    {
                        IdentifierNameSyntax identifier => identifier.Identifier.ValueText,
                        MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax, Name: IdentifierNameSyntax identifier } => identifier.Identifier.ValueText,
                        _ => null,
                    };
                    if (target == member.Name)
                    {
                        values.Add(assignment.Right);
                    }
                }
            }
        }

        List<SequentialChild>? found = null;
        foreach (ExpressionSyntax value in values)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ExpressionSyntax current = value;
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (current is ParenthesizedExpressionSyntax parenthesized)
                {
                    current = parenthesized.Expression;
                }
                else if (current is ConditionalExpressionSyntax conditional)
                {
                    current = conditional.WhenTrue.IsKind(SyntaxKind.NullLiteralExpression) || conditional.WhenTrue.IsKind(SyntaxKind.DefaultLiteralExpression)
                        ? conditional.WhenFalse
                        : conditional.WhenTrue;
                }
                else
                {
                    break;
                }
            }

            if (current.IsKind(SyntaxKind.NullLiteralExpression))
            {
                continue;
            }

            List<SequentialChild>? children = ReadSequentialCall(modelFor(current.SyntaxTree).GetOperation(current, cancellationToken));
            if (children is null)
            {
                problem = $"'{SourceValues.OneLine(current)}' is not a Sequential(...) call with a literal list of modules";
                return default;
            }

            if (found is not null && !found.SequenceEqual(children))
            {
                problem = "it is assigned different lists in different places";
                return default;
            }

            found = children;
        }

        if (found is null)
        {
            problem = "it is never assigned a Sequential(...) with a literal list of modules in its initializer or a constructor";
            return default;
        }

        return found.ToEquatableArray();
    }

    private static List<SequentialChild>? ReadSequentialCall(IOperation? operation)
    {
        operation = Unwrap(operation);
        if (operation is not IInvocationOperation { TargetMethod.Name: "Sequential" } invocation)
        {
            return null;
        }

        var elements = new List<IOperation>();
        foreach (IArgumentOperation argument in invocation.Arguments)
        {
            IOperation value = Unwrap(argument.Value)!;
            if (value is IArrayCreationOperation { Initializer: { } initializer })
            {
                elements.AddRange(initializer.ElementValues);
            }
            else if (value is ICollectionExpressionOperation collection)
            {
                elements.AddRange(collection.Elements);
            }
            else
            {
                return null;
            }
        }

        var children = new List<SequentialChild>();
        foreach (IOperation element in elements)
        {
            IOperation? module = Unwrap(element);
            string name = children.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (module is ITupleOperation { Elements.Length: 2 } tuple)
            {
                if (Unwrap(tuple.Elements[0])?.ConstantValue is not { HasValue: true, Value: string childName })
                {
                    return null;
                }

                name = childName;
                module = Unwrap(tuple.Elements[1]);
            }
            else if (module is IObjectCreationOperation { Type: { } tupleType } creation && tupleType.Name is "Tuple" or "ValueTuple" && creation.Arguments.Length == 2)
            {
                if (Unwrap(creation.Arguments[0].Value)?.ConstantValue is not { HasValue: true, Value: string childName })
                {
                    return null;
                }

                name = childName;
                module = Unwrap(creation.Arguments[1].Value);
            }

            if (module?.Type is not { } moduleType || module is not (IInvocationOperation or IObjectCreationOperation))
            {
                return null;
            }

            ModuleKind kind = KnownTypes.KindOf(moduleType);
            string? subModelType = null;
            if (kind == ModuleKind.Unsupported && KnownTypes.IsQuantizeClass(moduleType))
            {
                kind = ModuleKind.SubModel;
                subModelType = KnownTypes.MetadataName(moduleType);
            }

            children.Add(new SequentialChild(name, kind, moduleType.ToDisplayString(), subModelType));
        }

        return children;
    }

    private static IOperation? Unwrap(IOperation? operation)
    {
        while (operation is IConversionOperation or IParenthesizedOperation)
        {
            operation = operation is IConversionOperation conversion ? conversion.Operand : ((IParenthesizedOperation)operation).Operand;
        }

        return operation;
    }

    private static bool IsInteger(object value) => value is int or long or short or sbyte or byte or ushort or uint;

    private static List<FuseGroupSpec> ReadFuseGroups(INamedTypeSymbol type, CancellationToken cancellationToken)
    {
        var groups = new List<FuseGroupSpec>();
        foreach (AttributeData attribute in type.GetAttributes())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (attribute.AttributeClass is null
                || KnownTypes.MetadataName(attribute.AttributeClass) != KnownTypes.FuseAttribute
                || attribute.AttributeConstructor is null)
            {
                continue;
            }

            var names = new List<string>();
            foreach (TypedConstant argument in attribute.ConstructorArguments)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (argument.IsNull)
                {
                    // [Fuse(null)]: a null array names nothing.
                    continue;
                }

                if (argument.Kind == TypedConstantKind.Array)
                {
                    names.AddRange(argument.Values.Select(v => v.Value as string ?? "null"));
                }
                else
                {
                    names.Add(argument.Value as string ?? "null");
                }
            }

            var syntax = attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken) as AttributeSyntax;
            LocationInfo? attributeLocation = LocationInfo.From(syntax);
            SeparatedSyntaxList<AttributeArgumentSyntax>? arguments = syntax?.ArgumentList?.Arguments;
            var argumentLocations = new List<LocationInfo>();
            for (int i = 0; i < names.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                LocationInfo? location = arguments is { } list && list.Count == names.Count ? LocationInfo.From(list[i]) : attributeLocation;
                if (location is not null)
                {
                    argumentLocations.Add(location);
                }
            }

            groups.Add(new FuseGroupSpec(names.ToEquatableArray(), argumentLocations.ToEquatableArray(), attributeLocation));
        }

        return groups;
    }

    /// <summary>The declaration of <c>Tensor forward(Tensor)</c> that has a body, if any.</summary>
    internal static MethodDeclarationSyntax? FindForward(INamedTypeSymbol type, CancellationToken cancellationToken, int parameters = 1)
    {
        foreach (IMethodSymbol method in type.GetMembers("forward").OfType<IMethodSymbol>())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (method.IsStatic || method.Parameters.Length != parameters || !method.Parameters.All(p => KnownTypes.IsTensor(p.Type)) || !KnownTypes.IsTensor(method.ReturnType))
            {
                continue;
            }

            foreach (SyntaxReference reference in method.DeclaringSyntaxReferences)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (reference.GetSyntax(cancellationToken) is MethodDeclarationSyntax declaration
                    && (declaration.Body is not null || declaration.ExpressionBody is not null))
                {
                    return declaration;
                }
            }
        }

        return null;
    }

    internal static string TypeKeyword(TypeDeclarationSyntax declaration) => declaration switch
    {
        RecordDeclarationSyntax record when record.ClassOrStructKeyword.IsKind(SyntaxKind.StructKeyword) => "record struct",
        RecordDeclarationSyntax => "record",
        StructDeclarationSyntax => "struct",
        InterfaceDeclarationSyntax => "interface",
        _ => "class",
    };

    private static string TypeParameterList(INamedTypeSymbol type) =>
        type.TypeParameters.Length == 0 ? string.Empty : "<" + string.Join(", ", type.TypeParameters.Select(p => p.Name)) + ">";
}
