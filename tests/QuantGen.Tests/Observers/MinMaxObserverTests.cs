using System;
using QuantGen.Observers;

namespace QuantGen.Tests.Observers;

public class MinMaxObserverTests
{
    private static QParams Observe(ObserverSpec spec, params float[][] batches)
    {
        Observer observer = spec.Create("M.conv1");
        foreach (float[] batch in batches)
        {
            observer.ObserveFlat(batch);
        }

        return observer.CalculateQParams();
    }

    [Fact]
    public void AffineQUInt8OnMinusOneToThree()
    {
        QParams q = Observe(ObserverSpec.MinMax(), [0.5f, -1f, 3f, 2f]);

        // scale = (max_pos - min_neg) / (qmax - qmin) = 4 / 255 in float32;
        // zero point = 0 - round(-1 / scale) = -round(-63.75) = 64.
        float scale = (3f - -1f) / 255f;
        Assert.Equal(scale, q.Scale);
        Assert.Equal(0 - (int)MathF.Round(-1f / scale, MidpointRounding.ToEven), q.ZeroPoint);
        Assert.Equal(64, q.ZeroPoint);
        Assert.Equal(QuantDType.QUInt8, q.DType);
        Assert.False(q.IsPerChannel);
    }

    [Fact]
    public void AffineQInt8ShiftsTheZeroPointByQuantMin()
    {
        QParams q = Observe(ObserverSpec.MinMax(QuantDType.QInt8), [-1f, 3f]);

        // Same scale as quint8; zero point = -128 - round(-63.75) = -128 + 64.
        Assert.Equal(4f / 255f, q.Scale);
        Assert.Equal(-64, q.ZeroPoint);
    }

    [Fact]
    public void RunningMinAndMaxSpanEveryBatch()
    {
        var observer = (MinMaxObserver)ObserverSpec.MinMax().Create("M.quant");
        observer.ObserveFlat([1f, 2f]);
        observer.ObserveFlat([-3f, 0.5f]);
        observer.ObserveFlat([4f, 0f]);

        Assert.Equal(-3f, observer.Min);
        Assert.Equal(4f, observer.Max);
        Assert.Equal(3, observer.BatchCount);
        QParams q = observer.CalculateQParams();
        Assert.Equal(7f / 255f, q.Scale);
        Assert.Equal(0 - (int)MathF.Round(-3f / (7f / 255f), MidpointRounding.ToEven), q.ZeroPoint);
    }

    [Fact]
    public void BeforeAnyBatchMinAndMaxAreTheInfinitiesPyTorchStartsFrom()
    {
        var observer = (MinMaxObserver)ObserverSpec.MinMax().Create("M.quant");
        Assert.Equal(float.PositiveInfinity, observer.Min);
        Assert.Equal(float.NegativeInfinity, observer.Max);
    }

    [Fact]
    public void SymmetricQInt8DividesBy127Point5()
    {
        QParams q = Observe(ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric), [-2f, 5f, 1f]);

