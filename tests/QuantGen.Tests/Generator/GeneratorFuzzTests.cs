using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Xunit.Abstractions;

namespace QuantGen.Tests.Generator;

/// <summary>
/// Mutates the test models' sources (statements deleted, duplicated, swapped; members renamed; cycles, deep
/// nesting and chains of construction-time ifs injected; tokens edited at random) and runs the generator on
/// each: it must not throw, must not skip a [Quantize] class silently (each one gets generated code or a
/// diagnostic), must stay small and fast, and must emit code that compiles whenever the input compiled.
/// QUANTGEN_GENFUZZ_CASES raises the number of cases (docs/reliability.md, "Generator fuzzing").
/// </summary>
public class GeneratorFuzzTests
{
    /// <summary>Cases of a CI run: about 35 s on a 2-core machine.</summary>
    private const int DefaultCases = 120;

    private const int DefaultSeed = 20261207;

    private const int MaxGeneratedChars = 2_000_000;

    // A guard against blow-ups (a mutation that makes the generator go exponential), not a speed claim: a case takes
    // under a second alone, but the whole suite on 2 cores (ONNX Runtime and libtorch threads beside it) once stalled a
    // case past the former 5 s, so the bound leaves room for that.
    private static readonly TimeSpan MaxGeneratorTime = TimeSpan.FromSeconds(20);

    private readonly ITestOutputHelper _output;

    public GeneratorFuzzTests(ITestOutputHelper output) => _output = output;

    /// <summary>The models to start from: the generator samples and the bound-form models, each as its own files.</summary>
    private static IReadOnlyList<SourceFile[]> Seeds()
    {
        var seeds = Samples.Good.Select(s => new[] { s }).ToList();
        seeds.AddRange(Samples.GoodGroups.Select(g => g.Files));
        string bound = System.IO.File.ReadAllText(RepositoryFile("tests/QuantGen.Tests/Binding/BoundModels.cs"));
        seeds.Add(new[] { new SourceFile("BoundModels.cs", bound.Replace("namespace QuantGen.Tests.Binding;", "namespace Fuzzed.Binding;", StringComparison.Ordinal)) });
        return seeds;
    }

