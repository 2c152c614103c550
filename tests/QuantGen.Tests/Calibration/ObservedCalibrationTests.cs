using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Calibration;
using QuantGen.Observers;
using QuantGen.Tests.Binding;
using QuantGen.Tests.Generator.Models.ResNet;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Calibration;

/// <summary>
/// <c>observed.Calibrate(batches, progress)</c> on both forms: the same observer state as the hand-written loop, progress
/// after every batch, no_grad and eval while it runs, batches made on the fly disposed and the caller's left alone.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class ObservedCalibrationTests
{
    [Fact]
    public void Calibrate_gives_the_observers_of_the_hand_written_loop_and_reports_every_batch()
    {
        torch.manual_seed(51);
        using var model = new SmallResNet();
        model.eval();
        Tensor[] batches = Enumerable.Range(0, 3).Select(_ => torch.randn(2, 3, 32, 32)).ToArray();
        try
        {
            using SmallResNet.Observed byHand = model.Prepare();
            using (torch.no_grad())
            {
                foreach (Tensor batch in batches)
                {
                    byHand.forward(batch).Dispose();
                }
            }

            using SmallResNet.Observed observed = model.Prepare();
            var reports = new List<CalibrationProgress>();
            var states = new List<(bool Grad, bool Training)>();
            CalibrationProgress done = observed.Calibrate(batches, new Recorder(p =>
            {
                reports.Add(p);
                states.Add((torch.is_grad_enabled(), model.training));
            }));

            Assert.Equal(QParamsOf(byHand.Observers), QParamsOf(observed.Observers));
            Assert.Equal([0, 1, 2, 3], reports.Select(r => r.BatchesDone));
            Assert.All(reports, r => Assert.Equal(3, r.TotalBatches));
            Assert.Equal(3, done.BatchesDone);
            Assert.Equal(1.0, done.Fraction);
            Assert.All(states.Skip(1), s => Assert.False(s.Grad));
            Assert.All(batches, b => Assert.False(b.IsInvalid));
        }
        finally
        {
            foreach (Tensor batch in batches)
            {
                batch.Dispose();
            }
        }
    }

    [Fact]
    public void Batches_made_on_the_fly_are_disposed_and_a_training_model_runs_in_eval_and_is_given_back_training()
    {
        torch.manual_seed(52);
        using var model = new AppendNet();
        model.eval();
        using AppendNet.Observed observed = model.Prepare();
        var made = new List<Tensor>();
        var trainingDuring = new List<bool>();
        model.train();
        CalibrationProgress done = observed.Calibrate(
            Enumerable.Range(0, 4).Where(_ => true).Select(_ =>
            {
                Tensor batch = torch.randn(2, 3, 8, 8);
                made.Add(batch);
                return batch;
            }),
            new Recorder(p => trainingDuring.Add(model.training)));

        Assert.Equal(4, done.BatchesDone);
        Assert.Null(done.TotalBatches);
        Assert.Null(done.Fraction);
        Assert.Equal(4, made.Count);
        Assert.All(made, b => Assert.True(b.IsInvalid, "a batch the sequence made should be disposed after it ran"));
        Assert.All(trainingDuring.Skip(1), t => Assert.False(t));
        Assert.True(model.training);
        Assert.All(observed.Observers, o => Assert.Equal(4, o.BatchCount));
    }

    [Fact]
    public void No_batch_or_a_paused_observation_is_refused_naming_the_model()
    {
        torch.manual_seed(53);
        using var model = new AppendNet();
        model.eval();
        using AppendNet.Observed observed = model.Prepare();
        var empty = Assert.Throws<ArgumentException>(() => observed.Calibrate(Array.Empty<Tensor>()));
        Assert.Contains("AppendNet", empty.Message, StringComparison.Ordinal);
        Assert.Contains("empty", empty.Message, StringComparison.Ordinal);

        using Tensor batch = torch.randn(2, 3, 8, 8);
        using (Observation.Pause())
        {
            var paused = Assert.Throws<InvalidOperationException>(() => observed.Calibrate([batch]));
            Assert.Contains("paused", paused.Message, StringComparison.Ordinal);
        }

        Assert.All(observed.Observers, o => Assert.Equal(0, o.BatchCount));
    }

    private static (float Scale, int ZeroPoint)[] QParamsOf(IReadOnlyList<Observer> observers) =>
        observers.Where(o => o.HasObserved).Select(o => o.CalculateQParams()).Select(q => (q.Scale, q.ZeroPoint)).ToArray();

    private sealed class Recorder(Action<CalibrationProgress> report) : IProgress<CalibrationProgress>
    {
        public void Report(CalibrationProgress value) => report(value);
    }
}
