using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace QuantGen.Tests.Generator;

/// <summary>
/// Graph mode: whole-forward capture, Sequential and [Quantize] sub-modules inlined with PyTorch paths,
/// construction-time ifs, automatic fusion and FX's shared cat observer, on the three sample models.
/// </summary>
public class GraphModeTests
{
    public static TheoryData<string> Groups() => new(Samples.GoodGroups.Select(g => g.Path));

    private static GeneratorRun RunGroup(string path) => GeneratorHarness.Run(Samples.GoodGroups.Single(g => g.Path == path).Files);

    private static string Source(GeneratorRun run, string hintEnd) => run.Result.GeneratedSources.Single(s => s.HintName.EndsWith(hintEnd, System.StringComparison.Ordinal)).SourceText.ToString();

    [Theory]
    [MemberData(nameof(Groups))]
    public void ModelWithSubModulesCompilesWithoutWarningsOrErrors(string path)
    {
        GeneratorRun run = RunGroup(path);

        Assert.True(run.Problems().IsEmpty, GeneratorHarness.Describe(run.Problems()));
        Assert.Null(run.Result.Exception);
        AssertCompiles(run);
    }

    [Fact]
    public void SmallResNetInlinesSequentialBasicBlocksWithPyTorchPaths()
    {
        GeneratorRun run = RunGroup(Samples.SmallResNet.Path);
        AssertCompiles(run);
        INamedTypeSymbol quantized = Type(run, "Samples.ResNet.SmallResNet+Quantized");
        var properties = quantized.GetMembers().OfType<IPropertySymbol>().Where(p => p.ExplicitInterfaceImplementations.Length == 0 && p.Type.ContainingNamespace.ToDisplayString() == "QuantGen.Modules" && p.Type.Name != "FloatFallback").ToDictionary(p => p.Name, p => p.Type.ToDisplayString());

        // torchvision's module names, '.' → '_': two blocks per layer, conv1/conv2 with bn folded, the
        // downsample's conv (BatchNorm "1" folded) only possibly present, the residual add with its relu.
        foreach (string block in new[] { "layer1_0", "layer1_1", "layer2_0", "layer2_1" })
        {
            Assert.Equal("QuantGen.Modules.QuantizedConv2d", properties[block + "_conv1"]);
            Assert.Equal("QuantGen.Modules.QuantizedConv2d", properties[block + "_conv2"]);
            Assert.Equal("QuantGen.Modules.QuantizedConv2d?", properties[block + "_downsample_0"]);
            Assert.Equal("QuantGen.Modules.QuantizedAdd", properties[block + "_add"]);
        }

        Assert.Equal("QuantGen.Modules.QuantizedMaxPool2d", properties["maxpool"]);
        Assert.Equal("QuantGen.Modules.QuantizedAdaptiveAvgPool2d", properties["avgpool"]);
        Assert.Equal("QuantGen.Modules.QuantizedFlatten", properties["flatten"]);
        Assert.Equal("QuantGen.Modules.QuantizedLinear", properties["fc"]);
        Assert.Equal(1 + 1 + 1 + 4 * 4 + 1 + 1 + 1, properties.Count);

        string source = Source(run, "SmallResNet.g.cs");
        // Inlined modules are reached through the index built once at Prepare.
        Assert.Contains("var modules = global::QuantGen.Modules.ModuleLookup.Index(model);", source);
        Assert.Contains("global::QuantGen.Modules.FusedConv2d.Create(\"SmallResNet\", \"layer1.0.conv1\", global::QuantGen.Modules.ModuleLookup.Get<global::TorchSharp.Modules.Conv2d>(modules, \"SmallResNet\", \"layer1.0.conv1\"), batchNorm: global::QuantGen.Modules.ModuleLookup.Get<global::TorchSharp.Modules.BatchNorm2d>(modules, \"SmallResNet\", \"layer1.0.bn1\"), relu: true)", source);
        Assert.Contains("batchNorm: global::QuantGen.Modules.ModuleLookup.Get<global::TorchSharp.Modules.BatchNorm2d>(modules, \"SmallResNet\", \"layer2.0.downsample.1\"), relu: false)", source);
        // One construction-time condition per block, decided by whether the block's downsample is registered.
        Assert.Contains("this._c0 = global::QuantGen.Modules.ModuleLookup.Find(modules, \"layer1.0.downsample\") is not null;", source);
        Assert.Contains("this._c2 = global::QuantGen.Modules.ModuleLookup.Find(modules, \"layer2.0.downsample\") is not null;", source);
        // The stem's conv-bn-relu and each block's add-relu are fused; the block input feeds the add when there is no downsample.
        Assert.Contains("this._conv1 = global::QuantGen.Modules.FusedConv2d.Create(\"SmallResNet\", \"conv1\", model.conv1, batchNorm: model.bn1, relu: true);", source);
        Assert.Contains("new global::QuantGen.Modules.QuantizedAdd(\"SmallResNet\", \"layer1.0.add\", q5, relu: true)", source);
        Assert.Contains("this._c0 ? t5! : t2", source);
        // Observers on a branch that may not run are only converted when it does.
        Assert.Contains("global::QuantGen.QParams? q4 = this._c0 ? this.layer1_0_downsample_0_activation.CalculateQParams() : null;", source);
        Assert.Contains("new global::QuantGen.Modules.QuantizedAdaptiveAvgPool2d(\"SmallResNet\", \"avgpool\", OutputSize(this._avgpool, 0), OutputSize(this._avgpool, 1))", source);
        Assert.Contains("new global::QuantGen.Modules.QuantizedFlatten(\"SmallResNet\", \"flatten\", 1, -1)", source);
    }

