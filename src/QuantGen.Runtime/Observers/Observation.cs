using System;

namespace QuantGen.Observers;

/// <summary>
/// Switches activation observation off for a while on the calling thread: an observed model's <c>forward</c> then
/// computes the fused float model as usual but leaves every observer as it was. Reports and Explain run the
/// calibrated model this way, so comparing on test data never changes the qparams a later <c>Convert()</c> computes.
/// </summary>
/// <example>
/// <code>
/// using (Observation.Pause())
/// {
///     Tensor y = observed.forward(testBatch);   // the observers do not see testBatch
/// }
/// </code>
/// </example>
public static class Observation
{
    // Per thread: another thread calibrating a model at the same time keeps observing. A count, so pauses nest.
    [ThreadStatic]
    private static int t_pauses;

    /// <summary>Whether observation is paused on the calling thread.</summary>
    public static bool IsPaused => t_pauses > 0;

    /// <summary>Pauses observation on the calling thread until the returned scope is disposed (on the same thread).</summary>
    /// <returns>The scope; disposing it more than once has no further effect.</returns>
    public static IDisposable Pause()
    {
        t_pauses++;
        return new Scope(Environment.CurrentManagedThreadId);
    }

    private sealed class Scope(int thread) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed)
            {
                return;
            }

            if (Environment.CurrentManagedThreadId != thread)
            {
                throw new InvalidOperationException("Observation.Pause(): the scope must be disposed on the thread that opened it (observation is paused per thread).");
            }

            _disposed = true;
            t_pauses--;
        }
    }
}
