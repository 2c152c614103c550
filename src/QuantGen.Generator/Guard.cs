using System;
using QuantGen.Generator.Diagnostics;

namespace QuantGen.Generator;

/// <summary>
/// Keeps a bug in the generator from crashing the user's build: an unexpected exception becomes a QG9999
/// diagnostic on the class. Cancellation still propagates, as the driver expects.
/// </summary>
internal static class Guard
{
    /// <summary>Runs <paramref name="body"/>; on an exception returns <paramref name="onError"/> of one QG9999.</summary>
    public static T Run<T>(string className, LocationInfo? location, Func<T> body, Func<EquatableArray<DiagnosticInfo>, T> onError)
    {
        try
        {
            return body();
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            return onError(new[] { InternalError(className, location, exception) }.ToEquatableArray());
        }
    }

    /// <summary>The QG9999 diagnostic for <paramref name="exception"/>.</summary>
    public static DiagnosticInfo InternalError(string className, LocationInfo? location, Exception exception)
    {
        // One line: the message lands inside a single-line diagnostic.
        string message = exception.Message.Replace("\r", " ").Replace("\n", " ");
        return DiagnosticInfo.Create(DiagnosticDescriptors.InternalError, location, className, exception.GetType().Name, message);
    }
}
