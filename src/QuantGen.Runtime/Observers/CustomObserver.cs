using System;
using System.Globalization;

namespace QuantGen.Observers;

/// <summary>
/// Runs an observer of your own (<see cref="IObserver"/>, plugged in with <see cref="ObserverSpec.Custom"/>) at one
/// quantization point, with the checks every observer gets: bad batches are refused before it sees them, and the
/// qparams it computes are checked against the spec before any layer uses them. <see cref="Observer.SetQParams(float, int)"/>
/// and <see cref="Observer.SetRange(float, float)"/> fix it like any other observer.
/// </summary>
public sealed class CustomObserver : Observer
{
    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    /// <exception cref="ArgumentException">The spec has no factory, or the factory returned null.</exception>
    public CustomObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
        Func<string, IObserver> factory = spec.CustomFactory
            ?? throw new ArgumentException($"{layer}: a CustomObserver needs a factory; make the spec with ObserverSpec.Custom(...).", nameof(spec));
        Inner = factory(layer) ?? throw new ArgumentException($"{layer}: the factory of {spec} returned null; it must return a new observer for each quantization point.", nameof(spec));
    }

    /// <summary>Your observer, as the factory made it for this quantization point.</summary>
    public IObserver Inner { get; }

    /// <inheritdoc/>
    protected override void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape) => Inner.Observe(values, shape);

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore()
    {
        QParams qparams = Inner.CalculateQParams()
            ?? throw new InvalidOperationException($"{Layer}: {Spec} returned null qparams.");
        string expected = $"{Spec} must return {Spec.DType.ToTorchString()} qparams {(Spec.Scheme.IsPerChannel() ? $"per channel along axis {Spec.ChannelAxis}" : "per tensor")}";
        if (qparams.DType != Spec.DType || qparams.IsPerChannel != Spec.Scheme.IsPerChannel() || (qparams.IsPerChannel && qparams.Axis != Spec.ChannelAxis))
        {
            throw new InvalidOperationException($"{Layer}: {expected}, got {qparams}.");
        }

        for (int c = 0; c < qparams.Scales.Length; c++)
        {
            float scale = qparams.Scales[c];
            int zeroPoint = qparams.ZeroPoints[c];
            string where = qparams.IsPerChannel ? $" (channel {c})" : string.Empty;
            if (!float.IsFinite(scale) || scale <= 0f)
            {
                throw new InvalidOperationException($"{Layer}: {Spec} returned scale {scale.ToString("R", CultureInfo.InvariantCulture)}{where}; scales must be positive and finite.");
            }

            if (zeroPoint < Spec.DType.Min() || zeroPoint > Spec.DType.Max())
            {
                throw new InvalidOperationException($"{Layer}: {Spec} returned zero point {zeroPoint}{where}, outside {Spec.DType.ToTorchString()}'s range {Spec.DType.Min()}..{Spec.DType.Max()}.");
            }
        }

        return qparams;
    }
}
