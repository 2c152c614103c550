using System;

namespace QuantGen.Observers;

/// <summary>TODO(helper): PyTorch's MovingAverageMinMaxObserver.</summary>
public sealed class MovingAverageMinMaxObserver : Observer
{
    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    public MovingAverageMinMaxObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
    }

    /// <inheritdoc/>
    protected override void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore() => throw new NotImplementedException();
}
