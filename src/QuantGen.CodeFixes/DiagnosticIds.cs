namespace QuantGen.CodeFixes;

/// <summary>
/// The IDs of the generator's diagnostics these fixes handle (the catalog is QuantGen.Generator's
/// DiagnosticDescriptors; a test checks every ID here is in it).
/// </summary>
internal static class DiagnosticIds
{
    public const string NotPartial = "QG0001";
    public const string FuseUnknownMember = "QG0003";
    public const string FuseNotConsecutive = "QG0004";
    public const string UnsupportedFusion = "QG0005";
    public const string UnsupportedModuleType = "QG0007";
    public const string BatchNormNotFused = "QG0012";
    public const string FuseMemberRepeated = "QG0013";
    public const string SequentialNotVisible = "QG0017";
    public const string FuseNoQuantizeMember = "QG0020";
    public const string NoQuantizeUnsupported = "QG0021";
}
