using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;

namespace QuantGen.Bench;

/// <summary>How long the side-by-side runner warms up and measures one peer.</summary>
/// <param name="WarmupSeconds">Calls before measuring, at least this long.</param>
/// <param name="MinWarmupCalls">And at least this many.</param>
/// <param name="MeasureSeconds">Measured calls, at least this long ...</param>
/// <param name="MinIterations">... and at least this many (the median is over these).</param>
/// <param name="MaxIterations">At most this many.</param>
public sealed record MeasureSettings(double WarmupSeconds, int MinWarmupCalls, double MeasureSeconds, int MinIterations, int MaxIterations)
{
    /// <summary>The default run: ≥ 1 s / 10 calls of warm-up, ≥ 2 s / 30 timed calls.</summary>
    public static MeasureSettings Default { get; } = new(1.0, 10, 2.0, 30, 2000);

    /// <summary>A faster run: ≥ 0.5 s / 5 calls of warm-up, ≥ 0.8 s / 20 timed calls.</summary>
    public static MeasureSettings Quick { get; } = new(0.5, 5, 0.8, 20, 1000);

    /// <summary>For slow peers (the scalar reference, the observed forward): 2 warm-up calls, 10 timed calls.</summary>
    public static MeasureSettings Slow { get; } = new(0.0, 2, 0.0, 10, 10);

    /// <summary>For the calibration rows (tens of ms per call): ≥ 1 s / 5 calls of warm-up, 20 timed calls.</summary>
    public static MeasureSettings Calibration { get; } = new(1.0, 5, 0.0, 20, 20);
}

