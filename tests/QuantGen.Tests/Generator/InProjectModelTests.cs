using System;
using System.Linq;
using System.Reflection;
using QuantGen.Tests.Generator.Models;

namespace QuantGen.Tests.Generator;

/// <summary>
/// The generator ran inside this project's own build (the SDK's compiler, not the test driver) and its
/// output compiled: the types below exist only because it did. Nothing is executed.
/// </summary>
public class InProjectModelTests
{
    [Fact]
    public void TheBuildGeneratedPrepareObservedAndQuantized()
    {
        MethodInfo prepare = typeof(TinyConvNet).GetMethod("Prepare", [typeof(QConfig)])!;
        Assert.Equal(typeof(TinyConvNet.Observed), prepare.ReturnType);
        Assert.Equal(typeof(TinyConvNet.Quantized), typeof(TinyConvNet.Observed).GetMethod("Convert")!.ReturnType);
        Assert.True(typeof(IDisposable).IsAssignableFrom(typeof(TinyConvNet.Observed)));
    }

    [Fact]
    public void QuantizedHasOneInt8OpPerFusedLayerNamedLikeTheMembers()
    {
        var properties = typeof(TinyConvNet.Quantized).GetProperties().Where(p => typeof(QuantGen.IQuantizedLayer).IsAssignableFrom(p.PropertyType) && p.PropertyType != typeof(QuantGen.Modules.FloatFallback))
            .ToDictionary(p => p.Name, p => p.PropertyType);

        Assert.Equal(4, properties.Count);
        Assert.Equal(typeof(QuantGen.Modules.QuantizeInput), properties["quant"]);
        Assert.Equal(typeof(QuantGen.Modules.QuantizedConv2d), properties["conv"]);
        Assert.Equal(typeof(QuantGen.Modules.QuantizedFlatten), properties["flatten"]);
        Assert.Equal(typeof(QuantGen.Modules.QuantizedLinear), properties["fc"]);
    }

    [Fact]
    public void ObservedHasAnObserverAfterTheStubAndEachFusedLayer()
    {
        string[] observers = typeof(TinyConvNet.Observed).GetProperties()
            .Where(p => p.PropertyType == typeof(QuantGen.Observers.Observer))
            .Select(p => p.Name)
            .OrderBy(n => n, StringComparer.Ordinal)
            .ToArray();

        Assert.Equal(new[] { "conv_activation", "fc_activation", "quant_activation" }, observers);
    }

    [Fact]
    public void GraphModeModelsWereGeneratedByTheBuild()
    {
        // SmallResNet inlines BasicBlock across classes; the heads' cat and the functional ops exist as int8 ops.
        var resnet = typeof(Models.ResNet.SmallResNet.Quantized).GetProperties().Where(p => typeof(QuantGen.IQuantizedLayer).IsAssignableFrom(p.PropertyType) && p.PropertyType != typeof(QuantGen.Modules.FloatFallback)).ToDictionary(p => p.Name, p => p.PropertyType);
        Assert.Equal(typeof(QuantGen.Modules.QuantizedAdd), resnet["layer2_1_add"]);
        Assert.Equal(typeof(QuantGen.Modules.QuantizedConv2d), resnet["layer2_0_downsample_0"]);
        Assert.Equal(typeof(QuantGen.Modules.QuantizedCat), typeof(Models.Detection.CenterNetHead.Quantized).GetProperty("cat")!.PropertyType);
        Assert.Equal(typeof(QuantGen.Modules.QuantizedReshape), typeof(Models.Fashion.FashionCnn.Quantized).GetProperty("view")!.PropertyType);
        Assert.NotNull(typeof(Models.ResNet.BasicBlock.Quantized).GetMethod("forward", new[] { typeof(QTensor), typeof(QuantGen.Reports.IQuantizedTap) }));
    }
}
