using System;
using System.Linq;
using QuantGen.Onnx;
using QuantGen.Tests.Binding;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Onnx;

/// <summary>One Linear applied to every step of a [batch, steps, features] input.</summary>
[Quantize]
public sealed partial class StepwiseLinear : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> fc = Linear(6, 4);

    public StepwiseLinear()
        : base(nameof(StepwiseLinear)) => RegisterComponents();

    public override Tensor forward(Tensor x) => fc.forward(x);
}

/// <summary>
/// ONNX export of float16-weight ops: a Linear as a FLOAT16 initializer → Cast(to float) → Gemm (the layer's own weights,
/// exact), run by ONNX Runtime (the float16-weight LSTM/GRU: Float16RecurrentOnnxTests).
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class Float16OnnxTests
{
    [Fact]
    public void Onnx_export_writes_a_float16_linear_as_a_float16_initializer_cast_to_float()
    {
        torch.manual_seed(195);
        using var model = new TwoLinearNet();
        model.eval();
        TwoLinearNet.Observed observed = model.Prepare(new QConfigMapping(null).SetModuleType("Linear", QConfig.Float16Dynamic));
        using (torch.no_grad())
        {
            observed.forward(torch.randn(8, 6)).Dispose();
        }

        TwoLinearNet.Quantized converted = observed.Convert();
        foreach (OnnxForm form in new[] { OnnxForm.Qdq, OnnxForm.Float })
        {
            var graph = QuantGen.Onnx.Protobuf.ModelProto.Parser.ParseFrom(OnnxExporter.Export(converted, new OnnxExportOptions { Form = form })).Graph;
            Assert.Equal(2, graph.Initializer.Count(t => t.DataType == (int)QuantGen.Onnx.Protobuf.TensorProto.Types.DataType.Float16));
            Assert.Equal(2, graph.Node.Count(n => n.OpType == "Cast"));
            Assert.Equal(2, graph.Node.Count(n => n.OpType == "Gemm"));
            Assert.Single(graph.Node, n => n.OpType == "Relu");
        }

        // The float form (no quantized input): ONNX Runtime multiplies by the same float16 weights and sums in its own
        // order, so the outputs agree to float32 rounding.
        using Tensor x = torch.randn(4, 6);
        float[] actual = converted.forward(x).data<float>().ToArray();
        byte[] onnx = OnnxExporter.Export(converted, new OnnxExportOptions { Form = OnnxForm.Float });
        OrtResult ort = OnnxTestSupport.RunQdqAsWritten(onnx, x.data<float>().ToArray(), [4, 6]);
        for (int i = 0; i < actual.Length; i++)
        {
            Assert.True(MathF.Abs(ort.Output[i] - actual[i]) <= 1e-5f * (1 + MathF.Abs(actual[i])), $"output {i}: ONNX Runtime {ort.Output[i]:R}, QuantGen {actual[i]:R}");
        }

    }

    [Fact]
    public void A_float16_linear_on_a_rank_3_input_is_written_as_cast_then_matmul_with_the_transposed_weight()
    {
        torch.manual_seed(197);
        using var model = new StepwiseLinear();
        model.eval();
        StepwiseLinear.Observed observed = model.Prepare(new QConfigMapping(null).SetModuleType("Linear", QConfig.Float16Dynamic));
        using (torch.no_grad())
        {
            observed.forward(torch.randn(2, 3, 6)).Dispose();
        }

        StepwiseLinear.Quantized converted = observed.Convert();
        var options = new OnnxExportOptions { Form = OnnxForm.Float, InputShape = [2, 3, 6] };
        var graph = QuantGen.Onnx.Protobuf.ModelProto.Parser.ParseFrom(OnnxExporter.Export(converted, options)).Graph;
        Assert.Equal(new[] { "Cast", "MatMul", "Add" }, graph.Node.Select(n => n.OpType).Where(o => o is "Cast" or "MatMul" or "Add" or "Gemm"));
        var weight = graph.Initializer.Single(t => t.DataType == (int)QuantGen.Onnx.Protobuf.TensorProto.Types.DataType.Float16);
        Assert.Equal(new long[] { 6, 4 }, weight.Dims);

        using Tensor x = torch.randn(2, 3, 6);
        float[] actual = converted.forward(x).data<float>().ToArray();
        OrtResult ort = OnnxTestSupport.RunQdqAsWritten(OnnxExporter.Export(converted, options), x.data<float>().ToArray(), [2, 3, 6]);
        Assert.Equal(new[] { 2, 3, 4 }, ort.Shape);
        for (int i = 0; i < actual.Length; i++)
        {
            Assert.True(MathF.Abs(ort.Output[i] - actual[i]) <= 1e-5f * (1 + MathF.Abs(actual[i])), $"output {i}: ONNX Runtime {ort.Output[i]:R}, QuantGen {actual[i]:R}");
        }
    }
}
