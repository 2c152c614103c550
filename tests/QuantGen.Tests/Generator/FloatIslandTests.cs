using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Reports;
using QuantGen.Tests.Generator.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Generator;

/// <summary>
/// [NoQuantize] makes an op a float island (PyTorch's qconfig = None): Observed runs the user's module and observes
/// its output; Quantized dequantizes, runs it in float and quantizes the result with that observer's qparams.
/// </summary>
public class FloatIslandTests
{
    private static readonly SourceFile IslandSource = new("Island.cs", Samples.Usings + """
        [Quantize]
        public partial class Island : Module<Tensor, Tensor>
        {
            private readonly QuantStub quant = new();
            private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
            private readonly TorchSharp.Modules.ReLU relu = ReLU();
            [NoQuantize] private readonly TorchSharp.Modules.Conv2d conv2 = Conv2d(1, 1, 1);
            [NoQuantize] private readonly TorchSharp.Modules.MaxPool2d pool = MaxPool2d(2);
            private readonly TorchSharp.Modules.Linear fc = Linear(4, 2);
            private readonly DeQuantStub dequant = new();
            public Island() : base(nameof(Island)) => RegisterComponents();
            public override Tensor forward(Tensor x)
            {
                x = quant.forward(x);
                x = relu.forward(conv1.forward(x));
                x = conv2.forward(x);
                x = pool.forward(x);
                x = x.flatten(1);
                x = fc.forward(x);
                return dequant.forward(x);
            }
        }
        """);

    [Fact]
    public void IslandCodeCompilesWithNoDiagnosticsAndSaysFloatIsland()
    {
        GeneratorRun run = GeneratorHarness.Run(IslandSource);

        Assert.Null(run.Result.Exception);
        Assert.True(run.Problems().IsEmpty, GeneratorHarness.Describe(run.Problems()));
        Assert.True(run.OutputProblems().IsEmpty, GeneratorHarness.Describe(run.OutputProblems()));
        string text = string.Concat(run.Sources.Values);
        Assert.Contains("float island", text, StringComparison.Ordinal);
        // conv1 + relu still fuse; the islands are not absorbed and keep the user's module in Quantized.
        Assert.Contains("public global::TorchSharp.Modules.Conv2d conv2 { get; }", text, StringComparison.Ordinal);
        Assert.Contains("public global::TorchSharp.Modules.MaxPool2d pool { get; }", text, StringComparison.Ordinal);
        Assert.Contains("public global::QuantGen.Observers.Observer conv2_activation { get; }", text, StringComparison.Ordinal);
        Assert.Contains("public global::QuantGen.Observers.Observer pool_activation { get; }", text, StringComparison.Ordinal);
    }

    [Fact]
    public void AutoFusionLeavesAnIslandAlone()
    {
        // conv2 ([NoQuantize]) followed by relu would auto-fuse; as an island it must stay a float conv with relu after it.
        SourceFile source = Samples.Model(Samples.SeedMembers.Replace(
            "private readonly TorchSharp.Modules.Conv2d conv1", "[NoQuantize] private readonly TorchSharp.Modules.Conv2d conv1") + """

                public override Tensor forward(Tensor x)
                {
                    x = quant.forward(x);
                    x = conv1.forward(x);
                    x = relu.forward(x);
                    x = conv2.forward(x);
                    return dequant.forward(x);
                }
            """);

        GeneratorRun run = GeneratorHarness.Run(source);

        Assert.True(run.Problems().IsEmpty, GeneratorHarness.Describe(run.Problems()));
        Assert.True(run.OutputProblems().IsEmpty, GeneratorHarness.Describe(run.OutputProblems()));
        string text = string.Concat(run.Sources.Values);
        Assert.Contains("public global::QuantGen.Modules.QuantizedReLU relu { get; }", text, StringComparison.Ordinal);
        Assert.DoesNotContain("fused into conv1", text, StringComparison.Ordinal);
    }

    [Fact]
    public void ConvertedIslandIsTheFloatConvOfTheDequantizedInputQuantizedWithItsObserver()
    {
        torch.manual_seed(11);
        using var model = new IslandNet();
        model.eval();
        using Tensor batch = torch.randn(2, 2, 5, 5);
        using IslandNet.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            observed.forward(batch).Dispose();
        }

        IslandNet.Quantized int8 = observed.Convert();
        QParams islandQ = observed.conv2_activation.CalculateQParams();
        float[] values = TensorInterop.ToArray(batch, out int[] shape);
        var tap = new Recorder();
        int8.forward(int8.quant.Forward(values, shape), tap);

        QTensor islandInput = tap.Outputs["conv1"];
        QTensor islandOutput = tap.Outputs["conv2"];
        Assert.Equal(["quant", "conv1", "conv2", "conv3"], tap.Order);

