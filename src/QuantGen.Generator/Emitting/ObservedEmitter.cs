using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using QuantGen.Generator.Planning;

namespace QuantGen.Generator.Emitting;

/// <summary>
/// Writes <c>Prepare()</c> and the nested <c>Observed</c> class: the fused float model with an observer
/// at each quantization point (PyTorch's <c>prepare()</c>) and its <c>Convert()</c>.
/// </summary>
internal static class ObservedEmitter
{
    public static void Emit(SourceWriter writer, ModelPlan plan)
    {
        string model = plan.ClassName + plan.TypeParameters;
        string name = Names.Literal(plan.ClassName);
        var floatSteps = plan.Steps.Where(s => s.FloatField is not null).ToList();
        string hide = plan.HidesInherited ? "new " : string.Empty;

        EmitDefaultQConfigMapping(writer, plan, hide);
        writer.Line();
        writer.Line("/// <summary>");
        writer.Line("/// PyTorch's <c>prepare()</c>: the fused float model with an observer at every quantization point.");
        writer.Line("/// Run calibration batches through its <c>forward</c>, then call <c>Convert()</c>.");
        writer.Line("/// </summary>");
        writer.Line("/// <param name=\"qconfig\">The qconfig of every op (a mapping with only this global qconfig); null for <c>DefaultQConfigMapping()</c>, the [Quantize] backend preset with the [QConfig] attributes.</param>");
        writer.Line("/// <returns>A new observed model; dispose it when calibration is done.</returns>");
        writer.Line("/// <exception cref=\"global::System.InvalidOperationException\">The model is in training mode: call <c>model.eval()</c> first.</exception>");
        writer.Line("/// <exception cref=\"global::System.ArgumentException\">The qconfig is not usable for an op of the model (the message names it).</exception>");
        writer.Line(Names.GeneratedCodeAttribute);
        writer.Line($"public {hide}Observed Prepare({Names.QConfig}? qconfig = null) =>");
        using (writer.Indent())
        {
            writer.Line($"new Observed(this, qconfig is null ? DefaultQConfigMapping() : new {Names.QConfigMapping}(qconfig));");
        }

        writer.Line();
        writer.Line("/// <summary>");
        writer.Line("/// PyTorch's <c>prepare(model, qconfig_mapping)</c>: as <c>Prepare()</c>, with each op's qconfig resolved from");
        writer.Line("/// <paramref name=\"mapping\"/> (member path, then module type, then global), which replaces <c>DefaultQConfigMapping()</c> whole.");
        writer.Line("/// </summary>");
        writer.Line("/// <param name=\"mapping\">Which qconfig each op gets.</param>");
        writer.Line("/// <returns>A new observed model; dispose it when calibration is done.</returns>");
        writer.Line("/// <exception cref=\"global::System.InvalidOperationException\">The model is in training mode: call <c>model.eval()</c> first.</exception>");
        writer.Line("/// <exception cref=\"global::System.ArgumentException\">The mapping names a member path or module type the model does not have, or a qconfig is not usable (the message names it).</exception>");
        writer.Line(Names.GeneratedCodeAttribute);
        writer.Line($"public {hide}Observed Prepare({Names.QConfigMapping} mapping) =>");
        using (writer.Indent())
        {
            writer.Line("new Observed(this, mapping ?? throw new global::System.ArgumentNullException(nameof(mapping)));");
        }

        writer.Line();
        writer.Line("/// <summary>");
        writer.Line($"/// {plan.ClassName} prepared for calibration: the fused float model with observers (PyTorch's prepared model).");
        writer.Line("/// </summary>");
        writer.Line(Names.GeneratedCodeAttribute);
        writer.Line($"public {hide}sealed class Observed : global::System.IDisposable, {Names.ObservedModel}");
        writer.Open();

        writer.Line($"private readonly {model} _model;");
        foreach (StepPlan step in floatSteps)
        {
            writer.Line($"private readonly {FloatType(step)}{Nullable(step)} {step.FloatField};");
            if (CanFallBack(step))
            {
                writer.Line($"private readonly bool {InFloatField(step)};");
            }
        }

        foreach (ModuleFieldPlan module in plan.Modules)
        {
            StepPlan step = plan.Steps.First(s => s.ModuleField == module.Field);
            writer.Line($"private readonly {module.Type}{Nullable(step)} {module.Field};");
        }

        foreach (ConditionPlan condition in plan.Conditions)
        {
            writer.Line($"private readonly bool {condition.Field};");
        }

        foreach (StepPlan step in floatSteps.Where(HasWeights))
        {
            writer.Line($"private readonly {Names.ObserverSpec} {WeightSpecField(step)};");
        }

        writer.Line();
        EmitConstructor(writer, plan, model, name, floatSteps);

        writer.Line();
        writer.Line("/// <summary>The global qconfig of the mapping (else the [Quantize] backend preset): its backend is the arithmetic <c>Convert()</c> uses.</summary>");
        writer.Line($"public {Names.QConfig} QConfig {{ get; }}");
        writer.Line();
        writer.Line("/// <summary>The mapping each op's qconfig was resolved from.</summary>");
        writer.Line($"public {Names.QConfigMapping} QConfigMapping {{ get; }}");
        foreach (ObserverPlan observer in plan.Observers)
        {
            StepPlan step = plan.Steps.First(s => s.Observer >= 0 && plan.Observers[s.Observer] == observer);
            writer.Line();
            writer.Line(step.Kind == StepKind.Quantize
                ? $"/// <summary>Observes the input of the quantized region (layer {observer.Layer}).</summary>"
                : observer.Note.Length > 0
                    ? $"/// <summary>Observes the output of {step.Layer} and of every op that feeds it (layer {observer.Layer}). {observer.Note}</summary>"
                    : $"/// <summary>Observes the output of {step.Layer} (layer {observer.Layer}).</summary>");
            writer.Line($"public {Names.Observer} {observer.Property} {{ get; }}");
        }

        // One list of every quantization point, for reports and printing (seed 001 prints the first few).
        writer.Line();
        writer.Line("/// <summary>Every activation observer, in forward order.</summary>");
        writer.Line($"public global::System.Collections.Generic.IReadOnlyList<{Names.Observer}> Observers => new {Names.Observer}[]");
        writer.Open();
        foreach (ObserverPlan observer in plan.Observers)
        {
            writer.Line($"this.{observer.Property},");
        }

        writer.Close(";");

        writer.Line();
        EmitForward(writer, plan);
        writer.Line();
        EmitCalibrate(writer);
        writer.Line();
        EmitConvert(writer, plan);
        writer.Line();
        ReferenceEmitter.EmitConvertReference(writer, plan);
        writer.Line();
        writer.Line($"global::TorchSharp.torch.nn.Module {Names.ObservedModel}.Model => this._model;");
        writer.Line();
        writer.Line("/// <summary>Releases the fused float modules' tensors.</summary>");
        writer.Line("public void Dispose()");
        writer.Open();
        foreach (StepPlan step in floatSteps)
        {
            string dispose = step.Guard.Length > 0 ? $"this.{step.FloatField}?.Dispose();" : $"this.{step.FloatField}.Dispose();";
            // An op kept in float lives on in the int8 model (FloatFallback), which owns it from Convert() on.
            writer.Line(CanFallBack(step) ? $"if (!this.{InFloatField(step)}) {dispose}" : dispose);
        }

        writer.Close();
        EmitHelpers(writer, plan);
        writer.Line();
        ReprEmitter.EmitObserved(writer, plan);
        writer.Close();
    }

