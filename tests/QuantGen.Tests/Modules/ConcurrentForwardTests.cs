using System;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using QuantGen.Buffers;
using QuantGen.Kernels;
using QuantGen.Modules;
using QuantGen.Tests.Generator.Models.Detection;
using QuantGen.Tests.Generator.Models.Fashion;
using ResNet18Example;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using LayerCall = QuantGen.Tests.Modules.SlotForwardTests.LayerCall;

namespace QuantGen.Tests.Modules;

/// <summary>
/// One converted model shared by many threads (as an ONNX Runtime session can be): 8 threads call every
/// forward overload of the same <c>M.Quantized</c> instance at once, thousands of calls in all, and every
/// result must equal, bit for bit, what a single thread computed for that input beforehand. The models are
/// real generated ones covering every layer kind with working memory: ResNet-18 (conv with folded BN,
/// max pool, residual add, adaptive average pool, flatten, linear), the Fashion CNN (qnnpack; functional
/// pool and relu, view, linear) and the CenterNet head (conv-transpose, cat).
/// </summary>
/// <remarks>
/// The class name contains <c>Modules</c>, so the per-ISA CI runs (<c>FullyQualifiedName~Modules</c>) repeat it
/// on every kernel path.
/// </remarks>
// Measures the kernel workers' allocations (a process-wide counter): it runs alone, as the other tests that do.
[Collection(QuantGen.Tests.Kernels.Simd.KernelThreadsCollection.Name)]
public sealed class ConcurrentForwardTests(ITestOutputHelper output)
{
    private const int ThreadCount = 8;
    private const int InputCount = 12;

    /// <summary>A converted model's three public forwards and how to quantize its input.</summary>
    private sealed record SharedModel(
        string Name,
        int[] InputShape,
        IQuantizedModel Int8,
        Func<Tensor, Tensor> ForwardTensor);

    /// <summary>What a single thread computed for one input: the int8 result and the float result's bits.</summary>
    private sealed record Expected(float[] Input, QTensor Quantized, int[] IntRepr, int[] FloatBits, int[] OutputShape);

    [Theory]
    [InlineData("ResNet18", 24)]
    [InlineData("FashionCnn", 500)]
    [InlineData("CenterNetHead", 24)]
    public void EveryOverloadFromEightThreadsAtOnceEqualsTheSingleThreadedResult(string modelName, int callsPerThread)
    {
        SharedModel model = Build(modelName);
        var random = new Random(17);
        int elements = model.InputShape.Aggregate(1, (a, b) => a * b);

        // The single-threaded results, computed before any other thread touches the model.
        Expected[] expected = new Expected[InputCount];
        var single = Stopwatch.StartNew();
        for (int i = 0; i < InputCount; i++)
        {
            float[] input = Enumerable.Range(0, elements).Select(_ => (float)((random.NextDouble() * 4) - 2)).ToArray();
            QTensor quantized = model.Int8.Input.Forward(input, model.InputShape);
            int[] intRepr = model.Int8.forward(quantized).IntRepr();
            float[] values = model.Int8.forward(input, model.InputShape, out int[] outputShape);
            expected[i] = new Expected(input, quantized, intRepr, Bits(values), outputShape);
        }

        single.Stop();
        output.WriteLine($"{modelName}: {2 * InputCount} single-threaded calls (the first ones warm the model) in {single.Elapsed.TotalSeconds:F2} s");

        // Distinct inputs must give distinct results, or a thread reading another's output would go unnoticed.
        Assert.True(expected.Select(e => string.Join(",", e.IntRepr)).Distinct().Count() > InputCount / 2, $"{modelName}: the test inputs give too few distinct results to detect a mix-up");

        var failures = new ConcurrentQueue<string>();
        int calls = 0;
        using var start = new Barrier(ThreadCount);
        var threads = new Thread[ThreadCount];
        var clock = Stopwatch.StartNew();
        for (int t = 0; t < ThreadCount; t++)
        {
            int thread = t;
            threads[t] = new Thread(() =>
            {
                try
                {
                    start.SignalAndWait();
                    for (int call = 0; call < callsPerThread && failures.Count < 20; call++)
                    {
                        // Threads walk the inputs at different strides, so at any moment they run different inputs.
                        int index = ((thread * 5) + (call * (thread + 1))) % InputCount;
                        Expected want = expected[index];
                        string? failure = (call % 3) switch
                        {
                            0 => Compare("forward(QTensor)", want.IntRepr, model.Int8.forward(want.Quantized).IntRepr()),
                            1 => CompareFloat(model, want),
                            _ => CompareTensor(model, want),
                        };
                        Interlocked.Increment(ref calls);
                        if (failure is not null)
                        {
                            failures.Enqueue($"thread {thread}, call {call}, input {index}: {failure}");
                        }
                    }
                }
                catch (Exception exception)
                {
                    failures.Enqueue($"thread {thread}: {exception.GetType().Name}: {exception.Message}\n{exception.StackTrace}");
                }
            })
            { IsBackground = true, Name = $"ConcurrentForwardTests {thread}" };
            threads[t].Start();
        }

        foreach (Thread thread in threads)
        {
            Assert.True(thread.Join(TimeSpan.FromMinutes(2)), $"{modelName}: a forward thread did not finish in 2 minutes");
        }

        output.WriteLine($"{modelName}: {calls} concurrent calls on {ThreadCount} threads in {clock.Elapsed.TotalSeconds:F2} s, {failures.Count} failures");
        Assert.True(failures.IsEmpty, $"{modelName}: {failures.Count} concurrent calls differed from the single-threaded result or threw; first:\n{string.Join("\n", failures.Take(5))}");
        Assert.Equal(ThreadCount * callsPerThread, calls);
    }

