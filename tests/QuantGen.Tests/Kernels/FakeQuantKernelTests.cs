using System;
using System.Linq;
using QuantGen.Qat;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Kernels;

/// <summary>
/// The one-pass CPU fake quantize against its scalar reference (odd lengths, ties, out-of-range values) and the whole
/// autograd function against the same formula written with libtorch's tensor ops.
/// </summary>
public sealed class FakeQuantKernelTests
{
    [Theory]
    [InlineData(1, 0.1f, 0, -128, 127)]
    [InlineData(7, 0.05f, 3, 0, 255)]
    [InlineData(8, 0.02f, 64, 0, 127)]
    [InlineData(37, 1f / 64, -5, -128, 127)]
    [InlineData(1031, 0.0123f, 200, 0, 255)]
    [InlineData(4099, 0.25f, 0, 0, 15)]
    public void The_dispatched_forward_is_the_scalar_reference(int length, float scale, int zeroPoint, int quantMin, int quantMax)
    {
        var random = new Random(length);
        float[] input = new float[length];
        float inverse = 1f / scale;
        for (int i = 0; i < length; i++)
        {
            // A third of the values sit exactly on rounding ties (k + 0.5 steps), some far outside the range.
            input[i] = (i % 3) switch
            {
                0 => (random.Next(-300, 300) + 0.5f) / inverse,
                1 => (float)((random.NextDouble() * 2) - 1) * 400 * scale,
                _ => (float)((random.NextDouble() * 2) - 1) * 40 * scale,
            };
        }

        var expected = new float[length];
        var expectedMask = new byte[length];
        FakeQuantKernel.ForwardScalar(input, expected, expectedMask, inverse, zeroPoint, scale, quantMin, quantMax);
        var actual = new float[length];
        var actualMask = new byte[length];
        FakeQuantKernel.Forward(input, actual, actualMask, inverse, zeroPoint, scale, quantMin, quantMax);

        Assert.Equal(expectedMask, actualMask);
        for (int i = 0; i < length; i++)
        {
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"element {i} of {length}: {input[i]} → scalar {expected[i]}, dispatched {actual[i]}");
        }

        // And the reference is the formula, element by element.
        for (int i = 0; i < length; i++)
        {
            float q = MathF.Round(input[i] * inverse, MidpointRounding.ToEven) + zeroPoint;
            Assert.Equal(q >= quantMin && q <= quantMax ? 1 : 0, expectedMask[i]);
            Assert.Equal((Math.Clamp(q, quantMin, quantMax) - zeroPoint) * scale, expected[i]);
        }
    }

    [Fact]
    public void The_cpu_autograd_function_matches_the_tensor_formulation_forward_and_backward()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);

        // A transposed (non-contiguous) input that requires grad, part of it far outside the range.
        Tensor x = (torch.randn(9, 13) * 3f).t().detach().requires_grad_(true);
        const float Scale = 0.037f;
        const int ZeroPoint = 20;
        Tensor y = FakeQuant.PerTensor(x, Scale, ZeroPoint, 0, 127);
        Tensor upstream = torch.randn(13, 9);
        y.backward([upstream]);

        // Written with libtorch's ops, as PyTorch's formula reads.
        using (torch.no_grad())
        {
            Tensor q = (x * (1f / Scale)).round() + ZeroPoint;
            Tensor expected = (q.clamp(0, 127) - ZeroPoint) * Scale;
            Tensor mask = q.ge(0).logical_and(q.le(127));
            Assert.Equal(expected.contiguous().data<float>().ToArray(), y.contiguous().data<float>().ToArray());
            Assert.Equal((upstream * mask).contiguous().data<float>().ToArray(), x.grad!.contiguous().data<float>().ToArray());
        }
    }

    [Fact]
    public void The_backward_multiplies_by_the_mask_and_reports_a_nan()
    {
        float[] gradient = [1.5f, -2f, float.NaN, -0.5f, 3f];
        byte[] mask = [1, 0, 1, 0, 0];
        var result = new float[5];
        Assert.True(FakeQuantKernel.Backward(gradient, mask, result));
        Assert.Equal(1.5f, result[0]);
        Assert.True(float.IsNegative(result[1]) && result[1] == 0f);   // -2 · 0 = -0, as libtorch's mul gives
        Assert.True(float.IsNaN(result[2]));
        Assert.False(FakeQuantKernel.Backward([1f, 2f], [1, 1], new float[2]));
    }
}
