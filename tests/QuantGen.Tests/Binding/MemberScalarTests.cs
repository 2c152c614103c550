using System;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using QuantGen.Tests.Generator;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// Float expressions that read number members of the module (x * MathF.Sqrt(d_model), x.view(-1, hidden)): captured
/// with the members' values read once at Prepare from the running instance, saved in the file with the op, and a
/// member forward could change (not readonly) is refused at its line.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class MemberScalarTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Member_values_of_this_instance_reach_the_float_expressions_and_survive_save_and_load(bool doubled)
    {
        torch.manual_seed(190);
        using var model = new MemberScalarNet(20, 6, 4, doubled);
        model.eval();
        MemberScalarNet.Quantized int8 = model.Prepare(new QConfigMapping(null).SetModuleType("Linear", QConfig.Dynamic())).Convert();
        using Tensor tokens = torch.tensor(Enumerable.Range(0, 24).Select(i => (long)((i * 7) % 20)).ToArray(), new long[] { 3, 8 });

        // The same arithmetic with the values written by hand: √6, 4·6 columns, +0.25, ×2 when doubled.
        var children = model.named_children().ToDictionary(c => c.name, c => c.module);
        var head = QuantGen.Dynamic.DynamicQuantizedLinear.FromLinear("MemberScalarNet", "decoder", (TorchSharp.Modules.Linear)children["decoder"], QuantBackend.X86);
        float[] expected;
        using (torch.no_grad())
        {
            Tensor rows = (((TorchSharp.Modules.Embedding)children["encoder"]).forward(tokens) * MathF.Sqrt(6)).view(-1, 24) + 0.25f;
            expected = head.Forward(doubled ? rows * 2 : rows).data<float>().ToArray();
        }

        float[] actual = int8.forward(tokens).data<float>().ToArray();
        Assert.Equal(expected, actual);

        var file = new MemoryStream();
        int8.Save(file);
        Assert.Equal(actual, MemberScalarNet.Quantized.Load(new MemoryStream(file.ToArray())).forward(tokens).data<float>().ToArray());
    }

    [Theory]
    [InlineData("private long size = 4;", "x.view(-1, size)", "make it readonly")]
    [InlineData("private long Size { get; set; } = 4;", "x.view(-1, Size)", "make it readonly")]
    public void A_member_forward_could_change_is_refused_at_its_line(string member, string expression, string reason)
    {
        string body = member + "\nprivate readonly Module<Tensor, Tensor> head = Linear(4, 4);\npublic Bad() : base(nameof(Bad)) => RegisterComponents();\n" +
            $"public override Tensor forward(Tensor x) => head.forward({expression});";
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(body));
        Diagnostic error = Assert.Single(run.GeneratorDiagnostics, d => d.Severity == DiagnosticSeverity.Error);
        Assert.Equal("QG0006", error.Id);
        Assert.Contains(reason, error.GetMessage(), StringComparison.Ordinal);
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
    }

    [Fact]
    public void The_generated_capture_reads_members_as_values_passed_in()
    {
        string body = "private readonly long hidden = 4;\nprivate readonly Module<Tensor, Tensor> head = Linear(4, 4);\npublic Bad() : base(nameof(Bad)) => RegisterComponents();\n" +
            "public override Tensor forward(Tensor x) => head.forward(x.view(-1, hidden) * System.MathF.Sqrt(this.hidden));";
        GeneratorRun run = GeneratorHarness.Run(Samples.Model(body));
        Assert.Empty(run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        string capture = string.Join("\n", run.AllSources.Values);
        Assert.Contains("Scalars: new string[] { \"hidden\" }", capture, StringComparison.Ordinal);
        Assert.Contains("((long)s[0])", capture, StringComparison.Ordinal);
    }
}
