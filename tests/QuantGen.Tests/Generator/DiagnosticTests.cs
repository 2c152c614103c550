using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace QuantGen.Tests.Generator;

/// <summary>
/// Each QGxxxx fires on a sample written to break exactly its rule, at the line marked "//&lt;-", and no
/// rule fires on the good models.
/// </summary>
public class DiagnosticTests
{
    /// <summary>A forward body over the seed's members.</summary>
    private static string Forward(params string[] statements) =>
        "    public override Tensor forward(Tensor x)\n    {\n" + string.Join("\n", statements.Select(s => "        " + s)) + "\n    }";

    private static readonly string SeedForward = Forward(
        "x = quant.forward(x);",
        "x = conv1.forward(x);",
        "x = relu.forward(x);",
        "x = conv2.forward(x);",
        "x = dequant.forward(x);",
        "return x;");

    private const string FuseConvRelu = "[Quantize]\n[Fuse(nameof(conv1), nameof(relu))]";

    /// <summary>Bad samples by name: the rule they break and the source (with the expected line marked).</summary>
    private static readonly Dictionary<string, (string Id, SourceFile Source)> BadSamples = new()
    {
        ["QG0001 class not partial"] = ("QG0001", Samples.Model(
            Samples.SeedMembers + "\n" + SeedForward,
            header: "public class Bad : Module<Tensor, Tensor> //<-")),
        ["QG0001 containing type not partial"] = ("QG0001", new SourceFile("Outer.cs", Samples.Usings + """
            public class Outer //<-
            {
                [Quantize]
                public partial class Inner : Module<Tensor, Tensor>
                {
                    private readonly TorchSharp.Modules.ReLU relu = ReLU();
                    public Inner() : base(nameof(Inner)) { }
                    public override Tensor forward(Tensor x) => relu.forward(x);
                }
            }
            """)),
        ["QG0002 no base class"] = ("QG0002", Samples.Model(
            "    public Tensor forward(Tensor x) => x;",
            header: "public partial class Bad //<-")),
        ["QG0002 module of another signature"] = ("QG0002", Samples.Model(
            "    public Bad() : base(nameof(Bad)) { }\n    public override Tensor forward(Tensor x, Tensor y) => x;",
            header: "public partial class Bad : Module<Tensor, Tensor, Tensor> //<-")),
        ["QG0003 unknown member"] = ("QG0003", Samples.Model(
            Samples.SeedMembers + "\n" + SeedForward,
            attributes: "[Quantize]\n[Fuse(nameof(conv1), \"relux\")] //<-")),
        ["QG0003 member that is not a module"] = ("QG0003", Samples.Model(
            Samples.SeedMembers + "\n    private readonly int size = 3;\n" + SeedForward,
            attributes: "[Quantize]\n[Fuse(nameof(conv1), nameof(size))] //<-")),
        ["QG0004 not consecutive"] = ("QG0004", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "x = conv1.forward(x);",
                "x = conv2.forward(x);",
                "x = relu.forward(x); //<-",
                "x = dequant.forward(x);",
                "return x;"),
            attributes: FuseConvRelu)),
        ["QG0004 fused member never called"] = ("QG0004", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "x = conv1.forward(x);",
                "x = conv2.forward(x);",
                "return dequant.forward(x);"),
            attributes: "[Quantize]\n[Fuse(nameof(conv1), nameof(relu))] //<-")),
        ["QG0005 relu then conv"] = ("QG0005", Samples.Model(
            Samples.SeedMembers + "\n" + SeedForward,
            attributes: "[Quantize]\n[Fuse(nameof(relu), nameof(conv2))] //<-")),
        ["QG0005 single member"] = ("QG0005", Samples.Model(
            Samples.SeedMembers + "\n" + SeedForward,
            attributes: "[Quantize]\n[Fuse(nameof(conv1))] //<-")),
        ["QG0005 conv then conv"] = ("QG0005", Samples.Model(
            Samples.SeedMembers + "\n" + SeedForward,
            attributes: "[Quantize]\n[Fuse(nameof(conv1), nameof(conv2))] //<-")),
        ["QG0006 tensor arithmetic"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "x = x * 2; //<-",
                "x = conv1.forward(x);",
                "return dequant.forward(x);"))),
        ["QG0016 data-dependent if"] = ("QG0016", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "if (x.shape[0] > 1) { x = conv1.forward(x); } //<-",
                "return dequant.forward(x);"))),
        ["QG0016 loop"] = ("QG0016", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "for (int i = 0; i < 2; i++) { x = relu.forward(x); } //<-",
                "return dequant.forward(x);"))),
        ["QG0016 mutable bool field"] = ("QG0016", Samples.Model(
            Samples.SeedMembers + "\n    public bool Deep;\n" + Forward(
                "x = quant.forward(x);",
                "if (Deep) x = conv1.forward(x); //<-",
                "return dequant.forward(x);"))),
        ["QG0006 switch"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "switch (1) { default: break; } //<-",
                "return dequant.forward(x);"))),
        ["QG0006 return inside if"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "if (true) return dequant.forward(x); //<-",
                "return dequant.forward(x);"))),
        ["QG0006 add of a scalar"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "x = x.add(1); //<-",
                "return dequant.forward(x);"))),
        ["QG0006 cat with a run-time dim"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "x = torch.cat(new[] { x, x }, x.shape.Length); //<-",
                "return dequant.forward(x);"))),
        ["QG0006 view with a run-time size"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "x = x.view(x.shape[0], -1); //<-",
                "return dequant.forward(x);"))),
        ["QG0017 sequential built in a loop"] = ("QG0017", Samples.Model(
            Samples.SeedMembers.Replace("public Bad() : base(nameof(Bad)) => RegisterComponents();", "private readonly TorchSharp.Modules.Sequential layers;\n    public Bad() : base(nameof(Bad)) { var list = new System.Collections.Generic.List<torch.nn.Module<Tensor, Tensor>>(); layers = Sequential(list); RegisterComponents(); }", System.StringComparison.Ordinal) + "\n" + Forward(
                "x = quant.forward(x);",
                "x = layers.forward(x); //<-",
                "return dequant.forward(x);"))),
        ["QG0007 module class not [Quantize]"] = ("QG0007", new SourceFile("Bad.cs", Samples.Usings + """
            public class Plain : Module<Tensor, Tensor>
            {
                public Plain() : base(nameof(Plain)) { }
                public override Tensor forward(Tensor x) => x;
            }

            [Quantize]
            public partial class Bad : Module<Tensor, Tensor>
            {
                // With QuantStub (eager mode) the class keeps the generated form, which needs [Quantize] members;
                // without stubs the same model is bound at Prepare and Plain is captured and inlined.
                private readonly QuantStub quant = new();
                private readonly Plain plain = new();
                public Bad() : base(nameof(Bad)) => RegisterComponents();
                public override Tensor forward(Tensor x) => plain.forward(quant.forward(x)); //<-
            }
            """)),
        ["QG0006 result discarded"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "conv1.forward(x); //<-",
                "return dequant.forward(x);"))),
        ["QG0006 functional call"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "var y = torch.nn.functional.sigmoid(x); //<-",
                "return dequant.forward(y);"))),
        ["QG0006 result never used"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "var unused = conv2.forward(x); //<-",
                "x = conv1.forward(x);",
                "return dequant.forward(x);"))),
        ["QG0006 module that is not a member"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "return shared.forward(x); //<-")
            .Replace("public override", "private static readonly TorchSharp.Modules.ReLU shared = ReLU();\n    public override", System.StringComparison.Ordinal))),
        ["QG0007 unsupported module"] = ("QG0007", Samples.Model(
            Samples.SeedMembers + "\n    private readonly TorchSharp.Modules.Sigmoid gate = Sigmoid();\n" + Forward(
                "x = quant.forward(x);",
                "x = gate.forward(x); //<-",
                "return dequant.forward(x);"))),
        ["QG0008 no forward"] = ("QG0008", Samples.Model(
            "    public Bad() : base(nameof(Bad)) { }",
            header: "public abstract partial class Bad : Module<Tensor, Tensor> //<-")),
        ["QG0008 forward without body"] = ("QG0008", Samples.Model(
            "    public Bad() : base(nameof(Bad)) { }\n    public abstract override Tensor forward(Tensor x);",
            header: "public abstract partial class Bad : Module<Tensor, Tensor> //<-")),
        ["QG0009 module called twice"] = ("QG0009", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "x = conv1.forward(x);",
                "x = conv1.forward(x); //<-",
                "return dequant.forward(x);"))),
        ["QG0010 conv after dequant"] = ("QG0010", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "x = conv1.forward(x);",
                "x = dequant.forward(x);",
                "return conv2.forward(x); //<-"))),
        ["QG0010 conv before quant"] = ("QG0010", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = conv1.forward(x); //<-",
                "x = quant.forward(x);",
                "x = conv2.forward(x);",
                "return dequant.forward(x);"))),
        ["QG0011 dequant before quant"] = ("QG0011", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = dequant.forward(x);",
                "x = quant.forward(x); //<-",
                "return conv1.forward(x);"))),
        ["QG0011 two quant stubs"] = ("QG0011", Samples.Model(
            Samples.SeedMembers + "\n    private readonly QuantStub quant2 = new();\n" + Forward(
                "x = quant.forward(x);",
                "x = conv1.forward(x);",
                "x = quant2.forward(x); //<-",
                "return dequant.forward(x);"))),
        ["QG0012 batchnorm1d without a linear"] = ("QG0012", Samples.Model(
            Samples.SeedMembers + "\n    private readonly TorchSharp.Modules.BatchNorm1d bn = BatchNorm1d(1);\n" + Forward(
                "x = quant.forward(x);",
                "x = conv1.forward(x);",
                "x = bn.forward(x); //<-",
                "return dequant.forward(x);"))),
        ["QG0013 member in two groups"] = ("QG0013", Samples.Model(
            Samples.SeedMembers + "\n" + SeedForward,
            attributes: "[Quantize]\n[Fuse(nameof(conv1), nameof(relu))]\n[Fuse(nameof(conv2), nameof(relu))] //<-")),
        ["QG0014 unknown backend"] = ("QG0014", Samples.Model(
            Samples.SeedMembers + "\n" + SeedForward,
            attributes: "[Quantize((QuantBackend)7)] //<-")),
        ["QG0015 member named Prepare"] = ("QG0015", Samples.Model(
            Samples.SeedMembers + "\n    public void Prepare() { } //<-\n" + SeedForward)),
        ["QG0020 [Fuse] with a [NoQuantize] member"] = ("QG0020", Samples.Model(
            Samples.SeedMembers.Replace("private readonly TorchSharp.Modules.Conv2d conv1", "[NoQuantize] private readonly TorchSharp.Modules.Conv2d conv1") + "\n" + SeedForward,
            attributes: "[Quantize]\n[Fuse(nameof(conv1), nameof(relu))] //<-")),
        ["QG0024 class that contains itself"] = ("QG0024", Samples.Model(
            "    private readonly QuantStub quant = new();\n    private readonly Bad inner = null!;\n    private readonly DeQuantStub dequant = new();\n    public Bad() : base(nameof(Bad)) => RegisterComponents();\n"
            + Forward("x = quant.forward(x);", "x = inner.forward(x);", "return dequant.forward(x);"),
            header: "public partial class Bad : Module<Tensor, Tensor> //<-")),
        ["QG0024 class that contains itself through a Sequential"] = ("QG0024", Samples.Model(
            "    private readonly QuantStub quant = new();\n    private readonly TorchSharp.Modules.Sequential body = Sequential(ReLU(), new Bad());\n    private readonly DeQuantStub dequant = new();\n    public Bad() : base(nameof(Bad)) => RegisterComponents();\n"
            + Forward("x = quant.forward(x);", "x = body.forward(x);", "return dequant.forward(x);"),
            header: "public partial class Bad : Module<Tensor, Tensor> //<-")),
        ["QG0025 file-local class"] = ("QG0025", Samples.Model(
            Samples.SeedMembers + "\n" + SeedForward,
            header: "file partial class Bad : Module<Tensor, Tensor> //<-")),
        ["QG0021 [NoQuantize] on a QuantStub"] = ("QG0021", Samples.Model(
            Samples.SeedMembers.Replace("private readonly QuantStub quant", "[NoQuantize] private readonly QuantStub quant") + "\n" + Forward(
                "x = quant.forward(x); //<-",
                "x = conv1.forward(x);",
                "x = relu.forward(x);",
                "x = conv2.forward(x);",
                "x = dequant.forward(x);",
                "return x;"))),
    };

    /// <summary>Rules that are not errors; FusionDiagnosticTests covers them.</summary>
    private static readonly string[] NonErrorRules = { "QG0018", "QG0019", "QG0022", "QG0023", "QG0026" }; // QG0022/QG0023: Binding/CaptureDiagnosticTests; QG0026: RecurrentCallCaptureTests

    public static TheoryData<string> BadSampleNames() => new(BadSamples.Keys);

    [Theory]
    [MemberData(nameof(BadSampleNames))]
    public void RuleFiresOnItsBadSampleAtTheMarkedLine(string name)
    {
        (string id, SourceFile source) = BadSamples[name];

        GeneratorRun run = GeneratorHarness.Run(source);

        Assert.Null(run.Result.Exception);
        Diagnostic diagnostic = Assert.Single(run.GeneratorDiagnostics, d => d.Id == id);
        Assert.Equal(source.LineOf(Samples.Marker), diagnostic.Location.GetLineSpan().StartLinePosition.Line);
        Assert.Equal(source.Path, diagnostic.Location.GetLineSpan().Path);
        Assert.Equal(DiagnosticSeverity.Error, diagnostic.Severity);
        Assert.Equal(new System.Uri(GeneratorHarness.DiagnosticsDocumentation()).AbsoluteUri + "#" + id.ToLowerInvariant(), diagnostic.Descriptor.HelpLinkUri);

        // A model with an error gets no generated code (it would not mean what the user wrote); a plain module
        // class beside it still gets its captured forward registered, which is not model code.
        Assert.Empty(run.Result.GeneratedSources.Where(s => !s.HintName.StartsWith("QuantGenCaptured_", System.StringComparison.Ordinal)));
    }

    [Theory]
    [MemberData(nameof(GeneratedCodeCompilesTests.GoodModels), MemberType = typeof(GeneratedCodeCompilesTests))]
    public void NoRuleFiresOnAGoodModel(string path)
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Good.Single(s => s.Path == path));

        Assert.True(run.Problems().IsEmpty, GeneratorHarness.Describe(run.Problems()));
    }

    [Fact]
    public void EveryRuleHasABadSampleAndADocumentedSection()
    {
        string[] catalog = QuantGen.Generator.Diagnostics.DiagnosticDescriptors.All.Select(d => d.Id).OrderBy(i => i, System.StringComparer.Ordinal).ToArray();
        string[] sampled = BadSamples.Values.Select(s => s.Id).Append("QG9999").Concat(NonErrorRules).Distinct().OrderBy(i => i, System.StringComparer.Ordinal).ToArray();
        Assert.Equal(catalog, sampled);

        string docs = System.IO.File.ReadAllText(RepositoryFile("docs/diagnostics.md"));
        string releases = System.IO.File.ReadAllText(RepositoryFile("src/QuantGen.Generator/AnalyzerReleases.Unshipped.md"));
        foreach (string id in catalog)
        {
            Assert.Contains($"<a id=\"{id.ToLowerInvariant()}\"></a>", docs, System.StringComparison.Ordinal);
            Assert.Contains($"## {id} — ", docs, System.StringComparison.Ordinal);
            Assert.Contains($"{id} | QuantGen |", releases, System.StringComparison.Ordinal);
        }
    }

    [Fact]
    public void MessagesNameTheClassAndTheMember()
    {
        (_, SourceFile source) = BadSamples["QG0007 unsupported module"];
        Diagnostic diagnostic = GeneratorHarness.Run(source).GeneratorDiagnostics.Single(d => d.Id == "QG0007");

        Assert.Equal(
            "'Bad.gate' is a 'TorchSharp.Modules.Sigmoid', which QuantGen cannot quantize; supported module types are TorchSharp.Modules.Conv2d, ConvTranspose2d, BatchNorm2d, BatchNorm1d (after a Linear), ReLU, Linear, Identity, Dropout, Flatten, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Upsample, Sequential, [Quantize] classes and QuantGen.Modules.QuantStub/DeQuantStub; if it is your own module class, mark it [Quantize] (and partial) so QuantGen inlines its forward; without QuantStub/DeQuantStub, [Fuse] and [QConfig] on the class, QuantGen binds it at Prepare instead, where any module is taken (your own module classes are inlined, modules without an int8 op run in float)",
            diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
    }

    private static string RepositoryFile(string relative, [System.Runtime.CompilerServices.CallerFilePath] string thisFile = "") =>
        System.IO.Path.Combine(System.IO.Path.GetDirectoryName(thisFile)!, "..", "..", "..", relative);
}
