using System.Threading.Tasks;
using QuantGen.CodeFixes;

namespace QuantGen.Tests.CodeFixes;

/// <summary>QG0007 on a member declared <c>Module&lt;Tensor, Tensor&gt;</c>: declared with the type it is assigned instead.</summary>
public class ConcreteTypeCodeFixTests
{
    private const string Usings = """
        using QuantGen;
        using QuantGen.Modules;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        """;

    [Fact]
    public Task DeclaresAGeneralTypedMemberWithTheTypeItIsAssigned() => CodeFixVerifier<ConcreteTypeCodeFixProvider>.VerifyAsync(
        Usings + """
        [Quantize]
        public partial class M : Module<Tensor, Tensor>
        {
            private readonly QuantStub quant = new();
            private readonly Module<Tensor, Tensor> conv1;
            private readonly DeQuantStub dequant = new();
            public M() : base(nameof(M))
            {
                conv1 = Conv2d(1, 1, 1);
                RegisterComponents();
            }
            public override Tensor forward(Tensor x) => dequant.forward({|QG0007:conv1.forward(quant.forward(x))|});
        }
        """,
        Usings + """
        [Quantize]
        public partial class M : Module<Tensor, Tensor>
        {
            private readonly QuantStub quant = new();
            private readonly TorchSharp.Modules.Conv2d conv1;
            private readonly DeQuantStub dequant = new();
            public M() : base(nameof(M))
            {
                conv1 = Conv2d(1, 1, 1);
                RegisterComponents();
            }
            public override Tensor forward(Tensor x) => dequant.forward(conv1.forward(quant.forward(x)));
        }
        """);

    [Fact]
    public async Task IsNotOfferedWhenTheMemberIsAssignedDifferentTypes()
    {
        var offered = await OfferedFixes.ForAsync<ConcreteTypeCodeFixProvider>(Usings + """
            [Quantize]
            public partial class M : Module<Tensor, Tensor>
            {
                private readonly QuantStub quant = new();
                private readonly Module<Tensor, Tensor> body;
                private readonly DeQuantStub dequant = new();
                public M(bool linear) : base(nameof(M))
                {
                    if (linear) body = Linear(4, 4); else body = Conv2d(1, 1, 1);
                    RegisterComponents();
                }
                public override Tensor forward(Tensor x) => dequant.forward(body.forward(quant.forward(x)));
            }
            """);

        var only = Assert.Single(offered);
        Assert.Equal("QG0007", only.Id);
        Assert.Empty(only.Titles);
    }

    [Fact]
    public async Task IsNotOfferedWhenTheAssignedTypeHasNoInt8Op()
    {
        // Declaring it Sigmoid would keep QG0007.
        var offered = await OfferedFixes.ForAsync<ConcreteTypeCodeFixProvider>(Usings + """
            [Quantize]
            public partial class M : Module<Tensor, Tensor>
            {
                private readonly QuantStub quant = new();
                private readonly Module<Tensor, Tensor> gate = Sigmoid();
                private readonly DeQuantStub dequant = new();
                public M() : base(nameof(M)) => RegisterComponents();
                public override Tensor forward(Tensor x) => dequant.forward(gate.forward(quant.forward(x)));
            }
            """);

        Assert.Empty(Assert.Single(offered).Titles);
    }

    [Fact]
    public async Task WithoutStubsTheBoundFormTakesTheGeneralTypeAndNothingFires()
    {
        // The same member in a class without stubs, [Fuse] or [QConfig] is bound at Prepare: no QG0007, no fix needed.
        var offered = await OfferedFixes.ForAsync<ConcreteTypeCodeFixProvider>(Usings + """
            [Quantize]
            public partial class M : Module<Tensor, Tensor>
            {
                private readonly Module<Tensor, Tensor> conv1;
                public M() : base(nameof(M))
                {
                    conv1 = Conv2d(1, 1, 1);
                    RegisterComponents();
                }
                public override Tensor forward(Tensor x) => conv1.forward(x);
            }
            """);

        Assert.Empty(offered);
    }
}
