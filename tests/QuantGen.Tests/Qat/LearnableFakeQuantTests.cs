using System;
using System.Linq;
using QuantGen.Observers;
using QuantGen.Qat;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Qat;

/// <summary>
/// LSQ gradients against PyTorch's <c>_fake_quantize_learnable_*_backward</c> formulas, re-derived here as plain loops.
/// The scale and zero-point gradients are sums over many elements; the loops add in double and the tensor code in
/// float32 in another order, so those two are compared to a relative 1e-5 of the sum of absolute terms.
/// </summary>
public class LearnableFakeQuantTests
{
    private sealed record Expected(float[] Output, float[] InputGrad, double ScaleGrad, double ZeroGrad, double Magnitude);

    /// <summary>Per tensor: forward zero point round-half-even(clamp), backward zero point trunc(clamp(z + 0.5)).</summary>
    private static Expected PerTensorReference(float[] x, float[] w, float s, float z, int qmin, int qmax, float g)
    {
        int forwardZero = (int)Math.Clamp(MathF.Round(z, MidpointRounding.ToEven), qmin, qmax);
        float backwardZero = (long)Math.Clamp(z + 0.5f, qmin, qmax);
        float inverse = 1f / s;
        var output = new float[x.Length];
        var dx = new float[x.Length];
        double dScale = 0;
        double dZero = 0;
        double magnitude = 0;
        for (int i = 0; i < x.Length; i++)
        {
            output[i] = FakeQuantReference.Forward(x[i], s, forwardZero, qmin, qmax);
            float q = MathF.Round(x[i] * inverse, MidpointRounding.ToEven) + backwardZero;
            float scaleTerm;
            float zeroTerm;
            if (q >= qmin && q <= qmax)
            {
                dx[i] = w[i];
                float dequantized = (q - backwardZero) * s;
                scaleTerm = w[i] * (dequantized - x[i]) * inverse * g;
                zeroTerm = 0f;
            }
            else
            {
                scaleTerm = w[i] * ((q < qmin ? qmin : qmax) - backwardZero) * g;
                zeroTerm = -w[i] * s * g;
            }

            dScale += scaleTerm;
            dZero += zeroTerm;
            magnitude += Math.Abs(scaleTerm) + Math.Abs(zeroTerm);
        }

        return new Expected(output, dx, dScale, dZero, magnitude);
    }

    [Fact]
    public void PerTensorGradientsFollowPyTorchsFormulas()
    {
        // z = 2.5: the forward rounds it to 2 (half to even), the backward takes trunc(3.0) = 3, as PyTorch does.
        float s = 0.1f;
        float z = 2.5f;
        float[] values = FakeQuantReference.RandomValues(400, seed: 21, spread: 30f);
        float[] weights = FakeQuantReference.RandomValues(400, seed: 22, spread: 1f);
        using Tensor input = tensor(values).requires_grad_(true);
        using Tensor weight = tensor(weights);
        using Tensor scale = tensor(new[] { s }).requires_grad_(true);
        using Tensor zeroPoint = tensor(new[] { z }).requires_grad_(true);

        using Tensor output = LearnableFakeQuant.Apply(input, scale, zeroPoint, 0, 255, -1, 1f);
        using Tensor loss = output.mul(weight).sum();
        loss.backward();

        Expected expected = PerTensorReference(values, weights, s, z, 0, 255, 1f);
        Assert.Equal(expected.Output, output.detach().data<float>().ToArray());
        Assert.Equal(expected.InputGrad, input.grad!.data<float>().ToArray());
        Assert.Equal([1L], scale.grad!.shape);
        Assert.Equal(expected.ScaleGrad, scale.grad!.item<float>(), 1e-5 * expected.Magnitude);
        Assert.Equal(expected.ZeroGrad, zeroPoint.grad!.item<float>(), 1e-5 * expected.Magnitude);

        // Both clipping sides occur, so all three branches were exercised.
        Assert.Contains(values, v => v / s + 3 < 0);
        Assert.Contains(values, v => v / s + 3 > 255);
    }

