using System;
using System.Linq;
using QuantGen.Observers;
using QuantGen.Reports;
using QuantGen.Tests.Seeds;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantGen.Tests.Reports;

/// <summary>
/// Seed 003 ("my hand calculation gives 31, PyTorch gives 30") answered by QuantExplain alone: the explanation
/// of the output for input 24 re-computes the model's integer and shows the asker's formula diverging at the
/// scales as torch prints them.
/// </summary>
public sealed class Seed003ExplainTests(ITestOutputHelper output)
{
    [Fact]
    public void TheExplanationShowsWhereThirtyOneComesFrom()
    {
        using var model = new Seed003Model();
        model.eval();
        using (torch.no_grad())
        {
            model.Conv1.weight!.copy_(torch.full(new long[] { 1, 1, 1, 1 }, 0.4827f));
            model.Conv1.bias!.copy_(torch.full(new long[] { 1 }, 0.0317f));
        }

        // Seed 003's qconfig and calibration recipe (as Seed003Tests, with a generator of its own: tests run in parallel).
        var qconfig = new QConfig(
            ObserverSpec.Histogram(QuantDType.QUInt8, QScheme.PerTensorAffine, reduceRange: true),
            ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric),
            QuantBackend.X86);
        using Seed003Model.Observed observed = model.Prepare(qconfig);
        using (torch.no_grad())
        using (var generator = new torch.Generator(2024))
        using (Tensor calibration = torch.randint(0, 255, [1, 1, 4, 16], dtype: ScalarType.Byte, generator: generator).to(ScalarType.Float32) / 255)
        {
            observed.forward(calibration).Dispose();
        }

        Seed003Model.Quantized int8 = observed.Convert();
        float[] values = Enumerable.Range(0, 64).Select(k => (float)(byte)k / 255).ToArray();
        using Tensor input = torch.tensor(values, [1, 1, 4, 16]);
        QTensor qx = int8.quant.Forward(values, [1, 1, 4, 16]);
        int at = Array.IndexOf(qx.IntRepr(), 24);
        int[] index = [0, 0, at / 16, at % 16];

        var explanation = Assert.IsType<AccumulatorExplanation>(
            QuantExplain.Explain(int8, FloatModel.FromModule(model, int8.Graph, observed.forward), input, "conv1", index));
        string text = explanation.ToString();
        output.WriteLine(text);

        // The steps re-compute what the model gave for input 24: 30.
        Assert.Equal(24, Assert.Single(explanation.Terms).Input);
        Assert.Equal(127, explanation.Terms[0].Weight);
        Assert.Equal(24 * 127, explanation.Accumulator);
        Assert.Equal(30, explanation.ModelOutput);
        Assert.Equal(30, explanation.Result);

        // The asker's formula with the scales as torch prints them gives 31: the explanation names that step.
        HandCalculation printed = Assert.Single(explanation.HandCalculations, h => h.Name == "int32 bias, scales as printed");
        Assert.Equal(31, printed.Result);
        Assert.True(printed.Diverges);
        Assert.Contains("torch prints scales with 4 decimals", printed.Why, StringComparison.Ordinal);
        Assert.Contains("✗ int32 bias, scales as printed", text, StringComparison.Ordinal);
        Assert.Contains("→ 31  DIVERGES", text, StringComparison.Ordinal);

        // With the exact scales the same formula lands on the model's 30.
        HandCalculation exact = Assert.Single(explanation.HandCalculations, h => h.Name == "int32 bias, exact scales");
        Assert.Equal(30, exact.Result);
        Assert.False(exact.Diverges);
    }
}
