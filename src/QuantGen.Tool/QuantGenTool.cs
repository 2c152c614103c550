using System;
using System.CommandLine;
using System.IO;
using QuantGen.Tool.Commands;

namespace QuantGen.Tool;

/// <summary>
/// The <c>quantgen</c> command line: <c>inspect</c>, <c>report</c>, <c>export</c> and <c>bench</c>. <see cref="Run"/> runs one
/// command line in-process (the tests call it as the tool's <c>Main</c> does).
/// </summary>
public static class QuantGenTool
{
    /// <summary>Exit code of a command that did what it was asked.</summary>
    public const int Success = 0;

    /// <summary>Exit code of a command line that could not be parsed (an unknown command or option, a missing argument).</summary>
    public const int UsageError = 1;

    /// <summary>Exit code when an input could not be used: a missing file, a file that is not a model or a report, a model the command cannot run.</summary>
    public const int InputError = 2;

    /// <summary>Runs one command line.</summary>
    /// <param name="args">The arguments, as <c>Main</c> receives them (<c>inspect model.qgen</c>).</param>
    /// <param name="output">Where results and help go.</param>
    /// <param name="error">Where error messages go.</param>
    /// <returns>The exit code: <see cref="Success"/>, <see cref="UsageError"/> or <see cref="InputError"/>.</returns>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var root = new RootCommand("QuantGen's command line: look inside a .qgen int8 model file, render a saved accuracy report, export to ONNX, time a model.")
        {
            InspectCommand.Create(output),
            ReportCommand.Create(output),
            ExportCommand.Create(output),
            BenchCommand.Create(output),
        };
        ParseResult parsed = root.Parse(args);
        try
        {
            return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (ToolInputException e)
        {
            error.WriteLine(e.Message);
            return InputError;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or NotSupportedException or ArgumentException or InvalidOperationException)
        {
            // The messages of QuantGen's exceptions name the file, model and layer: they are the user's answer as they are.
            error.WriteLine(e.Message);
            return InputError;
        }
    }
}

/// <summary>An input the tool cannot use; the message says which and what to do.</summary>
internal sealed class ToolInputException(string message) : Exception(message);
