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

        writer.Line("/// <summary>");
        writer.Line("/// PyTorch's <c>prepare()</c>: the fused float model with an observer at every quantization point.");
        writer.Line("/// Run calibration batches through its <c>forward</c>, then call <c>Convert()</c>.");
        writer.Line("/// </summary>");
        writer.Line($"/// <param name=\"qconfig\">Observers and backend arithmetic; null for <c>QConfig.For(QuantBackend.{plan.Backend})</c>, the backend of [Quantize].</param>");
        writer.Line("/// <returns>A new observed model; dispose it when calibration is done.</returns>");
        writer.Line(Names.GeneratedCodeAttribute);
        writer.Line($"public {hide}Observed Prepare({Names.QConfig}? qconfig = null) =>");
        using (writer.Indent())
        {
            writer.Line($"new Observed(this, qconfig ?? {Names.QConfig}.For({Names.QuantBackend}.{plan.Backend}));");
        }

        writer.Line();
        writer.Line("/// <summary>");
        writer.Line($"/// {plan.ClassName} prepared for calibration: the fused float model with observers (PyTorch's prepared model).");
        writer.Line("/// </summary>");
        writer.Line(Names.GeneratedCodeAttribute);
        writer.Line($"public {hide}sealed class Observed : global::System.IDisposable");
        writer.Open();

        writer.Line($"private readonly {model} _model;");
        foreach (StepPlan step in floatSteps)
        {
            writer.Line($"private readonly {FloatType(step)}{Nullable(step)} {step.FloatField};");
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

        writer.Line();
        EmitConstructor(writer, plan, model, name, floatSteps);

        writer.Line();
        writer.Line("/// <summary>The observer recipes and the backend arithmetic <c>Convert()</c> uses.</summary>");
        writer.Line($"public {Names.QConfig} QConfig {{ get; }}");
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
        EmitConvert(writer, plan);
        writer.Line();
        ReferenceEmitter.EmitConvertReference(writer, plan);
        writer.Line();
        writer.Line("/// <summary>Releases the fused float modules' tensors.</summary>");
        writer.Line("public void Dispose()");
        writer.Open();
        foreach (StepPlan step in floatSteps)
        {
            writer.Line(step.Guard.Length > 0 ? $"this.{step.FloatField}?.Dispose();" : $"this.{step.FloatField}.Dispose();");
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
        writer.Line($"internal Observed({model} model, {Names.QConfig} qconfig)");
        writer.Open();
        writer.Line("if (model is null)");
        writer.Open();
        writer.Line($"throw new {Names.ArgumentNullException}(nameof(model));");
        writer.Close();
        writer.Line();
        writer.Line("if (qconfig is null)");
        writer.Open();
        writer.Line($"throw new {Names.ArgumentNullException}(nameof(qconfig));");
        writer.Close();
        writer.Line();
        writer.Line("qconfig.Validate();");
        writer.Line("this._model = model;");
        writer.Line("this.QConfig = qconfig;");
        if (plan.NeedsModuleIndex)
        {
            writer.Comment("Sub-modules and Sequential children are reached by their PyTorch-style paths, indexed once.");
            writer.Line($"var modules = {Names.ModuleLookup}.Index(model);");
        }

        foreach (ConditionPlan condition in plan.Conditions)
        {
            writer.Comment(condition.Comment + " — decided once, here: it depends only on how the model was built.");
            writer.Line($"this.{condition.Field} = {condition.Expression};");
        }

        foreach (ObserverPlan observer in plan.Observers)
        {
            writer.Line($"this.{observer.Property} = qconfig.Activation.Create({Names.Literal(observer.Layer)});");
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
        }

        writer.Close();
    }

    private static void EmitForward(SourceWriter writer, ModelPlan plan)
    {
        writer.Line("/// <summary>");
        writer.Line($"/// Runs {plan.ClassName}'s forward in float with the fusions applied, recording every quantization point.");
        writer.Line("/// </summary>");
        writer.Line("/// <param name=\"input\">A calibration batch.</param>");
        writer.Line("/// <returns>The float result, as the fused float model computes it.</returns>");
        writer.Line($"public {Names.Tensor} forward({Names.Tensor} input)");
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
            string? compute = step.Kind switch
            {
                StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d or StepKind.BatchNorm2d => $"this.{step.FloatField}{Bang(step)}.forward({input})",
                StepKind.ReLU or StepKind.Flatten or StepKind.MaxPool2d or StepKind.AvgPool2d or StepKind.AdaptiveAvgPool2d or StepKind.Upsample => $"this.{step.ModuleField}{Bang(step)}.forward({input})",
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
                    Guarded(writer, step, () => writer.Line($"{Names.ObserveExtensions}.Observe(this.{plan.Observers[step.Observer].Property}, {input});"));
                    break;
                case StepKind.Identity:
                    writer.Comment("Identity (or Dropout, identity in eval): nothing to run.");
                    break;
                case StepKind.DeQuantize:
                    writer.Comment("DeQuantStub: the float model runs on as it is.");
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
            if (after.Length > 0)
            {
                writer.Line(after);
            }

            return;
        }

        writer.Line($"{type}? {output} = null;");
        writer.Line($"if ({step.Guard})");
        writer.Open();
        writer.Line($"{output} = {compute};");
        if (after.Length > 0)
        {
            writer.Line(after);
        }

        writer.Close();
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

    internal static string Bang(StepPlan step) => step.Guard.Length > 0 ? "!" : string.Empty;

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
                StepKind.Conv2d or StepKind.Linear or StepKind.ConvTranspose2d => $"this.{step.FloatField}{Bang(step)}.Convert({input}, {output}, this.QConfig.Weight, this.QConfig.Backend)",
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
                _ => throw new System.InvalidOperationException($"{step.Kind} has no int8 module."),
            };
            arguments.Add(step.Guard.Length > 0 ? $"{step.Guard} ? {created} : null" : created);
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
