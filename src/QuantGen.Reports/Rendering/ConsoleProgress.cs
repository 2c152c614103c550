using System;
using QuantGen.Calibration;
using Spectre.Console;

namespace QuantGen.Reports;

/// <summary>
/// A terminal progress bar (Spectre.Console) for an observed model's <c>Calibrate</c>:
/// <c>ConsoleProgress.Calibrate("Calibrating", progress =&gt; observed.Calibrate(batches, progress))</c>.
/// </summary>
public static class ConsoleProgress
{
    /// <summary>
    /// Runs <paramref name="calibrate"/> with a progress bar: batches done of the total (a spinner when the total is not
    /// known), elapsed and remaining time. When the console is not interactive (output redirected to a file or a pipe,
    /// a CI log), nothing is drawn and one line is written at the end instead.
    /// </summary>
    /// <param name="description">What is shown beside the bar (<c>Calibrating</c>).</param>
    /// <param name="calibrate">The calibration, given the progress sink to pass on: <c>p =&gt; observed.Calibrate(batches, p)</c>.</param>
    /// <param name="console">Where to draw; null for the process's console.</param>
    /// <returns>What <paramref name="calibrate"/> returned.</returns>
    public static CalibrationProgress Calibrate(string description, Func<IProgress<CalibrationProgress>, CalibrationProgress> calibrate, IAnsiConsole? console = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(description);
        ArgumentNullException.ThrowIfNull(calibrate);
        console ??= AnsiConsole.Console;
        CalibrationProgress result;
        if (!console.Profile.Capabilities.Interactive || (ReferenceEquals(console, AnsiConsole.Console) && Console.IsOutputRedirected))
        {
            result = calibrate(new Sink(_ => { }));
            console.WriteLine($"{description}: {result}");
            return result;
        }

        result = default;
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                ProgressTask task = context.AddTask(Markup.Escape(description), maxValue: 1);
                result = calibrate(new Sink(p =>
                {
                    if (p.TotalBatches is int total && total > 0)
                    {
                        task.MaxValue = total;
                        task.Value = p.BatchesDone;
                    }
                    else
                    {
                        task.IsIndeterminate = true;
                    }

                    task.Description = Markup.Escape($"{description} ({p})");
                }));
                task.IsIndeterminate = false;
                task.MaxValue = Math.Max(result.BatchesDone, 1);
                task.Value = task.MaxValue;
                task.StopTask();
            });
        return result;
    }

    // Reports on the calibrating thread, as each batch finishes (Progress<T> would post to the thread pool and
    // draw late or out of order).
    private sealed class Sink(Action<CalibrationProgress> report) : IProgress<CalibrationProgress>
    {
        public void Report(CalibrationProgress value) => report(value);
    }
}
