using System.Linq;
using QuantGen.Observers;
using QuantGen.Qat;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Qat;

/// <summary>
/// Values printed by PyTorch itself (Debian's python3-torch 1.13.1, CPU): <c>FusedMovingAvgObsFakeQuantize</c> with the
/// default QAT observers, <c>_fake_quantize_learnable_per_channel_affine</c> forward and backward, and
/// <c>MovingAveragePerChannelMinMaxObserver</c>. Each input is written next to the PyTorch call that produced the numbers.
/// </summary>
public class PyTorchValuesTests
{
    [Fact]
    public void FusedPerChannelWeightFakeQuantizeMatchesPyTorch()
    {
        // FusedMovingAvgObsFakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127,
        //   dtype=torch.qint8, qscheme=torch.per_channel_symmetric)(tensor([[-1, 2, 0.7], [-2, 1, 0.3]]))
        var fakeQuant = (FakeQuantize)QConfig.QatX86.Weight.Create("Net.fc.weight");
        using Tensor output = fakeQuant.forward(tensor(new[] { -1f, 2f, 0.7f, -2f, 1f, 0.3f }, new long[] { 2, 3 }));

        Assert.Equal([0.015748031437397003f, 0.015625f], fakeQuant.TrainingQParams!.Scales);
        Assert.Equal([0.01568627543747425f, 0.01568627543747425f], fakeQuant.CalculateQParams().Scales);
        Assert.Equal([-1.0078740119934082f, 2.0f, 0.6929134130477905f, -2.0f, 1.0f, 0.296875f], output.data<float>().ToArray());
    }

    [Fact]
    public void FusedActivationFakeQuantizeMatchesPyTorch()
    {
        // FusedMovingAvgObsFakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, reduce_range=True)
        //   (tensor([-1, 0.3, 2.2, 3, 1.1])): scale 0.031496062874794006, zero point 32, quant range 0..127.
        var fakeQuant = (FakeQuantize)QConfig.QatX86.Activation.Create("Net.relu");
        using Tensor output = fakeQuant.forward(tensor(new[] { -1f, 0.3f, 2.2f, 3f, 1.1f }));

        Assert.Equal(0.031496062874794006f, fakeQuant.TrainingQParams!.Scale);
        Assert.Equal(32, fakeQuant.TrainingQParams.ZeroPoint);
        Assert.Equal([-1.0078740119934082f, 0.31496062874794006f, 2.2047243118286133f, 2.992125988006592f, 1.1023621559143066f], output.data<float>().ToArray());
    }

    [Fact]
    public void FusedQParamsForTinyEmptyAndAveragedRangesMatchPyTorch()
    {
        // quant_min=0, quant_max=255: [0, 0.001] -> scale 6.0999998822808266e-05 (convert 3.9216e-06);
        // [0, 0] -> 0.10000000149011612 (convert 1.1921e-07).
        var tiny = (FakeQuantize)QConfig.QatOneDnn.Activation.Create("Net.a");
        using (tiny.forward(tensor(new[] { 0f, 0.001f })))
        {
            Assert.Equal(6.0999998822808266e-05f, tiny.TrainingQParams!.Scale);
            Assert.Equal(0, tiny.TrainingQParams.ZeroPoint);
            Assert.Equal(3.9216e-06, tiny.CalculateQParams().Scale, 1e-10);
        }

        var empty = (FakeQuantize)QConfig.QatOneDnn.Activation.Create("Net.b");
        using (empty.forward(tensor(new[] { 0f, 0f })))
        {
            Assert.Equal(0.10000000149011612f, empty.TrainingQParams!.Scale);
            Assert.Equal(QParamsMath.Eps, empty.CalculateQParams().Scale);
        }

        // averaging_constant=0.5, reduce_range=True: [-2, 2] then [0, 6] -> scale 0.03937007859349251, zero point 25.
        var averaged = (FakeQuantize)FakeQuantSpec.FusedMovingAverage(ObserverSpec.MovingAverageMinMax(0.5f, reduceRange: true, quantMin: 0, quantMax: 255)).Create("Net.c");
        using (averaged.forward(tensor(new[] { -2f, 2f })))
        using (averaged.forward(tensor(new[] { 0f, 6f })))
        {
            Assert.Equal(0.03937007859349251f, averaged.TrainingQParams!.Scale);
            Assert.Equal(25, averaged.TrainingQParams.ZeroPoint);
        }
    }

    [Fact]
    public void LearnablePerChannelForwardAndGradientsMatchPyTorch()
    {
        // torch._fake_quantize_learnable_per_channel_affine(x, scale=[0.1, 0.25], zero_point=[1.5, -3.0], axis=0,
        //   quant_min=-128, quant_max=127, grad_factor=0.25), loss = (y * w).sum(). The ties (0.25 / 0.1 = 2.5 with
        //   z = 2) round differently in the forward and the backward, as in PyTorch.
        using Tensor input = tensor(new[] { 0.25f, 0.35f, -0.15f, 20f, -20f, 0.125f, 0.375f, 1f, -10f, 10f }, new long[] { 2, 5 }).requires_grad_(true);
        using Tensor weight = tensor(new[] { 1f, 2f, 3f, 4f, 5f, -1f, -2f, -3f, -4f, -5f }, new long[] { 2, 5 });
        using Tensor scale = tensor(new[] { 0.1f, 0.25f }).requires_grad_(true);
        using Tensor zeroPoint = tensor(new[] { 1.5f, -3f }).requires_grad_(true);

        using Tensor output = LearnableFakeQuant.Apply(input, scale, zeroPoint, -128, 127, 0, 0.25f);
        using Tensor loss = output.mul(weight).sum();
        loss.backward();

        Assert.Equal(
            [0.20000000298023224f, 0.4000000059604645f, -0.20000000298023224f, 12.5f, -13.0f, 0.0f, 0.5f, 1.0f, -10.0f, 10.0f],
            output.detach().data<float>().ToArray());
        Assert.Equal([1f, 2f, 3f, 0f, 0f, -1f, -2f, -3f, -4f, -5f], input.grad!.data<float>().ToArray());
        Assert.Equal([-37.75f, 0.125f], scale.grad!.data<float>().ToArray());
        Assert.Equal([-0.22499999403953552f, 0f], zeroPoint.grad!.data<float>().ToArray());
    }

    [Fact]
    public void MovingAveragePerChannelObserverMatchesPyTorch()
    {
        // MovingAveragePerChannelMinMaxObserver(averaging_constant=0.01, dtype=torch.qint8,
        //   qscheme=torch.per_channel_symmetric): [[-1, 3], [0, 2]] then [[-3, 5], [-1, 1]].
        var observer = (MovingAveragePerChannelMinMaxObserver)ObserverSpec.MovingAveragePerChannelMinMax().Create("Net.w");
        observer.Observe([-1f, 3f, 0f, 2f], [2, 2]);
        observer.Observe([-3f, 5f, -1f, 1f], [2, 2]);

        Assert.Equal([-1.0199999809265137f, -0.009999999776482582f], observer.MinValues);
        Assert.Equal([3.0199999809265137f, 1.9900000095367432f], observer.MaxValues);
    }
}
