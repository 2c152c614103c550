using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis;
using QuantGen.Generator.Diagnostics;
using QuantGen.Generator.Parsing;

namespace QuantGen.Generator.Planning;

/// <summary>
/// Chooses between the two forms of a [Quantize] class. The generated form (planned here, at compile time) is
/// kept whenever the source says everything it needs; when what stops it is something only the running model
/// knows — a member's concrete type, a container's contents, a module with no int8 op, a loop over a container
/// — the class gets the bound form instead: its captured forward is bound at Prepare and anything without an
/// int8 op runs in float. Mistakes the user must fix (not partial, a wrong [Fuse], stubs) stay errors.
/// </summary>
internal static class FormChooser
{
    /// <summary>Errors of the generated form that binding at Prepare resolves.</summary>
    private static readonly HashSet<string> SettledAtPrepare = new()
    {
        DiagnosticDescriptors.UnsupportedForwardStatement.Id,   // QG0006: the capture takes more statements
        DiagnosticDescriptors.UnsupportedModuleType.Id,         // QG0007: bound by runtime type, else float
        DiagnosticDescriptors.ModuleCalledTwice.Id,             // QG0009: each call is its own op once bound
        DiagnosticDescriptors.BatchNormNotFused.Id,             // QG0012: a lone BatchNorm1d runs in float
        DiagnosticDescriptors.DataDependentControlFlow.Id,      // QG0016: loops over containers unroll at Prepare
        DiagnosticDescriptors.SequentialNotVisible.Id,          // QG0017: contents read from the instance
        DiagnosticDescriptors.NoQuantizeUnsupported.Id,         // QG0021: any member can stay float once bound
    };

    public static PlanResult Choose(ParseResult parse, PlanResult generated)
    {
        List<DiagnosticInfo> errors = generated.Diagnostics.Where(IsError).ToList();
        if (errors.Count == 0)
        {
            // The generated form, and the QAT form beside it when the forward could be captured (QAT always binds).
            return generated.Plan is not null && parse.Bound is { Capture.NotCaptured: null } captured ? generated with { Qat = captured with { HidesInherited = generated.Plan.HidesInherited } } : generated;
        }

        if (parse.Bound is not { } bound || errors.Any(e => !SettledAtPrepare.Contains(e.Id)))
        {
            return generated;
        }

        // The stubs and [Fuse] of the generated form have no bound counterpart yet: keep its errors there.
        if (parse.Spec is { } spec && (spec.FuseGroups.Count > 0 || spec.QConfigs.Count > 0
            || spec.Members.Any(m => m.Kind is ModuleKind.QuantStub or ModuleKind.DeQuantStub)))
        {
            return generated;
        }

        var diagnostics = new List<DiagnosticInfo>(parse.BoundDiagnostics);
        if (bound.Capture.NotCaptured is not null)
        {
            // Both forms fail: report what the capture could not take (every statement, in one build).
            return new PlanResult(null, diagnostics.Count > 0 ? diagnostics.ToEquatableArray() : generated.Diagnostics);
        }

        DiagnosticInfo first = errors[0];
        string why = string.Format(
            CultureInfo.InvariantCulture,
            DiagnosticDescriptors.Get(first.Id).MessageFormat.ToString(CultureInfo.InvariantCulture),
            first.MessageArgs.Select(a => (object)a).ToArray());
        diagnostics.Insert(0, DiagnosticInfo.Create(DiagnosticDescriptors.BoundAtPrepare, parse.Spec?.Location, bound.Name, $"{first.Id}: {why}"));
        return new PlanResult(null, diagnostics.ToEquatableArray(), bound, bound);
    }

    private static bool IsError(DiagnosticInfo diagnostic) =>
        DiagnosticDescriptors.Get(diagnostic.Id).DefaultSeverity == DiagnosticSeverity.Error;
}