    [Fact]
    public void MutatedModelsAreGeneratedOrDiagnosedNeverThrowNorBlowUp()
    {
        int cases = ReadSetting("QUANTGEN_GENFUZZ_CASES", DefaultCases);
        int seed = ReadSetting("QUANTGEN_GENFUZZ_SEED", DefaultSeed);
        IReadOnlyList<SourceFile[]> seeds = Seeds();
        var random = new Random(seed);
        var failures = new List<(string Kind, string Detail)>();
        var byMutation = new Dictionary<string, int>();
        long largest = 0;
        TimeSpan slowest = TimeSpan.Zero;
        int compiledInputs = 0;
        var total = Stopwatch.StartNew();

        // Warm the generator up so the first case's JIT time does not count against its budget.
        GeneratorHarness.Run(seeds[0]);

        for (int c = 0; c < cases; c++)
        {
            SourceFile[] files = seeds[random.Next(seeds.Count)];
            int target = random.Next(files.Length);
            (string mutation, string text) = Mutate(files[target].Text, random);
            byMutation[mutation] = byMutation.GetValueOrDefault(mutation) + 1;
            SourceFile[] mutated = files.Select((f, i) => i == target ? f with { Text = text } : f).ToArray();
            string label = $"case {c} ({mutation} on {files[target].Path})";

            CaseOutcome outcome = RunCase(mutated);
            largest = Math.Max(largest, outcome.GeneratedChars);
            slowest = outcome.Elapsed > slowest ? outcome.Elapsed : slowest;
            compiledInputs += outcome.InputCompiled ? 1 : 0;
            failures.AddRange(outcome.Failures.Select(f => (f.Kind, $"{label}: {f.Detail}")));
            if (outcome.Failures.Count > 0 && Environment.GetEnvironmentVariable("QUANTGEN_GENFUZZ_DUMP") is { Length: > 0 } dump)
            {
                // The failing case's files, to replay it by hand.
                string folder = System.IO.Path.Combine(dump, "case" + c.ToString(CultureInfo.InvariantCulture));
                System.IO.Directory.CreateDirectory(folder);
                foreach (SourceFile file in mutated)
                {
                    System.IO.File.WriteAllText(System.IO.Path.Combine(folder, file.Path), file.Text);
                }
            }
        }

        string summary = string.Create(CultureInfo.InvariantCulture,
            $"{cases} cases (seed {seed}) in {total.Elapsed.TotalSeconds:F1} s; {compiledInputs} inputs compiled; largest generated {largest} chars; slowest generator run {slowest.TotalMilliseconds:F0} ms; mutations: {string.Join(", ", byMutation.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"))}; failures: {(failures.Count == 0 ? "none" : string.Join(", ", failures.GroupBy(f => f.Kind).Select(g => $"{g.Key} {g.Count()}")))}");
        _output.WriteLine(summary);
        Assert.True(failures.Count == 0, summary + Environment.NewLine + string.Join(Environment.NewLine, failures.Take(10).Select(f => $"[{f.Kind}] {f.Detail}")));
    }

    /// <summary>The shapes the first fuzzing run found skipped silently: each class now gets code or QG0024.</summary>
    [Theory]
    [InlineData("self")]
    [InlineData("self through a Sequential")]
    [InlineData("mutual")]
    [InlineData("generic growing")]
    [InlineData("nesting 40 deep")]
    public void ClassesThatCannotBeExpandedAreReportedNotSkipped(string shape)
    {
        string text = Samples.Usings + shape switch
        {
            "self" => SelfContaining("Loop", "x = inner.forward(x);", "private readonly Loop inner = null!;"),
            "self through a Sequential" => SelfContaining("Loop", "x = body.forward(x);", "private readonly TorchSharp.Modules.Sequential body = Sequential(ReLU(), new Loop());"),
            "mutual" => SelfContaining("Ping", "x = pong.forward(x);", "private readonly Pong pong = null!;")
                + SelfContaining("Pong", "x = ping.forward(x);", "private readonly Ping ping = null!;"),
            "generic growing" => GenericGrowing(),
            _ => DeepNesting(40),
        };

        CaseOutcome outcome = RunCase(new[] { new SourceFile("Shapes.cs", text) });

        Assert.True(outcome.Failures.Count == 0, string.Join(Environment.NewLine, outcome.Failures));
        Assert.Contains(outcome.Run.GeneratorDiagnostics, d => d.Id == "QG0024");
        Assert.All(outcome.Run.GeneratorDiagnostics.Where(d => d.Id == "QG0024"),
            d => Assert.Equal(DiagnosticSeverity.Error, d.Severity));
    }

    [Fact]
    public void NestingWithinTheLimitIsGeneratedAndDeeperClassesAreReportedAtTheClass()
    {
        GeneratorRun run = GeneratorHarness.Run(new SourceFile("Deep.cs", Samples.Usings + DeepNesting(40)));

        // Level0 holds Level1 … Level39: the levels with more than 32 below them cannot be inlined.
        string[] reported = run.GeneratorDiagnostics.Where(d => d.Id == "QG0024")
            .Select(d => d.GetMessage(CultureInfo.InvariantCulture).Split('\'')[1]).OrderBy(n => n, StringComparer.Ordinal).ToArray();
        Assert.Equal(Enumerable.Range(0, 40 - 33).Select(i => "Level" + i).OrderBy(n => n, StringComparer.Ordinal), reported);
        Assert.Contains(run.Sources.Values, s => s.Contains("partial class Level7", StringComparison.Ordinal));
        Assert.DoesNotContain(run.Sources.Values, s => s.Contains("partial class Level6\n", StringComparison.Ordinal));
    }

    [Fact]
    public void GeneratedCodeGrowsLinearlyWithAChainOfConstructionTimeIfs()
    {
        int Size(int ifs)
        {
            GeneratorRun run = GeneratorHarness.Run(new SourceFile("Chain.cs", Samples.Usings + IfChain("Chain", ifs)));
            Assert.True(run.Problems().IsEmpty, GeneratorHarness.Describe(run.Problems()));
            return run.Sources.Where(s => !s.Key.StartsWith("QuantGenCaptured_", StringComparison.Ordinal)).Sum(s => s.Value.Length);
        }

        int ten = Size(10);
        int twenty = Size(20);
        int hundred = Size(100);

        // Linear: ten more ifs add about as much as the first ten did (doubling per if made 20 ifs ~1000x 10).
        Assert.InRange(twenty - ten, (ten - Size(0)) / 2, (ten - Size(0)) * 2);
        Assert.True(hundred < MaxGeneratedChars, $"100 ifs generated {hundred} chars");

        CaseOutcome outcome = RunCase(new[] { new SourceFile("Chain.cs", Samples.Usings + IfChain("Chain", 100)) });
        Assert.True(outcome.Failures.Count == 0, string.Join(Environment.NewLine, outcome.Failures));
    }

    private sealed record CaseOutcome(GeneratorRun Run, IReadOnlyList<(string Kind, string Detail)> Failures, long GeneratedChars, TimeSpan Elapsed, bool InputCompiled);

    /// <summary>Runs the generator on one case and checks the four properties.</summary>
    private static CaseOutcome RunCase(SourceFile[] files)
    {
        var failures = new List<(string Kind, string Detail)>();
        CSharpCompilation input = GeneratorHarness.Compile(files);
        var timer = Stopwatch.StartNew();
        GeneratorRun run;
        try
        {
            run = GeneratorHarness.Run(input);
        }
        catch (Exception exception)
        {
            failures.Add(("exception", exception.GetType().Name + ": " + exception.Message));
            return new CaseOutcome(null!, failures, 0, timer.Elapsed, false);
        }

        TimeSpan elapsed = timer.Elapsed;
        if (run.Result.Exception is { } thrown)
        {
            failures.Add(("exception", thrown.GetType().Name + ": " + thrown.Message));
        }

        foreach (Diagnostic internalError in run.GeneratorDiagnostics.Where(d => d.Id is "CS8784" or "CS8785" or "QG9999"))
        {
            failures.Add(("exception", internalError.ToString()));
        }

        long generated = run.Result.GeneratedSources.Sum(s => (long)s.SourceText.Length);
        if (generated > MaxGeneratedChars)
        {
            failures.Add(("blow-up", $"{generated} chars generated"));
        }

        if (elapsed > MaxGeneratorTime)
        {
            failures.Add(("blow-up", $"generator took {elapsed.TotalSeconds:F1} s"));
        }

        ImmutableArray<Diagnostic> inputErrors = input.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToImmutableArray();
        foreach ((string name, ClassDeclarationSyntax declaration) in QuantizeClasses(input))
        {
            bool hasCode = run.Result.GeneratedSources.Any(s => s.SourceText.ToString().Contains("partial class " + name, StringComparison.Ordinal));
            bool diagnosed = run.GeneratorDiagnostics.Any(d => d.Id.StartsWith("QG", StringComparison.Ordinal)
                && (Inside(d.Location, declaration) || d.GetMessage(CultureInfo.InvariantCulture).Contains("'" + name, StringComparison.Ordinal)));
            bool compilerSaysWhy = inputErrors.Any(d => Inside(d.Location, declaration));
            if (!hasCode && !diagnosed && !compilerSaysWhy)
            {
                failures.Add(("silent skip", $"[Quantize] class {name} got no code and no diagnostic"));
            }
        }

        if (inputErrors.IsEmpty)
        {
            Diagnostic[] outputErrors = run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();
            if (outputErrors.Length > 0)
            {
                failures.Add(("does not compile", GeneratorHarness.Describe(outputErrors.Take(3))));
            }
        }

        return new CaseOutcome(run, failures, generated, elapsed, inputErrors.IsEmpty);
    }

    /// <summary>Every class declaration that carries the real [Quantize] (bound by the compiler, on the part that has it).</summary>
    private static IEnumerable<(string Name, ClassDeclarationSyntax Declaration)> QuantizeClasses(CSharpCompilation compilation)
    {
        foreach (SyntaxTree tree in compilation.SyntaxTrees)
        {
            SemanticModel model = compilation.GetSemanticModel(tree);
            foreach (ClassDeclarationSyntax declaration in tree.GetRoot().DescendantNodes().OfType<ClassDeclarationSyntax>())
            {
                bool quantize = declaration.AttributeLists.SelectMany(l => l.Attributes)
                    .Any(a => model.GetSymbolInfo(a).Symbol?.ContainingType?.ToDisplayString() == "QuantGen.QuantizeAttribute");
                if (quantize)
                {
                    yield return (declaration.Identifier.ValueText, declaration);
                }
            }
        }
    }

    /// <summary>Whether <paramref name="location"/> lies in <paramref name="node"/>'s lines (generator diagnostics carry file and line, not the tree).</summary>
    private static bool Inside(Location location, SyntaxNode node)
    {
        FileLinePositionSpan at = location.GetLineSpan();
        FileLinePositionSpan lines = node.SyntaxTree.GetLineSpan(node.FullSpan);
        return at.IsValid && at.Path == node.SyntaxTree.FilePath
            && at.StartLinePosition.Line >= lines.StartLinePosition.Line && at.EndLinePosition.Line <= lines.EndLinePosition.Line;
    }

    /// <summary>One random mutation of <paramref name="text"/>: its kind and the new text.</summary>
    private static (string Kind, string Text) Mutate(string text, Random random)
    {
        SyntaxNode root = CSharpSyntaxTree.ParseText(text, GeneratorHarness.ParseOptions).GetRoot();
        StatementSyntax[] statements = root.DescendantNodes().OfType<StatementSyntax>().Where(s => s is not BlockSyntax).ToArray();
        ClassDeclarationSyntax[] classes = root.DescendantNodes().OfType<ClassDeclarationSyntax>().ToArray();
        string modelClass = classes.Length == 0 ? "M" : classes[random.Next(classes.Length)].Identifier.ValueText;
        switch (random.Next(11))
        {
            case 0 when statements.Length > 0:
            {
                StatementSyntax statement = statements[random.Next(statements.Length)];
                return ("delete statement", text.Remove(statement.SpanStart, statement.Span.Length));
            }

            case 1 when statements.Length > 0:
            {
                StatementSyntax statement = statements[random.Next(statements.Length)];
                return ("duplicate statement", text.Insert(statement.Span.End, "\n" + statement.ToString()));
            }

            case 2:
            {
                BlockSyntax[] blocks = root.DescendantNodes().OfType<BlockSyntax>().Where(b => b.Statements.Count >= 2).ToArray();
                if (blocks.Length == 0)
                {
                    goto default;
                }

                BlockSyntax block = blocks[random.Next(blocks.Length)];
                int first = random.Next(block.Statements.Count - 1);
                StatementSyntax a = block.Statements[first], b = block.Statements[first + 1];
                string swapped = text.Substring(0, a.SpanStart) + b.ToString() + text.Substring(a.Span.End, b.SpanStart - a.Span.End) + a.ToString() + text.Substring(b.Span.End);
                return ("swap statements", swapped);
            }

            case 3:
            {
                VariableDeclaratorSyntax[] fields = root.DescendantNodes().OfType<FieldDeclarationSyntax>().SelectMany(f => f.Declaration.Variables).ToArray();
                if (fields.Length == 0)
                {
                    goto default;
                }

                string name = fields[random.Next(fields.Length)].Identifier.ValueText;
                SyntaxToken[] uses = root.DescendantTokens().Where(t => t.IsKind(SyntaxKind.IdentifierToken) && t.ValueText == name).ToArray();
                // Half the time everywhere (a consistent rename), else in one place only (a dangling name).
                IEnumerable<SyntaxToken> renamed = random.Next(2) == 0 ? uses : new[] { uses[random.Next(uses.Length)] };
                string result = text;
                foreach (SyntaxToken token in renamed.OrderByDescending(t => t.SpanStart))
                {
                    result = result.Remove(token.SpanStart, token.Span.Length).Insert(token.SpanStart, name + "Renamed");
                }

                return ("rename member", result);
            }

            case 4:
                return ("inject self-containment", InjectIntoForward(root, text, random, modelClass, $"private readonly {modelClass} selfLoop = null!;", "x = selfLoop.forward(x);"));
            case 5:
                return ("inject mutual recursion", InjectIntoForward(root, text, random, modelClass, "private readonly FuzzTwin twin = null!;", "x = twin.forward(x);")
                    + "\n" + SelfContaining("FuzzTwin", "x = back.forward(x);", $"private readonly {modelClass} back = null!;"));
            case 6:
                return ("deep nesting", text + "\n" + DeepNesting(random.Next(30, 45)));
            case 7:
                return ("chain of ifs", text + "\n" + IfChain("FuzzChain", random.Next(5, 60)));
            case 8:
                return ("generic growing", text + "\n" + GenericGrowing());
            case 9:
                return ("file modifier", text.Replace("public partial class", "file partial class", StringComparison.Ordinal));
            default:
            {
                SyntaxToken[] tokens = root.DescendantTokens().ToArray();
                SyntaxToken token = tokens[random.Next(tokens.Length)];
                string replacement = random.Next(3) switch
                {
                    0 => string.Empty,
                    1 => tokens[random.Next(tokens.Length)].Text,
                    _ => token.Text + " " + tokens[random.Next(tokens.Length)].Text,
                };
                return ("token edit", text.Remove(token.SpanStart, token.Span.Length).Insert(token.SpanStart, replacement));
            }
        }
    }

    /// <summary>Adds <paramref name="field"/> to <paramref name="className"/> and <paramref name="statement"/> at the top of its forward body (when it has a block body).</summary>
    private static string InjectIntoForward(SyntaxNode root, string text, Random random, string className, string field, string statement)
    {
        ClassDeclarationSyntax? model = root.DescendantNodes().OfType<ClassDeclarationSyntax>().FirstOrDefault(c => c.Identifier.ValueText == className);
        MethodDeclarationSyntax? forward = model?.Members.OfType<MethodDeclarationSyntax>().FirstOrDefault(m => m.Identifier.ValueText == "forward" && m.Body is not null);
        if (model is null || forward is null)
        {
            return text;
        }

        string parameter = forward.ParameterList.Parameters.FirstOrDefault()?.Identifier.ValueText ?? "x";
        string result = text.Insert(forward.Body!.OpenBraceToken.Span.End, "\n" + statement.Replace("x", parameter, StringComparison.Ordinal) + "\n");
        return result.Insert(model.OpenBraceToken.Span.End, "\n" + field + "\n");
    }

    private static string SelfContaining(string name, string statement, string member) => $$"""

        [Quantize]
        public partial class {{name}} : Module<Tensor, Tensor>
        {
            {{member}}
            public {{name}}() : base(nameof({{name}})) => RegisterComponents();
            public override Tensor forward(Tensor x)
            {
                {{statement}}
                return x;
            }
        }

        """;

    private static string GenericGrowing() => """

        [Quantize]
        public partial class Grow<T> : Module<Tensor, Tensor>
        {
            private readonly Grow<System.Collections.Generic.List<T>> next = null!;
            public Grow() : base("Grow") => RegisterComponents();
            public override Tensor forward(Tensor x) => next.forward(x);
        }

        """;

    /// <summary>Level0 holds Level1 … holds Level(depth-1), which holds a ReLU.</summary>
    private static string DeepNesting(int depth)
    {
        var text = new StringBuilder();
        for (int i = 0; i < depth; i++)
        {
            string member = i == depth - 1 ? "private readonly TorchSharp.Modules.ReLU inner = ReLU();" : $"private readonly Level{i + 1} inner = new();";
            text.Append(CultureInfo.InvariantCulture, $$"""

                [Quantize]
                public partial class Level{{i}} : Module<Tensor, Tensor>
                {
                    {{member}}
                    public Level{{i}}() : base(nameof(Level{{i}})) => RegisterComponents();
                    public override Tensor forward(Tensor x) => inner.forward(x);
                }

                """);
        }

        return text.ToString();
    }

    /// <summary>A model whose forward runs <paramref name="ifs"/> ReLUs, each under its own readonly bool decided at construction.</summary>
    private static string IfChain(string name, int ifs)
    {
        var members = new StringBuilder();
        var body = new StringBuilder();
        for (int i = 0; i < ifs; i++)
        {
            members.Append(CultureInfo.InvariantCulture, $"    private readonly bool use{i} = {(i % 2 == 0 ? "true" : "false")};\n");
            members.Append(CultureInfo.InvariantCulture, $"    private readonly TorchSharp.Modules.ReLU relu{i} = ReLU();\n");
            body.Append(CultureInfo.InvariantCulture, $"        if (use{i})\n        {{\n            x = relu{i}.forward(x);\n        }}\n\n");
        }

        return $$"""

            [Quantize(AutoFuse = false)]
            public partial class {{name}} : Module<Tensor, Tensor>
            {
                private readonly TorchSharp.Modules.Conv2d conv = Conv2d(1, 1, 1);
            {{members}}
                public {{name}}() : base(nameof({{name}})) => RegisterComponents();

                public override Tensor forward(Tensor x)
                {
                    x = conv.forward(x);
            {{body}}
                    return x;
                }
            }

            """;
    }

    private static int ReadSetting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) && value > 0 ? value : fallback;

    private static string RepositoryFile(string relative, [System.Runtime.CompilerServices.CallerFilePath] string thisFile = "") =>
        System.IO.Path.Combine(System.IO.Path.GetDirectoryName(thisFile)!, "..", "..", "..", relative);
}
