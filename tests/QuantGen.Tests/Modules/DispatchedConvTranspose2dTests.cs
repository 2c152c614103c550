using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using QuantGen.Kernels;
using QuantGen.Modules;
using QuantGen.Tests.Kernels.Simd;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.OpTestSupport;

namespace QuantGen.Tests.Modules;

/// <summary>
/// QuantizedConvTranspose2d on the packed kernels (GEMM + col2im) gives, for every config this machine runs and
/// for the dispatcher's choice, the bytes of the same layer on <see cref="GemmConfig.Scalar"/> — the scalar
/// reference <c>ConvTranspose2dScalar</c> and the scalar requantization — on odd shapes, both backends, quint8 and
/// qint8 inputs and outputs (X86 with a qint8 output takes the accumulate-then-requantize path), per-tensor and
/// per-channel weights with nonzero zero points, ReLU, and an input whose scale differs from the calibrated one.
/// One layer called from eight threads at once gives every thread the single-threaded bytes.
/// </summary>
public class DispatchedConvTranspose2dTests(ITestOutputHelper output)
{
    /// <summary>(options, H, W): the UNet up-sampling layers (small), groups, dilation, output padding, one pixel.</summary>
    private static readonly (ConvTranspose2dOptions Options, int Height, int Width)[] Shapes =
    [
        (new ConvTranspose2dOptions(64, 32, 2, 2, 2, 2), 6, 7),
        (new ConvTranspose2dOptions(16, 8, 4, 4, 2, 2, 1, 1), 9, 8),
        (new ConvTranspose2dOptions(6, 9, 3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 3), 4, 5),
        (new ConvTranspose2dOptions(4, 4, 3, 3, 1, 1, 2, 2, 0, 0, 2, 2, 4), 3, 3),
        (new ConvTranspose2dOptions(37, 17, 5, 3, 3, 1, 2, 1, 1, 0), 3, 5),
        (new ConvTranspose2dOptions(1, 1, 2, 2, 2, 2), 1, 1),
    ];

    public static IEnumerable<object[]> Cases()
    {
        foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
        {
            foreach (QuantDType input in new[] { QuantDType.QUInt8, QuantDType.QInt8 })
            {
                foreach (QuantDType outputDType in new[] { QuantDType.QUInt8, QuantDType.QInt8 })
                {
                    yield return [backend, input, outputDType];
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryConfigEqualsTheScalarReferenceLayer(QuantBackend backend, QuantDType inputDType, QuantDType outputDType)
    {
        var random = new Random(5000 + ((int)backend * 4) + ((int)inputDType * 2) + (int)outputDType);
        int checkedPairs = 0;
        foreach ((ConvTranspose2dOptions o, int height, int width) in Shapes)
        {
            foreach (bool perChannel in new[] { false, true })
            {
                foreach (bool relu in new[] { false, true })
                {
                    (QTensor weight, float[] bias, QParams qx, QParams qy) = LayerData(random, o, perChannel, inputDType, outputDType);
                    QTensor x = RandomTensor(random, [1 + (checkedPairs % 3), o.InChannels, height, width], qx, checkedPairs % 2 == 0 ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous);
                    QTensor rescaled = new(x.Shape, QParams.PerTensor(qx.Scale * 1.29f, qx.ZeroPoint, qx.DType), (byte[])x.Storage.Clone(), x.Format);

                    QuantizedConvTranspose2d Create(GemmConfig? config) => new("M", "up", o, weight, bias, qx, qy, relu, backend, config);
                    QuantizedConvTranspose2d reference = Create(GemmConfig.Scalar);
                    int[] expected = reference.Forward(x).IntRepr();
                    int[] expectedRescaled = reference.Forward(rescaled).IntRepr();
                    string what = $"{o} {height}x{width} {backend} {inputDType}->{outputDType} perChannel={perChannel} relu={relu}";
                    Assert.True(expected.Distinct().Count() >= Math.Min(10, expected.Length / 4), $"{what}: too few distinct outputs to show a difference");

                    QuantizedConvTranspose2d dispatched = Create(null);
                    Assert.Equal(KernelDispatch.Config, dispatched.KernelConfig);
                    AssertSame(expected, dispatched.Forward(x), $"{what} dispatcher ({KernelDispatch.Config.Name})");
                    foreach (GemmConfig config in SupportedConfigs())
                    {
                        QuantizedConvTranspose2d layer = Create(config);
                        Assert.Equal(config, layer.KernelConfig);
                        AssertSame(expected, layer.Forward(x), $"{what} {config.Name}");
                        AssertSame(expected, layer.Forward(x), $"{what} {config.Name} (second call, reused scratch)");
                        AssertSame(expectedRescaled, layer.Forward(rescaled), $"{what} {config.Name} (other input scale)");
                        checkedPairs++;
                    }
                }
            }
        }

        output.WriteLine($"{checkedPairs} layer/config pairs equal the scalar reference layer; supported: {string.Join(", ", SupportedConfigs().Select(c => c.Name))}");
    }

    /// <summary>
    /// One layer (the dispatcher's kernel; several bands and parallel regions per call) shared by eight threads,
    /// each calling it with its own inputs many times at once: every result equals what one thread computed
    /// beforehand, and that equals the scalar reference layer's.
    /// </summary>
    [Fact]
    public void OneLayerCalledFromEightThreadsAtOnceGivesTheSingleThreadedResults()
    {
        const int threadCount = 8, inputsCount = 6, callsPerThread = 12;
        var random = new Random(91);
        var options = new ConvTranspose2dOptions(16, 24, 4, 4, 2, 2, 1, 1);
        (QTensor weight, float[] bias, QParams qx, QParams qy) = LayerData(random, options, perChannel: true, QuantDType.QUInt8, QuantDType.QUInt8);
        var layer = new QuantizedConvTranspose2d("M", "up", options, weight, bias, qx, qy, true, QuantBackend.X86);
        var reference = new QuantizedConvTranspose2d("M", "up", options, weight, bias, qx, qy, true, QuantBackend.X86, GemmConfig.Scalar);
        QTensor[] inputs = Enumerable.Range(0, inputsCount).Select(_ => RandomTensor(random, [2, 16, 13, 30], qx)).ToArray();
        int[][] expected = inputs.Select(x => layer.Forward(x).IntRepr()).ToArray();
        for (int i = 0; i < inputsCount; i++)
        {
            AssertSame(expected[i], reference.Forward(inputs[i]), $"input {i}: single-threaded {layer.KernelConfig.Name} vs the scalar reference");
        }

        Assert.Equal(inputsCount, expected.Select(e => string.Join(",", e)).Distinct().Count());
        var failures = new ConcurrentQueue<string>();
        using var start = new Barrier(threadCount);
        Thread[] threads = Enumerable.Range(0, threadCount).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int call = 0; call < callsPerThread; call++)
            {
                int which = (t + call) % inputsCount;
                int[] actual = layer.Forward(inputs[which]).IntRepr();
                if (!actual.AsSpan().SequenceEqual(expected[which]))
                {
                    failures.Enqueue($"thread {t}, call {call}, input {which}");
                }
            }
        })).ToArray();
        foreach (Thread thread in threads)
        {
            thread.Start();
        }

        foreach (Thread thread in threads)
        {
            thread.Join();
        }

        Assert.True(failures.IsEmpty, $"{failures.Count} concurrent results differ from the single-threaded ones, e.g. {failures.FirstOrDefault()}");
        output.WriteLine($"{threadCount * callsPerThread} concurrent calls on {layer.KernelConfig.Name} equal the single-threaded results");
    }

