using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text.Json;
using QuantGen.Graphs;

namespace QuantGen.Reports;

/// <summary>
/// Reads what <see cref="QuantReport.ToJson"/> wrote, property by property, so that a file that is not a report (or
/// was cut short) is refused with the property and layer named rather than half-read.
/// </summary>
internal static class ReportJson
{
    public static QuantReport Read(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(source);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new FormatException($"{source}: not JSON ({e.Message}); expected a report written by QuantReport.WriteJson.", e);
        }

        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException($"{source}: the JSON is a {root.ValueKind}, not an object; expected a report written by QuantReport.WriteJson.");
            }

            string where = source;
            string model = String(root, "model", where);
            where = $"{source} (model {model})";
            string graphHash = String(root, "graphHash", where);
            int batches = checked((int)Integer(root, "batches", where));

            // Reports written before the threshold existed carry none: they are marked against the default.
            double threshold = root.TryGetProperty("sqnrThresholdDb", out JsonElement saved) ? NumberValue(saved, "sqnrThresholdDb", where) : ReportOptions.DefaultSqnrThresholdDb;
            JsonElement layers = Property(root, "layers", where);
            if (layers.ValueKind != JsonValueKind.Array)
            {
                throw new FormatException($"{where}: 'layers' is a {layers.ValueKind}, expected an array of layer rows.");
            }

            var rows = new List<LayerReport>(layers.GetArrayLength());
            int index = 0;
            foreach (JsonElement layer in layers.EnumerateArray())
            {
                rows.Add(Layer(layer, $"{where}, layers[{index.ToString(CultureInfo.InvariantCulture)}]"));
                index++;
            }

            return new QuantReport(model, graphHash, batches, threshold, QuantReport.Mark(rows, threshold));
        }
    }

    private static LayerReport Layer(JsonElement row, string where)
    {
        if (row.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"{where}: a {row.ValueKind}, expected a layer row object.");
        }

        string name = String(row, "layer", where);
        where = $"{where} ('{name}')";
        string opText = String(row, "op", where);
        if (!Enum.TryParse(opText, ignoreCase: false, out GraphOp op) || !Enum.IsDefined(op))
        {
            throw new FormatException($"{where}: 'op' is '{opText}', which is not an op QuantGen reports ({string.Join(", ", Enum.GetNames<GraphOp>())}).");
        }

        string sourceLine = String(row, "source", where);
        var members = new List<string>();
        JsonElement memberArray = Property(row, "members", where);
        if (memberArray.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException($"{where}: 'members' is a {memberArray.ValueKind}, expected an array of member paths.");
        }

        foreach (JsonElement member in memberArray.EnumerateArray())
        {
            members.Add(member.ValueKind == JsonValueKind.String ? member.GetString()! : throw new FormatException($"{where}: a member is a {member.ValueKind}, expected a string."));
        }

        ErrorFigure? layerError = OptionalFigure(row, "layerError", where);
        ErrorFigure accumulated = OptionalFigure(row, "accumulatedError", where)
            ?? throw new FormatException($"{where}: 'accumulatedError' is null; every layer row has one.");
        ErrorFigure? weightError = OptionalFigure(row, "weightError", where);
        return new LayerReport(name, op, sourceLine, members, layerError, accumulated, weightError, Range(Property(row, "range", where), where + ".range"));
    }

    private static ActivationRange Range(JsonElement range, string where)
    {
        float scale = (float)Number(range, "scale", where);
        float min = (float)Number(range, "min", where), max = (float)Number(range, "max", where);
        double clipLow = range.TryGetProperty("clipLow", out JsonElement low) ? NumberValue(low, "clipLow", where) : min - (0.5 * scale);
        double clipHigh = range.TryGetProperty("clipHigh", out JsonElement high) ? NumberValue(high, "clipHigh", where) : max + (0.5 * scale);
        JsonElement histogram = Property(range, "histogram", where);
        string at = where + ".histogram";
        JsonElement countArray = Property(histogram, "counts", at);
        if (countArray.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException($"{at}: 'counts' is a {countArray.ValueKind}, expected an array of bin counts.");
        }

        var counts = new long[countArray.GetArrayLength()];
        int bin = 0;
        foreach (JsonElement count in countArray.EnumerateArray())
        {
            counts[bin++] = count.ValueKind == JsonValueKind.Number && count.TryGetInt64(out long value) ? value : throw new FormatException($"{at}: bin {bin - 1} is not an integer count.");
        }

        ValueHistogram values;
        try
        {
            values = ValueHistogram.FromCounts(Number(histogram, "low", at), Number(histogram, "high", at), counts, Integer(histogram, "nonFinite", at));
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"{at}: {e.Message}", e);
        }

        return new ActivationRange(
            String(range, "dType", where),
            scale,
            checked((int)Integer(range, "zeroPoint", where)),
            min,
            max,
            clipLow,
            clipHigh,
            (float)Number(range, "floatMin", where),
            (float)Number(range, "floatMax", where),
            Integer(range, "values", where),
            Integer(range, "clipped", where),
            values);
    }

    private static ErrorFigure? OptionalFigure(JsonElement row, string name, string where)
    {
        JsonElement figure = Property(row, name, where);
        if (figure.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        string at = $"{where}.{name}";
        return new ErrorFigure(Number(figure, "cosine", at), Number(figure, "sqnrDb", at), Integer(figure, "elements", at));
    }

    private static JsonElement Property(JsonElement element, string name, string where)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"{where}: a {element.ValueKind} where an object with '{name}' was expected.");
        }

        return element.TryGetProperty(name, out JsonElement value) ? value : throw new FormatException($"{where}: the property '{name}' is missing.");
    }

    private static string String(JsonElement element, string name, string where)
    {
        JsonElement value = Property(element, name, where);
        return value.ValueKind == JsonValueKind.String ? value.GetString()! : throw new FormatException($"{where}: '{name}' is a {value.ValueKind}, expected a string.");
    }

    private static long Integer(JsonElement element, string name, string where)
    {
        JsonElement value = Property(element, name, where);
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long result) ? result : throw new FormatException($"{where}: '{name}' is not an integer.");
    }

    private static double Number(JsonElement element, string name, string where) => NumberValue(Property(element, name, where), name, where);

    // ToJson writes infinities (an exact match's SQNR) as the strings "Infinity" and "-Infinity".
    private static double NumberValue(JsonElement value, string name, string where) => value.ValueKind switch
    {
        JsonValueKind.Number => value.GetDouble(),
        JsonValueKind.String when value.GetString() is "Infinity" => double.PositiveInfinity,
        JsonValueKind.String when value.GetString() is "-Infinity" => double.NegativeInfinity,
        JsonValueKind.String when value.GetString() is "NaN" => double.NaN,
        _ => throw new FormatException($"{where}: '{name}' is a {value.ValueKind}, expected a number."),
    };
}
