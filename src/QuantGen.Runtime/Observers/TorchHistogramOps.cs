using System;

namespace QuantGen.Observers;

/// <summary>
/// The libtorch CPU operators that <see cref="HistogramObserver"/> is built from, re-done in float32 exactly as
/// ATen computes them (aten/src/ATen/native/Histogram.cpp, cpu/HistogramKernel.cpp, RangeFactories,
/// c10::div_floor_floating). Each helper says which operator it stands for.
/// </summary>
internal static class TorchHistogramOps
{
    /// <summary>
    /// <c>torch.histc(x, bins, min, max)</c> on a float32 CPU tensor, written into <paramref name="histogram"/>
    /// (overwritten). <paramref name="dataMin"/>/<paramref name="dataMax"/> are <c>aminmax(x)</c>, which histc
    /// falls back to when min == max.
    /// </summary>
    /// <remarks>
    /// Counts are kept as integers and converted once: libtorch adds 1.0f per element into float32
    /// per-thread histograms, which is the same number as long as a bin receives fewer than 2^24 values
    /// from one batch.
    /// </remarks>
    public static void Histc(ReadOnlySpan<float> values, float min, float max, float dataMin, float dataMax, Span<float> histogram, Span<int> counts)
    {
        (float leftEdge, float rightEdge) = HistcOuterEdges(min, max, dataMin, dataMax);
        int bins = histogram.Length;
        counts.Clear();

        // LINEAR_INTERPOLATION (histc passes local_search = false): pos = (int64)((elt - left) * nbins / (right - left)),
        // all float32, where left/right are bin_edges[0] and bin_edges[bins] of the float32 linspace, i.e. the
        // float32 values of the outer edges themselves.
        float width = rightEdge - leftEdge;
        float binCount = bins;
        for (int i = 0; i < values.Length; i++)
        {
            float value = values[i];
            if (!(value >= leftEdge && value <= rightEdge))
            {
                continue;
            }

            float scaled = (value - leftEdge) * binCount;
            long pos = (long)(scaled / width);

            // The rightmost bin includes its right edge; pos can only reach bins there (or by rounding just
            // below it), and libtorch moves exactly that case one bin left.
            if (pos >= bins)
            {
                pos = bins - 1;
            }

            counts[(int)pos]++;
        }

        for (int b = 0; b < bins; b++)
        {
            histogram[b] = counts[b];
        }
    }

    /// <summary>
    /// <c>histc_select_outer_bin_edges</c>: the float32 outer edges histc uses. An empty range falls back to the
    /// data's own range; if that is empty too (all values equal) it is widened in double to
    /// <c>min(nextafter_f32(v, -inf), v - 1)</c> .. <c>max(nextafter_f32(v, +inf), v + 1)</c>
    /// (<c>bins_edges_correction</c>; plain ±1 in PyTorch 2.5, the same number unless |v| ≥ 2^24).
    /// linspace keeps its two end points exactly, so the edges are those doubles rounded to float32.
    /// </summary>
    public static (float Left, float Right) HistcOuterEdges(float min, float max, float dataMin, float dataMax)
    {
        double left = min;
        double right = max;
        if (left == right)
        {
            left = dataMin;
            right = dataMax;
        }

        if (left == right)
        {
            left = Math.Min((double)MathF.BitDecrement((float)left), left - 1.0);
            right = Math.Max((double)MathF.BitIncrement((float)right), right + 1.0);
        }

        return ((float)left, (float)right);
    }

    /// <summary>
    /// Element <c>index</c> of <c>torch.linspace(start, end, steps)</c> in float32 as libtorch's CPU
    /// kernel computes it: <c>step = (end - start) / (steps - 1)</c>; the first half counted up from start, the
    /// second half counted down from end (so both end points are exact), each element with ONE rounding:
    /// <c>fma(step, i, start)</c> and <c>fma(-step, steps - 1 - i, end)</c>.
    /// </summary>
    /// <remarks>
    /// The fused multiply-add is deliberate (the numerics contract's "no FMA" is about QuantGen's own
    /// formulas): it is what libtorch produces. Checked element for element against libtorch 2.10 (TorchSharp
    /// 0.107, two threads) for 5, 9, 17, 100, 2049 and 32769 steps, where a separate multiply and add differs in
    /// about a third of the elements; HistogramObserverOracleTests' merging scenarios fail without it.
    /// </remarks>
    public readonly struct Linspace
    {
        private readonly float _start;
        private readonly float _end;
        private readonly float _step;
        private readonly long _steps;
        private readonly long _halfway;

        public Linspace(float start, float end, long steps)
        {
            _start = start;
            _end = end;
            _steps = steps;
            _step = (end - start) / (float)(steps - 1);
            _halfway = steps / 2;
        }

        public float this[long index]
        {
            get
            {
                return index < _halfway
                    ? MathF.FusedMultiplyAdd(_step, (float)index, _start)
                    : MathF.FusedMultiplyAdd(-_step, (float)(_steps - index - 1), _end);
            }
        }
    }

    /// <summary>
    /// <c>torch.bucketize(x, boundaries, right=True)</c> for one value: the number of boundaries ≤ x (an upper
    /// bound), found by walking from <paramref name="hint"/>, so a rising sequence of x costs O(1) each.
    /// </summary>
    public static int UpperBound(ReadOnlySpan<float> sortedBoundaries, float x, int hint)
    {
        int position = Math.Clamp(hint, 0, sortedBoundaries.Length);
        while (position < sortedBoundaries.Length && !(sortedBoundaries[position] > x))
        {
            position++;
        }

        while (position > 0 && sortedBoundaries[position - 1] > x)
        {
            position--;
        }

        return position;
    }

