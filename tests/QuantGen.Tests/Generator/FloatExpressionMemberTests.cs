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

    [Fact]
    public void A_number_computed_from_tensor_sizes_is_written_out_over_the_tensor_as_it_was_when_declared()
    {
        const string body = """
                private readonly Module<Tensor, Tensor> head = Linear(4, 4);
                public Bad() : base(nameof(Bad)) => RegisterComponents();
                public override Tensor forward(Tensor x)
                {
                    long n = x.shape[1];
                    var half = n / 2 + System.Math.Max(x.size(0), 1);
                    x = head.forward(x);
                    return x * (float)half;
                }
            """;
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(body));
        Assert.True(!run.GeneratorDiagnostics.Any(d => d.Severity == DiagnosticSeverity.Error), string.Join("\n", run.GeneratorDiagnostics));
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        string capture = string.Join("\n", run.AllSources.Values);

        // x after head (value 1) is v[0]; the x that n and half read is the input (value 0), v[1].
        Assert.True(capture.Contains("new int[] { 1, 0 }", System.StringComparison.Ordinal), capture);
        Assert.True(capture.Contains("v[0] * (float)((v[1].shape[1]) / 2 + System.Math.Max(v[1].size(0), 1))", System.StringComparison.Ordinal), capture);
    }

    [Fact]
    public void A_number_that_is_not_size_arithmetic_is_still_refused_at_its_line()
    {
        const string body = """
                private readonly Module<Tensor, Tensor> head = Linear(4, 4);
                public Bad() : base(nameof(Bad)) => RegisterComponents();
                public override Tensor forward(Tensor x)
                {
                    int seed = new System.Random().Next();
                    return head.forward(x) * (float)seed;
                }
            """;
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(body));
        Diagnostic error = Assert.Single(run.GeneratorDiagnostics, d => d.Severity == DiagnosticSeverity.Error);
        Assert.Contains("neither a tensor computed in forward nor a number computed from tensor sizes", error.GetMessage(), System.StringComparison.Ordinal);
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
    }

    [Theory]
    [InlineData("", true)]
    [InlineData("#pragma warning disable QG0023", false)]
    [InlineData("#pragma warning disable", false)]
    [InlineData("#pragma warning disable QG0023\n#pragma warning restore QG0023", true)]
    [InlineData("#pragma warning disable CS0168, qg0023", false)]
    public void A_pragma_before_the_expression_silences_its_QG0023(string pragma, bool reported)
    {
        string body = $$"""
                private readonly Module<Tensor, Tensor> head = Linear(4, 4);
                public Bad() : base(nameof(Bad)) => RegisterComponents();
            {{pragma}}
                public override Tensor forward(Tensor x) => head.forward(x.permute(1, 0));
            """;
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(body));

        // The locations are rebuilt from plain data, outside the compiler's pragma handling: the generator reads them itself.
        Assert.Equal(reported, run.GeneratorDiagnostics.Any(d => d.Id == "QG0023"));
    }
}