    /// <summary>
    /// Every int8 layer, each one instance shared by 8 threads that call all of them in different orders (so different
    /// layers run on one thread's working memory in turn and the same layer on several threads at once), into a
    /// thread's own slot or allocating: every result equals the single-threaded one. Conv, linear and batch norm are also
    /// fed inputs whose scale differs from the calibrated one, alternating between two such scales across threads, which
    /// is what their cached requantization factors must survive.
    /// </summary>
    [Fact]
    public void EveryLayerSharedByEightThreadsGivesTheSingleThreadedResult()
    {
        var random = new Random(1);
        var layers = SlotForwardTests.Layers(random).ToList();
        QParams u8 = QParams.PerTensor(0.05f, 7, QuantDType.QUInt8), u8Out = QParams.PerTensor(0.09f, 131, QuantDType.QUInt8);
        QuantizedConv2d conv = SlotForwardTests.Conv(random, "conv", new Conv2dOptions(8, 24, 3, 3, 1, 1, 1, 1), u8, u8Out, relu: true);
        QuantizedLinear linear = SlotForwardTests.Linear(random, "fc", 40, 70, u8, u8Out);
        var bn = new QuantizedBatchNorm2d("M", "bn", ContractReference.RandomFloats(random, 8, 0.5f, 1.5f), ContractReference.RandomFloats(random, 8, -1f, 1f), u8Out, relu: false);
        foreach (float scale in new[] { 0.061f, 0.073f })
        {
            QTensor image = OpTestSupport.RandomTensor(random, [1, 8, 13, 11], QParams.PerTensor(scale, 7, QuantDType.QUInt8));
            QTensor features = OpTestSupport.RandomTensor(random, [3, 40], QParams.PerTensor(scale, 7, QuantDType.QUInt8), MemoryFormat.Contiguous);
            QTensor normalized = OpTestSupport.RandomTensor(random, [1, 8, 13, 11], QParams.PerTensor(scale, 131, QuantDType.QUInt8));
            layers.Add(($"Conv2d, input scale {scale}", slot => conv.Forward(image, slot)));
            layers.Add(($"Linear, input scale {scale}", slot => linear.Forward(features, slot)));
            layers.Add(($"BatchNorm2d, input scale {scale}", slot => bn.Forward(normalized, slot)));
        }

        int[][] expected = layers.Select(layer => layer.Call(null).IntRepr()).ToArray();
        const int Rounds = 12;
        var failures = new ConcurrentQueue<string>();
        using var start = new Barrier(ThreadCount);
        var threads = Enumerable.Range(0, ThreadCount).Select(thread => new Thread(() =>
        {
            try
            {
                var slots = layers.Select(_ => new BufferSlot()).ToArray();
                start.SignalAndWait();
                for (int round = 0; round < Rounds && failures.Count < 20; round++)
                {
                    for (int step = 0; step < layers.Count; step++)
                    {
                        // Thread t walks the layers at stride t + 1 (odd strides give every thread another order).
                        int index = ((thread * 3) + (step * ((2 * thread) + 1))) % layers.Count;
                        (string name, LayerCall call) = layers[index];
                        QTensor result = call((round + thread) % 2 == 0 ? slots[index] : null);
                        if (Compare(name, expected[index], result.IntRepr()) is string failure)
                        {
                            failures.Enqueue($"thread {thread}, round {round}: {failure}");
                        }
                    }
                }
            }
            catch (Exception exception)
            {
                failures.Enqueue($"thread {thread}: {exception.GetType().Name}: {exception.Message}\n{exception.StackTrace}");
            }
        })
        { IsBackground = true }).ToArray();
        foreach (Thread thread in threads)
        {
            thread.Start();
        }

        foreach (Thread thread in threads)
        {
            Assert.True(thread.Join(TimeSpan.FromMinutes(2)), "a layer thread did not finish in 2 minutes");
        }

        output.WriteLine($"{layers.Count} layers x {Rounds} rounds on {ThreadCount} threads, {failures.Count} failures");
        Assert.True(failures.IsEmpty, $"{failures.Count} concurrent layer calls differed from the single-threaded result or threw; first:\n{string.Join("\n", failures.Take(5))}");
    }

