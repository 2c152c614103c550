using System.Collections.Generic;
using System.Linq;
using QuantGen.Generator.Planning;

namespace QuantGen.Generator.Emitting;

/// <summary>
/// Writes <c>Observed.ConvertReference()</c> and the nested <c>Reference</c> class: the QDQ form
/// (PyTorch's <c>convert_fx(is_reference=True)</c>) — the float ops with quantize→dequantize at every
/// quantization point, using the same qparams and layer names as <c>Quantized</c>.
/// </summary>
internal static class ReferenceEmitter
{
    /// <summary>An op the mapping may keep in float: its float op with only the output fake-quantized when it did.</summary>
    private static string OrFloat(StepPlan step, string output, string reference)
    {
        if (!ObservedEmitter.CanFallBack(step))
        {
            return reference;
        }

        string created = $"this.{ObservedEmitter.InFloatField(step)} ? new {Names.ReferenceFloatLayer}(this.{step.FloatField}{ObservedEmitter.Bang(step)}.forward, {output}) : {reference}";
        return step.Guard.Length > 0 ? $"({created})" : created;
    }

    /// <summary>The <c>ConvertReference()</c> method inside Observed.</summary>
    public static void EmitConvertReference(SourceWriter writer, ModelPlan plan)
    {
        writer.Line("/// <summary>");
        writer.Line("/// PyTorch's <c>convert_fx(is_reference=True)</c>: the same graph as <c>Convert()</c> in float, with");
        writer.Line("/// quantize→dequantize at every quantization point (the QDQ form).");
        writer.Line("/// </summary>");
        writer.Line("/// <returns>The reference model; dispose it when done.</returns>");
        writer.Line("/// <exception cref=\"global::System.InvalidOperationException\">An observer has seen no calibration data.</exception>");
        writer.Line("public Reference ConvertReference()");
        writer.Open();
        foreach (ObserverPlan observer in plan.Observers)
        {
            writer.Line(observer.Guard.Length > 0
                ? $"{Names.QParams}? {observer.QParamsVariable} = {observer.Guard} ? this.{observer.Property}.CalculateQParams() : null;"
                : $"{Names.QParams} {observer.QParamsVariable} = this.{observer.Property}.CalculateQParams();");
        }

        var arguments = new List<string>();
        foreach (StepPlan step in Fields(plan))
        {
            string output = step.Observer >= 0 ? plan.Observers[step.Observer].QParamsVariable + (plan.Observers[step.Observer].Guard.Length > 0 ? "!" : string.Empty) : string.Empty;
            string created = step.Kind switch
            {
                StepKind.Quantize or StepKind.Add or StepKind.Cat => output,
                StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d => OrFloat(step, output, $"this.{step.FloatField}{ObservedEmitter.Bang(step)}.ToReference({output}, this.{ObservedEmitter.WeightSpecField(step)})"),
                StepKind.BatchNorm2d => OrFloat(step, output, $"this.{step.FloatField}{ObservedEmitter.Bang(step)}.ToReference({output})"),
                _ => $"this.{step.ModuleField}{ObservedEmitter.Bang(step)}",
            };
            arguments.Add(step.Guard.Length > 0 && step.Kind != StepKind.Quantize ? $"{step.Guard} ? {created} : null" : created);
        }

        foreach (StepPlan step in ObservedEmitter.IslandSteps(plan))
        {
            // The float island's output is fake-quantized with its own observer's qparams.
            ObserverPlan observer = plan.Observers[step.Observer];
            arguments.Add(observer.QParamsVariable + (observer.Guard.Length > 0 ? "!" : string.Empty));
        }

        arguments.AddRange(plan.Conditions.Select(c => "this." + c.Field));
        writer.Line("return new Reference(");
        using (writer.Indent())
        {
            for (int i = 0; i < arguments.Count; i++)
            {
                writer.Line(arguments[i] + (i == arguments.Count - 1 ? ");" : ","));
            }
        }

        writer.Close();
    }

    /// <summary>The steps Reference keeps something for, in step order.</summary>
    private static IEnumerable<StepPlan> Fields(ModelPlan plan) =>
        plan.Steps.Where(s => s.Kind is StepKind.Quantize or StepKind.Add or StepKind.Cat or StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d or StepKind.BatchNorm2d
            || s.ModuleField is not null);

    private static string FieldType(StepPlan step, ModelPlan plan) => step.Kind switch
    {
        StepKind.Quantize or StepKind.Add or StepKind.Cat => Names.QParams,
        StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d or StepKind.BatchNorm2d => Names.ReferenceLayer,
        _ => plan.Modules.First(m => m.Field == step.ModuleField).Type,
    };

    private static string Field(StepPlan step) => "_" + (step.QuantizedProperty ?? step.Layer).TrimStart('@').Replace('.', '_');

    /// <summary>The field holding a float island's output qparams ("_conv2_quantize").</summary>
    private static string IslandField(StepPlan step) => "_" + step.IslandQuantizer.TrimStart('@');