    [Fact]
    public void PerChannelGradientsAreSummedPerChannel()
    {
        // Shape [2, 5], channels on axis 0; zero points 1.5 -> 2 (half to even) and -3.
        float[] scales = [0.1f, 0.05f];
        float[] zeros = [1.5f, -3f];
        int[] roundedZeros = [2, -3];
        float[] values = FakeQuantReference.RandomValues(10, seed: 5, spread: 15f);
        float[] weights = FakeQuantReference.RandomValues(10, seed: 6, spread: 1f);
        float g = 0.25f;
        using Tensor input = tensor(values, new long[] { 2, 5 }).requires_grad_(true);
        using Tensor weight = tensor(weights, new long[] { 2, 5 });
        using Tensor scale = tensor(scales).requires_grad_(true);
        using Tensor zeroPoint = tensor(zeros).requires_grad_(true);

        using Tensor output = LearnableFakeQuant.Apply(input, scale, zeroPoint, -128, 127, 0, g);
        using Tensor loss = output.mul(weight).sum();
        loss.backward();

        float[] actualOutput = output.detach().data<float>().ToArray();
        float[] inputGrad = input.grad!.data<float>().ToArray();
        float[] scaleGrad = scale.grad!.data<float>().ToArray();
        float[] zeroGrad = zeroPoint.grad!.data<float>().ToArray();
        for (int c = 0; c < 2; c++)
        {
            float sc = scales[c];
            float zc = roundedZeros[c];
            float inverse = 1f / sc;
            double dScale = 0;
            double dZero = 0;
            double magnitude = 0;
            for (int k = 0; k < 5; k++)
            {
                int i = (c * 5) + k;
                Assert.Equal(FakeQuantReference.Forward(values[i], sc, roundedZeros[c], -128, 127), actualOutput[i]);

                // Per channel PyTorch rounds z + x/s as a whole.
                float q = MathF.Round(zc + (values[i] * inverse), MidpointRounding.ToEven);
                bool inside = q >= -128 && q <= 127;
                Assert.Equal(inside ? weights[i] : 0f, inputGrad[i]);
                float scaleTerm = inside
                    ? weights[i] * (((q - zc) * sc) - values[i]) * inverse * g
                    : weights[i] * ((q < -128 ? -128 : 127) - zc) * g;
                float zeroTerm = inside ? 0f : -weights[i] * sc * g;
                dScale += scaleTerm;
                dZero += zeroTerm;
                magnitude += Math.Abs(scaleTerm) + Math.Abs(zeroTerm);
            }

            Assert.Equal(dScale, scaleGrad[c], (1e-5 * magnitude) + 1e-12);
            Assert.Equal(dZero, zeroGrad[c], (1e-5 * magnitude) + 1e-12);
        }
    }

    [Fact]
    public void TheModuleScalesGradientsByOneOverTheRootOfNumelTimesQuantMax()
    {
        var spec = FakeQuantSpec.Learnable(ObserverSpec.MovingAverageMinMax(), useGradScaling: true);
        var module = (LearnableFakeQuantize)spec.Create("Net.act");
        float[] values = FakeQuantReference.RandomValues(10, seed: 8, spread: 2f);

        // Phase 1 (default, static estimate): the observer sets scale and zero point.
        using (Tensor first = module.forward(tensor(values)))
        {
        }

        QParams fromObserver = module.Observer.CalculateQParams();
        Assert.Equal(fromObserver.Scale, module.Scale.item<float>());
        Assert.Equal(fromObserver.ZeroPoint, module.ZeroPoint.item<float>());

        // Phase 2: learn. numel 10, quant_max 255 -> g = 1 / sqrt(2550).
        module.EnableParamLearning();
        Assert.False(module.ObserverEnabled);
        float g = (float)(1.0 / Math.Sqrt(10.0 * 255.0));
        float[] weights = FakeQuantReference.RandomValues(10, seed: 9, spread: 1f);
        using Tensor input = tensor(values).requires_grad_(true);
        using Tensor loss = module.forward(input).mul(tensor(weights)).sum();
        loss.backward();

        Expected expected = PerTensorReference(values, weights, fromObserver.Scale, fromObserver.ZeroPoint, 0, 255, g);
        Assert.Equal(expected.ScaleGrad, module.Scale.grad!.item<float>(), (1e-5 * expected.Magnitude) + 1e-12);
        Assert.Equal(expected.ZeroGrad, module.ZeroPoint.grad!.item<float>(), (1e-5 * expected.Magnitude) + 1e-12);
        Assert.Equal(g, LearnableFakeQuantize.GradFactor(10, 255));
    }

    [Fact]
    public void ConvertQParamsRoundTheLearnedZeroPointHalfToEven()
    {
        var module = (LearnableFakeQuantize)FakeQuantSpec.Learnable(ObserverSpec.MovingAverageMinMax()).Create("Net.act");
        module.EnableParamLearning();
        using (no_grad())
        {
            module.Scale.fill_(0.02f);
            module.ZeroPoint.fill_(12.5f);
        }

        QParams q = module.CalculateQParams();
        Assert.Equal(0.02f, q.Scale);
        Assert.Equal(12, q.ZeroPoint);
    }

    [Fact]
    public void AScaleDrivenToZeroOrBelowIsAnErrorNamingTheLayer()
    {
        var module = (LearnableFakeQuantize)FakeQuantSpec.Learnable(ObserverSpec.MovingAverageMinMax()).Create("Net.relu1");
        module.EnableParamLearning();
        using (no_grad())
        {
            module.Scale.fill_(-0.5f);
        }

        var error = Assert.Throws<InvalidOperationException>(() => module.forward(tensor(new[] { 1f, 2f })));
        Assert.Contains("Net.relu1", error.Message);
        Assert.Contains("learned scale", error.Message);
        Assert.Throws<InvalidOperationException>(() => module.CalculateQParams());
    }

    [Fact]
    public void SymmetricSchemesKeepTheZeroPointAtZero()
    {
        var spec = FakeQuantSpec.Learnable(ObserverSpec.MovingAveragePerChannelMinMax());
        var module = (LearnableFakeQuantize)spec.Create("Net.fc.weight", channels: 2);
        module.EnableParamLearning();
        using (no_grad())
        {
            module.ZeroPoint.fill_(3f);
        }

        using Tensor output = module.forward(tensor(new[] { 0.5f, -0.5f, 0.25f, 1f }, new long[] { 2, 2 }));
        Assert.Equal([0f, 0f], module.ZeroPoint.data<float>().ToArray());

        // Scale 1 (the starting value), zero point 0: round(x) per element.
        Assert.Equal([0f, -0f, 0f, 1f], output.data<float>().ToArray());
    }
}
