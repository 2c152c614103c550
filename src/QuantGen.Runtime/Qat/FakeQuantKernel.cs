using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace QuantGen.Qat;

/// <summary>
/// The per-tensor fake quantize on CPU in one pass (PyTorch's <c>fake_quantize_per_tensor_affine_cachemask</c> kernel does the
/// same): the output and the straight-through mask are written together, where the tensor formulation made nine passes
/// over the activation. Bit-identical to <see cref="FakeQuant"/>'s tensor form: <c>x · (1/s)</c> in float32, rounded half to
/// even, <c>+ z</c>, the mask on the unclamped value, clamp, <c>− z</c>, <c>· s</c>.
/// </summary>
public static class FakeQuantKernel
{
    /// <summary>Forward over spans of equal length: the vector path where the machine has one, the scalar reference for the rest (the one dispatch point).</summary>
    /// <param name="input">x.</param>
    /// <param name="output">The fake-quantized values.</param>
    /// <param name="mask">1 where <c>round(x · inv) + z</c> lies in [qmin, qmax], else 0.</param>
    /// <param name="inverseScale">1/s, computed in float32.</param>
    /// <param name="zeroPoint">z.</param>
    /// <param name="scale">s.</param>
    /// <param name="quantMin">qmin.</param>
    /// <param name="quantMax">qmax.</param>
    /// <exception cref="ArgumentException">Spans of different lengths.</exception>
    public static void Forward(ReadOnlySpan<float> input, Span<float> output, Span<byte> mask, float inverseScale, float zeroPoint, float scale, float quantMin, float quantMax)
    {
        if (input.Length != output.Length || input.Length != mask.Length)
        {
            throw new ArgumentException($"fake quantize kernel: input ({input.Length}), output ({output.Length}) and mask ({mask.Length}) lengths differ.");
        }

        int done = Vector256.IsHardwareAccelerated ? ForwardVector256(input, output, mask, inverseScale, zeroPoint, scale, quantMin, quantMax) : 0;
        ForwardScalar(input[done..], output[done..], mask[done..], inverseScale, zeroPoint, scale, quantMin, quantMax);
    }

    /// <summary>The scalar reference of the forward (arguments as <see cref="Forward"/>).</summary>
    /// <param name="input">x.</param>
    /// <param name="output">The fake-quantized values.</param>
    /// <param name="mask">1 where <c>round(x · inv) + z</c> lies in [qmin, qmax], else 0.</param>
    /// <param name="inverseScale">1/s, computed in float32.</param>
    /// <param name="zeroPoint">z.</param>
    /// <param name="scale">s.</param>
    /// <param name="quantMin">qmin.</param>
    /// <param name="quantMax">qmax.</param>
    public static void ForwardScalar(ReadOnlySpan<float> input, Span<float> output, Span<byte> mask, float inverseScale, float zeroPoint, float scale, float quantMin, float quantMax)
    {
        for (int i = 0; i < input.Length; i++)
        {
            float q = MathF.Round(input[i] * inverseScale, MidpointRounding.ToEven) + zeroPoint;
            mask[i] = q >= quantMin && q <= quantMax ? (byte)1 : (byte)0;
            float clamped = MathF.Min(MathF.Max(q, quantMin), quantMax);
            output[i] = (clamped - zeroPoint) * scale;
        }
    }

    /// <summary>
    /// Backward: <c>dx = dy · mask</c> (a multiplication, so −0 and NaN come out as libtorch's <c>mul</c> gives them).
    /// </summary>
    /// <param name="gradient">dy.</param>
    /// <param name="mask">The forward's mask.</param>
    /// <param name="result">dx.</param>
    /// <returns>True when <paramref name="gradient"/> holds a NaN.</returns>
    /// <exception cref="ArgumentException">Spans of different lengths.</exception>
    public static bool Backward(ReadOnlySpan<float> gradient, ReadOnlySpan<byte> mask, Span<float> result)
    {
        if (gradient.Length != mask.Length || gradient.Length != result.Length)
        {
            throw new ArgumentException($"fake quantize kernel: gradient ({gradient.Length}), mask ({mask.Length}) and result ({result.Length}) lengths differ.");
        }

        bool nan = false;
        for (int i = 0; i < gradient.Length; i++)
        {
            float g = gradient[i];
            nan |= float.IsNaN(g);
            result[i] = g * mask[i];
        }

        return nan;
    }

    /// <summary>Eight lanes at a time; returns how many elements it did (a multiple of 8).</summary>
    private static int ForwardVector256(ReadOnlySpan<float> input, Span<float> output, Span<byte> mask, float inverseScale, float zeroPoint, float scale, float quantMin, float quantMax)
    {
        int count = input.Length & ~7;
        var inverse = Vector256.Create(inverseScale);
        var zero = Vector256.Create(zeroPoint);
        var step = Vector256.Create(scale);
        var low = Vector256.Create(quantMin);
        var high = Vector256.Create(quantMax);
        ref float x = ref MemoryMarshal.GetReference(input);
        ref float y = ref MemoryMarshal.GetReference(output);
        ref byte m = ref MemoryMarshal.GetReference(mask);
        for (int i = 0; i < count; i += 8)
        {
            Vector256<float> q = Vector256.Round(Vector256.LoadUnsafe(ref x, (nuint)i) * inverse) + zero;
            Vector256<float> inRange = Vector256.GreaterThanOrEqual(q, low) & Vector256.LessThanOrEqual(q, high);
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref m, i), LaneBytes[(int)inRange.ExtractMostSignificantBits()]);
            Vector256<float> clamped = Vector256.Min(Vector256.Max(q, low), high);
            ((clamped - zero) * step).StoreUnsafe(ref y, (nuint)i);
        }

        return count;
    }

    /// <summary>For each 8-bit lane mask, the eight bytes 0 or 1 it stands for (lane 0 in the lowest byte).</summary>
    private static readonly ulong[] LaneBytes = CreateLaneBytes();

    private static ulong[] CreateLaneBytes()
    {
        var table = new ulong[256];
        for (int bits = 0; bits < 256; bits++)
        {
            ulong value = 0;
            for (int lane = 0; lane < 8; lane++)
            {
                if ((bits & (1 << lane)) != 0)
                {
                    value |= 1UL << (8 * lane);
                }
            }

            table[bits] = value;
        }

        return table;
    }
}
