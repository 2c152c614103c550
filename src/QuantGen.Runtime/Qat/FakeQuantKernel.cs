using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Threading;
using System.Threading.Tasks;

namespace QuantGen.Qat;

/// <summary>
/// The per-tensor fake quantize on CPU, forward and backward, each in one pass over the tensor. The forward writes only
/// its output (no mask tensor: the backward recomputes <c>round(x · (1/s)) + z</c> from the saved input, as PyTorch's
/// non-cachemask <c>fake_quantize_per_tensor_affine</c> backward does), so a fake quantize allocates one tensor per
/// direction, like the float op it follows. Bit-identical to <see cref="FakeQuant"/>'s tensor form: <c>x · (1/s)</c> in
/// float32, rounded half to even, <c>+ z</c>, clamp, <c>− z</c>, <c>· s</c>; the gradient is <c>dy · [qmin ≤ q ≤ qmax]</c>.
/// </summary>
/// <remarks>
/// Tensors of <see cref="ParallelThreshold"/> elements or more are split over libtorch's intra-op threads
/// (<c>torch.get_num_threads()</c>), as libtorch splits its own elementwise ops: a single-threaded pass would otherwise
/// cost as much as the conv it follows on a 2-core machine, and a user who limits libtorch to one thread gets one here too.
/// </remarks>
public static class FakeQuantKernel
{
    /// <summary>The element count from which a pass is split over the cores (below it, one thread is faster).</summary>
    public const int ParallelThreshold = 1 << 16;

    /// <summary>Forward over spans of equal length: the vector path where the machine has one, the scalar reference for the rest (the one dispatch point).</summary>
    /// <param name="input">x.</param>
    /// <param name="output">The fake-quantized values.</param>
    /// <param name="inverseScale">1/s, computed in float32.</param>
    /// <param name="zeroPoint">z.</param>
    /// <param name="scale">s.</param>
    /// <param name="quantMin">qmin.</param>
    /// <param name="quantMax">qmax.</param>
    /// <param name="rectified">ReLU first: fake-quantize <c>max(x, 0)</c>, and pass no gradient where <c>x &lt;= 0</c> (a fused conv-ReLU's output).</param>
    /// <exception cref="ArgumentException">Spans of different lengths.</exception>
    public static void Forward(ReadOnlySpan<float> input, Span<float> output, float inverseScale, float zeroPoint, float scale, float quantMin, float quantMax, bool rectified = false)
    {
        if (input.Length != output.Length)
        {
            throw new ArgumentException($"fake quantize kernel: input ({input.Length}) and output ({output.Length}) lengths differ.");
        }

        int done = Vector256.IsHardwareAccelerated ? ForwardVector256(input, output, inverseScale, zeroPoint, scale, quantMin, quantMax, rectified) : 0;
        ForwardScalar(input[done..], output[done..], inverseScale, zeroPoint, scale, quantMin, quantMax, rectified);
    }

    /// <summary>The scalar reference of the forward (arguments as <see cref="Forward"/>).</summary>
    /// <param name="input">x.</param>
    /// <param name="output">The fake-quantized values.</param>
    /// <param name="inverseScale">1/s, computed in float32.</param>
    /// <param name="zeroPoint">z.</param>
    /// <param name="scale">s.</param>
    /// <param name="quantMin">qmin.</param>
    /// <param name="quantMax">qmax.</param>
    /// <param name="rectified">ReLU first: fake-quantize <c>max(x, 0)</c>, and pass no gradient where <c>x &lt;= 0</c> (a fused conv-ReLU's output).</param>
    public static void ForwardScalar(ReadOnlySpan<float> input, Span<float> output, float inverseScale, float zeroPoint, float scale, float quantMin, float quantMax, bool rectified = false)
    {
        for (int i = 0; i < input.Length; i++)
        {
            float x = rectified ? MathF.Max(input[i], 0f) : input[i];
            float q = MathF.Round(x * inverseScale, MidpointRounding.ToEven) + zeroPoint;
            float clamped = MathF.Min(MathF.Max(q, quantMin), quantMax);
            output[i] = (clamped - zeroPoint) * scale;
        }
    }

