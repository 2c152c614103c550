using System.Linq;
using QuantGen.Generator;
using QuantGen.Generator.Diagnostics;
using QuantGen.Generator.Parsing;
using QuantGen.Generator.Planning;

namespace QuantGen.Tests.Generator;

/// <summary>The planner on hand-written specs: fusions and quantization points as PyTorch's eager mode places them.</summary>
public class PlannerTests
{
    private static MemberSpec Member(string name, ModuleKind kind) => new(name, kind, kind.ToString(), null, null, null);

    private static ForwardCall Call(string member, int input, int line) => new(member, input, $"x = {member}.forward(x)", line, null);

    private static ModelSpec Spec(MemberSpec[] members, string[][] fuse, ForwardCall[] calls, int result, bool autoFuse = true) => new(
        "M",
        string.Empty,
        null,
        EquatableArray<ContainingTypeSpec>.Empty,
        "X86",
        members.ToEquatableArray(),
        fuse.Select(g => new FuseGroupSpec(g.ToEquatableArray(), EquatableArray<LocationInfo>.Empty, null)).ToEquatableArray(),
        new ForwardSpec("M.cs", calls.ToEquatableArray(), result, 30, "return x"),
        false,
        null,
        "M",
        autoFuse);

    private static readonly MemberSpec[] SeedMembers =
    {
        Member("quant", ModuleKind.QuantStub),
        Member("conv1", ModuleKind.Conv2d),
        Member("relu", ModuleKind.ReLU),
        Member("conv2", ModuleKind.Conv2d),
        Member("dequant", ModuleKind.DeQuantStub),
    };

    private static readonly ForwardCall[] SeedCalls =
    {
        Call("quant", 0, 14), Call("conv1", 1, 15), Call("relu", 2, 16), Call("conv2", 3, 17), Call("dequant", 4, 18),
    };

    [Fact]
    public void Seed000FusesConv1WithReluAndObservesQuantConv1Conv2()
    {
        PlanResult result = QuantizationPlanner.Plan(Spec(SeedMembers, new[] { new[] { "conv1", "relu" } }, SeedCalls, 5), EquatableArray<DiagnosticInfo>.Empty);

        Assert.Empty(result.Diagnostics);
        ModelPlan plan = Assert.IsType<ModelPlan>(result.Plan);
        Assert.Equal(
            new[] { ("quant_activation", "M.quant"), ("conv1_activation", "M.conv1"), ("conv2_activation", "M.conv2") },
            plan.Observers.Select(o => (o.Property, o.Layer)));

        // (kind, member, relu fused, output observer, input qparams, input value, output value)
        Assert.Equal(
            new[]
            {
                (StepKind.Quantize, "quant", false, 0, -1, 0, 0),
                (StepKind.Conv2d, "conv1", true, 1, 0, 0, 1),
                (StepKind.Conv2d, "conv2", false, 2, 1, 1, 2),
                (StepKind.DeQuantize, "dequant", false, -1, 2, 2, 2),
            },
            plan.Steps.Select(s => (s.Kind, s.Member, s.Relu, s.Observer, s.InputQParams, s.Input, s.Output)));
        Assert.Equal(2, plan.Result);
        Assert.Equal(new[] { "M.cs(15): x = conv1.forward(x)", "M.cs(16): x = relu.forward(x) (fused into conv1)" }, plan.Steps[1].Comments);
    }

    [Fact]
    public void UnfusedReluPassesQParamsThroughWithoutAnObserver()
    {
        PlanResult result = QuantizationPlanner.Plan(Spec(SeedMembers, new string[0][], SeedCalls, 5, autoFuse: false), EquatableArray<DiagnosticInfo>.Empty);

        ModelPlan plan = Assert.IsType<ModelPlan>(result.Plan);
        StepPlan relu = plan.Steps.Single(s => s.Member == "relu");
        StepPlan conv2 = plan.Steps.Single(s => s.Member == "conv2");
        Assert.Equal(StepKind.ReLU, relu.Kind);
        Assert.Equal(-1, relu.Observer);
        Assert.Equal(1, relu.InputQParams);
        Assert.Equal(1, conv2.InputQParams);
        Assert.Equal(3, plan.Observers.Count);
    }

    [Fact]
    public void ConvBatchNormReluFoldsTheBatchNorm()
    {
        MemberSpec[] members = { Member("conv", ModuleKind.Conv2d), Member("bn", ModuleKind.BatchNorm2d), Member("act", ModuleKind.ReLU) };
        ForwardCall[] calls = { Call("conv", 0, 5), Call("bn", 1, 6), Call("act", 2, 7) };

        PlanResult result = QuantizationPlanner.Plan(Spec(members, new[] { new[] { "conv", "bn", "act" } }, calls, 3), EquatableArray<DiagnosticInfo>.Empty);

        ModelPlan plan = Assert.IsType<ModelPlan>(result.Plan);
        Assert.Equal(new[] { StepKind.Quantize, StepKind.Conv2d }, plan.Steps.Select(s => s.Kind));
        Assert.Equal("bn", plan.Steps[1].BatchNormMember);
        Assert.True(plan.Steps[1].Relu);
        Assert.Equal(new[] { "input_activation", "conv_activation" }, plan.Observers.Select(o => o.Property));
    }

    [Fact]
    public void PlanningTheSameSpecTwiceGivesEqualPlans()
    {
        ModelSpec spec = Spec(SeedMembers, new[] { new[] { "conv1", "relu" } }, SeedCalls, 5);

        Assert.Equal(QuantizationPlanner.Plan(spec, EquatableArray<DiagnosticInfo>.Empty), QuantizationPlanner.Plan(spec, EquatableArray<DiagnosticInfo>.Empty));
    }

    [Fact]
    public void PlanningAndEmittingStopWhenTheBuildIsCancelled()
    {
        ModelSpec spec = Spec(SeedMembers, new[] { new[] { "conv1", "relu" } }, SeedCalls, 5);
        using var cancelled = new System.Threading.CancellationTokenSource();
        cancelled.Cancel();

        Assert.Throws<System.OperationCanceledException>(() => QuantizationPlanner.Plan(spec, EquatableArray<DiagnosticInfo>.Empty, default, cancelled.Token));
        ModelPlan plan = QuantizationPlanner.Plan(spec, EquatableArray<DiagnosticInfo>.Empty).Plan!;
        Assert.Throws<System.OperationCanceledException>(() => QuantGen.Generator.Emitting.SourceFileEmitter.Emit(plan, cancelled.Token));
        Assert.NotEmpty(QuantGen.Generator.Emitting.SourceFileEmitter.Emit(plan, System.Threading.CancellationToken.None));
    }
}
