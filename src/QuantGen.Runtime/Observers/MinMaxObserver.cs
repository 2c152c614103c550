using System;

namespace QuantGen.Observers;

/// <summary>TODO(helper): PyTorch's MinMaxObserver.</summary>
public sealed class MinMaxObserver : Observer
{
    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    public MinMaxObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
    }

    /// <inheritdoc/>
    protected override void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore() => throw new NotImplementedException();
}
