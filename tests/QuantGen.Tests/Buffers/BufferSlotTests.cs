using System;
using System.Linq;
using QuantGen.Buffers;

namespace QuantGen.Tests.Buffers;

public class BufferSlotTests
{
    private static readonly QParams U8 = QParams.PerTensor(0.1f, 3, QuantDType.QUInt8);

    [Fact]
    public void TheSameShapeQParamsAndFormatGiveTheSameTensorWithoutAllocating()
    {
        var slot = new BufferSlot();
        QTensor first = slot.Tensor([1, 4, 3, 2], U8, MemoryFormat.ChannelsLast);

        // A span built on the stack: a constant collection expression passed as a span is allocated by the call site here.
        ReadOnlySpan<int> shape = stackalloc int[] { 1, 4, 3, 2 };
        long before = GC.GetAllocatedBytesForCurrentThread();
        QTensor again = slot.Tensor(shape, U8, MemoryFormat.ChannelsLast);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Same(first, again);
        Assert.Equal(0, allocated);

        // Equal values in another QParams object hit the cache too.
        Assert.Same(first, slot.Tensor([1, 4, 3, 2], QParams.PerTensor(0.1f, 3, QuantDType.QUInt8), MemoryFormat.ChannelsLast));
    }

    [Fact]
    public void AnotherShapeQParamsOrFormatIsAnotherViewOfTheSameBuffer()
    {
        var slot = new BufferSlot();
        QTensor a = slot.Tensor([2, 3, 4, 5], U8, MemoryFormat.ChannelsLast);
        QTensor b = slot.Tensor([2, 60], U8, MemoryFormat.Contiguous);
        QTensor c = slot.Tensor([2, 3, 4, 5], U8, MemoryFormat.Contiguous);
        QTensor d = slot.Tensor([2, 3, 4, 5], QParams.PerTensor(0.2f, 3, QuantDType.QUInt8), MemoryFormat.ChannelsLast);
        QTensor e = slot.Tensor([1, 3, 4, 5], U8, MemoryFormat.ChannelsLast);
        Assert.Equal(5, new[] { a, b, c, d, e }.Distinct().Count());
        foreach (QTensor view in new[] { b, c, d, e })
        {
            Assert.Same(a.Storage, view.Storage);
        }

        Assert.Equal(120, slot.Capacity);
        Assert.Equal(60, e.Count);
        Assert.Equal(60, e.StorageBytes.Length);
        Assert.Equal(60, e.AsUInt8().Length);
    }

    [Fact]
    public void GrowingMovesEveryViewToTheNewBufferAndNeverShrinks()
    {
        var slot = new BufferSlot();
        QTensor small = slot.Tensor([2, 5], U8, MemoryFormat.Contiguous);
        QTensor large = slot.Tensor([4, 25], U8, MemoryFormat.Contiguous);
        Assert.Equal(100, slot.Capacity);
        Assert.Same(large.Storage, small.Storage);
        Assert.Equal(100, small.Storage.Length);
        Assert.Equal(10, small.StorageBytes.Length);
        Assert.Same(small, slot.Tensor([2, 5], U8, MemoryFormat.Contiguous));
        slot.Tensor([1], U8, MemoryFormat.Contiguous);
        Assert.Equal(100, slot.Capacity);
    }

    [Fact]
    public void AViewLongerStorageReadsOnlyItsOwnElements()
    {
        var slot = new BufferSlot();
        QTensor large = slot.Tensor([1, 2, 3, 3], U8, MemoryFormat.ChannelsLast);
        large.StorageBytes.Fill(200);
        QParams s8 = QParams.PerTensor(0.5f, -1, QuantDType.QInt8);
        QTensor view = slot.Tensor([1, 2, 1, 2], s8, MemoryFormat.ChannelsLast);
        sbyte[] values = [-128, -1, 0, 127];
        for (int i = 0; i < values.Length; i++)
        {
            view.AsInt8()[i] = values[i];
        }

        // NHWC storage [(h0,w0): c0 c1][(h0,w1): c0 c1] -> logical [c0w0, c0w1, c1w0, c1w1].
        Assert.Equal(new[] { -128, 0, -1, 127 }, view.IntRepr());
        Assert.Equal(new[] { (-128 + 1) * 0.5f, (0 + 1) * 0.5f, 0f, (127 + 1) * 0.5f }, view.Dequantize());
        Assert.Equal(4, view.AsInt8().Length);
        Assert.Equal(new[] { -128, 0, -1, 127 }, view.WithFormat(MemoryFormat.Contiguous).IntRepr());
        Assert.Equal(4, view.WithFormat(MemoryFormat.Contiguous).Storage.Length);
    }

    [Fact]
    public void BadShapesAreRejectedAsByTheTensorConstructor()
    {
        var slot = new BufferSlot();
        Assert.Throws<ArgumentException>(() => slot.Tensor([2, -1], U8, MemoryFormat.Contiguous));
        Assert.Throws<ArgumentException>(() => slot.Tensor([2, 3], U8, MemoryFormat.ChannelsLast));
        Assert.Equal(0, slot.Capacity);
    }

    [Fact]
    public void ManyDifferentShapesStillWorkPastTheCache()
    {
        var slot = new BufferSlot();
        for (int length = 1; length <= BufferSlot.MaxCachedViews + 10; length++)
        {
            QTensor view = slot.Tensor([length], U8, MemoryFormat.Contiguous);
            Assert.Equal(length, view.Count);
            Assert.Same(view, slot.Tensor([length], U8, MemoryFormat.Contiguous));
        }
    }

    [Fact]
    public void ActivationBuffersHoldIndependentSlots()
    {
        var buffers = new ActivationBuffers(3);
        Assert.Equal(3, buffers.Count);
        QTensor a = buffers[0].Tensor([10], U8, MemoryFormat.Contiguous);
        QTensor b = buffers[2].Tensor([7], U8, MemoryFormat.Contiguous);
        Assert.NotSame(a.Storage, b.Storage);
        Assert.Same(buffers[1], buffers[1]);
        Assert.Equal(17, buffers.Bytes);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => buffers[3]);
        Assert.Contains("slot 3", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ActivationBuffers(-1));
    }
}
