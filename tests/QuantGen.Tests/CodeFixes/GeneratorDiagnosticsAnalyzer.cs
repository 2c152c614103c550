using System.Collections.Immutable;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using QuantGen.Generator;
using QuantGen.Generator.Diagnostics;

namespace QuantGen.Tests.CodeFixes;

// RS1036/RS1038/RS1041 are about analyzers a compiler loads; this one only runs inside the test process, for the harness.
#pragma warning disable RS1036, RS1038, RS1041

/// <summary>
/// Test-only: reports what <see cref="QuantizeGenerator"/> reports, as an analyzer, because Roslyn's code-fix test
/// harness finds the diagnostics to fix through a <see cref="DiagnosticAnalyzer"/>. It runs the real generator over
/// the compilation with <see cref="CSharpGeneratorDriver"/> and relays each diagnostic with its ID, message,
/// properties and additional locations; the locations are moved onto the compilation's syntax trees (the generator
/// reports file locations, since it keeps no syntax in its pipeline). Nothing here decides anything the product does.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class GeneratorDiagnosticsAnalyzer : DiagnosticAnalyzer
{
    // The generator's rules with the message already formatted (relayed diagnostics carry their message as text).
    private static readonly ImmutableDictionary<string, DiagnosticDescriptor> Relayed = DiagnosticDescriptors.All.ToImmutableDictionary(
        d => d.Id,
        d => new DiagnosticDescriptor(d.Id, d.Title, "{0}", d.Category, d.DefaultSeverity, d.IsEnabledByDefault));

    /// <inheritdoc/>
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } = Relayed.Values.ToImmutableArray();

    /// <inheritdoc/>
    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            // One generator run per compilation; each file's diagnostics are reported from that file's semantic
            // model action, so they are local to it, as the harness requires of a diagnostic it fixes.
            var run = new System.Lazy<ImmutableArray<Diagnostic>>(() => RunGenerator(start.Compilation, start.CancellationToken));
            start.RegisterSemanticModelAction(model =>
            {
                SyntaxTree tree = model.SemanticModel.SyntaxTree;
                foreach (Diagnostic diagnostic in run.Value.Where(d => d.Location.GetLineSpan().Path == tree.FilePath))
                {
                    model.ReportDiagnostic(Diagnostic.Create(
                        Relayed[diagnostic.Id],
                        InSource(start.Compilation, diagnostic.Location),
                        diagnostic.AdditionalLocations.Select(l => InSource(start.Compilation, l)),
                        diagnostic.Properties,
                        diagnostic.GetMessage(CultureInfo.InvariantCulture)));
                }
            });
        });
    }

    private static ImmutableArray<Diagnostic> RunGenerator(Compilation compilation, System.Threading.CancellationToken cancellationToken)
    {
        var parseOptions = (CSharpParseOptions?)compilation.SyntaxTrees.FirstOrDefault()?.Options;
        GeneratorDriver driver = CSharpGeneratorDriver.Create(new[] { new QuantizeGenerator().AsSourceGenerator() }, parseOptions: parseOptions);
        driver.RunGeneratorsAndUpdateCompilation(compilation, out _, out ImmutableArray<Diagnostic> diagnostics, cancellationToken);

        // QG0001 is QuantGen's analyzer rule, not the generator's: relayed too, as a build reports both.
        return diagnostics.AddRange(QuantGen.Tests.Generator.GeneratorHarness.AnalyzerDiagnostics(compilation));
    }

    /// <summary>The same span in the compilation's tree of that file.</summary>
    private static Location InSource(Compilation compilation, Location location)
    {
        string path = location.GetLineSpan().Path;
        SyntaxTree? tree = compilation.SyntaxTrees.FirstOrDefault(t => t.FilePath == path);
        return tree is null ? location : Location.Create(tree, location.SourceSpan);
    }
}
