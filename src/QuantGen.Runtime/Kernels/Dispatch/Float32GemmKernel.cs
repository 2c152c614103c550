using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using QuantGen.Kernels.Packing;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Kernels;

/// <summary>
/// <see cref="Float32GemmScalar"/> vectorised, bit-identical: the weights are packed in panels of two vectors of output
/// features, and each vector lane runs its output's fused multiply-add chain over k = 0 … K−1 in the reference's order
/// (the input value broadcast, the panel's k-th row loaded), so the result does not depend on the width, the tile a
/// value falls in, or the number of rows; the bias and ReLU are the reference's float32 steps after the sum.
/// Four rows × one panel per tile (8 accumulators), or one row × four panels for the rows left over (a batch-1
/// recurrent step), so that eight independent chains hide the FMA latency either way.
/// </summary>
/// <remarks>
/// The one dispatch point is <see cref="DefaultVectorBits"/>: 512 bits where <see cref="KernelDispatch.Isa"/> is an
/// AVX-512 path and the runtime accelerates <see cref="Vector512"/>, else 256 bits with FMA, else the scalar reference
/// (also on Arm64, which has no path here yet). <c>QUANTGEN_ISA=scalar</c> or <c>avx2</c> therefore also selects 0 or
/// 256 here.
/// </remarks>
public static unsafe class Float32GemmKernel
{
    /// <summary>The vector width <see cref="Pack"/> uses by default (see the remarks).</summary>
    public static int DefaultVectorBits
    {
        get
        {
            KernelIsa isa = KernelDispatch.Isa;
            if (isa == KernelIsa.Scalar)
            {
                return 0;
            }

            if (isa is KernelIsa.Avx512BW or KernelIsa.AvxVnni && Vector512.IsHardwareAccelerated && IsSupported(512))
            {
                return 512;
            }

            return IsSupported(256) ? 256 : 0;
        }
    }

    /// <summary>True when this machine can run width <paramref name="vectorBits"/> (0, 256 or 512) with fused multiply-adds.</summary>
    /// <param name="vectorBits">0 (always), 256 (AVX + FMA) or 512 (AVX-512F).</param>
    public static bool IsSupported(int vectorBits) => vectorBits switch
    {
        0 => true,
        256 => Fma.IsSupported && Avx.IsSupported,
        512 => Avx512F.IsSupported,
        _ => false,
    };

    /// <summary>Packs a <c>[outFeatures, inFeatures]</c> weight for <paramref name="vectorBits"/>.</summary>
    /// <param name="weight">Row-major <c>[outFeatures, inFeatures]</c>.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="vectorBits">512, 256, 0 (the scalar reference), or −1 (default) for <see cref="DefaultVectorBits"/>.</param>
    /// <exception cref="ArgumentException">A length that does not match the sizes.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A width other than −1, 0, 256 or 512.</exception>
    /// <exception cref="PlatformNotSupportedException">A width this machine cannot run.</exception>
    public static PackedFloat32Weights Pack(ReadOnlySpan<float> weight, int outFeatures, int inFeatures, int vectorBits = -1)
    {
        int bits = vectorBits switch
        {
            -1 => DefaultVectorBits,
            0 or 256 or 512 => vectorBits,
            _ => throw new ArgumentOutOfRangeException(nameof(vectorBits), vectorBits, "Vector width must be 0 (scalar), 256 or 512 (or -1 for the dispatched width)."),
        };
        if (!IsSupported(bits))
        {
            throw new PlatformNotSupportedException($"Float32 GEMM: {bits}-bit vectors with FMA are not supported on this machine (or by the DOTNET_Enable* settings).");
        }

        return PackedFloat32Weights.Pack(weight, outFeatures, inFeatures, bits);
    }

