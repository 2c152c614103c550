using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using QuantGen.Tests.Generator;

namespace QuantGen.Tests.Docs;

/// <summary>
/// The ```csharp blocks of the README (and of the packages' README, what a package page shows) compile as
/// written, with QuantGen's generator, against the real QuantGen and TorchSharp assemblies, so the README
/// cannot drift from the API. A block is a whole program (a console app's Program.cs) unless an HTML comment on
/// the line before its fence says otherwise (see <see cref="ReadmeBlocks"/>).
/// </summary>
public class ReadmeCodeTests
{
    private static readonly string[] Readmes = ["README.md", "build/package/README.md"];

    public static TheoryData<string, int> Blocks()
    {
        var data = new TheoryData<string, int>();
        foreach (string readme in Readmes)
        {
            foreach (ReadmeBlock block in ReadmeBlocks.Parse(readme, File.ReadAllText(RepositoryFile(readme))))
            {
                data.Add(readme, block.Line);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Blocks))]
    public void Block_compiles_with_the_generator(string readme, int line)
    {
        IReadOnlyList<ReadmeBlock> blocks = ReadmeBlocks.Parse(readme, File.ReadAllText(RepositoryFile(readme)));
        ReadmeBlock block = blocks.Single(b => b.Line == line);
        string? problem = ReadmeBlocks.Check(blocks, block);
        Assert.True(problem is null, problem);
    }

