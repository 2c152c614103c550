using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Threading;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;

namespace QuantGen.Bench;

/// <summary>
/// One ResNet-18 convolution as a GEMM: M = output pixels, N = output channels, K = in_ch·kh·kw.
/// </summary>
/// <param name="Layer">Which ResNet-18 layer it is.</param>
/// <param name="Geometry">The convolution (batch 1).</param>
public sealed record GemmShape(string Layer, Conv2dGeometry Geometry)
{
    /// <summary>The shapes measured: the stem and one 3×3 convolution per stage.</summary>
    public static GemmShape[] ResNet18 { get; } =
    [
        new("conv1 7×7/2", new Conv2dGeometry(1, 3, 224, 224, 64, 7, 7, 2, 2, 3, 3)),
        new("layer1 3×3", new Conv2dGeometry(1, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1)),
        new("layer2 3×3", new Conv2dGeometry(1, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1)),
        new("layer3 3×3", new Conv2dGeometry(1, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1)),
        new("layer4 3×3", new Conv2dGeometry(1, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1)),
    ];

    /// <summary>Rows.</summary>
    public int M => Geometry.Batch * Geometry.OutHeight * Geometry.OutWidth;

    /// <summary>Columns.</summary>
    public int N => Geometry.OutChannels;

    /// <summary>Depth.</summary>
    public int K => Geometry.InChannelsPerGroup * Geometry.KernelHeight * Geometry.KernelWidth;

    /// <summary>2·M·N·K.</summary>
    public double Operations => 2.0 * M * N * K;

    /// <summary>"12544×64×147".</summary>
    public string Dimensions => $"{M}×{N}×{K}";

    /// <inheritdoc/>
    public override string ToString() => $"{Layer} {Dimensions}";
}

/// <summary>
/// The dispatched int8 kernels on one <see cref="GemmShape"/>, with random uint8 activations and int8 weights
/// (symmetric, zero point 0, as the X86 preset packs them) and requantization to uint8 with fused ReLU, as the
/// model's convolutions run: <see cref="LinearKernel.Run"/> is the plain GEMM over M rows of K bytes (the
/// GemmDriver with direct rows); <see cref="Conv2dKernel.Run"/> is the convolution itself (implicit GEMM over
/// row pointers for 3×3, kernel-row runs from a padded copy for the 3-channel stem).
/// </summary>
public sealed class GemmCase
{
    private readonly GemmShape _shape;
    private readonly byte[] _gemmInput;
    private readonly byte[] _convInput;
    private readonly byte[] _output;
    private readonly PackedGemmWeights _gemmWeights;
    private readonly PackedConv2dWeights _convWeights;
    private readonly RequantizeParams _requantize;
    private readonly KernelScratch _scratch = new();

    /// <summary>Packs random weights for <paramref name="config"/> (null: the dispatched kernel).</summary>
    public GemmCase(GemmShape shape, GemmConfig? config = null)
    {
        _shape = shape;
        var random = new Random(42);
        Conv2dGeometry g = shape.Geometry;
        _gemmInput = new byte[shape.M * shape.K];
        random.NextBytes(_gemmInput);
        _convInput = new byte[g.Batch * g.InHeight * g.InWidth * g.InChannels];
        random.NextBytes(_convInput);
        var weights = new sbyte[shape.N * shape.K];
        for (int i = 0; i < weights.Length; i++)
        {
            weights[i] = (sbyte)random.Next(-127, 128);
        }

        var zeroPoints = new int[shape.N];
        var scales = new float[shape.N];
        var bias = new float[shape.N];
        for (int c = 0; c < shape.N; c++)
        {
            scales[c] = 0.001f + (0.0001f * (c % 7));
            bias[c] = (float)(random.NextDouble() - 0.5);
        }

        // The OHWI weights of the convolution are the [N][K] rows of the GEMM (k = (kh·KW + kw)·C + c).
        _gemmWeights = LinearKernel.Pack(weights, zeroPoints, shape.N, shape.K, config);
        _convWeights = PackedConv2dWeights.Pack(weights, zeroPoints, g.OutChannels, g.InChannels, g.KernelHeight, g.KernelWidth, g.Groups, config);
        _requantize = RequantizeParams.Create(QuantBackend.X86, 0.02f, scales, 0.05f, 0, bias, relu: true);
        _output = new byte[shape.M * shape.N];
    }

    /// <summary>The shape.</summary>
    public GemmShape Shape => _shape;

    /// <summary>The kernel that runs (the packed weights' config).</summary>
    public GemmConfig Config => _gemmWeights.Config;

    /// <summary>One GEMM: M rows × K → N channels, requantized.</summary>
    public void RunGemm() => LinearKernel.Run(_shape.M, _gemmInput, 128, _gemmWeights, _requantize, _output, _scratch);

    /// <summary>The convolution of the same shape, requantized.</summary>
    public void RunConv() => Conv2dKernel.Run(_shape.Geometry, _convInput, 128, _convWeights, _requantize, _output, _scratch);
}

/// <summary>
/// The vpdpbusd ceiling of this machine from managed code: 12 independent 256-bit accumulators, each updated
/// by <see cref="AvxVnni.MultiplyWideningAndAdd(Vector256{int}, Vector256{byte}, Vector256{sbyte})"/> in a
/// long loop on register operands only (no memory traffic). One instruction = 8 lanes × 4 u8·s8 products
/// = 32 multiply-adds, so GOPS = 2 · 32 · instructions / s.
/// </summary>
public static class VnniPeak
{
    /// <summary>Instructions per loop iteration.</summary>
    public const int Accumulators = 12;

