using System;

namespace QuantGen.Observers;

/// <summary>TODO(helper): PyTorch's HistogramObserver.</summary>
public sealed class HistogramObserver : Observer
{
    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    public HistogramObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
    }

    /// <inheritdoc/>
    protected override void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore() => throw new NotImplementedException();
}
