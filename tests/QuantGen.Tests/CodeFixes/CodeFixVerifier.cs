using System.Linq;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;
using QuantGen.Tests.Generator;

namespace QuantGen.Tests.CodeFixes;

/// <summary>
/// Runs a QuantGen code fix through Roslyn's code-fix test harness (Microsoft.CodeAnalysis.CSharp.CodeFix.Testing):
/// the source is compiled against the real TorchSharp and QuantGen assemblies, the generator's diagnostics must be
/// exactly the ones marked <c>{|QG0001:...|}</c>, the fix must turn the source into the expected text, and the
/// generator must report no error or warning on the result (unless the test says which remain).
/// </summary>
public static class CodeFixVerifier<TCodeFix>
    where TCodeFix : CodeFixProvider, new()
{
    /// <summary>The harness for <paramref name="source"/> fixed into <paramref name="fixedSource"/> (null: no fix is offered).</summary>
    public static CSharpCodeFixTest<GeneratorDiagnosticsAnalyzer, TCodeFix, DefaultVerifier> Create(string source, string? fixedSource)
    {
        var test = new CSharpCodeFixTest<GeneratorDiagnosticsAnalyzer, TCodeFix, DefaultVerifier>
        {
            TestCode = source,
            FixedCode = fixedSource ?? source,
            // The framework and TorchSharp from this test process, as the generator tests compile user code; no
            // reference pack is downloaded.
            ReferenceAssemblies = new ReferenceAssemblies("net10.0"),
        };
        test.TestState.AdditionalReferences.AddRange(GeneratorHarness.References);
        // Informational rules that name what the generator did, not problems a fix addresses.
        test.DisabledDiagnostics.AddRange(new[] { "QG0018", "QG0022" });
        return test;
    }

    /// <summary>The fix turns <paramref name="source"/> into <paramref name="fixedSource"/>, leaving no QuantGen error.</summary>
    public static Task VerifyAsync(string source, string fixedSource, string? equivalenceKey = null)
    {
        var test = Create(source, fixedSource);
        test.CodeActionEquivalenceKey = equivalenceKey;
        return test.RunAsync();
    }

    /// <summary>The diagnostics marked in <paramref name="source"/> fire, and the fix offers nothing for them.</summary>
    public static Task VerifyNotOfferedAsync(string source)
    {
        var test = Create(source, null);
        return test.RunAsync();
    }
}
