using System;
using QuantGen;
using QuickStart;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.EndToEnd;

/// <summary>Bad input through the generated forms: clear errors naming model, layer, expected and actual.</summary>
public sealed class BadInputTests
{
    private static M.Quantized Calibrated(M model)
    {
        using M.Observed observed = model.Prepare();
        using Tensor batch = torch.randn(2, 1, 4, 5);
        using (torch.no_grad())
        {
            observed.forward(batch).Dispose();
        }

        return observed.Convert();
    }

    [Fact]
    public void PrepareInTrainingModeIsRefusedNamingTheModelAndTheRemedy()
    {
        // A new TorchSharp module is in training mode, as in PyTorch, whose fuse_modules refuses it
        // ("Fusion only for eval!"): BatchNorm would be folded with statistics that training still changes.
        using var model = new M();
        Assert.True(model.training);

        var error = Assert.Throws<InvalidOperationException>(() => model.Prepare());

        Assert.StartsWith("M.Prepare(): the model is in training mode.", error.Message, StringComparison.Ordinal);
        Assert.Contains("model.eval()", error.Message, StringComparison.Ordinal);
        model.eval();
        using M.Observed observed = model.Prepare();
        Assert.NotNull(observed);
    }

    [Fact]
    public void PrepareRefusesAPartOfTheModelLeftInTrainingMode()
    {
        using var model = new M();
        model.eval();
        model.Conv1.train();

        var error = Assert.Throws<InvalidOperationException>(() => model.Prepare(QConfig.Qnnpack));

        Assert.Contains("M.Prepare()", error.Message, StringComparison.Ordinal);
        Assert.Contains("'conv1' (Conv2d) is in training mode", error.Message, StringComparison.Ordinal);
        Assert.Contains("model.eval()", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AMistypedMappingPathIsReportedWithoutAnInternalParameterName()
    {
        using var model = new M();
        model.eval();
        QConfigMapping mapping = M.DefaultQConfigMapping().SetModuleName("conv3", null);

        var error = Assert.Throws<ArgumentException>(() => model.Prepare(mapping));

        Assert.Contains("'conv3'", error.Message, StringComparison.Ordinal);
        // ArgumentException appends "(Parameter 'knownPaths')" when given a parameter name: Prepare's caller
        // never wrote such a parameter, so the message must not end with one.
        Assert.Null(error.ParamName);
        Assert.DoesNotContain("(Parameter", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WrongChannelCountNamesModelLayerAndShapes()
    {
        torch.manual_seed(1);
        using var model = new M();
        model.eval();
        M.Quantized int8 = Calibrated(model);
        using Tensor wrong = torch.randn(1, 3, 2, 3);

        var error = Assert.ThrowsAny<ArgumentException>(() => int8.forward(wrong).Dispose());

        Assert.Contains("M.conv1", error.Message);
        Assert.Contains("[1, 3, 2, 3]", error.Message);
        Assert.Contains("1 channel", error.Message);
    }

    [Fact]
    public void WrongRankNamesModelLayerAndShapes()
    {
        torch.manual_seed(1);
        using var model = new M();
        model.eval();
        M.Quantized int8 = Calibrated(model);

        var error = Assert.ThrowsAny<ArgumentException>(() => int8.forward(new float[6], [1, 2, 3], out _));

        Assert.Contains("M.conv1", error.Message);
        Assert.Contains("[1, 2, 3]", error.Message);
        Assert.Contains("rank 4", error.Message);
    }

    [Fact]
    public void WrongChannelCountInTheFloatObservedFormIsAlsoNamed()
    {
        using var model = new M();
        model.eval();
        using M.Observed observed = model.Prepare();
        using Tensor wrong = torch.randn(1, 2, 3, 3);

        var error = Assert.ThrowsAny<ArgumentException>(() => observed.forward(wrong).Dispose());

        Assert.Contains("M.conv1", error.Message);
        Assert.Contains("[1, 2, 3, 3]", error.Message);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void NonFiniteCalibrationDataIsRejectedNamingTheObserversLayer(float bad)
    {
        using var model = new M();
        model.eval();
        using M.Observed observed = model.Prepare();
        using Tensor batch = torch.randn(1, 1, 2, 3);
        batch[0, 0, 1, 2] = torch.tensor(bad);

        var error = Assert.ThrowsAny<ArgumentException>(() => observed.forward(batch).Dispose());

        Assert.Contains("M.quant", error.Message);
    }

    [Fact]
    public void ConvertBeforeCalibrationIsAClearError()
    {
        using var model = new M();
        model.eval();
        using M.Observed observed = model.Prepare();

        var error = Assert.Throws<InvalidOperationException>(() => observed.Convert());

        Assert.Contains("M.quant", error.Message);
        Assert.Contains("no data", error.Message);
    }
}
