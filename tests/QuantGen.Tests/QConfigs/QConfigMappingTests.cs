using System;
using System.Linq;
using QuantGen.Observers;

namespace QuantGen.Tests.QConfigs;

/// <summary>
/// PyTorch's QConfigMapping priorities (torch/ao/quantization/fx/qconfig_mapping_utils.py,
/// <c>_maybe_adjust_qconfig_for_module_type_or_name</c>): type else global, then the module's path or the
/// nearest parent path set, which wins even over the type; null means float.
/// </summary>
public class QConfigMappingTests
{
    // Distinct qconfigs, told apart by reference (records compare by value, so each differs in a field).
    private static readonly QConfig GlobalQ = QConfig.X86;
    private static readonly QConfig TypeQ = QConfig.X86 with { Activation = ObserverSpec.MinMax() };
    private static readonly QConfig NameQ = QConfig.X86 with { Activation = ObserverSpec.MovingAverageMinMax() };
    private static readonly QConfig OtherQ = QConfig.Qnnpack;

    [Fact]
    public void GlobalAppliesWhenNothingElseMatches()
    {
        var mapping = new QConfigMapping(GlobalQ).SetModuleType("Linear", TypeQ).SetModuleName("fc", NameQ);
        Assert.Same(GlobalQ, mapping.Resolve("conv1", "Conv2d"));
        Assert.Same(GlobalQ, mapping.Resolve("layer1.0.conv1", "Conv2d"));
    }

    [Fact]
    public void ModuleTypeBeatsGlobal()
    {
        var mapping = new QConfigMapping(GlobalQ).SetModuleType("ConvTranspose2d", TypeQ);
        Assert.Same(TypeQ, mapping.Resolve("up.1", "ConvTranspose2d"));
        Assert.Same(GlobalQ, mapping.Resolve("up.0", "Conv2d"));
    }

    [Fact]
    public void MemberPathBeatsModuleType()
    {
        var mapping = new QConfigMapping(GlobalQ).SetModuleType("Conv2d", TypeQ).SetModuleName("conv2", NameQ);
        Assert.Same(NameQ, mapping.Resolve("conv2", "Conv2d"));
        Assert.Same(TypeQ, mapping.Resolve("conv1", "Conv2d"));
    }

    [Fact]
    public void ParentPathCoversTheModulesBelowIt()
    {
        var mapping = new QConfigMapping(GlobalQ).SetModuleName("layer1", NameQ);
        Assert.Same(NameQ, mapping.Resolve("layer1.0.conv1", "Conv2d"));
        Assert.Same(NameQ, mapping.Resolve("layer1", "Sequential"));

        // Parents are whole path segments: "layer1" is not a parent of "layer10.conv" or "layer1x".
        Assert.Same(GlobalQ, mapping.Resolve("layer10.conv", "Conv2d"));
        Assert.Same(GlobalQ, mapping.Resolve("layer1x", "Conv2d"));
    }

    [Fact]
    public void ParentPathBeatsTheChildsModuleType()
    {
        // _get_module_name_qconfig falls back to the type's qconfig only when no path up to the root is set.
        var mapping = new QConfigMapping(GlobalQ).SetModuleType("Conv2d", TypeQ).SetModuleName("layer1", NameQ);
        Assert.Same(NameQ, mapping.Resolve("layer1.0.conv1", "Conv2d"));
        Assert.Same(TypeQ, mapping.Resolve("layer2.0.conv1", "Conv2d"));
    }

    [Fact]
    public void TheNearestSetPathWins()
    {
        var mapping = new QConfigMapping(GlobalQ)
            .SetModuleName("layer1.0", OtherQ)
            .SetModuleName("layer1", NameQ);
        Assert.Same(OtherQ, mapping.Resolve("layer1.0.conv1", "Conv2d"));
        Assert.Same(NameQ, mapping.Resolve("layer1.1.conv1", "Conv2d"));
    }