    /// <summary>As <see cref="Float32GemmScalar.Multiply"/>, with weights packed by <see cref="Pack"/>: the same bits at every width.</summary>
    /// <param name="input">Row-major <c>[rows, InFeatures]</c>.</param>
    /// <param name="rows">Rows, 0 or more.</param>
    /// <param name="weights">The packed weights.</param>
    /// <param name="bias">One value per output feature, or empty for none.</param>
    /// <param name="relu">A fused ReLU.</param>
    /// <param name="output">Row-major <c>[rows, OutFeatures]</c>.</param>
    /// <exception cref="ArgumentException">Lengths that do not match the sizes.</exception>
    public static void Multiply(ReadOnlySpan<float> input, int rows, PackedFloat32Weights weights, ReadOnlySpan<float> bias, bool relu, Span<float> output)
    {
        ArgumentNullException.ThrowIfNull(weights);
        int n = weights.OutFeatures, k = weights.InFeatures;
        if (weights.VectorBits == 0)
        {
            Float32GemmScalar.Multiply(input, rows, weights.Values, n, k, bias, relu, output);
            return;
        }

        Float32GemmScalar.CheckSizes(input.Length, rows, n * k, n, k, bias.Length, output.Length);
        if (rows == 0)
        {
            return;
        }

        fixed (float* x = input)
        fixed (float* w = weights.Values)
        fixed (float* y = output)
        {
            if (weights.VectorBits == 512)
            {
                Multiply512(x, rows, w, n, k, weights.Panels, y);
            }
            else
            {
                Multiply256(x, rows, w, n, k, weights.Panels, y);
            }
        }

        if (!bias.IsEmpty || relu)
        {
            Epilogue(output, rows, n, bias, relu);
        }
    }

    // y = y + b, then ReLU: the reference's two float32 steps after the sum, element by element.
    private static void Epilogue(Span<float> output, int rows, int n, ReadOnlySpan<float> bias, bool relu)
    {
        for (int m = 0; m < rows; m++)
        {
            Span<float> row = output.Slice(m * n, n);
            for (int j = 0; j < n; j++)
            {
                float value = bias.IsEmpty ? row[j] : row[j] + bias[j];
                row[j] = relu && value < 0f ? 0f : value;
            }
        }
    }

    private static void Multiply512(float* x, int rows, float* packed, int n, int k, int panels, float* y)
    {
        const int panelWidth = 32;
        long panelStride = (long)k * panelWidth;
        int m = 0;
        for (; m + 4 <= rows; m += 4)
        {
            for (int p = 0; p < panels; p++)
            {
                Tile4Rows512(x + ((long)m * k), k, packed + (p * panelStride), y + ((long)m * n) + (p * panelWidth), n, n - (p * panelWidth));
            }
        }

        for (; m < rows; m++)
        {
            int p = 0;
            for (; p + 4 <= panels; p += 4)
            {
                Row4Panels512(x + ((long)m * k), k, packed + (p * panelStride), panelStride, y + ((long)m * n) + (p * panelWidth), n - (p * panelWidth));
            }

            for (; p < panels; p++)
            {
                Row1Panel512(x + ((long)m * k), k, packed + (p * panelStride), y + ((long)m * n) + (p * panelWidth), n - (p * panelWidth));
            }
        }
    }

    private static void Multiply256(float* x, int rows, float* packed, int n, int k, int panels, float* y)
    {
        const int panelWidth = 16;
        long panelStride = (long)k * panelWidth;
        int m = 0;
        for (; m + 4 <= rows; m += 4)
        {
            for (int p = 0; p < panels; p++)
            {
                Tile4Rows256(x + ((long)m * k), k, packed + (p * panelStride), y + ((long)m * n) + (p * panelWidth), n, n - (p * panelWidth));
            }
        }

        for (; m < rows; m++)
        {
            int p = 0;
            for (; p + 4 <= panels; p += 4)
            {
                Row4Panels256(x + ((long)m * k), k, packed + (p * panelStride), panelStride, y + ((long)m * n) + (p * panelWidth), n - (p * panelWidth));
            }

            for (; p < panels; p++)
            {
                Row1Panel256(x + ((long)m * k), k, packed + (p * panelStride), y + ((long)m * n) + (p * panelWidth), n - (p * panelWidth));
            }
        }
    }

