using QuantGen.Generator.Diagnostics;
using QuantGen.Generator.Parsing;

namespace QuantGen.Generator.Planning;

/// <summary>
/// The quantized model as the emitters need it: the fused ops of the whole graph (sub-modules inlined) in
/// forward order, its quantization points (observers), construction-time conditions, and names for
/// everything the generated code declares.
/// </summary>
/// <param name="ClassName">The user's class ("M"), also the model name in messages and layer names.</param>
/// <param name="TypeParameters">"" or "&lt;T&gt;".</param>
/// <param name="Namespace">Null for the global namespace.</param>
/// <param name="ContainingTypes">Outermost first.</param>
/// <param name="Backend">QuantBackend member name for the default QConfig.</param>
/// <param name="HintName">Name of the generated file.</param>
/// <param name="Observers">Quantization points in forward order (shared ones once).</param>
/// <param name="Steps">What forward does, in order, including pass-through ops and stubs.</param>
/// <param name="Result">The value forward returns: 0 is its input, i is the value step outputs carry.</param>
/// <param name="HidesInherited">Whether the generated members need <c>new</c> to hide a base class's.</param>
/// <param name="ReturnComment">Where forward returns, for a comment; empty when a step's comment already shows it.</param>
/// <param name="Conditions">Construction-time conditions, evaluated once at Prepare.</param>
/// <param name="Modules">User modules Observed keeps to run in float (ReLU, pools, ...).</param>
/// <param name="NeedsModuleIndex">Whether Prepare builds a ModuleLookup index (inlined sub-modules).</param>
/// <param name="QConfigs">The class's [QConfig] attributes, for DefaultQConfigMapping().</param>
/// <param name="FunctionNames">PyTorch names of the functional ops forward uses ("add", "cat"), known to QConfigMapping.Validate.</param>
/// <param name="ConditionMembers">Bool fields the class's own forward branches on, exposed for parents that inline it.</param>
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
    string ReturnComment,
    EquatableArray<ConditionPlan> Conditions = default,
    EquatableArray<ModuleFieldPlan> Modules = default,
    bool NeedsModuleIndex = false,
    EquatableArray<QConfigSpec> QConfigs = default,
    EquatableArray<string> FunctionNames = default,
    EquatableArray<string> ConditionMembers = default);

/// <summary>An activation observer (PyTorch's <c>activation_post_process</c>).</summary>
/// <param name="Property">Property of Observed ("conv1_activation").</param>
/// <param name="Layer">Layer name given to the observer ("M.conv1").</param>
/// <param name="Path">The layer without the model's name ("conv1", "quant", "input"): how a QConfigMapping names it.</param>
/// <param name="QParamsVariable">Local holding its qparams in Convert() ("q1").</param>
/// <param name="Guard">"" or the condition under which its op runs ("this._c0"); unguarded observers must see data.</param>
/// <param name="Note">Why it is shared, for a comment ("shared by cat and its inputs, as FX does"), or "".</param>
internal sealed record ObserverPlan(string Property, string Layer, string Path, string QParamsVariable, string Guard = "", string Note = "");

/// <summary>A construction-time condition: a bool field of Observed and Quantized set once at Prepare.</summary>
/// <param name="Field">"_c0".</param>
/// <param name="Expression">C# evaluated in Observed's constructor (over <c>model</c> and <c>modules</c>).</param>
/// <param name="Comment">Where it comes from: "Block.cs(21): downsample is not null [layer1.0]".</param>
internal sealed record ConditionPlan(string Field, string Expression, string Comment);

/// <summary>A user module Observed holds to run in float.</summary>
/// <param name="Field">Field of Observed ("_relu").</param>
/// <param name="Type">Its C# type.</param>
/// <param name="Access">How the constructor reaches it ("model.relu", a ModuleLookup.Get call).</param>
internal sealed record ModuleFieldPlan(string Field, string Type, string Access);

/// <summary>What one step of the traced forward becomes.</summary>
internal enum StepKind
{
    /// <summary>The QuantStub call, or the model input when there are no stubs: observe, then quantize.</summary>
    Quantize,

    /// <summary>Conv2d (+ folded BatchNorm2d) (+ ReLU): FusedConv2d / QuantizedConv2d.</summary>
    Conv2d,

    /// <summary>Linear (+ ReLU): FusedLinear / QuantizedLinear.</summary>
    Linear,

    /// <summary>An unfused ReLU member: the user's module in float, QuantizedReLU in int8; qparams pass through.</summary>
    ReLU,

    /// <summary>Flatten member: the user's module in float, QuantizedFlatten in int8; qparams pass through.</summary>
    Flatten,

    /// <summary>Identity (and Dropout, which is identity in eval): nothing to run.</summary>
    Identity,

    /// <summary>The DeQuantStub call: nothing to run; the int8 model dequantizes its result.</summary>
    DeQuantize,

    /// <summary>ConvTranspose2d (+ BatchNorm2d) (+ ReLU): FusedConvTranspose2d / QuantizedConvTranspose2d.</summary>
    ConvTranspose2d,

    /// <summary>A BatchNorm2d not after a conv (+ ReLU): FusedBatchNorm2d / QuantizedBatchNorm2d.</summary>
    BatchNorm2d,

