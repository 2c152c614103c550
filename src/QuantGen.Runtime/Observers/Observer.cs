using System;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace QuantGen.Observers;

/// <summary>
/// Records statistics of the values that flow through one quantization point during calibration and
/// turns them into <see cref="QParams"/> (PyTorch's <c>ObserverBase</c>). Observers see plain float
/// spans; the TorchSharp adapter is <see cref="TensorObserverExtensions"/>.
/// </summary>
/// <remarks>
/// Qparams computed elsewhere (a model calibrated in PyTorch, or on another machine) are brought in with
/// <see cref="SetQParams(float, int)"/> or <see cref="SetRange(float, float)"/> (and their per-channel forms): from then
/// on the observer is fixed, as PyTorch's <c>FixedQParamsObserver</c> is, and <see cref="CalculateQParams"/> returns
/// those qparams whatever calibration shows it.
/// </remarks>
public abstract class Observer : IObserver
{
    private QParams? _fixed;

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

    /// <summary>True once at least one batch has been observed (batches seen while <see cref="IsFixed"/> are not recorded).</summary>
    public bool HasObserved => BatchCount > 0;

    /// <summary>
    /// The qparams <see cref="SetQParams(float, int)"/> or <see cref="SetRange(float, float)"/> fixed (or the spec's
    /// <see cref="ObserverSpec.Fixed"/> values); null while calibration decides.
    /// </summary>
    public QParams? FixedQParams => _fixed;

    /// <summary>True when the qparams were fixed: <see cref="CalculateQParams"/> returns <see cref="FixedQParams"/> and calibration changes nothing.</summary>
    public bool IsFixed => _fixed is not null;

    /// <summary>
    /// Fixes the observed range to [<paramref name="min"/>, <paramref name="max"/>], as loading <c>min_val</c>/<c>max_val</c>
    /// into a PyTorch observer's state_dict does: the qparams are computed from it now, with this observer's dtype,
    /// scheme and quant range (<see cref="QParamsMath.FromMinMax"/>; the range is widened to include 0), and never
    /// change with calibration. Per-tensor observers.
    /// </summary>
    /// <exception cref="ArgumentException">A bound that is not finite, min &gt; max, or a per-channel observer (use the array form).</exception>
    public void SetRange(float min, float max)
    {
        RequireScheme(perChannel: false, "SetRange(min, max)");
        FixedObserverValues.CheckRange(min, max, -1, Layer);
        (float scale, int zeroPoint) = QParamsFor(min, max);
        _fixed = QParams.PerTensor(scale, zeroPoint, Spec.DType);
    }

    /// <summary>
    /// Fixes the observed range of each channel along <see cref="ObserverSpec.ChannelAxis"/> (a loaded per-channel
    /// <c>min_val</c>/<c>max_val</c>): one scale and zero point per channel, computed as <see cref="SetRange(float, float)"/>
    /// does. Per-channel observers.
    /// </summary>
    /// <exception cref="ArgumentException">Arrays of different or zero length, a bound that is not finite, min &gt; max, a negative ch_axis, or a per-tensor observer.</exception>
    public void SetRange(float[] min, float[] max)
    {
        ArgumentNullException.ThrowIfNull(min);
        ArgumentNullException.ThrowIfNull(max);
        int axis = RequireScheme(perChannel: true, "SetRange(min[], max[])");
        if (min.Length == 0 || min.Length != max.Length)
        {
            throw new ArgumentException($"{Layer}: a per-channel range needs one min and one max per channel, got {min.Length} and {max.Length}.", nameof(min));
        }

        var scales = new float[min.Length];
        var zeroPoints = new int[min.Length];
        for (int c = 0; c < min.Length; c++)
        {
            FixedObserverValues.CheckRange(min[c], max[c], c, Layer);
            (scales[c], zeroPoints[c]) = QParamsFor(min[c], max[c]);
        }

        _fixed = QParams.PerChannel(scales, zeroPoints, axis, Spec.DType);
    }