    [Theory]
    [InlineData("README.md")]
    [InlineData("build/package/README.md")]
    public void The_first_block_is_a_whole_program(string readme)
    {
        // A new user copies the first snippet as it is: it must not lean on anything around it.
        ReadmeBlock first = ReadmeBlocks.Parse(readme, File.ReadAllText(RepositoryFile(readme)))[0];
        Assert.Equal(ReadmeBlockKind.Program, first.Kind);
        Assert.Contains("[Quantize]", first.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_block_that_does_not_compile_is_named_with_its_line_heading_and_errors()
    {
        // The README's first snippet as it once was: QuantStub without `using QuantGen.Modules;`.
        const string markdown = """
            # Sample

            ## Use

            ```csharp
            using QuantGen;
            using TorchSharp;
            using TorchSharp.Modules;
            using static TorchSharp.torch;
            using static TorchSharp.torch.nn;

            var model = new M();

            [Quantize]
            public partial class M : Module<Tensor, Tensor>
            {
                private readonly QuantStub quant = new();
                private readonly Conv2d conv = Conv2d(1, 1, 1);
                public M() : base(nameof(M)) => RegisterComponents();
                public override Tensor forward(Tensor x) => conv.forward(quant.forward(x));
            }
            ```
            """;
        IReadOnlyList<ReadmeBlock> blocks = ReadmeBlocks.Parse("SAMPLE.md", markdown);

        string? problem = ReadmeBlocks.Check(blocks, Assert.Single(blocks));

        Assert.NotNull(problem);
        Assert.StartsWith("SAMPLE.md, the csharp block at line 5 (under \"## Use\")", problem, StringComparison.Ordinal);
        // The compiler's error, at the README's own line of `QuantStub` (line 17 of the file).
        Assert.Contains("SAMPLE.md(17,", problem, StringComparison.Ordinal);
        Assert.Contains("CS0246", problem, StringComparison.Ordinal);
        Assert.Contains("QuantStub", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_continuing_block_runs_after_the_program_before_it_and_skip_needs_a_reason()
    {
        const string markdown = """
            ```csharp
            using System;
            using QuantGen;
            using TorchSharp;
            using TorchSharp.Modules;
            using static TorchSharp.torch;
            using static TorchSharp.torch.nn;

            var model = new M();
            model.eval();

            [Quantize]
            public partial class M : Module<Tensor, Tensor>
            {
                private readonly Conv2d conv = Conv2d(1, 1, 1);
                public M() : base(nameof(M)) => RegisterComponents();
                public override Tensor forward(Tensor x) => conv.forward(x);
            }
            ```

            <!-- readme-check: continues -->
            ```csharp
            M.Observed observed = model.Prepare();
            ```

            <!-- readme-check: continues -->
            ```csharp
            M.Observed again = model.Prepare(QConfig.Qnnpack, 3);
            ```

            <!-- readme-check: skip -->
            ```csharp
            anything at all
            ```
            """;
        IReadOnlyList<ReadmeBlock> blocks = ReadmeBlocks.Parse("SAMPLE.md", markdown);

        Assert.Equal(new[] { ReadmeBlockKind.Program, ReadmeBlockKind.Continues, ReadmeBlockKind.Continues, ReadmeBlockKind.Skip }, blocks.Select(b => b.Kind));
        Assert.Null(ReadmeBlocks.Check(blocks, blocks[0]));
        Assert.Null(ReadmeBlocks.Check(blocks, blocks[1]));

        // The error is reported at the README line of the continuing block, not of the program it extends.
        string? wrong = ReadmeBlocks.Check(blocks, blocks[2]);
        Assert.NotNull(wrong);
        Assert.Contains("SAMPLE.md(28,", wrong, StringComparison.Ordinal);

        string? skip = ReadmeBlocks.Check(blocks, blocks[3]);
        Assert.NotNull(skip);
        Assert.Contains("saying why", skip, StringComparison.Ordinal);
    }

    private static string RepositoryFile(string relative, [CallerFilePath] string thisFile = "") =>
        Path.Combine(Path.GetDirectoryName(thisFile)!, "..", "..", "..", relative);
}

/// <summary>How a README block is checked, from the HTML comment on the line before its fence.</summary>
public enum ReadmeBlockKind
{
    /// <summary>No comment: a whole program, the Program.cs of a console app (top-level statements, then types).</summary>
    Program,

    /// <summary><c>&lt;!-- readme-check: continues --&gt;</c>: statements that go on after the nearest whole program above.</summary>
    Continues,

    /// <summary><c>&lt;!-- readme-check: skip, REASON --&gt;</c>: not compiled; the reason says why.</summary>
    Skip,
}

/// <summary>One ```csharp block of a markdown file.</summary>
/// <param name="File">The markdown file, for messages.</param>
/// <param name="Line">1-based line of the opening fence.</param>
/// <param name="Heading">The nearest heading above it ("" when none).</param>
/// <param name="Kind">How it is checked.</param>
/// <param name="Reason">For <see cref="ReadmeBlockKind.Skip"/>: why.</param>
/// <param name="Text">The code, without the fences.</param>
public sealed record ReadmeBlock(string File, int Line, string Heading, ReadmeBlockKind Kind, string Reason, string Text)
{
    /// <summary>1-based line of the block's first code line.</summary>
    public int FirstCodeLine => Line + 1;

    /// <summary>How a failure names the block.</summary>
    public string Describe() =>
        $"{File}, the csharp block at line {Line}{(Heading.Length > 0 ? $" (under \"{Heading}\")" : string.Empty)}";
}

/// <summary>Finds the csharp blocks of a markdown file and compiles them the way a user's console app would.</summary>
public static class ReadmeBlocks
{
    private static readonly Regex Marker = new(@"^<!--\s*readme-check:\s*(?<kind>[a-z]+)\s*(?<reason>.*?)\s*-->$", RegexOptions.CultureInvariant);

    /// <summary>Every ```csharp (or ```cs) block, in file order.</summary>
    public static IReadOnlyList<ReadmeBlock> Parse(string file, string markdown)
    {
        string[] lines = markdown.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var blocks = new List<ReadmeBlock>();
        string heading = string.Empty;
        for (int i = 0; i < lines.Length; i++)
        {
            string trimmed = lines[i].Trim();
            if (trimmed.StartsWith("```", StringComparison.Ordinal))
            {
                string language = trimmed[3..].Trim();
                int end = Array.FindIndex(lines, i + 1, l => l.Trim() == "```");
                Assert.True(end > i, $"{file}: the code fence at line {i + 1} is never closed.");
                if (language is "csharp" or "cs" or "c#")
                {
                    (ReadmeBlockKind kind, string reason) = KindOf(file, lines, i);
                    blocks.Add(new ReadmeBlock(file, i + 1, heading, kind, reason, string.Join('\n', lines[(i + 1)..end])));
                }

                i = end;
            }
            else if (trimmed.StartsWith('#'))
            {
                heading = trimmed;
            }
        }

        return blocks;
    }

    /// <summary>
    /// Null when <paramref name="block"/> compiles with the generator without errors or warnings; otherwise why not,
    /// naming the block (file, line, heading) and each diagnostic at its line in the markdown file.
    /// </summary>
    public static string? Check(IReadOnlyList<ReadmeBlock> blocks, ReadmeBlock block)
    {
        if (block.Kind == ReadmeBlockKind.Skip)
        {
            return block.Reason.Length > 0
                ? null
                : $"{block.Describe()} is marked skip without a reason: write <!-- readme-check: skip, ... --> saying why it cannot compile.";
        }

        string source;
        if (block.Kind == ReadmeBlockKind.Program)
        {
            source = LineMapped(block.File, block.FirstCodeLine, block.Text);
        }
        else
        {
            ReadmeBlock? program = blocks.LastOrDefault(b => b.Line < block.Line && b.Kind == ReadmeBlockKind.Program);
            if (program is null)
            {
                return $"{block.Describe()} is marked continues, but no whole program comes before it in {block.File}.";
            }

            // The program's usings and statements, this block's statements, then the program's type declarations.
            CompilationUnitSyntax unit = CSharpSyntaxTree.ParseText(program.Text, GeneratorHarness.ParseOptions).GetCompilationUnitRoot();
            MemberDeclarationSyntax? firstType = unit.Members.FirstOrDefault(m => m is not GlobalStatementSyntax);
            int split = firstType?.FullSpan.Start ?? program.Text.Length;
            int typesLine = program.FirstCodeLine + program.Text[..split].Count(c => c == '\n');
            source = LineMapped(program.File, program.FirstCodeLine, program.Text[..split])
                + LineMapped(block.File, block.FirstCodeLine, block.Text)
                + LineMapped(program.File, typesLine, program.Text[split..]);
        }

        // What `dotnet new console` gives every file (ImplicitUsings), as the project a reader pastes into has.
        const string implicitUsings = "global using System;\nglobal using System.Collections.Generic;\nglobal using System.IO;\n"
            + "global using System.Linq;\nglobal using System.Net.Http;\nglobal using System.Threading;\nglobal using System.Threading.Tasks;\n";
        CSharpCompilation input = CSharpCompilation.Create(
            "ReadmeSnippet",
            [
                CSharpSyntaxTree.ParseText(source, GeneratorHarness.ParseOptions, path: block.File + ".cs"),
                CSharpSyntaxTree.ParseText(implicitUsings, GeneratorHarness.ParseOptions, path: "ImplicitUsings.g.cs"),
            ],
            GeneratorHarness.References,
            GeneratorHarness.CompilationOptions.WithOutputKind(OutputKind.ConsoleApplication));
        GeneratorRun run = GeneratorHarness.Run(input);

        var problems = new List<string>();
        if (run.Result.Exception is { } crash)
        {
            problems.Add($"the generator threw {crash.GetType().Name}: {crash.Message}");
        }

        problems.AddRange(run.Problems().Select(d => d.ToString()));
        problems.AddRange(run.Output.GetDiagnostics()
            .Where(d => d.Severity >= DiagnosticSeverity.Warning)
            .OrderBy(d => d.Location.GetMappedLineSpan().StartLinePosition.Line)
            .Select(d => d.ToString()));
        return problems.Count == 0
            ? null
            : $"{block.Describe()} does not compile as written:{Environment.NewLine}  " + string.Join(Environment.NewLine + "  ", problems.Distinct());
    }

    private static (ReadmeBlockKind Kind, string Reason) KindOf(string file, string[] lines, int fence)
    {
        int previous = fence - 1;
        while (previous >= 0 && lines[previous].Trim().Length == 0)
        {
            previous--;
        }

        Match match = previous >= 0 ? Marker.Match(lines[previous].Trim()) : Match.Empty;
        if (!match.Success)
        {
            return (ReadmeBlockKind.Program, string.Empty);
        }

        string reason = match.Groups["reason"].Value.TrimStart(',', ':', '-', '—', ' ');
        return match.Groups["kind"].Value switch
        {
            "continues" => (ReadmeBlockKind.Continues, string.Empty),
            "skip" => (ReadmeBlockKind.Skip, reason),
            string other => throw new InvalidOperationException($"{file}, line {previous + 1}: unknown readme-check '{other}'; use continues or skip."),
        };
    }

    /// <summary>The code with a #line directive, so diagnostics name the markdown file and its line.</summary>
    private static string LineMapped(string file, int line, string code)
    {
        var text = new StringBuilder();
        text.Append("#line ").Append(line).Append(" \"").Append(file).Append("\"\n");
        text.Append(code);
        if (!code.EndsWith('\n'))
        {
            text.Append('\n');
        }

        return text.ToString();
    }
}
