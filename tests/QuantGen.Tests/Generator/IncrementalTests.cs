using System;
using System.Collections;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Reflection;
using System.Runtime.CompilerServices;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using QuantGen.Generator;

namespace QuantGen.Tests.Generator;

/// <summary>
/// The pipeline caches: an edit that does not touch a [Quantize] class re-runs nothing downstream of the
/// parse, and no step output holds a Roslyn object that would pin a compilation in memory.
/// </summary>
public class IncrementalTests
{
    private static readonly string[] OurSteps = { TrackingNames.Parse, TrackingNames.Specs, TrackingNames.Plan, TrackingNames.Diagnostics, TrackingNames.Emit };

    public static TheoryData<string> Models() => new(new[] { Samples.Seed000.Path, Samples.VisionNet.Path, "bad", Samples.SmallResNet.Path, Samples.CenterNetHead.Path });

    private static SourceFile[] ModelByName(string name) => name == "bad"
        ? new[] { Samples.Model(Samples.SeedMembers + "\n    public override Tensor forward(Tensor x) => conv1.forward(conv1.forward(x));") }
        : Samples.GoodGroups.Where(g => g.Path == name).Select(g => g.Files).FirstOrDefault() ?? new[] { Samples.Good.Single(s => s.Path == name) };

    [Theory]
    [MemberData(nameof(Models))]
    public void UnrelatedEditLeavesEveryStepCachedOrUnchanged(string name)
    {
        CSharpCompilation first = GeneratorHarness.Compile(ModelByName(name));
        Assert.NotNull(first);
        GeneratorDriver driver = GeneratorHarness.CreateDriver().RunGenerators(first);
        GeneratorRunResult firstRun = driver.GetRunResult().Results.Single();

        CSharpCompilation second = first.AddSyntaxTrees(CSharpSyntaxTree.ParseText(
            "namespace Elsewhere; public class Unrelated { public int Answer => 42; }", GeneratorHarness.ParseOptions, "Unrelated.cs"));
        GeneratorRunResult secondRun = driver.RunGenerators(second).GetRunResult().Results.Single();

        foreach (string step in OurSteps.Where(s => firstRun.TrackedSteps.ContainsKey(s)))
        {
            Assert.True(secondRun.TrackedSteps.ContainsKey(step), $"step {step} did not run the second time");
            foreach (IncrementalGeneratorRunStep run in secondRun.TrackedSteps[step])
            {
                foreach ((object value, IncrementalStepRunReason reason) in run.Outputs)
                {
                    Assert.True(
                        reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                        $"step {step} produced {reason} for {value}");
                }
            }
        }

        // A step with no output at all is not listed: the eager models have nothing to report, the bad one
        // nothing to emit. Everything else must have been seen both times.
        string[] expected = name == "bad"
            ? new[] { TrackingNames.Parse, TrackingNames.Specs, TrackingNames.Plan, TrackingNames.Diagnostics }
            : new[] { TrackingNames.Parse, TrackingNames.Specs, TrackingNames.Plan, TrackingNames.Emit };
        Assert.All(expected, step => Assert.Contains(step, firstRun.TrackedSteps.Keys));
        Assert.All(expected, step => Assert.Contains(step, secondRun.TrackedSteps.Keys));
        foreach (ImmutableArray<IncrementalGeneratorRunStep> output in secondRun.TrackedOutputSteps.Values)
        {
            Assert.All(output.SelectMany(s => s.Outputs), o => Assert.Equal(IncrementalStepRunReason.Cached, o.Reason));
        }

        // Same source and same diagnostics as the first run.
        Assert.Equal(firstRun.GeneratedSources.Select(s => s.SourceText.ToString()), secondRun.GeneratedSources.Select(s => s.SourceText.ToString()));
        Assert.Equal(firstRun.Diagnostics.Select(d => d.ToString()), secondRun.Diagnostics.Select(d => d.ToString()));
    }

    [Fact]
    public void EditingASubModuleClassRePlansTheParentThatInlinesIt()
    {
        // SmallResNet reads BasicBlock only through BasicBlock's spec: an edit of BasicBlock's forward
        // must reach SmallResNet's plan and generated file, or the parent would go stale.
        CSharpCompilation first = GeneratorHarness.Compile(Samples.SmallResNet, Samples.BasicBlock);
        GeneratorDriver driver = GeneratorHarness.CreateDriver().RunGenerators(first);
        string parentBefore = driver.GetRunResult().Results.Single().GeneratedSources.Single(s => s.HintName.EndsWith("SmallResNet.g.cs", StringComparison.Ordinal)).SourceText.ToString();

        SyntaxTree oldTree = first.SyntaxTrees.Single(t => t.FilePath == Samples.BasicBlock.Path);
        SyntaxTree newTree = oldTree.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(
            Samples.BasicBlock.Text.Replace("y += identity;", "y = torch.cat(new[] { y, identity }, 1);", StringComparison.Ordinal)));
        GeneratorRunResult secondRun = driver.RunGenerators(first.ReplaceSyntaxTree(oldTree, newTree)).GetRunResult().Results.Single();

