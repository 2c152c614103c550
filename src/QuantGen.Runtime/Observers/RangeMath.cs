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
}
