using System;
using System.Linq;
using QuantGen.Observers;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Calibration;

/// <summary>The three calibration methods as QConfig choices: ObserverSpec factories, validation, text, and [QConfig].</summary>
public sealed class CalibrationSpecTests
{
    [Fact]
    public void FactoriesMakeTheirObserversAndPrintLikePyTorchObservers()
    {
        Assert.IsType<PercentileObserver>(ObserverSpec.Percentile().Create("M.x"));
        Assert.IsType<EntropyObserver>(ObserverSpec.Entropy().Create("M.x"));
        Assert.IsType<MseObserver>(ObserverSpec.Mse().Create("M.x"));
        Assert.Equal(
            "PercentileObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=True, percentile=99.9, bins=2048)",
            ObserverSpec.Percentile(99.9, reduceRange: true).ToString());
        Assert.Equal(
            "EntropyObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, reduce_range=False, bins=1024)",
            ObserverSpec.Entropy(QuantDType.QInt8, QScheme.PerTensorSymmetric, bins: 1024).ToString());
        Assert.Equal(
            "MseObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=False, bins=2048)",
            ObserverSpec.Mse().ToString());
    }

    [Fact]
    public void ThePercentileIsPartOfTheRecipe()
    {
        Assert.Equal(99.99, ObserverSpec.Percentile().ClipPercentile);
        Assert.NotEqual(ObserverSpec.Percentile(99.9), ObserverSpec.Percentile(99.99));
        Assert.Equal(ObserverSpec.Percentile(99.9), ObserverSpec.Percentile() with { ClipPercentile = 99.9 });
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(100.5)]
    [InlineData(double.NaN)]
    public void APercentileOutsideZeroToHundredIsRefused(double percentile)
    {
        var error = Assert.Throws<ArgumentException>(() => ObserverSpec.Percentile(percentile).Create("M.conv1"));
        Assert.Contains("percentile must be in (0, 100]", error.Message);
    }

    [Theory]
    [InlineData(ObserverKind.Percentile)]
    [InlineData(ObserverKind.Entropy)]
    [InlineData(ObserverKind.Mse)]
    public void PerChannelSchemesAndSingleBinsAreRefused(ObserverKind kind)
    {
        var perChannel = new ObserverSpec(kind, QuantDType.QInt8, QScheme.PerChannelSymmetric);
        Assert.Contains("per-tensor qscheme", Assert.Throws<ArgumentException>(() => perChannel.Create("M.conv1")).Message);
        var oneBin = new ObserverSpec(kind, Bins: 1);
        Assert.Contains("bins must be at least 2", Assert.Throws<ArgumentException>(() => oneBin.Create("M.conv1")).Message);
    }

    [Fact]
    public void CalibrationNeedsDataAndRejectsNonFiniteValuesNamingTheLayer()
    {
        Observer observer = ObserverSpec.Entropy().Create("M.conv1");
        Assert.Contains("M.conv1", Assert.Throws<InvalidOperationException>(() => observer.CalculateQParams()).Message);
        Assert.Contains("M.conv1", Assert.Throws<ArgumentException>(() => observer.Observe([1f, float.NaN], [2])).Message);
    }

    [Fact]
    public void QConfigAttributesReachTheGeneratedDefaultMapping()
    {
        QConfigMapping mapping = CalibrationNet.DefaultQConfigMapping();
        ObserverSpec global = mapping.Global!.Activation;
        Assert.Equal(ObserverKind.Percentile, global.Kind);
        Assert.Equal(99.9, global.ClipPercentile);
        Assert.True(global.ReduceRange); // the rest of the X86 preset's activation recipe is kept
        Assert.Equal(ObserverKind.Entropy, mapping.Resolve("fc", "Linear")!.Activation.Kind);
        Assert.Equal(99.99, mapping.Resolve("fc", "Linear")!.Activation.ClipPercentile); // a path entry starts from the preset, not the global entry
        Assert.Equal(ObserverKind.Mse, mapping.Resolve("conv2", "Conv2d")!.Activation.Kind);
    }

    [Fact]
    public void PrepareCreatesTheChosenObserversAndConvertWorks()
    {
        torch.manual_seed(3);
        using var model = new CalibrationNet();
        model.RandomizeBatchNorm(3);
        model.eval();
        using CalibrationNet.Observed observed = model.Prepare();
        Assert.Contains(observed.Observers, o => o is PercentileObserver { Layer: "CalibrationNet.conv1" });
        Assert.Contains(observed.Observers, o => o is MseObserver { Layer: "CalibrationNet.conv2" });
        Assert.Contains(observed.Observers, o => o is EntropyObserver { Layer: "CalibrationNet.fc" });
        using (torch.no_grad())
        {
            for (int i = 0; i < 2; i++)
            {
                using Tensor batch = torch.randn(4, 3, 8, 8);
                observed.forward(batch).Dispose();
            }
        }

        CalibrationNet.Quantized int8 = observed.Convert();
        using Tensor x = torch.randn(2, 3, 8, 8);
        using Tensor y = int8.forward(x);
        Assert.Equal([2L, 5L], y.shape);
        Assert.All(observed.Observers, o => Assert.True(o.CalculateQParams().Scale > 0));
    }
}