        // max(-min_neg, max_pos) / ((127 - -128) / 2) = 5 / 127.5
        Assert.Equal(5f / 127.5f, q.Scale);
        Assert.Equal(0, q.ZeroPoint);
    }

    [Fact]
    public void SymmetricQUInt8CentresTheZeroPointAt128()
    {
        QParams q = Observe(ObserverSpec.MinMax(QuantDType.QUInt8, QScheme.PerTensorSymmetric), [-2f, 5f]);

        Assert.Equal(5f / 127.5f, q.Scale);
        Assert.Equal(128, q.ZeroPoint);
    }

    [Fact]
    public void ReduceRangeHalvesQUInt8To0To127()
    {
        QParams q = Observe(ObserverSpec.MinMax(reduceRange: true), [-1f, 3f]);

        // scale = 4 / 127; zero point = -round(-1 / (4/127)) = -round(-31.75) = 32.
        Assert.Equal(4f / 127f, q.Scale);
        Assert.Equal(32, q.ZeroPoint);
    }

    [Fact]
    public void ReduceRangeSymmetricQInt8DividesBy63Point5()
    {
        QParams q = Observe(ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric, reduceRange: true), [-2f, 5f]);

        Assert.Equal(5f / 63.5f, q.Scale);
        Assert.Equal(0, q.ZeroPoint);
    }

    [Fact]
    public void CustomQuantRangeShapesScaleAndZeroPoint()
    {
        // quant_min=0, quant_max=15 (4-bit): scale = 4 / 15; zero point = -round(-1 / (4/15)) = -round(-3.75) = 4.
        QParams affine = Observe(ObserverSpec.MinMax(quantMin: 0, quantMax: 15), [-1f, 3f]);
        Assert.Equal(4f / 15f, affine.Scale);
        Assert.Equal(4, affine.ZeroPoint);

        // PyTorch's weight_observer_range_neg_127_to_127: (127 - -127) / 2 = 127.
        QParams narrowSymmetric = Observe(ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric, quantMin: -127, quantMax: 127), [-2f, 5f]);
        Assert.Equal(5f / 127f, narrowSymmetric.Scale);
        Assert.Equal(0, narrowSymmetric.ZeroPoint);

        // quint8 symmetric with a custom range: zero point (quant_min + quant_max) // 2 = 100.
        QParams uintSymmetric = Observe(ObserverSpec.MinMax(QuantDType.QUInt8, QScheme.PerTensorSymmetric, quantMin: 0, quantMax: 200), [-2f, 5f]);
        Assert.Equal(5f / 100f, uintSymmetric.Scale);
        Assert.Equal(100, uintSymmetric.ZeroPoint);

        // A custom range is halved by reduce_range too: 0..15 -> 0..7.
        QParams reduced = Observe(ObserverSpec.MinMax(reduceRange: true, quantMin: 0, quantMax: 15), [0f, 3.5f]);
        Assert.Equal(3.5f / 7f, reduced.Scale);
        Assert.Equal(0, reduced.ZeroPoint);
    }

    [Theory]
    [InlineData(QuantDType.QUInt8, QScheme.PerTensorAffine, 0)]
    [InlineData(QuantDType.QInt8, QScheme.PerTensorAffine, -128)]
    [InlineData(QuantDType.QInt8, QScheme.PerTensorSymmetric, 0)]
    public void AllZeroTensorGetsScaleEps(QuantDType dtype, QScheme scheme, int zeroPoint)
    {
        QParams q = Observe(ObserverSpec.MinMax(dtype, scheme), new float[16]);

        Assert.Equal(1.1920929e-07f, q.Scale); // torch.finfo(torch.float32).eps
        Assert.Equal(zeroPoint, q.ZeroPoint);
    }

    [Fact]
    public void ZeroIsAlwaysInsideTheRange()
    {
        // Positive data: min_neg = 0, so scale = 6 / 255 and zero point 0.
        QParams positive = Observe(ObserverSpec.MinMax(), [2f, 6f]);
        Assert.Equal(6f / 255f, positive.Scale);
        Assert.Equal(0, positive.ZeroPoint);

        // Negative data: max_pos = 0, so the zero point sits at the top, 255.
        QParams negative = Observe(ObserverSpec.MinMax(), [-6f, -2f]);
        Assert.Equal(6f / 255f, negative.Scale);
        Assert.Equal(255, negative.ZeroPoint);
    }

    [Fact]
    public void SymmetricQUInt8WithReduceRangeIsRefusedAsInPyTorch()
    {
        var spec = ObserverSpec.MinMax(QuantDType.QUInt8, QScheme.PerTensorSymmetric, reduceRange: true);
        var error = Assert.Throws<ArgumentException>(() => spec.Create("M.conv1"));
        Assert.Contains("M.conv1", error.Message);
    }
}
