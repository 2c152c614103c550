using System.Collections.Generic;
using System.Linq;
using QuantGen.Generator.Planning;

namespace QuantGen.Generator.Emitting;

/// <summary>
/// Writes the nested <c>Quantized</c> class: the converted int8 model (PyTorch's <c>convert()</c> result),
/// with one property per int8 op named like the user's member, and float, span and QTensor forwards.
/// </summary>
internal static class QuantizedEmitter
{
    public static void Emit(SourceWriter writer, ModelPlan plan)
    {
        List<StepPlan> members = plan.Steps.Where(s => s.QuantizedProperty is not null).ToList();
        StepPlan entry = plan.Steps.First(s => s.Kind == StepKind.Quantize);

        writer.Line("/// <summary>");
        writer.Line($"/// {plan.ClassName} converted to int8 (PyTorch's converted model): prepacked int8 weights, one int8 op per");
        writer.Line("/// fused layer; its forward needs no libtorch except for the Tensor overload.");
        writer.Line("/// </summary>");
        writer.Line(Names.GeneratedCodeAttribute);
        writer.Line((plan.HidesInherited ? "public new sealed class Quantized" : "public sealed class Quantized") + " : " + Names.QuantizedModel);
        writer.Open();
        writer.Line($"private readonly {Names.Graphs}.ModelGraph _graph;");
        writer.Line($"private readonly global::System.Collections.Generic.IReadOnlyList<{Names.QuantizedLayer}> _layers;");
        BufferPlanner.BufferPlan buffers = BufferPlanner.Plan(plan);
        if (buffers.Count > 0)
        {
            // A pool, not one set: every call rents its own activation buffers, so concurrent calls never share one.
            writer.Line($"private readonly {Names.ActivationBufferPool} _buffers = new {Names.ActivationBufferPool}({buffers.Count});");
        }

        foreach (ConditionPlan condition in plan.Conditions)
        {
            writer.Line($"private readonly bool {condition.Field};");
        }

        if (plan.Conditions.Count > 0)
        {
            writer.Line();
        }

        List<StepPlan> islands = ObservedEmitter.IslandSteps(plan).ToList();
        List<StepPlan> fallbacks = ObservedEmitter.FallbackSteps(plan).ToList();
        foreach (StepPlan step in fallbacks)
        {
            writer.Line($"private readonly {ModuleType(step, plan)}? {ObservedEmitter.Int8Field(step)};");
        }

        string parameters = string.Join(", ", members.Select(s => $"{ModuleType(s, plan)}{(ObservedEmitter.CanFallBack(s) ? "?" : Nullable(s))} {Names.Identifier(s.QuantizedProperty!)}")
            .Concat(islands.Select(s => $"{Names.QuantizeInput}{Nullable(s)} {Names.Identifier(s.IslandQuantizer)}"))
            .Concat(fallbacks.Select(s => $"{Names.FloatFallback}? {ObservedEmitter.FallbackProperty(s)}"))
            .Concat(plan.Conditions.Select(c => "bool " + c.Field.TrimStart('_'))));
        writer.Line($"internal Quantized({parameters})");
        writer.Open();
        foreach (StepPlan step in members)
        {
            string identifier = Names.Identifier(step.QuantizedProperty!);
            if (ObservedEmitter.CanFallBack(step))
            {
                // int8, or kept in float by the QConfigMapping: exactly one of the two (neither when a guard is off).
                string fallback = ObservedEmitter.FallbackProperty(step);
                writer.Line($"this.{ObservedEmitter.Int8Field(step)} = {identifier};");
                writer.Line($"this.{fallback} = {fallback};");
                if (step.Guard.Length == 0)
                {
                    writer.Line($"if ({identifier} is null && {fallback} is null) throw new {Names.ArgumentNullException}(nameof({identifier}));");
                }

                continue;
            }

            writer.Line(step.Guard.Length > 0
                ? $"this.{identifier} = {identifier};"
                : $"this.{identifier} = {identifier} ?? throw new {Names.ArgumentNullException}(nameof({identifier}));");
        }

        foreach (StepPlan step in islands)
        {
            string identifier = Names.Identifier(step.IslandQuantizer);
            writer.Line(step.Guard.Length > 0
                ? $"this.{identifier} = {identifier};"
                : $"this.{identifier} = {identifier} ?? throw new {Names.ArgumentNullException}(nameof({identifier}));");
        }

        foreach (ConditionPlan condition in plan.Conditions)
        {
            writer.Line($"this.{condition.Field} = {condition.Field.TrimStart('_')};");
        }

        writer.Line("this._layers = this.CreateLayers();");
        writer.Line("this._graph = this.CreateGraph();");
        writer.Close();
        foreach (StepPlan step in members)
        {
            writer.Line();
            string identifier = Names.Identifier(step.QuantizedProperty!);
            string absent = step.Guard.Length > 0 ? " Null when the construction-time condition it runs under did not hold." : string.Empty;
            if (!ObservedEmitter.CanFallBack(step))
            {
                writer.Line($"/// <summary>{Describe(step)}{absent}</summary>");
                writer.Line($"public {ModuleType(step, plan)}{Nullable(step)} {identifier} {{ get; }}");
                continue;
            }

            string fallback = ObservedEmitter.FallbackProperty(step);
            string inFloat = $"throw new global::System.InvalidOperationException({Names.Literal($"{plan.ClassName}.{step.Layer} runs in float: the QConfigMapping given to Prepare resolves a null qconfig for it. Its float op is {fallback}.")})";
            writer.Line($"/// <summary>{Describe(step)}{absent}</summary>");
            writer.Line($"/// <exception cref=\"global::System.InvalidOperationException\">The QConfigMapping kept the op in float (see <see cref=\"{fallback}\"/>).</exception>");
            writer.Line(step.Guard.Length > 0
                ? $"public {ModuleType(step, plan)}? {identifier} => this.{ObservedEmitter.Int8Field(step)} is null && this.{fallback} is not null ? {inFloat} : this.{ObservedEmitter.Int8Field(step)};"
                : $"public {ModuleType(step, plan)} {identifier} => this.{ObservedEmitter.Int8Field(step)} ?? {inFloat};");
            writer.Line();
            writer.Line($"/// <summary>{step.Layer} when the QConfigMapping kept it in float (a null qconfig, PyTorch's None); otherwise null.</summary>");
            writer.Line($"public {Names.FloatFallback}? {fallback} {{ get; }}");
        }

        foreach (StepPlan step in islands)
        {
            writer.Line();
            writer.Line($"/// <summary>Quantizes the result of the float island {step.Member} with its output observer's qparams.{(step.Guard.Length > 0 ? " Null when the construction-time condition it runs under did not hold." : string.Empty)}</summary>");
            writer.Line($"public {Names.QuantizeInput}{Nullable(step)} {Names.Identifier(step.IslandQuantizer)} {{ get; }}");
        }

        GraphEmitter.EmitMembers(writer, plan, members.Select(s => Names.Identifier(s.QuantizedProperty!)).Concat(islands.Select(s => Names.Identifier(s.IslandQuantizer))).Concat(fallbacks.Select(ObservedEmitter.FallbackProperty)).ToList());

        writer.Line();
        writer.Line($"/// <summary>Float in, float out: quantizes the input, runs the int8 model and dequantizes its result. {ConcurrencyDoc}</summary>");
        writer.Line("/// <param name=\"input\">A float32 tensor of the shape the float model takes.</param>");
        writer.Line("/// <returns>A new float32 tensor.</returns>");
        writer.Line($"public {Names.Tensor} forward({Names.Tensor} input)");
        writer.Open();
        writer.Line($"float[] values = {Names.TensorInterop}.ToArray(input, out int[] shape);");
        writer.Line("float[] output = this.forward(values, shape, out int[] outputShape);");
        writer.Line($"return {Names.TensorInterop}.FromArray(output, outputShape);");
        writer.Close();

        string entryProperty = Names.Identifier(entry.QuantizedProperty!);
        writer.Line();
        writer.Line($"/// <summary>Float in, float out without TorchSharp: values in logical row-major (NCHW) order. {ConcurrencyDoc}</summary>");
        writer.Line("/// <param name=\"input\">The input values.</param>");
        writer.Line("/// <param name=\"shape\">The input's logical shape.</param>");
        writer.Line("/// <param name=\"outputShape\">The result's logical shape.</param>");
        writer.Line("/// <returns>The dequantized result in logical row-major order.</returns>");
        writer.Line($"public float[] forward(global::System.ReadOnlySpan<float> input, int[] shape, out int[] outputShape)");
        writer.Open();
        int entrySlot = buffers.Slots[plan.Steps.ToList().IndexOf(entry)];
        if (buffers.Count > 0)
        {
            // The quantized input lives in the same rented set as the region's values (the plan gave it a slot).
            writer.Comment("This call's own activation buffers (rented from the pool, returned when it ends): concurrent calls never share one.");
            writer.Line($"{Names.ActivationBuffers} buffers = this._buffers.Rent();");
            writer.Line("try");
            writer.Open();
            writer.Line(entrySlot >= 0
                ? $"{Names.QTensor} quantized = this.{entryProperty}.Forward(input, shape, buffers[{entrySlot}]);"
                : $"{Names.QTensor} quantized = this.{entryProperty}.Forward(input, shape);");
            writer.Line($"{Names.QTensor} result = this.RunRegion(quantized, buffers, null);");
            writer.Line("outputShape = result.Shape;");
            writer.Line("return result.Dequantize();");
            writer.Close();
            writer.Line("finally");
            writer.Open();
            writer.Line("this._buffers.Return(buffers);");
            writer.Close();
        }
        else
        {
            writer.Line($"{Names.QTensor} quantized = this.{entryProperty}.Forward(input, shape);");
            writer.Line($"{Names.QTensor} result = this.RunRegion(quantized, null, null);");
            writer.Line("outputShape = result.Shape;");
            writer.Line("return result.Dequantize();");
        }

        writer.Close();

        writer.Line();
        writer.Line($"/// <summary>The quantized region: int8 in, int8 out. {ConcurrencyDoc}</summary>");
        writer.Line($"/// <param name=\"input\">The region's input, quantized with the qparams of <c>{entryProperty}</c>.</param>");
        writer.Line("/// <returns>The region's int8 result.</returns>");
        writer.Line($"public {Names.QTensor} forward({Names.QTensor} input) => this.forward(input, null);");
        writer.Line();
        writer.Line("/// <summary>");
        writer.Line("/// The quantized region, reporting every op's int8 output to <paramref name=\"tap\"/>. Without a tap the ops write into the");
        writer.Line("/// planned activation buffers (a steady-state call allocates only its result); with one, every output is a new tensor the tap may keep.");
        writer.Line($"/// {ConcurrencyDoc}");
        writer.Line("/// </summary>");
        writer.Line($"/// <param name=\"input\">The region's input, quantized with the qparams of <c>{entryProperty}</c>.</param>");
        writer.Line("/// <param name=\"tap\">Receives each layer's output under the same layer names as the Reference taps; null for none.</param>");
        writer.Line("/// <returns>The region's int8 result.</returns>");
        writer.Line($"public {Names.QTensor} forward({Names.QTensor} input, {Names.QuantizedTap}? tap)");
        writer.Open();
        writer.Line("if (input is null)");
        writer.Open();
        writer.Line($"throw new {Names.ArgumentNullException}(nameof(input));");
        writer.Close();
        writer.Line();
        if (buffers.Count > 0)
        {
            writer.Line("if (tap is not null)");
            writer.Open();
            writer.Comment("With a tap every op writes a new tensor (the tap may keep it): no activation buffers.");
            writer.Line("return this.RunRegion(input, null, tap);");
            writer.Close();
            writer.Line();
            writer.Comment("This call's own activation buffers (rented from the pool, returned when it ends): concurrent calls never share one.");
            writer.Line($"{Names.ActivationBuffers} buffers = this._buffers.Rent();");
            writer.Line("try");
            writer.Open();
            writer.Line("return this.RunRegion(input, buffers, null);");
            writer.Close();
            writer.Line("finally");
            writer.Open();
            writer.Line("this._buffers.Return(buffers);");
            writer.Close();
        }
        else
        {
            writer.Line("return this.RunRegion(input, null, tap);");
        }

        writer.Close();

        writer.Line();
        writer.Line("/// <summary>The quantized region's ops in forward order, writing into <paramref name=\"buffers\"/> (a set this call alone uses) or, when null, into new tensors.</summary>");
        writer.Line($"private {Names.QTensor} RunRegion({Names.QTensor} input, {Names.ActivationBuffers}? buffers, {Names.QuantizedTap}? tap)");
        writer.Open();
        if (buffers.Count > 0)
        {
            writer.Comment($"Buffer plan: {buffers.Count} activation slots shared by values whose lifetimes do not overlap.");
        }

        var guarded = ObservedEmitter.GuardedValues(plan);
        string V(int value) => ObservedEmitter.Value(value) + (guarded.Contains(value) ? "!" : string.Empty);
        for (int index = 0; index < plan.Steps.Count; index++)
        {
            StepPlan step = plan.Steps[index];
            string slot = buffers.Slots[index] >= 0 ? $", buffers?[{buffers.Slots[index]}]" : string.Empty;
            foreach (string comment in step.Comments)
            {
                writer.Comment(comment);
            }

            string property = step.QuantizedProperty is null ? string.Empty : $"this.{Names.Identifier(step.QuantizedProperty)}{ObservedEmitter.Bang(step)}";
            string output = ObservedEmitter.Value(step.Output);
            string tap = $"tap?.OnLayer({Names.Literal(step.Layer)}, {output});";
            switch (step.Kind)
            {
                case StepKind.Quantize:
                    writer.Comment($"{Names.Identifier(step.QuantizedProperty!)} quantized the input before this method.");
                    writer.Line($"tap?.OnLayer({Names.Literal(step.Layer)}, input);");
                    break;
                case StepKind.Identity:
                    writer.Comment("Identity (or Dropout, identity in eval): nothing to run.");
                    break;
                case StepKind.DeQuantize:
                    writer.Comment("DeQuantStub: the caller dequantizes the result.");
                    break;
                case StepKind.Select:
                    ObservedEmitter.Assign(writer, step, Names.QTensor, output, $"{step.Member} ? {V(step.Inputs[0])} : {V(step.Inputs[1])}", string.Empty);
                    break;
                case StepKind.Cat when step.Inputs.Count != 2:
                    // A collection expression: the inputs go to the span overload without an array (the params overload
                    // would allocate one per call, also for the result's cat, which has no slot).
                    ObservedEmitter.Assign(writer, step, Names.QTensor, output, $"{property}.Forward([{string.Join(", ", step.Inputs.Select(V))}]{(slot.Length > 0 ? slot : ", null")})", tap);
                    break;
                case StepKind.Add or StepKind.Cat:
                    ObservedEmitter.Assign(writer, step, Names.QTensor, output, $"{property}.Forward({string.Join(", ", step.Inputs.Select(V))}{slot})", tap);
                    break;
                case StepKind.FloatIsland:
                    writer.Comment($"float island ([NoQuantize]): dequantize, run the user's float {step.Member}, quantize again.");
                    ObservedEmitter.Assign(writer, step, Names.QTensor, output, $"FloatIsland({V(step.Input)}, {property}, this.{Names.Identifier(step.IslandQuantizer)}{ObservedEmitter.Bang(step)})", tap);
                    break;
                case var _ when ObservedEmitter.CanFallBack(step):
                    string int8 = "this." + ObservedEmitter.Int8Field(step);
                    ObservedEmitter.Assign(writer, step, Names.QTensor, output, $"{int8} is not null ? {int8}.Forward({V(step.Input)}{slot}) : this.{ObservedEmitter.FallbackProperty(step)}!.Forward({V(step.Input)})", tap);
                    break;
                default:
                    ObservedEmitter.Assign(writer, step, Names.QTensor, output, $"{property}.Forward({V(step.Input)}{slot})", tap);
                    break;
            }
        }

        if (plan.ReturnComment.Length > 0)
        {
            writer.Comment(plan.ReturnComment);
        }

        writer.Line($"return {V(plan.Result)};");
        writer.Close();
        if (islands.Count > 0)
        {
            writer.Line();
            writer.Line("/// <summary>A float island: dequantizes the int8 input, runs the user's float module (TorchSharp) and quantizes its result.</summary>");
            writer.Line($"private static {Names.QTensor} FloatIsland({Names.QTensor} input, global::TorchSharp.torch.nn.Module<{Names.Tensor}, {Names.Tensor}> module, {Names.QuantizeInput} quantize)");
            writer.Open();
            writer.Line("using var scope = global::TorchSharp.torch.NewDisposeScope();");
            writer.Line($"{Names.Tensor} values = {Names.TensorInterop}.FromArray(input.Dequantize(), input.Shape);");
            writer.Line($"float[] result = {Names.TensorInterop}.ToArray(module.forward(values), out int[] shape);");
            writer.Line("return quantize.Forward(result, shape);");
            writer.Close();
        }

        writer.Line();
        ReprEmitter.EmitQuantized(writer, plan);
        writer.Close();
    }

