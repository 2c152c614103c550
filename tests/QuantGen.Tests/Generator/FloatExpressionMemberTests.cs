using System.Linq;
using Microsoft.CodeAnalysis;

namespace QuantGen.Tests.Generator;

/// <summary>
/// A float expression of forward may name the class's consts and static members unqualified, as C# lets the class
/// itself do; the generated registration class sits outside the class, so they are inlined (consts) or qualified
/// (the rest). Before, <c>torch.zeros(1, x.shape[0], Hidden)</c> gave CS0103 in the user's build.
/// </summary>
public sealed class FloatExpressionMemberTests
{
    [Theory]
    [InlineData("private const int Hidden = 4;", "torch.zeros(1, x.shape[0], Hidden) + x")]
    [InlineData("public const float Scale = 0.5f;", "x / Scale")]
    [InlineData("internal static float Factor => 3f;", "x * Factor - 1")]
    [InlineData("internal static Tensor Halve(Tensor t) => t / 2;", "Halve(x).exp()")]
    [InlineData("internal static readonly long[] Dims = { 1 };", "x.sum(Dims, keepdim: true).expand_as(x)")]
    public void Consts_and_static_members_read_unqualified_compile_in_the_capture(string member, string expression)
    {
        string body = $$"""
                {{member}}
                private readonly Module<Tensor, Tensor> head = Linear(4, 4);
                public Bad() : base(nameof(Bad)) => RegisterComponents();
                public override Tensor forward(Tensor x) => head.forward({{expression}});
            """;
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(body));
        Assert.Empty(run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        Assert.Contains("CapturedOp.Float", string.Join("\n", run.AllSources.Values), System.StringComparison.Ordinal);
    }
}
