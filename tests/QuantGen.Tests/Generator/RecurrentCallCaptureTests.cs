using System.Linq;
using Microsoft.CodeAnalysis;

namespace QuantGen.Tests.Generator;

/// <summary>
/// A module call that returns something other than one tensor (an LSTM's (output, h_n, c_n)) is reported at its line
/// and never turned into generated code that does not compile (it once was: <c>lstm.forward(x).Item1</c> became a
/// tensor-valued call followed by <c>.Item1</c> on a tensor, CS1061 in the user's build).
/// </summary>
public sealed class RecurrentCallCaptureTests
{
    private const string Members = """
            private readonly TorchSharp.Modules.LSTM lstm = LSTM(4, 4);
            private readonly Module<Tensor, Tensor> head = Linear(4, 4);
            public Bad() : base(nameof(Bad)) => RegisterComponents();
        """;

    [Theory]
    [InlineData("public override Tensor forward(Tensor x) => head.forward(lstm.forward(x).Item1);")]
    [InlineData("public override Tensor forward(Tensor x) { var y = lstm.forward(x).Item1; return head.forward(y); }")]
    public void A_tuple_returning_module_call_is_an_error_at_its_line_and_the_output_compiles(string forward)
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(Members + forward));
        Diagnostic[] errors = run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();
        // The call's line first; a later use of a variable it should have set is reported too, as for any uncaptured statement.
        Assert.NotEmpty(errors);
        Assert.All(errors, e => Assert.Equal("QG0006", e.Id));
        Assert.Contains("'lstm.forward(x)' returns (Tensor, Tensor, Tensor), not one tensor", errors[0].GetMessage(), System.StringComparison.Ordinal);
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
    }
}
