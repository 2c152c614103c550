using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using QuantGen.Observers;
using TorchSharp;

namespace QuantGen.Calibration;

/// <summary>
/// The calibration loop every observed model's <c>Calibrate</c> runs: each batch through the observed forward under
/// <c>torch.no_grad()</c> with the float model in eval mode, the batch's intermediate tensors disposed before the
/// next, progress reported after every batch.
/// </summary>
public static class ObservedCalibration
{
    /// <summary>Runs calibration batches through an observed model.</summary>
    /// <param name="observed">The observed model (<c>M.Observed</c>).</param>
    /// <param name="batches">
    /// Float input batches. Batches that exist before the call are not disposed; tensors created while the sequence
    /// produces a batch (a lazy <c>Select</c>, a data loader) are disposed after that batch has run.
    /// </param>
    /// <param name="progress">Told after every batch (and once before the first); null for none. It is called on the calibrating thread.</param>
    /// <returns>The final progress: batches run, the total, the time taken.</returns>
    /// <exception cref="ArgumentException">A batch is null, or there is no batch at all (the message names the model).</exception>
    /// <exception cref="InvalidOperationException">Observation is paused on this thread (<see cref="Observation.Pause"/>): calibrating would observe nothing.</exception>
    public static CalibrationProgress Run(IObservedModel observed, IEnumerable<torch.Tensor> batches, IProgress<CalibrationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(observed);
        ArgumentNullException.ThrowIfNull(batches);
        string model = observed.Model.GetName();
        if (Observation.IsPaused)
        {
            throw new InvalidOperationException($"{model}.Calibrate(): observation is paused on this thread (Observation.Pause()), so the observers would see nothing; calibrate outside the paused scope.");
        }

        int? total = batches.TryGetNonEnumeratedCount(out int count) ? count : null;
        var clock = Stopwatch.StartNew();
        int done = 0;
        progress?.Report(new CalibrationProgress(0, total, TimeSpan.Zero));
        bool wasTraining = observed.Model.training;
        if (wasTraining)
        {
            observed.Model.eval();
        }

        try
        {
            using var noGrad = torch.no_grad();
            using IEnumerator<torch.Tensor> batch = batches.GetEnumerator();
            while (true)
            {
                // The scope is opened before the sequence produces the batch, so a batch made on the fly is disposed with
                // the forward's intermediates and result; tensors made before the call belong to no scope of ours.
                using (torch.NewDisposeScope())
                {
                    if (!batch.MoveNext())
                    {
                        break;
                    }

                    torch.Tensor input = batch.Current ?? throw new ArgumentException($"{model}.Calibrate(): batch {done} is null.", nameof(batches));
                    observed.forward(input, null);
                }

                done++;
                progress?.Report(new CalibrationProgress(done, total, clock.Elapsed));
            }
        }
        finally
        {
            if (wasTraining)
            {
                observed.Model.train();
            }
        }

        if (done == 0)
        {
            throw new ArgumentException($"{model}.Calibrate(): the batch sequence is empty; calibration needs at least one float input batch.", nameof(batches));
        }

        return new CalibrationProgress(done, total, clock.Elapsed);
    }
}
