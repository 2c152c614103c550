using System;
using System.IO;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Onnx;
using QuantGen.Serialization;
using QuantGen.Tests.Binding;
using QuantGen.Tests.Generator.Models;
using QuantGen.Tests.Generator.Models.ResNet;
using QuantGen.Tests.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Generator;

/// <summary>
/// A generated model whose QConfigMapping keeps an op in float (PyTorch's qconfig None) saves that op as a float op
/// record and loads it back: the same results to the bit, an optional (guarded) op included; ONNX export writes it as
/// the float operator.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class GeneratedFallbackFileTests
{
    private static byte[] Saved(Action<Stream> save)
    {
        using var stream = new MemoryStream();
        save(stream);
        return stream.ToArray();
    }

    private static float[] RandomInput(int seed, int count)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
    }

    private static TinyConvNet.Quantized TinyWithFloatFc()
    {
        torch.manual_seed(51);
        using var model = new TinyConvNet();
        model.eval();
        using TinyConvNet.Observed observed = model.Prepare(TinyConvNet.DefaultQConfigMapping().SetModuleName("fc", null));
        using (torch.no_grad())
        {
            for (int i = 0; i < 3; i++)
            {
                observed.forward(torch.randn(4, 1, 4, 4)).Dispose();
            }
        }

        return observed.Convert();
    }

    [Fact]
    public void A_linear_the_mapping_keeps_in_float_saves_and_loads_with_the_same_results()
    {
        TinyConvNet.Quantized int8 = TinyWithFloatFc();
        Assert.NotNull(int8.fc_float?.Stored);
        Assert.Equal(FloatOpKind.Linear, int8.fc_float!.Stored!.Kind);
        Assert.True(int8.fc_float.Stored.Relu);

        byte[] file = Saved(int8.Save);
        QGenFileInfo info = QGenFile.ReadInfo(new MemoryStream(file));
        Assert.Equal(QGenLayerKind.FloatOp, info.Layers.Single(l => l.Name == "fc").Kind);

        TinyConvNet.Quantized loaded = TinyConvNet.Quantized.Load(new MemoryStream(file));
        Assert.NotNull(loaded.fc_float);
        for (int i = 0; i < 3; i++)
        {
            float[] x = RandomInput(i, 2 * 16);
            Assert.Equal(int8.forward(x, [2, 1, 4, 4], out _), loaded.forward(x, [2, 1, 4, 4], out _));
        }
    }

    [SkippableFact]
    public void A_linear_kept_in_float_exports_as_a_float_Gemm_and_ORT_agrees()
    {
        TinyConvNet.Quantized int8 = TinyWithFloatFc();
        byte[] onnx = OnnxExporter.Export(int8);
        var proto = QuantGen.Onnx.Protobuf.ModelProto.Parser.ParseFrom(onnx);
        Assert.Contains(proto.Graph.Node, n => n.OpType == "Gemm" && n.Name == "fc/Gemm");

        float[] x = RandomInput(3, 2 * 16);
        float[] quantGen = int8.forward(x, [2, 1, 4, 4], out _);
        OrtResult ort = OnnxTestSupport.RunQdqAsWritten(onnx, x, [2, 1, 4, 4]);
        float step = int8.fc_float!.Output.QParams.Scale;
        float worst = quantGen.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second)) / step;
        Assert.True(worst <= 1.01f, $"ORT's QDQ execution is {worst:F2} steps from QuantGen's");
    }

    [Theory]
    [InlineData(16, 2)]   // a downsample branch: its conv is optional (guarded by 'downsample is not null') and kept in float
    [InlineData(16, 1)]   // no downsample: the optional conv is absent from the file
    public void An_optional_op_kept_in_float_round_trips_with_its_condition(long planes, long stride)
    {
        torch.manual_seed(52);
        using var model = new BasicBlock(16, planes * (stride == 2 ? 2 : 1), stride);
        model.eval();
        QConfigMapping mapping = BasicBlock.DefaultQConfigMapping().SetModuleName("conv2", null);
        if (stride == 2)
        {
            mapping = mapping.SetModuleName("downsample.0", null);
        }

        using BasicBlock.Observed observed = model.Prepare(mapping);
        using (torch.no_grad())
        {
            for (int i = 0; i < 2; i++)
            {
                observed.forward(torch.randn(2, 16, 8, 8)).Dispose();
            }
        }

        BasicBlock.Quantized int8 = observed.Convert();
        byte[] file = Saved(int8.Save);
        BasicBlock.Quantized loaded = BasicBlock.Quantized.Load(new MemoryStream(file));
        Assert.Equal(int8.Layers.Select(l => (l.Layer, l.GetType())), loaded.Layers.Select(l => (l.Layer, l.GetType())));
        Assert.Equal(stride == 2, int8.Layers.Any(l => l is FloatFallback && l.Layer.StartsWith("downsample", StringComparison.Ordinal)));
        float[] x = RandomInput(4, 2 * 16 * 8 * 8);
        Assert.Equal(int8.forward(x, [2, 16, 8, 8], out _), loaded.forward(x, [2, 16, 8, 8], out _));
    }
}
