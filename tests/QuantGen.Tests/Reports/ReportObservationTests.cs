using System;
using System.Linq;
using QuantGen.Observers;
using QuantGen.Reports;
using QuantGen.Tests.Generator.Models.ResNet;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Reports;

/// <summary>
/// A report or an explanation runs the calibrated observed model on its own inputs; the observers must not see them,
/// or a later <c>Convert()</c> quietly computes other qparams. And "clipped" counts only values more than half a step
/// outside the representable range.
/// </summary>
public sealed class ReportObservationTests
{
    [Fact]
    public void A_report_and_an_explanation_leave_every_observer_as_it_was()
    {
        using var resnet = ReportModels.ResNet();
        (float Scale, int ZeroPoint)[] before = QParamsOf(resnet.Observed);
        float inputScale = InputScale(resnet.Observed.Convert());

        // Three times wider than the calibration data: any observer that saw them would widen its range.
        Tensor[] wide = ReportModels.Batches(2, [2, 3, 32, 32], seed: 31, spread: 3f);
        try
        {
            QuantReport.Compare(resnet.Observed, resnet.Int8, wide);
            QuantReport.Compare(resnet.FloatSide, resnet.Int8, wide);
            QuantExplain.Explain(resnet.Int8, resnet.FloatSide, wide[0], "conv1", [0, 0, 0, 0]);

            Assert.Equal(before, QParamsOf(resnet.Observed));
            Assert.Equal(inputScale, InputScale(resnet.Observed.Convert()));

            // The same batches through the observed forward outside a report do change them: the check above can fail.
            using (torch.no_grad())
            {
                resnet.Observed.forward(wide[0]).Dispose();
            }

            Assert.NotEqual(before, QParamsOf(resnet.Observed));
            Assert.NotEqual(inputScale, InputScale(resnet.Observed.Convert()));
        }
        finally
        {
            foreach (Tensor batch in wide)
            {
                batch.Dispose();
            }
        }
    }

    [Fact]
    public void Observation_pauses_per_thread_and_nests()
    {
        Assert.False(Observation.IsPaused);
        using (Observation.Pause())
        {
            IDisposable inner = Observation.Pause();
            inner.Dispose();
            inner.Dispose();
            Assert.True(Observation.IsPaused);
            bool elsewhere = true;
            var thread = new System.Threading.Thread(() => elsewhere = Observation.IsPaused);
            thread.Start();
            thread.Join();
            Assert.False(elsewhere);
        }

        Assert.False(Observation.IsPaused);
    }

    [Fact]
    public void Values_within_half_a_step_of_the_range_are_not_clipped_and_values_beyond_are()
    {
        using var resnet = ReportModels.ResNet();
        QParams q = ((IQuantizedModel)resnet.Int8).Input.QParams;
        float scale = q.Scale;
        float low = (0 - q.ZeroPoint) * scale, high = (255 - q.ZeroPoint) * scale;
        Assert.Equal(QuantDType.QUInt8, q.DType);

        // Zeros (representable), then two values 0.4 steps outside the range and three 0.6 steps outside.
        var values = new float[2 * 3 * 32 * 32];
        values[10] = low - (0.4f * scale);
        values[20] = high + (0.4f * scale);
        values[30] = low - (0.6f * scale);
        values[40] = high + (0.6f * scale);
        values[50] = high + (0.6f * scale);
        using Tensor batch = torch.tensor(values, [2, 3, 32, 32]);
        QuantReport report = QuantReport.Compare(resnet.Observed, resnet.Int8, [batch]);

        ActivationRange input = report["input"].Range;
        Assert.Equal(low, input.Min);
        Assert.Equal(high, input.Max);
        Assert.Equal(3, input.Clipped);
        Assert.Equal(3.0 / values.Length, input.ClippedShare);
    }

    private static float InputScale(IQuantizedModel int8) => int8.Input.Scale;

    private static (float Scale, int ZeroPoint)[] QParamsOf(SmallResNet.Observed observed) =>
        observed.Observers.Where(o => o.HasObserved).Select(o => o.CalculateQParams()).Select(p => (p.Scale, p.ZeroPoint)).ToArray();
}
