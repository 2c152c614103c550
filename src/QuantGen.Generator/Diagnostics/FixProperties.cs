namespace QuantGen.Generator.Diagnostics;

/// <summary>
/// What a diagnostic tells QuantGen's code fixes, as keys of its <see cref="Microsoft.CodeAnalysis.Diagnostic.Properties"/>.
/// The generator decides whether a remedy really removes the diagnostic (it knows which module kinds can be
/// float islands and which [Fuse] sequences are supported) and says so here; a fix is offered only when its
/// property is present. This file is compiled into QuantGen.CodeFixes as well, so both read the same keys.
/// (QG0001 needs no property: its first additional location is the [Quantize] class, which the fix makes
/// partial together with every type around it.)
/// </summary>
internal static class FixProperties
{
    /// <summary>
    /// QG0007, QG0012, QG0017: the member (of the class the diagnostic is in) that [NoQuantize] turns into one
    /// float island, so the call the diagnostic is about is no longer inlined or quantized.
    /// </summary>
    public const string NoQuantizeMember = "QuantGen.NoQuantizeMember";

    /// <summary>QG0020, QG0021: the member whose [NoQuantize] to remove.</summary>
    public const string RemoveNoQuantizeMember = "QuantGen.RemoveNoQuantizeMember";

    /// <summary>QG0007: the member declared with a general type that every assignment gives one supported type.</summary>
    public const string ConcreteTypeMember = "QuantGen.ConcreteTypeMember";

    /// <summary>QG0007: that type, fully qualified (<c>global::TorchSharp.Modules.Conv2d</c>).</summary>
    public const string ConcreteType = "QuantGen.ConcreteType";

    /// <summary>
    /// QG0003, QG0004, QG0005, QG0013, QG0020: what to do with the [Fuse] attribute, which is the diagnostic's
    /// first additional location: <see cref="RemoveFuseArgument"/>, <see cref="RemoveFuseAttribute"/> or
    /// <see cref="ReorderFuse"/>.
    /// </summary>
    public const string FuseFix = "QuantGen.FuseFix";

    /// <summary>Remove the argument at <see cref="FuseArgument"/>; the rest is a supported sequence.</summary>
    public const string RemoveFuseArgument = "RemoveArgument";

    /// <summary>Remove the whole [Fuse] attribute.</summary>
    public const string RemoveFuseAttribute = "RemoveAttribute";

    /// <summary>List the arguments in the order <see cref="FuseOrder"/> gives (forward's order, a supported sequence).</summary>
    public const string ReorderFuse = "Reorder";

    /// <summary>The 0-based index of the [Fuse] argument to remove.</summary>
    public const string FuseArgument = "QuantGen.FuseArgument";

    /// <summary>The new order of the [Fuse] arguments as old indices, comma-separated ("1,0").</summary>
    public const string FuseOrder = "QuantGen.FuseOrder";
}
