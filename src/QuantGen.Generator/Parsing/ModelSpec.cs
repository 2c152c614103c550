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
    ConvTranspose2d,
    BatchNorm1d,
    MaxPool2d,
    AvgPool2d,
    AdaptiveAvgPool2d,
    Dropout,
    Upsample,

    /// <summary>A TorchSharp Sequential whose children the generator read from a literal list.</summary>
    Sequential,

    /// <summary>A module whose class is itself [Quantize]: inlined into the parent's graph.</summary>
    SubModel,
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
/// <param name="MetadataName">The class's metadata name, by which a parent finds its spec.</param>
/// <param name="AutoFuse">[Quantize(AutoFuse = ...)]: fuse the supported patterns without [Fuse].</param>
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
    LocationInfo? Location,
    string MetadataName = "",
    bool AutoFuse = true,
    EquatableArray<QConfigSpec> QConfigs = default);

/// <summary>Where a [QConfig] attribute applies.</summary>
internal enum QConfigTarget
{
    /// <summary><c>[QConfig(...)]</c>: the global qconfig.</summary>
    Global,

    /// <summary><c>[QConfig(typeof(T), ...)]</c>: every module of a type.</summary>
    ModuleType,

    /// <summary><c>[QConfig("path", ...)]</c>: one member (and what is below it).</summary>
    MemberPath,
}

/// <summary>One [QConfig] attribute: its target and only the named arguments actually written.</summary>
/// <param name="Target">Global, by module type or by member path.</param>
/// <param name="Key">The module type's simple metadata name or the member path; "" for global.</param>
/// <param name="Properties">(attribute property, C# expression of its value), in source order.</param>
internal sealed record QConfigSpec(QConfigTarget Target, string Key, EquatableArray<QConfigProperty> Properties);

/// <summary>A named argument of a [QConfig] attribute.</summary>
/// <param name="Name">The attribute property ("ActivationDType").</param>
/// <param name="Value">Its value as C# ("global::QuantGen.QuantDType.QInt8", "true", "1").</param>
internal sealed record QConfigProperty(string Name, string Value);

/// <summary>A type that contains the [Quantize] class: "class Outer", "record struct S&lt;T&gt;".</summary>
internal sealed record ContainingTypeSpec(string Keyword, string Name);

/// <summary>A module field or property of the class.</summary>
/// <param name="Name">Member name as written.</param>
/// <param name="Kind">What the generator does with it.</param>
/// <param name="TypeName">Its declared type, for messages.</param>
/// <param name="FlattenStartDim">Flatten's start_dim when the initializer gives it as a constant (or omits it).</param>
/// <param name="FlattenEndDim">Flatten's end_dim, likewise; null for both means "read it from the module at run time".</param>
/// <param name="Location">The member's name in its declaration.</param>
/// <param name="NoQuantize">[NoQuantize]: the member's op stays in float (a float island).</param>
/// <param name="ConcreteType">For a member of a type QuantGen does not quantize: the supported type every assignment
/// creates, fully qualified (QG0007's code fix declares the member with it); otherwise null.</param>
internal sealed record MemberSpec(
    string Name,
    ModuleKind Kind,
    string TypeName,
    int? FlattenStartDim,
    int? FlattenEndDim,
    LocationInfo? Location,
    string? SubModelType = null,
    EquatableArray<SequentialChild> Children = default,
    string? ChildrenProblem = null,
    bool NoQuantize = false,
    string? ConcreteType = null);

/// <summary>One child of a Sequential member, as its literal list gives it.</summary>
/// <param name="Name">"0", "1", ... or the name of a ("name", module) pair.</param>
/// <param name="Kind">What the child is.</param>
/// <param name="TypeName">The child's type, for messages.</param>
/// <param name="SubModelType">The metadata name of a [Quantize] child's class.</param>
internal sealed record SequentialChild(string Name, ModuleKind Kind, string TypeName, string? SubModelType);

/// <summary>One [Fuse(...)] attribute.</summary>
/// <param name="Members">Member names in the order given.</param>
/// <param name="ArgumentLocations">Each name's argument, or the attribute when they cannot be matched one to one.</param>
/// <param name="Location">The attribute.</param>
internal sealed record FuseGroupSpec(
    EquatableArray<string> Members,
    EquatableArray<LocationInfo> ArgumentLocations,
    LocationInfo? Location);

