using System.Linq;
using Microsoft.CodeAnalysis;

namespace QuantGen.Tests.Generator;

/// <summary>
/// Module calls that return a tuple (an LSTM's (output, h_n, c_n)): taken apart or read with .ItemN they are captured
/// as one element each (elements never read are dropped); what is not captured is reported at its line, and the
/// generated code always compiles (it once did not: <c>lstm.forward(x).Item1</c> became a tensor-valued call followed by
/// <c>.Item1</c> on a tensor, CS1061 in the user's build).
/// </summary>
public sealed class RecurrentCallCaptureTests
{
    private const string Members = """
            private readonly TorchSharp.Modules.LSTM lstm = LSTM(4, 4);
            private readonly Module<Tensor, Tensor> head = Linear(4, 4);
            private readonly (Tensor, Tensor)? state = null;
            public Bad() : base(nameof(Bad)) => RegisterComponents();
        """;

    [Theory]
    [InlineData("public override Tensor forward(Tensor x) => head.forward(lstm.forward(x).Item1);", 1)]
    [InlineData("public override Tensor forward(Tensor x) { var y = lstm.forward(x).Item1; return head.forward(y); }", 1)]
    [InlineData("public override Tensor forward(Tensor x) { var (o, h, c) = lstm.forward(x); return head.forward(h[-1]); }", 1)]
    [InlineData("public override Tensor forward(Tensor x) { (Tensor o, _, Tensor c) = lstm.call(x, null); return head.forward(o + c); }", 2)]
    [InlineData("public override Tensor forward(Tensor x) { var r = lstm.forward(x); return head.forward(r.Item1[.., -1] + r.Item3[0]); }", 2)]
    [InlineData("public override Tensor forward(Tensor x) { (x, _, _) = lstm.forward(x); return head.forward(x); }", 1)]
    [InlineData("public override Tensor forward(Tensor x) { var h0 = torch.zeros(1, 4); var (o, h, c) = lstm.forward(x, (h0, h0 * 2)); return head.forward(o + c); }", 2)]
    public void A_tuple_taken_apart_is_captured_one_element_each(string forward, int elements)
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(Members + forward));
        Assert.Empty(run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        string capture = string.Join("\n", run.AllSources.Values);
        Assert.Equal(elements, capture.Split("CapturedOp.CallItem").Length - 1);

        // The LSTM's float-or-dynamic choice is the mapping's, made at Prepare: an info at the call, not a warning.
        Diagnostic info = Assert.Single(run.GeneratorDiagnostics, d => d.Id == "QG0026");
        Assert.Equal(DiagnosticSeverity.Info, info.Severity);
        Assert.Contains("QConfig.Dynamic() for it in the QConfigMapping makes it PyTorch's dynamic int8 LSTM", info.GetMessage(), System.StringComparison.Ordinal);
        Assert.DoesNotContain(run.GeneratorDiagnostics, d => d.Id == "QG0023" && d.GetMessage().Contains("lstm", System.StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("public override Tensor forward(Tensor x) { var (o, h, c) = lstm.forward(x, state); return head.forward(o); }", "the initial state is captured when written as a tensor (a GRU's h0) or a pair '(h0, c0)'")]
    [InlineData("public override Tensor forward(Tensor x) { var r = (x, x.relu()); return head.forward(r.Item2); }", "holds a tuple that is not a module call's result")]
    public void What_is_not_captured_is_an_error_at_its_line_and_the_output_compiles(string forward, string reason)
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(Members + forward));
        Diagnostic[] errors = run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();
        Assert.NotEmpty(errors);
        Assert.All(errors, e => Assert.Equal("QG0006", e.Id));
        Assert.Contains(reason, errors[0].GetMessage(), System.StringComparison.Ordinal);
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
    }
}
