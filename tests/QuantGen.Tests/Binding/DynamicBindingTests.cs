using System;
using System.IO;
using System.Linq;
using QuantGen.Dynamic;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Binding;

/// <summary>Two linears with a ReLU between them, members typed as modules: bound at Prepare.</summary>
[Quantize]
public partial class TwoLinearNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> fc1 = Linear(6, 12);
    private readonly Module<Tensor, Tensor> relu = ReLU();
    private readonly Module<Tensor, Tensor> fc2 = Linear(12, 5);

    public TwoLinearNet()
        : base(nameof(TwoLinearNet)) => RegisterComponents();

    public override Tensor forward(Tensor x) => fc2.forward(relu.forward(fc1.forward(x)));

    public Linear Layer(string name) => (Linear)named_children().Single(c => c.name == name).module;
}

[Collection(SeededTorchCollection.Name)]
public sealed class DynamicBindingTests
{
    private static TwoLinearNet.Quantized Converted(TwoLinearNet model, QConfigMapping mapping)
    {
        model.eval();
        TwoLinearNet.Observed observed = model.Prepare(mapping);
        using (torch.no_grad())
        {
            for (int i = 0; i < 4; i++)
            {
                observed.forward(torch.randn(8, 6)).Dispose();
            }
        }

        return observed.Convert();
    }

    [Theory]
    [InlineData(QuantBackend.X86)]
    [InlineData(QuantBackend.Qnnpack)]
    public void Linears_given_a_dynamic_qconfig_run_as_the_dynamic_layer_bit_for_bit(QuantBackend backend)
    {
        torch.manual_seed(151);
        using var model = new TwoLinearNet();
        TwoLinearNet.Quantized int8 = Converted(model, new QConfigMapping(QConfig.For(backend)).SetModuleType("Linear", QConfig.Dynamic(backend)));
        using Tensor x = torch.randn(3, 6);

        // fc1 and the ReLU fuse into one dynamic LinearReLU; fc2 is dynamic too: nothing runs statically.
        DynamicQuantizedLinear fc1 = DynamicQuantizedLinear.FromLinear("TwoLinearNet", "fc1", model.Layer("fc1"), backend, fusedRelu: true);
        DynamicQuantizedLinear fc2 = DynamicQuantizedLinear.FromLinear("TwoLinearNet", "fc2", model.Layer("fc2"), backend);
        float[] expected = fc2.Forward(fc1.Forward(x)).data<float>().ToArray();

        Assert.Equal(expected, int8.forward(x).data<float>().ToArray());
    }

