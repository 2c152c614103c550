using System;
using System.Globalization;

namespace QuantGen.Reports;

/// <summary>Number and shape formatting shared by the report's outputs (always culture-invariant).</summary>
internal static class ReportText
{
    /// <summary>A shape as PyTorch prints sizes: <c>[1, 3, 224, 224]</c>.</summary>
    public static string Shape(ReadOnlySpan<int> shape)
    {
        var parts = new string[shape.Length];
        for (int i = 0; i < shape.Length; i++)
        {
            parts[i] = shape[i].ToString(CultureInfo.InvariantCulture);
        }

        return "[" + string.Join(", ", parts) + "]";
    }

    /// <summary>A float32 value that round-trips (<c>0.0078125</c>).</summary>
    public static string Exact(float value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>A double with a fixed number of decimals.</summary>
    public static string Fixed(double value, int decimals) =>
        double.IsPositiveInfinity(value) ? "∞" : double.IsNegativeInfinity(value) ? "-∞" : value.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    /// <summary>A value as torch prints a scale: four decimals.</summary>
    public static string AsTorchPrints(float value) => Math.Round((double)value, 4, MidpointRounding.ToEven).ToString("0.0000", CultureInfo.InvariantCulture);

    /// <summary>An integer.</summary>
    public static string Int(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>A logical index: <c>[0, 3, 1, 2]</c>.</summary>
    public static string Index(ReadOnlySpan<int> index) => Shape(index);
}
