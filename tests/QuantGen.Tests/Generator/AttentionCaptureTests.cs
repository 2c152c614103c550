using System.Linq;
using Microsoft.CodeAnalysis;

namespace QuantGen.Tests.Generator;

/// <summary>
/// TorchSharp's MultiheadAttention called as users write it — deconstructed, read with <c>.Item1</c>, through
/// <c>forward</c> or <c>call</c>, with defaults or named arguments, on a member typed as the module or as its
/// <c>Module&lt;…, Tuple&lt;Tensor, Tensor&gt;&gt;</c> interface — is one CallItem node per element read whose Ints are
/// [element, 2, then the six slots: query, key, value, key_padding_mask, need_weights (−2 false, −3 true), attn_mask]; a
/// tensor given twice is one input. What is not captured is an error at its line, and the output always compiles.
/// </summary>
public sealed class AttentionCaptureTests
{
    private const string Members = """
            private readonly TorchSharp.Modules.MultiheadAttention attention = MultiheadAttention(8, 2);
            private readonly Module<Tensor, Tensor, Tensor, Tensor?, bool, Tensor?, System.Tuple<Tensor, Tensor>> typed = MultiheadAttention(8, 2);
            private readonly Module<Tensor, Tensor> memory = Linear(8, 8);
            private readonly Module<Tensor, Tensor> head = Linear(8, 4);
            public Bad() : base(nameof(Bad)) => RegisterComponents();
        """;

    /// <summary>The sample model, with <c>using System;</c> for the extension that deconstructs a <c>System.Tuple</c>.</summary>
    private static SourceFile Model(string forward)
    {
        SourceFile model = Samples.Model(Members + forward);
        return model with { Text = "using System;\n" + model.Text };
    }

    [Theory]
    [InlineData("public override Tensor forward(Tensor x) { var (a, _) = attention.call(x, x, x, null, false, null); return head.forward(a); }", "0, 2, 0, 0, 0, -1, -2, -1")]
    [InlineData("public override Tensor forward(Tensor x) => head.forward(attention.forward(x, x, x, null, true, null).Item1);", "0, 2, 0, 0, 0, -1, -3, -1")]
    [InlineData("public override Tensor forward(Tensor x) { Tensor k = memory.forward(x); Tensor a = attention.call(x, k, k).Item1; return head.forward(a); }", "0, 2, 0, 1, 1, -1, -3, -1")]
    [InlineData("public override Tensor forward(Tensor x) { Tensor k = memory.forward(x); Tensor pad = x.sum(-1).eq(0).t(); var r = attention.call(x, k, k, key_padding_mask: pad, need_weights: false); return head.forward(r.Item1); }", "0, 2, 0, 1, 1, 2, -2, -1")]
    [InlineData("public override Tensor forward(Tensor x) { Tensor mask = torch.zeros(3, 3); var (a, w) = typed.call(x, x, x, null, true, mask); return head.forward(a + w); }", "1, 2, 0, 0, 0, -1, -3, 1")]
    public void An_attention_call_is_captured_with_its_slots(string forward, string ints)
    {
        GeneratorRun run = GeneratorHarness.Run(Model(forward));
        Assert.Empty(run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        string capture = string.Join("\n", run.AllSources.Values);
        Assert.Contains("CapturedOp.CallItem", capture, System.StringComparison.Ordinal);
        Assert.Contains($"Ints: new int[] {{ {ints} }}", capture, System.StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("public override Tensor forward(Tensor x) { bool weights = x.dim() > 2; var (a, _) = attention.call(x, x, x, null, weights, null); return head.forward(a); }", "'need_weights' is a constant")]
    [InlineData("public override Tensor forward(Tensor x) => head.forward(attention.call(x, x, null).Item1);", "'value' takes a tensor, not null")]
    [InlineData("public override Tensor forward(Tensor x) { var (a, w) = attention.call(x, x, x, null, false, null); return head.forward(a + w); }", "passes need_weights: false, so its second element")]
    [InlineData("public override Tensor forward(Tensor x) => head.forward(attention.call(x, x, x, need_weights: false).Item2);", "passes need_weights: false, so its second element")]
    public void An_attention_call_that_is_not_captured_is_an_error_at_its_line_and_the_output_compiles(string forward, string reason)
    {
        GeneratorRun run = GeneratorHarness.Run(Model(forward));
        Diagnostic[] errors = run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();
        Assert.NotEmpty(errors);
        Assert.All(errors, e => Assert.Equal("QG0006", e.Id));
        Assert.Contains(errors, e => e.GetMessage().Contains(reason, System.StringComparison.Ordinal));
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
    }

    [Fact]
    public void An_attention_call_is_told_its_dynamic_form()
    {
        GeneratorRun run = GeneratorHarness.Run(Model("public override Tensor forward(Tensor x) { var (a, _) = attention.call(x, x, x, null, false, null); return head.forward(a); }"));
        Diagnostic info = Assert.Single(run.GeneratorDiagnostics, d => d.Id == "QG0026");
        Assert.Contains("QConfig.Dynamic() for it in the QConfigMapping gives it dynamic int8 projections (scores and softmax stay float)", info.GetMessage(), System.StringComparison.Ordinal);
    }
}
