using System;
using System.Linq;
using QuantGen;
using QuickStart;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantGen.Tests.Seeds;

/// <summary>
/// Seed 000 end to end, on the QuickStart's own model (examples/QuickStart/M.cs): fuse conv1+relu,
/// prepare, calibrate, convert, and the seed's hand re-computation of conv1 from the integers.
/// </summary>
public sealed class Seed000Tests(ITestOutputHelper output)
{
    private static (M Model, M.Quantized Int8, Tensor Input) Quantize(QConfig qconfig, int seed)
    {
        torch.manual_seed(seed);
        var model = new M();
        model.eval();
        using M.Observed observed = model.Prepare(qconfig);
        Tensor input = torch.randn(1, 1, 2, 3);
        using (torch.no_grad())
        {
            observed.forward(input).Dispose();
        }

        return (model, observed.Convert(), input);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(123)]
    public void Conv1ByHandEqualsInt8Conv1(int seed)
    {
        (M model, M.Quantized int8, Tensor input) = Quantize(QConfig.X86, seed);
        using (model)
        using (input)
        {
            QTensor qx = int8.quant.Forward(input.data<float>().ToArray(), [1, 1, 2, 3]);
            int[] byHand = HandComputation.ContractX86(qx, int8.conv1, out int[] shape);
            QTensor actual = int8.conv1.Forward(qx);

            Assert.Equal([1, 1, 2, 3], shape);
            Assert.Equal(byHand, actual.IntRepr());
        }
    }

    [Fact]
    public void SingleSymmetricWeightLandsOn127WithScaleAbsOver127Point5()
    {
        (M model, M.Quantized int8, Tensor input) = Quantize(QConfig.X86, 7);
        using (model)
        using (input)
        {
            float w = model.Conv1.weight!.data<float>()[0];
            // Symmetric qint8 per-channel: scale = |w| / 127.5 (float32), and w / scale = ±127.5 → ±128 →
            // clamps to 127, or to -128 when w is negative (docs/numerics.md §1).
            Assert.Equal(MathF.Abs(w) / 127.5f, int8.conv1.Weight.QParams.Scales[0]);
            Assert.Equal(w > 0 ? 127 : -128, int8.conv1.Weight.IntRepr()[0]);
        }
    }

    [Theory]
    [InlineData(QuantBackend.X86)]
    [InlineData(QuantBackend.Qnnpack)]
    public void Int8OutputIsWithinOneStepOfFloatOpsOnDequantizedValues(QuantBackend backend)
    {
        int total = 0, exact = 0;
        for (int seed = 0; seed < 20; seed++)
        {
            (M model, M.Quantized int8, Tensor input) = Quantize(QConfig.For(backend), seed);
            using (model)
            using (input)
            {
                QTensor qx = int8.quant.Forward(input.data<float>().ToArray(), [1, 1, 2, 3]);
                QTensor y1 = int8.conv1.Forward(qx);

                // QDQ reference: dequantize input and weight, float conv + bias + relu in TorchSharp,
                // quantize with conv1's output qparams by the contract's formula.
                using Tensor dqx = torch.tensor(qx.Dequantize(), [1, 1, 2, 3]);
                using Tensor dqw = torch.tensor(int8.conv1.Weight.Dequantize(), [1, 1, 1, 1]);
                using Tensor bias = torch.tensor(int8.conv1.Bias!, [1]);
                using Tensor reference = torch.nn.functional.relu(torch.nn.functional.conv2d(dqx, dqw, bias));
                float[] referenceValues = reference.data<float>().ToArray();
                int[] actual = y1.IntRepr();
                for (int i = 0; i < actual.Length; i++)
                {
                    float scaled = referenceValues[i] * (1.0f / int8.conv1.Scale);
                    int expected = Math.Clamp((int)MathF.Round(scaled, MidpointRounding.ToEven) + int8.conv1.ZeroPoint, 0, 255);
                    Assert.InRange(actual[i] - expected, -1, 1);
                    total++;
                    exact += actual[i] == expected ? 1 : 0;
                }
            }
        }

        output.WriteLine($"{backend}: {exact}/{total} conv1 outputs equal the QDQ float reference exactly ({100.0 * exact / total:F1}%).");
    }

    [Fact]
    public void FloatAndInt8OutputsAgreeToAFewOutputSteps()
    {
        (M model, M.Quantized int8, Tensor input) = Quantize(QConfig.X86, 7);
        using (model)
        using (input)
        using (torch.no_grad())
        {
            using Tensor floatOut = model.forward(input);
            using Tensor int8Out = int8.forward(input);
            float[] f = floatOut.data<float>().ToArray();
            float[] q = int8Out.data<float>().ToArray();
            // Two quantized layers, each within half a step of its own float value plus the input's
            // rounding carried through: a few output steps bound the whole model's error.
            float bound = 4 * int8.conv2.Scale;
            for (int i = 0; i < f.Length; i++)
            {
                Assert.InRange(q[i] - f[i], -bound, bound);
            }
        }
    }
}
