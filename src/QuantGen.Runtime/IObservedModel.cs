using System;
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
}
