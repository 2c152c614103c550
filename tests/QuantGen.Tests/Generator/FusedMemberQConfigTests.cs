using System;
using QuantGen.Observers;
using QuantGen.Tests.Binding;
using QuantGen.Tests.Generator.Models;

namespace QuantGen.Tests.Generator;

/// <summary>
/// A QConfigMapping entry for a member that was fused (a ReLU) or folded (a BatchNorm) into another op cannot
/// apply to it alone: Prepare rejects a null or different qconfig for it, naming the op to give it to, in the
/// generated form (TinyConvNet: conv+bn+relu, fc+fcRelu, Qnnpack) and the bound form (AppendNet: features.0
/// conv + features.1 ReLU, X86). So does a per-module qconfig of another backend (one integer arithmetic per model).
/// </summary>
public class FusedMemberQConfigTests
{
    [Fact]
    public void NullQConfigForAFusedReluIsAnErrorNamingItsOp()
    {
        using var model = new TinyConvNet();
        model.eval();

        var error = Assert.Throws<ArgumentException>(() => model.Prepare(TinyConvNet.DefaultQConfigMapping().SetModuleName("relu", null)));

        Assert.StartsWith("TinyConvNet.relu is fused into TinyConvNet.conv; give the qconfig to conv", error.Message, StringComparison.Ordinal);
        Assert.Contains("null qconfig", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NullQConfigForAFoldedBatchNormIsAnErrorNamingItsConv()
    {
        using var model = new TinyConvNet();
        model.eval();

        var error = Assert.Throws<ArgumentException>(() => model.Prepare(TinyConvNet.DefaultQConfigMapping().SetModuleName("bn", null)));

        Assert.StartsWith("TinyConvNet.bn is folded into TinyConvNet.conv; give the qconfig to conv", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AFusedMemberMayRepeatItsOpsQConfigButNotDifferFromIt()
    {
        using var model = new TinyConvNet();
        model.eval();
        QConfig other = QConfig.Qnnpack with { Activation = QConfig.Qnnpack.Activation with { Kind = ObserverKind.MovingAverageMinMax } };

        using (TinyConvNet.Observed same = model.Prepare(TinyConvNet.DefaultQConfigMapping().SetModuleName("fcRelu", QConfig.Qnnpack)))
        {
            Assert.NotNull(same);
        }

        var error = Assert.Throws<ArgumentException>(() => model.Prepare(TinyConvNet.DefaultQConfigMapping().SetModuleName("fcRelu", other)));
        Assert.StartsWith("TinyConvNet.fcRelu is fused into TinyConvNet.fc; give the qconfig to fc", error.Message, StringComparison.Ordinal);
        Assert.Contains("differs", error.Message, StringComparison.Ordinal);

        // Given to the head, the same qconfig covers the whole fused op.
        using TinyConvNet.Observed headed = model.Prepare(TinyConvNet.DefaultQConfigMapping().SetModuleName("fc", other).SetModuleName("fcRelu", other));
        Assert.NotNull(headed);
    }

    [Fact]
    public void AQConfigOfAnotherBackendThanTheModelsIsAnError()
    {
        using var model = new TinyConvNet();
        model.eval();

        var error = Assert.Throws<ArgumentException>(() => model.Prepare(TinyConvNet.DefaultQConfigMapping().SetModuleName("fc", QConfig.X86)));

        Assert.Contains("member path 'fc' qconfig uses the X86 backend, but the model's is Qnnpack", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BoundFormRejectsANullQConfigForAFusedRelu()
    {
        using var model = new AppendNet();
        model.eval();

        var error = Assert.Throws<ArgumentException>(() => model.Prepare(AppendNet.DefaultQConfigMapping().SetModuleName("features.1", null)));

        Assert.StartsWith("AppendNet.features.1 is fused into AppendNet.features.0; give the qconfig to features.0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BoundFormRejectsAQConfigOfAnotherBackend()
    {
        using var model = new AppendNet();
        model.eval();

        var error = Assert.Throws<ArgumentException>(() => model.Prepare(AppendNet.DefaultQConfigMapping().SetModuleType("Linear", QConfig.Qnnpack)));

        Assert.Contains("module type 'Linear' qconfig uses the Qnnpack backend, but the model's is X86", error.Message, StringComparison.Ordinal);
    }
}
