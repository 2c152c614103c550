using System.Linq;
using Microsoft.CodeAnalysis;
using QuantGen.Tests.Generator;

namespace QuantGen.Tests.Binding;

/// <summary>What the capture reports: everything wrong in a class in one build, at the line, in TorchSharp terms.</summary>
public sealed class CaptureDiagnosticTests
{
    private const string Members = """
            private readonly Module<Tensor, Tensor> conv = Conv2d(3, 4, 1);
            private readonly Module<Tensor, Tensor> head = Conv2d(4, 4, 1);
            public Bad() : base(nameof(Bad)) => RegisterComponents();
        """;

    [Fact]
    public void A_general_typed_model_gets_the_bound_form_with_an_info_and_compiles()
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(Members + """
                public override Tensor forward(Tensor x)
                {
                    using var scope = torch.NewDisposeScope();
                    x = conv.forward(x);
                    x = nn.functional.leaky_relu(x, 0.1);
                    return head.forward(x).MoveToOuterDisposeScope();
                }
            """));
        Assert.Contains(run.GeneratorDiagnostics, d => d.Id == "QG0022" && d.Severity == DiagnosticSeverity.Info);
        Diagnostic floatOp = Assert.Single(run.GeneratorDiagnostics, d => d.Id == "QG0023");
        Assert.Contains("leaky_relu", floatOp.GetMessage(), System.StringComparison.Ordinal);
        Assert.DoesNotContain(run.GeneratorDiagnostics, d => d.Severity == DiagnosticSeverity.Error);
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        Assert.Contains(run.Sources.Keys, k => k.Contains("QuantGenCaptured_Bad", System.StringComparison.Ordinal));
    }

    [Fact]
    public void A_member_whose_declared_type_has_no_int8_op_is_listed_at_its_call()
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(Members + """
                private readonly TorchSharp.Modules.LogSoftmax act = LogSoftmax(1);
                private readonly TorchSharp.Modules.ReLU6 clamp = ReLU6();
                public override Tensor forward(Tensor x) => head.forward(clamp.forward(act.forward(conv.forward(x))));
            """));
        Diagnostic floatOp = Assert.Single(run.GeneratorDiagnostics, d => d.Id == "QG0023");
        Assert.Contains("LogSoftmax", floatOp.GetMessage(), System.StringComparison.Ordinal);
        Assert.Contains("act.forward", floatOp.GetMessage(), System.StringComparison.Ordinal);
        Assert.DoesNotContain(run.GeneratorDiagnostics, d => d.Severity == DiagnosticSeverity.Error);
    }

    [Fact]
    public void Every_statement_the_capture_cannot_take_is_reported_in_one_build_at_its_line()
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(Members + """
                public override Tensor forward(Tensor x)
                {
                    x = conv.forward(x);
                    while (x.sum().item<float>() > 0) x = x - 1;
                    if (x.mean().item<float>() > 0) x = head.forward(x);
                    return head.forward(x);
                }
            """));
        Diagnostic[] errors = run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();
        Assert.Equal(2, errors.Length);
        Assert.All(errors, e => Assert.Equal("QG0016", e.Id));
        Assert.Equal(2, errors.Select(e => e.Location.GetLineSpan().StartLinePosition.Line).Distinct().Count());
        Assert.Contains(errors, e => e.GetMessage().Contains("ModuleList", System.StringComparison.Ordinal));
    }

    [Fact]
    public void A_return_inside_a_using_block_is_not_reported_as_never_returning()
    {
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(Members + """
                public override Tensor forward(Tensor x)
                {
                    using (var scope = torch.NewDisposeScope())
                    {
                        x = conv.forward(x);
                        return head.forward(x).MoveToOuterDisposeScope();
                    }
                }
            """));
        Assert.DoesNotContain(run.GeneratorDiagnostics, d => d.Severity == DiagnosticSeverity.Error);
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
    }
}
