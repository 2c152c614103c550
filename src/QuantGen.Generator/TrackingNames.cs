namespace QuantGen.Generator;

/// <summary>
/// Names of the incremental pipeline's steps. Tests look the steps up by these names to check that an
/// unrelated edit leaves every step cached.
/// </summary>
public static class TrackingNames
{
    /// <summary>Syntax + semantic model of a [Quantize] class → <c>ModelSpec</c> and parse diagnostics.</summary>
    public const string Parse = "QuantGen.Parse";

    /// <summary>Every [Quantize] class's spec, collected, for inlining sub-modules.</summary>
    public const string Specs = "QuantGen.Specs";

    /// <summary>ModelSpec → <c>ModelPlan</c> (fusions, quantization points) and planning diagnostics.</summary>
    public const string Plan = "QuantGen.Plan";

    /// <summary>The diagnostics of one model, reported on their own so the source output stays cached.</summary>
    public const string Diagnostics = "QuantGen.Diagnostics";

    /// <summary>The plans that are free of errors: the input of the source output.</summary>
    public const string Emit = "QuantGen.Emit";

    /// <summary>The [Quantize] classes that get the bound form (forward captured, bound at Prepare).</summary>
    public const string EmitBound = "QuantGen.EmitBound";

    /// <summary>The [Quantize] classes that get the QAT form (<c>PrepareQat</c>), whichever form they have.</summary>
    public const string EmitQat = "QuantGen.EmitQat";

    /// <summary>The address of docs/diagnostics.md for help links (the QuantGenDiagnosticsHelpUrl build property).</summary>
    public const string Documentation = "QuantGen.Documentation";

    /// <summary>Every module class's captured forward, registered for binding at Prepare.</summary>
    public const string Capture = "QuantGen.Capture";
}