    /// <summary>
    /// Concurrency keeps the allocation goal: once every thread has run a few calls (each concurrent call has had a
    /// buffer set of its own, and each thread its working memory), a <c>forward(QTensor)</c> made while the other
    /// threads are also calling allocates only its result.
    /// </summary>
    [Fact]
    public void ConcurrentSteadyStateForwardsAllocateOnlyTheirResult()
    {
        const int Threads = 4, WarmUp = 20, Measured = 40;
        SharedModel model = Build("ResNet18");
        QTensor input = model.Int8.Input.Forward(Enumerable.Range(0, 3 * 32 * 32).Select(i => (float)Math.Sin(i)).ToArray(), model.InputShape);
        long[][] allocations = new long[Threads][];
        using var start = new Barrier(Threads);
        using var warm = new Barrier(Threads);
        var failures = new ConcurrentQueue<Exception>();
        var threads = Enumerable.Range(0, Threads).Select(thread => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                for (int i = 0; i < WarmUp; i++)
                {
                    model.Int8.forward(input);
                }

                // Measured calls start together, so they overlap with the other threads' calls.
                warm.SignalAndWait();
                var bytes = new long[Measured];
                for (int i = 0; i < Measured; i++)
                {
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    model.Int8.forward(input);
                    bytes[i] = GC.GetAllocatedBytesForCurrentThread() - before;
                }

                allocations[thread] = bytes;
            }
            catch (Exception exception)
            {
                failures.Enqueue(exception);
            }
        })
        { IsBackground = true }).ToArray();
        long workersBefore = KernelThreads.WorkerAllocatedBytes;
        foreach (Thread thread in threads)
        {
            thread.Start();
        }

        foreach (Thread thread in threads)
        {
            Assert.True(thread.Join(TimeSpan.FromMinutes(2)), "a forward thread did not finish in 2 minutes");
        }

        Assert.Empty(failures);
        for (int t = 0; t < Threads; t++)
        {
            // The result: a QTensor, its shape array and 10 bytes of storage, a few hundred bytes; one activation of
            // ResNet-18 at 32x32 is 16 KiB or more, so a call that rented a new buffer set or grew scratch shows.
            long[] sorted = allocations[t].Order().ToArray();
            output.WriteLine($"thread {t}: median {sorted[Measured / 2]} bytes, max {sorted[^1]} bytes per call");
            Assert.True(sorted[Measured / 2] < 1024, $"thread {t}: a steady-state concurrent forward allocated a median {sorted[Measured / 2]} bytes");
            Assert.True(allocations[t].Count(b => b >= 1024) <= 1, $"thread {t}: {allocations[t].Count(b => b >= 1024)} of {Measured} steady-state concurrent forwards allocated 1 KiB or more");
        }

        Assert.Equal(0, KernelThreads.WorkerAllocatedBytes - workersBefore);
    }

    private static string? CompareFloat(SharedModel model, Expected want)
    {
        float[] values = model.Int8.forward(want.Input, model.InputShape, out int[] shape);
        return Compare("forward(float[]) shape", want.OutputShape, shape) ?? Compare("forward(float[])", want.FloatBits, Bits(values));
    }

    private static string? CompareTensor(SharedModel model, Expected want)
    {
        using var scope = torch.NewDisposeScope();
        Tensor input = torch.tensor(want.Input, model.InputShape.Select(d => (long)d).ToArray());
        Tensor result = model.ForwardTensor(input);
        int[] shape = result.shape.Select(d => (int)d).ToArray();
        return Compare("forward(Tensor) shape", want.OutputShape, shape) ?? Compare("forward(Tensor)", want.FloatBits, Bits(result.data<float>().ToArray()));
    }

    private static string? Compare(string overload, int[] expected, int[] actual)
    {
        if (expected.Length != actual.Length)
        {
            return $"{overload}: {actual.Length} values, expected {expected.Length}";
        }

        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] != actual[i])
            {
                return $"{overload}: value {i} is {actual[i]}, expected {expected[i]}";
            }
        }

        return null;
    }

    private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    private static SharedModel Build(string name)
    {
        torch.manual_seed(5);
        switch (name)
        {
            case "ResNet18":
            {
                int[] shape = [1, 3, 32, 32];
                using var model = new ResNet18(numClasses: 10);
                Randomize.BatchNormStatistics(model, 5);
                model.eval();
                using ResNet18.Observed observed = model.Prepare(QConfig.X86);
                Calibrate(observed.forward, shape);
                ResNet18.Quantized int8 = observed.Convert();
                return new SharedModel(name, shape, int8, int8.forward);
            }

            case "FashionCnn":
            {
                int[] shape = [1, 1, 28, 28];
                using var model = new FashionCnn();
                model.eval();
                using FashionCnn.Observed observed = model.Prepare();
                Calibrate(observed.forward, shape);
                FashionCnn.Quantized int8 = observed.Convert();
                return new SharedModel(name, shape, int8, int8.forward);
            }

            case "CenterNetHead":
            {
                int[] shape = [1, 3, 16, 16];
                using var model = new CenterNetHead();
                model.eval();
                using CenterNetHead.Observed observed = model.Prepare();
                Calibrate(observed.forward, shape);
                CenterNetHead.Quantized int8 = observed.Convert();
                return new SharedModel(name, shape, int8, int8.forward);
            }

            default:
                throw new ArgumentException($"no model {name}", nameof(name));
        }
    }

    private static void Calibrate(Func<Tensor, Tensor> forward, int[] shape)
    {
        using (torch.no_grad())
        {
            for (int i = 0; i < 2; i++)
            {
                using Tensor batch = torch.randn(shape.Select(d => (long)d).ToArray());
                forward(batch).Dispose();
            }
        }
    }
}