/// <summary>The median and minimum of one peer's timed calls, and what each call allocated.</summary>
/// <param name="MedianMs">Median wall time per call.</param>
/// <param name="MinMs">Fastest call.</param>
/// <param name="Iterations">Timed calls.</param>
/// <param name="AllocatedBytesPerCall">Managed bytes allocated per call on all threads (<c>GC.GetTotalAllocatedBytes(true)</c>).</param>
public sealed record Timing(double MedianMs, double MinMs, int Iterations, double AllocatedBytesPerCall)
{
    /// <summary>Parses <see cref="ToString"/>'s form.</summary>
    public static Timing Parse(string text)
    {
        string[] parts = text.Split(' ');
        return new Timing(double.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture),
            int.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture), double.Parse(parts[3], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>"median min iterations bytes", invariant culture.</summary>
    public override string ToString() => FormattableString.Invariant($"{MedianMs:R} {MinMs:R} {Iterations} {AllocatedBytesPerCall:R}");
}

/// <summary>Stopwatch medians: the side-by-side runner's measurement.</summary>
public static class Stopwatches
{
    /// <summary>
    /// Warms <paramref name="call"/> up, then times calls one by one and returns their median. A short pause
    /// first lets the spinning threads of whatever ran before (ORT's, libtorch's and QuantGen's pools) go to sleep.
    /// </summary>
    public static Timing Measure(Action call, MeasureSettings settings)
    {
        Thread.Sleep(200);
        var clock = Stopwatch.StartNew();
        int warm = 0;
        while (warm < settings.MinWarmupCalls || clock.Elapsed.TotalSeconds < settings.WarmupSeconds)
        {
            call();
            warm++;
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var times = new double[settings.MaxIterations];
        int n = 0;
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        clock.Restart();
        while (n < settings.MaxIterations && (n < settings.MinIterations || clock.Elapsed.TotalSeconds < settings.MeasureSeconds))
        {
            long start = Stopwatch.GetTimestamp();
            call();
            times[n++] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        Array.Sort(times, 0, n);
        double median = (n % 2 == 1) ? times[n / 2] : 0.5 * (times[(n / 2) - 1] + times[n / 2]);
        return new Timing(median, times[0], n, (double)allocated / n);
    }

    /// <summary>
    /// Calls <paramref name="call"/> for at least 20 calls and <paramref name="minSeconds"/>, then until it is steady:
    /// the median of its last 9 calls within 40% of the fastest call so far (at most 15 s). libtorch needs this:
    /// its first dozens of forwards after a change of thread count can take 3–4× the steady time.
    /// </summary>
    /// <returns>Calls made.</returns>
    public static int WarmUntilSteady(Action call, double minSeconds)
    {
        const int Window = 9;
        var recent = new double[Window];
        double fastest = double.MaxValue;
        var clock = Stopwatch.StartNew();
        int calls = 0;
        while (true)
        {
            long start = Stopwatch.GetTimestamp();
            call();
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            recent[calls % Window] = ms;
            fastest = Math.Min(fastest, ms);
            calls++;
            if (calls >= 20 && clock.Elapsed.TotalSeconds >= minSeconds)
            {
                double[] sorted = (double[])recent.Clone();
                Array.Sort(sorted);
                if (sorted[Window / 2] <= 1.4 * fastest || clock.Elapsed.TotalSeconds > 15)
                {
                    return calls;
                }
            }
        }
    }

    /// <summary>
    /// Times several peers under the same conditions: after each has been warmed up, they take turns in rounds of
    /// about 0.1 s each (one untimed call first, so a thread pool that went to sleep in the pause is awake), and
    /// each peer's median is over all its timed calls. Another process that gets busy during the run then slows
    /// every peer alike instead of whichever was being timed, which keeps the ratios honest on a shared machine.
    /// </summary>
    public static Timing[] MeasureInterleaved(Action[] calls, MeasureSettings settings)
    {
        int peers = calls.Length;
        var estimate = new double[peers];
        for (int p = 0; p < peers; p++)
        {
            Thread.Sleep(50);
            var warm = Stopwatch.StartNew();
            int n = 0;
            while (n < settings.MinWarmupCalls || warm.Elapsed.TotalSeconds < settings.WarmupSeconds)
            {
                calls[p]();
                n++;
            }

            estimate[p] = warm.Elapsed.TotalSeconds / n;
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var times = new List<double>[peers];
        var spent = new double[peers];
        var allocated = new long[peers];
        for (int p = 0; p < peers; p++)
        {
            times[p] = [];
        }

        const double RoundSeconds = 0.1;
        while (true)
        {
            bool done = true;
            for (int p = 0; p < peers; p++)
            {
                done &= times[p].Count >= settings.MaxIterations || (times[p].Count >= settings.MinIterations && spent[p] >= settings.MeasureSeconds);
            }

            if (done)
            {
                break;
            }

            for (int p = 0; p < peers; p++)
            {
                if (times[p].Count >= settings.MaxIterations)
                {
                    continue;
                }

                // A short pause lets the spinning threads of the previous peer (ORT's, libtorch's OpenMP, QuantGen's
                // pool) go to sleep before this one runs.
                Thread.Sleep(10);
                calls[p]();
                int batch = (int)Math.Clamp(RoundSeconds / Math.Max(estimate[p], 1e-7), 1, settings.MaxIterations - times[p].Count);
                long before = GC.GetTotalAllocatedBytes(precise: true);
                for (int i = 0; i < batch; i++)
                {
                    long start = Stopwatch.GetTimestamp();
                    calls[p]();
                    double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    times[p].Add(ms);
                    spent[p] += ms / 1000;
                }

                allocated[p] += GC.GetTotalAllocatedBytes(precise: true) - before;
            }
        }

        var results = new Timing[peers];
        for (int p = 0; p < peers; p++)
        {
            List<double> t = times[p];
            t.Sort();
            int n = t.Count;
            double median = (n % 2 == 1) ? t[n / 2] : 0.5 * (t[(n / 2) - 1] + t[n / 2]);
            results[p] = new Timing(median, t[0], n, (double)allocated[p] / n);
        }

        return results;
    }
}
