using System;

namespace QuantGen.Observers;

/// <summary>
/// Records statistics of the values that flow through one quantization point during calibration and
/// turns them into <see cref="QParams"/> (PyTorch's <c>ObserverBase</c>). Observers see plain float
/// spans; the TorchSharp adapter is <see cref="TensorObserverExtensions"/>.
/// </summary>
public abstract class Observer
{
    /// <summary>Creates an observer for the quantization point <paramref name="layer"/>.</summary>
    protected Observer(ObserverSpec spec, string layer)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        Spec = spec;
        Layer = layer;
        (QuantMin, QuantMax) = QParamsMath.QuantRange(spec.DType, spec.ReduceRange, spec.QuantMin, spec.QuantMax);
    }

    /// <summary>The recipe this observer was made from.</summary>
    public ObserverSpec Spec { get; }

    /// <summary>The quantization point, "Model.member" (used in every error message).</summary>
    public string Layer { get; }

    /// <summary>Effective quant_min (after reduce_range).</summary>
    public int QuantMin { get; }

    /// <summary>Effective quant_max (after reduce_range).</summary>
    public int QuantMax { get; }

    /// <summary>Number of batches observed so far.</summary>
    public int BatchCount { get; private set; }

    /// <summary>True once at least one batch has been observed.</summary>
    public bool HasObserved => BatchCount > 0;

    /// <summary>
    /// Records one batch. <paramref name="shape"/> is the tensor's logical (row-major) shape; per-tensor
    /// observers ignore it, per-channel ones use it to find the channel axis.
    /// </summary>
    /// <exception cref="ArgumentException">The batch holds NaN or infinity, or is empty.</exception>
    public void Observe(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int d in shape)
        {
            count *= d;
        }

        if (count != values.Length)
        {
            throw new ArgumentException($"{Layer}: observer got {values.Length} values for shape [{string.Join(", ", shape.ToArray())}].");
        }

        if (values.IsEmpty)
        {
            throw new ArgumentException($"{Layer}: observer got an empty tensor.");
        }

        // PyTorch would silently map NaN/inf to 0 at quantize time and let them wreck min/max here;
        // a calibration batch with them is a data bug, so it is refused with the layer named.
        int bad = IndexOfNonFinite(values);
        if (bad >= 0)
        {
            throw new ArgumentException($"{Layer}: calibration data contains {values[bad]} at flat index {bad}; observers accept finite values only (check the inputs and the layers before '{Layer}').");
        }

        ObserveCore(values, shape);
        BatchCount++;
    }

    /// <summary>Computes the quantization parameters from everything observed so far.</summary>
    /// <exception cref="InvalidOperationException">No batch was observed.</exception>
    public QParams CalculateQParams()
    {
        if (!HasObserved)
        {
            throw new InvalidOperationException($"{Layer}: the observer has seen no data. Run the Observed model's forward on calibration batches before Convert().");
        }

        return CalculateQParamsCore();
    }

    /// <summary>Updates the statistics with a batch already checked to be finite and non-empty.</summary>
    protected abstract void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape);

    /// <summary>Computes qparams; called only after at least one batch.</summary>
    protected abstract QParams CalculateQParamsCore();

    /// <summary>Scale/zero point for a per-tensor range, with this observer's dtype, scheme and range.</summary>
    protected (float Scale, int ZeroPoint) QParamsFor(float min, float max) =>
        QParamsMath.FromMinMax(min, max, Spec.DType, Spec.Scheme.IsSymmetric(), QuantMin, QuantMax, Spec.QuantMin.HasValue);

    private static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Spec} at {Layer}";
}
