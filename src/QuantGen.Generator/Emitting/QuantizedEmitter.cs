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
        writer.Line(plan.HidesInherited ? "public new sealed class Quantized" : "public sealed class Quantized");
        writer.Open();

        string parameters = string.Join(", ", members.Select(s => $"{ModuleType(s)} {Names.Identifier(s.QuantizedProperty!)}"));
        writer.Line($"internal Quantized({parameters})");
        writer.Open();
        foreach (StepPlan step in members)
        {
            string identifier = Names.Identifier(step.QuantizedProperty!);
            writer.Line($"this.{identifier} = {identifier} ?? throw new {Names.ArgumentNullException}(nameof({identifier}));");
        }

        writer.Close();
        foreach (StepPlan step in members)
        {
            writer.Line();
            writer.Line($"/// <summary>{Describe(step)}</summary>");
            writer.Line($"public {ModuleType(step)} {Names.Identifier(step.QuantizedProperty!)} {{ get; }}");
        }

        writer.Line();
        writer.Line("/// <summary>Float in, float out: quantizes the input, runs the int8 model and dequantizes its result.</summary>");
        writer.Line("/// <param name=\"input\">A float32 tensor of the shape the float model takes.</param>");
        writer.Line("/// <returns>A new float32 tensor.</returns>");
        writer.Line($"public {Names.Tensor} forward({Names.Tensor} input)");
        writer.Open();
        writer.Line($"float[] values = {Names.TensorInterop}.ToArray(input, out int[] shape);");
        writer.Line("float[] output = this.forward(values, shape, out int[] outputShape);");
        writer.Line($"return {Names.TensorInterop}.FromArray(output, outputShape);");
        writer.Close();

        writer.Line();
        writer.Line("/// <summary>Float in, float out without TorchSharp: values in logical row-major (NCHW) order.</summary>");
        writer.Line("/// <param name=\"input\">The input values.</param>");
        writer.Line("/// <param name=\"shape\">The input's logical shape.</param>");
        writer.Line("/// <param name=\"outputShape\">The result's logical shape.</param>");
        writer.Line("/// <returns>The dequantized result in logical row-major order.</returns>");
        writer.Line($"public float[] forward(global::System.ReadOnlySpan<float> input, int[] shape, out int[] outputShape)");
        writer.Open();
        writer.Line($"{Names.QTensor} quantized = this.{Names.Identifier(entry.QuantizedProperty!)}.Forward(input, shape);");
        writer.Line($"{Names.QTensor} result = this.forward(quantized);");
        writer.Line("outputShape = result.Shape;");
        writer.Line("return result.Dequantize();");
        writer.Close();

        writer.Line();
        writer.Line("/// <summary>The quantized region: int8 in, int8 out.</summary>");
        writer.Line($"/// <param name=\"input\">The region's input, quantized with the qparams of <c>{Names.Identifier(entry.QuantizedProperty!)}</c>.</param>");
        writer.Line("/// <returns>The region's int8 result.</returns>");
        writer.Line($"public {Names.QTensor} forward({Names.QTensor} input)");
        writer.Open();
        writer.Line("if (input is null)");
        writer.Open();
        writer.Line($"throw new {Names.ArgumentNullException}(nameof(input));");
        writer.Close();
        writer.Line();
        foreach (StepPlan step in plan.Steps)
        {
            foreach (string comment in step.Comments)
            {
                writer.Comment(comment);
            }

            switch (step.Kind)
            {
                case StepKind.Quantize:
                    writer.Comment($"{Names.Identifier(step.QuantizedProperty!)} quantized the input before this method.");
                    break;
                case StepKind.Conv2d or StepKind.Linear or StepKind.ReLU or StepKind.Flatten:
                    writer.Line($"{Names.QTensor} {ObservedEmitter.Value(step.Output)} = this.{Names.Identifier(step.QuantizedProperty!)}.Forward({ObservedEmitter.Value(step.Input)});");
                    break;
                case StepKind.Identity:
                    writer.Comment("Identity: nothing to run.");
                    break;
                case StepKind.DeQuantize:
                    writer.Comment("DeQuantStub: the caller dequantizes the result.");
                    break;
            }
        }

        if (plan.ReturnComment.Length > 0)
        {
            writer.Comment(plan.ReturnComment);
        }

        writer.Line($"return {ObservedEmitter.Value(plan.Result)};");
        writer.Close();
        writer.Line();
        ReprEmitter.EmitQuantized(writer, plan);
        writer.Close();
    }

    private static string ModuleType(StepPlan step) => step.Kind switch
    {
        StepKind.Quantize => Names.QuantizeInput,
        StepKind.Conv2d => Names.QuantizedConv2d,
        StepKind.Linear => Names.QuantizedLinear,
        StepKind.ReLU => Names.QuantizedReLU,
        StepKind.Flatten => Names.QuantizedFlatten,
        _ => throw new System.InvalidOperationException($"{step.Kind} has no int8 module."),
    };

    private static string Describe(StepPlan step) => step.Kind switch
    {
        StepKind.Quantize when step.Member.Length == 0 => "Quantizes the model input (no QuantStub: the whole forward is quantized).",
        StepKind.Quantize => $"The converted QuantStub {step.Member}: quantizes the float input.",
        StepKind.Conv2d => $"The int8 {step.Member}{Fused(step)}.",
        StepKind.Linear => $"The int8 {step.Member}{Fused(step)}.",
        StepKind.ReLU => $"The int8 {step.Member}: max(q, zero point), qparams pass through.",
        StepKind.Flatten => $"The int8 {step.Member}: a reshape, qparams pass through.",
        _ => step.Member,
    };

    private static string Fused(StepPlan step) =>
        (step.BatchNormMember, step.Relu) switch
        {
            (null, false) => string.Empty,
            (null, true) => " with its ReLU fused",
            (string bn, false) => $" with {bn} folded in",
            (string bn, true) => $" with {bn} folded in and its ReLU fused",
        };
}
