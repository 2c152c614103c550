using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// The reference for the float32 gate arithmetic of the dynamic recurrent layers (aten's CPU cells), one element at a
/// time with <see cref="MathF"/>'s exp and tanh. <see cref="RecurrentGatesKernel"/> is its vectorised form.
/// </summary>
public static class RecurrentGatesScalar
{
    /// <summary>
    /// aten's <c>LSTMCell</c> on the CPU: <c>gates = linear_hh(h) + linear_ih(x)</c>, chunks i, f, g, o;
    /// <c>c' = f·c + i·g</c>, <c>h' = o·tanh(c')</c>, each operation rounded to float32 in that order.
    /// </summary>
    /// <param name="inputGates">The input projection's four chunks, [4·H].</param>
    /// <param name="hiddenGates">The hidden projection's four chunks, [4·H].</param>
    /// <param name="h">The hidden state [H], updated.</param>
    /// <param name="c">The cell state [H], updated.</param>
    public static void Lstm(ReadOnlySpan<float> inputGates, ReadOnlySpan<float> hiddenGates, Span<float> h, Span<float> c)
    {
        int hidden = h.Length;
        for (int j = 0; j < hidden; j++)
        {
            float inGate = Sigmoid(hiddenGates[j] + inputGates[j]);
            float forgetGate = Sigmoid(hiddenGates[hidden + j] + inputGates[hidden + j]);
            float cellGate = MathF.Tanh(hiddenGates[(2 * hidden) + j] + inputGates[(2 * hidden) + j]);
            float outGate = Sigmoid(hiddenGates[(3 * hidden) + j] + inputGates[(3 * hidden) + j]);
            float cy = (forgetGate * c[j]) + (inGate * cellGate);
            c[j] = cy;
            h[j] = outGate * MathF.Tanh(cy);
        }
    }

    /// <summary>
    /// aten's <c>GRUCell</c> on the CPU: chunks r, z, n of both projections; <c>r = σ(hr + ir)</c>,
    /// <c>z = σ(hz + iz)</c>, <c>n = tanh(in + hn·r)</c>, <c>h' = (h − n)·z + n</c>.
    /// </summary>
    /// <param name="inputGates">The input projection's three chunks, [3·H].</param>
    /// <param name="hiddenGates">The hidden projection's three chunks, [3·H].</param>
    /// <param name="h">The hidden state [H], updated.</param>
    public static void Gru(ReadOnlySpan<float> inputGates, ReadOnlySpan<float> hiddenGates, Span<float> h)
    {
        int hidden = h.Length;
        for (int j = 0; j < hidden; j++)
        {
            float resetGate = Sigmoid(hiddenGates[j] + inputGates[j]);
            float updateGate = Sigmoid(hiddenGates[hidden + j] + inputGates[hidden + j]);
            float newGate = MathF.Tanh(inputGates[(2 * hidden) + j] + (hiddenGates[(2 * hidden) + j] * resetGate));
            h[j] = ((h[j] - newGate) * updateGate) + newGate;
        }
    }

    /// <summary>aten's <c>SimpleCell</c>: <c>h' = act(linear_hh(h) + linear_ih(x))</c>, act tanh or relu.</summary>
    /// <param name="inputGates">The input projection [H].</param>
    /// <param name="hiddenGates">The hidden projection [H].</param>
    /// <param name="h">The hidden state [H], updated.</param>
    /// <param name="relu">ReLU instead of tanh.</param>
    public static void Elman(ReadOnlySpan<float> inputGates, ReadOnlySpan<float> hiddenGates, Span<float> h, bool relu)
    {
        for (int j = 0; j < h.Length; j++)
        {
            float sum = hiddenGates[j] + inputGates[j];
            h[j] = relu ? MathF.Max(sum, 0f) : MathF.Tanh(sum);
        }
    }

    /// <summary>σ(x) = 1 / (1 + e^−x).</summary>
    public static float Sigmoid(float x) => 1.0f / (1.0f + MathF.Exp(-x));
}
