using System;

namespace QuantGen.Observers;

/// <summary>TODO(helper): PyTorch's PerChannelMinMaxObserver.</summary>
public sealed class PerChannelMinMaxObserver : Observer
{
    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    public PerChannelMinMaxObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
    }

    /// <inheritdoc/>
    protected override void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore() => throw new NotImplementedException();
}
