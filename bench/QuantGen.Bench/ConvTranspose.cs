using System;
using System.Collections.Generic;
using System.Linq;
using BenchmarkDotNet.Attributes;
using QuantGen.Buffers;
using QuantGen.Kernels;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Bench;

/// <summary>A UNet-like up-sampling layer: ConvTranspose2d(InC → OutC, k, stride, padding) on [1, InC, H, W].</summary>
/// <param name="Name">Row label.</param>
/// <param name="InChannels">InC.</param>
/// <param name="OutChannels">OutC.</param>
/// <param name="Kernel">k (square).</param>
/// <param name="Stride">s.</param>
/// <param name="Padding">p.</param>
/// <param name="Height">Input H.</param>
/// <param name="Width">Input W.</param>
public sealed record ConvTransposeShape(string Name, int InChannels, int OutChannels, int Kernel, int Stride, int Padding, int Height, int Width)
{
    /// <summary>The two decoder layers measured: a 2×2/2 up-sampling 64 → 32 on 64×64, and a 4×4/2 padding-1 one 16 → 8 on 128×128.</summary>
    public static readonly ConvTransposeShape[] UNet =
    [
        new("k2s2 64->32 [1,64,64,64]", 64, 32, 2, 2, 0, 64, 64),
        new("k4s2p1 16->8 [1,16,128,128]", 16, 8, 4, 2, 1, 128, 128),
    ];

    /// <summary>The layer's options.</summary>
    public ConvTranspose2dOptions Options => new(InChannels, OutChannels, Kernel, Kernel, Stride, Stride, Padding, Padding);

    /// <summary>Shown by BenchmarkDotNet.</summary>
    public override string ToString() => Name;
}

/// <summary>
/// int8 ConvTranspose2d (the dispatched GEMM + col2im kernel) against its scalar reference and TorchSharp's float
/// ConvTranspose2d on the same weights, batch 1, at 1 and 2 threads:
/// <c>bash bench/run.sh --bdn --filter '*ConvTranspose2dBenchmarks*'</c>.
/// </summary>
[Config(typeof(BenchConfig))]
[MemoryDiagnoser]
public class ConvTranspose2dBenchmarks
{
    private QuantizedConvTranspose2d? _int8;
    private QuantizedConvTranspose2d? _scalar;
    private QTensor? _quantizedInput;
    private readonly BufferSlot _output = new();
    private TorchSharp.Modules.ConvTranspose2d? _float;
    private Tensor? _floatInput;

    /// <summary>The layers.</summary>
    public static IEnumerable<ConvTransposeShape> Shapes => ConvTransposeShape.UNet;

    /// <summary>The layer.</summary>
    [ParamsSource(nameof(Shapes))]
    public ConvTransposeShape Shape { get; set; } = ConvTransposeShape.UNet[0];

    /// <summary>QuantGen's degree of parallelism and libtorch's intra-op threads.</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>Random float weights and input (seeded); the int8 layers quantize them the way the X86 preset would.</summary>
    [GlobalSetup]
    public void Setup()
    {
        ConvTransposeShape s = Shape;
        var random = new Random(13);
        int weightCount = s.InChannels * s.OutChannels * s.Kernel * s.Kernel;
        float[] weights = Enumerable.Range(0, weightCount).Select(_ => (float)((random.NextDouble() - 0.5) * 0.2)).ToArray();
        float[] bias = Enumerable.Range(0, s.OutChannels).Select(_ => (float)((random.NextDouble() - 0.5) * 0.1)).ToArray();
        float[] input = Enumerable.Range(0, s.InChannels * s.Height * s.Width).Select(_ => (float)random.NextDouble() * 2f).ToArray();

        // Per-tensor symmetric weights (PyTorch's ConvTranspose default), a quint8 input over [0, 2], an output
        // range wide enough for the sums.
        QParams weightQParams = QParams.PerTensor(weights.Max(MathF.Abs) / 127.5f, 0, QuantDType.QInt8);
        QTensor weight = QTensor.Quantize(weights, [s.InChannels, s.OutChannels, s.Kernel, s.Kernel], weightQParams);
        QParams inputQParams = QParams.PerTensor(2f / 255f, 0, QuantDType.QUInt8);
        QParams outputQParams = QParams.PerTensor(0.02f, 128, QuantDType.QUInt8);
        _int8 = new QuantizedConvTranspose2d("Bench", "up", s.Options, weight, bias, inputQParams, outputQParams, false, QuantBackend.X86);
        _scalar = new QuantizedConvTranspose2d("Bench", "up", s.Options, weight, bias, inputQParams, outputQParams, false, QuantBackend.X86, GemmConfig.Scalar);
        _quantizedInput = QTensor.Quantize(input, [1, s.InChannels, s.Height, s.Width], inputQParams, MemoryFormat.ChannelsLast);

        _float = nn.ConvTranspose2d(s.InChannels, s.OutChannels, s.Kernel, stride: s.Stride, padding: s.Padding);
        using (no_grad())
        {
            _float.weight!.copy_(tensor(weights, [s.InChannels, s.OutChannels, s.Kernel, s.Kernel]));
            _float.bias!.copy_(tensor(bias));
        }

        _float.eval();
        _floatInput = tensor(input, [1, s.InChannels, s.Height, s.Width]);
        QuantGenRunner.SetThreads(Threads);
        TorchRunner.SetThreads(Threads);

        // The int8 kernel must give its scalar reference's bytes, or the timing means nothing.
        if (!_int8.Forward(_quantizedInput).IntRepr().AsSpan().SequenceEqual(_scalar.Forward(_quantizedInput).IntRepr()))
        {
            throw new InvalidOperationException($"{s}: {_int8.KernelConfig.Name} differs from the scalar reference.");
        }
    }

    /// <summary>Releases the float module and tensors.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _float?.Dispose();
        _floatInput?.Dispose();
    }

    /// <summary>The dispatched int8 kernel, into a reused output buffer (steady state).</summary>
    [Benchmark(Baseline = true, Description = "QuantGen int8")]
    public QTensor Int8() => _int8!.Forward(_quantizedInput!, _output);

    /// <summary>The scalar reference (what every ISA used before the GEMM path).</summary>
    [Benchmark(Description = "QuantGen int8 scalar reference")]
    public QTensor Int8Scalar() => _scalar!.Forward(_quantizedInput!, _output);

    /// <summary>TorchSharp float ConvTranspose2d on the same weights.</summary>
    [Benchmark(Description = "TorchSharp fp32")]
    public void TorchSharpFp32()
    {
        using var noGrad = no_grad();
        using Tensor output = _float!.forward(_floatInput!);
    }
}
