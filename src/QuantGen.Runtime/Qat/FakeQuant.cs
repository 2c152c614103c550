using System;
using System.Collections.Generic;
using System.Globalization;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Qat;

/// <summary>
/// Fake quantization with a straight-through gradient, as TorchSharp autograd functions: the forward is
/// <c>(clamp(round(x · (1/s)) + z, qmin, qmax) − z) · s</c> in float32, rounding half to even (PyTorch's
/// <c>nearbyint</c>); the backward passes <c>dy</c> where the unclamped <c>round(x · (1/s)) + z</c> lies in
/// [qmin, qmax] and zero elsewhere. Scale and zero point get no gradient (see <see cref="LearnableFakeQuantize"/> for that).
/// </summary>
/// <remarks>
/// PyTorch's <c>fake_quantize_per_tensor_affine</c> and <c>fake_quantize_per_channel_affine</c>; TorchSharp's binding
/// of the former is marked obsolete and not implemented. Apart from its input, the forward allocates its output and
/// the boolean mask the backward needs (PyTorch's <c>_cachemask</c> variants keep the same mask).
/// </remarks>
public static class FakeQuant
{
    /// <summary>Fake-quantizes <paramref name="input"/> with one scale and zero point.</summary>
    /// <param name="input">A float32 tensor.</param>
    /// <param name="scale">The scale, positive and finite.</param>
    /// <param name="zeroPoint">The zero point, in [<paramref name="quantMin"/>, <paramref name="quantMax"/>] so that 0 is representable.</param>
    /// <param name="quantMin">The smallest quantized value.</param>
    /// <param name="quantMax">The largest quantized value.</param>
    /// <param name="layer">The quantization point, "Model.member", named in errors.</param>
    /// <param name="watch">Records a NaN gradient reaching this point in the backward; null for none.</param>
    /// <returns>The fake-quantized tensor, differentiable with respect to <paramref name="input"/>.</returns>
    /// <exception cref="ArgumentException">A non-float32 input, a scale that is not positive and finite, or a zero point outside the range.</exception>
    public static Tensor PerTensor(Tensor input, float scale, int zeroPoint, int quantMin, int quantMax, string layer = "fake_quant", GradientWatch? watch = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        CheckInput(input, layer);
        CheckRange(quantMin, quantMax, layer);
        CheckScale(scale, -1, layer);
        CheckZeroPoint(zeroPoint, -1, quantMin, quantMax, layer);
        return FakeQuantPerTensorFunction.apply(input, scale, zeroPoint, quantMin, quantMax, watch!);
    }

    /// <summary>Fake-quantizes <paramref name="input"/> with one scale and zero point per index of <paramref name="axis"/>.</summary>
    /// <param name="input">A float32 tensor.</param>
    /// <param name="scales">One positive, finite scale per channel.</param>
    /// <param name="zeroPoints">One zero point per channel, each in [<paramref name="quantMin"/>, <paramref name="quantMax"/>].</param>
    /// <param name="axis">The channel axis (negative counts from the end).</param>
    /// <param name="quantMin">The smallest quantized value.</param>
    /// <param name="quantMax">The largest quantized value.</param>
    /// <param name="layer">The quantization point, "Model.member", named in errors.</param>
    /// <param name="watch">Records a NaN gradient reaching this point in the backward; null for none.</param>
    /// <returns>The fake-quantized tensor, differentiable with respect to <paramref name="input"/>.</returns>
    /// <exception cref="ArgumentException">A non-float32 input, an axis outside its rank, a channel count that differs from the tensor's, or a bad scale or zero point.</exception>
    public static Tensor PerChannel(Tensor input, float[] scales, int[] zeroPoints, int axis, int quantMin, int quantMax, string layer = "fake_quant", GradientWatch? watch = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(scales);
        ArgumentNullException.ThrowIfNull(zeroPoints);
        CheckInput(input, layer);
        CheckRange(quantMin, quantMax, layer);
        int resolved = ResolveAxis(input, axis, layer);
        long channels = input.shape[resolved];
        if (scales.Length != channels || zeroPoints.Length != channels)
        {
            throw new ArgumentException(
                $"{layer}: per-channel fake quantize along axis {axis} of a tensor of shape [{string.Join(", ", input.shape)}] needs {channels} scales and zero points, got {scales.Length} and {zeroPoints.Length}.");
        }

        for (int c = 0; c < scales.Length; c++)
        {
            CheckScale(scales[c], c, layer);
            CheckZeroPoint(zeroPoints[c], c, quantMin, quantMax, layer);
        }

        return FakeQuantPerChannelFunction.apply(input, scales, zeroPoints, resolved, quantMin, quantMax, watch!);
    }

