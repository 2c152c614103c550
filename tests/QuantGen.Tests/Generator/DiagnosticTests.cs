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
        ["QG0006 branch"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "if (x.shape[0] > 1) { x = conv1.forward(x); } //<-",
                "return dequant.forward(x);"))),
        ["QG0006 result discarded"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "conv1.forward(x); //<-",
                "return dequant.forward(x);"))),
        ["QG0006 functional call"] = ("QG0006", Samples.Model(
            Samples.SeedMembers + "\n" + Forward(
                "x = quant.forward(x);",
                "var y = torch.nn.functional.relu(x); //<-",
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
        ["QG0012 batchnorm not fused"] = ("QG0012", Samples.Model(
            Samples.SeedMembers + "\n    private readonly TorchSharp.Modules.BatchNorm2d bn = BatchNorm2d(1);\n" + Forward(
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
    };

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
        Assert.EndsWith("docs/diagnostics.md#" + id.ToLowerInvariant(), diagnostic.Descriptor.HelpLinkUri, System.StringComparison.Ordinal);

        // A model with an error gets no generated code (it would not mean what the user wrote).
        Assert.Empty(run.Result.GeneratedSources);
    }

    [Theory]
    [MemberData(nameof(GeneratedCodeCompilesTests.GoodModels), MemberType = typeof(GeneratedCodeCompilesTests))]
    public void NoRuleFiresOnAGoodModel(string path)
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Good.Single(s => s.Path == path));

        Assert.True(run.GeneratorDiagnostics.IsEmpty, GeneratorHarness.Describe(run.GeneratorDiagnostics));
    }

    [Fact]
    public void EveryRuleHasABadSampleAndADocumentedSection()
    {
        string[] catalog = QuantGen.Generator.Diagnostics.DiagnosticDescriptors.All.Select(d => d.Id).OrderBy(i => i, System.StringComparer.Ordinal).ToArray();
        string[] sampled = BadSamples.Values.Select(s => s.Id).Append("QG9999").Distinct().OrderBy(i => i, System.StringComparer.Ordinal).ToArray();
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
            "'Bad.gate' is a 'TorchSharp.Modules.Sigmoid', which QuantGen cannot quantize; supported member types are TorchSharp.Modules.Conv2d, BatchNorm2d (fused into a Conv2d), ReLU, Linear, Identity, Flatten and QuantGen.Modules.QuantStub/DeQuantStub",
            diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
    }

    private static string RepositoryFile(string relative, [System.Runtime.CompilerServices.CallerFilePath] string thisFile = "") =>
        System.IO.Path.Combine(System.IO.Path.GetDirectoryName(thisFile)!, "..", "..", "..", relative);
}
