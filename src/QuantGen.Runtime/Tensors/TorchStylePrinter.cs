using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace QuantGen;

/// <summary>
/// Prints tensors the way PyTorch's <c>torch/_tensor_str.py</c> does with its default print options
/// (precision 4, threshold 1000 elements, 3 edge items, line width 80), so QuantGen's output can be
/// compared by eye with a PyTorch session.
/// </summary>
internal static class TorchStylePrinter
{
    private const int Threshold = 1000;
    private const int EdgeItems = 3;
    private const int LineWidth = 80;
    private const string Prefix = "tensor(";

    /// <summary>
    /// <c>tensor(&lt;values&gt;, suffix, suffix, ...)</c>: values in logical row-major order, suffixes
    /// wrapped onto new lines as PyTorch's <c>_add_suffixes</c> does.
    /// </summary>
    public static string Format(double[] values, int[] shape, bool floating, IReadOnlyList<string> suffixes)
    {
        string body = Body(values, shape, floating, Prefix.Length);
        return AddSuffixes(Prefix + body, suffixes, Prefix.Length);
    }

    /// <summary>Python's <c>repr(float)</c>: shortest round trip, <c>1.0</c> not <c>1</c>, <c>1e-07</c> not <c>1E-07</c>.</summary>
    public static string PythonFloatRepr(double value)
    {
        if (double.IsNaN(value))
        {
            return "nan";
        }

        if (double.IsInfinity(value))
        {
            return value > 0 ? "inf" : "-inf";
        }

        string text = value.ToString("R", CultureInfo.InvariantCulture);
        int exponentAt = text.IndexOf('E', StringComparison.Ordinal);
        if (exponentAt >= 0)
        {
            return text[..exponentAt] + "e" + PythonExponent(text[(exponentAt + 1)..]);
        }

        return text.Contains('.', StringComparison.Ordinal) ? text : text + ".0";
    }

    /// <summary>Python's tuple printing of a shape: <c>(1, 2)</c>, <c>(5,)</c>, <c>()</c>.</summary>
    public static string PythonTuple(int[] shape) => shape.Length == 1
        ? $"({shape[0]},)"
        : "(" + string.Join(", ", shape) + ")";

    private static string Body(double[] values, int[] shape, bool floating, int indent)
    {
        if (values.Length == 0)
        {
            return "[]";
        }

        bool summarize = values.Length > Threshold;
        var shown = new List<double>();
        CollectShown(values, shape, 0, 0, summarize, shown);
        var formatter = new ElementFormatter(shown, floating);
        return shape.Length == 0
            ? formatter.Format(values[0])
            : Recurse(values, shape, 0, 0, indent, summarize, formatter);
    }

    private static int Stride(int[] shape, int dim)
    {
        int stride = 1;
        for (int d = dim + 1; d < shape.Length; d++)
        {
            stride *= shape[d];
        }

        return stride;
    }

    private static IEnumerable<int> ShownIndices(int size, bool summarize)
    {
        if (summarize && size > 2 * EdgeItems)
        {
            for (int i = 0; i < EdgeItems; i++)
            {
                yield return i;
            }

            yield return -1; // the "..." marker
            for (int i = size - EdgeItems; i < size; i++)
            {
                yield return i;
            }
        }
        else
        {
            for (int i = 0; i < size; i++)
            {
                yield return i;
            }
        }
    }

    // PyTorch builds its formatter from the summarized data only, so hidden values do not widen columns.
    private static void CollectShown(double[] values, int[] shape, int dim, int offset, bool summarize, List<double> shown)
    {
        if (dim == shape.Length)
        {
            shown.Add(values[offset]);
            return;
        }

        int stride = Stride(shape, dim);
        foreach (int i in ShownIndices(shape[dim], summarize))
        {
            if (i >= 0)
            {
                CollectShown(values, shape, dim + 1, offset + (i * stride), summarize, shown);
            }
        }
    }

