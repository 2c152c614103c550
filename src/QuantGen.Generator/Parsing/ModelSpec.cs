using QuantGen.Generator.Diagnostics;

namespace QuantGen.Generator.Parsing;

/// <summary>What a member module is, decided by the metadata name of its declared type.</summary>
internal enum ModuleKind
{
    /// <summary>A module type QuantGen does not quantize (LSTM, a user module, ...).</summary>
    Unsupported,
    QuantStub,
    DeQuantStub,
    Conv2d,
    BatchNorm2d,
    ReLU,
    Linear,
    Identity,
    Flatten,
}

/// <summary>
/// Everything the generator needs to know about one [Quantize] class, extracted from syntax and symbols
/// once and then held as equatable values only.
/// </summary>
/// <param name="Name">The class name without type parameters ("M"); also the model name in messages.</param>
/// <param name="TypeParameters">"" or the type parameter list ("&lt;T&gt;").</param>
/// <param name="Namespace">The containing namespace, or null for the global namespace.</param>
/// <param name="ContainingTypes">Outermost first, for nested classes.</param>
/// <param name="Backend">The QuantBackend member name from [Quantize] ("X86", "Qnnpack").</param>
/// <param name="Members">Module fields and properties, in declaration order.</param>
/// <param name="FuseGroups">[Fuse] attributes, in source order.</param>
/// <param name="Forward">The traced forward, or null when it could not be traced (diagnostics say why).</param>
/// <param name="HidesInherited">A base class has (or will be generated) Prepare/Observed/Quantized.</param>
/// <param name="Location">The class identifier, for diagnostics about the class as a whole.</param>
internal sealed record ModelSpec(
    string Name,
    string TypeParameters,
    string? Namespace,
    EquatableArray<ContainingTypeSpec> ContainingTypes,
    string Backend,
    EquatableArray<MemberSpec> Members,
    EquatableArray<FuseGroupSpec> FuseGroups,
    ForwardSpec? Forward,
    bool HidesInherited,
    LocationInfo? Location);

/// <summary>A type that contains the [Quantize] class: "class Outer", "record struct S&lt;T&gt;".</summary>
internal sealed record ContainingTypeSpec(string Keyword, string Name);

/// <summary>A module field or property of the class.</summary>
/// <param name="Name">Member name as written.</param>
/// <param name="Kind">What the generator does with it.</param>
/// <param name="TypeName">Its declared type, for messages.</param>
/// <param name="FlattenStartDim">Flatten's start_dim when the initializer gives it as a constant (or omits it).</param>
/// <param name="FlattenEndDim">Flatten's end_dim, likewise; null for both means "read it from the module at run time".</param>
/// <param name="Location">The member's name in its declaration.</param>
internal sealed record MemberSpec(
    string Name,
    ModuleKind Kind,
    string TypeName,
    int? FlattenStartDim,
    int? FlattenEndDim,
    LocationInfo? Location);

/// <summary>One [Fuse(...)] attribute.</summary>
/// <param name="Members">Member names in the order given.</param>
/// <param name="ArgumentLocations">Each name's argument, or the attribute when they cannot be matched one to one.</param>
/// <param name="Location">The attribute.</param>
internal sealed record FuseGroupSpec(
    EquatableArray<string> Members,
    EquatableArray<LocationInfo> ArgumentLocations,
    LocationInfo? Location);

/// <summary>The data flow of forward: a list of module calls, each reading one earlier value.</summary>
/// <param name="FileName">File name (no directory) of the forward method, for comments in generated code.</param>
/// <param name="Calls">Module calls in evaluation order; call i produces value i + 1.</param>
/// <param name="Result">The value forward returns: 0 is its parameter, i + 1 is call i's result.</param>
/// <param name="ReturnLine">1-based line of the return (or of the expression body).</param>
/// <param name="ReturnText">The return statement or expression, for comments.</param>
internal sealed record ForwardSpec(
    string FileName,
    EquatableArray<ForwardCall> Calls,
    int Result,
    int ReturnLine,
    string ReturnText);

/// <summary>One <c>member.forward(value)</c> (or <c>.call</c>) in forward.</summary>
/// <param name="Member">The module member called.</param>
/// <param name="Input">The value passed: 0 is forward's parameter, i + 1 is call i's result.</param>
/// <param name="Text">The statement (or, for a nested call, the call) as written, on one line.</param>
/// <param name="Line">1-based line of the call.</param>
/// <param name="Location">The call expression.</param>
internal sealed record ForwardCall(
    string Member,
    int Input,
    string Text,
    int Line,
    LocationInfo? Location);

/// <summary>The parse step's output: the spec (null when the class cannot be modelled) and its diagnostics.</summary>
internal sealed record ParseResult(ModelSpec? Spec, EquatableArray<DiagnosticInfo> Diagnostics);
