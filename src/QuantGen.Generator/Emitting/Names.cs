using Microsoft.CodeAnalysis.CSharp;

namespace QuantGen.Generator.Emitting;

/// <summary>Fully qualified names of what the generated code uses, and identifier escaping.</summary>
internal static class Names
{
    public const string Tensor = "global::TorchSharp.torch.Tensor";
    public const string QConfig = "global::QuantGen.QConfig";
    public const string QConfigMapping = "global::QuantGen.QConfigMapping";
    public const string ObserverSpec = "global::QuantGen.Observers.ObserverSpec";
    public const string QuantBackend = "global::QuantGen.QuantBackend";
    public const string QParams = "global::QuantGen.QParams";
    public const string QTensor = "global::QuantGen.QTensor";
    public const string Observer = "global::QuantGen.Observers.Observer";
    public const string ObserveExtensions = "global::QuantGen.Observers.TensorObserverExtensions";
    public const string FusedConv2d = "global::QuantGen.Modules.FusedConv2d";
    public const string FusedLinear = "global::QuantGen.Modules.FusedLinear";
    public const string QuantizeInput = "global::QuantGen.Modules.QuantizeInput";
    public const string QuantizedConv2d = "global::QuantGen.Modules.QuantizedConv2d";
    public const string QuantizedLinear = "global::QuantGen.Modules.QuantizedLinear";
    public const string QuantizedReLU = "global::QuantGen.Modules.QuantizedReLU";
    public const string QuantizedFlatten = "global::QuantGen.Modules.QuantizedFlatten";
    public const string FusedConvTranspose2d = "global::QuantGen.Modules.FusedConvTranspose2d";
    public const string FusedBatchNorm2d = "global::QuantGen.Modules.FusedBatchNorm2d";
    public const string QuantizedConvTranspose2d = "global::QuantGen.Modules.QuantizedConvTranspose2d";
    public const string QuantizedBatchNorm2d = "global::QuantGen.Modules.QuantizedBatchNorm2d";
    public const string QuantizedAdd = "global::QuantGen.Modules.QuantizedAdd";
    public const string QuantizedCat = "global::QuantGen.Modules.QuantizedCat";
    public const string QuantizedReshape = "global::QuantGen.Modules.QuantizedReshape";
    public const string QuantizedMaxPool2d = "global::QuantGen.Modules.QuantizedMaxPool2d";
    public const string QuantizedAvgPool2d = "global::QuantGen.Modules.QuantizedAvgPool2d";
    public const string QuantizedAdaptiveAvgPool2d = "global::QuantGen.Modules.QuantizedAdaptiveAvgPool2d";
    public const string QuantizedUpsampleNearest2d = "global::QuantGen.Modules.QuantizedUpsampleNearest2d";
    public const string Pool2dOptions = "global::QuantGen.Modules.Pool2dOptions";
    public const string ModuleLookup = "global::QuantGen.Modules.ModuleLookup";
    public const string QuantizedTap = "global::QuantGen.Reports.IQuantizedTap";
    public const string ReferenceTap = "global::QuantGen.Reports.IReferenceTap";
    public const string FloatTap = "global::QuantGen.Reports.IFloatTap";
    public const string FloatFallback = "global::QuantGen.Modules.FloatFallback";
    public const string ActivationBuffers = "global::QuantGen.Buffers.ActivationBuffers";
    public const string ActivationBufferPool = "global::QuantGen.Buffers.ActivationBufferPool";
    public const string ReferenceFloatLayer = "global::QuantGen.Modules.ReferenceFloatLayer";
    public const string QuantizedModel = "global::QuantGen.IQuantizedModel";
    public const string ObservedModel = "global::QuantGen.IObservedModel";
    public const string CalibrationProgress = "global::QuantGen.Calibration.CalibrationProgress";
    public const string QuantizedLayer = "global::QuantGen.IQuantizedLayer";
    public const string Graphs = "global::QuantGen.Graphs";
    public const string QGenFile = "global::QuantGen.Serialization.QGenFile";
    public const string ReferenceLayer = "global::QuantGen.Modules.ReferenceLayer";
    public const string FakeQuant = "global::QuantGen.Reference.FakeQuant";
    public const string Functional = "global::TorchSharp.torch.nn.functional";
    public const string Torch = "global::TorchSharp.torch";
    public const string TensorInterop = "global::QuantGen.Modules.TensorInterop";
    public const string ArgumentNullException = "global::System.ArgumentNullException";

    /// <summary>The generator's name and version for [GeneratedCode].</summary>
    public static readonly string GeneratedCodeAttribute =
        "[global::System.CodeDom.Compiler.GeneratedCode(\"QuantGen.Generator\", \""
        + (typeof(Names).Assembly.GetName().Version?.ToString() ?? "0.0.0.0")
        + "\")]";

    /// <summary>A user's member name as an identifier: <c>@class</c> for a member named "class".</summary>
    public static string Identifier(string name) =>
        SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None ? "@" + name : name;

    /// <summary>A C# string literal (member names never need escapes, but this does not rely on it).</summary>
    public static string Literal(string text) => SymbolDisplay.FormatLiteral(text, quote: true);
}
