using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using QuantGen.Graphs;

namespace QuantGen.Reports;

/// <summary>One printed step of an explanation: what it is, the formula with the numbers put in, the result.</summary>
/// <param name="Name">What the step is (<c>accumulator</c>, <c>bias</c>, <c>rounding</c>, ...).</param>
/// <param name="Formula">The formula, with the values substituted.</param>
/// <param name="Value">The step's result as printed.</param>
public sealed record ExplainStep(string Name, string Formula, string Value);

/// <summary>One term <c>(qx − zx)·(qw − zw)</c> of a conv's or linear's accumulator.</summary>
/// <param name="InputIndex">The input element's logical index (<c>[n, c, y, x]</c>; outside the input for padding).</param>
/// <param name="Input">Its integer <c>qx</c> (the input zero point for padding).</param>
/// <param name="WeightIndex">The weight's logical index.</param>
/// <param name="Weight">Its integer <c>qw</c>.</param>
/// <param name="Product"><c>(qx − zx)·(qw − zw)</c>.</param>
/// <param name="Padding">True when the input position is padding (counts as the zero point, adds 0).</param>
public sealed record ReceptiveTerm(int[] InputIndex, int Input, int[] WeightIndex, int Weight, int Product, bool Padding);

/// <summary>A common hand calculation of the same output, re-done with the explained integers, and whether it lands elsewhere.</summary>
/// <param name="Name">Short name (<c>int32 bias, scales as printed</c>).</param>
/// <param name="Formula">The formula with the numbers used.</param>
/// <param name="Value">Its value before the final rounding.</param>
/// <param name="Result">Its final integer.</param>
/// <param name="Diverges">True when <paramref name="Result"/> is not the int8 model's output.</param>
/// <param name="Why">Where it departs from what the int8 model computes.</param>
public sealed record HandCalculation(string Name, string Formula, double Value, int Result, bool Diverges, string Why);

/// <summary>
/// How one output element of an int8 layer was computed, step by step, from the integers the layer really
/// saw. Every figure is re-computed here from the numerics contract's formulas (docs/numerics.md), not read
/// from the kernels, and <see cref="ModelOutput"/> is what the int8 model actually produced: <see cref="Agrees"/>
/// says whether the two are the same integer.
/// </summary>
public class Explanation
{
    /// <summary>The model class's name.</summary>
    public required string Model { get; init; }

    /// <summary>The layer name.</summary>
    public required string Layer { get; init; }

    /// <summary>What the layer computes.</summary>
    public required GraphOp Op { get; init; }

    /// <summary>The output element's logical index.</summary>
    public required int[] OutputIndex { get; init; }

    /// <summary>The layer's output shape.</summary>
    public required int[] OutputShape { get; init; }

    /// <summary>The steps, in order.</summary>
    public required IReadOnlyList<ExplainStep> Steps { get; init; }

    /// <summary>The integer the steps end with.</summary>
    public required int Result { get; init; }

    /// <summary>The output's qparams.</summary>
    public required QParams OutputQParams { get; init; }

    /// <summary>The integer the int8 model produced at <see cref="OutputIndex"/>.</summary>
    public required int ModelOutput { get; init; }

    /// <summary>The float model's value at the same position, when a float model was given.</summary>
    public float? FloatValue { get; init; }

    /// <summary>The float value <see cref="Result"/> stands for: <c>(float)(q − zp) * scale</c>.</summary>
    public float Dequantized => (float)(Result - OutputQParams.ZeroPoint) * OutputQParams.Scale;

    /// <summary>Whether the re-computed integer is the int8 model's.</summary>
    public bool Agrees => Result == ModelOutput;

