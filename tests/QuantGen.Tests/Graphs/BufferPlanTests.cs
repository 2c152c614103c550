using System;
using System.Linq;
using QuantGen.Kernels;
using QuantGen.Reports;
using ResNet18Example;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Graphs;

/// <summary>
/// The generator's buffer plan: the int8 forward writes every intermediate into shared activation slots, so a
/// steady-state call allocates only its result, and sharing never lets an op overwrite a value still to be read.
/// </summary>
public sealed class BufferPlanTests
{
    private const int Size = 32;

    private static ResNet18.Quantized Converted()
    {
        torch.manual_seed(21);
        using var model = new ResNet18(numClasses: 10);
        Randomize.BatchNormStatistics(model, 21);
        model.eval();
        using ResNet18.Observed observed = model.Prepare(QConfig.X86);
        using (torch.no_grad())
        {
            using Tensor batch = torch.randn(1, 3, Size, Size);
            observed.forward(batch).Dispose();
        }

        return observed.Convert();
    }

    private static float[] Image(int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, 3 * Size * Size).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
    }

    [Fact]
    public void BufferedForwardEqualsTheAllocatingForwardCallAfterCall()
    {
        // The tap path gives every op a fresh tensor: the independent reference for the slot-sharing path.
        ResNet18.Quantized int8 = Converted();
        for (int call = 0; call < 3; call++)
        {
            float[] image = Image(call);
            QTensor input = int8.input.Forward(image, [1, 3, Size, Size]);
            int[] buffered = int8.forward(input).IntRepr();
            int[] allocating = int8.forward(input, new NoTap()).IntRepr();
            Assert.Equal(allocating, buffered);
        }
    }

    [Fact]
    public void SteadyStateForwardAllocatesOnlyItsResult()
    {
        ResNet18.Quantized int8 = Converted();
        QTensor input = int8.input.Forward(Image(7), [1, 3, Size, Size]);
        for (int i = 0; i < 3; i++)
        {
            int8.forward(input);
        }

        long before = GC.GetAllocatedBytesForCurrentThread(), workersBefore = KernelThreads.WorkerAllocatedBytes;
        QTensor result = int8.forward(input);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before + (KernelThreads.WorkerAllocatedBytes - workersBefore);

        // The result: a QTensor object, its shape array and a 10-byte storage array — a few hundred bytes at most,
        // while one 32×32×64 activation alone would be 64 KiB.
        Assert.Equal([1, 10], result.Shape);
        Assert.True(allocated < 1024, $"a steady-state forward allocated {allocated} bytes");
    }

    private sealed class NoTap : IQuantizedTap
    {
        public void OnLayer(string layer, QTensor output)
        {
        }
    }
}
