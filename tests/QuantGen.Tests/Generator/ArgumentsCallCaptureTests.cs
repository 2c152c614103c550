using System.Linq;
using Microsoft.CodeAnalysis;

namespace QuantGen.Tests.Generator;

/// <summary>
/// Module calls with more than one argument (<c>layer.call(x, null, padding)</c>, a user's <c>Module&lt;Tensor, Tensor,
/// Tensor&gt;</c>): captured when every parameter is a tensor, each argument a tensor or null, matched to the parameters
/// by position or name; in a loop the further arguments must not change inside it. What is not captured is an error at
/// its line, and the generated code always compiles.
/// </summary>
public sealed class ArgumentsCallCaptureTests
{
    private const string Members = """
            private readonly TorchSharp.Modules.ModuleList<TorchSharp.Modules.TransformerEncoderLayer> layers = new();
            private readonly TorchSharp.Modules.TransformerEncoderLayer encoder = TransformerEncoderLayer(8, 2, 16);
            private readonly TorchSharp.Modules.MultiheadAttention attention = MultiheadAttention(8, 2);
            private readonly Module<Tensor, Tensor, Tensor> pair = null!;
            private readonly Module<Tensor, Tensor> head = Linear(8, 4);
            public Bad() : base(nameof(Bad)) => RegisterComponents();
        """;

    [Theory]
    [InlineData("public override Tensor forward(Tensor x) { var padding = x.sum(-1).eq(0).t(); foreach (var layer in layers) x = layer.call(x, null, padding); return head.forward(x); }", "Loop", "0, -1, 1")]
    [InlineData("public override Tensor forward(Tensor x) { var padding = x.sum(-1).eq(0).t(); for (int i = 0; i < layers.Count; i++) { x = layers[i].call(x, null, padding); } return head.forward(x); }", "Loop", "0, -1, 1")]
    [InlineData("public override Tensor forward(Tensor x) => head.forward(encoder.call(x, torch.zeros(3, 3)));", "Call", "0, 1")]
    [InlineData("public override Tensor forward(Tensor x) { Tensor mask = torch.zeros(3, 3); return head.forward(encoder.call(x, src_key_padding_mask: mask, src_mask: null)); }", "Call", "0, -1, 1")]
    [InlineData("public override Tensor forward(Tensor x) => head.forward(pair.call(x, x.relu()));", "Call", "0, 1")]
    public void A_call_with_tensor_or_null_arguments_is_one_node_with_its_slots(string forward, string op, string slots)
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(Members + forward));
        Assert.Empty(run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        string capture = string.Join("\n", run.AllSources.Values);
        Assert.Contains($"CapturedOp.{op}", capture, System.StringComparison.Ordinal);
        Assert.Contains($"Ints: new int[] {{ {slots} }}", capture, System.StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("public override Tensor forward(Tensor x) { foreach (var layer in layers) x = layer.call(x, null, x.sum(-1).eq(0)); return head.forward(x); }", "do not change inside the loop")]
    [InlineData("public override Tensor forward(Tensor x) => head.forward(attention.call(x, x, x, null, x.dim() > 2, null).Item1);", "'need_weights' is a constant")]
    [InlineData("public override Tensor forward(Tensor x) => head.forward(pair.call(null, x));", "passes null as the module's input")]
    public void What_is_not_captured_is_an_error_at_its_line_and_the_output_compiles(string forward, string reason)
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(Members + forward));
        Diagnostic[] errors = run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();
        Assert.NotEmpty(errors);
        Assert.All(errors, e => Assert.Equal("QG0006", e.Id));
        Assert.Contains(reason, errors[0].GetMessage(), System.StringComparison.Ordinal);
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
    }

    [Fact]
    public void A_transformer_encoder_layer_call_is_told_its_dynamic_form()
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(Members + "public override Tensor forward(Tensor x) => head.forward(encoder.call(x, null, null));"));
        Diagnostic info = Assert.Single(run.GeneratorDiagnostics, d => d.Id == "QG0026");
        Assert.Contains("QConfig.Dynamic() for it in the QConfigMapping gives it dynamic int8 projections", info.GetMessage(), System.StringComparison.Ordinal);
    }
}
