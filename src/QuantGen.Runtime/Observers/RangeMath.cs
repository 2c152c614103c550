using System;
using System.Numerics;
using System.Runtime.InteropServices;

namespace QuantGen.Observers;

/// <summary>Small exact helpers shared by the min/max observers (PyTorch's <c>torch.aminmax</c> and friends).</summary>
internal static class RangeMath
{
    /// <summary>
    /// Smallest and largest value of a non-empty span of finite floats (<c>torch.aminmax</c>). Min and max
    /// are exact whatever the order they are taken in, so the span is scanned a vector at a time.
    /// </summary>
    public static (float Min, float Max) MinMax(ReadOnlySpan<float> values)
    {
        float min = values[0];
        float max = values[0];
        int i = 0;
        if (Vector.IsHardwareAccelerated && values.Length >= 2 * Vector<float>.Count)
        {
            ReadOnlySpan<Vector<float>> vectors = MemoryMarshal.Cast<float, Vector<float>>(values);
            Vector<float> vmin = vectors[0];
            Vector<float> vmax = vectors[0];
            for (int v = 1; v < vectors.Length; v++)
            {
                vmin = Vector.Min(vmin, vectors[v]);
                vmax = Vector.Max(vmax, vectors[v]);
            }

            for (int lane = 0; lane < Vector<float>.Count; lane++)
            {
                min = MathF.Min(min, vmin[lane]);
                max = MathF.Max(max, vmax[lane]);
            }

            i = vectors.Length * Vector<float>.Count;
        }

        for (; i < values.Length; i++)
        {
            float value = values[i];
            if (value < min)
            {
                min = value;
            }

            if (value > max)
            {
                max = value;
            }
        }

        return (min, max);
    }

    /// <summary>
    /// PyTorch's MinMax/PerChannel observers refuse <c>reduce_range</c> with a symmetric quint8 scheme
    /// ("Cannot reduce range for symmetric quantization for quint8"); QuantGen refuses it the same way.
    /// </summary>
    public static void RejectSymmetricReducedQUInt8(ObserverSpec spec, string layer)
    {
        if (spec.Scheme.IsSymmetric() && spec.ReduceRange && spec.DType == QuantDType.QUInt8)
        {
            throw new ArgumentException($"{layer}: {spec.Kind}Observer cannot reduce the range for symmetric quantization with quint8 (PyTorch refuses it too); use qint8 or drop reduce_range.");
        }
    }

    /// <summary>
    /// The channel axis of a per-channel observer for this batch, resolved as PyTorch does (a negative ch_axis counts
    /// from the end), after checking it is in range and that the channel count matches earlier batches.
    /// </summary>
    /// <param name="layer">The observer's layer, for messages.</param>
    /// <param name="channelAxis">The spec's ch_axis.</param>
    /// <param name="shape">The batch's shape.</param>
    /// <param name="seenChannels">Channels of earlier batches, or -1 before the first.</param>
    public static int ResolveChannelAxis(string layer, int channelAxis, ReadOnlySpan<int> shape, int seenChannels)
    {
        int axis = channelAxis < 0 ? channelAxis + shape.Length : channelAxis;
        if (axis < 0 || axis >= shape.Length)
        {
            throw new ArgumentException($"{layer}: per-channel observer with ch_axis={channelAxis} got a tensor of shape [{string.Join(", ", shape.ToArray())}] (rank {shape.Length}).");
        }

        if (seenChannels >= 0 && shape[axis] != seenChannels)
        {
            throw new ArgumentException($"{layer}: per-channel observer saw {seenChannels} channels along axis {axis} before, got {shape[axis]} now (shape [{string.Join(", ", shape.ToArray())}]); every batch must have the same number of channels.");
        }

        return axis;
    }

    /// <summary>
    /// Widens <paramref name="min"/>/<paramref name="max"/> (one entry per channel along <paramref name="axis"/>) by the
    /// batch's values: PyTorch's aminmax over every other dimension.
    /// </summary>
    public static void AccumulateChannelMinMax(ReadOnlySpan<float> values, ReadOnlySpan<int> shape, int axis, float[] min, float[] max)
    {
        int channels = shape[axis];
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

        for (long o = 0; o < outer; o++)
        {
            for (int c = 0; c < channels; c++)
            {
                int offset = checked((int)(((o * channels) + c) * inner));
                (float blockMin, float blockMax) = MinMax(values.Slice(offset, inner));
                min[c] = MathF.Min(min[c], blockMin);
                max[c] = MathF.Max(max[c], blockMax);
            }
        }
    }
}
