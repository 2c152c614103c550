using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using QuantGen.Generator;

namespace QuantGen.Tests.Generator;

/// <summary>A user source file: its path (shows up in generated comments and diagnostics) and text.</summary>
public sealed record SourceFile(string Path, string Text)
{
    /// <summary>The 0-based line holding <paramref name="marker"/>, found independently of the generator.</summary>
    public int LineOf(string marker)
    {
        string[] lines = Text.Split('\n');
        int[] hits = Enumerable.Range(0, lines.Length).Where(i => lines[i].Contains(marker, StringComparison.Ordinal)).ToArray();
        Assert.True(hits.Length == 1, $"marker '{marker}' must be on exactly one line of {Path}, found {hits.Length}");
        return hits[0];
    }
}

/// <summary>The outcome of one generator run.</summary>
public sealed record GeneratorRun(
    CSharpCompilation Input,
    Compilation Output,
    ImmutableArray<Diagnostic> GeneratorDiagnostics,
    GeneratorDriver Driver,
    GeneratorRunResult Result)
{
    /// <summary>
    /// The generated form's files: every generated file but the QAT form's (<c>*.Qat.g.cs</c>) and the captured forward it
    /// binds (<c>*.Capture.g.cs</c>), which a generated-form class gets beside its own file.
    /// </summary>
    public ImmutableArray<GeneratedSourceResult> ModelSources =>
        Result.GeneratedSources.Where(s => !IsQatFile(s.HintName)).ToImmutableArray();

    /// <summary>Whether a generated file belongs to the QAT form of a generated-form class.</summary>
    public static bool IsQatFile(string hintName) =>
        hintName.EndsWith(".Qat.g.cs", StringComparison.Ordinal) || hintName.EndsWith(".Capture.g.cs", StringComparison.Ordinal);

    /// <summary>Generated files by hint name, but the QAT form's (see <see cref="ModelSources"/>; <see cref="AllSources"/> has them).</summary>
    public IReadOnlyDictionary<string, string> Sources =>
        ModelSources.ToDictionary(s => s.HintName, s => s.SourceText.ToString());

    /// <summary>Every generated file by hint name.</summary>
    public IReadOnlyDictionary<string, string> AllSources =>
        Result.GeneratedSources.ToDictionary(s => s.HintName, s => s.SourceText.ToString());

    /// <summary>The generator's warnings and errors (QG0018, the info listing automatic fusions, is not a problem).</summary>
    public ImmutableArray<Diagnostic> Problems() =>
        GeneratorDiagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).ToImmutableArray();

    /// <summary>Warnings and errors of the compilation with the generated code added.</summary>
    public ImmutableArray<Diagnostic> OutputProblems() =>
        Output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToImmutableArray();
}

/// <summary>
/// Compiles user sources against the real TorchSharp, QuantGen.Attributes and QuantGen.Runtime assemblies
/// and runs <see cref="QuantizeGenerator"/> over them with step tracking on.
/// </summary>
public static class GeneratorHarness
{
    public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    public static readonly CSharpCompilationOptions CompilationOptions = new(
        OutputKind.DynamicallyLinkedLibrary,
        nullableContextOptions: NullableContextOptions.Enable,
        warningLevel: 9999);

    private static readonly Lazy<ImmutableArray<MetadataReference>> LazyReferences = new(LoadReferences);

    /// <summary>The framework (this test process's trusted platform assemblies) plus TorchSharp and QuantGen.</summary>
    public static ImmutableArray<MetadataReference> References => LazyReferences.Value;

    public static CSharpCompilation Compile(params SourceFile[] sources) => Compile(ParseOptions, sources);

    public static CSharpCompilation Compile(CSharpParseOptions parseOptions, params SourceFile[] sources) =>
        CSharpCompilation.Create(
            "UserModels",
            sources.Select(s => CSharpSyntaxTree.ParseText(s.Text, parseOptions, s.Path)),
            References,
            CompilationOptions);