        Assert.Equal(2, secondRun.TrackedSteps[TrackingNames.Plan].Length);
        Assert.All(secondRun.TrackedSteps[TrackingNames.Plan].SelectMany(s => s.Outputs), o => Assert.Equal(IncrementalStepRunReason.Modified, o.Reason));
        string parentAfter = secondRun.GeneratedSources.Single(s => s.HintName.EndsWith("SmallResNet.g.cs", StringComparison.Ordinal)).SourceText.ToString();
        Assert.NotEqual(parentBefore, parentAfter);
        Assert.Contains("new global::QuantGen.Modules.QuantizedCat(\"SmallResNet\", \"layer1.0.cat\", 1, ", parentAfter);
        Assert.DoesNotContain("layer1.0.add", parentAfter);
    }

    [Fact]
    public void EditingTheModelReRunsTheStepsThatDependOnIt()
    {
        // The check above must be able to fail: a real change to forward reaches the plan and the source.
        CSharpCompilation first = GeneratorHarness.Compile(Samples.Seed000);
        GeneratorDriver driver = GeneratorHarness.CreateDriver().RunGenerators(first);

        SyntaxTree oldTree = first.SyntaxTrees.Single();
        SyntaxTree newTree = oldTree.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(
            Samples.Seed000.Text.Replace("x = conv2.forward(x);", "x = conv2.forward(x);\n        x = conv2.forward(x);", StringComparison.Ordinal)));
        GeneratorRunResult secondRun = driver.RunGenerators(first.ReplaceSyntaxTree(oldTree, newTree)).GetRunResult().Results.Single();

        Assert.Contains(secondRun.TrackedSteps[TrackingNames.Plan].SelectMany(s => s.Outputs), o => o.Reason == IncrementalStepRunReason.Modified);
        Assert.Contains(secondRun.Diagnostics, d => d.Id == "QG0009");
        Assert.Empty(secondRun.GeneratedSources);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void NoStepOutputReachesARoslynObject(string name)
    {
        GeneratorRunResult run = GeneratorHarness.Run(ModelByName(name)).Result;
        Assert.Null(run.Exception);

        int walked = 0;
        foreach (string step in OurSteps.Where(s => run.TrackedSteps.ContainsKey(s)))
        {
            foreach ((object value, _) in run.TrackedSteps[step].SelectMany(s => s.Outputs))
            {
                walked += AssertNoRoslynObjects(value, step);
            }
        }

        Assert.True(walked > 10, $"only {walked} objects walked: the walk is not looking at the models");
    }

    [Fact]
    public void TheWalkFindsARoslynObjectWhenThereIsOne()
    {
        var holder = new List<object> { "fine", new[] { Location.None } };

        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertNoRoslynObjects(holder, "self-test"));
    }

    private static readonly Type[] Forbidden =
    {
        typeof(ISymbol), typeof(SyntaxNode), typeof(SyntaxTree), typeof(Compilation), typeof(SemanticModel),
        typeof(Location), typeof(AttributeData), typeof(IOperation),
    };

    /// <summary>Walks fields and elements of <paramref name="root"/>; returns how many objects it saw.</summary>
    private static int AssertNoRoslynObjects(object root, string step)
    {
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<(object Value, string Path)>();
        pending.Push((root, step));
        while (pending.Count > 0)
        {
            (object value, string path) = pending.Pop();
            Type type = value.GetType();
            if (type.IsPrimitive || type.IsEnum || value is string || value is decimal)
            {
                continue;
            }

            if (!type.IsValueType && !seen.Add(value))
            {
                continue;
            }

            Type? forbidden = Forbidden.FirstOrDefault(f => f.IsInstanceOfType(value));
            if (forbidden is not null)
            {
                throw new Xunit.Sdk.XunitException($"{path} is a {type} ({forbidden.Name}), which must not flow through the pipeline");
            }

            if (value is IEnumerable items)
            {
                int i = 0;
                foreach (object? item in items)
                {
                    if (item is not null)
                    {
                        pending.Push((item, $"{path}[{i}]"));
                    }

                    i++;
                }
            }

            for (Type? t = type; t is not null && t != typeof(object); t = t.BaseType)
            {
                foreach (FieldInfo field in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                {
                    if (field.GetValue(value) is { } child)
                    {
                        pending.Push((child, $"{path}.{field.Name}"));
                    }
                }
            }
        }

        return seen.Count;
    }
}
