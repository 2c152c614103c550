using System;

namespace QuantGen.Observers;

/// <summary>
/// PyTorch's <c>MinMaxObserver</c>: keeps the running minimum and maximum of every batch and turns them into
/// scale/zero point with <see cref="QParamsMath.FromMinMax"/>. Per-tensor schemes only.
/// </summary>
public sealed class MinMaxObserver : Observer
{
    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    /// <exception cref="ArgumentException">A per-channel scheme, or symmetric quint8 with reduce_range.</exception>
    public MinMaxObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
        if (spec.Scheme.IsPerChannel())
        {
            throw new ArgumentException($"{layer}: MinMaxObserver supports per-tensor schemes only, got {spec.Scheme.ToTorchString()}.");
        }

        RangeMath.RejectSymmetricReducedQUInt8(spec, layer);
    }

    /// <summary>Running minimum; +∞ before the first batch (PyTorch's initial <c>min_val</c>).</summary>
    public float Min { get; private set; } = float.PositiveInfinity;

    /// <summary>Running maximum; −∞ before the first batch (PyTorch's initial <c>max_val</c>).</summary>
    public float Max { get; private set; } = float.NegativeInfinity;

    /// <inheritdoc/>
    protected override void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
    {
        (float batchMin, float batchMax) = RangeMath.MinMax(values);
        ObserveRange(batchMin, batchMax);
    }

    /// <inheritdoc/>
    protected override bool ObservesMinMaxOnly => true;

    /// <inheritdoc/>
    protected override void ObserveRange(float batchMin, float batchMax)
    {
        Min = MathF.Min(Min, batchMin);
        Max = MathF.Max(Max, batchMax);
    }

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore()
    {
        (float scale, int zeroPoint) = QParamsFor(Min, Max);
        return QParams.PerTensor(scale, zeroPoint, Spec.DType);
    }
}
