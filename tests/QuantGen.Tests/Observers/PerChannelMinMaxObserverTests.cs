using System;
using QuantGen.Observers;

namespace QuantGen.Tests.Observers;

public class PerChannelMinMaxObserverTests
{
    // A [3, 2, 2] tensor, row-major; element (c, i, j) sits at c*4 + i*2 + j.
    private static readonly float[] Tensor322 =
    [
        1f, -2f,   3f, 0.5f,   // c = 0
        4f, 5f,    -1f, 2f,    // c = 1
        0f, 0f,    0f, 0f,     // c = 2
    ];

    private static readonly int[] Shape322 = [3, 2, 2];

    [Fact]
    public void ChannelAxis0ReducesTheOtherTwoDimensions()
    {
        var observer = (PerChannelMinMaxObserver)ObserverSpec.PerChannelMinMax().Create("M.conv1.weight");
        observer.Observe(Tensor322, Shape322);

        Assert.Equal([-2f, -1f, 0f], observer.MinValues);
        Assert.Equal([3f, 5f, 0f], observer.MaxValues);

        // Default: qint8, per_channel_symmetric: scale_c = max(-min_c, max_c) / 127.5, an all-zero channel eps.
        QParams q = observer.CalculateQParams();
        Assert.True(q.IsPerChannel);
        Assert.Equal(0, q.Axis);
        Assert.Equal([3f / 127.5f, 5f / 127.5f, 1.1920929e-07f], q.Scales);
        Assert.Equal([0, 0, 0], q.ZeroPoints);
        Assert.Equal(QuantDType.QInt8, q.DType);
    }

    [Fact]
    public void ChannelAxis1ReducesDimensions0And2()
    {
        var observer = (PerChannelMinMaxObserver)ObserverSpec.PerChannelMinMax(channelAxis: 1).Create("M.conv1.weight");
        observer.Observe(Tensor322, Shape322);

        // i = 0: {1, -2, 4, 5, 0, 0}; i = 1: {3, 0.5, -1, 2, 0, 0}.
        Assert.Equal([-2f, -1f], observer.MinValues);
        Assert.Equal([5f, 3f], observer.MaxValues);
        QParams q = observer.CalculateQParams();
        Assert.Equal(1, q.Axis);
        Assert.Equal([5f / 127.5f, 3f / 127.5f], q.Scales);
    }

    [Fact]
    public void NegativeChannelAxisCountsFromTheEnd()
    {
        var observer = (PerChannelMinMaxObserver)ObserverSpec.PerChannelMinMax(channelAxis: -1).Create("M.conv1.weight");
        observer.Observe(Tensor322, Shape322);

        // j = 0: {1, 3, 4, -1, 0, 0}; j = 1: {-2, 0.5, 5, 2, 0, 0}.
        Assert.Equal([-1f, -2f], observer.MinValues);
        Assert.Equal([4f, 5f], observer.MaxValues);
        Assert.Equal(2, observer.CalculateQParams().Axis);
    }

    [Fact]
    public void AffineQUInt8PerChannelUsesThePerTensorFormulaPerChannel()
    {
        var observer = ObserverSpec.PerChannelMinMax(QuantDType.QUInt8, QScheme.PerChannelAffine).Create("M.conv1.weight");
        observer.Observe(Tensor322, Shape322);
        QParams q = observer.CalculateQParams();

        // c0: [-2, 3] -> 5/255, zp = -round(-2 / (5/255)) = -round(-102) = 102;
        // c1: [-1, 5] -> 6/255, zp = -round(-1 / (6/255)) (about 42.5 before rounding);  c2: [0, 0] -> eps, zp 0.
        float s0 = 5f / 255f;
        float s1 = 6f / 255f;
        Assert.Equal([s0, s1, 1.1920929e-07f], q.Scales);
        Assert.Equal(
            [0 - (int)MathF.Round(-2f / s0, MidpointRounding.ToEven), 0 - (int)MathF.Round(-1f / s1, MidpointRounding.ToEven), 0],
            q.ZeroPoints);
        Assert.Equal(102, q.ZeroPoints[0]);
    }

    [Fact]
    public void MinAndMaxRunAcrossBatches()
    {
        var observer = (PerChannelMinMaxObserver)ObserverSpec.PerChannelMinMax().Create("M.conv1.weight");
        observer.Observe(Tensor322, Shape322);
        float[] second = new float[12];
        second[0] = -7f;   // c0 goes lower
        second[7] = 9f;    // c1 goes higher
        second[9] = 0.25f; // c2 leaves zero
        observer.Observe(second, Shape322);

        Assert.Equal([-7f, -1f, 0f], observer.MinValues);
        Assert.Equal([3f, 9f, 0.25f], observer.MaxValues);
        Assert.Equal([7f / 127.5f, 9f / 127.5f, 0.25f / 127.5f], observer.CalculateQParams().Scales);
    }

    [Fact]
    public void MinValuesAndMaxValuesAreCopies()
    {
        var observer = (PerChannelMinMaxObserver)ObserverSpec.PerChannelMinMax().Create("M.conv1.weight");
        observer.Observe(Tensor322, Shape322);
        observer.MinValues[0] = 100f;
        observer.MaxValues[0] = -100f;

        Assert.Equal(-2f, observer.MinValues[0]);
        Assert.Equal(3f, observer.MaxValues[0]);
    }

    [Fact]
    public void ChangingTheChannelCountIsAnErrorNamingTheLayer()
    {
        var observer = ObserverSpec.PerChannelMinMax().Create("M.conv1.weight");
        observer.Observe(Tensor322, Shape322);

        var error = Assert.Throws<ArgumentException>(() => observer.Observe(new float[8], [2, 2, 2]));
        Assert.Contains("M.conv1.weight", error.Message);
        Assert.Contains("3 channels", error.Message);
    }

    [Fact]
    public void ChannelAxisBeyondTheRankIsAnErrorNamingTheLayer()
    {
        var observer = ObserverSpec.PerChannelMinMax(channelAxis: 3).Create("M.conv1.weight");

        var error = Assert.Throws<ArgumentException>(() => observer.Observe(Tensor322, Shape322));
        Assert.Contains("M.conv1.weight", error.Message);
    }
}
