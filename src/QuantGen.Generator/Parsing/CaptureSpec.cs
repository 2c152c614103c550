using System.Linq;
using QuantGen.Generator.Diagnostics;

namespace QuantGen.Generator.Parsing;

/// <summary>One node of a captured forward (QuantGen.Binding.CapturedNode at run time).</summary>
/// <param name="Op">The CapturedOp member name ("Call", "Loop", "Add", ...).</param>
/// <param name="Inputs">Values read: 0 is forward's parameter, i + 1 is node i's result.</param>
/// <param name="Member">The member called or looped over ("" otherwise).</param>
/// <param name="Ints">Constant arguments.</param>
/// <param name="Float">For "Float": the C# expression over <c>v[0]</c>, <c>v[1]</c>, ... (the inputs in order).</param>
/// <param name="Condition">Index of the guarding construction-time condition, or -1.</param>
/// <param name="Negated">The node runs when the condition is false.</param>
/// <param name="Line">1-based source line.</param>
/// <param name="Text">The statement or expression as written, on one line.</param>
/// <param name="Floats">Constant float arguments as round-trippable C# literals ("6f").</param>
internal sealed record CapturedNodeSpec(
    string Op,
    EquatableArray<int> Inputs,
    string Member,
    EquatableArray<int> Ints,
    string? Float,
    int Condition,
    bool Negated,
    int Line,
    string Text,
    EquatableArray<string> Floats = default,
    EquatableArray<string> Scalars = default);

/// <summary>A construction-time condition (QuantGen.Binding.CapturedCondition).</summary>
/// <param name="Kind">The CapturedConditionKind member name.</param>
/// <param name="Member">The member it reads.</param>
/// <param name="Constant">A constant condition's value.</param>
/// <param name="Text">As written.</param>
internal sealed record CapturedConditionSpec(string Kind, string Member, bool Constant, string Text);

/// <summary>
/// A module class's forward captured as a graph of calls, to be bound to the running instance at Prepare.
/// Held as equatable values only.
/// </summary>
/// <param name="TypeReference">The class as C# can name it from its namespace ("global::Ns.Outer.Block").</param>
/// <param name="Namespace">The class's namespace, or null.</param>
/// <param name="RegistrationName">The generated static class that registers the capture.</param>
/// <param name="HintName">The generated file's name.</param>
/// <param name="Usings">The using directives of the class's file (float expressions are written in their scope).</param>
/// <param name="FileName">The file of forward, for source references.</param>
/// <param name="Nodes">The nodes; null when the forward could not be captured.</param>
/// <param name="Result">The value returned.</param>
/// <param name="Conditions">Construction-time conditions.</param>
/// <param name="NoQuantize">Members marked [NoQuantize].</param>
/// <param name="NotCaptured">Why the forward could not be captured (the class then runs in float as a whole), or null.</param>
/// <param name="Hosts">
/// For a private or protected nested class: the partial types around it, outermost first, inside which the
/// registration is written (only there can generated code name the class); empty for a class its namespace can name.
/// </param>
internal sealed record CaptureSpec(
    string TypeReference,
    string? Namespace,
    string RegistrationName,
    string HintName,
    EquatableArray<string> Usings,
    string FileName,
    EquatableArray<CapturedNodeSpec> Nodes,
    int Result,
    EquatableArray<CapturedConditionSpec> Conditions,
    EquatableArray<string> NoQuantize,
    string? NotCaptured,
    EquatableArray<ContainingTypeSpec> Hosts = default)
{
    /// <summary>The registration class as C# names it from anywhere in the assembly.</summary>
    public string RegistrationReference =>
        "global::" + string.Join(".", new[] { Namespace }.Concat(Hosts.Select(h => h.Name)).Append(RegistrationName).Where(p => !string.IsNullOrEmpty(p)));
}

/// <summary>The capture of one class and what it found wrong (reported only for [Quantize] classes).</summary>
internal sealed record CaptureResult(CaptureSpec? Spec, EquatableArray<DiagnosticInfo> Diagnostics);

/// <summary>What the bound form of a [Quantize] class needs: its declaration and its capture.</summary>
/// <param name="Name">Class name.</param>
/// <param name="Namespace">Namespace or null.</param>
/// <param name="ContainingTypes">Types around it, outermost first.</param>
/// <param name="Backend">QuantBackend member name.</param>
/// <param name="AutoFuse">Apply automatic fusion.</param>
/// <param name="Capture">The captured forward (its registration class is referenced).</param>
/// <param name="HintName">The generated file's name.</param>
/// <param name="HidesInherited">The class derives from another [Quantize] class, so its QAT members hide the base's (<c>new</c>).</param>
internal sealed record BoundModelSpec(
    string Name,
    string? Namespace,
    EquatableArray<ContainingTypeSpec> ContainingTypes,
    string Backend,
    bool AutoFuse,
    CaptureSpec Capture,
    string HintName,
    bool HidesInherited = false);
