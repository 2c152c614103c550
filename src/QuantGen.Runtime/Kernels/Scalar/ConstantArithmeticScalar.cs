using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference of a quantized tensor multiplied by or added to a constant, as aten's <c>_mul_scalar_out</c> and
/// <c>_add_scalar_out</c> (aten/src/ATen/native/quantized/cpu/qmul.cpp, BinaryOps.cpp) do it: the output's qparams
/// are computed from the input's and the constant, and the integers are copied, mirrored or requantized —
/// never dequantized. docs/numerics.md writes the rules out.
/// </summary>
public static class ConstantArithmeticScalar
{
    /// <summary>The output qparams and how the integers move, for <c>x * c</c>.</summary>
    /// <param name="input">The input's per-tensor qparams.</param>
    /// <param name="constant">c (a double, as aten's <c>Scalar.toDouble()</c>).</param>
    /// <returns>The output qparams and the integer rule.</returns>
    public static (QParams Output, ConstantIntegerRule Rule) Mul(QParams input, double constant)
    {
        ArgumentNullException.ThrowIfNull(input);
        (int qmin, int qmax) = Range(input.DType);
        if (constant > 0.0)
        {
            return (QParams.PerTensor((float)(constant * input.Scale), input.ZeroPoint, input.DType), ConstantIntegerRule.Copy);
        }

        if (constant == 0.0)
        {
            return (QParams.PerTensor(1.0f, 0, input.DType), ConstantIntegerRule.Zero);
        }

        if (double.IsNaN(constant))
        {
            throw new ArgumentException("Mul by a constant: the constant is NaN.", nameof(constant));
        }

        // Negative: the scale takes |c|, the integers are mirrored in the dtype's range and so is the zero point.
        return (QParams.PerTensor((float)(Math.Abs(constant) * input.Scale), qmax - (input.ZeroPoint - qmin), input.DType), ConstantIntegerRule.Mirror);
    }

    /// <summary>The output qparams, the integer rule and the constant in input steps, for <c>x + c</c>.</summary>
    /// <param name="input">The input's per-tensor qparams.</param>
    /// <param name="constant">c.</param>
    /// <returns>The output qparams, the rule and <c>c_q = round_half_even(c / s)</c>.</returns>
    public static (QParams Output, ConstantIntegerRule Rule, int Steps) Add(QParams input, double constant)
    {
        ArgumentNullException.ThrowIfNull(input);
        (int qmin, int qmax) = Range(input.DType);
        double s = input.Scale;
        long z = input.ZeroPoint;
        double steps = Math.Round(constant / s, MidpointRounding.ToEven);
        if (!(Math.Abs(steps) < 1 << 24))
        {
            throw new ArgumentException($"Add of a constant: {constant} is {steps} steps of the input's scale {input.Scale}; at most 2^24 steps are supported.", nameof(constant));
        }

        long cq = (long)steps;
        long shifted = z - cq;
        if (qmin > shifted)
        {
            double scale = ((double)qmax - shifted) / ((double)qmax - qmin) * s;
            return (QParams.PerTensor((float)scale, qmin, input.DType), ConstantIntegerRule.Requantize, (int)cq);
        }

        if (qmax < shifted)
        {
            double scale = ((double)shifted - qmin) / ((double)qmax - qmin) * s;
            return (QParams.PerTensor((float)scale, qmax, input.DType), ConstantIntegerRule.Requantize, (int)cq);
        }

        return (QParams.PerTensor(input.Scale, (int)shifted, input.DType), ConstantIntegerRule.Copy, (int)cq);
    }

    /// <summary>Applies a rule to values in the <see cref="UInt8View"/>.</summary>
    /// <param name="input">Input values in the view.</param>
    /// <param name="inputQParams">The input's qparams.</param>
    /// <param name="output">Output values in the view (same length; may be the input).</param>
    /// <param name="outputQParams">The output's qparams from <see cref="Mul"/> or <see cref="Add"/>.</param>
    /// <param name="rule">How the integers move.</param>
    /// <param name="steps">For <see cref="ConstantIntegerRule.Requantize"/>: c_q.</param>
    public static void Apply(ReadOnlySpan<byte> input, QParams inputQParams, Span<byte> output, QParams outputQParams, ConstantIntegerRule rule, int steps)
    {
        ArgumentNullException.ThrowIfNull(inputQParams);
        ArgumentNullException.ThrowIfNull(outputQParams);
        if (input.Length != output.Length)
        {
            throw new ArgumentException($"Constant arithmetic: the input has {input.Length} elements and the output {output.Length}.");
        }

        int offset = UInt8View.Offset(inputQParams.DType);
        switch (rule)
        {
            case ConstantIntegerRule.Copy:
                input.CopyTo(output);
                break;
            case ConstantIntegerRule.Zero:
                // The integer 0 of the dtype (its zero point 0): 0 in quint8's view, 128 in qint8's.
                output.Fill((byte)offset);
                break;
            case ConstantIntegerRule.Mirror:
                // q' = qmax + qmin - q, which is 255 - v in the view for both dtypes.
                for (int i = 0; i < input.Length; i++)
                {
                    output[i] = (byte)(255 - input[i]);
                }

                break;
            case ConstantIntegerRule.Requantize:
            {
                // aten's qadd_scalar_kernel: zy + lrintf((q - z + c_q) * (s * (1f / s'))) clamped, all float32.
                float multiplier = inputQParams.Scale * (1.0f / outputQParams.Scale);
                int zx = inputQParams.ZeroPoint + offset, zy = outputQParams.ZeroPoint + offset;
                for (int i = 0; i < input.Length; i++)
                {
                    output[i] = (byte)QuantizeScalar.QuantizeValue((float)(input[i] - zx + steps), multiplier, zy, 0, 255);
                }

                break;
            }

            default:
                throw new ArgumentOutOfRangeException(nameof(rule), rule, "unknown rule");
        }
    }

    private static (int Min, int Max) Range(QuantDType dtype) => dtype == QuantDType.QInt8 ? (-128, 127) : (0, 255);
}

/// <summary>How a constant op moves the integers (aten's three cases).</summary>
public enum ConstantIntegerRule
{
    /// <summary>Unchanged: only the qparams change.</summary>
    Copy,

    /// <summary>Every integer becomes 0 (mul by 0: scale 1, zero point 0).</summary>
    Zero,

    /// <summary><c>q' = qmax + qmin − q</c> (mul by a negative constant).</summary>
    Mirror,

    /// <summary>Requantized to the new qparams (an add that pushes the zero point out of range).</summary>
    Requantize,
}
