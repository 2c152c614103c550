using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Qat;

/// <summary>
/// PyTorch's <c>_fake_quantize_learnable_per_tensor_affine</c> / <c>_per_channel_affine</c> as a TorchSharp autograd
/// function: the forward is the fake quantize with the zero point rounded half to even and clamped; the backward gives
/// the input PyTorch's straight-through mask and gives scale and zero point LSQ's gradients, summed per tensor or per
/// channel and multiplied by the gradient factor g:
/// <list type="bullet">
/// <item><description>inside the range: dscale = dy · (x̂ − x) / s, dzero_point = 0;</description></item>
/// <item><description>below it: dscale = dy · (qmin − z), dzero_point = −dy · s;</description></item>
/// <item><description>above it: dscale = dy · (qmax − z), dzero_point = −dy · s.</description></item>
/// </list>
/// </summary>
/// <remarks>
/// Two PyTorch details are kept on purpose, so that training here follows training there. Per tensor, the backward
/// takes the zero point as <c>trunc(clamp(z + 0.5))</c> while the forward rounds it half to even (they differ for
/// z = k + 0.5 with k even, and for negative z). Per channel, the backward rounds <c>z + x/s</c> as a whole, the
/// forward adds z to <c>round(x/s)</c> (they differ at ties when z is odd).
/// </remarks>
public static class LearnableFakeQuant
{
    /// <summary>Applies the learnable fake quantize.</summary>
    /// <param name="input">A float32 tensor.</param>
    /// <param name="scale">The scale parameter: shape [1], or [channels] with <paramref name="axis"/> ≥ 0.</param>
    /// <param name="zeroPoint">The zero-point parameter (float), same shape as <paramref name="scale"/>.</param>
    /// <param name="quantMin">The smallest quantized value.</param>
    /// <param name="quantMax">The largest quantized value.</param>
    /// <param name="axis">The resolved channel axis, or −1 for per tensor.</param>
    /// <param name="gradFactor">The factor of the scale and zero-point gradients (1, or 1/√(numel · quant_max)).</param>
    /// <param name="watch">Records a NaN gradient reaching this point in the backward; null for none.</param>
    /// <returns>The fake-quantized tensor, differentiable with respect to input, scale and zero point.</returns>
    public static Tensor Apply(Tensor input, Tensor scale, Tensor zeroPoint, int quantMin, int quantMax, int axis, float gradFactor, GradientWatch? watch = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(scale);
        ArgumentNullException.ThrowIfNull(zeroPoint);
        return LearnableFakeQuantFunction.apply(input, scale, zeroPoint, quantMin, quantMax, axis, gradFactor, watch!);
    }
}

/// <summary>Arguments: input, scale, zero point, qmin, qmax, axis (−1 per tensor), gradient factor, gradient watch or null.</summary>
internal sealed class LearnableFakeQuantFunction : autograd.SingleTensorFunction<LearnableFakeQuantFunction>
{
    public override string Name => "QuantGenLearnableFakeQuantize";

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        var scale = (Tensor)vars[1];
        var zeroPoint = (Tensor)vars[2];
        int quantMin = (int)vars[3];
        int quantMax = (int)vars[4];
        int axis = (int)vars[5];
        float gradFactor = (float)vars[6];
        ctx.save_data("qmin", quantMin);
        ctx.save_data("qmax", quantMax);
        ctx.save_data("axis", axis);
        ctx.save_data("grad_factor", gradFactor);
        ctx.save_data("watch", vars[7]);
        ctx.save_for_backward([input, scale, zeroPoint]);

        Tensor output;
        Tensor mask;
        if (axis < 0)
        {
            float s = ScalarOf(scale);
            float z = ScalarOf(zeroPoint);
            float forwardZero = MathF.Min(MathF.Max(MathF.Round(z, MidpointRounding.ToEven), quantMin), quantMax);
            using Tensor inverse = tensor(1f / s, device: input.device);
            using Tensor zero = tensor((float)(int)forwardZero, device: input.device);
            using Tensor scaleTensor = tensor(s, device: input.device);
            (output, mask) = FakeQuant.Forward(input, inverse, zero, scaleTensor, quantMin, quantMax);
        }
        else
        {
            long[] shape = FakeQuant.BroadcastShape(input.dim(), axis, scale.shape[0]);
            using Tensor detached = scale.detach();
            using Tensor scaleView = detached.reshape(shape);
            using Tensor inverse = scaleView.reciprocal();
            using Tensor rounded = RoundedZeroPoint(zeroPoint, quantMin, quantMax);
            using Tensor zero = rounded.reshape(shape);
            (output, mask) = FakeQuant.Forward(input, inverse, zero, scaleView, quantMin, quantMax);
        }

