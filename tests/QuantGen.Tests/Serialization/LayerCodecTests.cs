using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Serialization;
using QuantGen.Tests.Modules;
using static QuantGen.Tests.Serialization.SerializationTestSupport;

namespace QuantGen.Tests.Serialization;

/// <summary>
/// Every layer class through Save → OpenRead → Read: all constructor state equal (floats by bit
/// pattern), and the loaded layer's forward bit-identical to the original's on random int8 inputs.
/// </summary>
public sealed class LayerCodecTests
{
    private static readonly QParams U8 = QParams.PerTensor(0.021f, 117, QuantDType.QUInt8);
    private static readonly QParams U8Out = QParams.PerTensor(0.034f, 64, QuantDType.QUInt8);
    private static readonly QParams S8 = QParams.PerTensor(0.019f, -5, QuantDType.QInt8);
    private static readonly QParams S8Out = QParams.PerTensor(0.027f, 9, QuantDType.QInt8);

    // name → (layer, its input shape(s) and qparams); fixed seeds.
    private static readonly Dictionary<string, Func<(IQuantizedLayer Layer, int[][] InputShapes, QParams InputQParams)>> Cases = new()
    {
        ["quantize quint8"] = () => (new QuantizeInput(Model, "quant", U8), [[2, 3, 4, 5]], U8),
        ["quantize qint8, rank 2"] = () => (new QuantizeInput(Model, "quant", S8), [[3, 7]], S8),
        ["conv per-channel x86 bias relu"] = () => (Conv(new Random(1), "conv1", new Conv2dOptions(3, 5, 3, 3, PadHeight: 1, PadWidth: 1), true, true, U8, U8Out, true, QuantBackend.X86), [[2, 3, 6, 5]], U8),
        ["conv per-tensor qnnpack no bias, groups stride dilation"] = () => (Conv(new Random(2), "layer1.0.conv2", new Conv2dOptions(4, 6, 3, 2, 2, 1, 2, 1, 2, 1, 2), false, false, U8, U8Out, false, QuantBackend.Qnnpack), [[1, 4, 9, 7]], U8),
        ["conv qint8 activations, channels-last weight"] = () => (Conv(new Random(3), "conv", new Conv2dOptions(2, 3, 1, 1), true, true, S8, S8Out, false, QuantBackend.X86, MemoryFormat.ChannelsLast), [[1, 2, 3, 3]], S8),
        ["conv transpose per-tensor"] = () => (ConvTranspose(new Random(4), "up", new ConvTranspose2dOptions(4, 3, 3, 3, 2, 2, 1, 1, 1, 1), false, true, U8, U8Out, true, QuantBackend.X86), [[1, 4, 3, 4]], U8),
        ["conv transpose per-channel axis 1, groups, qnnpack"] = () => (ConvTranspose(new Random(5), "deconv", new ConvTranspose2dOptions(4, 6, 2, 3, 1, 2, 0, 1, 0, 1, 1, 1, 2), true, false, U8, U8Out, false, QuantBackend.Qnnpack), [[2, 4, 3, 3]], U8),
        ["linear per-channel x86 relu"] = () => (Linear(new Random(6), "fc1", 13, 7, true, true, U8, U8Out, true, QuantBackend.X86), [[3, 13]], U8),
        ["linear per-tensor qnnpack no bias"] = () => (Linear(new Random(7), "fc2", 9, 4, false, false, U8, U8Out, false, QuantBackend.Qnnpack), [[2, 9]], U8),
        ["batchnorm relu"] = () => (new QuantizedBatchNorm2d(Model, "bn", ContractReference.RandomFloats(new Random(8), 3, 0.5f, 2f), ContractReference.RandomFloats(new Random(9), 3, -1f, 1f), U8Out, true), [[2, 3, 4, 4]], U8),
        ["relu"] = () => (new QuantizedReLU(Model, "relu"), [[2, 3, 2, 2]], U8),
        ["relu6"] = () => (new QuantizedHardtanh(Model, "features.0.2", 0f, 6f), [[2, 3, 2, 2]], U8),
        ["hardtanh"] = () => (new QuantizedHardtanh(Model, "act", -1.5f, 0.75f), [[2, 3, 2, 2]], U8),
        ["elementwise table"] = () => (new QuantizedElementwise(Model, "gate", "Sigmoid", U8, U8Out, Enumerable.Range(0, 256).Select(i => (i * 7) % 256).ToArray()), [[2, 3, 2, 2]], U8),
        ["add relu"] = () => (new QuantizedAdd(Model, "layer1.0.add", U8Out, true), [[1, 3, 4, 4], [1, 3, 4, 4]], U8),
        ["add qint8"] = () => (new QuantizedAdd(Model, "add", S8Out, false), [[2, 5], [2, 5]], S8),
        ["mul broadcasting"] = () => (new QuantizedMul(Model, "se.mul", U8Out), [[2, 3, 4, 4], [2, 3, 1, 1]], U8),
        ["mul by a negative constant"] = () => (new QuantizedConstantOp(Model, "mul_scalar", ConstantOperator.Mul, -0.75), [[2, 3, 2, 2]], U8),
        ["add of a constant, qint8"] = () => (new QuantizedConstantOp(Model, "add_scalar", ConstantOperator.Add, 3.0), [[2, 5]], S8),
        ["mean over H and W, keepdim"] = () => (new QuantizedMean(Model, "se.mean", [2, 3], true), [[2, 3, 4, 5]], U8),
        ["mean over a negative dim"] = () => (new QuantizedMean(Model, "mean", [-1], false), [[3, 7]], S8),
        ["cat negative dim"] = () => (new QuantizedCat(Model, "cat", -3, U8Out), [[1, 2, 3, 3], [1, 4, 3, 3]], U8),
        ["maxpool dilation ceil"] = () => (new QuantizedMaxPool2d(Model, "maxpool", new Pool2dOptions(3, 2, 2, 0, 1, 1, 2, 1, CeilMode: true)), [[1, 2, 9, 8]], U8),
        ["avgpool divisor, no pad count"] = () => (new QuantizedAvgPool2d(Model, "avgpool", new Pool2dOptions(3, 3, 2, 2, 1, 1, CountIncludePad: false, DivisorOverride: 7)), [[2, 3, 7, 6]], U8),
        ["avgpool default stride"] = () => (new QuantizedAvgPool2d(Model, "avgpool", Pool2dOptions.Square(2)), [[1, 2, 4, 6]], U8),
        ["adaptive avgpool"] = () => (new QuantizedAdaptiveAvgPool2d(Model, "gap", 2, 3), [[1, 4, 5, 7]], U8),
        ["upsample by size"] = () => (new QuantizedUpsampleNearest2d(Model, "up", 7, 5, null, null), [[1, 2, 3, 3]], U8),
        ["upsample by scale"] = () => (new QuantizedUpsampleNearest2d(Model, "up", null, null, 2.5, 1.0 / 3.0), [[1, 2, 4, 6]], U8),
        ["flatten"] = () => (new QuantizedFlatten(Model, "flatten", 1, -2), [[2, 3, 4, 5]], U8),
        ["reshape with -1"] = () => (new QuantizedReshape(Model, "view", [2, -1, 3]), [[2, 3, 2, 3]], U8),
    };

