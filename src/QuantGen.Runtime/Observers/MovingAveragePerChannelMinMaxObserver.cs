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
        int axis = Spec.ChannelAxis < 0 ? Spec.ChannelAxis + shape.Length : Spec.ChannelAxis;
        if (axis < 0 || axis >= shape.Length)
        {
            throw new ArgumentException($"{Layer}: per-channel observer with ch_axis={Spec.ChannelAxis} got a tensor of shape [{string.Join(", ", shape.ToArray())}] (rank {shape.Length}).");
        }

        int channels = shape[axis];
        if (HasObserved && channels != _min.Length)
        {
            throw new ArgumentException($"{Layer}: per-channel observer saw {_min.Length} channels along axis {axis} before, got {channels} now (shape [{string.Join(", ", shape.ToArray())}]); every batch must have the same number of channels.");
        }

        long outer = 1;
        for (int d = 0; d < axis; d++)
        {
            outer *= shape[d];
        }

        int inner = 1;
        for (int d = axis + 1; d < shape.Length; d++)
        {
            inner = checked(inner * shape[d]);
        }

        // This batch's own per-channel range first (PyTorch's aminmax over the flattened non-channel dims) ...
        var batchMin = new float[channels];
        var batchMax = new float[channels];
        batchMin.AsSpan().Fill(float.PositiveInfinity);
        batchMax.AsSpan().Fill(float.NegativeInfinity);
        for (long o = 0; o < outer; o++)
        {
            for (int c = 0; c < channels; c++)
            {
                int offset = checked((int)(((o * channels) + c) * inner));
                (float blockMin, float blockMax) = RangeMath.MinMax(values.Slice(offset, inner));
                batchMin[c] = MathF.Min(batchMin[c], blockMin);
                batchMax[c] = MathF.Max(batchMax[c], blockMax);
            }
        }

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
