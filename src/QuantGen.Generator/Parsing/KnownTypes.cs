using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;

namespace QuantGen.Generator.Parsing;

/// <summary>
/// Metadata names of the types the generator recognises. The generator never loads TorchSharp or the
/// QuantGen runtime: it compares names, so it works against any version that keeps them.
/// </summary>
internal static class KnownTypes
{
    public const string QuantizeAttribute = "QuantGen.QuantizeAttribute";
    public const string FuseAttribute = "QuantGen.FuseAttribute";
    public const string NoQuantizeAttribute = "QuantGen.NoQuantizeAttribute";
    public const string QConfigAttribute = "QuantGen.QConfigAttribute";

    /// <summary>Whether <paramref name="type"/> carries [Quantize] (a class QuantGen inlines into its parents).</summary>
    public static bool IsQuantizeClass(ITypeSymbol type) =>
        type.GetAttributes().Any(a => a.AttributeClass is { } c && MetadataName(c) == QuantizeAttribute);

    /// <summary><c>torch.nn.Module&lt;T, TResult&gt;</c>, nested in the static classes <c>torch</c> and <c>nn</c>.</summary>
    public const string GenericModule = "TorchSharp.torch+nn+Module`2";

    /// <summary>Module&lt;T1, T2, TResult&gt;, Module&lt;T1, T2, T3, TResult&gt;, Module&lt;T1, T2, T3, T4, TResult&gt;: modules of several inputs.</summary>
    public const string GenericModule3 = "TorchSharp.torch+nn+Module`3";

    /// <inheritdoc cref="GenericModule3"/>
    public const string GenericModule4 = "TorchSharp.torch+nn+Module`4";

    /// <inheritdoc cref="GenericModule3"/>
    public const string GenericModule5 = "TorchSharp.torch+nn+Module`5";

    /// <summary>The non-generic base of every TorchSharp module.</summary>
    public const string Module = "TorchSharp.torch+nn+Module";

    public const string Tensor = "TorchSharp.torch+Tensor";

    /// <summary>The module kind for a member's declared type, by exact metadata name.</summary>
    public static ModuleKind KindOf(ITypeSymbol type) => MetadataName(type) switch
    {
        "QuantGen.Modules.QuantStub" => ModuleKind.QuantStub,
        "QuantGen.Modules.DeQuantStub" => ModuleKind.DeQuantStub,
        "TorchSharp.Modules.Conv2d" => ModuleKind.Conv2d,
        "TorchSharp.Modules.BatchNorm2d" => ModuleKind.BatchNorm2d,
        "TorchSharp.Modules.ReLU" => ModuleKind.ReLU,
        "TorchSharp.Modules.Linear" => ModuleKind.Linear,
        "TorchSharp.Modules.Identity" => ModuleKind.Identity,
        "TorchSharp.Modules.Flatten" => ModuleKind.Flatten,
        "TorchSharp.Modules.ConvTranspose2d" => ModuleKind.ConvTranspose2d,
        "TorchSharp.Modules.BatchNorm1d" => ModuleKind.BatchNorm1d,
        "TorchSharp.Modules.MaxPool2d" => ModuleKind.MaxPool2d,
        "TorchSharp.Modules.AvgPool2d" => ModuleKind.AvgPool2d,
        "TorchSharp.Modules.AdaptiveAvgPool2d" => ModuleKind.AdaptiveAvgPool2d,
        "TorchSharp.Modules.Dropout" => ModuleKind.Dropout,
        "TorchSharp.Modules.Upsample" => ModuleKind.Upsample,
        "TorchSharp.Modules.Sequential" => ModuleKind.Sequential,
        _ => ModuleKind.Unsupported,
    };

    /// <summary>True when <paramref name="type"/> is or derives from the non-generic TorchSharp module.</summary>
    public static bool IsModule(ITypeSymbol type)
    {
        for (ITypeSymbol? current = type; current is not null; current = current.BaseType)
        {
            if (MetadataName(current) == Module)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True for <c>torch.Tensor</c>.</summary>
    public static bool IsTensor(ITypeSymbol? type) => type is not null && MetadataName(type) == Tensor;

    /// <summary>
    /// The name reflection would give the type's definition: namespace, '+' between nested types,
    /// arity suffix ("TorchSharp.torch+nn+Module`2").
    /// </summary>
    public static string MetadataName(ITypeSymbol type)
    {
        ITypeSymbol definition = type.OriginalDefinition;
        var name = new StringBuilder(definition.MetadataName);
        ISymbol? container = definition.ContainingSymbol;
        while (container is INamedTypeSymbol containingType)
        {
            name.Insert(0, containingType.MetadataName + "+");
            container = containingType.ContainingSymbol;
        }

        if (container is INamespaceSymbol ns && !ns.IsGlobalNamespace)
        {
            name.Insert(0, ns.ToDisplayString() + ".");
        }

        return name.ToString();
    }
}
