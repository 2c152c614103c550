using System;

namespace QuantGen.Observers;

/// <summary>
/// PyTorch's <c>FixedQParamsObserver</c>: an observer whose qparams were decided elsewhere (<see cref="ObserverSpec.Fixed"/>:
/// scale and zero point, or a range turned into them with the spec's dtype and scheme). Calibration batches pass
/// through it unrecorded; <see cref="Observer.CalculateQParams"/> needs none.
/// </summary>
public sealed class FixedQParamsObserver : Observer
{
    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    /// <exception cref="ArgumentException">The spec has no fixed values, or they do not suit its dtype or scheme (the message names the layer).</exception>
    public FixedQParamsObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
        if (spec.Fixed is null)
        {
            throw new ArgumentException($"{layer}: a FixedQParamsObserver needs its values; make the spec with ObserverSpec.FixedQParams(...) or spec.WithQParams(...)/WithRange(...).", nameof(spec));
        }

        spec.Fixed.ApplyTo(this);
    }

    /// <inheritdoc/>
    protected override void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
    {
        // Never reached: a fixed observer records nothing (Observer.Observe returns before calling this).
    }

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore() =>
        FixedQParams ?? throw new InvalidOperationException($"{Layer}: the fixed qparams are missing.");
}