    [Fact]
    public void NullKeepsAModuleOrAWholeSubtreeInFloat()
    {
        var mapping = new QConfigMapping(GlobalQ)
            .SetModuleName("head", null)
            .SetModuleName("head.hm", NameQ)
            .SetModuleType("ConvTranspose2d", null);
        Assert.Null(mapping.Resolve("head.wh.0", "Conv2d"));
        Assert.Null(mapping.Resolve("head", "Head"));
        Assert.Same(NameQ, mapping.Resolve("head.hm.0", "Conv2d"));
        Assert.Null(mapping.Resolve("up.1", "ConvTranspose2d"));
    }

    [Fact]
    public void NullGlobalQuantizesOnlyWhatIsNamed()
    {
        var mapping = new QConfigMapping().SetModuleType("Linear", TypeQ).SetModuleName("conv1", NameQ);
        Assert.Null(mapping.Global);
        Assert.Null(mapping.Resolve("conv2", "Conv2d"));
        Assert.Same(TypeQ, mapping.Resolve("fc", "Linear"));
        Assert.Same(NameQ, mapping.Resolve("conv1", "Conv2d"));
    }

    [Fact]
    public void ModuleTypesMatchBySimpleNameWhateverTheyWereGivenAs()
    {
        var byType = new QConfigMapping(GlobalQ).SetModuleType(typeof(TorchSharp.Modules.ConvTranspose2d), TypeQ);
        var byFullName = new QConfigMapping(GlobalQ).SetModuleType("TorchSharp.Modules.ConvTranspose2d", TypeQ);
        foreach (QConfigMapping mapping in new[] { byType, byFullName })
        {
            Assert.Same(TypeQ, mapping.Resolve("up", "ConvTranspose2d"));
            Assert.Same(TypeQ, mapping.Resolve("up", "TorchSharp.Modules.ConvTranspose2d"));
            Assert.Same(GlobalQ, mapping.Resolve("up", "Conv2d"));
            Assert.Equal("ConvTranspose2d", Assert.Single(mapping.ModuleTypes).Key);
        }
    }

    [Fact]
    public void SettingAKeyAgainReplacesItsQConfigInPlace()
    {
        var mapping = new QConfigMapping(GlobalQ)
            .SetModuleName("a", NameQ)
            .SetModuleName("b", NameQ)
            .SetModuleName("a", OtherQ);
        Assert.Equal(["a", "b"], mapping.ModuleNames.Select(entry => entry.Key));
        Assert.Same(OtherQ, mapping.Resolve("a", "Conv2d"));
    }

    [Fact]
    public void FunctionalOpsUseTheFunctionThenTheScopeTypeThenTheScopePath()
    {
        // PyTorch's call_function: function qconfig (else global), overridden by the enclosing module's type,
        // overridden by the enclosing module's path (or a parent's).
        var mapping = new QConfigMapping(GlobalQ).SetModuleType("add", TypeQ);
        Assert.Same(TypeQ, mapping.ResolveFunction("layer1.0", "add", "BasicBlock"));
        Assert.Same(GlobalQ, mapping.ResolveFunction("layer1.0", "cat", "BasicBlock"));

        mapping.SetModuleType("BasicBlock", OtherQ);
        Assert.Same(OtherQ, mapping.ResolveFunction("layer1.0", "add", "BasicBlock"));

        mapping.SetModuleName("layer1", NameQ);
        Assert.Same(NameQ, mapping.ResolveFunction("layer1.0", "add", "BasicBlock"));
        Assert.Same(OtherQ, mapping.ResolveFunction("layer2.0", "add", "BasicBlock"));

        // At the model's top level the scope path is "" and never matches a member path.
        Assert.Same(TypeQ, mapping.ResolveFunction("", "add", "ResNet"));
    }