    /// <summary>
    /// Fixes scale and zero point (PyTorch's <c>FixedQParamsObserver</c>; a quantized module's <c>scale</c> and
    /// <c>zero_point</c>): <see cref="CalculateQParams"/> returns them whatever calibration shows it. Per-tensor observers.
    /// </summary>
    /// <exception cref="ArgumentException">A scale that is not positive and finite, a zero point outside the dtype's range, or a per-channel observer (use the array form).</exception>
    public void SetQParams(float scale, int zeroPoint)
    {
        RequireScheme(perChannel: false, "SetQParams(scale, zeroPoint)");
        FixedObserverValues.CheckScale(scale, -1, Layer);
        CheckZeroPoint(zeroPoint, -1);
        _fixed = QParams.PerTensor(scale, zeroPoint, Spec.DType);
    }

    /// <summary>
    /// Fixes one scale and zero point per channel along <see cref="ObserverSpec.ChannelAxis"/> (a per-channel quantized
    /// weight's <c>q_per_channel_scales()</c> and <c>q_per_channel_zero_points()</c>). Per-channel observers; the count
    /// is checked against the tensor's channels when it is observed.
    /// </summary>
    /// <exception cref="ArgumentException">Arrays of different or zero length, a scale that is not positive and finite, a zero point outside the dtype's range, a negative ch_axis, or a per-tensor observer.</exception>
    public void SetQParams(float[] scales, int[] zeroPoints)
    {
        ArgumentNullException.ThrowIfNull(scales);
        ArgumentNullException.ThrowIfNull(zeroPoints);
        int axis = RequireScheme(perChannel: true, "SetQParams(scales[], zeroPoints[])");
        if (scales.Length == 0 || scales.Length != zeroPoints.Length)
        {
            throw new ArgumentException($"{Layer}: per-channel qparams need one scale and one zero point per channel, got {scales.Length} scales and {zeroPoints.Length} zero points.", nameof(scales));
        }

        for (int c = 0; c < scales.Length; c++)
        {
            FixedObserverValues.CheckScale(scales[c], c, Layer);
            CheckZeroPoint(zeroPoints[c], c);
        }

        _fixed = QParams.PerChannel((float[])scales.Clone(), (int[])zeroPoints.Clone(), axis, Spec.DType);
    }

