using System;
using System.Linq;
using QuantGen.Observers;
using QuantGen.Tests.Generator.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Generator;

/// <summary>
/// [QConfig] attributes become the generated <c>DefaultQConfigMapping()</c>, and Prepare resolves each op's
/// qconfig from the mapping it is given (QConfigAttributeNet is compiled by the real build).
/// </summary>
public class QConfigMappingGenerationTests
{
    [Fact]
    public void DefaultQConfigMappingAppliesEachAttributeOnTheBackendPreset()
    {
        QConfigMapping mapping = QConfigAttributeNet.DefaultQConfigMapping();

        // Global: qnnpack's preset (Histogram quint8 affine, MinMax per-tensor symmetric weights) with the two
        // activation properties the attribute sets, written out here by hand.
        var global = new QConfig(
            new ObserverSpec(ObserverKind.Histogram, QuantDType.QInt8, QScheme.PerTensorSymmetric),
            new ObserverSpec(ObserverKind.MinMax, QuantDType.QInt8, QScheme.PerTensorSymmetric),
            QuantBackend.Qnnpack);
        Assert.Equal(global, mapping.Global);

        // By type: only the weight properties given; the activation stays the preset's (quint8 affine).
        var transpose = new QConfig(
            new ObserverSpec(ObserverKind.Histogram, QuantDType.QUInt8, QScheme.PerTensorAffine),
            new ObserverSpec(ObserverKind.PerChannelMinMax, QuantDType.QInt8, QScheme.PerChannelSymmetric, ChannelAxis: 1),
            QuantBackend.Qnnpack);
        Assert.Equal(transpose, mapping.ModuleTypes.Single(e => e.Key == "ConvTranspose2d").Value);

        // By path: activation observer and reduce_range overridden, weight dtype given (same as the preset's).
        var head = new QConfig(
            new ObserverSpec(ObserverKind.MinMax, QuantDType.QUInt8, QScheme.PerTensorAffine, ReduceRange: true),
            new ObserverSpec(ObserverKind.MinMax, QuantDType.QInt8, QScheme.PerTensorSymmetric),
            QuantBackend.Qnnpack);
        Assert.Equal("head", Assert.Single(mapping.ModuleNames).Key);
        Assert.Equal(head, mapping.ModuleNames[0].Value);
    }

    [Fact]
    public void OnlyTheGivenPropertiesAreOverriddenAndTypesAreKeyedByTheirSimpleName()
    {
        var source = new SourceFile("Net.cs", """
            using QuantGen;
            using QuantGen.Observers;
            using TorchSharp;
            using static TorchSharp.torch;
            using static TorchSharp.torch.nn;

            [Quantize]
            [QConfig(typeof(TorchSharp.Modules.ConvTranspose2d), WeightAxis = 1)]
            [QConfig("conv", ActivationObserver = ObserverKind.MovingAverageMinMax)]
            [QConfig]
            public partial class Net : Module<Tensor, Tensor>
            {
                private readonly TorchSharp.Modules.Conv2d conv = Conv2d(1, 1, 1);
                public Net() : base(nameof(Net)) => RegisterComponents();
                public override Tensor forward(Tensor x) => conv.forward(x);
            }
            """);
        GeneratorRun run = GeneratorHarness.Run(source);
        Assert.True(run.OutputProblems().IsEmpty, GeneratorHarness.Describe(run.OutputProblems()));
        string text = run.Sources.Values.Single();

        Assert.Contains("var mapping = global::QuantGen.QConfigMapping.Default(global::QuantGen.QuantBackend.X86);", text);
        Assert.Contains("global::QuantGen.QConfig preset = global::QuantGen.QConfig.For(global::QuantGen.QuantBackend.X86);", text);
        Assert.Contains("mapping.SetModuleType(\"ConvTranspose2d\", preset with { Weight = preset.Weight with { ChannelAxis = 1 } });", text);
        Assert.Contains("mapping.SetModuleName(\"conv\", preset with { Activation = preset.Activation with { Kind = global::QuantGen.Observers.ObserverKind.MovingAverageMinMax } });", text);
        Assert.Contains("mapping.SetGlobal(preset);", text);

        // Source order is kept: the type entry, then the path, then the global one.
        Assert.True(text.IndexOf("mapping.SetModuleType(", StringComparison.Ordinal) < text.IndexOf("mapping.SetModuleName(", StringComparison.Ordinal));
        Assert.True(text.IndexOf("mapping.SetModuleName(", StringComparison.Ordinal) < text.IndexOf("mapping.SetGlobal(", StringComparison.Ordinal));
    }

    [Fact]
    public void PrepareGivesEachOpTheQConfigItsPathAndTypeResolveTo()
    {
        torch.manual_seed(3);
        using var model = new QConfigAttributeNet();
        model.eval();
        using QConfigAttributeNet.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            using Tensor batch = torch.randn(1, 2, 4, 4);
            observed.forward(batch).Dispose();
        }

        Assert.Equal(QuantDType.QInt8, observed.input_activation.Spec.DType);
        Assert.Equal(QuantDType.QInt8, observed.stem_activation.Spec.DType);
        Assert.Equal(QuantDType.QUInt8, observed.up_activation.Spec.DType);
        Assert.Equal(ObserverKind.MinMax, observed.head_activation.Spec.Kind);

        QConfigAttributeNet.Quantized int8 = observed.Convert();
        Assert.Equal(QuantDType.QInt8, int8.input.Forward(new float[32], [1, 2, 4, 4]).DType);
        QParams upWeight = int8.up.Weight.QParams;
        Assert.True(upWeight.IsPerChannel);
        Assert.Equal(1, upWeight.Axis);
        Assert.Equal(3, upWeight.Scales.Length); // ConvTranspose2d(4, 3): weight [4, 3, 2, 2], 3 output channels on axis 1
        Assert.False(int8.stem.Weight.QParams.IsPerChannel);
        Assert.False(int8.head.Weight.QParams.IsPerChannel);
    }

    [Fact]
    public void AMappingNamingAnUnknownMemberFailsAtPrepareNamingIt()
    {
        using var model = new QConfigAttributeNet();
        model.eval();
        QConfigMapping mapping = QConfigAttributeNet.DefaultQConfigMapping().SetModuleName("heads", QConfig.Qnnpack);

        ArgumentException error = Assert.Throws<ArgumentException>(() => model.Prepare(mapping));
        Assert.Contains("QConfigAttributeNet", error.Message);
        Assert.Contains("'heads'", error.Message);
        Assert.Contains("Did you mean 'head'?", error.Message);
    }

    [Fact]
    public void APerChannelWeightSpecOnTheWrongAxisFailsAtPrepareNamingTheLayer()
    {
        using var model = new QConfigAttributeNet();
        model.eval();
        // A global per-channel axis-0 qconfig reaches the ConvTranspose2d, whose output channels are on axis 1.
        ArgumentException error = Assert.Throws<ArgumentException>(() => model.Prepare(QConfig.X86));
        Assert.Contains("QConfigAttributeNet.up", error.Message);
    }

    [Fact]
    public void ANullQConfigForTheInputQuantizerIsRefusedAtPrepareNamingIt()
    {
        // The model's entry quantizer cannot stay float (there would be no int8 region left to enter).
        using var model = new QConfigAttributeNet();
        model.eval();
        QConfigMapping mapping = QConfigAttributeNet.DefaultQConfigMapping().SetGlobal(null);

        NotSupportedException error = Assert.Throws<NotSupportedException>(() => model.Prepare(mapping));
        Assert.StartsWith("QConfigAttributeNet.", error.Message);
    }
}