    /// <summary>The nested Reference class.</summary>
    public static void Emit(SourceWriter writer, ModelPlan plan)
    {
        List<StepPlan> fields = Fields(plan).ToList();
        writer.Line("/// <summary>");
        writer.Line($"/// {plan.ClassName} in QDQ form (PyTorch's reference model): float ops with quantize→dequantize at every");
        writer.Line("/// quantization point, the same qparams as Quantized; each int8 op should match its layer here within one step.");
        writer.Line("/// </summary>");
        writer.Line(Names.GeneratedCodeAttribute);
        writer.Line(plan.HidesInherited ? "public new sealed class Reference : global::System.IDisposable" : "public sealed class Reference : global::System.IDisposable");
        writer.Open();
        foreach (StepPlan step in fields)
        {
            string nullable = step.Guard.Length > 0 && step.Kind != StepKind.Quantize ? "?" : string.Empty;
            writer.Line($"private readonly {FieldType(step, plan)}{nullable} {Field(step)};");
        }

        List<StepPlan> islands = ObservedEmitter.IslandSteps(plan).ToList();
        foreach (StepPlan step in islands)
        {
            writer.Line($"private readonly {Names.QParams} {IslandField(step)};");
        }

        foreach (ConditionPlan condition in plan.Conditions)
        {
            writer.Line($"private readonly bool {condition.Field};");
        }

        writer.Line();
        string parameters = string.Join(", ", fields.Select(s => $"{FieldType(s, plan)}{(s.Guard.Length > 0 && s.Kind != StepKind.Quantize ? "?" : string.Empty)} {Field(s).TrimStart('_')}_")
            .Concat(islands.Select(s => $"{Names.QParams} {IslandField(s).TrimStart('_')}_"))
            .Concat(plan.Conditions.Select(c => "bool " + c.Field.TrimStart('_'))));
        writer.Line($"internal Reference({parameters})");
        writer.Open();
        foreach (StepPlan step in fields)
        {
            writer.Line($"this.{Field(step)} = {Field(step).TrimStart('_')}_;");
        }

        foreach (StepPlan step in islands)
        {
            writer.Line($"this.{IslandField(step)} = {IslandField(step).TrimStart('_')}_;");
        }

        foreach (ConditionPlan condition in plan.Conditions)
        {
            writer.Line($"this.{condition.Field} = {condition.Field.TrimStart('_')};");
        }

        writer.Close();
        writer.Line();
        writer.Line("/// <summary>Float in, float out through the QDQ graph.</summary>");
        writer.Line("/// <param name=\"input\">A float32 tensor of the shape the float model takes.</param>");
        writer.Line("/// <returns>The fake-quantized result.</returns>");
        writer.Line($"public {Names.Tensor} forward({Names.Tensor} input) => this.forward(input, null);");
        writer.Line();
        writer.Line("/// <summary>Float in, float out through the QDQ graph, reporting every layer's output and qparams to <paramref name=\"tap\"/>.</summary>");
        writer.Line("/// <param name=\"input\">A float32 tensor of the shape the float model takes.</param>");
        writer.Line("/// <param name=\"tap\">Receives each layer's output under the same layer names as the Quantized taps; null for none.</param>");
        writer.Line("/// <returns>The fake-quantized result.</returns>");
        writer.Line($"public {Names.Tensor} forward({Names.Tensor} input, {Names.ReferenceTap}? tap)");
        writer.Open();
        writer.Line("using var scope = global::TorchSharp.torch.NewDisposeScope();");
        var guarded = ObservedEmitter.GuardedValues(plan);
        var qparams = new Dictionary<int, string>();
        string V(int value) => ObservedEmitter.Value(value) + (guarded.Contains(value) ? "!" : string.Empty);
        string Q(int value) => qparams.TryGetValue(value, out string? q) ? q : "null!";
        foreach (StepPlan step in plan.Steps)
        {
            foreach (string comment in step.Comments)
            {
                writer.Comment(comment);
            }

            string field = Fields(plan).Contains(step) ? $"this.{Field(step)}{(step.Guard.Length > 0 && step.Kind != StepKind.Quantize ? "!" : string.Empty)}" : string.Empty;
            string input = V(step.Input);
            string output = ObservedEmitter.Value(step.Output);
            string inQ = Q(step.Input);
            string FakeQuant(string tensor, string q) => $"{Names.FakeQuant}.Apply({tensor}, {q})";
            string? compute = step.Kind switch
            {
                StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d or StepKind.BatchNorm2d => $"{field}.forward({input})",
                StepKind.ReLU or StepKind.Flatten or StepKind.MaxPool2d or StepKind.AvgPool2d or StepKind.AdaptiveAvgPool2d or StepKind.Upsample => FakeQuant($"{field}.forward({input})", inQ),
                StepKind.FunctionalRelu => FakeQuant($"{Names.Functional}.relu({input})", inQ),
                StepKind.FunctionalFlatten => FakeQuant($"{input}.flatten({ObservedEmitter.Int(step.FlattenStartDim!.Value)}, {ObservedEmitter.Int(step.FlattenEndDim!.Value)})", inQ),
                StepKind.Reshape => FakeQuant($"{input}.reshape(new long[] {{ {string.Join(", ", step.Ints.Select(ObservedEmitter.Int))} }})", inQ),
                StepKind.FunctionalMaxPool2d => FakeQuant($"{Names.Functional}.max_pool2d({input}, new long[] {{ {step.Ints[0]}, {step.Ints[1]} }}, new long[] {{ {step.Ints[2]}, {step.Ints[3]} }}, new long[] {{ {step.Ints[4]}, {step.Ints[5]} }}, new long[] {{ {step.Ints[6]}, {step.Ints[7]} }}, {ObservedEmitter.Bool(step.Ints[8] != 0)})", inQ),
                StepKind.Add when step.Relu => FakeQuant($"{Names.Functional}.relu({Names.Torch}.add({V(step.Inputs[0])}, {V(step.Inputs[1])}))", field),
                StepKind.Add => FakeQuant($"{Names.Torch}.add({V(step.Inputs[0])}, {V(step.Inputs[1])})", field),
                StepKind.Cat => FakeQuant($"{Names.Torch}.cat(new {Names.Tensor}[] {{ {string.Join(", ", step.Inputs.Select(V))} }}, {ObservedEmitter.Int(step.Ints[0])})", field),
                StepKind.Select => $"{step.Member} ? {V(step.Inputs[0])} : {V(step.Inputs[1])}",
                StepKind.FloatIsland => FakeQuant($"{field}.forward({input})", $"this.{IslandField(step)}"),
                _ => null,
            };
            string outQ = step.Kind switch
            {
                StepKind.FloatIsland => $"this.{IslandField(step)}",
                StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d or StepKind.BatchNorm2d => $"{field}.OutputQParams",
                StepKind.Add or StepKind.Cat => field,
                StepKind.Select => $"{step.Member} ? {Q(step.Inputs[0])} : {Q(step.Inputs[1])}",
                _ => inQ,
            };
            switch (step.Kind)
            {
                case StepKind.Quantize:
                    writer.Line($"input = {FakeQuant("input", field)};");
                    // A tap may hand back another tensor to go on with (per-op comparison feeds in the int8 value).
                    writer.Line($"input = tap?.OnLayer({Names.Literal(step.Layer)}, input, {field}) ?? input;");
                    qparams[step.Output] = field;
                    break;
                case StepKind.FloatIsland:
                    writer.Comment($"float island ([NoQuantize]): the user's float {step.Member} on the fake-quantized input, then fake-quantized with its observer's qparams.");
                    qparams[step.Output] = outQ;
                    ObservedEmitter.Assign(writer, step, Names.Tensor, output, compute!, $"{output} = tap?.OnLayer({Names.Literal(step.Layer)}, {output}, {outQ}) ?? {output};");
                    break;
                case StepKind.Identity or StepKind.DeQuantize:
                    writer.Comment(step.Kind == StepKind.Identity ? "Identity (or Dropout, identity in eval): nothing to run." : "DeQuantStub: the result is already dequantized.");
                    break;
                case StepKind.Select:
                {
                    // The chosen value's qparams go into a local of their own: written inline, every later
                    // select would repeat both of its inputs' expressions and a chain of n ifs would grow as 2^n.
                    ObservedEmitter.Assign(writer, step, Names.Tensor, output, compute!, string.Empty);
                    string local = "q" + output;
                    if (step.Guard.Length > 0)
                    {
                        writer.Line($"{Names.QParams}? {local} = {step.Guard} ? {outQ} : null;");
                        qparams[step.Output] = local + "!";
                    }
                    else
                    {
                        writer.Line($"{Names.QParams} {local} = {outQ};");
                        qparams[step.Output] = local;
                    }

                    break;
                }

                default:
                    qparams[step.Output] = outQ;
                    ObservedEmitter.Assign(writer, step, Names.Tensor, output, compute!, $"{output} = tap?.OnLayer({Names.Literal(step.Layer)}, {output}, {outQ}) ?? {output};");
                    break;
            }
        }

        writer.Line($"return {V(plan.Result)}.MoveToOuterDisposeScope();");
        writer.Close();
        writer.Line();
        writer.Line("/// <summary>Releases the reference layers' tensors.</summary>");
        writer.Line("public void Dispose()");
        writer.Open();
        foreach (StepPlan step in fields.Where(s => s.Kind is StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d or StepKind.BatchNorm2d))
        {
            writer.Line($"this.{Field(step)}{(step.Guard.Length > 0 ? "?" : string.Empty)}.Dispose();");
        }

        writer.Close();
        writer.Close();
    }
}