    [Fact]
    public void AutomaticFusionsAreListedInOneInfoOnTheClass()
    {
        GeneratorRun run = RunGroup(Samples.BasicBlock.Path);

        Diagnostic info = Assert.Single(run.GeneratorDiagnostics);
        Assert.Equal("QG0018", info.Id);
        Assert.Equal(DiagnosticSeverity.Info, info.Severity);
        Assert.Equal(Samples.BasicBlock.LineOf("public partial class BasicBlock"), info.Location.GetLineSpan().StartLinePosition.Line);
        Assert.Equal(
            "'BasicBlock': QuantGen fused conv1+bn1+relu, conv2+bn2, downsample.0+downsample.1, add+relu_1",
            info.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void CenterNetHeadSharesTheCatObserverWithItsInputsAndFusesTheDeconvolutions()
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.CenterNetHead);
        AssertCompiles(run);
        string source = run.Sources.Values.Single();

        // FX's shared observer: each head's last conv quantizes straight to the cat's qparams, so the heads'
        // outputs have no observer of their own and the cat is one observer.
        INamedTypeSymbol observed = Type(run, "Samples.Detection.CenterNetHead+Observed");
        string[] observers = observed.GetMembers().OfType<IPropertySymbol>().Where(p => p.Type.Name == "Observer").Select(p => p.Name).ToArray();
        Assert.Contains("cat_activation", observers);
        Assert.DoesNotContain("heatmap_out_activation", observers);
        Assert.DoesNotContain("offset_out_activation", observers);
        Assert.Equal(13, observers.Length);
        Assert.Contains("this._heatmap_out.Convert(q9, q12, this._heatmap_out_weightSpec, this.QConfig.Backend)", source);
        Assert.Contains("this._size_out.Convert(q10, q12, this._size_out_weightSpec, this.QConfig.Backend)", source);
        Assert.Contains("this._offset_out.Convert(q11, q12, this._offset_out_weightSpec, this.QConfig.Backend)", source);
        Assert.Contains("new global::QuantGen.Modules.QuantizedCat(\"CenterNetHead\", \"cat\", 1, q12)", source);
        // One observer instance sees every head's output and the cat's output.
        Assert.Equal(4, System.Text.RegularExpressions.Regex.Matches(source, @"Observe\(this\.cat_activation, t\d+\);").Count);

        // Sequential children "0".."11": ConvTranspose2d + BatchNorm2d + ReLU fused, the conv before each alone.
        Assert.Contains("global::QuantGen.Modules.FusedConvTranspose2d.Create(\"CenterNetHead\", \"deconv.1\", global::QuantGen.Modules.ModuleLookup.Get<global::TorchSharp.Modules.ConvTranspose2d>(modules, \"CenterNetHead\", \"deconv.1\"), batchNorm: global::QuantGen.Modules.ModuleLookup.Get<global::TorchSharp.Modules.BatchNorm2d>(modules, \"CenterNetHead\", \"deconv.2\"), relu: true)", source);
        Assert.Contains("global::QuantGen.Modules.FusedConv2d.Create(\"CenterNetHead\", \"deconv.4\", global::QuantGen.Modules.ModuleLookup.Get<global::TorchSharp.Modules.Conv2d>(modules, \"CenterNetHead\", \"deconv.4\"), batchNorm: null, relu: false)", source);
        // Named children keep their names; the head's conv+relu is fused.
        Assert.Contains("\"heatmap.conv\", global::QuantGen.Modules.ModuleLookup.Get<global::TorchSharp.Modules.Conv2d>(modules, \"CenterNetHead\", \"heatmap.conv\"), batchNorm: null, relu: true)", source);
        Assert.Equal("QuantGen.Modules.QuantizedConvTranspose2d", Type(run, "Samples.Detection.CenterNetHead+Quantized").GetMembers("deconv_9").OfType<IPropertySymbol>().Single().Type.ToDisplayString());
    }

