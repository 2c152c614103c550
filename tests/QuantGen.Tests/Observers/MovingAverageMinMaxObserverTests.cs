using System;
using QuantGen.Observers;

namespace QuantGen.Tests.Observers;

public class MovingAverageMinMaxObserverTests
{
    [Fact]
    public void FirstBatchSetsTheRangeOutright()
    {
        var observer = (MovingAverageMinMaxObserver)ObserverSpec.MovingAverageMinMax().Create("M.quant");
        observer.ObserveFlat([0.5f, -1f, 3f]);

        Assert.Equal(-1f, observer.Min);
        Assert.Equal(3f, observer.Max);
    }

    [Theory]
    [InlineData("MovingAverageMinMax")]
    [InlineData("MinMax")]
    public void ObservingRectifiedValuesIsObservingTheirRelu(string kind)
    {
        // Three batches: mixed signs, all negative (relu gives all zeros), all positive.
        float[][] batches = [[0.5f, -1f, 3f, -0f], [-2f, -0.25f], [0.125f, 7f]];
        ObserverSpec spec = kind == "MinMax" ? ObserverSpec.MinMax() : ObserverSpec.MovingAverageMinMax();
        Observer rectified = spec.Create("M.conv");
        Observer reference = spec.Create("M.conv");
        Assert.True(rectified.CanObserveRectified);
        foreach (float[] batch in batches)
        {
            Assert.True(rectified.TryObserveRectified(batch, [batch.Length]));
            reference.ObserveFlat(Array.ConvertAll(batch, v => MathF.Max(v, 0f)));
        }

        Assert.Equal(reference.CalculateQParams().Scale, rectified.CalculateQParams().Scale);
        Assert.Equal(reference.CalculateQParams().ZeroPoint, rectified.CalculateQParams().ZeroPoint);
        Assert.Equal(reference.BatchCount, rectified.BatchCount);

        // Bad data is refused the same way, and an observer that needs the values declines.
        Assert.Throws<ArgumentException>(() => rectified.TryObserveRectified([1f, float.NaN], [2]));
        Observer histogram = ObserverSpec.Histogram().Create("M.conv");
        Assert.False(histogram.CanObserveRectified);
        Assert.False(histogram.TryObserveRectified([1f, 2f], [2]));
        Assert.False(histogram.HasObserved);
    }

    [Fact]
    public void LaterBatchesMoveTheRangeByTheAveragingConstantInFloat32()
    {
        var observer = (MovingAverageMinMaxObserver)ObserverSpec.MovingAverageMinMax().Create("M.quant");
        observer.ObserveFlat([-1f, 3f]);
        observer.ObserveFlat([-3f, 0f, 5f]);
        observer.ObserveFlat([-2f, 4f]);

        // By hand, one float32 operation at a time, c = 0.01f:
        float c = 0.01f;
        float min = -1f;
        float max = 3f;
        float step = c * (-3f - min);
        min = min + step;             // -1 + 0.01f * -2
        step = c * (5f - max);
        max = max + step;             //  3 + 0.01f *  2
        step = c * (-2f - min);
        min = min + step;
        step = c * (4f - max);
        max = max + step;

        Assert.Equal(min, observer.Min);
        Assert.Equal(max, observer.Max);

        // The same recurrence in double lands elsewhere for min, so the float32 path is what is being checked.
        double minInDouble = -1.0 + (0.01 * (-3.0 - -1.0));
        minInDouble += 0.01 * (-2.0 - minInDouble);
        Assert.NotEqual((float)minInDouble, observer.Min);

        QParams q = observer.CalculateQParams();
        float scale = (max - min) / 255f;
        Assert.Equal(scale, q.Scale);
        Assert.Equal(0 - (int)MathF.Round(min / scale, MidpointRounding.ToEven), q.ZeroPoint);
    }

    [Fact]
    public void ExactlyRepresentableAveragingMatchesHandArithmetic()
    {
        // c = 0.5: min = 0 + 0.5 * (2 - 0) = 1, max = 4 + 0.5 * (8 - 4) = 6; every step exact.
        var observer = (MovingAverageMinMaxObserver)ObserverSpec.MovingAverageMinMax(averagingConstant: 0.5f).Create("M.quant");
        observer.ObserveFlat([0f, 4f]);
        observer.ObserveFlat([2f, 8f]);

        Assert.Equal(1f, observer.Min);
        Assert.Equal(6f, observer.Max);
        QParams q = observer.CalculateQParams();
        Assert.Equal(6f / 255f, q.Scale); // min_neg = min(1, 0) = 0
        Assert.Equal(0, q.ZeroPoint);
    }
}