    /// <summary>The explanation as text: a header, one line per step, and the comparison with the model and the float value.</summary>
    /// <returns>The text.</returns>
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(Model).Append('.').Append(Layer).Append(ReportText.Index(OutputIndex)).Append("  (").Append(Op)
            .Append(", output ").Append(ReportText.Shape(OutputShape)).Append(' ').Append(OutputQParams.DType.ToTorchString())
            .Append(", scale ").Append(ReportText.Exact(OutputQParams.Scale)).Append(", zero point ").Append(ReportText.Int(OutputQParams.ZeroPoint)).AppendLine(")");
        AppendHeader(text);
        int width = Steps.Count == 0 ? 0 : Steps.Max(s => s.Name.Length);
        foreach (ExplainStep step in Steps)
        {
            text.Append("  ").Append(step.Name.PadRight(width)).Append("  ").Append(step.Formula);
            if (step.Value.Length > 0)
            {
                text.Append(" = ").Append(step.Value);
            }

            text.AppendLine();
        }

        text.Append("  ").Append("int8 result".PadRight(width)).Append("  q = ").Append(ReportText.Int(Result))
            .Append(", which stands for (q − zp)·scale = ").AppendLine(ReportText.Exact(Dequantized));
        text.Append("  ").Append("int8 model".PadRight(width)).Append("  ").Append(ReportText.Int(ModelOutput))
            .AppendLine(Agrees ? "  (the steps above reproduce it exactly)" : "  (MISMATCH: the steps above do not reproduce the int8 model's output)");
        if (FloatValue is float reference)
        {
            text.Append("  ").Append("float model".PadRight(width)).Append("  ").Append(ReportText.Exact(reference))
                .Append("  (int8 − float = ").Append(ReportText.Exact(Dequantized - reference))
                .Append(", ").Append(ReportText.Fixed((Dequantized - reference) / OutputQParams.Scale, 3)).AppendLine(" steps)");
        }

        AppendFooter(text);
        return text.ToString();
    }

    /// <summary>Lines printed after the header line (derived explanations add their inputs).</summary>
    /// <param name="text">The text being built.</param>
    protected virtual void AppendHeader(StringBuilder text)
    {
    }

    /// <summary>Lines printed at the end (derived explanations add hand calculations).</summary>
    /// <param name="text">The text being built.</param>
    protected virtual void AppendFooter(StringBuilder text)
    {
    }
}

/// <summary>
/// A conv, conv-transpose or linear output element: the receptive field's integers, the int32 accumulator,
/// the bias and the backend's requantization, with the usual hand calculations checked against it.
/// </summary>
public sealed class AccumulatorExplanation : Explanation
{
    /// <summary>The requantization arithmetic (docs/numerics.md §4).</summary>
    public required QuantBackend Backend { get; init; }

    /// <summary>Every term of the accumulator, padding included.</summary>
    public required IReadOnlyList<ReceptiveTerm> Terms { get; init; }

    /// <summary>The input's scale sx.</summary>
    public required float InputScale { get; init; }

    /// <summary>The input's zero point zx.</summary>
    public required int InputZeroPoint { get; init; }

    /// <summary>The output channel (or feature) of the element.</summary>
    public required int Channel { get; init; }

    /// <summary>That channel's weight scale sw.</summary>
    public required float WeightScale { get; init; }

    /// <summary>That channel's weight zero point zw.</summary>
    public required int WeightZeroPoint { get; init; }

    /// <summary><c>Σ (qx − zx)(qw − zw)</c>, int32.</summary>
    public required int Accumulator { get; init; }

    /// <summary>The float bias of the channel (0 without bias).</summary>
    public required float Bias { get; init; }

    /// <summary>X86: <c>bs = (1f/sx)·(1f/sw)</c>; null for Qnnpack.</summary>
    public float? BiasScale { get; init; }

    /// <summary>X86: <c>bias·bs</c>, added to the accumulator in float; null for Qnnpack.</summary>
    public float? BiasTerm { get; init; }

    /// <summary>Qnnpack: the int32 bias <c>rne(bias·(1f/(sx·sw)))</c>; null for X86.</summary>
    public int? QuantizedBias { get; init; }

    /// <summary>The requantization multiplier: X86 <c>(1f/sy)/bs</c>, Qnnpack <c>(sw·sx)·(1f/sy)</c>.</summary>
    public required float Multiplier { get; init; }

    /// <summary>The float32 value that is rounded: X86 <c>max?(v, 0) + zy</c>, Qnnpack <c>(float)(acc + bq)·M</c>.</summary>
    public required float ValueBeforeRounding { get; init; }