        mask.Dispose();
        return output;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        int quantMin = (int)ctx.get_data("qmin");
        int quantMax = (int)ctx.get_data("qmax");
        int axis = (int)ctx.get_data("axis");
        float gradFactor = (float)ctx.get_data("grad_factor");
        (ctx.get_data("watch") as GradientWatch)?.Check(grad_output);
        List<Tensor> saved = ctx.get_saved_variables();
        Tensor input = saved[0];
        Tensor scale = saved[1];
        Tensor zeroPoint = saved[2];

        using var scope = NewDisposeScope();
        Tensor s;
        Tensor inverse;
        Tensor z;
        Tensor quantized;
        if (axis < 0)
        {
            float scaleValue = ScalarOf(scale);
            float zeroValue = ScalarOf(zeroPoint);

            // PyTorch's backward zero point: (int64) clamp(z + 0.5), a truncation, not the forward's rounding.
            float backwardZero = (long)MathF.Min(MathF.Max(zeroValue + 0.5f, quantMin), quantMax);
            s = tensor(scaleValue, device: input.device);
            inverse = tensor(1f / scaleValue, device: input.device);
            z = tensor(backwardZero, device: input.device);
            quantized = input.mul(inverse).round_().add_(z);
        }
        else
        {
            long[] shape = FakeQuant.BroadcastShape(input.dim(), axis, scale.shape[0]);
            s = scale.detach().reshape(shape);
            inverse = s.reciprocal();
            z = RoundedZeroPoint(zeroPoint, quantMin, quantMax).reshape(shape);

            // Per channel PyTorch rounds z + x/s as a whole.
            quantized = input.mul(inverse).add_(z).round_();
        }

        Tensor below = quantized.lt(quantMin);
        Tensor above = quantized.gt(quantMax);
        Tensor inside = below.logical_or(above).logical_not_();
        Tensor gradInput = grad_output.mul(inside);

        // Inside: dy · (x̂ − x) · (1/s) · g, with x̂ = (clamp(q) − z) · s.
        Tensor dequantized = quantized.clamp(quantMin, quantMax).sub_(z).mul_(s);
        Tensor scaleInside = grad_output.mul(dequantized.sub_(input)).mul_(inverse).mul_(gradFactor);
        Tensor scaleBelow = grad_output.mul(z.neg().add_(quantMin)).mul_(gradFactor);
        Tensor scaleAbove = grad_output.mul(z.neg().add_(quantMax)).mul_(gradFactor);
        Tensor scaleGrad = where(inside, scaleInside, where(below, scaleBelow, scaleAbove));
        Tensor zeroOutside = grad_output.neg().mul_(s).mul_(gradFactor);
        Tensor zeroGrad = where(inside, zeros_like(zeroOutside), zeroOutside);

        Tensor scaleSum;
        Tensor zeroSum;
        if (axis < 0)
        {
            scaleSum = scaleGrad.sum().unsqueeze(0);
            zeroSum = zeroGrad.sum().unsqueeze(0);
        }
        else
        {
            var dims = new List<long>();
            for (long d = 0; d < input.dim(); d++)
            {
                if (d != axis)
                {
                    dims.Add(d);
                }
            }

            scaleSum = dims.Count == 0 ? scaleGrad : scaleGrad.sum(dims.ToArray());
            zeroSum = dims.Count == 0 ? zeroGrad : zeroGrad.sum(dims.ToArray());
        }

        gradInput.MoveToOuterDisposeScope();
        scaleSum.MoveToOuterDisposeScope();
        zeroSum.MoveToOuterDisposeScope();
        saved.ForEach(t => t.Dispose());
        return [gradInput, scaleSum, zeroSum, null!, null!, null!, null!, null!];
    }

    private static float ScalarOf(Tensor single)
    {
        using Tensor detached = single.detach();
        using Tensor onCpu = detached.cpu();
        return onCpu.item<float>();
    }

    /// <summary>PyTorch's <c>_get_rounded_zero_point</c>: round half to even, clamp to [qmin, qmax] (float).</summary>
    private static Tensor RoundedZeroPoint(Tensor zeroPoint, int quantMin, int quantMax) =>
        zeroPoint.detach().round().clamp_(quantMin, quantMax);
}