    private static string Nullable(StepPlan step) => step.Guard.Length > 0 ? "?" : string.Empty;

    private static void EmitConstructor(SourceWriter writer, ModelPlan plan, string model, string name, List<StepPlan> floatSteps)
    {
        writer.Line($"internal Observed({model} model, {Names.QConfigMapping} mapping)");
        writer.Open();
        writer.Line("if (model is null)");
        writer.Open();
        writer.Line($"throw new {Names.ArgumentNullException}(nameof(model));");
        writer.Close();
        writer.Line();
        writer.Line("if (mapping is null)");
        writer.Open();
        writer.Line($"throw new {Names.ArgumentNullException}(nameof(mapping));");
        writer.Close();
        writer.Line();
        writer.Comment("PyTorch fuses and observes eval-mode models only (\"Fusion only for eval!\").");
        writer.Line($"{Names.ModuleLookup}.RequireEval(model, {name});");
        writer.Comment("Sub-modules and Sequential children are reached by their PyTorch-style paths, indexed once; the index also");
        writer.Comment("lists the paths and module types the mapping may name (a typo must fail here, not be ignored).");
        writer.Line($"var modules = {Names.ModuleLookup}.Index(model);");
        writer.Line("var knownTypes = new global::System.Collections.Generic.HashSet<string>(global::System.StringComparer.Ordinal);");
        writer.Line("foreach (var module in modules.Values)");
        writer.Open();
        writer.Line("knownTypes.Add(module.GetType().Name);");
        writer.Close();
        writer.Line();
        foreach (string function in plan.FunctionNames)
        {
            writer.Line($"knownTypes.Add({Names.Literal(function)});");
        }

        writer.Line($"mapping.Validate({name}, global::System.Linq.Enumerable.ToArray(modules.Keys), knownTypes);");
        writer.Comment("One integer arithmetic per model: the global qconfig's backend, else the [Quantize] backend.");
        writer.Line($"this.QConfig = mapping.Global ?? {Names.QConfig}.For({Names.QuantBackend}.{plan.Backend});");
        writer.Line($"mapping.ValidateBackend({name}, this.QConfig.Backend);");
        List<StepPlan> fusedSteps = plan.Steps.Where(s => s.FusedMembers.Count > 0 && s.QConfigLookup.Length > 0).ToList();
        if (fusedSteps.Count > 0)
        {
            writer.Comment("A member fused or folded into another op has no qconfig of its own: an entry naming it must be its op's.");
        }

        foreach (StepPlan step in fusedSteps)
        {
            foreach (string member in step.FusedMembers)
            {
                string folded = member == step.BatchNormMember ? ", folded: true" : string.Empty;
                writer.Line($"mapping.ValidateFused({name}, {Names.Literal(member)}, {Names.Literal(step.Layer)}, {step.QConfigLookup}{folded});");
            }
        }

        // Qparams the mapping fixes must name a layer that has them: a typo, or a member fused into the op before it, fails here.
        string observedLayers = StringArray(plan.Observers.Select(o => o.Path));
        // A weighted op the mapping keeps in float (qconfig None) has no int8 weights for an entry to fix.
        List<StepPlan> weighted = plan.Steps.Where(HasWeights).ToList();
        string weightedLayers = weighted.Any(CanFallBack)
            ? "global::System.Linq.Enumerable.ToArray(global::System.Linq.Enumerable.OfType<string>(new string?[] { "
              + string.Join(", ", weighted.Select(s => CanFallBack(s) ? $"{s.QConfigLookup} is null ? null : {Names.Literal(s.Layer)}" : Names.Literal(s.Layer)))
              + " }))"
            : StringArray(weighted.Select(s => s.Layer));
        writer.Comment("Qparams the mapping fixes (SetModuleQParams, SetQParamsFromStateDict, ...) must name a layer with qparams of its own.");
        writer.Line($"mapping.ValidateFixedQParams({name}, {observedLayers}, {weightedLayers}, global::System.Linq.Enumerable.ToArray(modules.Keys));");
        writer.Line("this.QConfigMapping = mapping;");
        writer.Line("this._model = model;");
        var qconfigLocals = new Dictionary<StepPlan, string>();
        for (int i = 0; i < plan.Steps.Count; i++)
        {
            StepPlan step = plan.Steps[i];
            if (step.QConfigLookup.Length == 0 || (step.Observer < 0 && !HasWeights(step)))
            {
                continue;
            }

            string local = "qconfig" + Int(i);
            qconfigLocals[step] = local;
            if (CanFallBack(step))
            {
                // A null qconfig (PyTorch's None) keeps the op in float; its output is still observed so the
                // int8 ops after it get their input quantized.
                writer.Line($"{Names.QConfig}? resolved{Int(i)} = {step.QConfigLookup};");
                writer.Line($"this.{InFloatField(step)} = resolved{Int(i)} is null;");
                writer.Line($"{Names.QConfig} {local} = resolved{Int(i)} ?? this.QConfig;");
                continue;
            }

            writer.Line($"{Names.QConfig} {local} = RequireQConfig({step.QConfigLookup}, {name}, {Names.Literal(step.Layer)});");
        }

        foreach (ConditionPlan condition in plan.Conditions)
        {
            writer.Comment(condition.Comment + " — decided once, here: it depends only on how the model was built.");
            writer.Line($"this.{condition.Field} = {condition.Expression};");
        }

        foreach (ObserverPlan observer in plan.Observers)
        {
            // A shared (cat) observer takes the qconfig of the op that owns it, the last one to write it.
            StepPlan? owner = plan.Steps.LastOrDefault(s => s.Observer >= 0 && plan.Observers[s.Observer] == observer && qconfigLocals.ContainsKey(s));
            string source = owner is null ? "this.QConfig" : qconfigLocals[owner];
            writer.Line($"this.{observer.Property} = mapping.ActivationObserverSpec({name}, {Names.Literal(observer.Path)}, {source}.Activation).Create({Names.Literal(observer.Layer)});");
        }

        foreach (ModuleFieldPlan module in plan.Modules)
        {
            StepPlan step = plan.Steps.First(s => s.ModuleField == module.Field);
            writer.Line(step.Guard.Length > 0
                ? $"this.{module.Field} = {step.Guard} ? {module.Access} : null;"
                : $"this.{module.Field} = {module.Access};");
        }

        foreach (StepPlan step in floatSteps)
        {
            foreach (string comment in step.Comments)
            {
                writer.Comment(comment);
            }

            string layer = Names.Literal(step.Layer);
            string module = step.FloatAccess;
            string batchNorm = step.BatchNormMember is null ? "null" : step.BatchNormAccess;
            string create = step.Kind switch
            {
                StepKind.Conv2d => $"{Names.FusedConv2d}.Create({name}, {layer}, {module}, batchNorm: {batchNorm}, relu: {Bool(step.Relu)})",
                StepKind.ConvTranspose2d => $"{Names.FusedConvTranspose2d}.Create({name}, {layer}, {module}, batchNorm: {batchNorm}, relu: {Bool(step.Relu)})",
                StepKind.BatchNorm2d => $"{Names.FusedBatchNorm2d}.Create({name}, {layer}, {module}, relu: {Bool(step.Relu)})",
                _ when step.BatchNormMember is not null => $"{Names.FusedLinear}.Create({name}, {layer}, {module}, batchNorm: {batchNorm}, relu: {Bool(step.Relu)})",
                _ => $"{Names.FusedLinear}.Create({name}, {layer}, {module}, relu: {Bool(step.Relu)})",
            };
            writer.Line(step.Guard.Length > 0
                ? $"this.{step.FloatField} = {step.Guard} ? {create} : null;"
                : $"this.{step.FloatField} = {create};");
            if (HasWeights(step))
            {
                // Checked now so that a weight spec the layer cannot use (a wrong channel axis) fails before calibration.
                writer.Line($"this.{WeightSpecField(step)} = mapping.WeightObserverSpec({name}, {layer}, {qconfigLocals[step]}.Weight);");
                writer.Line($"this.{step.FloatField}{(step.Guard.Length > 0 ? "?" : string.Empty)}.ValidateWeightSpec(this.{WeightSpecField(step)});");
            }
        }

        writer.Close();
        writer.Line();
        writer.Line("/// <summary>The resolved qconfig of an op that cannot run in float inside the int8 model (only conv, linear, conv-transpose and batch norm can).</summary>");
        writer.Line($"private static {Names.QConfig} RequireQConfig({Names.QConfig}? qconfig, string model, string layer) =>");
        using (writer.Indent())
        {
            writer.Line("qconfig ?? throw new global::System.NotSupportedException(");
            writer.Line("    $\"{model}.{layer}: the QConfigMapping resolves a null qconfig for this op (keep it in float), which only conv, linear, conv-transpose and batch-norm ops support; give it a qconfig (or set the global one), or mark a single-op member [NoQuantize] to make it a float island.\");");
        }
    }