    /// <summary>functional.relu / x.relu(): QuantizedReLU; qparams pass through.</summary>
    FunctionalRelu,

    /// <summary>torch.flatten / x.flatten: QuantizedFlatten; qparams pass through.</summary>
    FunctionalFlatten,

    /// <summary>x.view / x.reshape with constant sizes: QuantizedReshape; qparams pass through.</summary>
    Reshape,

    /// <summary>a + b (+ ReLU): QuantizedAdd with its own output observer.</summary>
    Add,

    /// <summary>torch.cat: QuantizedCat; one observer shared by the output and every input, as FX does.</summary>
    Cat,

    /// <summary>MaxPool2d member: QuantizedMaxPool2d; qparams pass through.</summary>
    MaxPool2d,

    /// <summary>functional.max_pool2d with constant arguments: QuantizedMaxPool2d.</summary>
    FunctionalMaxPool2d,

    /// <summary>AvgPool2d member: QuantizedAvgPool2d; qparams pass through.</summary>
    AvgPool2d,

    /// <summary>AdaptiveAvgPool2d member: QuantizedAdaptiveAvgPool2d; qparams pass through.</summary>
    AdaptiveAvgPool2d,

    /// <summary>Upsample member (nearest): QuantizedUpsampleNearest2d; qparams pass through.</summary>
    Upsample,

    /// <summary>A value chosen by a construction-time condition: Inputs[0] when it holds, else Inputs[1].</summary>
    Select,

    /// <summary>
    /// A [NoQuantize] member (PyTorch's qconfig = None): the user's float module as-is; int8 dequantizes before it
    /// and quantizes its result with its own output observer's qparams.
    /// </summary>
    FloatIsland,
}

/// <summary>One step of forward.</summary>
/// <param name="Kind">What it becomes.</param>
/// <param name="Member">The user's module path ("conv1", "layer1.0.conv1"; "" for the model input; the FX name of a functional op).</param>
/// <param name="Layer">Layer name in messages and taps ("conv1", "layer1.0.add", "input").</param>
/// <param name="QuantizedProperty">Property of Quantized holding the int8 op, or null.</param>
/// <param name="FloatField">Field of Observed holding a fused float module ("_conv1"), or null.</param>
/// <param name="BatchNormMember">Path of the BatchNorm folded into a conv or linear ("bn1"), or null.</param>
/// <param name="Relu">Whether a ReLU is fused in.</param>
/// <param name="Observer">Index into <see cref="ModelPlan.Observers"/> of this step's output observer, or -1.</param>
/// <param name="InputQParams">Observer index whose qparams this step's input carries (-1 outside the region).</param>
/// <param name="Input">First value read.</param>
/// <param name="Output">Value produced; equal to <paramref name="Input"/> for steps that only pass it on.</param>
/// <param name="FlattenStartDim">Flatten's start_dim when known at compile time.</param>
/// <param name="FlattenEndDim">Flatten's end_dim when known at compile time.</param>
/// <param name="Comments">"M.cs(15): x = conv1.forward(x)" for each user statement the step stands for.</param>
/// <param name="FusedMembers">Members fused into this step after its head ("bn1", "relu1"); they print as Identity().</param>
/// <param name="Inputs">Every value read (add and cat read several).</param>
/// <param name="Ints">Constant arguments (cat's dim, a reshape's sizes, max_pool2d's hyper-parameters).</param>
/// <param name="Guard">"" or the construction-time condition under which the step runs ("this._c0").</param>
/// <param name="ModuleField">Field of Observed holding the user's float module for this step, or null.</param>
/// <param name="FloatAccess">C# reaching the step's user module in Observed's constructor ("model.conv1").</param>
/// <param name="InputQParamsExpression">Convert()'s expression for the input qparams when it is not one observer's (a select).</param>
/// <param name="BatchNormAccess">C# reaching the folded BatchNorm in Observed's constructor ("model.bn1").</param>
/// <param name="QConfigLookup">C# resolving the step's qconfig from <c>mapping</c> in Observed's constructor.</param>
/// <param name="IslandQuantizer">A float island's property of Quantized that quantizes its result ("conv2_quantize"), else "".</param>
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
    EquatableArray<string> FusedMembers = default,
    EquatableArray<int> Inputs = default,
    EquatableArray<int> Ints = default,
    string Guard = "",
    string? ModuleField = null,
    string FloatAccess = "",
    string InputQParamsExpression = "",
    string BatchNormAccess = "",
    string QConfigLookup = "",
    string IslandQuantizer = "");

/// <summary>The plan step's output: a plan when the model has no errors, and every diagnostic so far.</summary>
/// <param name="Plan">The generated form's plan, or null.</param>
/// <param name="Diagnostics">Every diagnostic so far.</param>
/// <param name="Bound">The bound form's spec when the class gets the bound form, or null.</param>
/// <param name="Qat">
/// The captured forward the QAT form (<c>PrepareQat</c>) binds, for a class of either form whose forward could be captured;
/// for a generated-form class its capture is emitted with it (a bound-form class emits its own).
/// </param>
internal sealed record PlanResult(ModelPlan? Plan, EquatableArray<DiagnosticInfo> Diagnostics, BoundModelSpec? Bound = null, BoundModelSpec? Qat = null);
