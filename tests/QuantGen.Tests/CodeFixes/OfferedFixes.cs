using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;
using QuantGen.Tests.Generator;

namespace QuantGen.Tests.CodeFixes;

/// <summary>
/// What an IDE would offer for a source: the generator's diagnostics (through <see cref="GeneratorDiagnosticsAnalyzer"/>)
/// and, for each, the code actions a provider registers, asked the way the IDE asks (a <see cref="CodeFixContext"/>
/// per diagnostic in a workspace document). For the tests that a fix is not offered where it would fix nothing.
/// </summary>
public static class OfferedFixes
{
    /// <summary>Every diagnostic of the source with the titles of the fixes <typeparamref name="TProvider"/> offers for it.</summary>
    public static async Task<IReadOnlyList<(string Id, string Message, IReadOnlyList<string> Titles)>> ForAsync<TProvider>(string source)
        where TProvider : CodeFixProvider, new()
    {
        using var workspace = new AdhocWorkspace();
        Project project = workspace.AddProject(ProjectInfo.Create(
            ProjectId.CreateNewId(), VersionStamp.Default, "UserModels", "UserModels", LanguageNames.CSharp,
            compilationOptions: GeneratorHarness.CompilationOptions,
            parseOptions: GeneratorHarness.ParseOptions,
            metadataReferences: GeneratorHarness.References));
        Document document = workspace.AddDocument(DocumentInfo.Create(
            DocumentId.CreateNewId(project.Id), "Model.cs", loader: TextLoader.From(TextAndVersion.Create(SourceText.From(source), VersionStamp.Default)), filePath: "/src/Model.cs"));

        Compilation compilation = (await document.Project.GetCompilationAsync())!;
        ImmutableArray<Diagnostic> diagnostics = await compilation
            .WithAnalyzers(ImmutableArray.Create<DiagnosticAnalyzer>(new GeneratorDiagnosticsAnalyzer()))
            .GetAnalyzerDiagnosticsAsync();

        var provider = new TProvider();
        var offered = new List<(string, string, IReadOnlyList<string>)>();
        foreach (Diagnostic diagnostic in diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).OrderBy(d => d.Location.SourceSpan.Start))
        {
            var titles = new List<string>();
            if (provider.FixableDiagnosticIds.Contains(diagnostic.Id))
            {
                var context = new CodeFixContext(document, diagnostic, (action, _) => titles.Add(action.Title), CancellationToken.None);
                await provider.RegisterCodeFixesAsync(context);
            }

            offered.Add((diagnostic.Id, diagnostic.GetMessage(), titles));
        }

        return offered;
    }
}
