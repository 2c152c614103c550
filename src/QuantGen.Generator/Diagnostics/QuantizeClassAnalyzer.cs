using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using QuantGen.Generator.Parsing;

namespace QuantGen.Generator.Diagnostics;

/// <summary>
/// QG0001 as an analyzer rather than a generator diagnostic: editor-side tools that run analyzers only
/// (<c>dotnet format analyzers</c>, language servers without generator support) then show it and apply the
/// make-partial code fix. The generator still generates nothing for a class that is not partial, and reports nothing
/// for it, so the rule fires once.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class QuantizeClassAnalyzer : DiagnosticAnalyzer
{
    /// <inheritdoc/>
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } = ImmutableArray.Create(DiagnosticDescriptors.NotPartial);

    /// <inheritdoc/>
    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterSymbolAction(AnalyzeType, SymbolKind.NamedType);
    }

    private static void AnalyzeType(SymbolAnalysisContext context)
    {
        var type = (INamedTypeSymbol)context.Symbol;
        if (!KnownTypes.IsQuantizeClass(type))
        {
            return;
        }

        string? url = context.Options.AnalyzerConfigOptionsProvider.GlobalOptions.TryGetValue(DiagnosticDescriptors.HelpUrlOption, out string? value) ? value : null;
        DiagnosticDescriptor rule = DiagnosticDescriptors.Get(DiagnosticDescriptors.NotPartial.Id, DiagnosticDescriptors.DocumentationUri(url));
        foreach (SyntaxReference reference in type.DeclaringSyntaxReferences)
        {
            if (reference.GetSyntax(context.CancellationToken) is not TypeDeclarationSyntax syntax)
            {
                continue;
            }

            // The class as additional location: the code fix makes it and every type around it partial.
            Location classLocation = syntax.Identifier.GetLocation();
            if (!syntax.Modifiers.Any(SyntaxKind.PartialKeyword))
            {
                context.ReportDiagnostic(Diagnostic.Create(rule, classLocation, new[] { classLocation }, type.Name, "it is"));
            }

            for (SyntaxNode? parent = syntax.Parent; parent is TypeDeclarationSyntax outer; parent = outer.Parent)
            {
                if (!outer.Modifiers.Any(SyntaxKind.PartialKeyword))
                {
                    context.ReportDiagnostic(Diagnostic.Create(rule, outer.Identifier.GetLocation(), new[] { classLocation }, type.Name, $"its containing type '{outer.Identifier.ValueText}' is"));
                }
            }
        }
    }
}
