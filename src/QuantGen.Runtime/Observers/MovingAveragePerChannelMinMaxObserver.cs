using System;

namespace QuantGen.Observers;

/// <summary>
/// PyTorch's <c>MovingAveragePerChannelMinMaxObserver</c>, the weight observer of quantization-aware training:
/// for each channel along <see cref="ObserverSpec.ChannelAxis"/>, the first batch sets min/max and every later batch
/// moves them towards its own by <see cref="ObserverSpec.AveragingConstant"/> (c):
/// <c>min[c] = min[c] + c * (batch_min[c] - min[c])</c>, likewise max. Per-channel schemes only.
/// </summary>
/// <remarks>
/// Unlike <see cref="PerChannelMinMaxObserver"/> the range follows the weights as training moves them instead of
/// keeping the widest range ever seen. <see cref="Observer.CalculateQParams"/> turns each channel's range into qparams
/// with the same float32 formula as every other observer (what PyTorch's convert uses; docs/qat.md).
/// </remarks>
public sealed class MovingAveragePerChannelMinMaxObserver : Observer
{
    private float[] _min = [];
    private float[] _max = [];

    /// <summary>Creates the observer; use <see cref="ObserverSpec.Create"/>.</summary>
    /// <exception cref="ArgumentException">A per-tensor scheme, or symmetric quint8 with reduce_range.</exception>
    public MovingAveragePerChannelMinMaxObserver(ObserverSpec spec, string layer)
        : base(spec, layer)
    {
        if (!spec.Scheme.IsPerChannel())
        {
            throw new ArgumentException($"{layer}: MovingAveragePerChannelMinMaxObserver supports per-channel schemes only, got {spec.Scheme.ToTorchString()}.");
        }

        RangeMath.RejectSymmetricReducedQUInt8(spec, layer);
    }

    /// <summary>Number of channels seen (0 before the first batch).</summary>
    public int ChannelCount => _min.Length;

    /// <summary>
    /// The channel axis of the last batch, resolved to a non-negative index (a negative
    /// <see cref="ObserverSpec.ChannelAxis"/> counts from the end); -1 before the first batch.
    /// </summary>
    public int ResolvedChannelAxis { get; private set; } = -1;

    /// <summary>A copy of the averaged per-channel minima (empty before the first batch).</summary>
    public float[] MinValues => (float[])_min.Clone();

    /// <summary>A copy of the averaged per-channel maxima (empty before the first batch).</summary>
    public float[] MaxValues => (float[])_max.Clone();

    /// <inheritdoc/>
    protected override void ObserveCore(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
    {
        int axis = RangeMath.ResolveChannelAxis(Layer, Spec.ChannelAxis, shape, HasObserved ? _min.Length : -1);
        int channels = shape[axis];

        // This batch's own per-channel range first (PyTorch's aminmax over the flattened non-channel dims) ...
        var batchMin = new float[channels];
        var batchMax = new float[channels];
        batchMin.AsSpan().Fill(float.PositiveInfinity);
        batchMax.AsSpan().Fill(float.NegativeInfinity);
        RangeMath.AccumulateChannelMinMax(values, shape, axis, batchMin, batchMax);

        ResolvedChannelAxis = axis;
        if (!HasObserved)
        {
            // ... which the first batch takes outright (PyTorch: min_val is still an empty tensor) ...
            _min = batchMin;
            _max = batchMax;
            return;
        }

        // ... and later batches average into the running range: one float32 subtraction, multiplication and
        // addition per channel, each rounded (PyTorch's tensor expression min + c * (cur - min), no FMA).
        float constant = Spec.AveragingConstant;
        for (int c = 0; c < channels; c++)
        {
            float minStep = constant * (batchMin[c] - _min[c]);
            float maxStep = constant * (batchMax[c] - _max[c]);
            _min[c] += minStep;
            _max[c] += maxStep;
        }
    }

    /// <inheritdoc/>
    protected override QParams CalculateQParamsCore()
    {
        var scales = new float[_min.Length];
        var zeroPoints = new int[_min.Length];
        for (int c = 0; c < _min.Length; c++)
        {
            (scales[c], zeroPoints[c]) = QParamsFor(_min[c], _max[c]);
        }

        return QParams.PerChannel(scales, zeroPoints, ResolvedChannelAxis, Spec.DType);
    }
}