    [Fact]
    public void A_dynamic_layer_mixes_with_float_layers_and_saves_loads_and_exports_to_onnx()
    {
        torch.manual_seed(152);
        using var model = new TwoLinearNet();
        // PyTorch's quantize_dynamic(model, {"fc1": per_channel_dynamic_qconfig}): fc2 stays float.
        TwoLinearNet.Quantized int8 = Converted(model, new QConfigMapping(null).SetModuleName("fc1", QConfig.Dynamic(perChannel: true)));
        using Tensor x = torch.randn(4, 6);

        DynamicQuantizedLinear fc1 = DynamicQuantizedLinear.FromLinear("TwoLinearNet", "fc1", model.Layer("fc1"), QuantBackend.X86, perChannel: true, fusedRelu: true);
        Assert.True(fc1.Weight.QParams.IsPerChannel);
        float[] expected;
        using (torch.no_grad())
        {
            expected = model.Layer("fc2").forward(fc1.Forward(x)).data<float>().ToArray();
        }

        float[] actual = int8.forward(x).data<float>().ToArray();
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-5f, $"output {i}: expected {expected[i]:R}, got {actual[i]:R}");
        }

        // The dynamic layer is stored as data (a float op record holding its qint8 weights): Load runs the same bits.
        using var stream = new MemoryStream();
        int8.Save(stream);
        stream.Position = 0;
        TwoLinearNet.Quantized loaded = TwoLinearNet.Quantized.Load(stream);
        Assert.Equal(actual, loaded.forward(x).data<float>().ToArray());

        // ONNX: DynamicQuantizeLinear + MatMulInteger, run by ONNX Runtime. ONNX quantizes the input with its own formula
        // (0..255 over the widened range), so the outputs differ from QuantGen's by about one input step times the weights.
        byte[] onnx = QuantGen.Onnx.OnnxExporter.Export(int8);
        float[] input = x.data<float>().ToArray();
        QuantGen.Tests.Onnx.OrtResult ort = QuantGen.Tests.Onnx.OnnxTestSupport.RunQdqAsWritten(onnx, input, [4, 6]);
        Assert.Contains("MatMulInteger", ort.OptimizedOps);
        Assert.Contains("DynamicQuantizeLinear", ort.OptimizedOps);
        float range = input.Max() - input.Min();
        float tolerance = 2f * (range / 255f) * model.Layer("fc1").weight!.abs().sum(1).max().item<float>() * model.Layer("fc2").weight!.abs().sum(1).max().item<float>();
        for (int i = 0; i < actual.Length; i++)
        {
            Assert.True(MathF.Abs(ort.Output[i] - actual[i]) <= tolerance, $"output {i}: ONNX Runtime {ort.Output[i]:R}, QuantGen {actual[i]:R}, tolerance {tolerance:R}");
        }
    }

    [Fact]
    public void The_float_form_writes_a_dynamic_linear_as_a_float_gemm_on_its_dequantized_weights()
    {
        torch.manual_seed(153);
        using var model = new TwoLinearNet();
        TwoLinearNet.Quantized int8 = Converted(model, new QConfigMapping(null).SetModuleType("Linear", QConfig.Dynamic(perChannel: true)));
        byte[] onnx = QuantGen.Onnx.OnnxExporter.Export(int8, new QuantGen.Onnx.OnnxExportOptions { Form = QuantGen.Onnx.OnnxForm.Float });
        string[] ops = QuantGen.Onnx.Protobuf.ModelProto.Parser.ParseFrom(onnx).Graph.Node.Select(n => n.OpType).ToArray();
        Assert.Equal(2, ops.Count(op => op == "Gemm"));
        Assert.DoesNotContain("DynamicQuantizeLinear", ops);

        // The float peer of the int8 model: the same layers on the weights the int8 ones multiply by.
        using Tensor x = torch.randn(4, 6);
        float[] expected;
        using (torch.no_grad())
        {
            Tensor Dequantized(string name)
            {
                QTensor weight = DynamicQuantizedLinear.FromLinear("TwoLinearNet", name, model.Layer(name), QuantBackend.X86, perChannel: true).Weight;
                return torch.tensor(weight.Dequantize(), new long[] { weight.Dim(0), weight.Dim(1) });
            }

            Tensor hidden = nn.functional.relu(nn.functional.linear(x, Dequantized("fc1"), model.Layer("fc1").bias));
            expected = nn.functional.linear(hidden, Dequantized("fc2"), model.Layer("fc2").bias).data<float>().ToArray();
        }

        QuantGen.Tests.Onnx.OrtResult ort = QuantGen.Tests.Onnx.OnnxTestSupport.RunQdqAsWritten(onnx, x.data<float>().ToArray(), [4, 6]);
        float worst = expected.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second));
        Assert.True(worst <= 1e-5f, $"the float form is {worst} from the float layers on the dequantized weights");
    }

    [Fact]
    public void A_model_traced_at_compile_time_refuses_a_dynamic_qconfig_rather_than_quantizing_statically()
    {
        QConfigMapping mapping = new QConfigMapping(QConfig.X86).SetModuleName("fc", QConfig.Dynamic());
        var error = Assert.Throws<ArgumentException>(() => mapping.Validate("TracedNet", ["fc"], ["Linear"]));
        Assert.Contains("TracedNet", error.Message, StringComparison.Ordinal);
        Assert.Contains("member path 'fc'", error.Message, StringComparison.Ordinal);
        Assert.Contains("dynamic", error.Message, StringComparison.Ordinal);

        mapping.Validate("BoundNet", ["fc"], ["Linear"], allowDynamic: true);
    }
}