    [Fact]
    public void DefaultX86MappingUsesPerTensorWeightsForConvTransposeOnly()
    {
        QConfigMapping mapping = QConfigMapping.Default(QuantBackend.X86);
        Assert.Same(QConfig.X86, mapping.Global);
        Assert.Same(QConfig.X86, mapping.Resolve("conv1", "Conv2d"));
        Assert.Same(QConfig.X86, mapping.Resolve("fc", "Linear"));

        // get_default_qconfig_mapping('x86'): QConfig(activation=qconfig.activation, weight=default_weight_observer)
        // for ConvTranspose, default_weight_observer = MinMaxObserver(dtype=qint8, qscheme=per_tensor_symmetric).
        QConfig expectedTranspose = new(
            ObserverSpec.Histogram(reduceRange: true),
            new ObserverSpec(ObserverKind.MinMax, QuantDType.QInt8, QScheme.PerTensorSymmetric),
            QuantBackend.X86);
        Assert.Equal(expectedTranspose, mapping.Resolve("up.1", "ConvTranspose2d"));
        Assert.Equal(expectedTranspose, mapping.ResolveFunction("", "conv_transpose2d", "M"));
    }

    [Fact]
    public void DefaultQnnpackMappingIsTheQnnpackQConfigEverywhere()
    {
        QConfigMapping mapping = QConfigMapping.Default(QuantBackend.Qnnpack);
        Assert.Same(QConfig.Qnnpack, mapping.Global);
        Assert.Equal(QConfig.Qnnpack, mapping.Resolve("up.1", "ConvTranspose2d"));
        Assert.Equal(QConfig.Qnnpack, mapping.Resolve("conv1", "Conv2d"));
    }

    [Fact]
    public void Seed002MappingResolvesPerChannelAxis1ForConvTranspose()
    {
        // The seed's prepare_fx config: symmetric qint8 histogram activations, per-channel weights (axis 0),
        // and for nn.ConvTranspose2d per-channel weights on ch_axis=1.
        var activation = ObserverSpec.Histogram(QuantDType.QInt8, QScheme.PerTensorSymmetric);
        var global = new QConfig(activation, ObserverSpec.PerChannelMinMax());
        var transpose = new QConfig(activation, ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric, channelAxis: 1));
        var mapping = new QConfigMapping(global).SetModuleType(typeof(TorchSharp.Modules.ConvTranspose2d), transpose);

