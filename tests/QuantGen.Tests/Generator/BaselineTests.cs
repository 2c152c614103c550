using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace QuantGen.Tests.Generator;

/// <summary>
/// The generated file for seed 000, compared as text with the checked-in
/// Baselines/{Test}/{HintName}.txt. The baseline was produced by the code under test and reviewed, so
/// this is a change detector: when a change to the emitters is intended, refresh the baselines with
/// <c>QUANTGEN_UPDATE_BASELINES=1 dotnet test tests/QuantGen.Tests --filter "FullyQualifiedName~Baseline"</c>
/// and review the diff before committing it.
/// </summary>
public class BaselineTests
{
    private const string UpdateVariable = "QUANTGEN_UPDATE_BASELINES";

    [Fact]
    public void Seed000() => AssertMatchesBaseline(Samples.Seed000);

    [Fact]
    public void VisionNet() => AssertMatchesBaseline(Samples.VisionNet);

    [Fact]
    public void Seed000BaselineCompilesWithTheModel()
    {
        // The checked-in text itself (not just today's output) is valid C# against the runtime.
        string baseline = File.ReadAllText(BaselinePath(nameof(Seed000), "M.g.cs"));
        CSharpCompilation compilation = GeneratorHarness.Compile(Samples.Seed000)
            .AddSyntaxTrees(CSharpSyntaxTree.ParseText(baseline, GeneratorHarness.ParseOptions, "M.g.cs"));

        Diagnostic[] problems = compilation.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToArray();
        Assert.True(problems.Length == 0, GeneratorHarness.Describe(problems));
    }

    [Fact]
    public void OutputDoesNotDependOnTheCurrentCulture()
    {
        // A culture whose minus sign and digits grouping differ from the invariant one: Flatten's
        // end_dim (-1) and every line number must still be written the invariant way.
        var odd = (CultureInfo)CultureInfo.InvariantCulture.Clone();
        odd.NumberFormat.NegativeSign = "\u2212";
        odd.NumberFormat.NumberGroupSeparator = "\u00a0";
        string invariant = GeneratorHarness.Run(Samples.VisionNet).Sources.Values.Single();
        Assert.Contains("\"flatten\", 1, -1)", invariant, StringComparison.Ordinal);

        CultureInfo saved = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = odd;
            CultureInfo.CurrentUICulture = odd;
            Assert.Equal("\u22121", (-1).ToString(CultureInfo.CurrentCulture));
            Assert.Equal(invariant, GeneratorHarness.Run(Samples.VisionNet).Sources.Values.Single());
        }
        finally
        {
            CultureInfo.CurrentCulture = saved;
            CultureInfo.CurrentUICulture = saved;
        }
    }

    private static void AssertMatchesBaseline(SourceFile model, [CallerMemberName] string test = "")
    {
        GeneratorRun run = GeneratorHarness.Run(model);
        Assert.True(run.Problems().IsEmpty, GeneratorHarness.Describe(run.Problems()));
        foreach (GeneratedSourceResult generated in run.Result.GeneratedSources)
        {
            string path = BaselinePath(test, generated.HintName);
            string actual = generated.SourceText.ToString();
            if (Environment.GetEnvironmentVariable(UpdateVariable) == "1")
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllText(path, actual);
                continue;
            }

            Assert.True(File.Exists(path), $"No baseline {path}; run the tests with {UpdateVariable}=1 to create it.");

            // Git may check text out with CRLF; the generator always writes '\n'.
            string expected = File.ReadAllText(path).Replace("\r\n", "\n", StringComparison.Ordinal);
            Assert.Equal(expected, actual);
        }
    }

    private static string BaselinePath(string test, string hintName, [CallerFilePath] string thisFile = "") =>
        Path.Combine(Path.GetDirectoryName(thisFile)!, "Baselines", test, hintName + ".txt");
}
