using System.Linq;
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
        IncrementalValuesProvider<ParseResult> parsed = context.SyntaxProvider
            .ForAttributeWithMetadataName(
                KnownTypes.QuantizeAttribute,
                predicate: static (node, _) => node is ClassDeclarationSyntax,
                transform: ModelParser.Parse)
            .WithTrackingName(TrackingNames.Parse);

        // Every class's spec, so a parent inlines its [Quantize] sub-modules from their specs (never from
        // their syntax, which would go stale): editing a child re-plans its parents, nothing else does.
        IncrementalValueProvider<EquatableArray<ModelSpec>> specs = parsed
            .Select(static (result, _) => result.Spec!)
            .Where(static spec => spec is not null)
            .Collect()
            .Select(static (all, _) => all.OrderBy(s => s.MetadataName, System.StringComparer.Ordinal).ToEquatableArray())
            .WithTrackingName(TrackingNames.Specs);

        IncrementalValuesProvider<PlanResult> plans = parsed
            .Combine(specs)
            .Select(static (pair, cancellationToken) => FormChooser.Choose(pair.Left, QuantizationPlanner.Plan(pair.Left, pair.Right, cancellationToken)))
            .WithTrackingName(TrackingNames.Plan);

        // Where docs/diagnostics.md is, for help links: one string, so an unrelated option change stays cached.
        IncrementalValueProvider<string?> documentation = context.AnalyzerConfigOptionsProvider
            .Select(static (options, _) => DiagnosticDescriptors.DocumentationUri(
                options.GlobalOptions.TryGetValue(DiagnosticDescriptors.HelpUrlOption, out string? value) ? value : null))
            .WithTrackingName(TrackingNames.Documentation);

        IncrementalValuesProvider<EquatableArray<DiagnosticInfo>> diagnostics = plans
            .Select(static (result, _) => result.Diagnostics)
            .Where(static d => d.Count > 0)
            .WithTrackingName(TrackingNames.Diagnostics);
        context.RegisterSourceOutput(diagnostics.Combine(documentation), static (output, pair) =>
        {
            foreach (DiagnosticInfo diagnostic in pair.Left)
            {
                output.ReportDiagnostic(diagnostic.ToDiagnostic(pair.Right));
            }
        });

        IncrementalValuesProvider<ModelPlan> models = plans
            .Select(static (result, _) => result.Plan!)
            .Where(static plan => plan is not null)
            .WithTrackingName(TrackingNames.Emit);
        context.RegisterSourceOutput(models.Combine(documentation), static (output, pair) =>
        {
            ModelPlan plan = pair.Left;
            try
            {
                string source = SourceFileEmitter.Emit(plan, output.CancellationToken);
                output.AddSource(plan.HintName, SourceText.From(source, System.Text.Encoding.UTF8));
            }
            catch (System.Exception exception) when (exception is not System.OperationCanceledException)
            {
                output.ReportDiagnostic(Guard.InternalError(plan.ClassName, null, exception).ToDiagnostic(pair.Right));
            }
        });

        // The bound form of [Quantize] classes whose forward only the running model can settle.
        IncrementalValuesProvider<BoundModelSpec> boundModels = plans
            .Select(static (result, _) => result.Bound!)
            .Where(static bound => bound is not null)
            .WithTrackingName(TrackingNames.EmitBound);
        context.RegisterSourceOutput(boundModels.Combine(documentation), static (output, pair) =>
        {
            BoundModelSpec bound = pair.Left;
            try
            {
                output.AddSource(bound.HintName, SourceText.From(BoundModelEmitter.Emit(bound, output.CancellationToken), System.Text.Encoding.UTF8));
                output.AddSource(bound.Capture.HintName, SourceText.From(CaptureEmitter.Emit(bound.Capture, output.CancellationToken), System.Text.Encoding.UTF8));
            }
            catch (System.Exception exception) when (exception is not System.OperationCanceledException)
            {
                output.ReportDiagnostic(Guard.InternalError(bound.Name, null, exception).ToDiagnostic(pair.Right));
            }
        });

        // The QAT form of every [Quantize] class whose forward was captured: it always binds at PrepareQat, so a
        // generated-form class gets its captured forward emitted here too (a bound-form class emits it above).
        IncrementalValuesProvider<(BoundModelSpec Spec, bool EmitCapture)> qatModels = plans
            .Where(static result => result.Qat is not null)
            .Select(static (result, _) => (result.Qat!, result.Bound is null))
            .WithTrackingName(TrackingNames.EmitQat);
        context.RegisterSourceOutput(qatModels.Combine(documentation), static (output, pair) =>
        {
            (BoundModelSpec qat, bool emitCapture) = pair.Left;
            try
            {
                output.AddSource(qat.Capture.RegistrationName + ".Qat.g.cs", SourceText.From(QatEmitter.Emit(qat, output.CancellationToken), System.Text.Encoding.UTF8));
                if (emitCapture)
                {
                    output.AddSource(qat.Capture.RegistrationName + ".Capture.g.cs", SourceText.From(CaptureEmitter.Emit(qat.Capture, output.CancellationToken), System.Text.Encoding.UTF8));
                }
            }
            catch (System.Exception exception) when (exception is not System.OperationCanceledException)
            {
                output.ReportDiagnostic(Guard.InternalError(qat.Name, null, exception).ToDiagnostic(pair.Right));
            }
        });

        // Every module class's forward, captured so Prepare can inline it wherever a model holds one (FX traces
        // through a user's submodules the same way); a class that cannot be captured is recorded as such.
        IncrementalValuesProvider<CaptureSpec> captures = context.SyntaxProvider
            .CreateSyntaxProvider(
                predicate: static (node, _) => ModuleClassCapture.MayBeModule(node),
                transform: ModuleClassCapture.Capture)
            .Where(static spec => spec is not null)
            .Select(static (spec, _) => spec!)
            .WithTrackingName(TrackingNames.Capture);
        context.RegisterSourceOutput(captures.Combine(documentation), static (output, pair) =>
        {
            CaptureSpec capture = pair.Left;
            try
            {
                output.AddSource(capture.HintName, SourceText.From(CaptureEmitter.Emit(capture, output.CancellationToken), System.Text.Encoding.UTF8));
            }
            catch (System.Exception exception) when (exception is not System.OperationCanceledException)
            {
                output.ReportDiagnostic(Guard.InternalError(capture.TypeReference, null, exception).ToDiagnostic(pair.Right));
            }
        });
    }
}