/// <summary>The data flow of forward: its nodes in evaluation order; node i produces value i + 1.</summary>
/// <param name="FileName">File name (no directory) of the forward method, for comments in generated code.</param>
/// <param name="Calls">Nodes in evaluation order; node i produces value i + 1.</param>
/// <param name="Result">The value forward returns: 0 is its parameter, i + 1 is node i's result.</param>
/// <param name="ReturnLine">1-based line of the return (or of the expression body).</param>
/// <param name="ReturnText">The return statement or expression, for comments.</param>
/// <param name="Conditions">Construction-time conditions of the if statements in forward.</param>
internal sealed record ForwardSpec(
    string FileName,
    EquatableArray<ForwardCall> Calls,
    int Result,
    int ReturnLine,
    string ReturnText,
    EquatableArray<ConditionSpec> Conditions = default);

/// <summary>What a node of forward does.</summary>
internal enum NodeKind
{
    /// <summary><c>member.forward(x)</c> or <c>member.call(x)</c>.</summary>
    Module,

    /// <summary><c>a + b</c>, <c>torch.add(a, b)</c>, <c>a.add(b)</c>, <c>a.add_(b)</c>, <c>a += b</c>.</summary>
    Add,

    /// <summary><c>torch.cat(new[] { a, b }, dim)</c>; Ints = [dim].</summary>
    Cat,

    /// <summary><c>torch.flatten(x, s, e)</c> / <c>x.flatten(s, e)</c>; Ints = [start, end].</summary>
    Flatten,

    /// <summary><c>x.view(...)</c> / <c>x.reshape(...)</c> with constant sizes; Ints = the shape.</summary>
    Reshape,

    /// <summary><c>functional.relu(x)</c>, <c>torch.relu(x)</c>, <c>x.relu()</c>.</summary>
    Relu,

    /// <summary><c>functional.max_pool2d(x, ...)</c>; Ints = kh, kw, sh, sw, ph, pw, dh, dw, ceil.</summary>
    MaxPool2d,

    /// <summary>A value chosen by a construction-time condition; Inputs = [then, else], Ints = [condition].</summary>
    Select,
}

/// <summary>
/// A condition that depends only on how the module was constructed, evaluated once at Prepare.
/// </summary>
/// <param name="Kind">"null" (member is null), "notnull", "field" (a bool field), "const".</param>
/// <param name="Member">The member or field tested.</param>
/// <param name="Constant">The value of a constant condition.</param>
/// <param name="Text">The condition as written.</param>
internal sealed record ConditionSpec(string Kind, string Member, bool Constant, string Text);

/// <summary>One node of forward.</summary>
/// <param name="Member">The module member called ("" for a functional op).</param>
/// <param name="Input">The first value read: 0 is forward's parameter, i + 1 is node i's result.</param>
/// <param name="Text">The statement (or, for a nested call, the call) as written, on one line.</param>
/// <param name="Line">1-based line of the call.</param>
/// <param name="Location">The call expression.</param>
/// <param name="Kind">What the node does.</param>
/// <param name="Inputs">Every value read, in order (Input is the first).</param>
/// <param name="Ints">The op's constant arguments.</param>
/// <param name="Condition">The construction-time condition guarding the node (index into Conditions), or -1.</param>
/// <param name="Negated">Whether the node runs when the condition is false.</param>
internal sealed record ForwardCall(
    string Member,
    int Input,
    string Text,
    int Line,
    LocationInfo? Location,
    NodeKind Kind = NodeKind.Module,
    EquatableArray<int> Inputs = default,
    EquatableArray<int> Ints = default,
    int Condition = -1,
    bool Negated = false)
{
    /// <summary>Every value the node reads.</summary>
    public EquatableArray<int> AllInputs => Inputs.Count > 0 ? Inputs : new[] { Input }.ToEquatableArray();
}

/// <summary>The parse step's output: the spec (null when the class cannot be modelled) and its diagnostics.</summary>
internal sealed record ParseResult(ModelSpec? Spec, EquatableArray<DiagnosticInfo> Diagnostics, BoundModelSpec? Bound = null, EquatableArray<DiagnosticInfo> BoundDiagnostics = default);