    /// <summary>Fake-quantizes with <paramref name="qparams"/>, per tensor or per channel as they are.</summary>
    /// <param name="input">A float32 tensor.</param>
    /// <param name="qparams">Scale(s) and zero point(s).</param>
    /// <param name="quantMin">The smallest quantized value.</param>
    /// <param name="quantMax">The largest quantized value.</param>
    /// <param name="layer">The quantization point, named in errors.</param>
    /// <param name="watch">Records a NaN gradient reaching this point in the backward; null for none.</param>
    /// <returns>The fake-quantized tensor.</returns>
    public static Tensor Apply(Tensor input, QParams qparams, int quantMin, int quantMax, string layer = "fake_quant", GradientWatch? watch = null)
    {
        ArgumentNullException.ThrowIfNull(qparams);
        return qparams.IsPerChannel
            ? PerChannel(input, qparams.Scales, qparams.ZeroPoints, qparams.Axis, quantMin, quantMax, layer, watch)
            : PerTensor(input, qparams.Scale, qparams.ZeroPoint, quantMin, quantMax, layer, watch);
    }

    internal static void CheckInput(Tensor input, string layer)
    {
        if (input.dtype != ScalarType.Float32)
        {
            throw new ArgumentException($"{layer}: fake quantize takes float32 tensors, got {input.dtype}.");
        }
    }

    internal static void CheckRange(int quantMin, int quantMax, string layer)
    {
        if (quantMin >= quantMax)
        {
            throw new ArgumentException($"{layer}: quant_min ({quantMin}) must be less than quant_max ({quantMax}).");
        }
    }

    internal static void CheckScale(float scale, int channel, string layer)
    {
        if (!(scale > 0f) || !float.IsFinite(scale))
        {
            string where = channel >= 0 ? $" (channel {channel})" : string.Empty;
            throw new ArgumentException($"{layer}: the fake-quantize scale{where} must be positive and finite, got {scale.ToString("R", CultureInfo.InvariantCulture)}.");
        }
    }

    internal static void CheckZeroPoint(int zeroPoint, int channel, int quantMin, int quantMax, string layer)
    {
        if (zeroPoint < quantMin || zeroPoint > quantMax)
        {
            string where = channel >= 0 ? $" (channel {channel})" : string.Empty;
            throw new ArgumentException(
                $"{layer}: the zero point {zeroPoint}{where} lies outside the quantized range [{quantMin}, {quantMax}], so the range cannot represent 0 (zero padding and ReLU outputs need it exactly).");
        }
    }

    internal static int ResolveAxis(Tensor input, int axis, string layer)
    {
        long rank = input.dim();
        long resolved = axis < 0 ? axis + rank : axis;
        if (resolved < 0 || resolved >= rank)
        {
            throw new ArgumentException($"{layer}: per-channel fake quantize along axis {axis} needs a tensor with that axis, got shape [{string.Join(", ", input.shape)}].");
        }

        return (int)resolved;
    }

    /// <summary>A shape of ones with <paramref name="channels"/> at <paramref name="axis"/>, to broadcast per-channel values.</summary>
    internal static long[] BroadcastShape(long rank, int axis, long channels)
    {
        var shape = new long[rank];
        Array.Fill(shape, 1L);
        shape[axis] = channels;
        return shape;
    }

    /// <summary>
    /// The per-tensor forward on a CPU tensor in one pass (<see cref="FakeQuantKernel"/>): a new contiguous output and a
    /// boolean mask, bit-identical to <see cref="Forward"/>.
    /// </summary>
    internal static (Tensor Output, Tensor Mask) ForwardOnCpu(Tensor input, float inverseScale, int zeroPoint, float scale, int quantMin, int quantMax)
    {
        using Tensor contiguous = input.contiguous();
        Tensor output = empty(contiguous.shape, ScalarType.Float32);
        Tensor mask = empty(contiguous.shape, ScalarType.Bool);
        FakeQuantKernel.Forward(
            MemoryMarshal.Cast<byte, float>(contiguous.bytes),
            MemoryMarshal.Cast<byte, float>(output.bytes),
            mask.bytes,
            inverseScale, zeroPoint, scale, quantMin, quantMax);
        return (output, mask);
    }

    /// <summary>
    /// The straight-through gradient <c>dy · mask</c>, noting a NaN in <paramref name="gradient"/> on <paramref name="watch"/>:
    /// in one pass on the CPU, else with libtorch's ops.
    /// </summary>
    internal static Tensor MaskGradient(Tensor gradient, Tensor mask, GradientWatch? watch)
    {
        if (gradient.device_type != DeviceType.CPU || gradient.dtype != ScalarType.Float32 || !gradient.shape.AsSpan().SequenceEqual(mask.shape))
        {
            watch?.Check(gradient);
            return gradient.mul(mask);
        }

        using Tensor contiguous = gradient.contiguous();
        using Tensor contiguousMask = mask.contiguous();
        Tensor result = empty(contiguous.shape, ScalarType.Float32);
        bool nan = FakeQuantKernel.Backward(
            MemoryMarshal.Cast<byte, float>(contiguous.bytes),
            contiguousMask.bytes,
            MemoryMarshal.Cast<byte, float>(result.bytes));
        if (nan)
        {
            watch?.ReportNaN();
        }

        return result;
    }

