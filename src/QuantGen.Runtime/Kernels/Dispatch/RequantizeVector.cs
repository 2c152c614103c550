using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace QuantGen.Kernels;

/// <summary>
/// <see cref="Requantize"/> vectorised, bit-identical: every step is the same float32 operation on
/// each lane (int32→float conversion rounds to nearest even as <c>cvtsi2ss</c>/<c>vcvtdq2ps</c> do, one
/// multiply and one add each rounded on its own — no FMA; <c>Vector*.Round</c> rounds half to even;
/// ReLU as <c>max(v, +0)</c>, whose −0 → +0 cannot change <c>round(v + zy)</c>; the clamp happens in
/// float on integral values, so the float→int conversion is exact). The <c>*Native</c> min, max and
/// conversion (one instruction each: <c>vmaxps</c>, <c>vminps</c>, <c>vcvttps2dq</c>) differ from the
/// portable ones only for NaN, the sign of zero and out-of-range values, none of which reaches them
/// here (finite factors, clamped integral values). Channel tails use the scalar functions.
/// </summary>
public static unsafe class RequantizeVector
{
    /// <summary>Requantizes rows of <see cref="RequantizeParams.Channels"/> accumulators, like <see cref="Requantize.RequantizeInt32ToUInt8"/>.</summary>
    /// <param name="accumulators">int32 sums, whole rows.</param>
    /// <param name="parameters">Per-channel factors.</param>
    /// <param name="output">uint8 results, same length.</param>
    /// <param name="vectorBits">256 or 128 (the lane width to use; 0 runs the scalar reference).</param>
    public static void Int32ToUInt8(ReadOnlySpan<int> accumulators, RequantizeParams parameters, Span<byte> output, int vectorBits = 256)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        int channels = parameters.Channels;
        if (accumulators.Length % channels != 0 || output.Length != accumulators.Length)
        {
            throw new ArgumentException($"Requantize: {accumulators.Length} accumulators and {output.Length} outputs must be equal whole rows of {channels} channels.");
        }

