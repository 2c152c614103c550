using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Buffers;
using QuantGen.Kernels;
using QuantGen.Modules;
using QuantGen.Tests.Kernels.Simd;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.OpTestSupport;

namespace QuantGen.Tests.Modules;

/// <summary>
/// Every layer's slot overload: the same integers as the allocating overload (which the other layer
/// tests check against the numerics contract), the same tensor object on a repeated call, and zero bytes
/// allocated by a steady-state call — on the calling thread and on the kernel pool's workers (2 threads).
/// </summary>
[Collection(KernelThreadsCollection.Name)]
public class SlotForwardTests(ITestOutputHelper output)
{
    private static readonly QParams U8 = QParams.PerTensor(0.05f, 7, QuantDType.QUInt8);
    private static readonly QParams U8Out = QParams.PerTensor(0.09f, 131, QuantDType.QUInt8);
    private static readonly QParams S8 = QParams.PerTensor(0.04f, -3, QuantDType.QInt8);
    private static readonly QParams S8Out = QParams.PerTensor(0.07f, 5, QuantDType.QInt8);

    /// <summary>One layer call: allocating (null) or into a slot.</summary>
    public delegate QTensor LayerCall(BufferSlot? slot);

    public static IEnumerable<object[]> LayerNames() => Layers(new Random(1)).Select(layer => new object[] { layer.Name });

    [Theory]
    [MemberData(nameof(LayerNames))]
    public void SlotOverloadMatchesAndAllocatesNothingInSteadyState(string name)
    {
        LayerCall call = Layers(new Random(1)).Single(layer => layer.Name == name).Call;
        using var threads = new Threads(2);
        QTensor expected = call(null);
        var slot = new BufferSlot();
        QTensor first = call(slot);
        Assert.Equal(expected.Shape, first.Shape);
        Assert.Equal(expected.DType, first.DType);
        Assert.Equal(expected.Format, first.Format);
        Assert.Equal(expected.IntRepr(), first.IntRepr());

        long workerBefore = KernelThreads.WorkerAllocatedBytes;
        long before = GC.GetAllocatedBytesForCurrentThread();
        QTensor second = call(slot);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        long workerAllocated = KernelThreads.WorkerAllocatedBytes - workerBefore;
        output.WriteLine($"{name}: {allocated} bytes on the caller, {workerAllocated} on the workers, slot {slot.Capacity} bytes");
        Assert.Equal(0, allocated);
        Assert.Equal(0, workerAllocated);
        Assert.Same(first, second);
        Assert.Equal(expected.IntRepr(), second.IntRepr());
    }

    /// <summary>A chain as the generator emits it: three slots reused by lifetime, a residual add in place, the output allocated.</summary>
    [Fact]
    public void AChainOfLayersOnThreeSlotsAllocatesOnlyItsOutput()
    {
        var random = new Random(3);
        var quant = new QuantizeInput("M", "quant", U8);
        QuantizedConv2d conv1 = Conv(random, "conv1", new Conv2dOptions(3, 16, 3, 3, 2, 2, 1, 1), U8, U8Out, relu: true);
        var pool = new QuantizedMaxPool2d("M", "pool", Pool2dOptions.Square(3, 2, 1));
        QuantizedConv2d conv2 = Conv(random, "conv2", new Conv2dOptions(16, 16, 3, 3, 1, 1, 1, 1), U8Out, U8Out, relu: false);
        var add = new QuantizedAdd("M", "add", U8, relu: true);
        var avg = new QuantizedAdaptiveAvgPool2d("M", "avgpool", 1, 1);
        var flatten = new QuantizedFlatten("M", "flatten");
        QuantizedLinear fc = Linear(random, "fc", 16, 10, U8, U8Out);
        float[] image = ContractReference.RandomFloats(random, 2 * 3 * 31 * 29, -1f, 1f);
        int[] shape = [2, 3, 31, 29];

        QTensor Reference()
        {
            QTensor x = quant.Forward(image, shape);
            QTensor a = pool.Forward(conv1.Forward(x));
            return fc.Forward(flatten.Forward(avg.Forward(add.Forward(conv2.Forward(a), a))));
        }

        var buffers = new ActivationBuffers(3);
        QTensor Planned()
        {
            QTensor x = quant.Forward(image, shape, buffers[0]);
            QTensor t1 = conv1.Forward(x, buffers[1]);
            QTensor t2 = pool.Forward(t1, buffers[0]);
            QTensor t3 = conv2.Forward(t2, buffers[1]);
            QTensor t4 = add.Forward(t3, t2, buffers[1]);       // in place over t3
            QTensor t5 = avg.Forward(t4, buffers[0]);
            QTensor t6 = flatten.Forward(t5, buffers[2]);
            return fc.Forward(t6, null);                         // the caller keeps the output
        }

        using var threads = new Threads(2);
        int[] expected = Reference().IntRepr();
        Assert.Equal(expected, Planned().IntRepr());
        Planned();
        long before = GC.GetAllocatedBytesForCurrentThread();
        QTensor result = Planned();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(expected, result.IntRepr());

        // Only the output: its QTensor, shape array and 20-byte storage (object headers included, well under 400 bytes).
        output.WriteLine($"steady-state chain allocated {allocated} bytes; slots hold {buffers.Bytes} bytes");
        Assert.InRange(allocated, 1, 400);
    }