    /// <summary>A C# string[] expression holding <paramref name="items"/> in order.</summary>
    private static string StringArray(IEnumerable<string> items)
    {
        string[] literals = items.Select(Names.Literal).ToArray();
        return literals.Length == 0 ? "global::System.Array.Empty<string>()" : $"new string[] {{ {string.Join(", ", literals)} }}";
    }

    /// <summary>Whether the step quantizes weights with its qconfig's weight spec.</summary>
    internal static bool HasWeights(StepPlan step) => step.Kind is StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d;

    /// <summary>Field of Observed holding a weighted step's resolved weight spec ("_conv1_weightSpec").</summary>
    internal static string WeightSpecField(StepPlan step) => step.FloatField + "_weightSpec";

    /// <summary>
    /// <c>DefaultQConfigMapping()</c>: PyTorch's default mapping for the [Quantize] backend, then each [QConfig]
    /// attribute in source order, overriding only the properties it names on the backend preset.
    /// </summary>
    private static void EmitDefaultQConfigMapping(SourceWriter writer, ModelPlan plan, string hide)
    {
        string backend = $"{Names.QuantBackend}.{plan.Backend}";
        writer.Line("/// <summary>");
        writer.Line($"/// The qconfig mapping declared on the class: <c>QConfigMapping.Default(QuantBackend.{plan.Backend})</c> with the [QConfig]");
        writer.Line("/// attributes applied in source order (each overrides only the properties it sets on the backend preset).");
        writer.Line("/// <c>Prepare()</c> uses it; change a copy and pass it to <c>Prepare(QConfigMapping)</c> to override it.");
        writer.Line("/// </summary>");
        writer.Line("/// <returns>A new mapping.</returns>");
        writer.Line(Names.GeneratedCodeAttribute);
        writer.Line($"public {hide}static {Names.QConfigMapping} DefaultQConfigMapping()");
        writer.Open();
        writer.Line($"var mapping = {Names.QConfigMapping}.Default({backend});");
        if (plan.QConfigs.Count > 0)
        {
            writer.Line($"{Names.QConfig} preset = {Names.QConfig}.For({backend});");
        }

        foreach (QuantGen.Generator.Parsing.QConfigSpec qconfig in plan.QConfigs)
        {
            var activation = new List<string>();
            var weight = new List<string>();
            foreach (QuantGen.Generator.Parsing.QConfigProperty property in qconfig.Properties)
            {
                switch (property.Name)
                {
                    case "ActivationObserver": activation.Add("Kind = " + property.Value); break;
                    case "ActivationDType": activation.Add("DType = " + property.Value); break;
                    case "ActivationScheme": activation.Add("Scheme = " + property.Value); break;
                    case "ActivationReduceRange": activation.Add("ReduceRange = " + property.Value); break;
                    case "ActivationPercentile": activation.Add("ClipPercentile = " + property.Value); break;
                    case "WeightObserver": weight.Add("Kind = " + property.Value); break;
                    case "WeightDType": weight.Add("DType = " + property.Value); break;
                    case "WeightScheme": weight.Add("Scheme = " + property.Value); break;
                    case "WeightAxis": weight.Add("ChannelAxis = " + property.Value); break;
                }
            }

            var parts = new List<string>();
            if (activation.Count > 0)
            {
                parts.Add($"Activation = preset.Activation with {{ {string.Join(", ", activation)} }}");
            }

            if (weight.Count > 0)
            {
                parts.Add($"Weight = preset.Weight with {{ {string.Join(", ", weight)} }}");
            }

            string built = parts.Count == 0 ? "preset" : $"preset with {{ {string.Join(", ", parts)} }}";
            writer.Line(qconfig.Target switch
            {
                QuantGen.Generator.Parsing.QConfigTarget.Global => $"mapping.SetGlobal({built});",
                QuantGen.Generator.Parsing.QConfigTarget.ModuleType => $"mapping.SetModuleType({Names.Literal(qconfig.Key)}, {built});",
                _ => $"mapping.SetModuleName({Names.Literal(qconfig.Key)}, {built});",
            });
        }

        writer.Line("return mapping;");
        writer.Close();
    }

