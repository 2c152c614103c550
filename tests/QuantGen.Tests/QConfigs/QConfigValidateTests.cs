using System;
using QuantGen.Observers;

namespace QuantGen.Tests.QConfigs;

public class QConfigValidateTests
{
    [Fact]
    public void BackendPresetsAreValid()
    {
        QConfig.X86.Validate();
        QConfig.OneDnn.Validate();
        QConfig.Qnnpack.Validate();
    }

    [Theory]
    [InlineData(QScheme.PerTensorSymmetric)]
    [InlineData(QScheme.PerTensorAffine)]
    public void QInt8ActivationsAreAccepted(QScheme scheme)
    {
        // Seed 002 (CenterNet for TensorRT): HistogramObserver(qscheme=per_tensor_symmetric, dtype=qint8).
        new QConfig(ObserverSpec.Histogram(QuantDType.QInt8, scheme), ObserverSpec.PerChannelMinMax()).Validate();
        new QConfig(ObserverSpec.MinMax(QuantDType.QInt8, scheme), ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorAffine), QuantBackend.Qnnpack).Validate();
    }

    [Fact]
    public void ConvTransposeWeightsOnAxis1AreAccepted()
    {
        new QConfig(ObserverSpec.Histogram(QuantDType.QInt8, QScheme.PerTensorSymmetric), ObserverSpec.PerChannelMinMax(channelAxis: 1)).Validate();
    }

    [Fact]
    public void PerChannelActivationsAreRejectedWithTheReason()
    {
        var qconfig = QConfig.X86 with { Activation = ObserverSpec.PerChannelMinMax(QuantDType.QUInt8, QScheme.PerChannelAffine, channelAxis: 1) };
        var error = Assert.Throws<ArgumentException>(qconfig.Validate);
        Assert.Contains("activations must be observed per tensor", error.Message);
        Assert.Contains("one scale and zero point", error.Message);
    }

    [Fact]
    public void QUInt8WeightsAreRejectedWithTheReason()
    {
        var qconfig = QConfig.X86 with { Weight = ObserverSpec.MinMax(QuantDType.QUInt8, QScheme.PerTensorAffine) };
        var error = Assert.Throws<ArgumentException>(qconfig.Validate);
        Assert.Contains("weights must be torch.qint8", error.Message);
        Assert.Contains("signed 8-bit weights", error.Message);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(-1)]
    public void WeightAxesOtherThanOutputChannelsAreRejected(int axis)
    {
        var qconfig = QConfig.X86 with { Weight = ObserverSpec.PerChannelMinMax(channelAxis: axis) };
        var error = Assert.Throws<ArgumentException>(qconfig.Validate);
        Assert.Contains($"got ch_axis={axis}", error.Message);
        Assert.Contains("ConvTranspose2d", error.Message);
    }

    [Fact]
    public void SymmetricQUInt8WithReduceRangeIsRejectedBeforeCalibration()
    {
        var qconfig = QConfig.X86 with { Activation = ObserverSpec.MinMax(QuantDType.QUInt8, QScheme.PerTensorSymmetric, reduceRange: true) };
        var error = Assert.Throws<ArgumentException>(qconfig.Validate);
        Assert.Contains("cannot reduce the range", error.Message);
    }

    [Fact]
    public void InconsistentObserverRecipesAreRejected()
    {
        // A per-tensor observer with a per-channel scheme: the recipe's own check.
        var qconfig = QConfig.X86 with { Weight = new ObserverSpec(ObserverKind.MinMax, QuantDType.QInt8, QScheme.PerChannelSymmetric) };
        Assert.Throws<ArgumentException>(qconfig.Validate);
    }
}