    [Fact]
    public void AnOpThatCannotWorkInPlaceRejectsTheSlotHoldingItsInput()
    {
        var random = new Random(4);
        QuantizedConv2d conv = Conv(random, "conv", new Conv2dOptions(4, 4, 3, 3, 1, 1, 1, 1), U8, U8Out, relu: false);
        var slot = new BufferSlot();
        QTensor input = slot.Tensor([1, 4, 5, 5], U8, MemoryFormat.ChannelsLast);
        var error = Assert.Throws<ArgumentException>(() => conv.Forward(input, slot));
        Assert.Contains("M.conv", error.Message);
        Assert.Contains("output slot holds the input", error.Message);
    }

    [Fact]
    public void ReluAndAddWorkInPlaceOverTheirInput()
    {
        var random = new Random(5);
        QTensor a = RandomTensor(random, [1, 5, 4, 3], U8);
        QTensor b = RandomTensor(random, [1, 5, 4, 3], U8Out);
        int[] expectedRelu = new QuantizedReLU("M", "relu").Forward(a).IntRepr();
        var add = new QuantizedAdd("M", "add", U8Out, relu: false);
        int[] expectedAdd = add.Forward(new QuantizedReLU("M", "relu").Forward(a), b).IntRepr();

        var slot = new BufferSlot();
        QTensor inSlot = slot.Tensor(a.ShapeSpan, a.QParams, a.Format);
        a.StorageBytes.CopyTo(inSlot.StorageBytes);
        QTensor relu = new QuantizedReLU("M", "relu").Forward(inSlot, slot);
        Assert.Same(inSlot, relu);
        Assert.Equal(expectedRelu, relu.IntRepr());
        QTensor sum = add.Forward(relu, b, slot);
        Assert.Same(relu.Storage, sum.Storage);
        Assert.Equal(expectedAdd, sum.IntRepr());
    }

