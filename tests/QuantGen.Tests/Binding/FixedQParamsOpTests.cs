using System;
using QuantGen.Observers;
using QuantGen.Tests.Qat;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>Sigmoid, Hardsigmoid and Tanh have PyTorch's fixed output qparams; a mapping that sets others is refused at Prepare.</summary>
[Collection(SeededTorchCollection.Name)]
public sealed class FixedQParamsOpTests
{
    [Fact]
    public void Other_qparams_for_a_sigmoid_are_refused_naming_the_op_and_pytorchs_values()
    {
        torch.manual_seed(21);
        using var model = new QatGateNet();
        model.eval();
        var error = Assert.Throws<ArgumentException>(() => model.Prepare(QatGateNet.DefaultQConfigMapping().SetModuleQParams("gate", 0.01f, 3)));
        Assert.Contains("QatGateNet.gate", error.Message, StringComparison.Ordinal);
        Assert.Contains("Sigmoid", error.Message, StringComparison.Ordinal);
        Assert.Contains("1/256", error.Message, StringComparison.Ordinal);

        var viaQConfig = Assert.Throws<ArgumentException>(() => model.Prepare(QatGateNet.DefaultQConfigMapping()
            .SetModuleName("gate", QConfig.X86 with { Activation = ObserverSpec.FixedQParams(2f / 256f, 128) })));
        Assert.Contains("QatGateNet.gate", viaQConfig.Message, StringComparison.Ordinal);

        // PyTorch's own values are accepted (they change nothing).
        using QatGateNet.Observed observed = model.Prepare(QatGateNet.DefaultQConfigMapping().SetModuleQParams("gate", 1f / 256f, 0));
        using (torch.no_grad())
        {
            observed.forward(torch.randn(2, 2, 5, 5)).Dispose();
        }

        Assert.NotNull(observed.Convert());
    }
}