    /// <summary>
    /// Records one batch. <paramref name="shape"/> is the tensor's logical (row-major) shape; per-tensor
    /// observers ignore it, per-channel ones use it to find the channel axis.
    /// </summary>
    /// <exception cref="ArgumentException">The batch holds NaN or infinity, or is empty.</exception>
    public void Observe(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
    {
        if (CheckBatch(values, shape))
        {
            ObserveCore(values, shape);
            BatchCount++;
        }
    }

    /// <summary>
    /// Records <c>relu(values)</c> — each value's <c>max(v, 0)</c> — without the rectified values being written anywhere, for
    /// observers whose whole statistic is the batch's min and max (<see cref="ObservesMinMaxOnly"/>); the others return false
    /// and record nothing. The QAT forward observes a fused conv-ReLU's output this way, so the ReLU and the fake quantize
    /// run as one pass.
    /// </summary>
    /// <returns>True when the batch was recorded (or the qparams are fixed); false when this observer needs the values themselves.</returns>
    /// <exception cref="ArgumentException">The batch holds NaN or infinity, or is empty.</exception>
    public bool TryObserveRectified(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
    {
        if (!CanObserveRectified)
        {
            return false;
        }

        if (CheckBatch(values, shape))
        {
            // min(relu(x)) = max(min x, 0) and max(relu(x)) = max(max x, 0).
            (float min, float max) = RangeMath.MinMax(values);
            ObserveRange(MathF.Max(min, 0f), MathF.Max(max, 0f));
            BatchCount++;
        }

        return true;
    }

    /// <summary>True when <see cref="TryObserveRectified"/> records a batch (a min/max observer, or fixed qparams).</summary>
    public bool CanObserveRectified => ObservesMinMaxOnly || _fixed is not null;

    /// <summary>True for per-tensor observers whose statistics are a batch's min and max alone (<see cref="ObserveRange"/>).</summary>
    protected virtual bool ObservesMinMaxOnly => false;

    /// <summary>Records a batch given only its min and max; observers with <see cref="ObservesMinMaxOnly"/> implement it.</summary>
    /// <param name="batchMin">The batch's minimum.</param>
    /// <param name="batchMax">The batch's maximum.</param>
    protected virtual void ObserveRange(float batchMin, float batchMax) =>
        throw new NotSupportedException($"{Layer}: {GetType().Name} needs the values themselves, not their range.");

    /// <summary>The checks every batch passes; false when the qparams are fixed (nothing to record).</summary>
    private bool CheckBatch(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
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

        if (_fixed is not null)
        {
            // Fixed qparams win over calibration: nothing is recorded, but per-channel ones must still fit the tensor.
            CheckFixedChannels(shape);
            return false;
        }

        return true;
    }

    /// <summary>Computes the quantization parameters from everything observed so far, or returns the fixed ones (<see cref="IsFixed"/>).</summary>
    /// <exception cref="InvalidOperationException">No batch was observed and the qparams are not fixed.</exception>
    public QParams CalculateQParams()
    {
        if (_fixed is not null)
        {
            // A copy: QParams hands out its arrays, and a converted layer must not share them with this observer.
            return _fixed.IsPerChannel
                ? QParams.PerChannel((float[])_fixed.Scales.Clone(), (int[])_fixed.ZeroPoints.Clone(), _fixed.Axis, _fixed.DType)
                : QParams.PerTensor(_fixed.Scale, _fixed.ZeroPoint, _fixed.DType);
        }

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

    /// <summary>
    /// Throws unless this observer's scheme is per channel (<paramref name="perChannel"/>) or per tensor; returns the
    /// channel axis for per-channel ones (which must be non-negative: fixed qparams are not tied to a tensor yet).
    /// </summary>
    private int RequireScheme(bool perChannel, string method)
    {
        if (Spec.Scheme.IsPerChannel() != perChannel)
        {
            string expected = perChannel
                ? "one value for the whole tensor; pass a single scale and zero point (or min and max)"
                : "one value per channel; pass arrays";
            throw new ArgumentException($"{Layer}: {method} does not fit this observer ({Spec}), which needs {expected}.");
        }

        if (perChannel && Spec.ChannelAxis < 0)
        {
            throw new ArgumentException($"{Layer}: {method} needs the observer's ch_axis as a non-negative index, got {Spec.ChannelAxis} ({Spec}).");
        }

        return perChannel ? Spec.ChannelAxis : -1;
    }

    private void CheckZeroPoint(int zeroPoint, int channel)
    {
        if (zeroPoint < Spec.DType.Min() || zeroPoint > Spec.DType.Max())
        {
            string where = channel >= 0 ? $" (channel {channel})" : string.Empty;
            throw new ArgumentException(
                $"{Layer}: zero point {zeroPoint.ToString(CultureInfo.InvariantCulture)}{where} is outside {Spec.DType.ToTorchString()}'s range {Spec.DType.Min()}..{Spec.DType.Max()} (the observer's dtype: {Spec}).",
                nameof(zeroPoint));
        }
    }

    private void CheckFixedChannels(ReadOnlySpan<int> shape)
    {
        if (_fixed is not { IsPerChannel: true } fixedQParams)
        {
            return;
        }

        int axis = fixedQParams.Axis;
        int channels = axis < shape.Length ? shape[axis] : -1;
        if (channels != fixedQParams.Scales.Length)
        {
            throw new ArgumentException(
                $"{Layer}: the fixed per-channel qparams have {fixedQParams.Scales.Length} channels along axis {axis}, but the tensor has shape [{string.Join(", ", shape.ToArray())}]" +
                (channels < 0 ? $" (no axis {axis})." : $" ({channels} channels along axis {axis})."));
        }
    }

    private static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        // x − x is 0 for every finite x and NaN for NaN and ±∞: eight lanes at a time until a lane fails (a QAT step
        // observes every activation, so a scalar scan here cost as much as the fake quantize itself), then the scalar
        // scan names the first bad index.
        int start = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float first = ref MemoryMarshal.GetReference(values);
            for (int end = values.Length - 8; start <= end; start += 8)
            {
                Vector256<float> v = Vector256.LoadUnsafe(ref first, (nuint)start);
                if (!Vector256.EqualsAll(v - v, Vector256<float>.Zero))
                {
                    break;
                }
            }
        }

        for (int i = start; i < values.Length; i++)
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
