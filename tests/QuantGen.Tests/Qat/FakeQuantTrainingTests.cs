using System;
using System.Linq;
using QuantGen.Qat;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Qat;

/// <summary>Fake quantize inside an ordinary TorchSharp training loop: optimizer, loss and backward unchanged.</summary>
public class FakeQuantTrainingTests
{
    [Fact]
    public void AWeightAndOutputFakeQuantizedLinearLayerLearnsWithSgd()
    {
        // Target y = relu(W* x) with W* known; the layer sees its weight and its output through the x86 QAT fake quantizers.
        float[] target = [0.5f, -1.25f, 2f, 1.5f, 0.25f, -0.75f];
        using Tensor targetWeight = tensor(target, new long[] { 2, 3 });
        using Tensor inputs = tensor(FakeQuantReference.RandomValues(64 * 3, seed: 31, spread: 1f), new long[] { 64, 3 });
        using Tensor targets = inputs.matmul(targetWeight.t()).relu();
        // QAT fine-tunes a trained float model: start from the target disturbed by up to ±0.3 per weight.
        float[] noise = FakeQuantReference.RandomValues(6, seed: 32, spread: 0.3f);
        var weight = new TorchSharp.Modules.Parameter(tensor(target.Select((t, i) => t + noise[i]).ToArray(), new long[] { 2, 3 }));
        FakeQuantizeBase weightFq = QConfig.QatX86.Weight.Create("Net.fc.weight");
        FakeQuantizeBase outputFq = QConfig.QatX86.Activation.Create("Net.fc");
        var optimizer = optim.SGD([weight], 0.1);

        double firstLoss = double.NaN;
        double lastLoss = double.NaN;
        for (int step = 0; step < 300; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            Tensor output = outputFq.forward(inputs.matmul(weightFq.forward(weight).t()).relu());
            Tensor loss = nn.functional.mse_loss(output, targets);
            loss.backward();
            optimizer.step();
            lastLoss = loss.item<float>();
            if (step == 0)
            {
                firstLoss = lastLoss;
            }
        }

        // The straight-through gradients reach the weight through both fake quantizers: the loss more than halves.
        // (Its floor is the 7-bit output grid and the outputs clipped at the lagging moving-average maximum, which get
        // no gradient, as in PyTorch.)
        Assert.True(lastLoss < firstLoss / 2, $"loss {firstLoss} -> {lastLoss}");
        Assert.NotEqual(target.Select((t, i) => t + noise[i]).ToArray(), weight.detach().data<float>().ToArray());
    }

    [Fact]
    public void AnOptimizerTrainsTheLearnedScale()
    {
        var fakeQuant = (LearnableFakeQuantize)FakeQuantSpec.Learnable(QConfig.QatOneDnn.Activation.Observer, useGradScaling: true).Create("Net.act");
        using Tensor values = tensor(FakeQuantReference.RandomValues(256, seed: 41, spread: 4f)).relu();
        using (fakeQuant.forward(values))
        {
        }

        float observed = fakeQuant.Scale.item<float>();
        fakeQuant.EnableParamLearning();
        var optimizer = optim.SGD(fakeQuant.parameters(), 0.01);
        for (int step = 0; step < 20; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            Tensor loss = nn.functional.mse_loss(fakeQuant.forward(values), values);
            loss.backward();
            optimizer.step();
        }

        Assert.NotEqual(observed, fakeQuant.Scale.item<float>());
        Assert.True(fakeQuant.Scale.item<float>() > 0f);
    }
}