    /// <summary><c>rne(ValueBeforeRounding)</c>.</summary>
    public required float Rounded { get; init; }

    /// <summary>The clamp's lower bound (in the output integers).</summary>
    public required int ClampMin { get; init; }

    /// <summary>The clamp's upper bound.</summary>
    public required int ClampMax { get; init; }

    /// <summary>Whether a ReLU is fused.</summary>
    public required bool Relu { get; init; }

    /// <summary>Other ways people compute this output by hand, re-done with these integers; the diverging ones say where they depart.</summary>
    public required IReadOnlyList<HandCalculation> HandCalculations { get; init; }

    /// <inheritdoc/>
    protected override void AppendHeader(StringBuilder text)
    {
        text.Append("  backend ").Append(Backend).AppendLine(Backend == QuantBackend.X86
            ? " (fbgemm/x86 qconfig, onednn arithmetic): the bias stays float, zy is added before rounding"
            : " (qnnpack): the bias is quantized to int32, zy is added after rounding");
        text.Append("  input  sx = ").Append(ReportText.Exact(InputScale)).Append(" (torch prints ").Append(ReportText.AsTorchPrints(InputScale))
            .Append("), zx = ").AppendLine(ReportText.Int(InputZeroPoint));
        text.Append("  weight channel ").Append(ReportText.Int(Channel)).Append(": sw = ").Append(ReportText.Exact(WeightScale))
            .Append(" (torch prints ").Append(ReportText.AsTorchPrints(WeightScale)).Append("), zw = ").AppendLine(ReportText.Int(WeightZeroPoint));
        text.Append("  output sy = ").Append(ReportText.Exact(OutputQParams.Scale)).Append(" (torch prints ").Append(ReportText.AsTorchPrints(OutputQParams.Scale))
            .Append("), zy = ").AppendLine(ReportText.Int(OutputQParams.ZeroPoint));
        int shown = 0;
        text.Append("  receptive field: ").Append(ReportText.Int(Terms.Count)).Append(" terms (").Append(ReportText.Int(Terms.Count(t => t.Padding))).AppendLine(" padding)");
        foreach (ReceptiveTerm term in Terms)
        {
            if (shown++ == MaxTermsPrinted)
            {
                text.Append("    ... ").Append(ReportText.Int(Terms.Count - MaxTermsPrinted)).AppendLine(" more (all in Terms)");
                break;
            }

            text.Append("    x").Append(ReportText.Index(term.InputIndex)).Append(" = ").Append(ReportText.Int(term.Input))
                .Append(term.Padding ? " (padding)" : string.Empty)
                .Append("   w").Append(ReportText.Index(term.WeightIndex)).Append(" = ").Append(ReportText.Int(term.Weight))
                .Append("   (").Append(ReportText.Int(term.Input)).Append(" − ").Append(ReportText.Int(InputZeroPoint)).Append(")·(")
                .Append(ReportText.Int(term.Weight)).Append(" − ").Append(ReportText.Int(WeightZeroPoint)).Append(") = ").AppendLine(ReportText.Int(term.Product));
        }
    }

    /// <inheritdoc/>
    protected override void AppendFooter(StringBuilder text)
    {
        if (HandCalculations.Count == 0)
        {
            return;
        }

        text.AppendLine("  hand calculations of the same output:");
        foreach (HandCalculation hand in HandCalculations)
        {
            text.Append("    ").Append(hand.Diverges ? "✗ " : "✓ ").Append(hand.Name).Append(": ").Append(hand.Formula)
                .Append(" = ").Append(hand.Value.ToString("R", System.Globalization.CultureInfo.InvariantCulture))
                .Append(" → ").Append(ReportText.Int(hand.Result));
            text.AppendLine(hand.Diverges ? $"  DIVERGES: {hand.Why}" : $"  ({hand.Why})");
        }
    }

    /// <summary>How many receptive-field terms <see cref="Explanation.ToString"/> prints (all are in <see cref="Terms"/>).</summary>
    public const int MaxTermsPrinted = 32;
}
