using System;

namespace QuantGen.Observers;

/// <summary>
/// PyTorch's <c>PerChannelMinMaxObserver</c>: the running minimum and maximum of each channel along
/// <see cref="ObserverSpec.ChannelAxis"/> (taken over every other dimension), turned into one scale/zero point
/// per channel. Per-channel schemes only.
/// </summary>
public sealed class PerChannelMinMaxObserver : Observer
{
    private float[] _min = [];
    private float[] _max = [];

    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    /// <exception cref="ArgumentException">A per-tensor scheme, or symmetric quint8 with reduce_range.</exception>
    public PerChannelMinMaxObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
        if (!spec.Scheme.IsPerChannel())
        {
            throw new ArgumentException($"{layer}: PerChannelMinMaxObserver supports per-channel schemes only, got {spec.Scheme.ToTorchString()}.");
        }

        RangeMath.RejectSymmetricReducedQUInt8(spec, layer);
    }

    /// <summary>Number of channels seen (0 before the first batch).</summary>
    public int ChannelCount => _min.Length;

    /// <summary>
    /// The channel axis of the last batch, resolved to a non-negative index (a negative
    /// <see cref="ObserverSpec.ChannelAxis"/> counts from the end, as a Python index does); -1 before the first batch.
    /// </summary>
    public int ResolvedChannelAxis { get; private set; } = -1;

    /// <summary>A copy of the running per-channel minima (empty before the first batch).</summary>
    public float[] MinValues => (float[])_min.Clone();

    /// <summary>A copy of the running per-channel maxima (empty before the first batch).</summary>
    public float[] MaxValues => (float[])_max.Clone();

    /// <inheritdoc/>
    protected override void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
    {
        // PyTorch swaps the channel axis to the front (new_axis_list[ch_axis] = 0, a Python list index, so a
        // negative axis counts from the end) and reduces everything else.
        int axis = RangeMath.ResolveChannelAxis(Layer, Spec.ChannelAxis, shape, HasObserved ? _min.Length : -1);
        int channels = shape[axis];

        // values.Length == outer * channels * inner > 0 (the base checked it), so every channel gets a value.
        bool first = !HasObserved;
        float[] min = first ? new float[channels] : _min;
        float[] max = first ? new float[channels] : _max;
        if (first)
        {
            min.AsSpan().Fill(float.PositiveInfinity);
            max.AsSpan().Fill(float.NegativeInfinity);
        }

        RangeMath.AccumulateChannelMinMax(values, shape, axis, min, max);
        _min = min;
        _max = max;
        ResolvedChannelAxis = axis;
    }

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore()
    {
        // PyTorch's _calculate_qparams works element-wise on the min/max vectors with the same float32
        // formula as per-tensor, so each channel goes through the per-tensor formula on its own.
        var scales = new float[_min.Length];
        var zeroPoints = new int[_min.Length];
        for (int c = 0; c < _min.Length; c++)
        {
            (scales[c], zeroPoints[c]) = QParamsFor(_min[c], _max[c]);
        }

        return QParams.PerChannel(scales, zeroPoints, ResolvedChannelAxis, Spec.DType);
    }
}