        // Independent expectation: TorchSharp's conv2d on the dequantized int8 values, then the contract's quantize.
        float[] expectedFloat;
        using (torch.no_grad())
        {
            float[] dequantized = islandInput.IntRepr().Select(q => (float)(q - islandInput.ZeroPoint) * islandInput.Scale).ToArray();
            using Tensor x = torch.tensor(dequantized, islandInput.Shape.Select(d => (long)d).ToArray());
            TorchSharp.Modules.Conv2d conv2 = model.IslandModule();
            using Tensor y = nn.functional.conv2d(x, conv2.weight!, conv2.bias, padding: new long[] { 1, 1 });
            expectedFloat = y.data<float>().ToArray();
        }

        float inverse = 1.0f / islandQ.Scale;
        int[] expected = expectedFloat.Select(v =>
        {
            float scaled = v * inverse;
            int q = (int)MathF.Round(scaled, MidpointRounding.ToEven) + islandQ.ZeroPoint;
            return Math.Clamp(q, 0, 255);
        }).ToArray();

        Assert.Equal(QuantDType.QUInt8, islandOutput.DType);
        Assert.Equal(islandQ.Scale, islandOutput.Scale);
        Assert.Equal(islandQ.ZeroPoint, islandOutput.ZeroPoint);
        Assert.Equal(islandInput.Shape, islandOutput.Shape);
        Assert.Equal(expected, islandOutput.IntRepr());
    }

    [Fact]
    public void ReferenceIslandIsTheFloatConvOfItsInputFakeQuantizedWithItsObserver()
    {
        torch.manual_seed(12);
        using var model = new IslandNet();
        model.eval();
        using Tensor batch = torch.randn(1, 2, 4, 4);
        using IslandNet.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            observed.forward(batch).Dispose();
            using IslandNet.Reference reference = observed.ConvertReference();
            var tap = new ReferenceRecorder();
            reference.forward(batch, tap).Dispose();

            QParams islandQ = observed.conv2_activation.CalculateQParams();
            Assert.Equal(islandQ.Scale, tap.QParams["conv2"].Scale);
            Assert.Equal(islandQ.ZeroPoint, tap.QParams["conv2"].ZeroPoint);

            // The island's input (conv1's fake-quantized output) through the float conv, then q→dq by the contract formula.
            TorchSharp.Modules.Conv2d conv2 = model.IslandModule();
            using Tensor y = nn.functional.conv2d(tap.Outputs["conv1"], conv2.weight!, conv2.bias, padding: new long[] { 1, 1 });
            float inverse = 1.0f / islandQ.Scale;
            float[] expected = y.data<float>().ToArray().Select(v =>
            {
                int q = Math.Clamp((int)MathF.Round(v * inverse, MidpointRounding.ToEven) + islandQ.ZeroPoint, 0, 255);
                return (float)(q - islandQ.ZeroPoint) * islandQ.Scale;
            }).ToArray();
            Assert.Equal(expected, tap.Outputs["conv2"].data<float>().ToArray());
        }
    }

    [Fact]
    public void AMappingThatNullsTheIslandGivesTheSameInt8ModelAsTheDefault()
    {
        // PyTorch's qconfig = None for conv2 is what [NoQuantize] already says: the island ignores the mapping's entry.
        torch.manual_seed(13);
        using var model = new IslandNet();
        model.eval();
        using Tensor batch = torch.randn(1, 2, 4, 4);
        float[] values = TensorInterop.ToArray(batch, out int[] shape);
        int[] RunInt8(IslandNet.Observed observed)
        {
            using (torch.no_grad())
            {
                observed.forward(batch).Dispose();
            }

            IslandNet.Quantized int8 = observed.Convert();
            return int8.forward(int8.quant.Forward(values, shape)).IntRepr();
        }

        int[] byDefault;
        using (IslandNet.Observed observed = model.Prepare())
        {
            byDefault = RunInt8(observed);
        }

        using IslandNet.Observed nulled = model.Prepare(IslandNet.DefaultQConfigMapping().SetModuleName("conv2", null));
        Assert.Equal(byDefault, RunInt8(nulled));
    }

    [Fact]
    public void AMappingThatNullsAQuantizedOpKeepsItInFloatBetweenInt8Ops()
    {
        // PyTorch's qconfig_mapping.set_module_name("conv3", None), decided at Prepare rather than in source.
        torch.manual_seed(13);
        using var model = new IslandNet();
        model.eval();
        using Tensor batch = torch.randn(2, 2, 5, 5);
        using IslandNet.Observed observed = model.Prepare(IslandNet.DefaultQConfigMapping().SetModuleName("conv3", null));
        using (torch.no_grad())
        {
            observed.forward(batch).Dispose();
        }

        IslandNet.Quantized int8 = observed.Convert();
        QParams conv3Q = observed.conv3_activation.CalculateQParams();
        Assert.NotNull(int8.conv3_float);
        Assert.Null(int8.conv1_float);
        InvalidOperationException error = Assert.Throws<InvalidOperationException>(() => int8.conv3);
        Assert.Contains("IslandNet.conv3 runs in float", error.Message, StringComparison.Ordinal);
        Assert.Equal(QuantGen.Graphs.GraphOp.FloatIsland, int8.Graph.Get("conv3").Op);
        Assert.Equal(QuantGen.Graphs.GraphOp.Conv2d, int8.Graph.Get("conv1").Op);
        Assert.Same(int8.conv3_float, int8.Layers[^1]);

        float[] values = TensorInterop.ToArray(batch, out int[] shape);
        var tap = new Recorder();
        int8.forward(int8.quant.Forward(values, shape), tap);
        QTensor input = tap.Outputs["conv2"], output = tap.Outputs["conv3"];

        // Independent expectation: TorchSharp's conv2d with conv3's own float weights on the dequantized int8 input,
        // then the contract's quantize with conv3's output observer.
        int[] expected;
        using (torch.no_grad())
        {
            float[] dequantized = input.IntRepr().Select(q => (float)(q - input.ZeroPoint) * input.Scale).ToArray();
            using Tensor x = torch.tensor(dequantized, input.Shape.Select(d => (long)d).ToArray());
            var conv3 = (TorchSharp.Modules.Conv2d)model.named_modules().Single(m => m.name == "conv3").module;
            using Tensor y = nn.functional.conv2d(x, conv3.weight!, conv3.bias);
            float inverse = 1.0f / conv3Q.Scale;
            expected = y.data<float>().ToArray().Select(v => Math.Clamp((int)MathF.Round(v * inverse, MidpointRounding.ToEven) + conv3Q.ZeroPoint, 0, 255)).ToArray();
        }

        Assert.Equal(conv3Q.Scale, output.Scale);
        Assert.Equal(expected, output.IntRepr());

        // The observed model may be disposed: the int8 model owns the float op from Convert() on.
        observed.Dispose();
        Assert.Equal(output.IntRepr(), int8.forward(int8.quant.Forward(values, shape)).IntRepr());
    }

    [Fact]
    public void NoQuantizeOnAWholeSubModuleRunsItInFloatAsOneIsland()
    {
        torch.manual_seed(17);
        using var model = new IslandBlockNet();
        model.eval();
        using Tensor batch = torch.randn(2, 2, 6, 6);
        using IslandBlockNet.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            observed.forward(batch).Dispose();
        }

        IslandBlockNet.Quantized int8 = observed.Convert();
        QParams islandQ = observed.block_activation.CalculateQParams();
        Assert.Equal(["input", "stem", "block", "head"], int8.Graph.Nodes.Select(n => n.Name));
        Assert.Equal(QuantGen.Graphs.GraphOp.FloatIsland, int8.Graph.Get("block").Op);

        float[] values = TensorInterop.ToArray(batch, out int[] shape);
        var tap = new Recorder();
        int8.forward(int8.input.Forward(values, shape), tap);
        QTensor input = tap.Outputs["stem"], output = tap.Outputs["block"];

        // Independent expectation: the user's block in float (TorchSharp) on the dequantized stem output, then quantize.
        int[] expected;
        using (torch.no_grad())
        {
            float[] dequantized = input.IntRepr().Select(q => (float)(q - input.ZeroPoint) * input.Scale).ToArray();
            using Tensor x = torch.tensor(dequantized, input.Shape.Select(d => (long)d).ToArray());
            using Tensor y = model.Block().forward(x);
            float inverse = 1.0f / islandQ.Scale;
            expected = y.data<float>().ToArray().Select(v => Math.Clamp((int)MathF.Round(v * inverse, MidpointRounding.ToEven) + islandQ.ZeroPoint, 0, 255)).ToArray();
        }

        Assert.Equal(expected, output.IntRepr());
    }

    [Fact]
    public void AMappingThatNullsAnOpWithoutAFloatFormFailsAtPrepareNamingIt()
    {
        using var model = new QuantGen.Tests.Generator.Models.ResNet.SmallResNet();
        model.eval();
        NotSupportedException error = Assert.Throws<NotSupportedException>(() => model.Prepare(QuantGen.Tests.Generator.Models.ResNet.SmallResNet.DefaultQConfigMapping().SetModuleType("add", null)));
        Assert.Contains("SmallResNet.layer1.0.add: the QConfigMapping resolves a null qconfig", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Records each int8 layer's output.</summary>
    private sealed class Recorder : IQuantizedTap
    {
        public Dictionary<string, QTensor> Outputs { get; } = new();

        public List<string> Order { get; } = new();

        public void OnLayer(string layer, QTensor output)
        {
            Outputs[layer] = output;
            Order.Add(layer);
        }
    }

    /// <summary>Records each reference layer's output (a copy that outlives the forward's dispose scope) and qparams.</summary>
    private sealed class ReferenceRecorder : IReferenceTap
    {
        public Dictionary<string, Tensor> Outputs { get; } = new();

        public Dictionary<string, QParams> QParams { get; } = new();

        public Tensor? OnLayer(string layer, Tensor output, QParams qparams)
        {
            Outputs[layer] = output.detach().clone().MoveToOuterDisposeScope();
            QParams[layer] = qparams;
            return null;
        }
    }
}
