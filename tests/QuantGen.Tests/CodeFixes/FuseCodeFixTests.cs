using System.Linq;
using System.Threading.Tasks;
using QuantGen.CodeFixes;

namespace QuantGen.Tests.CodeFixes;

/// <summary>The [Fuse] fixes: remove an entry, reorder the entries, or remove the attribute, whichever leaves no [Fuse] error.</summary>
public class FuseCodeFixTests
{
    /// <summary>The seed's class (stubs, conv1 → relu → conv2) under <paramref name="attributes"/>, with <paramref name="forward"/>.</summary>
    private static string Model(string attributes, string forward = "x = quant.forward(x);\n        x = conv1.forward(x);\n        x = relu.forward(x);\n        x = conv2.forward(x);\n        return dequant.forward(x);") => $$"""
        using QuantGen;
        using QuantGen.Modules;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        {{attributes}}
        public partial class M : Module<Tensor, Tensor>
        {
            private readonly QuantStub quant = new();
            private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
            private readonly TorchSharp.Modules.ReLU relu = ReLU();
            private readonly TorchSharp.Modules.Conv2d conv2 = Conv2d(1, 1, 1);
            private readonly DeQuantStub dequant = new();
            public M() : base(nameof(M)) => RegisterComponents();
            public override Tensor forward(Tensor x)
            {
                {{forward}}
            }
        }
        """;

    [Fact]
    public Task RemovesAnUnknownEntryWhenTheRestIsASupportedSequence() => CodeFixVerifier<FuseCodeFixProvider>.VerifyAsync(
        Model("[Quantize]\n[Fuse(nameof(conv1), {|QG0003:\"bn\"|}, nameof(relu))]"),
        Model("[Quantize]\n[Fuse(nameof(conv1), nameof(relu))]"));

    [Fact]
    public Task RemovesTheAttributeWhenWhatRemainsIsASingleModule() => CodeFixVerifier<FuseCodeFixProvider>.VerifyAsync(
        Model("/// <summary>The seed model.</summary>\n[Quantize]\n[Fuse(nameof(conv1), {|QG0003:\"relux\"|})]"),
        Model("/// <summary>The seed model.</summary>\n[Quantize]"));

    [Fact]
    public Task ReordersIntoTheOrderForwardCallsThem() => CodeFixVerifier<FuseCodeFixProvider>.VerifyAsync(
        Model("[Quantize]\n[{|QG0005:Fuse(nameof(relu), nameof(conv1))|}]"),
        Model("[Quantize]\n[Fuse(nameof(conv1), nameof(relu))]"));

    [Fact]
    public Task RemovesASequenceThatNoOrderMakesFusable() => CodeFixVerifier<FuseCodeFixProvider>.VerifyAsync(
        Model("[Quantize, {|QG0005:Fuse(nameof(conv1), nameof(conv2))|}]"),
        Model("[Quantize]"));

    [Fact]
    public Task RemovesTheSecondGroupOfAMemberFusedTwice() => CodeFixVerifier<FuseCodeFixProvider>.VerifyAsync(
        Model("[Quantize]\n[Fuse(nameof(conv1), nameof(relu))]\n[Fuse(nameof(conv2), {|QG0013:nameof(relu)|})]"),
        Model("[Quantize]\n[Fuse(nameof(conv1), nameof(relu))]"));

    [Fact]
    public Task RemovesAGroupWhoseModulesDoNotFollowEachOther() => CodeFixVerifier<FuseCodeFixProvider>.VerifyAsync(
        Model(
            "[Quantize]\n[Fuse(nameof(conv1), nameof(relu))]",
            "x = quant.forward(x);\n        x = conv1.forward(x);\n        x = conv2.forward(x);\n        x = {|QG0004:relu.forward(x)|};\n        return dequant.forward(x);"),
        Model(
            "[Quantize]",
            "x = quant.forward(x);\n        x = conv1.forward(x);\n        x = conv2.forward(x);\n        x = relu.forward(x);\n        return dequant.forward(x);"));

    [Fact]
    public async Task OffersNoReorderThatForwardsOrderWouldBreakNorAnEntryRemovalThatLeavesNoGroup()
    {
        // relu, conv2 in that order is not a sequence, and conv2, relu is not the order forward calls them (QG0004 next).
        var reversed = await OfferedFixes.ForAsync<FuseCodeFixProvider>(Model("[Quantize]\n[Fuse(nameof(relu), nameof(conv2))]"));
        var only = Assert.Single(reversed);
        Assert.Equal("QG0005", only.Id);
        Assert.Equal(new[] { "Remove [Fuse(relu, conv2)]" }, only.Titles);

        // Without "relux", conv1 alone is no group: the attribute goes, not the entry.
        var single = await OfferedFixes.ForAsync<FuseCodeFixProvider>(Model("[Quantize]\n[Fuse(nameof(conv1), \"relux\")]"));
        Assert.Equal(new[] { "Remove [Fuse(conv1, relux)]" }, Assert.Single(single).Titles);

        // Names in one array argument cannot be removed one by one: only the attribute can go.
        var array = await OfferedFixes.ForAsync<FuseCodeFixProvider>(Model("[Quantize]\n[Fuse(new[] { nameof(conv1), \"bn\", nameof(relu) })]"));
        Assert.Equal("QG0003", Assert.Single(array).Id);
        Assert.Equal(new[] { "Remove [Fuse(new[] { nameof(conv1), \"bn\", nameof(relu) })]" }, array.Single().Titles);
    }
}
