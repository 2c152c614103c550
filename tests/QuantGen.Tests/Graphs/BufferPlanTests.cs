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

    [Fact]
    public void A_model_ending_in_a_cat_of_three_allocates_only_its_result()
    {
        // The CenterNet head joins its three heads with torch.cat as its result: the generated call must pass them as a
        // collection expression (stack), not through the params overload, which allocated a 3-element array per call.
        torch.manual_seed(5);
        using var model = new CenterNetHeadExample.CenterNetHead();
        model.eval();
        using CenterNetHeadExample.CenterNetHead.Observed observed = model.Prepare(CenterNetHeadExample.CenterNetHead.DefaultQConfigMapping());
        using (torch.no_grad())
        {
            observed.forward(torch.randn(2, 3, 32, 32)).Dispose();
        }

        CenterNetHeadExample.CenterNetHead.Quantized int8 = observed.Convert();
        using Tensor image = torch.randn(1, 3, 32, 32);
        QTensor input = int8.input.Forward(image.data<float>().ToArray(), [1, 3, 32, 32]);
        for (int i = 0; i < 3; i++)
        {
            int8.forward(input);
        }

        long before = GC.GetAllocatedBytesForCurrentThread(), workersBefore = KernelThreads.WorkerAllocatedBytes;
        QTensor result = int8.forward(input);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before + (KernelThreads.WorkerAllocatedBytes - workersBefore);

        // The result [1, 6, 32, 32]: 6144 bytes of storage and its array header, a QTensor object and its 4-element shape —
        // about 110 bytes beyond the values (ResNet-18's [1, 10] result: 104); a 3-element array more would be 48.
        Assert.Equal([1, 6, 32, 32], result.Shape);
        Assert.True(allocated - 6144 <= 128, $"a steady-state forward allocated {allocated} bytes, {allocated - 6144} beyond the result's 6144 values");
    }

    private sealed class NoTap : IQuantizedTap
    {
        public void OnLayer(string layer, QTensor output)
        {
        }
    }
}
