using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference quantized BatchNorm2d / BNReLU2d — PyTorch's <c>quantized::batch_norm2d</c>
/// (<c>compute_fused_params</c> + <c>q_batch_norm_kernel</c>), in the <see cref="UInt8View"/>:
/// <code>
/// inv_sigma_c = (float)(1.0 / sqrt(var_c + (float)eps))
/// scale_c     = inv_sigma_c * gamma_c                                       float32
/// shift_c     = beta_c - (mean_c * inv_sigma_c) * gamma_c                   float32
/// alpha_c     = (float)((double)scale_c * ((double)sx / (double)sy))        in double, as PyTorch
/// beta'_c     = (float)((double)shift_c / (double)sy)
/// y           = fma(alpha_c, (float)(q - zx), beta'_c)                      one rounding
/// q           = clamp(zy + round_half_even(y), relu ? zy : 0, 255)
/// </code>
/// </summary>
/// <remarks>
/// The input scale is folded into <c>alpha</c> and the output scale into both factors, so there is no
/// separate dequantize or <c>* (1f / sy)</c>. The multiply-add is fused because PyTorch's vectorized
/// kernel (every channel block of 8 or more) computes it with <c>fmadd</c>.
/// </remarks>
public static class BatchNorm2dScalar
{
    /// <summary>
    /// Per-channel <c>scale_c</c> and <c>shift_c</c> from a BatchNorm's statistics, in PyTorch's float32
    /// order (<see cref="BatchNorm2dScalar"/>'s formula). Null weight means 1, null bias 0 (affine=False).
    /// </summary>
    public static void ScaleAndShift(
        ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, ReadOnlySpan<float> runningMean, ReadOnlySpan<float> runningVar,
        double eps, Span<float> scale, Span<float> shift)
    {
        int channels = runningMean.Length;
        if (runningVar.Length != channels || scale.Length != channels || shift.Length != channels
            || (weight.Length != 0 && weight.Length != channels) || (bias.Length != 0 && bias.Length != channels))
        {
            throw new ArgumentException($"BatchNorm2d: {runningMean.Length} means, {runningVar.Length} variances, {weight.Length} weights, {bias.Length} biases, {scale.Length}/{shift.Length} outputs; all must match (weights and biases may be empty).");
        }

        float epsilon = (float)eps;
        for (int c = 0; c < channels; c++)
        {
            float root = MathF.Sqrt(runningVar[c] + epsilon);
            float inverseSigma = (float)(1.0 / root);
            float gamma = weight.Length == 0 ? 1f : weight[c];
            float beta = bias.Length == 0 ? 0f : bias[c];
            scale[c] = inverseSigma * gamma;
            float centered = runningMean[c] * inverseSigma;
            float meanTerm = centered * gamma;
            shift[c] = beta - meanTerm;
        }
    }

    /// <summary><c>alpha_c = (float)(scale_c · (sx / sy))</c> and <c>beta'_c = (float)(shift_c / sy)</c>, each in double as PyTorch computes them.</summary>
    public static void FusedParams(ReadOnlySpan<float> scale, ReadOnlySpan<float> shift, float inputScale, float outputScale, Span<float> alpha, Span<float> beta)
    {
        int channels = scale.Length;
        if (shift.Length != channels || alpha.Length != channels || beta.Length != channels)
        {
            throw new ArgumentException($"BatchNorm2d: {scale.Length} scales, {shift.Length} shifts, {alpha.Length}/{beta.Length} outputs; all must match.");
        }

        QuantizeScalar.ValidateScale(inputScale, "BatchNorm2d input");
        QuantizeScalar.ValidateScale(outputScale, "BatchNorm2d output");
        double scaleRatio = (double)inputScale / outputScale;
        for (int c = 0; c < channels; c++)
        {
            alpha[c] = (float)(scale[c] * scaleRatio);
            beta[c] = (float)(shift[c] / (double)outputScale);
        }
    }

    /// <summary>Normalizes every element: <c>clamp(zy + rne(fma(alpha_c, q - zx, beta'_c)), relu ? zy : 0, 255)</c>.</summary>
    /// <param name="rows">N·H·W.</param>
    /// <param name="channels">C.</param>
    /// <param name="inputNhwc">Input in the view, [rows][C].</param>
    /// <param name="inputZeroPoint">zx in the view.</param>
    /// <param name="alpha">Per channel, from <see cref="FusedParams"/>.</param>
    /// <param name="beta">Per channel, from <see cref="FusedParams"/>.</param>
    /// <param name="outputNhwc">Output in the view, [rows][C].</param>
    /// <param name="outputZeroPoint">zy in the view.</param>
    /// <param name="relu">BNReLU2d.</param>
    public static void Apply(
        int rows, int channels, ReadOnlySpan<byte> inputNhwc, int inputZeroPoint,
        ReadOnlySpan<float> alpha, ReadOnlySpan<float> beta, Span<byte> outputNhwc, int outputZeroPoint, bool relu)
    {
        if (rows < 0 || channels < 1 || alpha.Length != channels || beta.Length != channels
            || inputNhwc.Length != (long)rows * channels || outputNhwc.Length != inputNhwc.Length)
        {
            throw new ArgumentException($"BatchNorm2d: {rows} rows of {channels} channels, {alpha.Length}/{beta.Length} factors, input {inputNhwc.Length} and output {outputNhwc.Length} elements do not fit together.");
        }

        QuantizeScalar.ValidateZeroPoint(inputZeroPoint, QuantDType.QUInt8, "BatchNorm2d input");
        QuantizeScalar.ValidateZeroPoint(outputZeroPoint, QuantDType.QUInt8, "BatchNorm2d output");
        float lower = (relu ? outputZeroPoint : 0) - outputZeroPoint;
        float upper = 255 - outputZeroPoint;
        for (int row = 0; row < rows; row++)
        {
            int start = row * channels;
            for (int c = 0; c < channels; c++)
            {
                float centered = inputNhwc[start + c] - inputZeroPoint;
                float y = MathF.FusedMultiplyAdd(alpha[c], centered, beta[c]);
                float rounded = MathF.Round(y, MidpointRounding.ToEven);

                // clamp(zy + r, lo, 255) == clamp(r, lo - zy, 255 - zy) + zy; clamping in float keeps huge
                // (or NaN, from non-finite statistics) values out of the float->int conversion.
                float clamped = rounded > upper ? upper : (rounded >= lower ? rounded : lower);
                outputNhwc[start + c] = (byte)((int)clamped + outputZeroPoint);
            }
        }
    }
}
