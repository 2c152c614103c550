using System.Threading.Tasks;
using QuantGen.CodeFixes;

namespace QuantGen.Tests.CodeFixes;

/// <summary>QG0001's fix: the [Quantize] class and the types around it become partial.</summary>
public class MakePartialCodeFixTests
{
    private const string Usings = """
        using QuantGen;
        using QuantGen.Modules;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        """;

    [Fact]
    public Task MakesTheClassPartial() => CodeFixVerifier<MakePartialCodeFixProvider>.VerifyAsync(
        Usings + """
        /// <summary>The user's model.</summary>
        [Quantize]
        public class {|QG0001:M|} : Module<Tensor, Tensor>
        {
            private readonly TorchSharp.Modules.ReLU relu = ReLU();
            public M() : base(nameof(M)) => RegisterComponents();
            public override Tensor forward(Tensor x) => relu.forward(x);
        }
        """,
        Usings + """
        /// <summary>The user's model.</summary>
        [Quantize]
        public partial class M : Module<Tensor, Tensor>
        {
            private readonly TorchSharp.Modules.ReLU relu = ReLU();
            public M() : base(nameof(M)) => RegisterComponents();
            public override Tensor forward(Tensor x) => relu.forward(x);
        }
        """);

    [Fact]
    public Task MakesEveryContainingTypePartialInOneFix() => CodeFixVerifier<MakePartialCodeFixProvider>.VerifyAsync(
        Usings + """
        public class {|QG0001:Outer|}
        {
            internal static partial class Middle
            {
                // The model.
                [Quantize]
                public sealed class {|QG0001:Inner|} : Module<Tensor, Tensor>
                {
                    private readonly TorchSharp.Modules.ReLU relu = ReLU();
                    public Inner() : base(nameof(Inner)) => RegisterComponents();
                    public override Tensor forward(Tensor x) => relu.forward(x);
                }
            }
        }
        """,
        Usings + """
        public partial class Outer
        {
            internal static partial class Middle
            {
                // The model.
                [Quantize]
                public sealed partial class Inner : Module<Tensor, Tensor>
                {
                    private readonly TorchSharp.Modules.ReLU relu = ReLU();
                    public Inner() : base(nameof(Inner)) => RegisterComponents();
                    public override Tensor forward(Tensor x) => relu.forward(x);
                }
            }
        }
        """);

    [Fact]
    public async Task IsNotOfferedForAFileLocalClassWhichPartialCannotHelp()
    {
        // QG0025: already partial, but a file-local type cannot have a part in the generated file.
        var offered = await OfferedFixes.ForAsync<MakePartialCodeFixProvider>(Usings + """
            [Quantize]
            file partial class M : Module<Tensor, Tensor>
            {
                private readonly TorchSharp.Modules.ReLU relu = ReLU();
                public M() : base(nameof(M)) => RegisterComponents();
                public override Tensor forward(Tensor x) => relu.forward(x);
            }
            """);

        var only = Assert.Single(offered);
        Assert.Equal("QG0025", only.Id);
        Assert.Empty(only.Titles);
    }

    [Fact]
    public async Task TitleNamesTheClass()
    {
        var offered = await OfferedFixes.ForAsync<MakePartialCodeFixProvider>(Usings + """
            public class Outer
            {
                [Quantize]
                public partial class Inner : Module<Tensor, Tensor>
                {
                    private readonly TorchSharp.Modules.ReLU relu = ReLU();
                    public Inner() : base(nameof(Inner)) => RegisterComponents();
                    public override Tensor forward(Tensor x) => relu.forward(x);
                }
            }
            """);

        Assert.Equal(new[] { "Make the types containing 'Inner' partial" }, Assert.Single(offered).Titles);
    }
}
