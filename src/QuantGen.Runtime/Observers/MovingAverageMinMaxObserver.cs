using System;

namespace QuantGen.Observers;

/// <summary>
/// PyTorch's <c>MovingAverageMinMaxObserver</c>: the first batch sets min/max, every later batch moves them
/// towards its own min/max by <see cref="ObserverSpec.AveragingConstant"/> (c):
/// <c>min = min + c * (batch_min - min)</c>, likewise max. Per-tensor schemes only.
/// </summary>
public sealed class MovingAverageMinMaxObserver : Observer
{
    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    /// <exception cref="ArgumentException">A per-channel scheme, or symmetric quint8 with reduce_range.</exception>
    public MovingAverageMinMaxObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
        if (spec.Scheme.IsPerChannel())
        {
            throw new ArgumentException($"{layer}: MovingAverageMinMaxObserver supports per-tensor schemes only, got {spec.Scheme.ToTorchString()}.");
        }

        RangeMath.RejectSymmetricReducedQUInt8(spec, layer);
    }

    /// <summary>Averaged minimum; +∞ before the first batch (PyTorch's initial <c>min_val</c>).</summary>
    public float Min { get; private set; } = float.PositiveInfinity;

    /// <summary>Averaged maximum; −∞ before the first batch (PyTorch's initial <c>max_val</c>).</summary>
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
        if (!HasObserved)
        {
            Min = batchMin;
            Max = batchMax;
            return;
        }

        // PyTorch: min_val + averaging_constant * (min_val_cur - min_val) on float32 tensors. The Python
        // float constant is a CPU scalar that the kernel reads as float32, and each operator is its own
        // kernel, so: one float32 subtraction, one multiplication, one addition, each rounded (no FMA).
        float c = Spec.AveragingConstant;
        float minStep = c * (batchMin - Min);
        float maxStep = c * (batchMax - Max);
        Min += minStep;
        Max += maxStep;
    }

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore()
    {
        (float scale, int zeroPoint) = QParamsFor(Min, Max);
        return QParams.PerTensor(scale, zeroPoint, Spec.DType);
    }
}
