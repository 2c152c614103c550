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
            writer.Line($"private readonly {FloatType(step)} {step.FloatField};");
        }

        writer.Line();
        EmitConstructor(writer, plan, model, name, floatSteps);

        writer.Line();
        writer.Line("/// <summary>The observer recipes and the backend arithmetic <c>Convert()</c> uses.</summary>");
        writer.Line($"public {Names.QConfig} QConfig {{ get; }}");
        foreach (StepPlan step in plan.Steps.Where(s => s.Observer >= 0))
        {
            ObserverPlan observer = plan.Observers[step.Observer];
            writer.Line();
            writer.Line(step.Kind == StepKind.Quantize
                ? $"/// <summary>Observes the input of the quantized region (layer {observer.Layer}).</summary>"
                : $"/// <summary>Observes the output of {step.Member} (layer {observer.Layer}).</summary>");
            writer.Line($"public {Names.Observer} {observer.Property} {{ get; }}");
        }

        writer.Line();
        EmitForward(writer, plan);
        writer.Line();
        EmitConvert(writer, plan);
        writer.Line();
        writer.Line("/// <summary>Releases the fused float modules' tensors.</summary>");
        writer.Line("public void Dispose()");
        writer.Open();
        foreach (StepPlan step in floatSteps)
        {
            writer.Line($"this.{step.FloatField}.Dispose();");
        }

        writer.Close();
        writer.Line();
        ReprEmitter.EmitObserved(writer, plan);
        writer.Close();
    }

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
        foreach (ObserverPlan observer in plan.Observers)
        {
            writer.Line($"this.{observer.Property} = qconfig.Activation.Create({Names.Literal(observer.Layer)});");
        }

        foreach (StepPlan step in floatSteps)
        {
            foreach (string comment in step.Comments)
            {
                writer.Comment(comment);
            }

            string module = "model." + Names.Identifier(step.Member);
            string create = step.Kind == StepKind.Conv2d
                ? $"{Names.FusedConv2d}.Create({name}, {Names.Literal(step.Layer)}, {module}, batchNorm: {(step.BatchNormMember is null ? "null" : "model." + Names.Identifier(step.BatchNormMember))}, relu: {Bool(step.Relu)})"
                : $"{Names.FusedLinear}.Create({name}, {Names.Literal(step.Layer)}, {module}, relu: {Bool(step.Relu)})";
            writer.Line($"this.{step.FloatField} = {create};");
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

        foreach (StepPlan step in plan.Steps)
        {
            foreach (string comment in step.Comments)
            {
                writer.Comment(comment);
            }

            string input = Value(step.Input);
            string output = Value(step.Output);
            switch (step.Kind)
            {
                case StepKind.Quantize:
                    writer.Line($"{Names.ObserveExtensions}.Observe(this.{plan.Observers[step.Observer].Property}, {input});");
                    break;
                case StepKind.Conv2d or StepKind.Linear:
                    writer.Line($"{Names.Tensor} {output} = this.{step.FloatField}.forward({input});");
                    writer.Line($"{Names.ObserveExtensions}.Observe(this.{plan.Observers[step.Observer].Property}, {output});");
                    break;
                case StepKind.ReLU or StepKind.Flatten:
                    writer.Line($"{Names.Tensor} {output} = this._model.{Names.Identifier(step.Member)}.forward({input});");
                    break;
                case StepKind.Identity:
                    writer.Comment("Identity: nothing to run.");
                    break;
                case StepKind.DeQuantize:
                    writer.Comment("DeQuantStub: the float model runs on as it is.");
                    break;
            }
        }

        if (plan.ReturnComment.Length > 0)
        {
            writer.Comment(plan.ReturnComment);
        }

        writer.Line(scoped ? $"return {Value(plan.Result)}.MoveToOuterDisposeScope();" : "return input;");
        writer.Close();
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
            writer.Line($"{Names.QParams} {observer.QParamsVariable} = this.{observer.Property}.CalculateQParams();");
        }

        string name = Names.Literal(plan.ClassName);
        var arguments = new List<string>();
        foreach (StepPlan step in plan.Steps.Where(s => s.QuantizedProperty is not null))
        {
            string layer = Names.Literal(step.Layer);
            string output = step.Observer >= 0 ? plan.Observers[step.Observer].QParamsVariable : string.Empty;
            string input = step.InputQParams >= 0 ? plan.Observers[step.InputQParams].QParamsVariable : string.Empty;
            arguments.Add(step.Kind switch
            {
                StepKind.Quantize => $"new {Names.QuantizeInput}({name}, {layer}, {output})",
                StepKind.Conv2d or StepKind.Linear => $"this.{step.FloatField}.Convert({input}, {output}, this.QConfig.Weight, this.QConfig.Backend)",
                StepKind.ReLU => $"new {Names.QuantizedReLU}({name}, {layer})",
                StepKind.Flatten => $"new {Names.QuantizedFlatten}({name}, {layer}, {FlattenDim(step.FlattenStartDim, step.Member, "start_dim")}, {FlattenDim(step.FlattenEndDim, step.Member, "end_dim")})",
                _ => throw new System.InvalidOperationException($"{step.Kind} has no int8 module."),
            });
        }

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

    /// <summary>A Flatten dimension: the constant from the initializer, or the module's own value at run time.</summary>
    private static string FlattenDim(int? constant, string member, string property) =>
        constant is int value
            ? value.ToString(CultureInfo.InvariantCulture)
            : $"checked((int)this._model.{Names.Identifier(member)}.{property})";

    private static string FloatType(StepPlan step) => step.Kind == StepKind.Conv2d ? Names.FusedConv2d : Names.FusedLinear;

    private static string Bool(bool value) => value ? "true" : "false";

    /// <summary>The local holding value <paramref name="value"/>: the parameter for 0, else t1, t2, ...</summary>
    internal static string Value(int value) => value == 0 ? "input" : "t" + value.ToString(CultureInfo.InvariantCulture);
}
