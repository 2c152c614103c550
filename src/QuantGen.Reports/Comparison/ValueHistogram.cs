using System;

namespace QuantGen.Reports;

/// <summary>
/// A fixed number of equal-width bins over a range that grows as values arrive: when a value falls outside,
/// the range doubles towards it and neighbouring bins merge pairwise, so bins stay aligned and no value is
/// ever dropped or counted twice. Used for each activation's float values in the report.
/// </summary>
public sealed class ValueHistogram
{
    private readonly long[] _counts;

    /// <summary>Creates an empty histogram over an initial range (typically the chosen quantization range).</summary>
    /// <param name="low">Left edge.</param>
    /// <param name="high">Right edge; if not above <paramref name="low"/> the range is widened around it.</param>
    /// <param name="bins">Number of bins; even, at least 2.</param>
    /// <exception cref="ArgumentException">The edges are not finite or the bin count is odd or below 2.</exception>
    public ValueHistogram(double low, double high, int bins = 128)
    {
        if (!double.IsFinite(low) || !double.IsFinite(high))
        {
            throw new ArgumentException($"ValueHistogram: the initial range [{low}, {high}] must be finite.");
        }

        if (bins < 2 || bins % 2 != 0)
        {
            throw new ArgumentException($"ValueHistogram: the bin count must be even and at least 2, got {bins}.", nameof(bins));
        }

        if (!(high > low))
        {
            double half = Math.Max(Math.Abs(low), 1.0) * 1e-3;
            (low, high) = (low - half, low + half);
        }

        Low = low;
        High = high;
        _counts = new long[bins];
    }

    /// <summary>A histogram as saved (a report read back from JSON): its edges and counts.</summary>
    /// <param name="low">Left edge.</param>
    /// <param name="high">Right edge, above <paramref name="low"/>.</param>
    /// <param name="counts">Count per bin; an even number of bins, at least 2, none negative.</param>
    /// <param name="nonFinite">NaN and infinite values seen.</param>
    /// <returns>The histogram.</returns>
    /// <exception cref="ArgumentException">The edges are not finite and increasing, or the counts are not as described.</exception>
    public static ValueHistogram FromCounts(double low, double high, long[] counts, long nonFinite = 0)
    {
        ArgumentNullException.ThrowIfNull(counts);
        if (!(high > low))
        {
            throw new ArgumentException($"ValueHistogram: the range [{low}, {high}] must be increasing.", nameof(high));
        }

        var histogram = new ValueHistogram(low, high, counts.Length);
        long total = 0;
        foreach (long count in counts)
        {
            if (count < 0)
            {
                throw new ArgumentException($"ValueHistogram: a bin count is negative ({count}).", nameof(counts));
            }

            total = checked(total + count);
        }

        if (nonFinite < 0)
        {
            throw new ArgumentException($"ValueHistogram: the non-finite count is negative ({nonFinite}).", nameof(nonFinite));
        }

        counts.CopyTo(histogram._counts, 0);
        histogram.Total = total;
        histogram.NonFinite = nonFinite;
        return histogram;
    }

    /// <summary>Left edge of the first bin.</summary>
    public double Low { get; private set; }

    /// <summary>Right edge of the last bin.</summary>
    public double High { get; private set; }

    /// <summary>Width of every bin.</summary>
    public double BinWidth => (High - Low) / _counts.Length;

    /// <summary>Count per bin, left to right (a copy).</summary>
    public long[] Counts => (long[])_counts.Clone();

    /// <summary>Finite values counted.</summary>
    public long Total { get; private set; }

    /// <summary>NaN and infinite values seen (not binned).</summary>
    public long NonFinite { get; private set; }

    /// <summary>Left edge of bin <paramref name="bin"/>.</summary>
    /// <param name="bin">Bin index.</param>
    /// <returns>The edge.</returns>
    public double Edge(int bin) => Low + (bin * BinWidth);

    /// <summary>Counts values.</summary>
    /// <param name="values">The values.</param>
    public void Add(ReadOnlySpan<float> values)
    {
        foreach (float value in values)
        {
            if (!float.IsFinite(value))
            {
                NonFinite++;
                continue;
            }

            while (value < Low)
            {
                GrowLeft();
            }

            while (value > High)
            {
                GrowRight();
            }

            int bin = (int)((value - Low) / BinWidth);
            _counts[Math.Clamp(bin, 0, _counts.Length - 1)]++;
            Total++;
        }
    }

    // [Low, High] becomes the right half of [Low - W, High]: old bins 2j, 2j+1 → new bin B/2 + j.
    private void GrowLeft()
    {
        int half = _counts.Length / 2;
        for (int j = half - 1; j >= 0; j--)
        {
            _counts[half + j] = _counts[2 * j] + _counts[(2 * j) + 1];
        }

        Array.Clear(_counts, 0, half);
        Low -= High - Low;
    }

    // [Low, High] becomes the left half of [Low, High + W]: old bins 2j, 2j+1 → new bin j.
    private void GrowRight()
    {
        int half = _counts.Length / 2;
        for (int j = 0; j < half; j++)
        {
            _counts[j] = _counts[2 * j] + _counts[(2 * j) + 1];
        }

        Array.Clear(_counts, half, half);
        High += High - Low;
    }
}