    private static string Recurse(double[] values, int[] shape, int dim, int offset, int indent, bool summarize, ElementFormatter formatter)
    {
        int remaining = shape.Length - dim;
        int stride = Stride(shape, dim);
        if (remaining == 1)
        {
            var items = new List<string>();
            foreach (int i in ShownIndices(shape[dim], summarize))
            {
                items.Add(i >= 0 ? formatter.Format(values[offset + i]) : " ...");
            }

            int elementsPerLine = Math.Max(1, (LineWidth - indent) / (formatter.Width + 2));
            var lines = new List<string>();
            for (int start = 0; start < items.Count; start += elementsPerLine)
            {
                lines.Add(string.Join(", ", items.GetRange(start, Math.Min(elementsPerLine, items.Count - start))));
            }

            return "[" + string.Join(",\n" + new string(' ', indent + 1), lines) + "]";
        }

        var slices = new List<string>();
        foreach (int i in ShownIndices(shape[dim], summarize))
        {
            slices.Add(i >= 0 ? Recurse(values, shape, dim + 1, offset + (i * stride), indent + 1, summarize, formatter) : "...");
        }

        return "[" + string.Join("," + new string('\n', remaining - 1) + new string(' ', indent + 1), slices) + "]";
    }

    private static string AddSuffixes(string tensorText, IReadOnlyList<string> suffixes, int indent)
    {
        var builder = new StringBuilder(tensorText);
        int lastLineLength = tensorText.Length - tensorText.LastIndexOf('\n') + 1;
        foreach (string suffix in suffixes)
        {
            if (lastLineLength + suffix.Length + 2 > LineWidth)
            {
                builder.Append(",\n").Append(' ', indent).Append(suffix);
                lastLineLength = indent + suffix.Length;
            }
            else
            {
                builder.Append(", ").Append(suffix);
                lastLineLength += suffix.Length + 2;
            }
        }

        return builder.Append(')').ToString();
    }

    private static string PythonExponent(string dotnetExponent)
    {
        int exponent = int.Parse(dotnetExponent, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        return (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
    }

    /// <summary>PyTorch's <c>_Formatter</c>: one width for every element; integer, fixed or scientific mode.</summary>
    private sealed class ElementFormatter
    {
        private readonly bool _floating;
        private readonly bool _intMode = true;
        private readonly bool _sciMode;

        public ElementFormatter(List<double> shown, bool floating)
        {
            _floating = floating;
            Width = 1;
            if (!floating)
            {
                foreach (double value in shown)
                {
                    Width = Math.Max(Width, ((long)value).ToString(CultureInfo.InvariantCulture).Length);
                }

                return;
            }

            var nonzeroFinite = shown.FindAll(v => double.IsFinite(v) && v != 0);
            if (nonzeroFinite.Count == 0)
            {
                return;
            }

            double min = double.MaxValue, max = 0;
            foreach (double value in nonzeroFinite)
            {
                min = Math.Min(min, Math.Abs(value));
                max = Math.Max(max, Math.Abs(value));
                if (value != Math.Ceiling(value))
                {
                    _intMode = false;
                }
            }

            _sciMode = _intMode
                ? max / min > 1000.0 || max > 1.0e8
                : max / min > 1000.0 || max > 1.0e8 || min < 1.0e-4;
            foreach (double value in nonzeroFinite)
            {
                int length = _sciMode ? Scientific(value).Length
                    : _intMode ? value.ToString("F0", CultureInfo.InvariantCulture).Length + 1
                    : value.ToString("F4", CultureInfo.InvariantCulture).Length;
                Width = Math.Max(Width, length);
            }
        }

        public int Width { get; }

        public string Format(double value)
        {
            string text;
            if (!_floating)
            {
                text = ((long)value).ToString(CultureInfo.InvariantCulture);
            }
            else if (double.IsNaN(value))
            {
                text = "nan";
            }
            else if (double.IsInfinity(value))
            {
                text = value > 0 ? "inf" : "-inf";
            }
            else if (_sciMode)
            {
                text = Scientific(value);
            }
            else if (_intMode)
            {
                text = value.ToString("F0", CultureInfo.InvariantCulture) + ".";
            }
            else
            {
                text = value.ToString("F4", CultureInfo.InvariantCulture);
            }

            return text.PadLeft(Width);
        }

        // Python's '{:.4e}': "1.2346e-05" (.NET's "E4" gives "1.2346E-005").
        private static string Scientific(double value)
        {
            string text = value.ToString("E4", CultureInfo.InvariantCulture);
            int exponentAt = text.IndexOf('E', StringComparison.Ordinal);
            return text[..exponentAt] + "e" + PythonExponent(text[(exponentAt + 1)..]);
        }
    }
}
