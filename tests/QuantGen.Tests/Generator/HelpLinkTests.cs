using System;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using QuantGen.Generator.Diagnostics;

namespace QuantGen.Tests.Generator;

/// <summary>
/// Help links: built from the ID by one helper, with one setting (the QuantGenDiagnosticsHelpUrl build property) for
/// where docs/diagnostics.md is; each one must open a section that exists.
/// </summary>
public class HelpLinkTests
{
    [Fact]
    public void EveryRulesHelpLinkOpensAnAnchorThatExistsInDiagnosticsMd()
    {
        string? documentation = DiagnosticDescriptors.DocumentationUri(GeneratorHarness.DiagnosticsDocumentation());
        Assert.NotNull(documentation);

        Assert.NotEmpty(DiagnosticDescriptors.All);
        foreach (DiagnosticDescriptor rule in DiagnosticDescriptors.All)
        {
            // Follow the link as a browser would: the file it names, then the element with the fragment as id.
            var link = new Uri(DiagnosticDescriptors.Get(rule.Id, documentation).HelpLinkUri);
            Assert.True(link.IsFile, link.ToString());
            Assert.True(File.Exists(link.LocalPath), $"{rule.Id}: {link} names no file");
            string anchor = link.Fragment.TrimStart('#');
            Assert.Equal(rule.Id.ToLowerInvariant(), anchor);
            Assert.Contains($"<a id=\"{anchor}\"></a>", File.ReadAllText(link.LocalPath), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void AReportedDiagnosticLinksToItsSectionAtTheConfiguredAddress()
    {
        SourceFile bad = Samples.Model(
            Samples.SeedMembers + "\n    public override Tensor forward(Tensor x) => x;",
            attributes: "[Quantize]\n[Fuse(nameof(conv1), \"relux\")]");

        Diagnostic local = GeneratorHarness.Run(GeneratorHarness.Compile(bad), GeneratorHarness.CreateDriver()).GeneratorDiagnostics.Single(d => d.Id == "QG0003");
        Assert.Equal(new Uri(GeneratorHarness.DiagnosticsDocumentation()).AbsoluteUri + "#qg0003", local.Descriptor.HelpLinkUri);

        // A published copy: the URL as given, its own fragment replaced by the rule's.
        Diagnostic published = GeneratorHarness.Run(GeneratorHarness.Compile(bad), GeneratorHarness.CreateDriver(helpUrl: "https://docs.example.org/quantgen/diagnostics.html#top"))
            .GeneratorDiagnostics.Single(d => d.Id == "QG0003");
        Assert.Equal("https://docs.example.org/quantgen/diagnostics.html#qg0003", published.Descriptor.HelpLinkUri);

        // Unset: no link at all rather than one to a page that may not exist.
        Diagnostic unset = GeneratorHarness.Run(GeneratorHarness.Compile(bad), GeneratorHarness.CreateDriver(helpUrl: "")).GeneratorDiagnostics.Single(d => d.Id == "QG0003");
        Assert.Equal(string.Empty, unset.Descriptor.HelpLinkUri);
        Assert.Equal(local.GetMessage(), unset.GetMessage());
    }

    [Fact]
    public void TheRepositoryAndThePackageBothSetTheOneProperty()
    {
        // The repository's builds point at its docs folder; the package at the copy it carries next to the props file.
        string root = Path.GetDirectoryName(Path.GetDirectoryName(GeneratorHarness.DiagnosticsDocumentation()))!;
        string repository = File.ReadAllText(Path.Combine(root, "Directory.Build.props"));
        string package = File.ReadAllText(Path.Combine(root, "build", "package", "buildTransitive", "QuantGen.props"));
        foreach (string props in new[] { repository, package })
        {
            Assert.Contains($"<CompilerVisibleProperty Include=\"{DiagnosticDescriptors.HelpUrlProperty}\" />", props, StringComparison.Ordinal);
            Assert.Contains($"<{DiagnosticDescriptors.HelpUrlProperty} Condition=\"'$({DiagnosticDescriptors.HelpUrlProperty})' == ''\">", props, StringComparison.Ordinal);
        }

        Assert.Contains("$(MSBuildThisFileDirectory)docs/diagnostics.md", repository, StringComparison.Ordinal);
        Assert.Contains("$(MSBuildThisFileDirectory)../docs/diagnostics.md", package, StringComparison.Ordinal);
        string nuspec = File.ReadAllText(Path.Combine(root, "src", "QuantGen.Generator", "QuantGen.nuspec"));
        Assert.Contains("<file src=\"$diagnosticsDocs$\" target=\"docs\" />", nuspec, StringComparison.Ordinal);
        Assert.Contains("<file src=\"$helpLinkProps$\" target=\"buildTransitive\" />", nuspec, StringComparison.Ordinal);
    }
}