    private static void EmitForward(SourceWriter writer, ModelPlan plan)
    {
        writer.Line("/// <summary>");
        writer.Line($"/// Runs {plan.ClassName}'s forward in float with the fusions applied, recording every quantization point.");
        writer.Line("/// </summary>");
        writer.Line("/// <param name=\"input\">A calibration batch.</param>");
        writer.Line("/// <returns>The float result, as the fused float model computes it.</returns>");
        writer.Line($"public {Names.Tensor} forward({Names.Tensor} input) => this.forward(input, null);");
        writer.Line();
        writer.Line("/// <summary>");
        writer.Line("/// As <c>forward(input)</c>, reporting each fused float op's output to <paramref name=\"tap\"/> under the same layer");
        writer.Line("/// names as the int8 and reference taps (after its observer saw it); a tensor the tap returns replaces the output downstream.");
        writer.Line("/// </summary>");
        writer.Line("/// <param name=\"input\">A calibration batch.</param>");
        writer.Line("/// <param name=\"tap\">Receives each layer's float output; the tensors it sees are disposed when forward returns (clone what you keep). Null for none.</param>");
        writer.Line("/// <returns>The float result, as the fused float model computes it.</returns>");
        writer.Line($"public {Names.Tensor} forward({Names.Tensor} input, {Names.FloatTap}? tap)");
        writer.Open();
        bool scoped = plan.Result != 0;
        if (scoped)
        {
            // Intermediate tensors die with the scope; only the result moves out to the caller's.
            writer.Line("using var scope = global::TorchSharp.torch.NewDisposeScope();");
        }

        var guarded = GuardedValues(plan);
        string V(int value) => Value(value) + (guarded.Contains(value) ? "!" : string.Empty);
        foreach (StepPlan step in plan.Steps)
        {
            foreach (string comment in step.Comments)
            {
                writer.Comment(comment);
            }

            string input = V(step.Input);
            string observe = step.Observer >= 0 ? $"{Names.ObserveExtensions}.Observe(this.{plan.Observers[step.Observer].Property}, {Value(step.Output)});" : string.Empty;
            string tapped = $"{Value(step.Output)} = tap?.OnLayer({Names.Literal(step.Layer)}, {Value(step.Output)}) ?? {Value(step.Output)};";
            observe = step.Kind == StepKind.Select ? observe : observe.Length > 0 ? observe + "\n" + tapped : tapped;
            string? compute = step.Kind switch
            {
                StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d or StepKind.BatchNorm2d => $"this.{step.FloatField}{Bang(step)}.forward({input})",
                StepKind.ReLU or StepKind.Flatten or StepKind.MaxPool2d or StepKind.AvgPool2d or StepKind.AdaptiveAvgPool2d or StepKind.Upsample or StepKind.FloatIsland => $"this.{step.ModuleField}{Bang(step)}.forward({input})",
                StepKind.FunctionalRelu => $"{Names.Functional}.relu({input})",
                StepKind.FunctionalFlatten => $"{input}.flatten({Int(step.FlattenStartDim!.Value)}, {Int(step.FlattenEndDim!.Value)})",
                StepKind.Reshape => $"{input}.reshape({Longs(step.Ints)})",
                StepKind.FunctionalMaxPool2d => $"{Names.Functional}.max_pool2d({input}, {Longs(step.Ints, 0)}, {Longs(step.Ints, 2)}, {Longs(step.Ints, 4)}, {Longs(step.Ints, 6)}, {Bool(step.Ints[8] != 0)})",
                StepKind.Add when step.Relu => $"{Names.Functional}.relu({Names.Torch}.add({V(step.Inputs[0])}, {V(step.Inputs[1])}))",
                StepKind.Add => $"{Names.Torch}.add({V(step.Inputs[0])}, {V(step.Inputs[1])})",
                StepKind.Cat => $"{Names.Torch}.cat(new {Names.Tensor}[] {{ {string.Join(", ", step.Inputs.Select(V))} }}, {Int(step.Ints[0])})",
                StepKind.Select => $"{step.Member} ? {V(step.Inputs[0])} : {V(step.Inputs[1])}",
                _ => null,
            };

            switch (step.Kind)
            {
                case StepKind.Quantize:
                    Guarded(writer, step, () =>
                    {
                        writer.Line($"{Names.ObserveExtensions}.Observe(this.{plan.Observers[step.Observer].Property}, {input});");
                        writer.Line($"input = tap?.OnLayer({Names.Literal(step.Layer)}, input) ?? input;");
                    });
                    break;
                case StepKind.Identity:
                    writer.Comment("Identity (or Dropout, identity in eval): nothing to run.");
                    break;
                case StepKind.DeQuantize:
                    writer.Comment("DeQuantStub: the float model runs on as it is.");
                    break;
                case StepKind.FloatIsland:
                    writer.Comment($"float island ([NoQuantize]): the user's {step.Member} as-is; its output is observed so the int8 form can quantize it again.");
                    Assign(writer, step, Names.Tensor, Value(step.Output), compute!, observe);
                    break;
                default:
                    Assign(writer, step, Names.Tensor, Value(step.Output), compute!, observe);
                    break;
            }
        }

        if (plan.ReturnComment.Length > 0)
        {
            writer.Comment(plan.ReturnComment);
        }

        writer.Line(scoped ? $"return {V(plan.Result)}.MoveToOuterDisposeScope();" : "return input;");
        writer.Close();
    }