    private static IEnumerable<GemmConfig> SupportedConfigs() =>
        SimdTestData.ConfigNames.Select(SimdTestData.Config).Where(c => c.IsSupported);

    /// <summary>
    /// qint8 weights [InC, OutC/g, KH, KW], full range, per tensor (zero point 3) or per channel along axis 1 (some
    /// entries with a nonzero zero point); a bias; input qparams with a nonzero zero point; and an output scale
    /// that puts a typical sum (√terms · 74 · 74) about 40 steps from the zero point, so outputs spread and some saturate.
    /// </summary>
    private static (QTensor Weight, float[] Bias, QParams Input, QParams Output) LayerData(Random random, ConvTranspose2dOptions o, bool perChannel, QuantDType inputDType, QuantDType outputDType)
    {
        int outPerGroup = o.OutChannels / o.Groups;
        int[] shape = [o.InChannels, outPerGroup, o.KernelHeight, o.KernelWidth];
        int count = shape.Aggregate(1, (a, b) => a * b);
        QParams qw = perChannel
            ? QParams.PerChannel(
                Enumerable.Range(0, outPerGroup).Select(_ => 0.002f + (0.008f * (float)random.NextDouble())).ToArray(),
                Enumerable.Range(0, outPerGroup).Select(c => c % 3 == 1 ? random.Next(-20, 21) : 0).ToArray(), 1, QuantDType.QInt8)
            : QParams.PerTensor(0.005f, 3, QuantDType.QInt8);
        QTensor weight = new(shape, qw, ContractReference.Bytes(ContractReference.RandomInts(random, count, -128, 127)));

        float sx = 0.02f + (0.02f * (float)random.NextDouble());
        QParams qx = QParams.PerTensor(sx, inputDType == QuantDType.QUInt8 ? random.Next(90, 160) : random.Next(-30, 31), inputDType);
        int terms = Math.Max(1, (o.InChannels / o.Groups) * ((o.KernelHeight * o.KernelWidth) / Math.Max(1, o.StrideHeight * o.StrideWidth)));
        float sy = sx * 0.006f * MathF.Sqrt(terms) * 74f * 74f / 40f;
        QParams qy = QParams.PerTensor(sy, outputDType == QuantDType.QUInt8 ? 100 : -20, outputDType);
        float[] bias = ContractReference.RandomFloats(random, o.OutChannels, -20f * sy, 20f * sy);
        return (weight, bias, qx, qy);
    }

    private static void AssertSame(int[] expected, QTensor actual, string what)
    {
        int[] values = actual.IntRepr();
        Assert.Equal(expected.Length, values.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] != values[i])
            {
                Assert.Fail($"{what}: element {i} is {values[i]}, the scalar reference layer gives {expected[i]}.");
            }
        }
    }
}