    internal static IEnumerable<(string Name, LayerCall Call)> Layers(Random random)
    {
        float[] image = ContractReference.RandomFloats(random, 2 * 3 * 13 * 11, -2f, 2f);
        var quant = new QuantizeInput("M", "quant", U8);
        int[] imageShape = [2, 3, 13, 11], flatShape = [6, 143];
        yield return ("QuantizeInput quint8", slot => quant.Forward(image, imageShape, slot));
        var quant8 = new QuantizeInput("M", "quant", S8);
        yield return ("QuantizeInput qint8 rank 2", slot => quant8.Forward(image, flatShape, slot));

        QTensor x = RandomTensor(random, [1, 8, 13, 11], U8);
        QTensor xContiguous = RandomTensor(random, [1, 8, 13, 11], U8, MemoryFormat.Contiguous);
        QTensor xs8 = RandomTensor(random, [1, 8, 13, 11], S8);
        QuantizedConv2d conv = Conv(random, "conv", new Conv2dOptions(8, 24, 3, 3, 1, 1, 1, 1), U8, U8Out, relu: true);
        yield return ("Conv2d 3x3 quint8", slot => conv.Forward(x, slot));
        yield return ("Conv2d 3x3 quint8 from a contiguous input", slot => conv.Forward(xContiguous, slot));
        QuantizedConv2d convS8 = Conv(random, "conv", new Conv2dOptions(8, 20, 3, 3, 2, 2, 1, 1), S8, S8Out, relu: false);
        yield return ("Conv2d stride2 qint8 X86 (dtype requantize)", slot => convS8.Forward(xs8, slot));
        QuantizedConv2d convQnnpack = Conv(random, "conv", new Conv2dOptions(8, 20, 1, 1), S8, S8Out, relu: true, QuantBackend.Qnnpack);
        yield return ("Conv2d 1x1 qint8 Qnnpack", slot => convQnnpack.Forward(xs8, slot));
        QuantizedConv2d depthwise = Conv(random, "dw", new Conv2dOptions(8, 8, 3, 3, 1, 1, 1, 1, Groups: 8), U8, U8Out, relu: false);
        yield return ("Conv2d depthwise", slot => depthwise.Forward(x, slot));

        QTensor features = RandomTensor(random, [3, 40], U8, MemoryFormat.Contiguous);
        QuantizedLinear linear = Linear(random, "fc", 40, 70, U8, U8Out);
        yield return ("Linear", slot => linear.Forward(features, slot));
        QTensor featuresS8 = RandomTensor(random, [2, 3, 40], S8, MemoryFormat.Contiguous);
        QuantizedLinear linearS8 = Linear(random, "fc", 40, 9, S8, S8Out);
        yield return ("Linear rank 3 qint8", slot => linearS8.Forward(featuresS8, slot));

        var relu = new QuantizedReLU("M", "relu");
        yield return ("ReLU quint8", slot => relu.Forward(x, slot));
        yield return ("ReLU qint8", slot => relu.Forward(xs8, slot));

        QTensor y = RandomTensor(random, [1, 8, 13, 11], U8Out);
        var addRelu = new QuantizedAdd("M", "add", U8Out, relu: true);
        yield return ("Add+ReLU quint8", slot => addRelu.Forward(x, y, slot));
        yield return ("Add quint8, b contiguous", slot => addRelu.Forward(x, xContiguous, slot));
        QTensor ys8 = RandomTensor(random, [1, 8, 13, 11], S8Out);
        var addS8 = new QuantizedAdd("M", "add", S8Out, relu: false);
        yield return ("Add qint8", slot => addS8.Forward(xs8, ys8, slot));

        var cat = new QuantizedCat("M", "cat", 1, U8Out);
        QTensor z = RandomTensor(random, [1, 5, 13, 11], U8Out);
        yield return ("Cat two channels-last inputs", slot => cat.Forward(x, z, slot));
        var catRows = new QuantizedCat("M", "cat", -2, U8);
        yield return ("Cat three inputs along H", slot => catRows.Forward([x, xContiguous, x], slot));

        var maxPool = new QuantizedMaxPool2d("M", "maxpool", Pool2dOptions.Square(3, 2, 1));
        yield return ("MaxPool2d quint8", slot => maxPool.Forward(x, slot));
        yield return ("MaxPool2d qint8", slot => maxPool.Forward(xs8, slot));
        var avgPool = new QuantizedAvgPool2d("M", "avgpool", Pool2dOptions.Square(2, 2));
        yield return ("AvgPool2d", slot => avgPool.Forward(x, slot));
        var adaptive = new QuantizedAdaptiveAvgPool2d("M", "gap", 2, 3);
        yield return ("AdaptiveAvgPool2d", slot => adaptive.Forward(xs8, slot));

        var bn = new QuantizedBatchNorm2d("M", "bn", ContractReference.RandomFloats(random, 8, 0.5f, 1.5f), ContractReference.RandomFloats(random, 8, -1f, 1f), U8Out, relu: true);
        yield return ("BatchNorm2d", slot => bn.Forward(x, slot));

        var flatten = new QuantizedFlatten("M", "flatten");
        yield return ("Flatten channels-last", slot => flatten.Forward(x, slot));
        var reshape = new QuantizedReshape("M", "reshape", [-1, 11]);
        yield return ("Reshape", slot => reshape.Forward(xs8, slot));
        var upsample = new QuantizedUpsampleNearest2d("M", "up", null, null, 2.0, 2.0);
        yield return ("UpsampleNearest2d", slot => upsample.Forward(x, slot));

        QTensor transposeWeight = RandomTensor(random, [8, 6, 3, 3], QParams.PerTensor(0.01f, 0, QuantDType.QInt8), MemoryFormat.Contiguous);
        var transpose = new QuantizedConvTranspose2d("M", "deconv", new ConvTranspose2dOptions(8, 6, 3, 3, 2, 2, 1, 1, 1, 1), transposeWeight, null, U8, U8Out, fusedRelu: false, QuantBackend.X86);
        yield return ("ConvTranspose2d", slot => transpose.Forward(x, slot));
    }

    internal static QuantizedConv2d Conv(Random random, string layer, Conv2dOptions o, QParams input, QParams outputQParams, bool relu, QuantBackend backend = QuantBackend.X86)
    {
        int inPerGroup = o.InChannels / o.Groups;
        float[] scales = ContractReference.RandomFloats(random, o.OutChannels, 0.002f, 0.02f);
        QParams weightQParams = QParams.PerChannel(scales, new int[o.OutChannels], 0, QuantDType.QInt8);
        QTensor weight = RandomTensor(random, [o.OutChannels, inPerGroup, o.KernelHeight, o.KernelWidth], weightQParams, MemoryFormat.Contiguous);
        float[] bias = ContractReference.RandomFloats(random, o.OutChannels, -0.5f, 0.5f);
        return new QuantizedConv2d("M", layer, o, weight, bias, input, outputQParams, relu, backend);
    }

    internal static QuantizedLinear Linear(Random random, string layer, int inFeatures, int outFeatures, QParams input, QParams outputQParams)
    {
        float[] scales = ContractReference.RandomFloats(random, outFeatures, 0.002f, 0.02f);
        QParams weightQParams = QParams.PerChannel(scales, new int[outFeatures], 0, QuantDType.QInt8);
        QTensor weight = RandomTensor(random, [outFeatures, inFeatures], weightQParams, MemoryFormat.Contiguous);
        return new QuantizedLinear("M", layer, inFeatures, outFeatures, weight, ContractReference.RandomFloats(random, outFeatures, -1f, 1f), input, outputQParams, fusedRelu: false, QuantBackend.X86);
    }
}
