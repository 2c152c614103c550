using System;
using System.Collections.Generic;
using System.Text.Json.Serialization;
using QuantGen.Graphs;

namespace QuantGen.Reports;

/// <summary>
/// The quantization range an activation got and how the float values fit it. The representable range is
/// what the int8 values can stand for, <c>[(qmin − zp)·scale, (qmax − zp)·scale]</c> with the dtype's FULL range
/// (every quantize clamps to it, whatever reduce_range did to the scale). A float value is clipped when it lies more
/// than half a step outside it, beyond <c>[(qmin − zp)·scale − scale/2, (qmax − zp)·scale + scale/2]</c>: closer
/// values round onto the range's ends with no more error than rounding anywhere inside.
/// </summary>
/// <param name="DType"><c>torch.quint8</c> or <c>torch.qint8</c>.</param>
/// <param name="Scale">The activation's scale.</param>
/// <param name="ZeroPoint">The activation's zero point.</param>
/// <param name="Min">Smallest representable value, <c>(float)(qmin − zp) * scale</c>.</param>
/// <param name="Max">Largest representable value, <c>(float)(qmax − zp) * scale</c>.</param>
/// <param name="ClipLow">Values below this are clipped: <paramref name="Min"/> − scale/2 (in double).</param>
/// <param name="ClipHigh">Values above this are clipped: <paramref name="Max"/> + scale/2 (in double).</param>
/// <param name="FloatMin">Smallest float value the float model produced there.</param>
/// <param name="FloatMax">Largest float value the float model produced there.</param>
/// <param name="Values">How many float values were seen.</param>
/// <param name="Clipped">How many lay outside [<paramref name="ClipLow"/>, <paramref name="ClipHigh"/>] (more than half a step outside the representable range).</param>
/// <param name="Histogram">The float values' distribution.</param>
public sealed record ActivationRange(
    string DType, float Scale, int ZeroPoint, float Min, float Max, double ClipLow, double ClipHigh, float FloatMin, float FloatMax, long Values, long Clipped, ValueHistogram Histogram)
{
    /// <summary>Share of the float values that were clipped, 0..1.</summary>
    public double ClippedShare => Values == 0 ? 0 : (double)Clipped / Values;
}

/// <summary>One quantized layer's row of a <see cref="QuantReport"/>: the layer, accumulated and weight error plus its activation range.</summary>
/// <param name="Layer">The layer name (<c>layer1.0.conv1</c>).</param>
/// <param name="Op">What it computes.</param>
/// <param name="Source">Where the user's forward runs it (<c>Net.cs(29)</c>).</param>
/// <param name="Members">The user's members folded into it.</param>
/// <param name="LayerError">
/// The int8 layer alone: its own <c>Forward</c> fed the float model's input to it, quantized with the int8
/// model's qparams at that point, against the float layer's output. Isolates what this layer adds.
/// Null when the layer type cannot be run alone.
/// </param>
/// <param name="AccumulatedError">The int8 model against the float model at this layer's output: everything up to here.</param>
/// <param name="WeightError">Dequantized int8 weights against the fused float weights (conv, linear, conv-transpose); null otherwise.</param>
/// <param name="Range">The output activation's quantization range and clipping.</param>
public sealed record LayerReport(
    string Layer,
    [property: JsonConverter(typeof(JsonStringEnumConverter<GraphOp>))] GraphOp Op,
    string Source,
    IReadOnlyList<string> Members,
    ErrorFigure? LayerError,
    ErrorFigure AccumulatedError,
    ErrorFigure? WeightError,
    ActivationRange Range)
{
    /// <summary>Whether the report marks this layer: its <see cref="RankingSqnr"/> is below the report's <see cref="QuantReport.SqnrThresholdDb"/>.</summary>
    public bool BelowThreshold { get; init; }

    /// <summary>The SQNR compared with the threshold: the layer error's, else the accumulated error's.</summary>
    [JsonIgnore]
    public double RankingSqnr => LayerError?.SqnrDb ?? AccumulatedError.SqnrDb;
}
