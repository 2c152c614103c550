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
/// of the former is marked obsolete and not implemented. On the CPU the per-tensor form allocates only its output in the
/// forward and only the input's gradient in the backward, as the float op it follows does: it keeps the input and
/// recomputes the in-range mask in the backward (PyTorch's non-<c>_cachemask</c> backward), instead of keeping a boolean
/// mask tensor alive from forward to backward. The per-channel form (weights, which are small) keeps the mask.
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
        return FakeQuantPerTensorFunction.apply(input, scale, zeroPoint, quantMin, quantMax, watch!, false);
    }

    /// <summary>
    /// <c>PerTensor(relu(input), …)</c> as one op: the same output and the same gradient bit for bit (ReLU's backward
    /// passes nothing where <c>input &lt;= 0</c>), without the ReLU's output tensor and its pass in each direction. The QAT
    /// form uses it for a conv or linear with a fused ReLU whose output is fake-quantized.
    /// </summary>
    /// <param name="input">A float32 tensor (before the ReLU).</param>
    /// <param name="scale">The scale, positive and finite.</param>
    /// <param name="zeroPoint">The zero point, in [<paramref name="quantMin"/>, <paramref name="quantMax"/>].</param>
    /// <param name="quantMin">The smallest quantized value.</param>
    /// <param name="quantMax">The largest quantized value.</param>
    /// <param name="layer">The quantization point, "Model.member", named in errors.</param>
    /// <param name="watch">Records a NaN gradient reaching this point in the backward; null for none.</param>
    /// <returns>The fake-quantized ReLU of <paramref name="input"/>, differentiable with respect to <paramref name="input"/>.</returns>
    /// <exception cref="ArgumentException">As <see cref="PerTensor"/>.</exception>
    public static Tensor PerTensorAfterRelu(Tensor input, float scale, int zeroPoint, int quantMin, int quantMax, string layer = "fake_quant", GradientWatch? watch = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        CheckInput(input, layer);
        CheckRange(quantMin, quantMax, layer);
        CheckScale(scale, -1, layer);
        CheckZeroPoint(zeroPoint, -1, quantMin, quantMax, layer);
        if (input.device_type != DeviceType.CPU || input.numel() == 0)
        {
            using Tensor rectified = nn.functional.relu(input);
            return FakeQuantPerTensorFunction.apply(rectified, scale, zeroPoint, quantMin, quantMax, watch!, false);
        }

        return FakeQuantPerTensorFunction.apply(input, scale, zeroPoint, quantMin, quantMax, watch!, true);
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
    /// The per-tensor forward on a CPU tensor in one pass (<see cref="FakeQuantKernel"/>): a new contiguous output,
    /// bit-identical to <see cref="Forward"/>. Nothing else is allocated; the backward recomputes the mask from the input.
    /// </summary>
    internal static unsafe Tensor ForwardOnCpu(Tensor input, float inverseScale, int zeroPoint, float scale, int quantMin, int quantMax, bool rectified)
    {
        using Tensor contiguous = input.contiguous();
        Tensor output = empty(contiguous.shape, ScalarType.Float32);
        FakeQuantKernel.ForwardParallel(
            Storage(contiguous), Storage(output), contiguous.numel(), get_num_threads(),
            inverseScale, zeroPoint, scale, quantMin, quantMax, rectified);
        return output;
    }

    /// <summary>
    /// The per-tensor straight-through gradient <c>dy · [qmin ≤ round(x · inv) + z ≤ qmax]</c> from the forward's input,
    /// noting a NaN in <paramref name="gradient"/> on <paramref name="watch"/>: in one pass on the CPU, else with libtorch's ops.
    /// </summary>
    internal static unsafe Tensor PerTensorGradient(Tensor input, Tensor gradient, float inverseScale, int zeroPoint, int quantMin, int quantMax, bool rectified, GradientWatch? watch)
    {
        if (gradient.device_type != DeviceType.CPU || input.device_type != DeviceType.CPU || gradient.dtype != ScalarType.Float32
            || !gradient.shape.AsSpan().SequenceEqual(input.shape))
        {
            watch?.Check(gradient);
            using Tensor x = rectified ? nn.functional.relu(input.detach()) : input.detach();
            using Tensor q = x.mul(inverseScale);
            q.round_();
            q.add_(zeroPoint);
            using Tensor mask = q.ge(quantMin);
            using (Tensor upper = q.le(quantMax))
            {
                mask.logical_and_(upper);
            }

            if (rectified)
            {
                using Tensor positive = input.gt(0);
                mask.logical_and_(positive);
            }

            return gradient.mul(mask);
        }

        using Tensor contiguousInput = input.contiguous();
        using Tensor contiguous = gradient.contiguous();
        Tensor result = empty(contiguous.shape, ScalarType.Float32);
        bool nan = FakeQuantKernel.BackwardParallel(
            Storage(contiguousInput), Storage(contiguous), Storage(result), contiguous.numel(), get_num_threads(),
            inverseScale, zeroPoint, quantMin, quantMax, rectified);
        if (nan)
        {
            watch?.ReportNaN();
        }

        return result;
    }

    /// <summary>
    /// The first element of a contiguous float32 CPU tensor's storage. The storage is libtorch's native memory, which the
    /// GC never moves, so the pointer stays valid after the <c>fixed</c> block for as long as the tensor lives.
    /// </summary>
    private static unsafe float* Storage(Tensor contiguous)
    {
        fixed (byte* first = contiguous.bytes)
        {
            return (float*)first;
        }
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

/// <summary>
/// The per-tensor fake quantize as an autograd function (arguments: input, scale, zero point, qmin, qmax, gradient watch or
/// null, and whether a ReLU comes first — only for CPU tensors).
/// </summary>
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
        bool rectified = (bool)vars[6];
        ctx.save_data("rectified", rectified);

        // 1/s in float32 first, then a multiplication, as PyTorch's kernel does (x * inv_scale, not x / s).
        float inverseScale = 1f / scale;
        ctx.save_data("inverseScale", inverseScale);
        ctx.save_data("zeroPoint", zeroPoint);
        ctx.save_data("quantMin", quantMin);
        ctx.save_data("quantMax", quantMax);
        if (input.device_type == DeviceType.CPU && input.numel() > 0)
        {
            // The input is kept (not a mask) so the forward allocates only its output; the backward recomputes the mask.
            ctx.save_for_backward([input]);
            return FakeQuant.ForwardOnCpu(input, inverseScale, zeroPoint, scale, quantMin, quantMax, rectified);
        }

        using Tensor inverse = tensor(inverseScale, device: input.device);
        using Tensor zero = tensor((float)zeroPoint, device: input.device);
        using Tensor scaleTensor = tensor(scale, device: input.device);
        (Tensor output, Tensor mask) = FakeQuant.Forward(input, inverse, zero, scaleTensor, quantMin, quantMax);
        mask.Dispose();
        ctx.save_for_backward([input]);
        return output;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        List<Tensor> saved = ctx.get_saved_variables();
        Tensor gradInput = FakeQuant.PerTensorGradient(
            saved[0], grad_output, (float)ctx.get_data("inverseScale"), (int)ctx.get_data("zeroPoint"),
            (int)ctx.get_data("quantMin"), (int)ctx.get_data("quantMax"), (bool)ctx.get_data("rectified"), ctx.get_data("watch") as GradientWatch);
        saved.ForEach(t => t.Dispose());
        return [gradInput, null!, null!, null!, null!, null!, null!];
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
