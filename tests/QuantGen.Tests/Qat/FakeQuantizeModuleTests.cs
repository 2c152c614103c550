using System;
using System.Linq;
using QuantGen.Observers;
using QuantGen.Qat;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Qat;

public class FakeQuantizeModuleTests
{
    [Fact]
    public void X86ActivationTrainsWithTheFusedFormulaAndConvertsWithTheObserverFormula()
    {
        var fakeQuant = (FakeQuantize)QConfig.QatX86.Activation.Create("Net.relu1");
        Assert.Equal(0, fakeQuant.QuantMin);
        Assert.Equal(127, fakeQuant.QuantMax);
        float[] values = [-1f, 0.3f, 2.2f, 3f, 1.1f];

        using Tensor output = fakeQuant.forward(tensor(values));

        // Range [-1, 3] on 0..127: training scale (float)(4.0 / 127) in double, zero point 32 (both ends: 31.75).
        QParams training = fakeQuant.TrainingQParams!;
        Assert.Equal((float)(4.0 / 127.0), training.Scale);
        Assert.Equal(32, training.ZeroPoint);
        float[] actual = output.data<float>().ToArray();
        for (int i = 0; i < values.Length; i++)
        {
            Assert.Equal(FakeQuantReference.Forward(values[i], training.Scale, 32, 0, 127), actual[i]);
        }

        // Convert: the observer's float32 formula, 4f / 127f.
        QParams converted = fakeQuant.CalculateQParams();
        Assert.Equal(4f / 127f, converted.Scale);
        Assert.Equal(32, converted.ZeroPoint);
    }

    [Fact]
    public void DisablingTheObserverFreezesRangeAndQParams()
    {
        var fakeQuant = (FakeQuantize)QConfig.QatX86.Activation.Create("Net.relu1");
        using (fakeQuant.forward(tensor(new[] { -1f, 3f })))
        {
        }

        QParams before = fakeQuant.TrainingQParams!;
        fakeQuant.DisableObserver();
        using Tensor output = fakeQuant.forward(tensor(new[] { -10f, 10f }));

        Assert.Same(before, fakeQuant.TrainingQParams);
        var observer = (MovingAverageMinMaxObserver)fakeQuant.Observer;
        Assert.Equal(-1f, observer.Min);
        Assert.Equal(3f, observer.Max);
        Assert.Equal(1, observer.BatchCount);

        // Clipped with the frozen qparams: (0 - 32) * s and (127 - 32) * s.
        Assert.Equal([(0 - 32) * before.Scale, (127 - 32) * before.Scale], output.data<float>().ToArray());
    }

    [Fact]
    public void DisablingFakeQuantReturnsTheInputButKeepsObserving()
    {
        var fakeQuant = (FakeQuantize)QConfig.QatX86.Activation.Create("Net.relu1");
        fakeQuant.DisableFakeQuant();
        using Tensor input = tensor(new[] { -1f, 3f });

        Tensor output = fakeQuant.forward(input);

        Assert.Same(input, output);
        Assert.True(fakeQuant.Observer.HasObserved);
        fakeQuant.EnableFakeQuant();
        Assert.True(fakeQuant.FakeQuantEnabled);
    }

    [Fact]
    public void FakeQuantWithoutAnyObservedBatchIsAnErrorNamingTheLayer()
    {
        var fakeQuant = QConfig.QatX86.Activation.Create("Net.relu1");
        fakeQuant.DisableObserver();
        var error = Assert.Throws<InvalidOperationException>(() => fakeQuant.forward(tensor(new[] { 1f })));
        Assert.Contains("Net.relu1", error.Message);
    }

    [Fact]
    public void X86WeightsArePerChannelSymmetricWithDifferentTrainingAndConvertScales()
    {
        var fakeQuant = (FakeQuantize)QConfig.QatX86.Weight.Create("Net.fc1.weight");
        float[] weights = [-1f, 2f, 0.7f, /* channel 1 */ -2f, 1f, 0.3f];

        using Tensor output = fakeQuant.forward(tensor(weights, new long[] { 2, 3 }));

        // Channel 0 range [-1, 2]: training max(1/128, 2/127) ≈ 2/127; channel 1 [-2, 1]: 2/128 = 1/64 exactly.
        QParams training = fakeQuant.TrainingQParams!;
        Assert.Equal(2.0 / 127.0, training.Scales[0], 1e-8);
        Assert.Equal(1f / 64f, training.Scales[1]);
        Assert.Equal([0, 0], training.ZeroPoints);
        float[] actual = output.data<float>().ToArray();
        for (int i = 0; i < weights.Length; i++)
        {
            Assert.Equal(FakeQuantReference.Forward(weights[i], training.Scales[i / 3], 0, -128, 127), actual[i]);
        }

        // Convert divides the larger side by 127.5 in both channels.
        Assert.Equal([2f / 127.5f, 2f / 127.5f], fakeQuant.CalculateQParams().Scales);
    }