        Assert.Equal(1, mapping.Resolve("upsampler.deconv_layers.1", "ConvTranspose2d")!.Weight.ChannelAxis);
        Assert.Equal(0, mapping.Resolve("upsampler.deconv_layers.0", "Conv2d")!.Weight.ChannelAxis);
        mapping.Validate("CenterNet", ["upsampler", "upsampler.deconv_layers", "upsampler.deconv_layers.0", "upsampler.deconv_layers.1"], ["Conv2d", "ConvTranspose2d", "BatchNorm2d", "ReLU"]);
    }

    [Fact]
    public void ValidateNamesTheModelAndAnUnknownPathWithASuggestion()
    {
        var mapping = new QConfigMapping(GlobalQ).SetModuleName("layer1.0.conv", NameQ);
        var error = Assert.Throws<ArgumentException>(() => mapping.Validate("ResNet", ["conv1", "layer1", "layer1.0", "layer1.0.conv1", "layer1.0.conv2"], ["Conv2d"]));
        Assert.Contains("ResNet", error.Message);
        Assert.Contains("'layer1.0.conv'", error.Message);
        Assert.Contains("Did you mean 'layer1.0.conv1'?", error.Message);
    }

    [Fact]
    public void ValidateNamesAnUnknownTypeWithASuggestion()
    {
        var mapping = new QConfigMapping(GlobalQ).SetModuleType("ConvTranspose2D", TypeQ);
        var error = Assert.Throws<ArgumentException>(() => mapping.Validate("Net", ["up"], ["ConvTranspose2d", "Conv2d"]));
        Assert.Contains("Net", error.Message);
        Assert.Contains("'ConvTranspose2D'", error.Message);
        Assert.Contains("Did you mean 'ConvTranspose2d'?", error.Message);
    }

    [Fact]
    public void ValidateSuggestsNothingWhenNoNameIsClose()
    {
        var mapping = new QConfigMapping(GlobalQ).SetModuleName("classifier", NameQ);
        var error = Assert.Throws<ArgumentException>(() => mapping.Validate("Net", ["conv1", "fc"], ["Conv2d"]));
        Assert.Contains("'classifier'", error.Message);
        Assert.DoesNotContain("Did you mean", error.Message);
        Assert.Contains("Known paths: 'conv1', 'fc'", error.Message);
    }

    [Fact]
    public void DefaultPresetsAreNotHeldAgainstAModelWithoutThoseTypes()
    {
        QConfigMapping.Default(QuantBackend.X86).Validate("M", ["conv1"], ["Conv2d"]);

        // A type the user sets explicitly is checked, even if the preset had it.
        QConfigMapping mapping = QConfigMapping.Default(QuantBackend.X86).SetModuleType("ConvTranspose2d", TypeQ);
        var error = Assert.Throws<ArgumentException>(() => mapping.Validate("M", ["conv1"], ["Conv2d"]));
        Assert.Contains("'ConvTranspose2d'", error.Message);
    }

    [Fact]
    public void ValidateRejectsAnUnusableQConfigNamingItsEntry()
    {
        var perChannelActivations = QConfig.X86 with { Activation = ObserverSpec.PerChannelMinMax(QuantDType.QUInt8, QScheme.PerChannelAffine, channelAxis: 1) };
        var mapping = new QConfigMapping(GlobalQ).SetModuleName("conv1", perChannelActivations);
        var error = Assert.Throws<ArgumentException>(() => mapping.Validate("M", ["conv1"], ["Conv2d"]));
        Assert.Contains("M:", error.Message);
        Assert.Contains("member path 'conv1'", error.Message);
        Assert.Contains("per tensor", error.Message);
    }

    [Fact]
    public void ValidateRejectsConvTransposeWeightsPerChannelOnAxis0()
    {
        var mapping = new QConfigMapping(GlobalQ).SetModuleType("ConvTranspose2d", QConfig.X86);
        var error = Assert.Throws<ArgumentException>(() => mapping.Validate("M", ["up"], ["ConvTranspose2d"]));
        Assert.Contains("ch_axis=0", error.Message);
        Assert.Contains("use ch_axis=1", error.Message);
    }

    [Fact]
    public void EmptyOrMalformedPathsAreRefused()
    {
        var mapping = new QConfigMapping(GlobalQ);
        Assert.Contains("SetGlobal", Assert.Throws<ArgumentException>(() => mapping.SetModuleName("", NameQ)).Message);
        Assert.Throws<ArgumentException>(() => mapping.SetModuleName("layer1..conv1", NameQ));
        Assert.Throws<ArgumentException>(() => mapping.SetModuleType(" ", NameQ));
    }

    [Fact]
    public void CloneIsIndependent()
    {
        var mapping = new QConfigMapping(GlobalQ).SetModuleName("a", NameQ);
        QConfigMapping copy = mapping.Clone().SetModuleName("a", OtherQ).SetGlobal(null);
        Assert.Same(NameQ, mapping.Resolve("a", "Conv2d"));
        Assert.Same(GlobalQ, mapping.Global);
        Assert.Same(OtherQ, copy.Resolve("a", "Conv2d"));
    }

    [Fact]
    public void ToStringListsEveryEntryInPyTorchsOrder()
    {
        var mapping = new QConfigMapping(QConfig.Qnnpack).SetModuleType("ConvTranspose2d", null).SetModuleName("fc", QConfig.Qnnpack);
        string expected =
            "QConfigMapping (\n" +
            " global_qconfig\n" +
            $"  {QConfig.Qnnpack}\n" +
            " object_type_qconfigs\n" +
            "  ConvTranspose2d: None\n" +
            " module_name_qconfigs\n" +
            $"  fc: {QConfig.Qnnpack}\n" +
            ")";
        Assert.Equal(expected, mapping.ToString());
        Assert.Contains(" module_name_qconfigs\n  OrderedDict()", new QConfigMapping().ToString());
    }
}