    /// <summary>This repository's docs/diagnostics.md, where Directory.Build.props points the help links of its own builds.</summary>
    public static string DiagnosticsDocumentation([System.Runtime.CompilerServices.CallerFilePath] string thisFile = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(thisFile)!, "..", "..", "..", "docs", "diagnostics.md"));

    /// <summary>
    /// A driver with step tracking, given the build property that sets the help links' address as a build of this
    /// repository gives it (<paramref name="helpUrl"/> overrides it; "" leaves it unset).
    /// </summary>
    public static GeneratorDriver CreateDriver(CSharpParseOptions? parseOptions = null, string? helpUrl = null) =>
        CSharpGeneratorDriver.Create(
            new[] { new QuantizeGenerator().AsSourceGenerator() },
            parseOptions: parseOptions ?? ParseOptions,
            optionsProvider: new BuildProperties(helpUrl ?? DiagnosticsDocumentation()),
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    public static GeneratorRun Run(params SourceFile[] sources) => Run(Compile(sources));

    public static GeneratorRun Run(CSharpCompilation input, GeneratorDriver? driver = null)
    {
        GeneratorDriver ran = (driver ?? CreateDriver()).RunGeneratorsAndUpdateCompilation(input, out Compilation output, out ImmutableArray<Diagnostic> diagnostics);
        GeneratorRunResult result = ran.GetRunResult().Results.Single();
        return new GeneratorRun(input, output, diagnostics.AddRange(AnalyzerDiagnostics(input)), ran, result);
    }

    /// <summary>
    /// What QuantGen's analyzers report on <paramref name="compilation"/> (QG0001 is an analyzer rule, so editor tools
    /// that run analyzers only show it): the tests see them with the generator's, as a build does.
    /// </summary>
    public static ImmutableArray<Diagnostic> AnalyzerDiagnostics(Compilation compilation, string? helpUrl = null)
    {
        var analyzers = ImmutableArray.Create<Microsoft.CodeAnalysis.Diagnostics.DiagnosticAnalyzer>(new QuantGen.Generator.Diagnostics.QuantizeClassAnalyzer());
        var options = new Microsoft.CodeAnalysis.Diagnostics.AnalyzerOptions(ImmutableArray<AdditionalText>.Empty, new BuildProperties(helpUrl ?? DiagnosticsDocumentation()));
        return Microsoft.CodeAnalysis.Diagnostics.DiagnosticAnalyzerExtensions.WithAnalyzers(compilation, analyzers, options).GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult();
    }

    /// <summary>Readable list of diagnostics for assertion messages.</summary>
    public static string Describe(IEnumerable<Diagnostic> diagnostics) =>
        string.Join(Environment.NewLine, diagnostics.Select(d => d.ToString()));

    private static ImmutableArray<MetadataReference> LoadReferences()
    {
        var paths = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        string trusted = (string?)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") ?? string.Empty;
        foreach (string path in trusted.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            paths.TryAdd(Path.GetFileName(path), path);
        }

        foreach (Type type in new[] { typeof(TorchSharp.torch), typeof(QConfig), typeof(QuantizeAttribute) })
        {
            paths[Path.GetFileName(type.Assembly.Location)] = type.Assembly.Location;
        }

        // The test assembly holds its own [Quantize] models; user code must not see them.
        paths.Remove(Path.GetFileName(typeof(GeneratorHarness).Assembly.Location));
        return paths.Values.OrderBy(p => p, StringComparer.Ordinal).Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToImmutableArray();
    }
}

/// <summary>
/// The build properties the compiler hands a generator (<c>build_property.X</c> global options), as MSBuild would
/// give them for a project that sets <c>QuantGenDiagnosticsHelpUrl</c> and makes it compiler-visible.
/// </summary>
public sealed class BuildProperties : Microsoft.CodeAnalysis.Diagnostics.AnalyzerConfigOptionsProvider
{
    private readonly Options _global;

    public BuildProperties(string helpUrl)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        if (helpUrl.Length > 0)
        {
            values["build_property.QuantGenDiagnosticsHelpUrl"] = helpUrl;
        }

        _global = new Options(values);
    }

    public override Microsoft.CodeAnalysis.Diagnostics.AnalyzerConfigOptions GlobalOptions => _global;

    public override Microsoft.CodeAnalysis.Diagnostics.AnalyzerConfigOptions GetOptions(SyntaxTree tree) => Options.None;

    public override Microsoft.CodeAnalysis.Diagnostics.AnalyzerConfigOptions GetOptions(AdditionalText textFile) => Options.None;

    private sealed class Options : Microsoft.CodeAnalysis.Diagnostics.AnalyzerConfigOptions
    {
        public static readonly Options None = new(new Dictionary<string, string>());

        private readonly Dictionary<string, string> _values;

        public Options(Dictionary<string, string> values) => _values = values;

        public override bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? value) =>
            _values.TryGetValue(key, out value);
    }
}
