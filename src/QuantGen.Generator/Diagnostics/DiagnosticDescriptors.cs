using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using Microsoft.CodeAnalysis;

namespace QuantGen.Generator.Diagnostics;

/// <summary>
/// The one catalog of QuantGen's diagnostics. Every rule has a section in docs/diagnostics.md and a row in
/// AnalyzerReleases.Unshipped.md; its help link is built from its ID by <see cref="HelpLink"/> with the one
/// documentation address <see cref="HelpUrlProperty"/> gives.
/// </summary>
internal static class DiagnosticDescriptors
{
    /// <summary>
    /// The one setting for help links: the MSBuild property <c>QuantGenDiagnosticsHelpUrl</c>, the address of
    /// docs/diagnostics.md — a URL, or a file path that becomes a <c>file://</c> URI. The QuantGen package sets it
    /// to the copy of diagnostics.md it carries (buildTransitive/QuantGen.props), this repository to its docs
    /// folder (Directory.Build.props); a team that publishes the page sets it to that URL. Without it a
    /// diagnostic has no help link rather than one to a page that may not exist.
    /// </summary>
    public const string HelpUrlProperty = "QuantGenDiagnosticsHelpUrl";

    /// <summary>The key under which the compiler passes <see cref="HelpUrlProperty"/> to the generator.</summary>
    public const string HelpUrlOption = "build_property." + HelpUrlProperty;

    private const string Category = "QuantGen";

    private static readonly Dictionary<string, DiagnosticDescriptor> ById = new();

    // Descriptors with help links, by documentation address and ID (one address per build in practice).
    private static readonly ConcurrentDictionary<(string Url, string Id), DiagnosticDescriptor> WithHelpLink = new();