    /// <summary>Writes <c>T tN = compute;</c>, inside <c>if (guard)</c> with a nullable local when the step is guarded.</summary>
    internal static void Assign(SourceWriter writer, StepPlan step, string type, string output, string compute, string after)
    {
        if (step.Guard.Length == 0)
        {
            writer.Line($"{type} {output} = {compute};");
            Lines(writer, after);
            return;
        }

        writer.Line($"{type}? {output} = null;");
        writer.Line($"if ({step.Guard})");
        writer.Open();
        writer.Line($"{output} = {compute};");
        Lines(writer, after);
        writer.Close();
    }

    /// <summary>Writes each line of <paramref name="text"/> (none when it is empty).</summary>
    private static void Lines(SourceWriter writer, string text)
    {
        if (text.Length == 0)
        {
            return;
        }

        foreach (string line in text.Split('\n'))
        {
            writer.Line(line);
        }
    }

    private static void Guarded(SourceWriter writer, StepPlan step, System.Action body)
    {
        if (step.Guard.Length == 0)
        {
            body();
            return;
        }

        writer.Line($"if ({step.Guard})");
        writer.Open();
        body();
        writer.Close();
    }

    /// <summary>Values produced only when a construction-time condition holds (nullable locals).</summary>
    internal static HashSet<int> GuardedValues(ModelPlan plan) =>
        new(plan.Steps.Where(s => s.Guard.Length > 0 && s.Kind is not (StepKind.Quantize or StepKind.DeQuantize or StepKind.Identity)).Select(s => s.Output));

