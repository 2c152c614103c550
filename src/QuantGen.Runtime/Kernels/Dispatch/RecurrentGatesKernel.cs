using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Kernels;

/// <summary>
/// <see cref="RecurrentGatesScalar"/> vectorised: the same operations in the same order (no FMA), with the vector
/// exponential (<c>Vector256.Exp</c>, within 1.5·10⁻⁷ relative of exp) for σ and with
/// <c>tanh(x) = sign(x)·(1 − e^−2|x|) / (1 + e^−2|x|)</c> (within 1.1·10⁻⁷ absolute of tanh), where the reference calls
/// MathF: results agree with it within a few 10⁻⁷, not bit for bit (libtorch's own vectorised gates differ from MathF
/// by as much). The last partial vector is computed as a whole vector on a copy, so an element's value never depends on
/// where it falls. Per step and batch row these ran 4·H transcendental calls one at a time, most of a batch-16 LSTM step.
/// </summary>
public static class RecurrentGatesKernel
{
    /// <summary>As <see cref="RecurrentGatesScalar.Lstm"/>.</summary>
    /// <param name="inputGates">[4·H].</param>
    /// <param name="hiddenGates">[4·H].</param>
    /// <param name="h">[H], updated.</param>
    /// <param name="c">[H], updated.</param>
    /// <param name="vectorBits">256 or 128; 0 runs the scalar reference; −1 (default) the dispatched width.</param>
    public static void Lstm(ReadOnlySpan<float> inputGates, ReadOnlySpan<float> hiddenGates, Span<float> h, Span<float> c, int vectorBits = -1)
    {
        int hidden = h.Length;
        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        if (vectorBits == 0 || inputGates.Length != 4 * hidden || hiddenGates.Length != 4 * hidden || c.Length != hidden)
        {
            RecurrentGatesScalar.Lstm(inputGates, hiddenGates, h, c);
            return;
        }

        int width = vectorBits / 32;
        int j = 0;
        for (; j + width <= hidden; j += width)
        {
            LstmBlock(inputGates, hiddenGates, h, c, j, hidden, vectorBits);
        }

        if (j < hidden)
        {
            // The tail as one whole vector on a copy: [i f g o] chunks of `width`, states of `width`.
            int count = hidden - j;
            Span<float> gatesIn = stackalloc float[4 * 8];
            Span<float> gatesHidden = stackalloc float[4 * 8];
            Span<float> hTail = stackalloc float[8];
            Span<float> cTail = stackalloc float[8];
            gatesIn.Clear();
            gatesHidden.Clear();
            hTail.Clear();
            cTail.Clear();
            for (int g = 0; g < 4; g++)
            {
                inputGates.Slice((g * hidden) + j, count).CopyTo(gatesIn.Slice(g * width));
                hiddenGates.Slice((g * hidden) + j, count).CopyTo(gatesHidden.Slice(g * width));
            }

            h.Slice(j, count).CopyTo(hTail);
            c.Slice(j, count).CopyTo(cTail);
            LstmBlock(gatesIn[..(4 * width)], gatesHidden[..(4 * width)], hTail[..width], cTail[..width], 0, width, vectorBits);
            hTail[..count].CopyTo(h.Slice(j));
            cTail[..count].CopyTo(c.Slice(j));
        }
    }

