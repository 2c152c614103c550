using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using QuantGen.Generator;
using QuantGen.Generator.Diagnostics;

namespace QuantGen.Tests.Generator;

/// <summary>The generator never throws: broken code while the user types gives diagnostics or nothing.</summary>
public class RobustnessTests
{
    private static readonly Dictionary<string, string> Malformed = new()
    {
        ["incomplete class"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    private readonly TorchSharp.Modules.ReLU relu = ReLU();\n    public override Tensor forward(Tensor x)\n    {\n        x = relu.forward(x",
        ["class header only"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>",
        ["syntax error in forward"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    private readonly TorchSharp.Modules.ReLU relu = ReLU();\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x)\n    {\n        x = relu.forward(x;\n        x = ).forward(;\n        return x\n    }\n}",
        ["missing forward"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n}",
        ["forward without body"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x);\n}",
        ["forward without return"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    private readonly TorchSharp.Modules.ReLU relu = ReLU();\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x)\n    {\n        x = relu.forward(x);\n    }\n}",
        ["forward with two parameters"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n    public Tensor forward(Tensor x, Tensor y) => x;\n}",
        ["quantize with a string"] = "[Quantize(\"fast\")]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => x;\n}",
        ["quantize with two arguments"] = "[Quantize(QuantBackend.X86, QuantBackend.Qnnpack)]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => x;\n}",
        ["fuse with numbers"] = "[Quantize]\n[Fuse(1, 2)]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => x;\n}",
        ["fuse with a null array"] = "[Quantize]\n[Fuse(null)]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => x;\n}",
        ["fuse with a null name"] = "[Quantize]\n[Fuse((string)null, \"relu\")]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => x;\n}",
        ["fuse with nothing"] = "[Quantize]\n[Fuse]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => x;\n}",
        ["unresolved base type"] = "[Quantize]\npublic partial class M : NoSuchModule<Tensor, Tensor>\n{\n    public override Tensor forward(Tensor x) => x;\n}",
        ["unresolved member type"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    private readonly NoSuchConv conv = new();\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => conv.forward(x);\n}",
        ["recursive forward"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => forward(x);\n}",
        ["duplicate members"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    private readonly TorchSharp.Modules.ReLU relu = ReLU();\n    private readonly TorchSharp.Modules.ReLU relu = ReLU();\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => relu.forward(x);\n}",
        ["two forwards"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    private readonly TorchSharp.Modules.ReLU relu = ReLU();\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => relu.forward(x);\n    public override Tensor forward(Tensor x) => x;\n}",
        ["identity only"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => x;\n}",
        ["deeply nested calls"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    private readonly TorchSharp.Modules.Identity id = Identity();\n    public M() : base(\"M\") { }\n    public override Tensor forward(Tensor x) => " + string.Concat(Enumerable.Repeat("id.forward(", 400)) + "x" + new string(')', 400) + ";\n}",
        ["quantize on two parts of the class"] = "[Quantize]\npublic partial class M : Module<Tensor, Tensor>\n{\n    public M() : base(\"M\") { }\n}\n[Quantize]\npublic partial class M\n{\n    public override Tensor forward(Tensor x) => x;\n}",
        ["attribute on a struct"] = "[Quantize]\npublic partial struct S\n{\n}",
        ["attribute on a record"] = "[Quantize]\npublic partial record R;",
        ["attribute on a method"] = "public partial class C\n{\n    [Quantize] public void M() { }\n}",
    };

    public static TheoryData<string> MalformedNames() => new(Malformed.Keys);

    [Theory]
    [MemberData(nameof(MalformedNames))]
    public void MalformedCodeNeverThrows(string name)
    {
        SourceFile source = new("M.cs", Samples.Usings + Malformed[name]);

        GeneratorRun run = GeneratorHarness.Run(source);

        Assert.Null(run.Result.Exception);
        // CS8784/CS8785: the driver's report of a generator that threw.
        Assert.DoesNotContain(run.GeneratorDiagnostics, d => d.Id is "CS8784" or "CS8785");
        // QG9999 is the guard's last resort: none of these inputs should need it.
        Assert.DoesNotContain(run.GeneratorDiagnostics, d => d.Id == "QG9999");
    }

    [Fact]
    public void IdentityOnlyModelGeneratesCodeThatReturnsTheQuantizedInput()
    {
        GeneratorRun run = GeneratorHarness.Run(new SourceFile("M.cs", Samples.Usings + Malformed["identity only"]));

        Assert.True(run.OutputProblems().IsEmpty, GeneratorHarness.Describe(run.OutputProblems()));
        Assert.Contains("return input;", run.Sources.Values.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public void QuantizeOnTwoPartsOfAClassGeneratesItOnce()
    {
        GeneratorRun run = GeneratorHarness.Run(new SourceFile("M.cs", Samples.Usings + Malformed["quantize on two parts of the class"]));

        Assert.Single(run.ModelSources);
        Assert.Empty(run.GeneratorDiagnostics);
    }

    [Fact]
    public void AnExceptionInAStageBecomesAnInternalErrorDiagnostic()
    {
        var location = new LocationInfo("M.cs", 10, 1, 2, 3, 2, 4);

        EquatableArray<DiagnosticInfo> reported = Guard.Run<EquatableArray<DiagnosticInfo>>(
            "M", location, () => throw new InvalidOperationException("boom\nsecond line"), d => d);

        DiagnosticInfo info = Assert.Single(reported);
        Diagnostic diagnostic = info.ToDiagnostic();
        Assert.Equal("QG9999", diagnostic.Id);
        Assert.Equal(2, diagnostic.Location.GetLineSpan().StartLinePosition.Line);
        string message = diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains("'M'", message, StringComparison.Ordinal);
        Assert.Contains("InvalidOperationException: boom second line", message, StringComparison.Ordinal);
    }

    [Fact]
    public void CancellationIsNotTurnedIntoADiagnostic()
    {
        Assert.Throws<OperationCanceledException>(() =>
            Guard.Run<int>("M", null, () => throw new OperationCanceledException(), _ => 0));
    }
}