    [Fact]
    public void AbsMaxSchemeScalesEachTensorByItsOwnMaxOver127()
    {
        var fakeQuant = (FakeQuantize)FakeQuantSpec.AbsMaxSymmetric().Create("Net.fc1");
        Assert.Equal(-127, fakeQuant.QuantMin);
        Assert.Equal(127, fakeQuant.QuantMax);

        using (Tensor first = fakeQuant.forward(tensor(new[] { -0.5f, 1.27f, 0.3f })))
        {
            Assert.Equal(1.27f / 127f, fakeQuant.TrainingQParams!.Scale);
            Assert.Equal(0, fakeQuant.TrainingQParams.ZeroPoint);
            Assert.Equal(127 * (1.27f / 127f), first.data<float>()[1]);
        }

        using (Tensor second = fakeQuant.forward(tensor(new[] { -2.54f, 1f })))
        {
            Assert.Equal(2.54f / 127f, fakeQuant.TrainingQParams!.Scale);
            Assert.Equal(-127 * (2.54f / 127f), second.data<float>()[0]);
        }

        // Convert: the moving average (c = 0.01) of the same symmetric range, / 127.
        float min = -0.5f + (0.01f * (-2.54f - -0.5f));
        float max = 1.27f + (0.01f * (1f - 1.27f));
        Assert.Equal(MathF.Max(-min, max) / 127f, fakeQuant.CalculateQParams().Scale);
    }

    [Fact]
    public void PlainFakeQuantizeUsesItsObserversOwnFormulaWhileTraining()
    {
        var fakeQuant = (FakeQuantize)FakeQuantSpec.WithObserverQParams(ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric)).Create("Net.act");
        using (fakeQuant.forward(tensor(new[] { -1f, 2f })))
        {
        }

        Assert.Equal(2f / 127.5f, fakeQuant.TrainingQParams!.Scale);
    }

    [Fact]
    public void DefaultQatQConfigsFollowPyTorchsPerBackend()
    {
        QatQConfig x86 = QConfig.QatX86;
        x86.Validate();
        Assert.Equal(FakeQuantKind.FusedMovingAverage, x86.Activation.Kind);
        Assert.Equal(ObserverKind.MovingAverageMinMax, x86.Activation.Observer.Kind);
        Assert.True(x86.Activation.Observer.ReduceRange);
        Assert.Equal(0.01f, x86.Activation.Observer.AveragingConstant);
        Assert.Equal(QuantDType.QUInt8, x86.Activation.Observer.DType);
        Assert.Equal(ObserverKind.MovingAveragePerChannelMinMax, x86.Weight.Observer.Kind);
        Assert.Equal(QScheme.PerChannelSymmetric, x86.Weight.Observer.Scheme);
        Assert.Equal(QuantDType.QInt8, x86.Weight.Observer.DType);
        Assert.False(x86.Weight.Observer.ReduceRange);
        Assert.Equal(0.01f, x86.Weight.Observer.AveragingConstant);
        Assert.Equal(QuantBackend.X86, x86.Backend);
        Assert.Same(x86, QConfig.QatFbgemm);
        Assert.Same(x86, QConfig.QatFor(QuantBackend.X86));

        QatQConfig qnnpack = QConfig.QatQnnpack;
        qnnpack.Validate();
        Assert.False(qnnpack.Activation.Observer.ReduceRange);
        Assert.Equal(ObserverKind.MovingAverageMinMax, qnnpack.Weight.Observer.Kind);
        Assert.Equal(QScheme.PerTensorSymmetric, qnnpack.Weight.Observer.Scheme);
        Assert.Equal(QuantBackend.Qnnpack, qnnpack.Backend);
        Assert.Same(qnnpack, QConfig.QatFor(QuantBackend.Qnnpack));

        QatQConfig oneDnn = QConfig.QatOneDnn;
        oneDnn.Validate();
        Assert.False(oneDnn.Activation.Observer.ReduceRange);
        Assert.Equal(x86.Weight, oneDnn.Weight);

        // What convert reads: the observers, as a PTQ QConfig.
        Assert.Equal(new QConfig(x86.Activation.Observer, x86.Weight.Observer, QuantBackend.X86), x86.Observers);
        Assert.StartsWith("QatQConfig(activation=FusedMovingAvgObsFakeQuantize(observer=MovingAverageMinMaxObserver(dtype=torch.quint8", x86.ToString());
    }

    [Fact]
    public void LearnedQParamsAndTheAbsMaxSchemeAreQConfigChoices()
    {
        QatQConfig learned = QConfig.QatX86 with
        {
            Activation = FakeQuantSpec.Learnable(QConfig.QatX86.Activation.Observer, useGradScaling: true),
            Weight = FakeQuantSpec.Learnable(QConfig.QatX86.Weight.Observer, useGradScaling: true),
        };
        learned.Validate();
        Assert.IsType<LearnableFakeQuantize>(learned.Weight.Create("Net.fc1.weight", channels: 4));

        QatQConfig absMax = new(FakeQuantSpec.AbsMaxSymmetric(), FakeQuantSpec.AbsMaxSymmetric());
        absMax.Validate();
        Assert.IsType<FakeQuantize>(absMax.Activation.Create("Net.fc1"));
    }

    [Fact]
    public void TheFusedKindNeedsAMovingAverageObserver()
    {
        var error = Assert.Throws<ArgumentException>(() => FakeQuantSpec.FusedMovingAverage(ObserverSpec.Histogram()).Validate());
        Assert.Contains("MovingAverageMinMax", error.Message);
    }
}
