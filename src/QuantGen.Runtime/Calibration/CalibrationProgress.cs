using System;
using System.Globalization;

namespace QuantGen.Calibration;

/// <summary>How far an observed model's <c>Calibrate</c> has got: reported after every batch, and returned at the end.</summary>
/// <param name="BatchesDone">Batches run through the observed model so far.</param>
/// <param name="TotalBatches">How many batches there are, when the sequence knows its count without being enumerated (an array, a list); otherwise null.</param>
/// <param name="Elapsed">Time since calibration started.</param>
public readonly record struct CalibrationProgress(int BatchesDone, int? TotalBatches, TimeSpan Elapsed)
{
    /// <summary>The share done, 0..1, when the total is known; otherwise null.</summary>
    public double? Fraction => TotalBatches is int total and > 0 ? (double)BatchesDone / total : null;

    /// <summary>One line for a log: <c>12/32 batches, 1.4 s</c>.</summary>
    /// <returns>The line.</returns>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{BatchesDone}{(TotalBatches is int total ? "/" + total.ToString(CultureInfo.InvariantCulture) : string.Empty)} batches, {Elapsed.TotalSeconds:F1} s");
}
