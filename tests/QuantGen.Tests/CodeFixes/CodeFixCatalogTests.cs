using System;
using System.Linq;
using Microsoft.CodeAnalysis.CodeFixes;
using QuantGen.CodeFixes;
using QuantGen.Generator.Diagnostics;

namespace QuantGen.Tests.CodeFixes;

/// <summary>The code-fix assembly as an IDE loads it: exported providers, for rules that exist, each with Fix All.</summary>
public class CodeFixCatalogTests
{
    [Fact]
    public void EveryProviderIsExportedFixesRulesOfTheCatalogAndFixesAll()
    {
        Type[] providers = typeof(QuantGenCodeFixProvider).Assembly.GetTypes()
            .Where(t => !t.IsAbstract && typeof(CodeFixProvider).IsAssignableFrom(t))
            .ToArray();
        Assert.Equal(5, providers.Length);

        string[] catalog = DiagnosticDescriptors.All.Select(d => d.Id).ToArray();
        foreach (Type type in providers)
        {
            // Without the export attribute an IDE never finds the provider.
            Assert.NotNull(type.GetCustomAttributes(typeof(ExportCodeFixProviderAttribute), inherit: false).SingleOrDefault());
            var provider = (CodeFixProvider)Activator.CreateInstance(type)!;
            Assert.NotEmpty(provider.FixableDiagnosticIds);
            Assert.All(provider.FixableDiagnosticIds, id => Assert.Contains(id, catalog));
            Assert.NotNull(provider.GetFixAllProvider());
        }
    }
}