    /// <summary>The float islands ([NoQuantize] ops), in step order.</summary>
    internal static IEnumerable<StepPlan> IslandSteps(ModelPlan plan) => plan.Steps.Where(s => s.Kind == StepKind.FloatIsland);

    internal static string Bang(StepPlan step) => step.Guard.Length > 0 ? "!" : string.Empty;

    /// <summary>Whether a QConfigMapping may keep the op in float at Prepare (a null qconfig, PyTorch's None).</summary>
    internal static bool CanFallBack(StepPlan step) =>
        step.Kind is StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d or StepKind.BatchNorm2d
        && step.QConfigLookup.Length > 0 && step.FloatField is not null && step.Observer >= 0;

    /// <summary>Observed's bool field recording that the mapping kept the op in float ("_conv1_inFloat").</summary>
    internal static string InFloatField(StepPlan step) => step.FloatField + "_inFloat";

    /// <summary>Quantized's property holding the op when the mapping kept it in float ("conv1_float").</summary>
    internal static string FallbackProperty(StepPlan step) => Names.Identifier(step.QuantizedProperty! + "_float");

    /// <summary>Quantized's field holding such an op's int8 layer, null when it runs in float ("_conv1"; never a keyword).</summary>
    internal static string Int8Field(StepPlan step) => "_" + step.QuantizedProperty!.TrimStart('@');

    /// <summary>The ops a mapping may keep in float, in step order.</summary>
    internal static IEnumerable<StepPlan> FallbackSteps(ModelPlan plan) => plan.Steps.Where(CanFallBack);

    /// <summary><c>Calibrate(batches, progress)</c>: the calibration loop of the runtime, over this model's forward.</summary>
    private static void EmitCalibrate(SourceWriter writer)
    {
        writer.Line("/// <summary>");
        writer.Line("/// Runs calibration batches through <c>forward</c> under <c>torch.no_grad()</c> with the model in eval mode, disposing");
        writer.Line("/// each batch's intermediate tensors, and reports progress after every batch.");
        writer.Line("/// </summary>");
        writer.Line("/// <param name=\"batches\">Float input batches; those made before the call are not disposed, those the sequence makes on the fly are.</param>");
        writer.Line("/// <param name=\"progress\">Told the batches done, the total when the sequence knows it, and the time so far; null for none.</param>");
        writer.Line("/// <returns>The final progress: batches run, the total, the time taken.</returns>");
        writer.Line($"/// <exception cref=\"global::System.ArgumentException\">There is no batch, or a batch is null.</exception>");
        writer.Line($"public {Names.CalibrationProgress} Calibrate(global::System.Collections.Generic.IEnumerable<{Names.Tensor}> batches, global::System.IProgress<{Names.CalibrationProgress}>? progress = null) =>");
        using (writer.Indent())
        {
            writer.Line("global::QuantGen.Calibration.ObservedCalibration.Run(this, batches, progress);");
        }
    }

