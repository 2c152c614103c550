using System.Collections.Generic;
using QuantGen.Generator.Planning;

namespace QuantGen.Generator.Emitting;

/// <summary>
/// Writes <c>ToString()</c> for Observed and Quantized: the module tree as PyTorch prints a prepared or
/// converted model (seed 000's cells [3] and [4]), members in forward order, fused-away members as
/// <c>Identity()</c>, every observer under the op it watches.
/// </summary>
internal static class ReprEmitter
{
    private const string ObserverLine = "    (activation_post_process): ";

    /// <summary>Observed's repr: the fused float ops and their activation observers.</summary>
    public static void EmitObserved(SourceWriter writer, ModelPlan plan)
    {
        var parts = new List<string>();
        foreach (StepPlan step in plan.Steps)
        {
            string head = $"  ({step.Member}): ";
            string observer = step.Observer >= 0 ? $"this.{plan.Observers[step.Observer].Property}.Spec" : string.Empty;
            switch (step.Kind)
            {
                case StepKind.Quantize when step.Member.Length == 0:
                    parts.Add(Text($"  (input_activation_post_process): "));
                    parts.Add(observer);
                    parts.Add(Text("\n"));
                    break;
                case StepKind.Quantize:
                    parts.Add(Text(head + "QuantStub(\n" + ObserverLine));
                    parts.Add(observer);
                    parts.Add(Text("\n  )\n"));
                    break;
                case StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d or StepKind.BatchNorm2d:
                    parts.Add(Text(head));
                    parts.Add($"this.{step.FloatField}");
                    parts.Add(Text("\n" + ObserverLine));
                    parts.Add(observer);
                    parts.Add(Text("\n" + FusedAway(step)));
                    break;
                case StepKind.Add or StepKind.Cat:
                    parts.Add(Text($"  ({step.Layer}): {(step.Relu ? "add_relu" : step.Kind == StepKind.Add ? "add" : "cat")}(\n" + ObserverLine));
                    parts.Add(observer);
                    parts.Add(Text("\n  )\n"));
                    break;
                case StepKind.ReLU or StepKind.FunctionalRelu:
                    parts.Add(Text($"  ({step.Layer}): ReLU()\n"));
                    break;
                case StepKind.FloatIsland:
                    // A float island prints as the user's module with the observer at its output.
                    parts.Add(Text(head));
                    parts.Add($"this.{step.ModuleField}");
                    parts.Add(Text("\n" + ObserverLine));
                    parts.Add(observer);
                    parts.Add(Text("\n"));
                    break;
                case StepKind.Flatten or StepKind.FunctionalFlatten:
                    parts.Add(Text($"  ({step.Layer}): Flatten()\n"));
                    break;
                case StepKind.Reshape or StepKind.MaxPool2d or StepKind.FunctionalMaxPool2d or StepKind.AvgPool2d or StepKind.AdaptiveAvgPool2d or StepKind.Upsample:
                    parts.Add(Text($"  ({step.Layer}): {ReprName(step.Kind)}()\n"));
                    break;
                case StepKind.Identity:
                    parts.Add(Text(head + "Identity()\n"));
                    break;
                case StepKind.DeQuantize:
                    parts.Add(Text(head + "DeQuantStub()\n"));
                    break;
            }
        }

        Emit(writer, plan, parts, "The prepared model as PyTorch prints it: each op in forward order with its observer.");
    }

    /// <summary>Quantized's repr: the int8 ops with their qparams.</summary>
    public static void EmitQuantized(SourceWriter writer, ModelPlan plan)
    {
        var parts = new List<string>();
        foreach (StepPlan step in plan.Steps)
        {
            string head = $"  ({(step.Member.Length == 0 ? step.Layer : step.Member)}): ";
            switch (step.Kind)
            {
                case StepKind.Quantize or StepKind.ReLU or StepKind.Flatten:
                    parts.Add(Text(head));
                    parts.Add($"this.{Names.Identifier(step.QuantizedProperty!)}");
                    parts.Add(Text("\n"));
                    break;
                case StepKind.Select:
                    break;
                case var _ when step.QuantizedProperty is not null && step.Kind is not (StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d or StepKind.BatchNorm2d):
                    parts.Add(Text($"  ({step.Layer}): "));
                    parts.Add($"this.{Names.Identifier(step.QuantizedProperty!)}");
                    parts.Add(Text("\n"));
                    break;
                case StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d or StepKind.BatchNorm2d:
                    parts.Add(Text(head));
                    parts.Add(ObservedEmitter.CanFallBack(step)
                        ? $"(object?)this.{ObservedEmitter.Int8Field(step)} ?? this.{ObservedEmitter.FallbackProperty(step)}"
                        : $"this.{Names.Identifier(step.QuantizedProperty!)}");
                    parts.Add(Text("\n" + FusedAway(step)));
                    break;
                case StepKind.Identity:
                    parts.Add(Text(head + "Identity()\n"));
                    break;
                case StepKind.DeQuantize:
                    parts.Add(Text(head + "DeQuantize()\n"));
                    break;
            }
        }

        Emit(writer, plan, parts, "The converted model as PyTorch prints it: each int8 op in forward order with its qparams.");
    }

    private static string ReprName(StepKind kind) => kind switch
    {
        StepKind.Reshape => "Reshape",
        StepKind.MaxPool2d or StepKind.FunctionalMaxPool2d => "MaxPool2d",
        StepKind.AvgPool2d => "AvgPool2d",
        StepKind.AdaptiveAvgPool2d => "AdaptiveAvgPool2d",
        _ => "Upsample",
    };

    private static string FusedAway(StepPlan step)
    {
        string text = string.Empty;
        foreach (string member in step.FusedMembers)
        {
            text += $"  ({member}): Identity()\n";
        }

        return text;
    }

    // A marker so Emit can tell literal text from an expression.
    private static string Text(string text) => "\u0001" + text;

    private static void Emit(SourceWriter writer, ModelPlan plan, List<string> parts, string summary)
    {
        writer.Line($"/// <summary>{summary}</summary>");
        writer.Line("/// <returns>The module tree, one member per line.</returns>");
        writer.Line("public override string ToString()");
        writer.Open();
        writer.Line("var text = new global::System.Text.StringBuilder();");
        writer.Line($"text.Append({Names.Literal(plan.ClassName + "(\n")});");
        foreach (string part in Merge(parts))
        {
            writer.Line(part[0] == '\u0001'
                ? $"text.Append({Names.Literal(part.Substring(1))});"
                : $"text.Append({part});");
        }

        writer.Line("return text.Append(')').ToString();");
        writer.Close();
    }

    // Adjacent literal pieces become one Append, so the generated method reads line by line.
    private static IEnumerable<string> Merge(List<string> parts)
    {
        string? pending = null;
        foreach (string part in parts)
        {
            if (part.Length > 0 && part[0] == '\u0001')
            {
                pending = pending is null ? part : pending + part.Substring(1);
                continue;
            }

            if (pending is not null)
            {
                yield return pending;
                pending = null;
            }

            yield return part;
        }

        if (pending is not null)
        {
            yield return pending;
        }
    }
}