    /// <summary>
    /// The shared forward: <c>q = round(x · inv) + z</c>, the in-range mask of q, then <c>(clamp(q) − z) · s</c>,
    /// in place on one new tensor. <paramref name="inverseScale"/>, <paramref name="zeroPoint"/> and
    /// <paramref name="scale"/> are scalars or broadcastable tensors.
    /// </summary>
    internal static (Tensor Output, Tensor Mask) Forward(Tensor input, Tensor inverseScale, Tensor zeroPoint, Tensor scale, int quantMin, int quantMax)
    {
        Tensor q = input.mul(inverseScale);
        q.round_();
        q.add_(zeroPoint);
        Tensor mask = q.ge(quantMin);
        using (Tensor upper = q.le(quantMax))
        {
            mask.logical_and_(upper);
        }

        q.clamp_(quantMin, quantMax);
        q.sub_(zeroPoint);
        q.mul_(scale);
        return (q, mask);
    }
}

/// <summary>The per-tensor fake quantize as an autograd function (arguments: input, scale, zero point, qmin, qmax, gradient watch or null).</summary>
internal sealed class FakeQuantPerTensorFunction : autograd.SingleTensorFunction<FakeQuantPerTensorFunction>
{
    public override string Name => "QuantGenFakeQuantizePerTensor";

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        float scale = (float)vars[1];
        int zeroPoint = (int)vars[2];
        int quantMin = (int)vars[3];
        int quantMax = (int)vars[4];
        ctx.save_data("watch", vars[5]);

        // 1/s in float32 first, then a multiplication, as PyTorch's kernel does (x * inv_scale, not x / s).
        if (input.device_type == DeviceType.CPU && input.numel() > 0)
        {
            (Tensor fastOutput, Tensor fastMask) = FakeQuant.ForwardOnCpu(input, 1f / scale, zeroPoint, scale, quantMin, quantMax);
            ctx.save_for_backward([fastMask]);
            return fastOutput;
        }

        using Tensor inverse = tensor(1f / scale, device: input.device);
        using Tensor zero = tensor((float)zeroPoint, device: input.device);
        using Tensor scaleTensor = tensor(scale, device: input.device);
        (Tensor output, Tensor mask) = FakeQuant.Forward(input, inverse, zero, scaleTensor, quantMin, quantMax);
        ctx.save_for_backward([mask]);
        return output;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        List<Tensor> saved = ctx.get_saved_variables();
        Tensor gradInput = FakeQuant.MaskGradient(grad_output, saved[0], ctx.get_data("watch") as GradientWatch);
        saved.ForEach(t => t.Dispose());
        return [gradInput, null!, null!, null!, null!, null!];
    }
}

/// <summary>The per-channel fake quantize as an autograd function (arguments: input, scales, zero points, resolved axis, qmin, qmax, gradient watch or null).</summary>
internal sealed class FakeQuantPerChannelFunction : autograd.SingleTensorFunction<FakeQuantPerChannelFunction>
{
    public override string Name => "QuantGenFakeQuantizePerChannel";

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        var scales = (float[])vars[1];
        var zeroPoints = (int[])vars[2];
        int axis = (int)vars[3];
        int quantMin = (int)vars[4];
        int quantMax = (int)vars[5];
        ctx.save_data("watch", vars[6]);

        var inverses = new float[scales.Length];
        var zeros = new float[scales.Length];
        for (int c = 0; c < scales.Length; c++)
        {
            inverses[c] = 1f / scales[c];
            zeros[c] = zeroPoints[c];
        }

        long[] shape = FakeQuant.BroadcastShape(input.dim(), axis, scales.Length);
        using Tensor inverse = tensor(inverses, shape, device: input.device);
        using Tensor zero = tensor(zeros, shape, device: input.device);
        using Tensor scale = tensor(scales, shape, device: input.device);
        (Tensor output, Tensor mask) = FakeQuant.Forward(input, inverse, zero, scale, quantMin, quantMax);
        ctx.save_for_backward([mask]);
        return output;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        (ctx.get_data("watch") as GradientWatch)?.Check(grad_output);
        List<Tensor> saved = ctx.get_saved_variables();
        Tensor gradInput = grad_output.mul(saved[0]);
        saved.ForEach(t => t.Dispose());
        return [gradInput, null!, null!, null!, null!, null!, null!];
    }
}