    // Four rows × one panel (two vectors): eight chains, each panel row loaded once for the four rows.
    private static void Tile4Rows512(float* x, int k, float* w, float* y, int n, int columns)
    {
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        float* x1 = x + k, x2 = x + (2 * k), x3 = x + (3 * k);
        for (int i = 0; i < k; i++, w += 32)
        {
            Vector512<float> w0 = Vector512.Load(w), w1 = Vector512.Load(w + 16);
            Vector512<float> b = Vector512.Create(x[i]);
            a00 = Vector512.FusedMultiplyAdd(b, w0, a00);
            a01 = Vector512.FusedMultiplyAdd(b, w1, a01);
            b = Vector512.Create(x1[i]);
            a10 = Vector512.FusedMultiplyAdd(b, w0, a10);
            a11 = Vector512.FusedMultiplyAdd(b, w1, a11);
            b = Vector512.Create(x2[i]);
            a20 = Vector512.FusedMultiplyAdd(b, w0, a20);
            a21 = Vector512.FusedMultiplyAdd(b, w1, a21);
            b = Vector512.Create(x3[i]);
            a30 = Vector512.FusedMultiplyAdd(b, w0, a30);
            a31 = Vector512.FusedMultiplyAdd(b, w1, a31);
        }

        Store(a00, a01, y, columns);
        Store(a10, a11, y + n, columns);
        Store(a20, a21, y + (2 * n), columns);
        Store(a30, a31, y + (3 * n), columns);
    }

    // One row × four panels: eight chains for the rows a four-row tile does not cover.
    private static void Row4Panels512(float* x, int k, float* w, long panelStride, float* y, int columns)
    {
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        float* w1 = w + panelStride, w2 = w + (2 * panelStride), w3 = w + (3 * panelStride);
        for (int i = 0; i < k; i++, w += 32, w1 += 32, w2 += 32, w3 += 32)
        {
            Vector512<float> b = Vector512.Create(x[i]);
            a00 = Vector512.FusedMultiplyAdd(b, Vector512.Load(w), a00);
            a01 = Vector512.FusedMultiplyAdd(b, Vector512.Load(w + 16), a01);
            a10 = Vector512.FusedMultiplyAdd(b, Vector512.Load(w1), a10);
            a11 = Vector512.FusedMultiplyAdd(b, Vector512.Load(w1 + 16), a11);
            a20 = Vector512.FusedMultiplyAdd(b, Vector512.Load(w2), a20);
            a21 = Vector512.FusedMultiplyAdd(b, Vector512.Load(w2 + 16), a21);
            a30 = Vector512.FusedMultiplyAdd(b, Vector512.Load(w3), a30);
            a31 = Vector512.FusedMultiplyAdd(b, Vector512.Load(w3 + 16), a31);
        }

        Store(a00, a01, y, columns);
        Store(a10, a11, y + 32, columns - 32);
        Store(a20, a21, y + 64, columns - 64);
        Store(a30, a31, y + 96, columns - 96);
    }

    private static void Row1Panel512(float* x, int k, float* w, float* y, int columns)
    {
        Vector512<float> a0 = default, a1 = default;
        for (int i = 0; i < k; i++, w += 32)
        {
            Vector512<float> b = Vector512.Create(x[i]);
            a0 = Vector512.FusedMultiplyAdd(b, Vector512.Load(w), a0);
            a1 = Vector512.FusedMultiplyAdd(b, Vector512.Load(w + 16), a1);
        }

        Store(a0, a1, y, columns);
    }