    /// <summary>As <see cref="RecurrentGatesScalar.Gru"/>.</summary>
    /// <param name="inputGates">[3·H].</param>
    /// <param name="hiddenGates">[3·H].</param>
    /// <param name="h">[H], updated.</param>
    /// <param name="vectorBits">256 or 128; 0 runs the scalar reference; −1 (default) the dispatched width.</param>
    public static void Gru(ReadOnlySpan<float> inputGates, ReadOnlySpan<float> hiddenGates, Span<float> h, int vectorBits = -1)
    {
        int hidden = h.Length;
        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        if (vectorBits == 0 || inputGates.Length != 3 * hidden || hiddenGates.Length != 3 * hidden)
        {
            RecurrentGatesScalar.Gru(inputGates, hiddenGates, h);
            return;
        }

        int width = vectorBits / 32;
        int j = 0;
        for (; j + width <= hidden; j += width)
        {
            GruBlock(inputGates, hiddenGates, h, j, hidden, vectorBits);
        }

        if (j < hidden)
        {
            int count = hidden - j;
            Span<float> gatesIn = stackalloc float[3 * 8];
            Span<float> gatesHidden = stackalloc float[3 * 8];
            Span<float> hTail = stackalloc float[8];
            gatesIn.Clear();
            gatesHidden.Clear();
            hTail.Clear();
            for (int g = 0; g < 3; g++)
            {
                inputGates.Slice((g * hidden) + j, count).CopyTo(gatesIn.Slice(g * width));
                hiddenGates.Slice((g * hidden) + j, count).CopyTo(gatesHidden.Slice(g * width));
            }

            h.Slice(j, count).CopyTo(hTail);
            GruBlock(gatesIn[..(3 * width)], gatesHidden[..(3 * width)], hTail[..width], 0, width, vectorBits);
            hTail[..count].CopyTo(h.Slice(j));
        }
    }

    /// <summary>As <see cref="RecurrentGatesScalar.Elman"/> (ReLU is exact; tanh as the other gates).</summary>
    /// <param name="inputGates">[H].</param>
    /// <param name="hiddenGates">[H].</param>
    /// <param name="h">[H], updated.</param>
    /// <param name="relu">ReLU instead of tanh.</param>
    /// <param name="vectorBits">256 or 128; 0 runs the scalar reference; −1 (default) the dispatched width.</param>
    public static void Elman(ReadOnlySpan<float> inputGates, ReadOnlySpan<float> hiddenGates, Span<float> h, bool relu, int vectorBits = -1)
    {
        int hidden = h.Length;
        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        if (vectorBits == 0 || relu || inputGates.Length != hidden || hiddenGates.Length != hidden)
        {
            RecurrentGatesScalar.Elman(inputGates, hiddenGates, h, relu);
            return;
        }

        int width = vectorBits / 32;
        int j = 0;
        for (; j + width <= hidden; j += width)
        {
            if (vectorBits == 256)
            {
                Tanh(Load256(hiddenGates, j) + Load256(inputGates, j)).CopyTo(h.Slice(j));
            }
            else
            {
                Tanh(Load128(hiddenGates, j) + Load128(inputGates, j)).CopyTo(h.Slice(j));
            }
        }

        if (j < hidden)
        {
            int count = hidden - j;
            Span<float> sum = stackalloc float[8];
            sum.Clear();
            for (int k = 0; k < count; k++)
            {
                sum[k] = hiddenGates[j + k] + inputGates[j + k];
            }

            if (vectorBits == 256)
            {
                Tanh(Vector256.Create<float>(sum)).CopyTo(sum);
            }
            else
            {
                Tanh(Vector128.Create<float>(sum)).CopyTo(sum);
            }

            sum[..count].CopyTo(h.Slice(j));
        }
    }

    private static void LstmBlock(ReadOnlySpan<float> inputGates, ReadOnlySpan<float> hiddenGates, Span<float> h, Span<float> c, int j, int hidden, int vectorBits)
    {
        if (vectorBits == 256)
        {
            Vector256<float> inGate = Sigmoid(Load256(hiddenGates, j) + Load256(inputGates, j));
            Vector256<float> forgetGate = Sigmoid(Load256(hiddenGates, hidden + j) + Load256(inputGates, hidden + j));
            Vector256<float> cellGate = Tanh(Load256(hiddenGates, (2 * hidden) + j) + Load256(inputGates, (2 * hidden) + j));
            Vector256<float> outGate = Sigmoid(Load256(hiddenGates, (3 * hidden) + j) + Load256(inputGates, (3 * hidden) + j));
            Vector256<float> cy = (forgetGate * Load256(c, j)) + (inGate * cellGate);
            cy.CopyTo(c.Slice(j));
            (outGate * Tanh(cy)).CopyTo(h.Slice(j));
        }
        else
        {
            Vector128<float> inGate = Sigmoid(Load128(hiddenGates, j) + Load128(inputGates, j));
            Vector128<float> forgetGate = Sigmoid(Load128(hiddenGates, hidden + j) + Load128(inputGates, hidden + j));
            Vector128<float> cellGate = Tanh(Load128(hiddenGates, (2 * hidden) + j) + Load128(inputGates, (2 * hidden) + j));
            Vector128<float> outGate = Sigmoid(Load128(hiddenGates, (3 * hidden) + j) + Load128(inputGates, (3 * hidden) + j));
            Vector128<float> cy = (forgetGate * Load128(c, j)) + (inGate * cellGate);
            cy.CopyTo(c.Slice(j));
            (outGate * Tanh(cy)).CopyTo(h.Slice(j));
        }
    }

