using System;

namespace QuantGen;

/// <summary>
/// A QuantGen environment setting (<c>QUANTGEN_THREADS</c>, <c>QUANTGEN_ISA</c>) holds a value QuantGen cannot use.
/// Thrown where the setting is first needed (the first kernel call, or packing weights), and again on every later
/// use until the variable is fixed: the settings are read lazily, so a bad value never poisons a type initializer
/// and is never mistaken for a bad model file.
/// </summary>
public sealed class QuantGenConfigurationException : InvalidOperationException
{
    /// <summary>Creates the exception; the message names the variable, its value and what is accepted.</summary>
    /// <param name="variable">The environment variable, e.g. <c>QUANTGEN_THREADS</c>.</param>
    /// <param name="value">The value it holds.</param>
    /// <param name="acceptedValues">What it may hold, in words (e.g. "a positive integer").</param>
    /// <param name="problem">Why this value is refused, when more than "not accepted" can be said; null otherwise.</param>
    public QuantGenConfigurationException(string variable, string value, string acceptedValues, string? problem = null)
        : base($"The environment variable {variable}=\"{value}\" is not usable{(problem is null ? string.Empty : ": " + problem)}. Accepted: {acceptedValues}; or unset it for the default.")
    {
        Variable = variable;
        Value = value;
        AcceptedValues = acceptedValues;
    }

    /// <summary>The environment variable that holds the bad value.</summary>
    public string Variable { get; }

    /// <summary>The value it holds, as read.</summary>
    public string Value { get; }

    /// <summary>What the variable accepts, in words.</summary>
    public string AcceptedValues { get; }
}