    /// <summary>
    /// Backward: <c>dx = dy · [qmin ≤ round(x · inv) + z ≤ qmax]</c> with the mask recomputed from the forward's input
    /// (a multiplication by 1 or 0, so −0 and NaN come out as libtorch's <c>mul</c> gives them). The vector path where the
    /// machine has one, the scalar reference for the rest.
    /// </summary>
    /// <param name="input">The forward's x.</param>
    /// <param name="gradient">dy.</param>
    /// <param name="result">dx.</param>
    /// <param name="inverseScale">1/s, computed in float32 (as in the forward).</param>
    /// <param name="zeroPoint">z.</param>
    /// <param name="quantMin">qmin.</param>
    /// <param name="quantMax">qmax.</param>
    /// <param name="rectified">ReLU first: fake-quantize <c>max(x, 0)</c>, and pass no gradient where <c>x &lt;= 0</c> (a fused conv-ReLU's output).</param>
    /// <returns>True when <paramref name="gradient"/> holds a NaN.</returns>
    /// <exception cref="ArgumentException">Spans of different lengths.</exception>
    public static bool Backward(ReadOnlySpan<float> input, ReadOnlySpan<float> gradient, Span<float> result, float inverseScale, float zeroPoint, float quantMin, float quantMax, bool rectified = false)
    {
        if (gradient.Length != input.Length || gradient.Length != result.Length)
        {
            throw new ArgumentException($"fake quantize kernel: input ({input.Length}), gradient ({gradient.Length}) and result ({result.Length}) lengths differ.");
        }

        bool nan = false;
        int done = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            (done, nan) = BackwardVector256(input, gradient, result, inverseScale, zeroPoint, quantMin, quantMax, rectified);
        }

