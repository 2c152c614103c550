using System;
using System.Linq;
using QuantGen.Reports;
using ResNet18Example;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantGen.Tests.Examples;

/// <summary>
/// examples/ResNet18 end to end at a small input size: graph mode (no stubs, automatic fusion, inlined
/// BasicBlocks) against its own Reference (QDQ) form op by op, and seed 001's im2col re-computation of the
/// first 7×7/stride-2 conv from integers.
/// </summary>
public sealed class ResNet18Tests(ITestOutputHelper output)
{
    private const int Size = 48;

    private static (ResNet18 Model, ResNet18.Observed Observed) Calibrated(QConfig qconfig, int seed)
    {
        torch.manual_seed(seed);
        var model = new ResNet18(numClasses: 10);
        Randomize.BatchNormStatistics(model, seed);
        model.eval();
        ResNet18.Observed observed = model.Prepare(qconfig);
        using (torch.no_grad())
        {
            for (int i = 0; i < 2; i++)
            {
                using Tensor batch = torch.randn(1, 3, Size, Size);
                observed.forward(batch).Dispose();
            }
        }

        return (model, observed);
    }

    [Theory]
    [InlineData(QuantBackend.X86)]
    [InlineData(QuantBackend.Qnnpack)]
    public void EveryInt8OpIsWithinOneStepOfItsReferenceOp(QuantBackend backend)
    {
        (ResNet18 model, ResNet18.Observed observed) = Calibrated(QConfig.For(backend), seed: 1);
        using (model)
        using (observed)
        {
            ResNet18.Quantized int8 = observed.Convert();
            using ResNet18.Reference reference = observed.ConvertReference();
            using Tensor image = torch.randn(1, 3, Size, Size);
            QTensor input = int8.input.Forward(image.data<float>().ToArray(), [1, 3, Size, Size]);

            LayerAgreement agreement = LayerAgreement.Measure(
                tap => int8.forward(input, tap),
                tap => reference.forward(image, tap).Dispose());
            output.WriteLine(agreement.ToString());

            long elements = agreement.Rows.Sum(r => (long)r.Elements), exact = agreement.Rows.Sum(r => (long)r.Exact);
            output.WriteLine($"{backend}: {exact}/{elements} elements exact ({100.0 * exact / elements:F3}%) over {agreement.Rows.Count} layers.");

            // conv1, the 8 blocks' convs, downsamples and adds, pools and fc all report.
            Assert.True(agreement.Rows.Count >= 25, $"only {agreement.Rows.Count} layers reported");
            Assert.Contains(agreement.Rows, r => r.Layer == "layer4.1.add");
            Assert.All(agreement.Rows, r => Assert.True(r.MaxSteps <= 1, $"{r.Layer}: {r.MaxSteps} steps off"));
            Assert.True(exact >= 0.99 * elements, $"only {100.0 * exact / elements:F3}% exact");
        }
    }

    [Fact]
    public void FirstConvEqualsAPlainIm2colRecomputationFromTheIntegers()
    {
        (ResNet18 model, ResNet18.Observed observed) = Calibrated(QConfig.X86, seed: 2);
        using (model)
        using (observed)
        {
            ResNet18.Quantized int8 = observed.Convert();
            using Tensor image = torch.randn(1, 3, Size, Size);
            QTensor input = int8.input.Forward(image.data<float>().ToArray(), [1, 3, Size, Size]);
            QTensor? conv1Out = null;
            int8.forward(input, new Capture("conv1", t => conv1Out = t));
            Assert.NotNull(conv1Out);

            // Seed 001's check, in integers: im2col of the quantized input (7×7, stride 2, padding 3, the
            // padding holding the input zero point), times the int8 weight matrix [64, 147], then the X86
            // requantization of docs/numerics.md §4 with the fused ReLU.
            const int k = 7, stride = 2, pad = 3, channels = 3, outChannels = 64;
            int outSize = ((Size + (2 * pad) - k) / stride) + 1;
            int zx = input.ZeroPoint;
            int[] x = input.IntRepr();
            int[] w = int8.conv1.Weight.IntRepr();
            float[] bias = int8.conv1.Bias ?? new float[outChannels];
            int columns = channels * k * k;
            var im2col = new int[outSize * outSize, columns];
            for (int oy = 0; oy < outSize; oy++)
            {
                for (int ox = 0; ox < outSize; ox++)
                {
                    int col = 0;
                    for (int c = 0; c < channels; c++)
                    {
                        for (int ky = 0; ky < k; ky++)
                        {
                            for (int kx = 0; kx < k; kx++)
                            {
                                int iy = (oy * stride) - pad + ky, ix = (ox * stride) - pad + kx;
                                bool inside = iy >= 0 && iy < Size && ix >= 0 && ix < Size;
                                im2col[(oy * outSize) + ox, col++] = inside ? x[(((c * Size) + iy) * Size) + ix] : zx;
                            }
                        }
                    }
                }
            }

            int[] actual = conv1Out!.IntRepr();
            int checkedCount = 0;
            for (int o = 0; o < outChannels; o++)
            {
                float sw = int8.conv1.Weight.QParams.Scales[o];
                float bs = (1.0f / input.Scale) * (1.0f / sw);
                float m = (1.0f / int8.conv1.Scale) / bs;
                for (int p = 0; p < outSize * outSize; p++)
                {
                    int acc = 0;
                    for (int col = 0; col < columns; col++)
                    {
                        acc += (im2col[p, col] - zx) * w[(o * columns) + col];
                    }

                    float scaledBias = bias[o] * bs;
                    float v = MathF.Max(((float)acc + scaledBias) * m, 0f);
                    int expected = Math.Clamp((int)MathF.Round(v + int8.conv1.ZeroPoint, MidpointRounding.ToEven), 0, 255);
                    Assert.Equal(expected, actual[(o * outSize * outSize) + p]);
                    checkedCount++;
                }
            }

            output.WriteLine($"conv1: {checkedCount} outputs equal the im2col re-computation.");
        }
    }

    private sealed class Capture(string layer, Action<QTensor> onOutput) : IQuantizedTap
    {
        public void OnLayer(string name, QTensor output)
        {
            if (name == layer)
            {
                onOutput(output);
            }
        }
    }
}
