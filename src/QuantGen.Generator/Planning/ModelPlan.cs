using QuantGen.Generator.Diagnostics;
using QuantGen.Generator.Parsing;

namespace QuantGen.Generator.Planning;

/// <summary>
/// The quantized model as the emitters need it: the fused ops of the quantized region in forward order,
/// its quantization points (observers), and names for everything the generated code declares.
/// </summary>
/// <param name="ClassName">The user's class ("M"), also the model name in messages and layer names.</param>
/// <param name="TypeParameters">"" or "&lt;T&gt;".</param>
/// <param name="Namespace">Null for the global namespace.</param>
/// <param name="ContainingTypes">Outermost first.</param>
/// <param name="Backend">QuantBackend member name for the default QConfig.</param>
/// <param name="HintName">Name of the generated file.</param>
/// <param name="Observers">Quantization points in forward order; the first is the region's input.</param>
/// <param name="Steps">What forward does, in order, including pass-through ops and stubs.</param>
/// <param name="Result">The value Observed.forward returns: 0 is its input, i is step output value i.</param>
/// <param name="HidesInherited">Whether the generated members need <c>new</c> to hide a base class's.</param>
/// <param name="ReturnComment">Where forward returns, for a comment; empty when a step's comment already shows it.</param>
internal sealed record ModelPlan(
    string ClassName,
    string TypeParameters,
    string? Namespace,
    EquatableArray<ContainingTypeSpec> ContainingTypes,
    string Backend,
    string HintName,
    EquatableArray<ObserverPlan> Observers,
    EquatableArray<StepPlan> Steps,
    int Result,
    bool HidesInherited,
    string ReturnComment);

/// <summary>An activation observer (PyTorch's <c>activation_post_process</c>).</summary>
/// <param name="Property">Property of Observed ("conv1_activation").</param>
/// <param name="Layer">Layer name given to the observer ("M.conv1").</param>
/// <param name="QParamsVariable">Local holding its qparams in Convert() ("q1").</param>
internal sealed record ObserverPlan(string Property, string Layer, string QParamsVariable);

/// <summary>What one step of the traced forward becomes.</summary>
internal enum StepKind
{
    /// <summary>The QuantStub call, or the model input when there are no stubs: observe, then quantize.</summary>
    Quantize,

    /// <summary>Conv2d (+ folded BatchNorm2d) (+ ReLU): FusedConv2d / QuantizedConv2d.</summary>
    Conv2d,

    /// <summary>Linear (+ ReLU): FusedLinear / QuantizedLinear.</summary>
    Linear,

    /// <summary>An unfused ReLU: the user's module in float, QuantizedReLU in int8; qparams pass through.</summary>
    ReLU,

    /// <summary>Flatten: the user's module in float, QuantizedFlatten in int8; qparams pass through.</summary>
    Flatten,

    /// <summary>Identity: nothing to run.</summary>
    Identity,

    /// <summary>The DeQuantStub call: nothing to run; the int8 model dequantizes its result.</summary>
    DeQuantize,
}

/// <summary>One step of forward.</summary>
/// <param name="Kind">What it becomes.</param>
/// <param name="Member">The user's module member ("conv1"; the QuantStub; "" for the model input).</param>
/// <param name="Layer">Layer name in messages ("conv1", "quant", "input").</param>
/// <param name="QuantizedProperty">Property of Quantized holding the int8 op, or null.</param>
/// <param name="FloatField">Field of Observed holding a fused float module ("_conv1"), or null.</param>
/// <param name="BatchNormMember">BatchNorm2d folded into a conv, or null.</param>
/// <param name="Relu">Whether a ReLU is fused in.</param>
/// <param name="Observer">Index into <see cref="ModelPlan.Observers"/> of this step's output observer, or -1.</param>
/// <param name="InputQParams">Observer index whose qparams this step's input carries (-1 outside the region).</param>
/// <param name="Input">Value read: 0 is forward's input, i is the output of the step that produced value i.</param>
/// <param name="Output">Value produced; equal to <paramref name="Input"/> for steps that only pass it on.</param>
/// <param name="FlattenStartDim">Flatten's start_dim when known at compile time.</param>
/// <param name="FlattenEndDim">Flatten's end_dim when known at compile time.</param>
/// <param name="Comments">"M.cs(15): x = conv1.forward(x)" for each user statement the step stands for.</param>
/// <param name="FusedMembers">Members fused into this step after its head ("bn1", "relu1"); they print as Identity().</param>
internal sealed record StepPlan(
    StepKind Kind,
    string Member,
    string Layer,
    string? QuantizedProperty,
    string? FloatField,
    string? BatchNormMember,
    bool Relu,
    int Observer,
    int InputQParams,
    int Input,
    int Output,
    int? FlattenStartDim,
    int? FlattenEndDim,
    EquatableArray<string> Comments,
    EquatableArray<string> FusedMembers = default);

/// <summary>The plan step's output: a plan when the model has no errors, and every diagnostic so far.</summary>
internal sealed record PlanResult(ModelPlan? Plan, EquatableArray<DiagnosticInfo> Diagnostics);