    public static IEnumerable<object[]> CaseNames() => Cases.Keys.Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void SavedLayerLoadsWithEqualStateAndBitIdenticalForward(string name)
    {
        (IQuantizedLayer original, int[][] inputShapes, QParams inputQParams) = Cases[name]();
        var model = new LayerListModel(Model, Hash, original);
        byte[] file = SaveToBytes(model);
        IQuantizedLayer loaded = Assert.Single(LoadLayers(file, model));

        AssertSameLayer(original, loaded);
        Assert.NotSame(original, loaded);

        var random = new Random(name.Length * 7919);
        for (int trial = 0; trial < 3; trial++)
        {
            if (original is QuantizeInput quantize)
            {
                float[] values = ContractReference.RandomFloats(random, inputShapes[0].Aggregate(1, (a, b) => a * b), -4f, 4f);
                AssertSameTensor(quantize.Forward(values, inputShapes[0]), ((QuantizeInput)loaded).Forward(values, inputShapes[0]));
                continue;
            }

            QTensor[] inputs = inputShapes.Select(s => OpTestSupport.RandomTensor(random, s, inputQParams, s.Length == 4 ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous)).ToArray();
            QTensor expected = Forward(original, inputs);
            QTensor actual = Forward(loaded, inputs);
            AssertSameTensor(expected, actual);
        }
    }