        return BackwardScalar(input[done..], gradient[done..], result[done..], inverseScale, zeroPoint, quantMin, quantMax, rectified) | nan;
    }

    /// <summary>The scalar reference of the backward (arguments as <see cref="Backward"/>).</summary>
    /// <param name="input">The forward's x.</param>
    /// <param name="gradient">dy.</param>
    /// <param name="result">dx.</param>
    /// <param name="inverseScale">1/s, computed in float32.</param>
    /// <param name="zeroPoint">z.</param>
    /// <param name="quantMin">qmin.</param>
    /// <param name="quantMax">qmax.</param>
    /// <param name="rectified">ReLU first: fake-quantize <c>max(x, 0)</c>, and pass no gradient where <c>x &lt;= 0</c> (a fused conv-ReLU's output).</param>
    /// <returns>True when <paramref name="gradient"/> holds a NaN.</returns>
    public static bool BackwardScalar(ReadOnlySpan<float> input, ReadOnlySpan<float> gradient, Span<float> result, float inverseScale, float zeroPoint, float quantMin, float quantMax, bool rectified = false)
    {
        bool nan = false;
        for (int i = 0; i < input.Length; i++)
        {
            float x = input[i];
            float q = MathF.Round((rectified ? MathF.Max(x, 0f) : x) * inverseScale, MidpointRounding.ToEven) + zeroPoint;
            float g = gradient[i];
            nan |= float.IsNaN(g);

            // ReLU's backward (libtorch's threshold_backward) writes +0 where its input was <= 0, whatever dy is.
            result[i] = rectified && x <= 0f ? 0f : g * (q >= quantMin && q <= quantMax ? 1f : 0f);
        }

        return nan;
    }

    /// <summary>
    /// <see cref="Forward"/> over a tensor's storage, split into one contiguous range per core when it holds at least
    /// <see cref="ParallelThreshold"/> elements (each range is the same kernel, so the bits do not depend on the split).
    /// </summary>
    internal static unsafe void ForwardParallel(float* input, float* output, long length, int threads, float inverseScale, float zeroPoint, float scale, float quantMin, float quantMax, bool rectified)
    {
        nint x = (nint)input, y = (nint)output;
        ForEachRange(length, threads, (start, count) => Forward(
            new ReadOnlySpan<float>((float*)x + start, count), new Span<float>((float*)y + start, count),
            inverseScale, zeroPoint, scale, quantMin, quantMax, rectified));
    }

    /// <summary><see cref="Backward"/> over a tensor's storage, split as <see cref="ForwardParallel"/>; true when a NaN was seen.</summary>
    internal static unsafe bool BackwardParallel(float* input, float* gradient, float* result, long length, int threads, float inverseScale, float zeroPoint, float quantMin, float quantMax, bool rectified)
    {
        nint x = (nint)input, dy = (nint)gradient, dx = (nint)result;
        int nan = 0;
        ForEachRange(length, threads, (start, count) =>
        {
            if (Backward(
                new ReadOnlySpan<float>((float*)x + start, count), new ReadOnlySpan<float>((float*)dy + start, count), new Span<float>((float*)dx + start, count),
                inverseScale, zeroPoint, quantMin, quantMax, rectified))
            {
                Volatile.Write(ref nan, 1);
            }
        });
        return nan != 0;
    }

    /// <summary>Runs <paramref name="body"/> over [0, length) in ranges of at most <see cref="int.MaxValue"/>, on up to <paramref name="threads"/> threads when large.</summary>
    private static void ForEachRange(long length, int threads, Action<long, int> body)
    {
        // Ranges are multiples of 64 elements so the vector path covers all but the very last tail.
        long parts = length < ParallelThreshold ? 1 : Math.Max(Math.Clamp(threads, 1, Environment.ProcessorCount), (length + int.MaxValue - 1) / int.MaxValue);
        long perPart = ((length + parts - 1) / parts + 63) & ~63L;
        if (parts == 1 || perPart >= length)
        {
            for (long start = 0; start < length; start += int.MaxValue)
            {
                body(start, (int)Math.Min(int.MaxValue, length - start));
            }

            return;
        }

        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Clamp(threads, 1, Environment.ProcessorCount) };
        Parallel.For(0, (int)((length + perPart - 1) / perPart), options, part =>
        {
            long start = part * perPart;
            body(start, (int)Math.Min(perPart, length - start));
        });
    }

    /// <summary>Eight lanes at a time; returns how many elements it did (a multiple of 8).</summary>
    private static int ForwardVector256(ReadOnlySpan<float> input, Span<float> output, float inverseScale, float zeroPoint, float scale, float quantMin, float quantMax, bool rectified)
    {
        int count = input.Length & ~7;
        var inverse = Vector256.Create(inverseScale);
        var zero = Vector256.Create(zeroPoint);
        var step = Vector256.Create(scale);
        var low = Vector256.Create(quantMin);
        var high = Vector256.Create(quantMax);
        ref float x = ref MemoryMarshal.GetReference(input);
        ref float y = ref MemoryMarshal.GetReference(output);
        Vector256<float> floor = rectified ? Vector256<float>.Zero : Vector256.Create(float.NegativeInfinity);
        for (int i = 0; i < count; i += 8)
        {
            // max(x, −∞) is x; max(x, 0) is ReLU (IEEE maximum: NaN stays NaN, as libtorch's relu keeps it).
            Vector256<float> q = Vector256.Round(Vector256.Max(Vector256.LoadUnsafe(ref x, (nuint)i), floor) * inverse) + zero;
            Vector256<float> clamped = Vector256.Min(Vector256.Max(q, low), high);
            ((clamped - zero) * step).StoreUnsafe(ref y, (nuint)i);
        }

        return count;
    }

    /// <summary>Eight lanes at a time; returns how many elements it did (a multiple of 8) and whether a NaN gradient was among them.</summary>
    private static (int Done, bool NaN) BackwardVector256(ReadOnlySpan<float> input, ReadOnlySpan<float> gradient, Span<float> result, float inverseScale, float zeroPoint, float quantMin, float quantMax, bool rectified)
    {
        int count = input.Length & ~7;
        var inverse = Vector256.Create(inverseScale);
        var zero = Vector256.Create(zeroPoint);
        var low = Vector256.Create(quantMin);
        var high = Vector256.Create(quantMax);
        var one = Vector256.Create(1f);
        Vector256<float> notNaN = Vector256<float>.AllBitsSet;
        ref float x = ref MemoryMarshal.GetReference(input);
        ref float dy = ref MemoryMarshal.GetReference(gradient);
        ref float dx = ref MemoryMarshal.GetReference(result);
        Vector256<float> floor = rectified ? Vector256<float>.Zero : Vector256.Create(float.NegativeInfinity);
        for (int i = 0; i < count; i += 8)
        {
            Vector256<float> value = Vector256.LoadUnsafe(ref x, (nuint)i);
            Vector256<float> q = Vector256.Round(Vector256.Max(value, floor) * inverse) + zero;
            Vector256<float> inRange = Vector256.GreaterThanOrEqual(q, low) & Vector256.LessThanOrEqual(q, high);
            Vector256<float> g = Vector256.LoadUnsafe(ref dy, (nuint)i);
            notNaN &= Vector256.Equals(g, g);

            // ReLU's backward writes +0 where x <= 0, whatever dy is; the plain form keeps every lane.
            Vector256<float> killed = rectified ? Vector256.LessThanOrEqual(value, Vector256<float>.Zero) : Vector256<float>.Zero;
            Vector256.AndNot(g * (inRange & one), killed).StoreUnsafe(ref dx, (nuint)i);
        }

        return (count, notNaN.AsInt32() != Vector256<int>.AllBitsSet);
    }
}
