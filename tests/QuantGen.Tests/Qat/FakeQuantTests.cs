using System;
using System.Linq;
using QuantGen.Qat;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Qat;

public class FakeQuantTests
{
    [Fact]
    public void PerTensorForwardEqualsAnIndependentFloatLoop()
    {
        // Values beyond both ends of the range, plus exact ties (s = 0.25: x * 4 exact) to check round half to even.
        float scale = 0.25f;
        int zeroPoint = 3;
        float[] values = [.. FakeQuantReference.RandomValues(200, seed: 7, spread: 40f), 0.625f, 0.875f, -0.625f, 1.125f, 0f];
        using Tensor input = tensor(values);

        using Tensor output = FakeQuant.PerTensor(input, scale, zeroPoint, 0, 127, "M.act");

        float[] actual = output.data<float>().ToArray();
        for (int i = 0; i < values.Length; i++)
        {
            Assert.Equal(FakeQuantReference.Forward(values[i], scale, zeroPoint, 0, 127), actual[i]);
        }
    }

    [Fact]
    public void TiesRoundHalfToEvenLikeNearbyint()
    {
        // s = 0.5: 1.25 -> 2.5 -> 2 -> 1.0; 1.75 -> 3.5 -> 4 -> 2.0; -1.25 -> -2.5 -> -2 -> -1.0 (qint8, z = 0).
        using Tensor input = tensor(new[] { 1.25f, 1.75f, -1.25f });
        using Tensor output = FakeQuant.PerTensor(input, 0.5f, 0, -128, 127);
        Assert.Equal([1.0f, 2.0f, -1.0f], output.data<float>().ToArray());
    }

    [Fact]
    public void PerTensorBackwardIsTheIncomingGradientWhereTheUnclampedValueIsInRange()
    {
        // qint8, s = 0.5, z = 0: 63.5 -> 127 (in), 63.74 -> 127.48 -> 127 (in), 63.75 -> 127.5 -> 128 (out),
        // -64 -> -128 (in), -64.25 -> -128.5 -> -128 (in: ties to even), -64.3 -> -128.6 -> -129 (out).
        float[] values = [63.5f, 63.74f, 63.75f, -64f, -64.25f, -64.3f, 0.1f];
        float[] weights = [1.5f, -2f, 3f, 0.5f, -1f, 7f, 2.5f];
        bool[] expectedInside = [true, true, false, true, true, false, true];
        using Tensor input = tensor(values).requires_grad_(true);
        using Tensor weight = tensor(weights);

        using Tensor output = FakeQuant.PerTensor(input, 0.5f, 0, -128, 127);
        using Tensor loss = output.mul(weight).sum();
        loss.backward();

        float[] gradient = input.grad!.data<float>().ToArray();
        for (int i = 0; i < values.Length; i++)
        {
            Assert.Equal(expectedInside[i], FakeQuantReference.InRange(values[i], 0.5f, 0, -128, 127));
            Assert.Equal(expectedInside[i] ? weights[i] : 0f, gradient[i]);
        }
    }

    [Fact]
    public void PerTensorBackwardMatchesTheMaskFormulaOnRandomData()
    {
        float scale = 0.05f;
        int zeroPoint = 10;
        float[] values = FakeQuantReference.RandomValues(300, seed: 11, spread: 8f);
        float[] weights = FakeQuantReference.RandomValues(300, seed: 12, spread: 1f);
        using Tensor input = tensor(values).requires_grad_(true);
        using Tensor weight = tensor(weights);

        using Tensor loss = FakeQuant.PerTensor(input, scale, zeroPoint, 0, 127).mul(weight).sum();
        loss.backward();

        float[] gradient = input.grad!.data<float>().ToArray();
        int clipped = 0;
        for (int i = 0; i < values.Length; i++)
        {
            bool inside = FakeQuantReference.InRange(values[i], scale, zeroPoint, 0, 127);
            clipped += inside ? 0 : 1;
            Assert.Equal(inside ? weights[i] : 0f, gradient[i]);
        }

        Assert.InRange(clipped, 50, 250);
    }

    [Fact]
    public void PerTensorGradientAgreesWithFiniteDifferencesOfTheStaircaseInsideTheRange()
    {
        // The fake-quant output is a staircase with steps of s (x plus an error of at most s/2), so a central
        // difference over h = 20 s sees slope 1 within s / (2h) = 2.5% inside the range (the straight-through
        // estimate), and exactly 0 on the clipped plateau.
        float scale = 0.01f;
        float step = 20 * scale;
        float[] values = [-0.4f, 0.3f, 0.05f, 5f];
        float[] weights = [2f, -3f, 0.5f, 4f];
        using Tensor input = tensor(values).requires_grad_(true);
        using Tensor weight = tensor(weights);
        using Tensor loss = FakeQuant.PerTensor(input, scale, 128, 0, 255).mul(weight).sum();
        loss.backward();
        float[] gradient = input.grad!.data<float>().ToArray();

        for (int i = 0; i < values.Length; i++)
        {
            double Loss(float xi)
            {
                double total = 0;
                for (int j = 0; j < values.Length; j++)
                {
                    total += weights[j] * FakeQuantReference.Forward(j == i ? xi : values[j], scale, 128, 0, 255);
                }

                return total;
            }

            double finiteDifference = (Loss(values[i] + step) - Loss(values[i] - step)) / (2 * step);
            Assert.Equal(finiteDifference, gradient[i], Math.Abs(weights[i]) * 0.026);
        }

        Assert.Equal(0f, gradient[3]);
    }

