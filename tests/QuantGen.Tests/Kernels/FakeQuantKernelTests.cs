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
        FakeQuantKernel.ForwardScalar(input, expected, inverse, zeroPoint, scale, quantMin, quantMax);
        var actual = new float[length];
        FakeQuantKernel.Forward(input, actual, inverse, zeroPoint, scale, quantMin, quantMax);
        for (int i = 0; i < length; i++)
        {
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"element {i} of {length}: {input[i]} → scalar {expected[i]}, dispatched {actual[i]}");
        }

        // The backward, dispatched against scalar, with gradients that include -0, NaN and infinities.
        float[] gradient = new float[length];
        for (int i = 0; i < length; i++)
        {
            gradient[i] = (i % 11) switch
            {
                3 => -0f,
                7 => float.NegativeInfinity,
                _ => (float)((random.NextDouble() * 2) - 1),
            };
        }

        gradient[length / 2] = float.NaN;
        var expectedGradient = new float[length];
        var actualGradient = new float[length];
        Assert.True(FakeQuantKernel.BackwardScalar(input, gradient, expectedGradient, inverse, zeroPoint, quantMin, quantMax));
        Assert.True(FakeQuantKernel.Backward(input, gradient, actualGradient, inverse, zeroPoint, quantMin, quantMax));
        for (int i = 0; i < length; i++)
        {
            Assert.True(BitConverter.SingleToInt32Bits(expectedGradient[i]) == BitConverter.SingleToInt32Bits(actualGradient[i]), $"gradient element {i} of {length}: scalar {expectedGradient[i]}, dispatched {actualGradient[i]}");
        }

        // And the references are the formulas, element by element.
        for (int i = 0; i < length; i++)
        {
            float q = MathF.Round(input[i] * inverse, MidpointRounding.ToEven) + zeroPoint;
            Assert.Equal((Math.Clamp(q, quantMin, quantMax) - zeroPoint) * scale, expected[i]);
            float mask = q >= quantMin && q <= quantMax ? 1f : 0f;
            Assert.Equal(gradient[i] * mask, expectedGradient[i]);
        }
    }

    [Theory]
    [InlineData(FakeQuantKernel.ParallelThreshold - 1)]
    [InlineData(FakeQuantKernel.ParallelThreshold + 13)]
    [InlineData(3 * FakeQuantKernel.ParallelThreshold + 5)]
    public void The_split_passes_are_the_one_thread_passes(int length)
    {
        // Sizes at and past the threshold where the passes are split over the cores: the same bits either way.
        var random = new Random(length);
        float[] input = Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() * 2) - 1) * 3f).ToArray();
        float[] gradient = Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        gradient[length - 1] = float.NaN;
        const float Scale = 0.02f;
        var expected = new float[length];
        var expectedGradient = new float[length];
        FakeQuantKernel.ForwardScalar(input, expected, 1f / Scale, 7, Scale, 0, 255);
        FakeQuantKernel.BackwardScalar(input, gradient, expectedGradient, 1f / Scale, 7, 0, 255);

        using var scope = torch.NewDisposeScope();
        Tensor x = torch.tensor(input).requires_grad_(true);
        Tensor y = FakeQuant.PerTensor(x, Scale, 7, 0, 255);
        Assert.Equal(expected, y.data<float>().ToArray());
        var watch = new GradientWatch("split");
        Tensor x2 = torch.tensor(input).requires_grad_(true);
        FakeQuant.PerTensor(x2, Scale, 7, 0, 255, watch: watch).backward([torch.tensor(gradient)]);
        float[] actualGradient = x2.grad!.data<float>().ToArray();
        for (int i = 0; i < length; i++)
        {
            Assert.True(BitConverter.SingleToInt32Bits(expectedGradient[i]) == BitConverter.SingleToInt32Bits(actualGradient[i]), $"gradient element {i} of {length}");
        }

        Assert.True(watch.NaNSeen);
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

    [Theory]
    [InlineData(13, 0.05f, 0, 0, 255)]
    [InlineData(1031, 0.0123f, 3, 0, 127)]
    [InlineData(FakeQuantKernel.ParallelThreshold + 77, 0.02f, 0, 0, 255)]
    public void Relu_then_fake_quantize_as_one_op_is_relu_followed_by_fake_quantize_bit_for_bit(int length, float scale, int zeroPoint, int quantMin, int quantMax)
    {
        var random = new Random(length);
        float[] input = new float[length];
        float[] gradient = new float[length];
        for (int i = 0; i < length; i++)
        {
            // Negative, zero, −0, ties and far-out values; gradients with −0, NaN and infinities at negative inputs too.
            input[i] = (i % 7) switch
            {
                0 => -0f,
                1 => 0f,
                2 => (random.Next(-50, 300) + 0.5f) * scale,
                3 => (float)((random.NextDouble() * 2) - 1) * 400 * scale,
                _ => (float)((random.NextDouble() * 2) - 1) * 40 * scale,
            };
            gradient[i] = (i % 5) switch
            {
                0 => float.NaN,
                1 => -0f,
                2 => float.PositiveInfinity,
                _ => (float)((random.NextDouble() * 2) - 1),
            };
        }

        // The kernel's dispatched paths against its scalar reference.
        float inverse = 1f / scale;
        var expected = new float[length];
        var actual = new float[length];
        FakeQuantKernel.ForwardScalar(input, expected, inverse, zeroPoint, scale, quantMin, quantMax, rectified: true);
        FakeQuantKernel.Forward(input, actual, inverse, zeroPoint, scale, quantMin, quantMax, rectified: true);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
        var expectedGradient = new float[length];
        var actualGradient = new float[length];
        FakeQuantKernel.BackwardScalar(input, gradient, expectedGradient, inverse, zeroPoint, quantMin, quantMax, rectified: true);
        FakeQuantKernel.Backward(input, gradient, actualGradient, inverse, zeroPoint, quantMin, quantMax, rectified: true);
        Assert.Equal(expectedGradient.Select(BitConverter.SingleToInt32Bits), actualGradient.Select(BitConverter.SingleToInt32Bits));

        // The op against libtorch's relu followed by the plain fake quantize, forward and backward.
        using var scope = torch.NewDisposeScope();
        Tensor fusedInput = torch.tensor(input).requires_grad_(true);
        Tensor fused = FakeQuant.PerTensorAfterRelu(fusedInput, scale, zeroPoint, quantMin, quantMax);
        fused.backward([torch.tensor(gradient)]);
        Tensor plainInput = torch.tensor(input).requires_grad_(true);
        Tensor plain = FakeQuant.PerTensor(torch.nn.functional.relu(plainInput), scale, zeroPoint, quantMin, quantMax);
        plain.backward([torch.tensor(gradient)]);
        Assert.Equal(plain.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits), fused.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(plainInput.grad!.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits), fusedInput.grad!.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), fused.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void A_fake_quantize_allocates_no_more_tensor_storage_than_an_op_that_allocates_only_its_output()
    {
        // Distinct new storages among the tensors an op leaves alive (TorchSharp's dispose scope lists them; several
        // handles may share one storage, and new handles of existing tensors are not allocations). TorchSharp's custom
        // autograd functions carry one storage of their own beside the output, so the yardstick is such a function that
        // allocates nothing but its output (x · 2): the fake quantize must allocate no more (no mask kept from forward
        // to backward), and the fused ReLU + fake quantize one storage less than the ReLU and fake quantize it replaces.
        using var scope = torch.NewDisposeScope();
        Tensor x = torch.randn(4, 8, 16, 16).requires_grad_(true);
        Tensor upstream = torch.randn(4, 8, 16, 16);
        IntPtr[] StoragesOf(System.Collections.Generic.IEnumerable<IDisposable> tensors) => tensors.OfType<Tensor>()
            .Where(t => !t.IsInvalid && t.numel() > 0)
            .Select(t => t.storage<float>().data_ptr())
            .ToArray();
        int Storages(Func<Tensor> op)
        {
            IntPtr[] existing = StoragesOf(scope.DisposablesView);
            int before = scope.DisposablesCount;
            op();
            return StoragesOf(scope.DisposablesView.Skip(before)).Except(existing).Distinct().Count();
        }

        int outputOnly = Storages(() => Doubling.apply(x));
        Assert.Equal(outputOnly, Storages(() => FakeQuant.PerTensor(x, 0.05f, 3, 0, 255)));
        Assert.Equal(outputOnly, Storages(() => FakeQuant.PerTensorAfterRelu(x, 0.05f, 0, 0, 255)));
        Assert.Equal(outputOnly + 1, Storages(() => FakeQuant.PerTensor(torch.nn.functional.relu(x), 0.05f, 0, 0, 255)));

        int doublingBackward = Storages(() => torch.autograd.grad([Doubling.apply(x)], [x], [upstream])[0]);
        Assert.Equal(doublingBackward, Storages(() => torch.autograd.grad([FakeQuant.PerTensor(x, 0.05f, 3, 0, 255)], [x], [upstream])[0]));
    }

    /// <summary>y = 2x as a custom autograd function: allocates its output in the forward and dx in the backward, nothing else.</summary>
    private sealed class Doubling : torch.autograd.SingleTensorFunction<Doubling>
    {
        public override string Name => "Doubling";

        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars) => ((Tensor)vars[0]).mul(2f);

        public override System.Collections.Generic.List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output) => [grad_output.mul(2f)];
    }

    [Fact]
    public void The_backward_multiplies_by_the_recomputed_mask_and_reports_a_nan()
    {
        // Scale 1, zero point 0, range [0, 3]: x = 2 and 2.6 (→ 3) are inside, -1 and 3.6 (→ 4) outside, 2.5 ties to 2.
        float[] input = [2f, -1f, 2.5f, 3.6f, 2.6f];
        float[] gradient = [1.5f, -2f, float.NaN, -0.5f, 3f];
        var result = new float[5];
        Assert.True(FakeQuantKernel.Backward(input, gradient, result, 1f, 0f, 0f, 3f));
        Assert.Equal(1.5f, result[0]);
        Assert.True(float.IsNegative(result[1]) && result[1] == 0f);   // -2 · 0 = -0, as libtorch's mul gives
        Assert.True(float.IsNaN(result[2]));
        Assert.True(float.IsNegative(result[3]) && result[3] == 0f);
        Assert.Equal(3f, result[4]);
        Assert.False(FakeQuantKernel.Backward([1f, 2f], [1f, 2f], new float[2], 1f, 0f, 0f, 3f));
    }
}
