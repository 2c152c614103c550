using System;
using System.Linq;
using QuantGen.Onnx;
using QuantGen.Onnx.Protobuf;
using QuantGen.Tests.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>ONNX export of a model bound at Prepare, ReLU6 included, run in ONNX Runtime against QuantGen's int8 output.</summary>
[Collection(SeededTorchCollection.Name)]
public sealed class BoundModelOnnxTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [SkippableTheory]
    [InlineData(OnnxForm.Qdq)]
    [InlineData(OnnxForm.QOperator)]
    public void A_bound_model_with_ReLU6_exports_and_ORT_agrees_within_one_step(OnnxForm form)
    {
        torch.manual_seed(31);
        using var model = new RealModels.MobileNetV2(numClasses: 10, widthMult: 0.35);
        RealModels.Randomize.BatchNormStatistics(model, 31);
        model.eval();
        using RealModels.MobileNetV2.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            for (int i = 0; i < 2; i++)
            {
                observed.forward(torch.randn(1, 3, 32, 32)).Dispose();
            }
        }

        RealModels.MobileNetV2.Quantized int8 = observed.Convert();
        byte[] onnx = OnnxExporter.Export(int8, new OnnxExportOptions { Form = form });
        ModelProto proto = ModelProto.Parser.ParseFrom(onnx);
        Assert.Contains(proto.Graph.Node, n => n.OpType == "Clip");
        Assert.Equal(35, proto.Graph.Node.Count(n => n.OpType == "Clip"));

        var random = new Random(5);
        float[] reference = Array.Empty<float>();
        float[] image = Enumerable.Range(0, 3 * 32 * 32).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        float[] quantGen = int8.forward(image, [1, 3, 32, 32], out int[] shape);
        float logitStep = int8.Layers.OfType<QuantGen.Modules.QuantizedLinear>().Last().OutputQParams.Scale;
        if (form == OnnxForm.Qdq)
        {
            // ORT's float execution of the QDQ graph is the QDQ reference; the int8 model stays within one step of it
            // at the logits here (1.00 measured), ReLU6 clamps included.
            OrtResult asWritten = OnnxTestSupport.RunQdqAsWritten(onnx, image, [1, 3, 32, 32]);
            float drift = quantGen.Zip(asWritten.Output).Max(p => MathF.Abs(p.First - p.Second)) / logitStep;
            output.WriteLine($"QDQ reference vs QuantGen int8 at the logits: max {drift:F2} steps");
            Assert.True(drift <= 1.01f, $"QDQ reference: the logits are {drift:F2} steps from QuantGen's");
        }

        OrtResult ort = OnnxTestSupport.Run(onnx, image, [1, 3, 32, 32]);
        Assert.Equal(shape, ort.Shape);
        float worst = quantGen.Zip(ort.Output).Max(p => MathF.Abs(p.First - p.Second)) / logitStep;
        Assert.True(worst <= 1.01f, $"{form}: ORT's output is {worst:F2} steps from QuantGen's");
    }
}