    [Fact]
    public void FashionCnnMapsFunctionalOpsAndDropsDropout()
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.FashionCnn);
        AssertCompiles(run);
        string source = run.Sources.Values.Single();
        var properties = Type(run, "Samples.Fashion.FashionCnn+Quantized").GetMembers().OfType<IPropertySymbol>().Where(p => p.ExplicitInterfaceImplementations.Length == 0 && p.Type.ContainingNamespace.ToDisplayString() == "QuantGen.Modules" && p.Type.Name != "FloatFallback").ToDictionary(p => p.Name, p => p.Type.Name);

        Assert.Equal(
            new Dictionary<string, string>
            {
                ["input"] = "QuantizeInput", ["conv1"] = "QuantizedConv2d", ["pool"] = "QuantizedMaxPool2d", ["conv2"] = "QuantizedConv2d",
                ["max_pool2d"] = "QuantizedMaxPool2d", ["view"] = "QuantizedReshape", ["fc1"] = "QuantizedLinear", ["fc2"] = "QuantizedLinear",
            }.OrderBy(p => p.Key, System.StringComparer.Ordinal),
            properties.OrderBy(p => p.Key, System.StringComparer.Ordinal));

        // max_pool2d(x, 2): stride defaults to the kernel, padding 0, dilation 1 (PyTorch's defaults).
        Assert.Contains("new global::QuantGen.Modules.Pool2dOptions(2, 2, 2, 2, 0, 0, 1, 1, CeilMode: false)", source);
        // 32 * 7 * 7 folded by the compiler.
        Assert.Contains("new global::QuantGen.Modules.QuantizedReshape(\"FashionCnn\", \"view\", new int[] { -1, 1568 })", source);
        // functional.relu after conv2 and .relu() after fc1 are fused.
        Assert.Contains("FusedConv2d.Create(\"FashionCnn\", \"conv2\", model.conv2, batchNorm: null, relu: true)", source);
        Assert.Contains("FusedLinear.Create(\"FashionCnn\", \"fc1\", model.fc1, relu: true)", source);
        Assert.Contains("Identity (or Dropout, identity in eval): nothing to run.", source);
        Assert.Contains("global::QuantGen.QConfig.For(global::QuantGen.QuantBackend.Qnnpack)", source);
    }

    [Fact]
    public void FusionBlockedBySecondUserIsAWarningNamingIt()
    {
        SourceFile source = Samples.Model("""
                private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
                private readonly TorchSharp.Modules.BatchNorm2d bn1 = BatchNorm2d(1);
                public Bad() : base(nameof(Bad)) => RegisterComponents();
                public override Tensor forward(Tensor x)
                {
                    var y = conv1.forward(x);
                    var z = bn1.forward(y); //<-
                    return z + y;
                }
            """);

        GeneratorRun run = GeneratorHarness.Run(source);

        Diagnostic warning = Assert.Single(run.GeneratorDiagnostics);
        Assert.Equal("QG0019", warning.Id);
        Assert.Equal(DiagnosticSeverity.Warning, warning.Severity);
        Assert.Equal(source.LineOf(Samples.Marker), warning.Location.GetLineSpan().StartLinePosition.Line);
        Assert.Equal("'Bad': conv1 and bn1 were not fused: conv1's output is also used by add", warning.GetMessage(System.Globalization.CultureInfo.InvariantCulture));

        // Not fused, the BatchNorm2d becomes a standalone int8 batch norm, and the model still compiles.
        AssertCompiles(run);
        Assert.Contains("global::QuantGen.Modules.FusedBatchNorm2d.Create(\"Bad\", \"bn1\", model.bn1, relu: false)", run.Sources.Values.Single());
    }

    [Fact]
    public void AutoFuseFalseFusesNothingAndReportsNothing()
    {
        SourceFile source = Samples.Model(
            """
                private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
                private readonly TorchSharp.Modules.BatchNorm2d bn1 = BatchNorm2d(1);
                private readonly TorchSharp.Modules.ReLU relu = ReLU();
                public Bad() : base(nameof(Bad)) => RegisterComponents();
                public override Tensor forward(Tensor x) => relu.forward(bn1.forward(conv1.forward(x)));
            """,
            attributes: "[Quantize(AutoFuse = false)]");

        GeneratorRun run = GeneratorHarness.Run(source);

        Assert.Empty(run.GeneratorDiagnostics);
        AssertCompiles(run);
        string generated = run.Sources.Values.Single();
        Assert.Contains("FusedConv2d.Create(\"Bad\", \"conv1\", model.conv1, batchNorm: null, relu: false)", generated);
        Assert.Contains("FusedBatchNorm2d.Create(\"Bad\", \"bn1\", model.bn1, relu: false)", generated);
        Assert.Contains("new global::QuantGen.Modules.QuantizedReLU(\"Bad\", \"relu\")", generated);
    }

    public static TheoryData<string, string> ConditionForms() => new()
    {
        { "if (downsample != null) identity = downsample.forward(x);", "model.downsample is not null" },
        { "if (downsample is null) { } else { identity = downsample.forward(x); }", "model.downsample is null" },
        { "if (!(downsample == null)) identity = downsample.forward(x);", "model.downsample is null" },
        { "if (useDownsample) identity = downsample!.forward(x);", "model.useDownsample" },
        { "if (UseDownsampleProperty) identity = downsample!.forward(x);", "model.UseDownsampleProperty" },
        { "if (AlwaysDownsample) identity = downsample!.forward(x);", "true" },
    };

    [Theory]
    [MemberData(nameof(ConditionForms))]
    public void ConstructionTimeIfFormsAllBranchTheSameWay(string statement, string condition)
    {
        SourceFile source = Samples.Model($$"""
                private const bool AlwaysDownsample = true;
                private readonly bool useDownsample;
                private bool UseDownsampleProperty { get; }
                private readonly TorchSharp.Modules.Conv2d conv = Conv2d(1, 1, 1);
                private readonly TorchSharp.Modules.Conv2d? downsample;
                public Bad(bool down) : base(nameof(Bad))
                {
                    useDownsample = UseDownsampleProperty = down;
                    downsample = down ? Conv2d(1, 1, 1) : null;
                    RegisterComponents();
                }

                public override Tensor forward(Tensor x)
                {
                    var identity = x;
                    var y = conv.forward(x);
                    {{statement}}
                    return y + identity;
                }
            """);

        GeneratorRun run = GeneratorHarness.Run(source);

        Assert.True(run.Problems().IsEmpty, GeneratorHarness.Describe(run.Problems()));
        AssertCompiles(run);
        string generated = run.Sources.Values.Single();
        Assert.Contains($"this._c0 = {condition};", generated);

        // Whatever the form, the downsample runs exactly when the user's code runs it, and the add reads it then.
        bool negated = condition.EndsWith("is null", System.StringComparison.Ordinal);
        Assert.Contains(negated ? "if (!this._c0)" : "if (this._c0)", generated);
        Assert.Contains(negated ? "this._c0 ? input : t2!" : "this._c0 ? t2! : input", generated);
    }

    [Fact]
    public void StatelessModulesMayBeCalledTwiceAndGetFxNames()
    {
        SourceFile source = Samples.Model(
            """
                private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
                private readonly TorchSharp.Modules.Conv2d conv2 = Conv2d(1, 1, 1);
                private readonly TorchSharp.Modules.ReLU relu = ReLU();
                public Bad() : base(nameof(Bad)) => RegisterComponents();
                public override Tensor forward(Tensor x) => relu.forward(conv2.forward(relu.forward(conv1.forward(x))));
            """,
            attributes: "[Quantize(AutoFuse = false)]");

        GeneratorRun run = GeneratorHarness.Run(source);

        Assert.Empty(run.GeneratorDiagnostics);
        AssertCompiles(run);
        string generated = run.Sources.Values.Single();
        Assert.Contains("new global::QuantGen.Modules.QuantizedReLU(\"Bad\", \"relu\")", generated);
        Assert.Contains("new global::QuantGen.Modules.QuantizedReLU(\"Bad\", \"relu_1\")", generated);
        Assert.Contains("tap?.OnLayer(\"relu_1\", t4);", generated);
    }

    [Fact]
    public void ResidualAddFormsAllBecomeQuantizedAdds()
    {
        SourceFile source = Samples.Model(
            """
                private readonly TorchSharp.Modules.Conv2d conv = Conv2d(1, 1, 1);
                public Bad() : base(nameof(Bad)) => RegisterComponents();
                public override Tensor forward(Tensor x)
                {
                    var y = conv.forward(x);
                    var a = y + x;
                    var b = torch.add(a, x);
                    var c = b.add(y);
                    c.add_(a);
                    c += b;
                    return functional.relu(c);
                }
            """,
            attributes: "[Quantize(AutoFuse = false)]");

        GeneratorRun run = GeneratorHarness.Run(source);

        Assert.Empty(run.GeneratorDiagnostics);
        AssertCompiles(run);
        string generated = run.Sources.Values.Single();
        foreach (string layer in new[] { "add", "add_1", "add_2", "add_3", "add_4" })
        {
            Assert.Contains($"new global::QuantGen.Modules.QuantizedAdd(\"Bad\", \"{layer}\", ", generated);
        }

        Assert.DoesNotContain("\"add_5\"", generated);
        Assert.Contains("new global::QuantGen.Modules.QuantizedReLU(\"Bad\", \"relu\")", generated);
    }

    [Theory]
    [InlineData("CenterNetHead.cs")]
    [InlineData("FashionCnn.cs")]
    [InlineData("M.cs")]
    public void ReferenceTapsNameTheSameLayersAsQuantizedTaps(string path)
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Good.Single(s => s.Path == path));
        AssertCompiles(run);
        string source = run.Sources.Values.Single();
        string quantized = source.Substring(source.IndexOf("IQuantizedTap? tap)", System.StringComparison.Ordinal));
        quantized = quantized.Substring(0, quantized.IndexOf("public override string ToString()", System.StringComparison.Ordinal));
        string reference = source.Substring(source.IndexOf("IReferenceTap? tap)", System.StringComparison.Ordinal));

        string[] Layers(string text) => System.Text.RegularExpressions.Regex.Matches(text, "tap\\?\\.OnLayer\\(\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToArray();
        Assert.NotEmpty(Layers(quantized));
        Assert.Equal(Layers(quantized), Layers(reference));
        Assert.Contains("public Reference ConvertReference()", source);
        Assert.Contains("global::QuantGen.Reference.FakeQuant.Apply(input, ", source);
    }

    [Fact]
    public void DumpForReview()
    {
        if (System.Environment.GetEnvironmentVariable("QUANTGEN_DUMP") is not { } dir)
        {
            return;
        }

        foreach ((string path, SourceFile[] files) in Samples.GoodGroups)
        {
            foreach (GeneratedSourceResult source in GeneratorHarness.Run(files).Result.GeneratedSources)
            {
                System.IO.File.WriteAllText(System.IO.Path.Combine(dir, path + "." + source.HintName), source.SourceText.ToString());
            }
        }

        foreach (SourceFile file in Samples.Good)
        {
            foreach (GeneratedSourceResult source in GeneratorHarness.Run(file).Result.GeneratedSources)
            {
                System.IO.File.WriteAllText(System.IO.Path.Combine(dir, source.HintName), source.SourceText.ToString());
            }
        }
    }

    private static INamedTypeSymbol Type(GeneratorRun run, string metadataName) =>
        run.Output.GetTypeByMetadataName(metadataName) ?? throw new Xunit.Sdk.XunitException($"{metadataName} was not generated");

    internal static void AssertCompiles(GeneratorRun run) =>
        Assert.True(run.OutputProblems().IsEmpty, GeneratorHarness.Describe(run.OutputProblems()) + "\n" + string.Join("\n", run.Sources.Values));
}