    private static void Tile4Rows256(float* x, int k, float* w, float* y, int n, int columns)
    {
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        float* x1 = x + k, x2 = x + (2 * k), x3 = x + (3 * k);
        for (int i = 0; i < k; i++, w += 16)
        {
            Vector256<float> w0 = Vector256.Load(w), w1 = Vector256.Load(w + 8);
            Vector256<float> b = Vector256.Create(x[i]);
            a00 = Vector256.FusedMultiplyAdd(b, w0, a00);
            a01 = Vector256.FusedMultiplyAdd(b, w1, a01);
            b = Vector256.Create(x1[i]);
            a10 = Vector256.FusedMultiplyAdd(b, w0, a10);
            a11 = Vector256.FusedMultiplyAdd(b, w1, a11);
            b = Vector256.Create(x2[i]);
            a20 = Vector256.FusedMultiplyAdd(b, w0, a20);
            a21 = Vector256.FusedMultiplyAdd(b, w1, a21);
            b = Vector256.Create(x3[i]);
            a30 = Vector256.FusedMultiplyAdd(b, w0, a30);
            a31 = Vector256.FusedMultiplyAdd(b, w1, a31);
        }

        Store(a00, a01, y, columns);
        Store(a10, a11, y + n, columns);
        Store(a20, a21, y + (2 * n), columns);
        Store(a30, a31, y + (3 * n), columns);
    }

    private static void Row4Panels256(float* x, int k, float* w, long panelStride, float* y, int columns)
    {
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        float* w1 = w + panelStride, w2 = w + (2 * panelStride), w3 = w + (3 * panelStride);
        for (int i = 0; i < k; i++, w += 16, w1 += 16, w2 += 16, w3 += 16)
        {
            Vector256<float> b = Vector256.Create(x[i]);
            a00 = Vector256.FusedMultiplyAdd(b, Vector256.Load(w), a00);
            a01 = Vector256.FusedMultiplyAdd(b, Vector256.Load(w + 8), a01);
            a10 = Vector256.FusedMultiplyAdd(b, Vector256.Load(w1), a10);
            a11 = Vector256.FusedMultiplyAdd(b, Vector256.Load(w1 + 8), a11);
            a20 = Vector256.FusedMultiplyAdd(b, Vector256.Load(w2), a20);
            a21 = Vector256.FusedMultiplyAdd(b, Vector256.Load(w2 + 8), a21);
            a30 = Vector256.FusedMultiplyAdd(b, Vector256.Load(w3), a30);
            a31 = Vector256.FusedMultiplyAdd(b, Vector256.Load(w3 + 8), a31);
        }

        Store(a00, a01, y, columns);
        Store(a10, a11, y + 16, columns - 16);
        Store(a20, a21, y + 32, columns - 32);
        Store(a30, a31, y + 48, columns - 48);
    }

    private static void Row1Panel256(float* x, int k, float* w, float* y, int columns)
    {
        Vector256<float> a0 = default, a1 = default;
        for (int i = 0; i < k; i++, w += 16)
        {
            Vector256<float> b = Vector256.Create(x[i]);
            a0 = Vector256.FusedMultiplyAdd(b, Vector256.Load(w), a0);
            a1 = Vector256.FusedMultiplyAdd(b, Vector256.Load(w + 8), a1);
        }

        Store(a0, a1, y, columns);
    }

    // A panel's two vectors to the output row, only the first `columns` features (the last panel is zero-padded).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Vector512<float> low, Vector512<float> high, float* y, int columns)
    {
        if (columns >= 32)
        {
            low.Store(y);
            high.Store(y + 16);
            return;
        }

        StorePartial(low, high, y, columns);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void StorePartial(Vector512<float> low, Vector512<float> high, float* y, int columns)
    {
        for (int j = 0; j < columns; j++)
        {
            y[j] = j < 16 ? low.GetElement(j) : high.GetElement(j - 16);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Vector256<float> low, Vector256<float> high, float* y, int columns)
    {
        if (columns >= 16)
        {
            low.Store(y);
            high.Store(y + 8);
            return;
        }

        StorePartial(low, high, y, columns);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void StorePartial(Vector256<float> low, Vector256<float> high, float* y, int columns)
    {
        for (int j = 0; j < columns; j++)
        {
            y[j] = j < 8 ? low.GetElement(j) : high.GetElement(j - 8);
        }
    }
}
