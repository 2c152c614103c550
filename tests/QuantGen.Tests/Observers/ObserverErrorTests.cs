using System;
using QuantGen.Observers;

namespace QuantGen.Tests.Observers;

public class ObserverErrorTests
{
    public static TheoryData<ObserverKind> Kinds => [ObserverKind.MinMax, ObserverKind.MovingAverageMinMax, ObserverKind.PerChannelMinMax, ObserverKind.Histogram];

    private static Observer Create(ObserverKind kind) => kind switch
    {
        ObserverKind.MinMax => ObserverSpec.MinMax().Create("M.conv1"),
        ObserverKind.MovingAverageMinMax => ObserverSpec.MovingAverageMinMax().Create("M.conv1"),
        ObserverKind.PerChannelMinMax => ObserverSpec.PerChannelMinMax().Create("M.conv1"),
        _ => ObserverSpec.Histogram().Create("M.conv1"),
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void NaNInABatchIsRejectedNamingTheLayer(ObserverKind kind)
    {
        Observer observer = Create(kind);
        var error = Assert.Throws<ArgumentException>(() => observer.Observe([1f, float.NaN, 2f, 3f], [2, 2]));
        Assert.Contains("M.conv1", error.Message);
        Assert.False(observer.HasObserved);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void InfinityInALaterBatchIsRejectedAndLeavesTheStatisticsAlone(ObserverKind kind)
    {
        Observer observer = Create(kind);
        observer.Observe([1f, -2f, 2f, 3f], [2, 2]);
        QParams before = observer.CalculateQParams();

        var error = Assert.Throws<ArgumentException>(() => observer.Observe([1f, float.PositiveInfinity, 2f, 3f], [2, 2]));
        Assert.Contains("M.conv1", error.Message);
        Assert.Equal(1, observer.BatchCount);
        Assert.Equal(before.Scales, observer.CalculateQParams().Scales);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void QParamsBeforeAnyBatchIsAnErrorNamingTheLayer(ObserverKind kind)
    {
        Observer observer = Create(kind);
        var error = Assert.Throws<InvalidOperationException>(() => observer.CalculateQParams());
        Assert.Contains("M.conv1", error.Message);
    }

    [Fact]
    public void HistogramSearchBeforeAnyBatchIsAnErrorNamingTheLayer()
    {
        var observer = (HistogramObserver)ObserverSpec.Histogram().Create("M.conv1");
        var error = Assert.Throws<InvalidOperationException>(() => observer.SearchClippingRange());
        Assert.Contains("M.conv1", error.Message);
    }

    [Theory]
    [InlineData(ObserverKind.MinMax)]
    [InlineData(ObserverKind.MovingAverageMinMax)]
    [InlineData(ObserverKind.Histogram)]
    public void PerTensorObserversRefuseAPerChannelScheme(ObserverKind kind)
    {
        // ObserverSpec.Validate refuses the combination before the constructor does; either way it names the problem.
        var spec = new ObserverSpec(kind, QuantDType.QInt8, QScheme.PerChannelSymmetric);
        Assert.Throws<ArgumentException>(() => spec.Create("M.conv1"));
    }
}
