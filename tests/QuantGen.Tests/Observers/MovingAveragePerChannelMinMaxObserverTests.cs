using System;
using QuantGen.Observers;

namespace QuantGen.Tests.Observers;

public class MovingAveragePerChannelMinMaxObserverTests
{
    private static MovingAveragePerChannelMinMaxObserver Create(float averagingConstant = 0.01f, int axis = 0, QScheme scheme = QScheme.PerChannelSymmetric) =>
        (MovingAveragePerChannelMinMaxObserver)ObserverSpec.MovingAveragePerChannelMinMax(averagingConstant, QuantDType.QInt8, scheme, axis).Create("M.conv.weight");

    [Fact]
    public void FirstBatchSetsEachChannelsRangeOutright()
    {
        var observer = Create();

        // Two channels along axis 0 of a [2, 3] weight.
        observer.Observe([0.5f, -1f, 3f, /* channel 1 */ 2f, 4f, -0.25f], [2, 3]);

        Assert.Equal([-1f, -0.25f], observer.MinValues);
        Assert.Equal([3f, 4f], observer.MaxValues);
        Assert.Equal(0, observer.ResolvedChannelAxis);
    }

    [Fact]
    public void LaterBatchesMoveEachChannelByTheAveragingConstantInFloat32()
    {
        var observer = Create();
        observer.Observe([-1f, 3f, /* ch 1 */ 0f, 2f], [2, 2]);
        observer.Observe([-3f, 5f, /* ch 1 */ -1f, 1f], [2, 2]);

        // By hand, one float32 operation at a time with c = 0.01f: channel 0 min -1 -> -1 + 0.01f * (-3 - -1).
        float c = 0.01f;
        float min0 = -1f + (c * (-3f - -1f));
        float max0 = 3f + (c * (5f - 3f));
        float min1 = 0f + (c * (-1f - 0f));
        float max1 = 2f + (c * (1f - 2f));
        Assert.Equal([min0, min1], observer.MinValues);
        Assert.Equal([max0, max1], observer.MaxValues);
    }

    [Fact]
    public void ExactlyRepresentableAveragingOnAxisOneOfARankThreeTensor()
    {
        // c = 0.5 keeps every step exact. Shape [2, 2, 2], channels along axis 1: channel 0 holds elements
        // [0,0,*] and [1,0,*], channel 1 holds [0,1,*] and [1,1,*].
        var observer = Create(averagingConstant: 0.5f, axis: 1, scheme: QScheme.PerChannelAffine);
        observer.Observe([1f, 2f, /* ch1 */ -4f, 0f, /* ch0 */ 3f, -2f, /* ch1 */ 8f, 1f], [2, 2, 2]);
        Assert.Equal([-2f, -4f], observer.MinValues);
        Assert.Equal([3f, 8f], observer.MaxValues);

        observer.Observe([0f, 0f, 0f, 0f, 2f, 0f, 0f, 4f], [2, 2, 2]);

        // ch0: batch range [0, 2] -> min -2 + 0.5 * (0 - -2) = -1, max 3 + 0.5 * (2 - 3) = 2.5.
        // ch1: batch range [0, 4] -> min -4 + 0.5 * 4 = -2, max 8 + 0.5 * (4 - 8) = 6.
        Assert.Equal([-1f, -2f], observer.MinValues);
        Assert.Equal([2.5f, 6f], observer.MaxValues);

        // Affine qint8: scale = (max - min) / 255, zero point = -128 - round(min / scale).
        QParams q = observer.CalculateQParams();
        Assert.Equal(1, q.Axis);
        Assert.Equal([3.5f / 255f, 8f / 255f], q.Scales);
        Assert.Equal(-128 - (int)MathF.Round(-1f / (3.5f / 255f), MidpointRounding.ToEven), q.ZeroPoints[0]);
        Assert.Equal(-128 - (int)MathF.Round(-2f / (8f / 255f), MidpointRounding.ToEven), q.ZeroPoints[1]);
    }

    [Fact]
    public void SymmetricQParamsUseTheObserverFormulaPerChannel()
    {
        var observer = Create(averagingConstant: 1f);
        observer.Observe([-1f, 2f, /* ch 1 */ -0.5f, 0.25f], [2, 2]);

        // PyTorch's observer formula: max(|min|, max) / ((127 - -128) / 2) = / 127.5, zero point 0.
        QParams q = observer.CalculateQParams();
        Assert.Equal([2f / 127.5f, 0.5f / 127.5f], q.Scales);
        Assert.Equal([0, 0], q.ZeroPoints);
    }

    [Fact]
    public void NegativeAxisCountsFromTheEnd()
    {
        var observer = Create(axis: -1);
        observer.Observe([1f, -2f, 3f, -4f], [2, 2]);

        Assert.Equal(1, observer.ResolvedChannelAxis);
        Assert.Equal([1f, -4f], observer.MinValues);
        Assert.Equal([3f, -2f], observer.MaxValues);
    }

    [Fact]
    public void AChangedChannelCountIsAnErrorNamingTheLayer()
    {
        var observer = Create();
        observer.Observe([1f, 2f], [2, 1]);

        var error = Assert.Throws<ArgumentException>(() => observer.Observe([1f, 2f, 3f], [3, 1]));
        Assert.Contains("M.conv.weight", error.Message);
        Assert.Contains("saw 2 channels", error.Message);
    }

    [Fact]
    public void APerTensorSchemeIsRefused()
    {
        var spec = ObserverSpec.MovingAveragePerChannelMinMax(scheme: QScheme.PerTensorSymmetric);
        var error = Assert.Throws<ArgumentException>(() => spec.Create("M.conv.weight"));
        Assert.Contains("per-channel", error.Message);
    }

    [Fact]
    public void AnAveragingConstantOutsideTheUnitIntervalIsRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => ObserverSpec.MovingAveragePerChannelMinMax(averagingConstant: 0f).Create("M.conv.weight"));
        Assert.Contains("averaging_constant", error.Message);
    }

    [Fact]
    public void SpecTextNamesAxisAndAveragingConstant()
    {
        string text = ObserverSpec.MovingAveragePerChannelMinMax(0.01f, channelAxis: 1).ToString();
        Assert.Equal("MovingAveragePerChannelMinMaxObserver(dtype=torch.qint8, qscheme=torch.per_channel_symmetric, reduce_range=False, ch_axis=1, averaging_constant=0.01)", text);
    }
}