    private static void GruBlock(ReadOnlySpan<float> inputGates, ReadOnlySpan<float> hiddenGates, Span<float> h, int j, int hidden, int vectorBits)
    {
        if (vectorBits == 256)
        {
            Vector256<float> resetGate = Sigmoid(Load256(hiddenGates, j) + Load256(inputGates, j));
            Vector256<float> updateGate = Sigmoid(Load256(hiddenGates, hidden + j) + Load256(inputGates, hidden + j));
            Vector256<float> newGate = Tanh(Load256(inputGates, (2 * hidden) + j) + (Load256(hiddenGates, (2 * hidden) + j) * resetGate));
            (((Load256(h, j) - newGate) * updateGate) + newGate).CopyTo(h.Slice(j));
        }
        else
        {
            Vector128<float> resetGate = Sigmoid(Load128(hiddenGates, j) + Load128(inputGates, j));
            Vector128<float> updateGate = Sigmoid(Load128(hiddenGates, hidden + j) + Load128(inputGates, hidden + j));
            Vector128<float> newGate = Tanh(Load128(inputGates, (2 * hidden) + j) + (Load128(hiddenGates, (2 * hidden) + j) * resetGate));
            (((Load128(h, j) - newGate) * updateGate) + newGate).CopyTo(h.Slice(j));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Load256(ReadOnlySpan<float> values, int offset) => Vector256.Create(values.Slice(offset, Vector256<float>.Count));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Load128(ReadOnlySpan<float> values, int offset) => Vector128.Create(values.Slice(offset, Vector128<float>.Count));

    /// <summary>σ(x) = 1 / (1 + e^−x): e^−x overflows to +∞ for x &lt; −88, giving 0 as the reference does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Sigmoid(Vector256<float> x) => Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(-x));

    /// <summary>σ on 128-bit vectors, as the 256-bit form.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sigmoid(Vector128<float> x) => Vector128<float>.One / (Vector128<float>.One + Vector128.Exp(-x));

    /// <summary>Below 2⁻¹², tanh(x) = x within x²/3 &lt; 2·10⁻⁸ relative; there 1 − e^−2|x| would be mostly rounding (e^0 is 1 + 1 ulp here).</summary>
    private const float SmallTanh = 1f / 4096;

    /// <summary>
    /// tanh through e^−2|x| ∈ (0, 1], which never overflows, kept ≥ 0 before the sign is x's (tanh(±0) = ±0); x itself
    /// below <see cref="SmallTanh"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Tanh(Vector256<float> x)
    {
        Vector256<float> sign = x & Vector256.Create(-0.0f);
        Vector256<float> magnitude = Vector256.Abs(x);
        Vector256<float> t = Vector256.Exp(magnitude * Vector256.Create(-2.0f));
        Vector256<float> tanh = Vector256.Max((Vector256<float>.One - t) / (Vector256<float>.One + t), Vector256<float>.Zero);
        return Vector256.ConditionalSelect(Vector256.LessThan(magnitude, Vector256.Create(SmallTanh)), magnitude, tanh) | sign;
    }

    /// <summary>tanh on 128-bit vectors, as the 256-bit form.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Tanh(Vector128<float> x)
    {
        Vector128<float> sign = x & Vector128.Create(-0.0f);
        Vector128<float> magnitude = Vector128.Abs(x);
        Vector128<float> t = Vector128.Exp(magnitude * Vector128.Create(-2.0f));
        Vector128<float> tanh = Vector128.Max((Vector128<float>.One - t) / (Vector128<float>.One + t), Vector128<float>.Zero);
        return Vector128.ConditionalSelect(Vector128.LessThan(magnitude, Vector128.Create(SmallTanh)), magnitude, tanh) | sign;
    }
}