    private static void EmitConvert(SourceWriter writer, ModelPlan plan)
    {
        writer.Line("/// <summary>");
        writer.Line("/// PyTorch's <c>convert()</c>: computes each observer's qparams, quantizes the weights with");
        writer.Line("/// <c>QConfig.Weight</c> and builds the int8 model.");
        writer.Line("/// </summary>");
        writer.Line("/// <returns>The int8 model.</returns>");
        writer.Line("/// <exception cref=\"global::System.InvalidOperationException\">An observer has seen no calibration data.</exception>");
        writer.Line("public Quantized Convert()");
        writer.Open();
        foreach (ObserverPlan observer in plan.Observers)
        {
            writer.Line(observer.Guard.Length > 0
                ? $"{Names.QParams}? {observer.QParamsVariable} = {observer.Guard} ? this.{observer.Property}.CalculateQParams() : null;"
                : $"{Names.QParams} {observer.QParamsVariable} = this.{observer.Property}.CalculateQParams();");
        }

        string name = Names.Literal(plan.ClassName);
        var arguments = new List<string>();
        foreach (StepPlan step in plan.Steps.Where(s => s.QuantizedProperty is not null))
        {
            string layer = Names.Literal(step.Layer);
            string output = step.Observer >= 0 ? QParams(plan, step.Observer) : string.Empty;
            string input = step.InputQParamsExpression.Length > 0 ? step.InputQParamsExpression : step.InputQParams >= 0 ? QParams(plan, step.InputQParams) : string.Empty;
            string module = step.ModuleField is null ? string.Empty : $"this.{step.ModuleField}{Bang(step)}";
            string created = step.Kind switch
            {
                StepKind.Quantize => $"new {Names.QuantizeInput}({name}, {layer}, {output})",
                StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d => $"this.{step.FloatField}{Bang(step)}.Convert({input}, {output}, this.{WeightSpecField(step)}, this.QConfig.Backend)",
                StepKind.BatchNorm2d => $"this.{step.FloatField}{Bang(step)}.Convert({input}, {output})",
                StepKind.ReLU or StepKind.FunctionalRelu => $"new {Names.QuantizedReLU}({name}, {layer})",
                StepKind.Flatten => $"new {Names.QuantizedFlatten}({name}, {layer}, {FlattenDim(step.FlattenStartDim, module, "start_dim")}, {FlattenDim(step.FlattenEndDim, module, "end_dim")})",
                StepKind.FunctionalFlatten => $"new {Names.QuantizedFlatten}({name}, {layer}, {Int(step.FlattenStartDim!.Value)}, {Int(step.FlattenEndDim!.Value)})",
                StepKind.Reshape => $"new {Names.QuantizedReshape}({name}, {layer}, new int[] {{ {string.Join(", ", step.Ints.Select(Int))} }})",
                StepKind.Add => $"new {Names.QuantizedAdd}({name}, {layer}, {output}, relu: {Bool(step.Relu)})",
                StepKind.Cat => $"new {Names.QuantizedCat}({name}, {layer}, {Int(step.Ints[0])}, {output})",
                StepKind.MaxPool2d => $"new {Names.QuantizedMaxPool2d}({name}, {layer}, MaxPoolOptions({module}))",
                StepKind.FunctionalMaxPool2d => $"new {Names.QuantizedMaxPool2d}({name}, {layer}, new {Names.Pool2dOptions}({string.Join(", ", step.Ints.Take(8).Select(Int))}, CeilMode: {Bool(step.Ints[8] != 0)}))",
                StepKind.AvgPool2d => $"new {Names.QuantizedAvgPool2d}({name}, {layer}, AvgPoolOptions({module}))",
                StepKind.AdaptiveAvgPool2d => $"new {Names.QuantizedAdaptiveAvgPool2d}({name}, {layer}, OutputSize({module}, 0), OutputSize({module}, 1))",
                StepKind.Upsample => $"UpsampleNearest({name}, {layer}, {module})",
                StepKind.FloatIsland => module,
                _ => throw new System.InvalidOperationException($"{step.Kind} has no int8 module."),
            };
            if (CanFallBack(step))
            {
                created = $"this.{InFloatField(step)} ? null : {created}";
                created = step.Guard.Length > 0 ? $"({created})" : created;
            }

            arguments.Add(step.Guard.Length > 0 ? $"{step.Guard} ? {created} : null" : created);
        }

        foreach (StepPlan step in IslandSteps(plan))
        {
            // The float island's result is quantized again with its own output observer's qparams.
            string created = $"new {Names.QuantizeInput}({name}, {Names.Literal(step.Layer)}, {QParams(plan, step.Observer)})";
            arguments.Add(step.Guard.Length > 0 ? $"{step.Guard} ? {created} : null" : created);
        }

        foreach (StepPlan step in FallbackSteps(plan))
        {
            // Kept in float by the mapping: the fused float op, then quantize with its output observer's qparams.
            string layer = Names.Literal(step.Layer);
            string module = $"this.{step.FloatField}{Bang(step)}";
            string created = $"{Names.FloatFallback}.Of({name}, {layer}, {module}, new {Names.QuantizeInput}({name}, {layer}, {QParams(plan, step.Observer)}))";
            string when = step.Guard.Length > 0 ? $"{step.Guard} && this.{InFloatField(step)}" : $"this.{InFloatField(step)}";
            arguments.Add($"{when} ? {created} : null");
        }

        arguments.AddRange(plan.Conditions.Select(c => "this." + c.Field));
        writer.Line("return new Quantized(");
        using (writer.Indent())
        {
            for (int i = 0; i < arguments.Count; i++)
            {
                writer.Line(arguments[i] + (i == arguments.Count - 1 ? ");" : ","));
            }
        }

        writer.Close();
    }

    private static string QParams(ModelPlan plan, int observer) =>
        plan.Observers[observer].QParamsVariable + (plan.Observers[observer].Guard.Length > 0 ? "!" : string.Empty);