    /// <summary>The thread-safety guarantee every int8 forward overload documents.</summary>
    private const string ConcurrencyDoc =
        "Safe to call from many threads at once on one instance: each call uses its own activation buffers and working memory, and gives the same result as a call on its own.";

    private static string Nullable(StepPlan step) => step.Guard.Length > 0 ? "?" : string.Empty;

    /// <summary>The type of a step's Quantized property: the int8 layer class, or a float island's user module.</summary>
    private static string ModuleType(StepPlan step, ModelPlan plan) =>
        step.Kind == StepKind.FloatIsland ? plan.Modules.First(m => m.Field == step.ModuleField).Type : GraphEmitter.LayerType(step);

    private static string Describe(StepPlan step) => step.Kind switch
    {
        StepKind.Quantize when step.Member.Length == 0 => "Quantizes the model input (no QuantStub: the whole forward is quantized).",
        StepKind.Quantize => $"The converted QuantStub {step.Member}: quantizes the float input.",
        StepKind.Conv2d => $"The int8 {step.Member}{Fused(step)}.",
        StepKind.Linear => $"The int8 {step.Member}{Fused(step)}.",
        StepKind.ReLU => $"The int8 {step.Member}: max(q, zero point), qparams pass through.",
        StepKind.Flatten or StepKind.FunctionalFlatten or StepKind.Reshape => $"The int8 {step.Layer}: a reshape, qparams pass through.",
        StepKind.FunctionalRelu => $"The int8 {step.Layer}: max(q, zero point), qparams pass through.",
        StepKind.ConvTranspose2d or StepKind.BatchNorm2d => $"The int8 {step.Member}{Fused(step)}.",
        StepKind.Add => $"The int8 {step.Layer}{(step.Relu ? " with its ReLU fused" : string.Empty)}: requantizes both inputs' sum to its own qparams.",
        StepKind.Cat => $"The int8 {step.Layer}: its inputs already carry its qparams (shared observer, as FX does).",
        StepKind.MaxPool2d or StepKind.FunctionalMaxPool2d or StepKind.AvgPool2d or StepKind.AdaptiveAvgPool2d => $"The int8 {step.Layer}: qparams pass through.",
        StepKind.Upsample => $"The int8 {step.Member}: nearest upsampling, qparams pass through.",
        StepKind.FloatIsland => $"The user's float {step.Member} ([NoQuantize], a float island): runs in float between a dequantize and a quantize.",
        _ => step.Member,
    };

    private static string BatchNormName(StepPlan step) =>
        step.BatchNormMember ?? "its BatchNorm";

    private static string Fused(StepPlan step) =>
        (step.BatchNormMember, step.Relu) switch
        {
            (null, false) => string.Empty,
            (null, true) => " with its ReLU fused",
            (string, false) => $" with {BatchNormName(step)} folded in",
            (string, true) => $" with {BatchNormName(step)} folded in and its ReLU fused",
        };
}