    [Fact]
    public void EveryLayerClassInModulesHasACase()
    {
        // A new layer class in QuantGen.Modules must get a codec (and a case here) before models using it can be saved.
        // Float ops are not int8 layers: FloatOp (and a FloatFallback made from one) round-trip in FloatOpFileTests and
        // GeneratedFallbackFileTests; a FloatFallback made from a bare function is refused (the test below).
        Type[] layerClasses = typeof(QuantizeInput).Assembly.GetTypes()
            .Where(t => t.Namespace == "QuantGen.Modules" && t.IsClass && !t.IsAbstract && typeof(IQuantizedLayer).IsAssignableFrom(t))
            .Where(t => t != typeof(FloatFallback) && t != typeof(FloatOp))
            .OrderBy(t => t.Name).ToArray();
        Type[] covered = Cases.Values.Select(c => c().Layer.GetType()).Distinct().OrderBy(t => t.Name).ToArray();
        Assert.Equal(layerClasses, covered);
        Assert.Equal(19, covered.Length);
    }

    [Fact]
    public void AModelWithAnOpKeptInFloatIsRefusedAtSaveNamingModelAndLayer()
    {
        var model = new LayerListModel(Model, Hash,
            new QuantizeInput(Model, "quant", U8),
            new FloatFallback(Model, "head.conv", x => x, "Conv2d(2, 2)", new QuantizeInput(Model, "head.conv", U8Out)));
        var ex = Assert.Throws<NotSupportedException>(() => SaveToBytes(model));
        Assert.StartsWith("Net: layer 'head.conv' is a QuantGen.Modules.FloatFallback, which a .qgen file cannot hold", ex.Message);
    }

    [Fact]
    public void SeveralLayersKeepTheirOrderNamesAndOwnerModel()
    {
        var random = new Random(11);
        IQuantizedLayer[] layers =
        [
            new QuantizeInput(Model, "quant", U8),
            Conv(random, "block.conv", new Conv2dOptions(1, 2, 1, 1), true, true, U8, U8Out, false, QuantBackend.X86),
            new QuantizedReLU("Block", "block.relu"), // a layer that reports another model's name
            new QuantizedFlatten(Model, "flatten"),
        ];
        var model = new LayerListModel(Model, Hash, layers);
        byte[] file = SaveToBytes(model);

        QGenFileInfo info = QGenFile.ReadInfo(new MemoryStream(file));
        Assert.Equal(Model, info.Model);
        Assert.Equal(Hash, info.GraphHash);
        Assert.Equal(2, info.Version);
        Assert.Equal(file.Length, info.ByteSize);
        Assert.Equal(["quant", "block.conv", "block.relu", "flatten"], info.Layers.Select(l => l.Name));
        Assert.Equal([QGenLayerKind.Quantize, QGenLayerKind.Conv2d, QGenLayerKind.ReLU, QGenLayerKind.Flatten], info.Layers.Select(l => l.Kind));
        Assert.Equal([Model, Model, "Block", Model], info.Layers.Select(l => l.Model));

        IQuantizedLayer[] loaded = LoadLayers(file, model);
        for (int i = 0; i < layers.Length; i++)
        {
            AssertSameLayer(layers[i], loaded[i]);
        }
    }

    private static QTensor Forward(IQuantizedLayer layer, QTensor[] inputs) => layer switch
    {
        QuantizedAdd add => add.Forward(inputs[0], inputs[1]),
        QuantizedMul mul => mul.Forward(inputs[0], inputs[1]),
        QuantizedCat cat => cat.Forward(inputs),
        _ => ForwardOne(layer, inputs[0]),
    };
}
