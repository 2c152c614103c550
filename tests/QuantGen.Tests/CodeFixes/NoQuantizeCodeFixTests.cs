using System.Linq;
using System.Threading.Tasks;
using QuantGen.CodeFixes;

namespace QuantGen.Tests.CodeFixes;

/// <summary>[NoQuantize] added where it turns a call the generated form cannot quantize into one float island, and removed where it cannot apply.</summary>
public class NoQuantizeCodeFixTests
{
    private const string Usings = """
        using QuantGen;
        using QuantGen.Modules;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        """;

    /// <summary>An eager-mode class (stubs keep the generated form) with <paramref name="members"/> and <paramref name="forward"/>.</summary>
    private static string Model(string members, string forward) => Usings + $$"""
        [Quantize]
        public partial class M : Module<Tensor, Tensor>
        {
            private readonly QuantStub quant = new();
            private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
        {{members}}
            private readonly DeQuantStub dequant = new();
            public M() : base(nameof(M)) => RegisterComponents();
            public override Tensor forward(Tensor x)
            {
                x = quant.forward(x);
                x = conv1.forward(x);
                {{forward}}
                return dequant.forward(x);
            }
        }
        """;

    [Fact]
    public Task KeepsASequentialWithModulesWithoutAnInt8OpInFloat() => CodeFixVerifier<AddNoQuantizeCodeFixProvider>.VerifyAsync(
        // Two children without an int8 op: two diagnostics, one attribute (also when fixed all at once).
        Model(
            "    // The head.\n    private readonly TorchSharp.Modules.Sequential head = Sequential(Sigmoid(), Tanh());",
            "x = {|QG0007:{|QG0007:head.forward(x)|}|};"),
        Model(
            "    // The head.\n    [NoQuantize] private readonly TorchSharp.Modules.Sequential head = Sequential(Sigmoid(), Tanh());",
            "x = head.forward(x);"));

    [Fact]
    public Task KeepsASequentialWhoseContentsCannotBeSeenInFloat() => CodeFixVerifier<AddNoQuantizeCodeFixProvider>.VerifyAsync(
        Model(
            "    [System.Obsolete(\"kept\")]\n    private readonly TorchSharp.Modules.Sequential body = Sequential(Build());\n    private static torch.nn.Module<Tensor, Tensor>[] Build() => new[] { ReLU() };",
            "x = {|QG0017:body.forward(x)|};"),
        Model(
            "    [System.Obsolete(\"kept\")]\n    [NoQuantize] private readonly TorchSharp.Modules.Sequential body = Sequential(Build());\n    private static torch.nn.Module<Tensor, Tensor>[] Build() => new[] { ReLU() };",
            "x = body.forward(x);"));

    [Fact]
    public async Task IsNotOfferedOnAModuleTypeThatCannotBeAFloatIsland()
    {
        // [NoQuantize] on a Sigmoid member would only turn QG0007 into QG0021.
        var offered = await OfferedFixes.ForAsync<AddNoQuantizeCodeFixProvider>(Model(
            "    private readonly TorchSharp.Modules.Sigmoid gate = Sigmoid();",
            "x = gate.forward(x);"));

        var only = Assert.Single(offered);
        Assert.Equal("QG0007", only.Id);
        Assert.Empty(only.Titles);
    }

    [Fact]
    public Task RemovesNoQuantizeFromAQuantStub() => CodeFixVerifier<RemoveNoQuantizeCodeFixProvider>.VerifyAsync(
        Usings + """
        [Quantize]
        public partial class M : Module<Tensor, Tensor>
        {
            [NoQuantize]
            private readonly QuantStub quant = new();
            private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
            private readonly DeQuantStub dequant = new();
            public M() : base(nameof(M)) => RegisterComponents();
            public override Tensor forward(Tensor x) => dequant.forward(conv1.forward({|QG0021:quant.forward(x)|}));
        }
        """,
        Usings + """
        [Quantize]
        public partial class M : Module<Tensor, Tensor>
        {
            private readonly QuantStub quant = new();
            private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
            private readonly DeQuantStub dequant = new();
            public M() : base(nameof(M)) => RegisterComponents();
            public override Tensor forward(Tensor x) => dequant.forward(conv1.forward(quant.forward(x)));
        }
        """);

    [Fact]
    public Task RemovesNoQuantizeFromAFusedMember() => CodeFixVerifier<RemoveNoQuantizeCodeFixProvider>.VerifyAsync(
        Usings + """
        [Quantize]
        [Fuse(nameof(conv1), nameof(relu))]
        public partial class M : Module<Tensor, Tensor>
        {
            private readonly QuantStub quant = new();
            [System.Obsolete("kept"), NoQuantize] private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
            private readonly TorchSharp.Modules.ReLU relu = ReLU();
            private readonly DeQuantStub dequant = new();
            public M() : base(nameof(M)) => RegisterComponents();
            public override Tensor forward(Tensor x) => dequant.forward(relu.forward(conv1.forward(quant.forward(x))));
        }
        """.Replace("[Fuse(nameof(conv1), nameof(relu))]", "[Fuse({|QG0020:nameof(conv1)|}, nameof(relu))]"),
        Usings + """
        [Quantize]
        [Fuse(nameof(conv1), nameof(relu))]
        public partial class M : Module<Tensor, Tensor>
        {
            private readonly QuantStub quant = new();
            [System.Obsolete("kept")] private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
            private readonly TorchSharp.Modules.ReLU relu = ReLU();
            private readonly DeQuantStub dequant = new();
            public M() : base(nameof(M)) => RegisterComponents();
            public override Tensor forward(Tensor x) => dequant.forward(relu.forward(conv1.forward(quant.forward(x))));
        }
        """);

    [Fact]
    public async Task RemovalIsNotOfferedWhereItWouldOnlyTradeOneErrorForAnother()
    {
        // [NoQuantize] on a Sigmoid (QG0021, beside the QG0007 the Sigmoid itself gets): without the attribute the
        // QG0007 remains, so removing it fixes nothing; the remedy is another module or the bound form.
        var offered = await OfferedFixes.ForAsync<RemoveNoQuantizeCodeFixProvider>(Model(
            "    [NoQuantize] private readonly TorchSharp.Modules.Sigmoid gate = Sigmoid();",
            "x = gate.forward(x);"));

        Assert.Equal(new[] { "QG0007", "QG0021" }, offered.Select(o => o.Id).OrderBy(i => i));
        Assert.All(offered, o => Assert.Empty(o.Titles));
    }
}
