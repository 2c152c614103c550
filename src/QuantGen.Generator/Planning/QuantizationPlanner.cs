using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using QuantGen.Generator.Diagnostics;
using QuantGen.Generator.Parsing;

namespace QuantGen.Generator.Planning;

/// <summary>
/// <see cref="ModelSpec"/> (and the specs of every other [Quantize] class, for sub-modules) →
/// <see cref="ModelPlan"/>: inlines [Quantize] sub-modules and Sequential members into one graph with
/// PyTorch-style paths, applies [Fuse] groups and automatic fusion, finds the quantized region and its
/// quantization points, and checks everything that needs the whole graph. A pure function of its input.
/// </summary>
internal static partial class QuantizationPlanner
{
    /// <summary>The Conv2d/Linear-headed sequences PyTorch's fuse_modules accepts and the runtime implements.</summary>
    private static readonly ModuleKind[][] SupportedFusions =
    {
        new[] { ModuleKind.Conv2d, ModuleKind.ReLU },
        new[] { ModuleKind.Conv2d, ModuleKind.BatchNorm2d },
        new[] { ModuleKind.Conv2d, ModuleKind.BatchNorm2d, ModuleKind.ReLU },
        new[] { ModuleKind.Linear, ModuleKind.ReLU },
        new[] { ModuleKind.ConvTranspose2d, ModuleKind.BatchNorm2d },
        new[] { ModuleKind.ConvTranspose2d, ModuleKind.BatchNorm2d, ModuleKind.ReLU },
        new[] { ModuleKind.ConvTranspose2d, ModuleKind.ReLU },
        new[] { ModuleKind.BatchNorm2d, ModuleKind.ReLU },
    };

    /// <summary>How deeply sub-modules may nest.</summary>
    private const int MaxDepth = 32;

    /// <summary>The plan step of the pipeline; never throws.</summary>
    public static PlanResult Plan(ParseResult parsed) => Plan(parsed, EquatableArray<ModelSpec>.Empty);

    /// <summary>The plan step of the pipeline with every [Quantize] class's spec, for inlining; never throws.</summary>
    public static PlanResult Plan(ParseResult parsed, EquatableArray<ModelSpec> all, System.Threading.CancellationToken cancellationToken = default)
    {
        if (parsed.Spec is not { } spec)
        {
            return new PlanResult(null, parsed.Diagnostics);
        }

        return Guard.Run(
            spec.Name,
            spec.Location,
            () => Plan(spec, parsed.Diagnostics, all, cancellationToken),
            internalError => new PlanResult(null, parsed.Diagnostics.Concat(internalError).ToEquatableArray()));
    }

    /// <summary>Plans a parsed model; <paramref name="parseDiagnostics"/> are carried into the result.</summary>
    public static PlanResult Plan(ModelSpec spec, EquatableArray<DiagnosticInfo> parseDiagnostics, EquatableArray<ModelSpec> all = default, System.Threading.CancellationToken cancellationToken = default)
    {
        var planner = new Planner(spec, parseDiagnostics, all, cancellationToken);
        ModelPlan? plan = planner.Run();
        return new PlanResult(plan, planner.Diagnostics.ToEquatableArray());
    }

    /// <summary>"Conv2d+BatchNorm2d+ReLU" style names of a sequence.</summary>
    internal static string SequenceName(IEnumerable<ModuleKind> kinds) => string.Join("+", kinds);
}
