using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// The reference for the float32 GEMM of the float16-weight layers (docs/numerics.md §11):
/// <c>y[m, n] = (Σ_k x[m, k]·w[n, k]) + b[n]</c>, then ReLU when fused. The sum is one fused multiply-add chain per
/// output, k = 0 … K−1 in order, starting from +0 (<c>acc = fma(x[m, k], w[n, k], acc)</c>), as fbgemm's fp16 micro-kernel
/// runs it within one of its k-blocks; the bias is one more float32 addition (aten adds it after the GEMM); the ReLU is
/// <c>y &lt; 0 ? 0 : y</c>, which keeps −0 and NaN as aten's <c>relu_</c> does. The order is fixed per output, so
/// <see cref="Float32GemmKernel"/>, which runs the same chain in every vector lane, gives the same bits at every width.
/// </summary>
public static class Float32GemmScalar
{
    /// <summary>Computes <paramref name="output"/> = <paramref name="input"/>·<paramref name="weight"/>ᵀ (+ bias, ReLU).</summary>
    /// <param name="input">Row-major <c>[rows, inFeatures]</c>.</param>
    /// <param name="rows">Rows of the input and the output.</param>
    /// <param name="weight">Row-major <c>[outFeatures, inFeatures]</c> (PyTorch's Linear layout).</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="inFeatures">Input features (K).</param>
    /// <param name="bias">One value per output feature, or empty for none.</param>
    /// <param name="relu">A fused ReLU.</param>
    /// <param name="output">Row-major <c>[rows, outFeatures]</c>.</param>
    /// <exception cref="ArgumentException">Lengths that do not match the sizes.</exception>
    public static void Multiply(ReadOnlySpan<float> input, int rows, ReadOnlySpan<float> weight, int outFeatures, int inFeatures, ReadOnlySpan<float> bias, bool relu, Span<float> output)
    {
        CheckSizes(input.Length, rows, weight.Length, outFeatures, inFeatures, bias.Length, output.Length);
        for (int m = 0; m < rows; m++)
        {
            ReadOnlySpan<float> x = input.Slice(m * inFeatures, inFeatures);
            for (int n = 0; n < outFeatures; n++)
            {
                ReadOnlySpan<float> w = weight.Slice(n * inFeatures, inFeatures);
                float accumulator = 0f;
                for (int k = 0; k < inFeatures; k++)
                {
                    accumulator = MathF.FusedMultiplyAdd(x[k], w[k], accumulator);
                }

                if (!bias.IsEmpty)
                {
                    accumulator += bias[n];
                }

                output[(m * outFeatures) + n] = relu && accumulator < 0f ? 0f : accumulator;
            }
        }
    }

    /// <summary>Throws unless the lengths are those of <c>[rows, in]·[out, in]ᵀ → [rows, out]</c> with an optional bias.</summary>
    internal static void CheckSizes(int inputLength, int rows, int weightLength, int outFeatures, int inFeatures, int biasLength, int outputLength)
    {
        if (rows < 0 || outFeatures < 1 || inFeatures < 1)
        {
            throw new ArgumentException($"Float32 GEMM: rows ({rows}) must be 0 or more, out ({outFeatures}) and in features ({inFeatures}) positive.");
        }

        if ((long)rows * inFeatures != inputLength || (long)outFeatures * inFeatures != weightLength || (long)rows * outFeatures != outputLength || (biasLength != 0 && biasLength != outFeatures))
        {
            throw new ArgumentException(
                $"Float32 GEMM: [{rows}, {inFeatures}]·[{outFeatures}, {inFeatures}]ᵀ needs {(long)rows * inFeatures} input, {(long)outFeatures * inFeatures} weight and {(long)rows * outFeatures} output values " +
                $"and 0 or {outFeatures} bias values; got {inputLength}, {weightLength}, {outputLength} and {biasLength}.");
        }
    }
}
