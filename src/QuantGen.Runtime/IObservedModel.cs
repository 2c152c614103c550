using System;
using System.Collections.Generic;
using QuantGen.Reports;
using TorchSharp;

namespace QuantGen;

/// <summary>
/// What every generated <c>M.Observed</c> (the calibration form) offers to tools that work on any model:
/// the float model it was prepared from and the fused float forward with a tap. Reports use it.
/// </summary>
public interface IObservedModel : IDisposable
{
    /// <summary>The user's float model the observed form was prepared from.</summary>
    torch.nn.Module Model { get; }

    /// <summary>The fused float forward, feeding the observers and reporting each op's output to <paramref name="tap"/>.</summary>
    /// <param name="input">A float input batch.</param>
    /// <param name="tap">Receives each layer's float output; null for none.</param>
    /// <returns>The float result.</returns>
    torch.Tensor forward(torch.Tensor input, IFloatTap? tap);

    /// <summary>
    /// Runs calibration batches through the observed forward under <c>torch.no_grad()</c> with the float model in eval
    /// mode, disposing each batch's intermediate tensors, and reports progress after every batch
    /// (<see cref="QuantGen.Calibration.ObservedCalibration.Run"/>).
    /// </summary>
    /// <param name="batches">Float input batches; those made before the call are not disposed, those the sequence makes on the fly are.</param>
    /// <param name="progress">Told the batches done, the total when the sequence knows it, and the time so far; null for none.</param>
    /// <returns>The final progress: batches run, the total, the time taken.</returns>
    QuantGen.Calibration.CalibrationProgress Calibrate(IEnumerable<torch.Tensor> batches, IProgress<QuantGen.Calibration.CalibrationProgress>? progress = null);
}