    public static readonly DiagnosticDescriptor NotPartial = Create(
        "QG0001",
        "[Quantize] class must be partial",
        "'{0}' is marked [Quantize] but {1} not partial; add the 'partial' modifier so QuantGen can add Prepare(), Observed and Quantized",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor NotATensorModule = Create(
        "QG0002",
        "[Quantize] class must derive from Module<Tensor, Tensor>",
        "'{0}' must derive from TorchSharp's torch.nn.Module<Tensor, Tensor> to be quantized, but it derives from '{1}'",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor FuseUnknownMember = Create(
        "QG0003",
        "[Fuse] names an unknown member",
        "[Fuse] on '{0}' names '{1}', which is not a module field or property of '{0}'",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor FuseNotConsecutive = Create(
        "QG0004",
        "[Fuse] modules do not follow each other in forward",
        "[Fuse({1})] on '{0}': {2}; fused modules must be called one after the other in forward, each taking the previous one's output, which nothing else uses",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor UnsupportedFusion = Create(
        "QG0005",
        "Unsupported [Fuse] sequence",
        "[Fuse({1})] on '{0}' is {2}, which QuantGen cannot fuse; supported sequences are Conv2d+ReLU, Conv2d+BatchNorm2d, Conv2d+BatchNorm2d+ReLU and Linear+ReLU",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor UnsupportedForwardStatement = Create(
        "QG0006",
        "Unsupported statement in forward",
        "'{0}' in {1}.forward cannot be traced: {2}. QuantGen traces local variables and calls m.forward(x) / m.call(x) of module fields and properties of {1}, a + b, torch.add, add_, torch.cat, flatten, view/reshape with constant sizes, functional.relu and max_pool2d (see docs/diagnostics.md).",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor UnsupportedModuleType = Create(
        "QG0007",
        "Module type not supported",
        "'{0}.{1}' is a '{2}', which QuantGen cannot quantize; supported module types are TorchSharp.Modules.Conv2d, ConvTranspose2d, BatchNorm2d, BatchNorm1d (after a Linear), ReLU, Linear, Identity, Dropout, Flatten, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Upsample, Sequential, [Quantize] classes and QuantGen.Modules.QuantStub/DeQuantStub{3}",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor MissingForward = Create(
        "QG0008",
        "No forward(Tensor) to trace",
        "'{0}' has no 'public override Tensor forward(Tensor x)' with a body for QuantGen to trace",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor ModuleCalledTwice = Create(
        "QG0009",
        "Module called more than once in forward",
        "'{0}.{1}' is called more than once in forward; each call needs its own observer and int8 op, so declare one module per call",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor OutsideQuantizedRegion = Create(
        "QG0010",
        "Module outside the quantized region",
        "'{0}.{1}' is called {2}; only Identity may run outside the region between QuantStub and DeQuantStub",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor StubOrder = Create(
        "QG0011",
        "QuantStub/DeQuantStub used in an unsupported way",
        "'{0}.{1}' {2}; forward may call one QuantStub, which starts the quantized region, and one DeQuantStub after it, which ends it",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor BatchNormNotFused = Create(
        "QG0012",
        "BatchNorm1d must follow a Linear",
        "'{0}.{1}' (BatchNorm1d) does not directly follow a Linear whose output only it reads; QuantGen folds BatchNorm1d into the Linear before it and has no standalone int8 BatchNorm1d",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor FuseMemberRepeated = Create(
        "QG0013",
        "Member fused more than once",
        "'{0}.{1}' appears in more than one [Fuse] group, or twice in one; each module can be fused once",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor UnknownBackend = Create(
        "QG0014",
        "Unknown QuantBackend",
        "[Quantize] on '{0}' has backend value {1}, which is not a QuantBackend member (X86 or Qnnpack)",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor GeneratedNameTaken = Create(
        "QG0015",
        "Member name reserved for generated code",
        "'{0}' already has a member named '{1}', which QuantGen generates; rename it",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor DataDependentControlFlow = Create(
        "QG0016",
        "Data-dependent control flow in forward",
        "'{0}' in {1}.forward cannot be quantized: {2}. QuantGen follows an if only when its condition depends on how the module was built (a module member 'is null'/'is not null', a readonly bool field, a constant); move the data-dependent part out of forward, or into a sub-module that is not quantized.",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor SequentialNotVisible = Create(
        "QG0017",
        "Sequential contents not visible",
        "'{0}.{1}' is a Sequential whose modules QuantGen cannot see: {2}. Initialise it in its field initializer or a constructor with a literal list, e.g. Sequential(Conv2d(...), BatchNorm2d(...)) or Sequential((\"conv\", Conv2d(...)), ...).",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor FusionsMade = Create(
        "QG0018",
        "Automatic fusions",
        "'{0}': QuantGen fused {1}",
        DiagnosticSeverity.Info);

    public static readonly DiagnosticDescriptor FusionBlocked = Create(
        "QG0019",
        "Fusion blocked",
        "'{0}': {1} and {2} were not fused: {3}",
        DiagnosticSeverity.Warning);

    public static readonly DiagnosticDescriptor FuseNoQuantizeMember = Create(
        "QG0020",
        "[Fuse] includes a [NoQuantize] member",
        "'{0}.{1}' is [NoQuantize] (a float island) and cannot be fused; remove it from the [Fuse] group or drop [NoQuantize]",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor NoQuantizeUnsupported = Create(
        "QG0021",
        "[NoQuantize] not supported on this member",
        "'{0}.{1}' cannot be a float island: {2}",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor BoundAtPrepare = Create(
        "QG0022",
        "Forward captured and bound at Prepare",
        "'{0}' is captured from source and bound to the running model at Prepare(), because {1}",
        DiagnosticSeverity.Info);

    public static readonly DiagnosticDescriptor RunsInFloat = Create(
        "QG0023",
        "Op runs in float",
        "'{0}' in {1} runs in float in the int8 model: {2}",
        DiagnosticSeverity.Warning);

    public static readonly DiagnosticDescriptor CannotExpand = Create(
        "QG0024",
        "Sub-modules cannot be expanded",
        "'{0}' gets no generated code: {1}",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor FileLocalClass = Create(
        "QG0025",
        "[Quantize] class is file-local",
        "'{0}' {1} declared 'file'; all parts of a file-local type must be in its one file, so QuantGen cannot add the generated part; make it internal to quantize it",
        DiagnosticSeverity.Error);

    public static readonly DiagnosticDescriptor DynamicForm = Create(
        "QG0026",
        "Op has a dynamic or weight-only int8 form",
        "'{0}' in {1} runs in float under a static qconfig: {2}",
        DiagnosticSeverity.Info);

    public static readonly DiagnosticDescriptor InternalError = Create(
        "QG9999",
        "QuantGen internal error",
        "QuantGen failed on '{0}' ({1}: {2}) and generated no code for it; this is a bug in QuantGen, please report it with the class that triggers it",
        DiagnosticSeverity.Warning);

    /// <summary>Every descriptor, in ID order.</summary>
    public static IReadOnlyCollection<DiagnosticDescriptor> All => ById.Values;

    /// <summary>
    /// The documentation section of a rule: <paramref name="documentationUrl"/> (docs/diagnostics.md, as
    /// <see cref="DocumentationUri"/> gives it) with the lower-cased ID as anchor. Each section of that page
    /// carries an explicit anchor equal to the lower-cased ID, so a link stays valid when a title changes.
    /// </summary>
    public static string HelpLink(string documentationUrl, string id) => documentationUrl + "#" + id.ToLowerInvariant();

    /// <summary>
    /// The value of <see cref="HelpUrlProperty"/> as an absolute URI without fragment: a URL as given, a rooted
    /// file path as <c>file:///...</c>; null when it is empty or neither.
    /// </summary>
    public static string? DocumentationUri(string? setting)
    {
        string value = setting?.Trim() ?? string.Empty;
        if (value.Length == 0 || !Uri.TryCreate(value, UriKind.Absolute, out Uri? uri))
        {
            return null;
        }

        string text = uri.IsFile ? uri.AbsoluteUri : value;
        int fragment = text.IndexOf('#');
        return fragment < 0 ? text : text.Substring(0, fragment);
    }

    /// <summary>The descriptor with <paramref name="id"/>; pipeline data carries IDs, not descriptors.</summary>
    public static DiagnosticDescriptor Get(string id) => ById[id];

    /// <summary>
    /// The descriptor with <paramref name="id"/> and its help link in the documentation at
    /// <paramref name="documentationUrl"/> (an absolute URI from <see cref="DocumentationUri"/>); without one,
    /// the descriptor without a help link.
    /// </summary>
    public static DiagnosticDescriptor Get(string id, string? documentationUrl)
    {
        DiagnosticDescriptor plain = ById[id];
        if (documentationUrl is null)
        {
            return plain;
        }

        return WithHelpLink.GetOrAdd((documentationUrl, id), key => new DiagnosticDescriptor(
            plain.Id, plain.Title, plain.MessageFormat, plain.Category, plain.DefaultSeverity, plain.IsEnabledByDefault,
            helpLinkUri: HelpLink(key.Url, key.Id)));
    }

    private static DiagnosticDescriptor Create(string id, string title, string messageFormat, DiagnosticSeverity severity)
    {
        var descriptor = new DiagnosticDescriptor(id, title, messageFormat, Category, severity, isEnabledByDefault: true);
        ById.Add(id, descriptor);
        return descriptor;
    }
}
