using System;
using System.Linq;
using CenterNetHeadExample;
using QuantGen.Modules;
using QuantGen.Reports;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantGen.Tests.Examples;

/// <summary>
/// examples/CenterNetHead end to end at a small input size with the qconfig its [QConfig] attributes declare
/// (seed 002's: symmetric qint8 activations, ConvTranspose2d weights per channel on axis 1): every int8 op
/// against its Reference (QDQ) op, and the deconvolution weights' quantization.
/// </summary>
public sealed class CenterNetHeadTests(ITestOutputHelper output)
{
    private const int Size = 32;

    private static (CenterNetHead Model, CenterNetHead.Observed Observed) Calibrated(int seed)
    {
        torch.manual_seed(seed);
        var model = new CenterNetHead();
        model.eval();
        CenterNetHead.Observed observed = model.Prepare();
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

    [Fact]
    public void EveryInt8OpIsWithinOneStepOfItsReferenceOp()
    {
        (CenterNetHead model, CenterNetHead.Observed observed) = Calibrated(seed: 1);
        using (model)
        using (observed)
        {
            CenterNetHead.Quantized int8 = observed.Convert();
            using CenterNetHead.Reference reference = observed.ConvertReference();
            using Tensor image = torch.randn(1, 3, Size, Size);
            QTensor input = int8.input.Forward(image.data<float>().ToArray(), [1, 3, Size, Size]);

            LayerAgreement agreement = LayerAgreement.Measure(
                tap => int8.forward(input, tap),
                tap => reference.forward(image, tap).Dispose());
            output.WriteLine(agreement.ToString());

            long elements = agreement.Rows.Sum(r => (long)r.Elements), exact = agreement.Rows.Sum(r => (long)r.Exact);
            output.WriteLine($"{exact}/{elements} elements exact ({100.0 * exact / elements:F3}%) over {agreement.Rows.Count} layers.");

            // input, 3 backbone convs, the conv and 3 deconvs of the upsampler, 2 convs per head and the cat.
            Assert.Equal(15, agreement.Rows.Count);
            Assert.Contains(agreement.Rows, r => r.Layer == "deconv_layers.7");
            Assert.Contains(agreement.Rows, r => r.Layer == "cat");
            Assert.All(agreement.Rows, r => Assert.True(r.MaxSteps <= 1, $"{r.Layer}: {r.MaxSteps} steps off"));
            Assert.All(agreement.Rows, r => Assert.True(r.ExactShare >= 0.99, $"{r.Layer}: only {100 * r.ExactShare:F3}% exact"));
        }
    }

    [Fact]
    public void DeconvolutionWeightsArePerChannelOnAxisOneAndActivationsQInt8()
    {
        (CenterNetHead model, CenterNetHead.Observed observed) = Calibrated(seed: 2);
        using (model)
        using (observed)
        {
            CenterNetHead.Quantized int8 = observed.Convert();
            Assert.All(observed.Observers, o => Assert.Equal(QuantDType.QInt8, o.Spec.DType));
            Assert.All(observed.Observers, o => Assert.Equal(QScheme.PerTensorSymmetric, o.Spec.Scheme));

            var modules = ModuleLookup.Index(model);
            foreach ((string path, QuantizedConvTranspose2d layer) in new[]
            {
                ("deconv_layers.1", int8.deconv_layers_1),
                ("deconv_layers.4", int8.deconv_layers_4),
                ("deconv_layers.7", int8.deconv_layers_7),
            })
            {
                Assert.Equal(QuantDType.QInt8, layer.InputQParams.DType);
                Assert.Equal(QuantDType.QInt8, layer.OutputQParams.DType);
                QParams weight = layer.Weight.QParams;
                Assert.True(weight.IsPerChannel, path);
                Assert.Equal(1, weight.Axis);
                Assert.Equal(QuantDType.QInt8, weight.DType);
                Assert.Equal(32, weight.Scales.Length);
                Assert.All(weight.ZeroPoints, zp => Assert.Equal(0, zp));

                // Symmetric per output channel j: the slice [:, j] reaches the end of the int8 range (-128 or
                // 127), which a per-tensor scale or one along axis 0 would not do for every j.
                int[] shape = layer.Weight.Shape;
                for (int j = 0; j < shape[1]; j++)
                {
                    int largest = 0;
                    for (int i = 0; i < shape[0]; i++)
                    {
                        for (int h = 0; h < shape[2]; h++)
                        {
                            for (int w = 0; w < shape[3]; w++)
                            {
                                largest = Math.Max(largest, Math.Abs(layer.Weight.IntAt(i, j, h, w)));
                            }
                        }
                    }

                    Assert.True(largest >= 127, $"{path} channel {j}: largest |q| is {largest}");
                }

                // The scales follow the float weight's per-output-channel range: max |w[:, j]| * (the folded
                // BatchNorm's gamma / sqrt(var + eps)) / 127.5, recomputed here with TorchSharp. Relative
                // tolerance 1e-5 because the fold is done in a different order of float operations.
                var deconv = (TorchSharp.Modules.ConvTranspose2d)modules[path];
                var bn = (TorchSharp.Modules.BatchNorm2d)modules[path[..^1] + (char)(path[^1] + 1)];
                using var noGrad = torch.no_grad();
                using Tensor factor = bn.weight! / torch.sqrt(bn.running_var! + bn.eps);
                using Tensor amax = deconv.weight!.abs().amax([0L, 2L, 3L]) * factor.abs();
                float[] expected = (amax / 127.5f).data<float>().ToArray();
                for (int j = 0; j < expected.Length; j++)
                {
                    Assert.True(Math.Abs(weight.Scales[j] - expected[j]) <= 1e-5f * expected[j], $"{path} channel {j}: scale {weight.Scales[j]} vs {expected[j]}");
                }
            }
        }
    }
}
