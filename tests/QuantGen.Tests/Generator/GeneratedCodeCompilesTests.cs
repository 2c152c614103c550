using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace QuantGen.Tests.Generator;

/// <summary>The generated code compiles against the real runtime, with the members the contract names.</summary>
public class GeneratedCodeCompilesTests
{
    public static TheoryData<string> GoodModels() => new(Samples.Good.Select(s => s.Path));

    [Theory]
    [MemberData(nameof(GoodModels))]
    public void GoodModelCompilesWithoutWarningsOrErrors(string path)
    {
        SourceFile model = Samples.Good.Single(s => s.Path == path);
        Assert.Empty(GeneratorHarness.Compile(model).GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning));

        GeneratorRun run = GeneratorHarness.Run(model);

        Assert.True(run.Problems().IsEmpty, GeneratorHarness.Describe(run.Problems()));
        Assert.Null(run.Result.Exception);
        Assert.Single(run.ModelSources);
        AssertOutputCompilesCleanly(run);
    }

    [Theory]
    [MemberData(nameof(GoodModels))]
    public void GeneratedPublicMembersHaveXmlDocs(string path)
    {
        // A user project with GenerateDocumentationFile and warnings as errors must still build.
        CSharpParseOptions withDocs = GeneratorHarness.ParseOptions.WithDocumentationMode(DocumentationMode.Diagnose);
        CSharpCompilation input = GeneratorHarness.Compile(withDocs, Samples.Good.Single(s => s.Path == path));
        GeneratorRun run = GeneratorHarness.Run(input, GeneratorHarness.CreateDriver(withDocs));

        SyntaxTree[] generatedTrees = run.Output.SyntaxTrees.Where(t => !input.SyntaxTrees.Contains(t)).ToArray();
        Diagnostic[] problems = run.Output.GetDiagnostics()
            .Where(d => d.Severity >= DiagnosticSeverity.Warning && generatedTrees.Contains(d.Location.SourceTree))
            .ToArray();
        Assert.True(problems.Length == 0, GeneratorHarness.Describe(problems));

        // The check is live: the samples' own undocumented public classes do get CS1591 (Tiny is
        // internal, so nothing in it is publicly visible).
        if (path != Samples.NoStubs.Path)
        {
            Assert.Contains(run.Output.GetDiagnostics(), d => d.Id == "CS1591" && !generatedTrees.Contains(d.Location.SourceTree));
        }
    }

    [Fact]
    public void Seed000HasThePreparedAndConvertedMembersOfPyTorchsModel()
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Seed000);
        AssertOutputCompilesCleanly(run);

        // PyTorch's prepared M: observers after quant, conv1 (fused with relu) and conv2, none on relu.
        INamedTypeSymbol observed = Type(run, "M+Observed");
        Assert.Equal(
            new[] { "conv1_activation", "conv2_activation", "quant_activation" },
            PropertiesOfType(observed, "QuantGen.Observers.Observer"));
        Assert.Equal("QuantGen.QConfig", Property(observed, "QConfig").Type.ToDisplayString());
        Assert.Contains(observed.AllInterfaces, i => i.ToDisplayString() == "System.IDisposable");

        // PyTorch's converted M: quant → Quantize, conv1 → QuantizedConvReLU2d, conv2 → QuantizedConv2d,
        // relu → Identity (nothing), dequant → DeQuantize (nothing).
        INamedTypeSymbol quantized = Type(run, "M+Quantized");
        Assert.Equal("QuantGen.Modules.QuantizeInput", Property(quantized, "quant").Type.ToDisplayString());
        Assert.Equal("QuantGen.Modules.QuantizedConv2d", Property(quantized, "conv1").Type.ToDisplayString());
        Assert.Equal("QuantGen.Modules.QuantizedConv2d", Property(quantized, "conv2").Type.ToDisplayString());
        Assert.Equal(new[] { "conv1", "conv2", "quant" }, LayerProperties(quantized).Select(p => p.Name).OrderBy(n => n, System.StringComparer.Ordinal));

        var forwards = quantized.GetMembers("forward").OfType<IMethodSymbol>()
            .Select(m => string.Join(", ", m.Parameters.Select(p => p.Type.ToDisplayString())))
            .OrderBy(s => s, System.StringComparer.Ordinal)
            .ToArray();
        Assert.Equal(new[] { "QuantGen.QTensor", "QuantGen.QTensor, QuantGen.Reports.IQuantizedTap?", "System.ReadOnlySpan<float>, int[], int[]", "TorchSharp.torch.Tensor" }, forwards);

        // Prepare(QConfig? = null) stays source-compatible; Prepare(QConfigMapping) replaces the declared mapping.
        IMethodSymbol[] prepares = Type(run, "M").GetMembers("Prepare").OfType<IMethodSymbol>().ToArray();
        Assert.Equal(2, prepares.Length);
        Assert.All(prepares, p => Assert.Equal("M.Observed", p.ReturnType.ToDisplayString()));
        IMethodSymbol prepare = prepares.Single(p => p.Parameters.Single().Type.ToDisplayString() == "QuantGen.QConfig?");
        Assert.True(prepare.Parameters.Single().IsOptional);
        Assert.Contains(prepares, p => p.Parameters.Single().Type.ToDisplayString() == "QuantGen.QConfigMapping" && !p.Parameters.Single().IsOptional);

        string source = run.Sources.Values.Single();
        Assert.Contains("FusedConv2d.Create(\"M\", \"conv1\", model.conv1, batchNorm: null, relu: true)", source);
        Assert.Contains("FusedConv2d.Create(\"M\", \"conv2\", model.conv2, batchNorm: null, relu: false)", source);
        Assert.Contains("qconfig is null ? DefaultQConfigMapping() : new global::QuantGen.QConfigMapping(qconfig)", source);
        Assert.Contains("var mapping = global::QuantGen.QConfigMapping.Default(global::QuantGen.QuantBackend.X86);", source);
        // Each op's qconfig is resolved by its path and module type; its observer and weights use it.
        Assert.Contains("RequireQConfig(mapping.Resolve(\"quant\", \"QuantStub\"), \"M\", \"quant\");", source);
        // ... through the mapping, which swaps in qparams it fixes for that layer (SetModuleQParams, a PyTorch state_dict).
        Assert.Matches(@"this\.quant_activation = mapping\.ActivationObserverSpec\(""M"", ""quant"", qconfig\d+\.Activation\)\.Create\(""M\.quant""\);", source);
        // A conv may be kept in float by a null qconfig (PyTorch's None); the stub's quantize may not.
        Assert.Contains("global::QuantGen.QConfig? resolved1 = mapping.Resolve(\"conv1\", \"Conv2d\");", source);
        Assert.Contains("this._conv1_inFloat = resolved1 is null;", source);
        Assert.Contains("this._conv1.ValidateWeightSpec(this._conv1_weightSpec);", source);
    }

    [Fact]
    public void VisionNetFoldsBatchNormFusesLinearReluAndKeepsFlatten()
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.VisionNet);
        AssertOutputCompilesCleanly(run);

        INamedTypeSymbol quantized = Type(run, "Samples.Vision.Net+Quantized");
        var expected = new Dictionary<string, string>
        {
            ["quant"] = "QuantGen.Modules.QuantizeInput",
            ["conv1"] = "QuantGen.Modules.QuantizedConv2d",
            ["flatten"] = "QuantGen.Modules.QuantizedFlatten",
            ["fc1"] = "QuantGen.Modules.QuantizedLinear",
            ["fc2"] = "QuantGen.Modules.QuantizedLinear",
        };
        Assert.Equal(
            expected.OrderBy(p => p.Key, System.StringComparer.Ordinal),
            LayerProperties(quantized).Select(p => KeyValuePair.Create(p.Name, p.Type.ToDisplayString())).OrderBy(p => p.Key, System.StringComparer.Ordinal));

        INamedTypeSymbol observed = Type(run, "Samples.Vision.Net+Observed");
        Assert.Equal(
            new[] { "conv1_activation", "fc1_activation", "fc2_activation", "quant_activation" },
            PropertiesOfType(observed, "QuantGen.Observers.Observer"));

        string source = run.Sources.Values.Single();
        Assert.Contains("FusedConv2d.Create(\"Net\", \"conv1\", model.conv1, batchNorm: model.bn1, relu: true)", source);
        Assert.Contains("FusedLinear.Create(\"Net\", \"fc1\", model.fc1, relu: true)", source);
        Assert.Contains("FusedLinear.Create(\"Net\", \"fc2\", model.fc2, relu: false)", source);
        Assert.Contains("new global::QuantGen.Modules.QuantizedFlatten(\"Net\", \"flatten\", 1, -1)", source);
        Assert.Contains("global::QuantGen.QConfig.For(global::QuantGen.QuantBackend.Qnnpack)", source);
        // fc1 reads the flatten output, whose qparams are conv1's (Flatten passes them through).
        Assert.Contains("this._fc1.Convert(q1, q2, this._fc1_weightSpec, this.QConfig.Backend)", source);
    }

    [Fact]
    public void ModelWithoutStubsQuantizesItsInputAndPassesIdentityAndFlattenThrough()
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.NoStubs);
        AssertOutputCompilesCleanly(run);

        INamedTypeSymbol quantized = Type(run, "Tiny+Quantized");
        Assert.Equal(
            new[] { "conv", "flat", "head", "input" },
            LayerProperties(quantized).Select(p => p.Name).OrderBy(n => n, System.StringComparer.Ordinal));
        Assert.Equal("QuantGen.Modules.QuantizeInput", Property(quantized, "input").Type.ToDisplayString());
        Assert.Equal(
            new[] { "conv_activation", "head_activation", "input_activation" },
            PropertiesOfType(Type(run, "Tiny+Observed"), "QuantGen.Observers.Observer"));

        string source = run.Sources.Values.Single();
        Assert.Contains("new global::QuantGen.Modules.QuantizeInput(\"Tiny\", \"input\", q0)", source);
        Assert.Contains("RequireQConfig(mapping.Global, \"Tiny\", \"input\");", source);
        Assert.Matches(@"this\.input_activation = mapping\.ActivationObserverSpec\(""Tiny"", ""input"", qconfig\d+\.Activation\)\.Create\(""Tiny\.input""\);", source);
        Assert.Contains("new global::QuantGen.Modules.QuantizedFlatten(\"Tiny\", \"flat\", 1, 3)", source);
    }

    [Fact]
    public void NestedGenericModelReadsFlattenDimsAtRunTimeAndAvoidsNameClashes()
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.NestedGeneric);
        AssertOutputCompilesCleanly(run);

        INamedTypeSymbol quantized = Type(run, "Samples.Zoo`1+Mlp+Quantized");
        Assert.Equal(
            new[] { "act", "fixed", "flatten", "input", "input_2" },
            LayerProperties(quantized).Select(p => p.Name).OrderBy(n => n, System.StringComparer.Ordinal));
        Assert.Equal("QuantGen.Modules.QuantizeInput", Property(quantized, "input_2").Type.ToDisplayString());
        Assert.Equal("QuantGen.Modules.QuantizedLinear", Property(quantized, "input").Type.ToDisplayString());
        Assert.Equal("QuantGen.Modules.QuantizedReLU", Property(quantized, "act").Type.ToDisplayString());

        string source = run.Sources.Values.Single();
        Assert.Contains("checked((int)this._flatten.start_dim)", source);
        Assert.Contains("FusedLinear.Create(\"Mlp\", \"fixed\", model.@fixed, relu: false)", source);
        Assert.Contains("public global::QuantGen.Modules.QuantizedLinear @fixed => this._fixed ?? throw", source);
        Assert.Contains("public global::QuantGen.Modules.FloatFallback? fixed_float { get; }", source);
        Assert.Contains("new global::QuantGen.Modules.QuantizeInput(\"Mlp\", \"input\", q0)", source);

        // [Quantize(Backend = QuantBackend.Qnnpack)], the named form.
        Assert.Contains("global::QuantGen.QConfig.For(global::QuantGen.QuantBackend.Qnnpack)", source);
        Assert.Contains("partial class Zoo<TTag>", source);
    }

    [Fact]
    public void DerivedQuantizedModelHidesItsBasesGeneratedMembersAndStaticContainersWork()
    {
        var source = new SourceFile("Derived.cs", Samples.Usings + """
            namespace Samples;

            public static partial class Models
            {
                [Quantize]
                public partial class Base : Module<Tensor, Tensor>
                {
                    protected readonly TorchSharp.Modules.ReLU relu = ReLU();
                    public Base() : base(nameof(Base)) { }
                    public override Tensor forward(Tensor x) => relu.forward(x);
                }

                [Quantize]
                public partial class Derived : Base
                {
                    private readonly TorchSharp.Modules.Linear fc = Linear(2, 2);
                    public override Tensor forward(Tensor x) => fc.forward(x);
                }
            }
            """);

        GeneratorRun run = GeneratorHarness.Run(source);

        Assert.True(run.Problems().IsEmpty, GeneratorHarness.Describe(run.Problems()));
        Assert.Equal(2, run.ModelSources.Length);
        AssertOutputCompilesCleanly(run);
    }

    private static void AssertOutputCompilesCleanly(GeneratorRun run) =>
        Assert.True(run.OutputProblems().IsEmpty, GeneratorHarness.Describe(run.OutputProblems()) + "\n" + string.Join("\n", run.Sources.Values));

    private static INamedTypeSymbol Type(GeneratorRun run, string metadataName) =>
        run.Output.GetTypeByMetadataName(metadataName) ?? throw new Xunit.Sdk.XunitException($"{metadataName} was not generated");

    // The int8 layers of a Quantized type: its public properties typed by a QuantGen.Modules class (Graph and
    // Layers, IQuantizedModel's members, are checked on their own).
    private static System.Collections.Generic.IEnumerable<IPropertySymbol> LayerProperties(INamedTypeSymbol quantized) =>
        quantized.GetMembers().OfType<IPropertySymbol>().Where(p => p.ExplicitInterfaceImplementations.Length == 0 && p.Type.ContainingNamespace.ToDisplayString() == "QuantGen.Modules" && p.Type.Name != "FloatFallback");

    private static IPropertySymbol Property(INamedTypeSymbol type, string name) =>
        type.GetMembers(name).OfType<IPropertySymbol>().Single();

    private static string[] PropertiesOfType(INamedTypeSymbol type, string propertyType) =>
        type.GetMembers().OfType<IPropertySymbol>()
            .Where(p => p.Type.ToDisplayString() == propertyType)
            .Select(p => p.Name)
            .OrderBy(n => n, System.StringComparer.Ordinal)
            .ToArray();
}
