using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Text;
using QuantGen.Generator.Diagnostics;
using QuantGen.Generator.Emitting;
using QuantGen.Generator.Parsing;
using QuantGen.Generator.Planning;

namespace QuantGen.Generator;

/// <summary>
/// Adds <c>Prepare()</c>, <c>Observed</c> and <c>Quantized</c> to every <c>[Quantize]</c> TorchSharp module.
/// Wiring only: <see cref="ModelParser"/> → <see cref="QuantizationPlanner"/> → the emitters, with the
/// diagnostics reported by their own output so the generated source stays cached when only they change.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class QuantizeGenerator : IIncrementalGenerator
{
    /// <inheritdoc/>
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        IncrementalValuesProvider<PlanResult> plans = context.SyntaxProvider
            .ForAttributeWithMetadataName(
                KnownTypes.QuantizeAttribute,
                predicate: static (node, _) => node is ClassDeclarationSyntax,
                transform: ModelParser.Parse)
            .WithTrackingName(TrackingNames.Parse)
            .Select(static (parsed, _) => QuantizationPlanner.Plan(parsed))
            .WithTrackingName(TrackingNames.Plan);

        IncrementalValuesProvider<EquatableArray<DiagnosticInfo>> diagnostics = plans
            .Select(static (result, _) => result.Diagnostics)
            .Where(static d => d.Count > 0)
            .WithTrackingName(TrackingNames.Diagnostics);
        context.RegisterSourceOutput(diagnostics, static (output, found) =>
        {
            foreach (DiagnosticInfo diagnostic in found)
            {
                output.ReportDiagnostic(diagnostic.ToDiagnostic());
            }
        });

        IncrementalValuesProvider<ModelPlan> models = plans
            .Select(static (result, _) => result.Plan!)
            .Where(static plan => plan is not null)
            .WithTrackingName(TrackingNames.Emit);
        context.RegisterSourceOutput(models, static (output, plan) =>
        {
            try
            {
                string source = SourceFileEmitter.Emit(plan);
                output.AddSource(plan.HintName, SourceText.From(source, System.Text.Encoding.UTF8));
            }
            catch (System.Exception exception) when (exception is not System.OperationCanceledException)
            {
                output.ReportDiagnostic(Guard.InternalError(plan.ClassName, null, exception).ToDiagnostic());
            }
        });
    }
}