    private static int s_sink;

    /// <summary>True when AVX-VNNI can run here.</summary>
    public static bool IsSupported => AvxVnni.IsSupported;

    /// <summary>
    /// Measures the peak on <paramref name="threads"/> threads at once: each thread runs the loop in chunks of about
    /// a millisecond for about <paramref name="seconds"/>, and its rate is that of its fastest chunk (a chunk cannot
    /// run faster than the hardware, but a long loop on a busy machine is slowed by every other process that gets
    /// the core — the GEMM medians, made of short calls, mostly are not); the threads' rates are added.
    /// </summary>
    public static double MeasureGops(int threads, double seconds = 0.5) =>
        IsSupported ? Measure(Loop, 2.0 * 32 * Accumulators, threads, seconds) : double.NaN;

    /// <summary>True when the generated 512-bit loop can run here (AVX-512 VNNI, executable memory, QUANTGEN_JIT not 0).</summary>
    public static bool Is512Supported => QuantGen.Kernels.X86.Generated.GemmAvx512VnniGenerated.IsAvailable;

    /// <summary>
    /// The 512-bit peak the generated kernels run against: <see cref="QuantGen.Kernels.X86.Generated.GemmAvx512VnniGenerated.PeakLoop"/>
    /// (12 independent zmm accumulators, 2·64 operations per instruction), timed as <see cref="MeasureGops"/>.
    /// </summary>
    public static double MeasureGops512(int threads, double seconds = 0.5) =>
        Is512Supported
            ? Measure(QuantGen.Kernels.X86.Generated.GemmAvx512VnniGenerated.PeakLoop, 2.0 * 64 * QuantGen.Kernels.X86.Generated.GemmAvx512VnniEmitter.PeakAccumulators, threads, seconds)
            : double.NaN;

    private static double Measure(Action<long> loop, double operationsPerIteration, int threads, double seconds)
    {
        loop(1000); // compile / map

        // About 1 ms of loop per chunk.
        long iterations = 1000;
        while (true)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            loop(iterations);
            double elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (elapsed > 2e-4)
            {
                iterations = Math.Max(1000, (long)(iterations * 1e-3 / elapsed));
                break;
            }

            iterations *= 4;
        }

        var best = new double[threads];
        using var ready = new Barrier(threads);
        var workers = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int index = t;
            workers[t] = new Thread(() =>
            {
                ready.SignalAndWait();
                long end = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(seconds * System.Diagnostics.Stopwatch.Frequency);
                double fastest = double.MaxValue;
                while (System.Diagnostics.Stopwatch.GetTimestamp() < end)
                {
                    long start = System.Diagnostics.Stopwatch.GetTimestamp();
                    loop(iterations);
                    fastest = Math.Min(fastest, System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds);
                }

                best[index] = operationsPerIteration * iterations / fastest / 1e9;
            });
            workers[t].Start();
        }

        foreach (Thread worker in workers)
        {
            worker.Join();
        }

        double total = 0;
        foreach (double gops in best)
        {
            total += gops;
        }

        return total;
    }

    /// <summary>The register-only loop: <see cref="Accumulators"/> vpdpbusd per iteration.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static void Loop(long iterations)
    {
        Vector256<byte> x = Vector256.Create((byte)3);
        Vector256<sbyte> w = Vector256.Create((sbyte)-1);
        Vector256<int> a0 = Vector256.Create(0), a1 = Vector256.Create(1), a2 = Vector256.Create(2), a3 = Vector256.Create(3);
        Vector256<int> a4 = Vector256.Create(4), a5 = Vector256.Create(5), a6 = Vector256.Create(6), a7 = Vector256.Create(7);
        Vector256<int> a8 = Vector256.Create(8), a9 = Vector256.Create(9), a10 = Vector256.Create(10), a11 = Vector256.Create(11);
        for (long i = 0; i < iterations; i++)
        {
            a0 = AvxVnni.MultiplyWideningAndAdd(a0, x, w);
            a1 = AvxVnni.MultiplyWideningAndAdd(a1, x, w);
            a2 = AvxVnni.MultiplyWideningAndAdd(a2, x, w);
            a3 = AvxVnni.MultiplyWideningAndAdd(a3, x, w);
            a4 = AvxVnni.MultiplyWideningAndAdd(a4, x, w);
            a5 = AvxVnni.MultiplyWideningAndAdd(a5, x, w);
            a6 = AvxVnni.MultiplyWideningAndAdd(a6, x, w);
            a7 = AvxVnni.MultiplyWideningAndAdd(a7, x, w);
            a8 = AvxVnni.MultiplyWideningAndAdd(a8, x, w);
            a9 = AvxVnni.MultiplyWideningAndAdd(a9, x, w);
            a10 = AvxVnni.MultiplyWideningAndAdd(a10, x, w);
            a11 = AvxVnni.MultiplyWideningAndAdd(a11, x, w);
        }

        // Consume every accumulator so none of the chains is dead code.
        Vector256<int> sum = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
        s_sink += sum.GetElement(0) + sum.GetElement(7);
    }
}