    /// <summary>Static helpers reading pool and upsample hyper-parameters from the user's modules at Convert().</summary>
    private static void EmitHelpers(SourceWriter writer, ModelPlan plan)
    {
        var kinds = new HashSet<StepKind>(plan.Steps.Select(s => s.Kind));
        if (kinds.Contains(StepKind.MaxPool2d) || kinds.Contains(StepKind.AvgPool2d))
        {
            writer.Line();
            writer.Line("/// <summary>Height (0) or width (1) entry of a TorchSharp hyper-parameter; one entry means both.</summary>");
            writer.Line("private static int At(long[]? values, int axis, int fallback) =>");
            using (writer.Indent())
            {
                writer.Line("values is null || values.Length == 0 ? fallback : checked((int)values[values.Length == 1 ? 0 : axis]);");
            }
        }

        if (kinds.Contains(StepKind.MaxPool2d))
        {
            writer.Line();
            writer.Line("/// <summary>MaxPool2d's hyper-parameters as the module holds them (stride defaults to the kernel size).</summary>");
            writer.Line($"private static {Names.Pool2dOptions} MaxPoolOptions(global::TorchSharp.Modules.MaxPool2d pool) => new(");
            using (writer.Indent())
            {
                writer.Line("At(pool.kernel_size, 0, 1), At(pool.kernel_size, 1, 1),");
                writer.Line("At(pool.stride, 0, At(pool.kernel_size, 0, 1)), At(pool.stride, 1, At(pool.kernel_size, 1, 1)),");
                writer.Line("At(pool.padding, 0, 0), At(pool.padding, 1, 0),");
                writer.Line("At(pool.dilation, 0, 1), At(pool.dilation, 1, 1),");
                writer.Line("CeilMode: pool.ceil_mode);");
            }
        }

        if (kinds.Contains(StepKind.AvgPool2d))
        {
            writer.Line();
            writer.Line("/// <summary>AvgPool2d's hyper-parameters as the module holds them (stride defaults to the kernel size).</summary>");
            writer.Line($"private static {Names.Pool2dOptions} AvgPoolOptions(global::TorchSharp.Modules.AvgPool2d pool) => new(");
            using (writer.Indent())
            {
                writer.Line("At(pool.kernel_size, 0, 1), At(pool.kernel_size, 1, 1),");
                writer.Line("At(pool.stride, 0, At(pool.kernel_size, 0, 1)), At(pool.stride, 1, At(pool.kernel_size, 1, 1)),");
                writer.Line("At(pool.padding, 0, 0), At(pool.padding, 1, 0),");
                writer.Line("CeilMode: pool.ceil_mode, CountIncludePad: pool.count_include_pad);");
            }
        }

        if (kinds.Contains(StepKind.AdaptiveAvgPool2d))
        {
            writer.Line();
            writer.Line("/// <summary>AdaptiveAvgPool2d's output height (0) or width (1); one entry means both.</summary>");
            writer.Line("private static int OutputSize(global::TorchSharp.Modules.AdaptiveAvgPool2d pool, int axis) =>");
            using (writer.Indent())
            {
                writer.Line("checked((int)pool.output_size[pool.output_size.Length == 1 ? 0 : axis]);");
            }
        }

        if (kinds.Contains(StepKind.Upsample))
        {
            writer.Line();
            writer.Line("/// <summary>The int8 nearest upsample for an Upsample module; other modes are refused.</summary>");
            writer.Line($"private static {Names.QuantizedUpsampleNearest2d} UpsampleNearest(string model, string layer, global::TorchSharp.Modules.Upsample upsample)");
            writer.Open();
            writer.Line("if (upsample.mode != global::TorchSharp.torch.UpsampleMode.Nearest)");
            writer.Open();
            writer.Line("throw new global::System.NotSupportedException($\"{model}.{layer}: only nearest upsampling is quantized, the module uses {upsample.mode}.\");");
            writer.Close();
            writer.Line();
            writer.Line("global::System.ReadOnlySpan<long> size = upsample.size;");
            writer.Line("global::System.ReadOnlySpan<double> scale = upsample.scale_factor;");
            writer.Line("return new(");
            using (writer.Indent())
            {
                writer.Line("model,");
                writer.Line("layer,");
                writer.Line("size.Length == 0 ? null : checked((int)size[0]),");
                writer.Line("size.Length == 0 ? null : checked((int)size[size.Length == 1 ? 0 : 1]),");
                writer.Line("scale.Length == 0 ? null : scale[0],");
                writer.Line("scale.Length == 0 ? null : scale[scale.Length == 1 ? 0 : 1]);");
            }

            writer.Close();
        }
    }

    /// <summary>A Flatten dimension: the constant from the initializer, or the module's own value at run time.</summary>
    private static string FlattenDim(int? constant, string module, string property) =>
        constant is int value
            ? Int(value)
            : $"checked((int){module}.{property})";

    private static string FloatType(StepPlan step) => step.Kind switch
    {
        StepKind.Conv2d => Names.FusedConv2d,
        StepKind.ConvTranspose2d => Names.FusedConvTranspose2d,
        StepKind.BatchNorm2d => Names.FusedBatchNorm2d,
        _ => Names.FusedLinear,
    };

    internal static string Bool(bool value) => value ? "true" : "false";

    internal static string Int(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Longs(EquatableArray<int> values, int start = -1) =>
        start < 0
            ? $"new long[] {{ {string.Join(", ", values.Select(Int))} }}"
            : $"new long[] {{ {Int(values[start])}, {Int(values[start + 1])} }}";

    /// <summary>The local holding value <paramref name="value"/>: the parameter for 0, else t1, t2, ...</summary>
    internal static string Value(int value) => value == 0 ? "input" : "t" + value.ToString(CultureInfo.InvariantCulture);
}
