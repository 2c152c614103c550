using System;
using QuantGen.Observers;
using QuantGen.Qat;

namespace QuantGen.Tests.Qat;

/// <summary>
/// The two qparam formulas of PyTorch's QAT: ATen's C++ <c>ChooseQuantizationParams</c> while training (the fused
/// fake-quant op) and the observer's <c>calculate_qparams</c> at convert. Expected values are derived by hand here.
/// </summary>
public class TrainingQParamsTests
{
    [Fact]
    public void AffineRangeGivesTheSameQParamsBothWays()
    {
        // quint8 0..127 (reduce_range), range [-1, 3]: scale = 4 / 127; both ends give zero point 31.75 -> 32.
        (float scale, int zeroPoint) = TrainingQParams.Choose(-1f, 3f, 0, 127, preserveSparsity: false);
        Assert.Equal((float)(4.0 / 127.0), scale);
        Assert.Equal(32, zeroPoint);

        (float observerScale, int observerZero) = QParamsMath.FromMinMax(-1f, 3f, QuantDType.QUInt8, symmetric: false, 0, 127);
        Assert.Equal(4f / 127f, observerScale);
        Assert.Equal(32, observerZero);
    }

    [Fact]
    public void SymmetricTrainingDividesByTheSidesOwnHalfRangeWhileConvertDividesBy127Point5()
    {
        // Weights in [-1, 2], qint8 -128..127, symmetric.
        // Training (preserve_sparsity): symmetric_qmin = -(255 / 2 + 1) = -128, symmetric_qmax = 127,
        // max_scale = max(|-1 / -128|, |2 / 127|) = 2/127 (float), min = max_scale * -128, max = max_scale * 127 (to float),
        // scale = (max - min) / 255 in double, stored as float; zero point = (qmin + qmax) / 2 = -0.5 -> 0.
        float maxScale = MathF.Max(MathF.Abs(-1f / -128), MathF.Abs(2f / 127));
        float min = (float)((double)maxScale * -128);
        float max = (float)((double)maxScale * 127);
        float expected = (float)(((double)max - min) / 255);
        (float scale, int zeroPoint) = TrainingQParams.Choose(-1f, 2f, -128, 127, preserveSparsity: true);
        Assert.Equal(expected, scale);
        Assert.Equal(0, zeroPoint);
        Assert.Equal(2.0 / 127.0, scale, 1e-8);

        // Convert: max(|min|, max) / ((127 - -128) / 2) = 2 / 127.5.
        (float convertScale, int convertZero) = QParamsMath.FromMinMax(-1f, 2f, QuantDType.QInt8, symmetric: true, -128, 127);
        Assert.Equal(2f / 127.5f, convertScale);
        Assert.Equal(0, convertZero);
        Assert.NotEqual(convertScale, scale);
    }

    [Fact]
    public void SymmetricTrainingWithANegativeDominantSideUses128()
    {
        // Range [-2, 1]: training scale max(2/128, 1/127) = 1/64 exactly; convert 2/127.5.
        (float scale, _) = TrainingQParams.Choose(-2f, 1f, -128, 127, preserveSparsity: true);
        Assert.Equal(1f / 64f, scale);
        (float convertScale, _) = QParamsMath.FromMinMax(-2f, 1f, QuantDType.QInt8, symmetric: true, -128, 127);
        Assert.Equal(2f / 127.5f, convertScale);
    }

    [Fact]
    public void TinyRangesAreRaisedToATENsSmallScaleThresholdNotToEpsilon()
    {
        // [0, 0.001] on quint8 0..255: 0.001 / 255 = 3.9e-6 < 6.1e-5, so training uses 6.1e-5 (min stays 0 -> zero point 0);
        // convert keeps 0.001 / 255 (only floored at float32 epsilon).
        (float scale, int zeroPoint) = TrainingQParams.Choose(0f, 0.001f, 0, 255, preserveSparsity: false);
        Assert.Equal(6.1e-5f, scale);
        Assert.Equal(0, zeroPoint);

        (float convertScale, int convertZero) = QParamsMath.FromMinMax(0f, 0.001f, QuantDType.QUInt8, symmetric: false, 0, 255);
        Assert.Equal(0.001f / 255f, convertScale);
        Assert.Equal(0, convertZero);
    }

    [Fact]
    public void AnAllZeroRangeGetsScaleOneTenthInTrainingAndEpsilonAtConvert()
    {
        (float scale, int zeroPoint) = TrainingQParams.Choose(0f, 0f, 0, 255, preserveSparsity: false);
        Assert.Equal(0.1f, scale);
        Assert.Equal(0, zeroPoint);

        (float convertScale, _) = QParamsMath.FromMinMax(0f, 0f, QuantDType.QUInt8, symmetric: false, 0, 255);
        Assert.Equal(QParamsMath.Eps, convertScale);
    }

    [Fact]
    public void FromObserverUsesTheAveragedRangeOfAPerTensorObserver()
    {
        var observer = ObserverSpec.MovingAverageMinMax(0.5f, reduceRange: true).Create("M.act");
        observer.Observe([-2f, 2f], [2]);
        observer.Observe([0f, 6f], [2]);

        // Averaged: min -2 + 0.5 * 2 = -1, max 2 + 0.5 * 4 = 4; quint8 with reduce_range -> 0..127.
        QParams q = TrainingQParams.FromObserver(observer);
        (float scale, int zeroPoint) = TrainingQParams.Choose(-1f, 4f, 0, 127, preserveSparsity: false);
        Assert.Equal(scale, q.Scale);
        Assert.Equal(zeroPoint, q.ZeroPoint);
        Assert.Equal((float)(5.0 / 127.0), q.Scale);

        // Zero point: from the min end 0 + 1 / scale = 25.4 (the smaller terms) -> 25.
        Assert.Equal(25, q.ZeroPoint);
    }

    [Fact]
    public void FromObserverWorksPerChannel()
    {
        var observer = ObserverSpec.MovingAveragePerChannelMinMax().Create("M.conv.weight");
        observer.Observe([-1f, 2f, /* ch 1 */ -2f, 1f], [2, 2]);

        QParams q = TrainingQParams.FromObserver(observer);
        Assert.Equal(0, q.Axis);
        Assert.Equal(TrainingQParams.Choose(-1f, 2f, -128, 127, true).Scale, q.Scales[0]);
        Assert.Equal(1f / 64f, q.Scales[1]);
        Assert.Equal([0, 0], q.ZeroPoints);
    }

    [Fact]
    public void FromObserverRefusesOtherObserverKinds()
    {
        var observer = ObserverSpec.MinMax().Create("M.act");
        observer.Observe([0f, 1f], [2]);
        var error = Assert.Throws<ArgumentException>(() => TrainingQParams.FromObserver(observer));
        Assert.Contains("M.act", error.Message);
    }
}