    [Fact]
    public void PerChannelForwardAndBackwardMatchTheLoopOnAxisOne()
    {
        int[] shape = [2, 3, 4];
        int axis = 1;
        float[] scales = [0.1f, 0.02f, 0.5f];
        int[] zeroPoints = [0, -5, 7];
        float[] values = FakeQuantReference.RandomValues(24, seed: 3, spread: 5f);
        float[] weights = FakeQuantReference.RandomValues(24, seed: 4, spread: 1f);
        using Tensor input = tensor(values, new long[] { 2, 3, 4 }).requires_grad_(true);
        using Tensor weight = tensor(weights, new long[] { 2, 3, 4 });

        using Tensor output = FakeQuant.PerChannel(input, scales, zeroPoints, axis, -128, 127, "M.conv.weight");
        using Tensor loss = output.mul(weight).sum();
        loss.backward();

        float[] actual = output.detach().data<float>().ToArray();
        float[] gradient = input.grad!.data<float>().ToArray();
        int clipped = 0;
        for (int i = 0; i < values.Length; i++)
        {
            int c = FakeQuantReference.ChannelOf(i, shape, axis);
            Assert.Equal(FakeQuantReference.Forward(values[i], scales[c], zeroPoints[c], -128, 127), actual[i]);
            bool inside = FakeQuantReference.InRange(values[i], scales[c], zeroPoints[c], -128, 127);
            clipped += inside ? 0 : 1;
            Assert.Equal(inside ? weights[i] : 0f, gradient[i]);
        }

        // Channel 1 (s = 0.02, range about ±2.5) clips some of the ±5 values; the others clip none.
        Assert.InRange(clipped, 1, 8);
    }

    [Fact]
    public void PerChannelGradientAgreesWithFiniteDifferencesInsideTheRange()
    {
        float[] scales = [0.01f, 0.002f];
        int[] zeroPoints = [0, 0];
        float[] values = [0.3f, -0.2f, 0.05f, -0.1f];
        float[] weights = [1f, -2f, 3f, 0.5f];
        int[] shape = [2, 2];
        using Tensor input = tensor(values, new long[] { 2, 2 }).requires_grad_(true);
        using Tensor weight = tensor(weights, new long[] { 2, 2 });
        using Tensor loss = FakeQuant.PerChannel(input, scales, zeroPoints, 0, -128, 127).mul(weight).sum();
        loss.backward();
        float[] gradient = input.grad!.data<float>().ToArray();

        for (int i = 0; i < values.Length; i++)
        {
            int c = FakeQuantReference.ChannelOf(i, shape, 0);
            float h = 20 * scales[c];
            float up = FakeQuantReference.Forward(values[i] + h, scales[c], 0, -128, 127);
            float down = FakeQuantReference.Forward(values[i] - h, scales[c], 0, -128, 127);
            double finiteDifference = weights[i] * (up - down) / (2.0 * h);
            Assert.Equal(finiteDifference, gradient[i], Math.Abs(weights[i]) * 0.026);
        }
    }

    [Fact]
    public void AZeroPointOutsideTheRangeCannotRepresentZeroAndIsRefused()
    {
        using Tensor input = tensor(new[] { 1f });
        var error = Assert.Throws<ArgumentException>(() => FakeQuant.PerTensor(input, 0.1f, 300, 0, 255, "Net.fc1"));
        Assert.Contains("Net.fc1", error.Message);
        Assert.Contains("cannot represent 0", error.Message);

        var perChannel = Assert.Throws<ArgumentException>(() => FakeQuant.PerChannel(input, [0.1f], [-129], 0, -128, 127, "Net.fc1.weight"));
        Assert.Contains("channel 0", perChannel.Message);
    }

    [Fact]
    public void BadScalesAndShapesAreRefusedNamingTheLayer()
    {
        using Tensor input = tensor(new[] { 1f, 2f });
        Assert.Contains("positive and finite", Assert.Throws<ArgumentException>(() => FakeQuant.PerTensor(input, 0f, 0, 0, 255, "Net.act")).Message);
        Assert.Contains("needs 2 scales", Assert.Throws<ArgumentException>(() => FakeQuant.PerChannel(input, [1f], [0], 0, -128, 127, "Net.w")).Message);
        using Tensor doubles = tensor(new[] { 1.0, 2.0 });
        Assert.Contains("float32", Assert.Throws<ArgumentException>(() => FakeQuant.PerTensor(doubles, 0.1f, 0, 0, 255, "Net.act")).Message);
    }
}