    /// <summary>
    /// <c>torch.div(a, b, rounding_mode='floor')</c> in float32 (<c>c10::div_floor_floating</c>): Python's floor
    /// division, computed from the exact remainder so that it agrees with <c>a // b</c>.
    /// </summary>
    public static float DivFloor(float a, float b)
    {
        if (b == 0f)
        {
            return a / b;
        }

        float mod = a % b; // IEEE fmod: exact
        float div = (a - mod) / b;
        if (mod != 0f && (b < 0f) != (mod < 0f))
        {
            div -= 1f;
        }

        if (div == 0f)
        {
            return MathF.CopySign(0f, a / b);
        }

        float floor = MathF.Floor(div);
        if (div - floor > 0.5f)
        {
            floor += 1f;
        }

        return floor;
    }

    /// <summary>
    /// <c>torch.sum</c> of a float32 vector as libtorch's CPU kernel adds it (SumKernel.cpp <c>cascade_sum</c>):
    /// float32 accumulators over 8-lane vectors (<c>Vectorized&lt;float&gt;</c> with the AVX2 kernels that
    /// x86 libtorch dispatches to, and on Arm64), four vectors side by side, folded in a four-level cascade;
    /// then the tail and the eight lanes added in order. Fewer than 8 values take the same cascade one value wide.
    /// </summary>
    /// <remarks>
    /// Bit-identical to libtorch 2.10 (TorchSharp 0.107) for every length tried below 32768. libtorch splits
    /// longer vectors across threads (and an AVX-512 dispatch would use 16 lanes), so there PyTorch's own last
    /// bit depends on the machine; QuantGen keeps this single-thread, 8-lane order for every length.
    /// </remarks>
    public static float Sum(ReadOnlySpan<float> values)
    {
        const int Lanes = 8;
        const int Ilp = 4;
        int lanes = values.Length >= Lanes ? Lanes : 1;
        long groups = values.Length / lanes;

        // row_sum: the groups seen as rows of Ilp groups; multi_row_sum gives one partial per column.
        long rows = groups / Ilp;
        Span<float> partial = stackalloc float[Ilp * Lanes];
        partial = partial[..(Ilp * lanes)];
        MultiRowSum(values, Ilp * lanes, rows, partial);
        for (long g = rows * Ilp; g < groups; g++)
        {
            for (int lane = 0; lane < lanes; lane++)
            {
                partial[lane] += values[(int)((g * lanes) + lane)];
            }
        }

        for (int column = 1; column < Ilp; column++)
        {
            for (int lane = 0; lane < lanes; lane++)
            {
                partial[lane] += partial[(column * lanes) + lane];
            }
        }

        if (lanes == 1)
        {
            return partial[0];
        }

        // vectorized_inner_sum: the values past the last whole vector, then the lanes, into one float.
        float total = 0f;
        for (long k = groups * lanes; k < values.Length; k++)
        {
            total += values[(int)k];
        }

        for (int lane = 0; lane < lanes; lane++)
        {
            total += partial[lane];
        }

        return total;
    }

    /// <summary>
    /// ATen's <c>multi_row_sum</c>: adds <paramref name="rows"/> rows of <paramref name="width"/> floats column by
    /// column into four cascade levels of float accumulators (level 0 takes 2^p rows, then carries up while the
    /// row count is a multiple of the level's span), so long sums lose less precision than one running sum.
    /// </summary>
    private static void MultiRowSum(ReadOnlySpan<float> values, int width, long rows, Span<float> result)
    {
        const int Levels = 4;
        int levelPower = Math.Max(4, CeilLog2(rows) / Levels);
        long levelStep = 1L << levelPower;
        long levelMask = levelStep - 1;
        Span<float> accumulators = stackalloc float[Levels * 32];
        accumulators = accumulators[..(Levels * width)];
        accumulators.Clear();

        long row = 0;
        while (row + levelStep <= rows)
        {
            for (long j = 0; j < levelStep; j++, row++)
            {
                AddRow(values, row, width, accumulators[..width]);
            }

            for (int level = 1; level < Levels; level++)
            {
                Span<float> lower = accumulators.Slice((level - 1) * width, width);
                Span<float> upper = accumulators.Slice(level * width, width);
                for (int k = 0; k < width; k++)
                {
                    upper[k] += lower[k];
                    lower[k] = 0f;
                }

                if ((row & (levelMask << (level * levelPower))) != 0)
                {
                    break;
                }
            }
        }

        for (; row < rows; row++)
        {
            AddRow(values, row, width, accumulators[..width]);
        }

        for (int level = 1; level < Levels; level++)
        {
            Span<float> upper = accumulators.Slice(level * width, width);
            for (int k = 0; k < width; k++)
            {
                accumulators[k] += upper[k];
            }
        }

        accumulators[..width].CopyTo(result);
    }

    private static void AddRow(ReadOnlySpan<float> values, long row, int width, Span<float> accumulator)
    {
        ReadOnlySpan<float> source = values.Slice((int)(row * width), width);
        for (int k = 0; k < width; k++)
        {
            accumulator[k] += source[k];
        }
    }

    /// <summary>c10's <c>CeilLog2</c>: ceil(log2(x)), and 1 for x ≤ 2.</summary>
    private static int CeilLog2(long x) => x <= 2 ? 1 : 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)(x - 1));

    /// <summary><c>torch.cumsum</c> of a float32 vector on the CPU: accumulates in double (acc_type), stores float32.</summary>
    public static void CumulativeSum(ReadOnlySpan<float> values, Span<float> sums)
    {
        double running = 0;
        for (int i = 0; i < values.Length; i++)
        {
            running += values[i];
            sums[i] = (float)running;
        }
    }
}