        fixed (int* acc = accumulators)
        fixed (byte* dst = output)
        fixed (float* biasTerms = parameters.BiasTerms)
        fixed (float* multipliers = parameters.Multipliers)
        fixed (int* quantizedBias = parameters.QuantizedBias)
        {
            var view = new RequantizeView(parameters, biasTerms, multipliers, quantizedBias);
            for (int row = 0; row < accumulators.Length; row += channels)
            {
                Row(acc + row, channels, 0, view, dst + row, vectorBits);
            }
        }
    }

    /// <summary>
    /// <see cref="Scalar.RequantizeToDType.Apply"/> vectorised, bit-identical: rows of accumulators to an 8-bit output of
    /// either dtype in the unsigned view. quint8 and Qnnpack's qint8 are <see cref="Int32ToUInt8"/>; X86's qint8 rounds
    /// with the real zero point and clamps to −128..127 before the view's +128 (<see cref="Scalar.RequantizeToDType.X86"/>),
    /// eight channels per step with the same float32 operations, the channel tail through the scalar function.
    /// </summary>
    /// <param name="accumulators">int32 sums, whole rows.</param>
    /// <param name="parameters">Per-channel factors, created with the view's output zero point.</param>
    /// <param name="outputDType">The output tensor's dtype.</param>
    /// <param name="outputView">The results in the unsigned view.</param>
    /// <param name="vectorBits">256 or 128 for the vector path; 0 runs the scalar reference.</param>
    public static void Int32ToDTypeView(ReadOnlySpan<int> accumulators, RequantizeParams parameters, QuantDType outputDType, Span<byte> outputView, int vectorBits)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        int offset = Scalar.UInt8View.Offset(outputDType);
        if (vectorBits == 0 || !Vector256.IsHardwareAccelerated)
        {
            Scalar.RequantizeToDType.Apply(accumulators, parameters, outputDType, outputView);
            return;
        }

        if (offset == 0 || parameters.Backend == QuantBackend.Qnnpack)
        {
            // quint8, or Qnnpack's zero point added after rounding: the view's requantization is exact.
            Int32ToUInt8(accumulators, parameters, outputView, vectorBits);
            return;
        }

        int channels = parameters.Channels;
        if (accumulators.Length % channels != 0 || outputView.Length != accumulators.Length)
        {
            throw new ArgumentException($"Requantize: {accumulators.Length} accumulators for rows of {channels} channels and {outputView.Length} outputs.");
        }

        int zeroPoint = parameters.OutputZeroPoint - offset;
        int quantMin = outputDType.Min(), quantMax = outputDType.Max();
        ReadOnlySpan<float> biasTerms = parameters.BiasTerms;
        ReadOnlySpan<float> multipliers = parameters.Multipliers;
        bool relu = parameters.Relu;
        int vectorChannels = channels - (channels % 8);
        var shift = Vector256.Create((float)zeroPoint);
        var lowest = Vector256.Create((float)quantMin);
        var highest = Vector256.Create((float)quantMax);
        var viewOffset = Vector256.Create(offset);
        if (channels is 1 or 2 or 4)
        {
            // Rows narrower than a vector (a detector head's 2 channels): eight consecutive elements of the flat block
            // start at channel 0 and hold whole rows, so the factors repeat across the lanes.
            Span<float> biasLanes = stackalloc float[8];
            Span<float> multiplierLanes = stackalloc float[8];
            for (int lane = 0; lane < 8; lane++)
            {
                biasLanes[lane] = biasTerms[lane % channels];
                multiplierLanes[lane] = multipliers[lane % channels];
            }

            Vector256<float> bias8 = Vector256.Create<float>(biasLanes), multiplier8 = Vector256.Create<float>(multiplierLanes);
            int flat = accumulators.Length - (accumulators.Length % 8), i = 0;
            for (; i < flat; i += 8)
            {
                Unsafe.WriteUnaligned(ref outputView[i], X86QInt8Lanes(Vector256.Create(accumulators.Slice(i, 8)), bias8, multiplier8, relu, shift, lowest, highest, viewOffset));
            }

            for (; i < accumulators.Length; i++)
            {
                int c = i % channels;
                outputView[i] = (byte)(Scalar.RequantizeToDType.X86(accumulators[i], biasTerms[c], multipliers[c], zeroPoint, relu, quantMin, quantMax) + offset);
            }

            return;
        }

        for (int rowStart = 0; rowStart < accumulators.Length; rowStart += channels)
        {
            int c = 0;
            for (; c < vectorChannels; c += 8)
            {
                Unsafe.WriteUnaligned(
                    ref outputView[rowStart + c],
                    X86QInt8Lanes(Vector256.Create(accumulators.Slice(rowStart + c, 8)), Vector256.Create(biasTerms.Slice(c, 8)), Vector256.Create(multipliers.Slice(c, 8)), relu, shift, lowest, highest, viewOffset));
            }

            for (; c < channels; c++)
            {
                int q = Scalar.RequantizeToDType.X86(accumulators[rowStart + c], biasTerms[c], multipliers[c], zeroPoint, relu, quantMin, quantMax);
                outputView[rowStart + c] = (byte)(q + offset);
            }
        }
    }

    /// <summary>
    /// Eight lanes of <see cref="Scalar.RequantizeToDType.X86"/>: <c>((float)acc + biasTerm) · M</c>, ReLU as
    /// <c>v &gt; 0 ? v : 0</c> (a −0 becomes +0, which <c>round(v + zy)</c> cannot tell apart), round half to even after adding
    /// the real zero point, clamp, then the view's offset; the eight bytes packed into one ulong, lane 0 first.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong X86QInt8Lanes(Vector256<int> accumulators, Vector256<float> biasTerms, Vector256<float> multipliers, bool relu, Vector256<float> zeroPoint, Vector256<float> lowest, Vector256<float> highest, Vector256<int> viewOffset)
    {
        Vector256<float> value = (Vector256.ConvertToSingle(accumulators) + biasTerms) * multipliers;
        if (relu)
        {
            value = Vector256.ConditionalSelect(Vector256.GreaterThan(value, Vector256<float>.Zero), value, Vector256<float>.Zero);
        }

        Vector256<int> q = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round(value + zeroPoint), lowest), highest)) + viewOffset;
        Vector256<short> words = Vector256.Narrow(q, q);
        return Vector256.Narrow(words.AsUInt16(), words.AsUInt16()).AsUInt64().GetElement(0);
    }

    /// <summary>Requantizes <paramref name="count"/> consecutive channels starting at channel <paramref name="channelOffset"/>.</summary>
    internal static void Row(int* acc, int count, int channelOffset, in RequantizeView view, byte* dst, int vectorBits)
    {
        int j = 0;
        if (vectorBits == 256)
        {
            j = view.Qnnpack ? Qnnpack256(acc, count, channelOffset, view, dst) : X86Vector256(acc, count, channelOffset, view, dst);
        }
        else if (vectorBits == 128)
        {
            j = view.Qnnpack ? Qnnpack128(acc, count, channelOffset, view, dst) : X86Vector128(acc, count, channelOffset, view, dst);
        }

        if (view.Qnnpack)
        {
            for (; j < count; j++)
            {
                int c = channelOffset + j;
                dst[j] = Requantize.Qnnpack(acc[j], view.QuantizedBias[c], view.Multipliers[c], view.OutputZeroPoint, view.Relu);
            }
        }
        else
        {
            for (; j < count; j++)
            {
                int c = channelOffset + j;
                dst[j] = Requantize.X86WithBiasTerm(acc[j], view.BiasTerms[c], view.Multipliers[c], view.OutputZeroPoint, view.Relu);
            }
        }
    }

    /// <summary>
    /// The GEMM epilogue for one micro-tile, 256-bit: <c>acc = tile[r][j] − compensation[j]</c> (int32,
    /// wrapping, as the driver's compensation), then the same requantization as <see cref="Row"/>, for
    /// <paramref name="rows"/> rows of <paramref name="columns"/> channels starting at <paramref name="channel"/>.
    /// Whole groups of 8 columns run vectorised with the per-channel factors held in registers across the
    /// rows; the remaining columns use the scalar functions.
    /// </summary>
    internal static void Tile256(int* tile, int tileStride, int rows, int columns, int* compensation, int channel, in RequantizeView view, byte* output, nint outputStride)
    {
        int full = columns & ~7;
        if (view.Qnnpack)
        {
            int zy = view.OutputZeroPoint;
            Vector256<float> lower = Vector256.Create((float)((view.Relu ? zy : 0) - zy));
            Vector256<float> upper = Vector256.Create((float)(255 - zy));
            Vector256<int> zeroPoint = Vector256.Create(zy);
            for (int j = 0; j < full; j += 8)
            {
                Vector256<int> offsets = Vector256.Load(view.QuantizedBias + channel + j) - Vector256.Load(compensation + j);
                Vector256<float> multiplier = Vector256.Load(view.Multipliers + channel + j);
                for (int r = 0; r < rows; r++)
                {
                    // (t − comp) + bq: int32 addition is associative modulo 2^32, so this is acc + bq exactly.
                    Vector256<int> biased = Vector256.Load(tile + (r * tileStride) + j) + offsets;
                    Vector256<float> value = Vector256.ConvertToSingle(biased) * multiplier;
                    Vector256<float> clamped = Vector256.MinNative(Vector256.MaxNative(value, lower), upper);
                    StoreBytes(VectorBytes.RoundClampedToInt32(clamped) + zeroPoint, output + (r * outputStride) + j);
                }
            }
        }
        else
        {
            // ReLU joins the clamp: max(v, 0) + zy equals max(v + zy, zy) in float (rounding is monotonic and
            // zy is exact), and clamping to integer bounds before rounding equals clamping after.
            Vector256<float> zeroPoint = Vector256.Create((float)view.OutputZeroPoint);
            Vector256<float> lower = view.Relu ? zeroPoint : Vector256<float>.Zero;
            Vector256<float> upper = Vector256.Create(255f);
            for (int j = 0; j < full; j += 8)
            {
                Vector256<int> comp = Vector256.Load(compensation + j);
                Vector256<float> biasTerm = Vector256.Load(view.BiasTerms + channel + j);
                Vector256<float> multiplier = Vector256.Load(view.Multipliers + channel + j);
                for (int r = 0; r < rows; r++)
                {
                    Vector256<int> accumulator = Vector256.Load(tile + (r * tileStride) + j) - comp;
                    Vector256<float> value = ((Vector256.ConvertToSingle(accumulator) + biasTerm) * multiplier) + zeroPoint;
                    Vector256<float> clamped = Vector256.MinNative(Vector256.MaxNative(value, lower), upper);
                    StoreBytes(VectorBytes.RoundClampedToInt32(clamped), output + (r * outputStride) + j);
                }
            }
        }

        for (int j = full; j < columns; j++)
        {
            int c = channel + j;
            for (int r = 0; r < rows; r++)
            {
                int accumulator = unchecked(tile[(r * tileStride) + j] - compensation[j]);
                output[(r * outputStride) + j] = view.Qnnpack
                    ? Requantize.Qnnpack(accumulator, view.QuantizedBias[c], view.Multipliers[c], view.OutputZeroPoint, view.Relu)
                    : Requantize.X86WithBiasTerm(accumulator, view.BiasTerms[c], view.Multipliers[c], view.OutputZeroPoint, view.Relu);
            }
        }
    }

    private static int X86Vector256(int* acc, int count, int channelOffset, in RequantizeView view, byte* dst)
    {
        Vector256<float> zeroPoint = Vector256.Create((float)view.OutputZeroPoint);
        Vector256<float> upper = Vector256.Create(255f);
        bool relu = view.Relu;
        int j = 0;
        for (; j + 8 <= count; j += 8)
        {
            int c = channelOffset + j;
            Vector256<float> accumulator = Vector256.ConvertToSingle(Vector256.Load(acc + j));
            Vector256<float> sum = accumulator + Vector256.Load(view.BiasTerms + c);
            Vector256<float> value = sum * Vector256.Load(view.Multipliers + c);
            if (relu)
            {
                value = Vector256.MaxNative(value, Vector256<float>.Zero);
            }

            Vector256<float> shifted = value + zeroPoint;
            Vector256<float> rounded = Vector256.Round(shifted);
            Vector256<float> clamped = Vector256.MinNative(Vector256.MaxNative(rounded, Vector256<float>.Zero), upper);
            StoreBytes(Vector256.ConvertToInt32Native(clamped), dst + j);
        }

        return j;
    }

    private static int Qnnpack256(int* acc, int count, int channelOffset, in RequantizeView view, byte* dst)
    {
        int zy = view.OutputZeroPoint;
        Vector256<float> lower = Vector256.Create((float)((view.Relu ? zy : 0) - zy));
        Vector256<float> upper = Vector256.Create((float)(255 - zy));
        Vector256<int> zeroPoint = Vector256.Create(zy);
        int j = 0;
        for (; j + 8 <= count; j += 8)
        {
            int c = channelOffset + j;
            Vector256<int> biased = Vector256.Load(acc + j) + Vector256.Load(view.QuantizedBias + c);
            Vector256<float> value = Vector256.ConvertToSingle(biased) * Vector256.Load(view.Multipliers + c);
            Vector256<float> rounded = Vector256.Round(value);
            Vector256<float> clamped = Vector256.MinNative(Vector256.MaxNative(rounded, lower), upper);
            StoreBytes(Vector256.ConvertToInt32Native(clamped) + zeroPoint, dst + j);
        }

        return j;
    }

    private static int X86Vector128(int* acc, int count, int channelOffset, in RequantizeView view, byte* dst)
    {
        Vector128<float> zeroPoint = Vector128.Create((float)view.OutputZeroPoint);
        Vector128<float> upper = Vector128.Create(255f);
        bool relu = view.Relu;
        int j = 0;
        for (; j + 4 <= count; j += 4)
        {
            int c = channelOffset + j;
            Vector128<float> accumulator = Vector128.ConvertToSingle(Vector128.Load(acc + j));
            Vector128<float> sum = accumulator + Vector128.Load(view.BiasTerms + c);
            Vector128<float> value = sum * Vector128.Load(view.Multipliers + c);
            if (relu)
            {
                value = Vector128.MaxNative(value, Vector128<float>.Zero);
            }

            Vector128<float> shifted = value + zeroPoint;
            Vector128<float> rounded = Vector128.Round(shifted);
            Vector128<float> clamped = Vector128.MinNative(Vector128.MaxNative(rounded, Vector128<float>.Zero), upper);
            StoreBytes(Vector128.ConvertToInt32Native(clamped), dst + j);
        }

        return j;
    }

    private static int Qnnpack128(int* acc, int count, int channelOffset, in RequantizeView view, byte* dst)
    {
        int zy = view.OutputZeroPoint;
        Vector128<float> lower = Vector128.Create((float)((view.Relu ? zy : 0) - zy));
        Vector128<float> upper = Vector128.Create((float)(255 - zy));
        Vector128<int> zeroPoint = Vector128.Create(zy);
        int j = 0;
        for (; j + 4 <= count; j += 4)
        {
            int c = channelOffset + j;
            Vector128<int> biased = Vector128.Load(acc + j) + Vector128.Load(view.QuantizedBias + c);
            Vector128<float> value = Vector128.ConvertToSingle(biased) * Vector128.Load(view.Multipliers + c);
            Vector128<float> rounded = Vector128.Round(value);
            Vector128<float> clamped = Vector128.MinNative(Vector128.MaxNative(rounded, lower), upper);
            StoreBytes(Vector128.ConvertToInt32Native(clamped) + zeroPoint, dst + j);
        }

        return j;
    }

    /// <summary>Eight int32 lanes known to be in 0..255 → eight bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreBytes(Vector256<int> values, byte* dst) => VectorBytes.Store8(values, dst);

    /// <summary>Four int32 lanes known to be in 0..255 → four bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreBytes(Vector128<int> values, byte* dst)
    {
        Vector128<short> words = Vector128.Narrow(values, values);
        Vector128<byte> bytes = Vector128.Narrow(words.AsUInt16(), words.AsUInt16());
        Unsafe.WriteUnaligned(dst, bytes.AsUInt32().ToScalar());
    }
}

/// <summary>Pinned pointers to one <see cref="RequantizeParams"/>' per-channel arrays (valid inside the caller's <c>fixed</c>).</summary>
internal readonly unsafe struct RequantizeView
{
    public RequantizeView(RequantizeParams parameters, float* biasTerms, float* multipliers, int* quantizedBias)
    {
        Qnnpack = parameters.Backend == QuantBackend.Qnnpack;
        Relu = parameters.Relu;
        OutputZeroPoint = parameters.OutputZeroPoint;
        BiasTerms = biasTerms;
        Multipliers = multipliers;
        QuantizedBias = quantizedBias;
    }

    public bool Qnnpack { get; }

    public bool Relu { get; }

    public int OutputZeroPoint { get; }

    public float* BiasTerms { get; }

    public float* Multipliers { get; }

    public int* QuantizedBias { get; }
}
