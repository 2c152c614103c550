using System;
using QuantGen.Modules;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.OpTestSupport;

namespace QuantGen.Tests.Modules;

public class QuantizedAddTests
{
    private readonly ITestOutputHelper _output;

    public QuantizedAddTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData(QuantDType.QUInt8, false, MemoryFormat.ChannelsLast, MemoryFormat.ChannelsLast)]
    [InlineData(QuantDType.QUInt8, true, MemoryFormat.ChannelsLast, MemoryFormat.Contiguous)]
    [InlineData(QuantDType.QInt8, false, MemoryFormat.Contiguous, MemoryFormat.ChannelsLast)]
    [InlineData(QuantDType.QInt8, true, MemoryFormat.ChannelsLast, MemoryFormat.ChannelsLast)]
    public void EqualsItsQdqReference(QuantDType dtype, bool relu, MemoryFormat formatA, MemoryFormat formatB)
    {
        var random = new Random((int)dtype * 4 + (relu ? 2 : 0) + (int)formatB);
        int[] shape = [2, 17, 5, 7];
        bool signed = dtype == QuantDType.QInt8;
        QParams qa = QParams.PerTensor(0.0371f, signed ? -9 : 119, dtype);
        QParams qb = QParams.PerTensor(0.0213f, signed ? 3 : 64, dtype);
        QParams qy = QParams.PerTensor(0.0457f, signed ? -20 : 97, dtype);
        QTensor a = RandomTensor(random, shape, qa, formatA);
        QTensor b = RandomTensor(random, shape, qb, formatB);
        QTensor y = new QuantizedAdd("M", "layer1.0.add", qy, relu).Forward(a, b);

        Assert.Equal(shape, y.Shape);
        Assert.Equal(formatA, y.Format);
        Assert.Same(qy, y.QParams);

        using var scope = torch.NewDisposeScope();
        var sum = DequantizedTorch(a) + DequantizedTorch(b);
        if (relu)
        {
            sum = torch.nn.functional.relu(sum);
        }

        // The same float32 add and quantize as the kernel: every element must be exact.
        AssertWithinOneStep(_output, $"add {dtype} relu={relu}", QuantizeTorch(sum, qy), y.IntRepr(), exactFloor: 1.0);
    }

    [Fact]
    public void BadInputsAreRejectedNamingModelAndLayer()
    {
        QParams q = QParams.PerTensor(0.1f, 3, QuantDType.QUInt8);
        var add = new QuantizedAdd("M", "layer1.0.add", q, relu: false);

        var shape = Assert.Throws<ArgumentException>(() => add.Forward(new QTensor([1, 64, 8, 8], q), new QTensor([1, 32, 8, 8], q)));
        Assert.Contains("M.layer1.0.add: inputs differ in shape: [1, 64, 8, 8] vs [1, 32, 8, 8]", shape.Message);

        QParams signed = QParams.PerTensor(0.1f, 0, QuantDType.QInt8);
        var dtype = Assert.Throws<ArgumentException>(() => add.Forward(new QTensor([2], q), new QTensor([2], signed)));
        Assert.Contains("M.layer1.0.add: inputs differ in dtype: torch.quint8 vs torch.qint8", dtype.Message);

        var output = Assert.Throws<ArgumentException>(() => add.Forward(new QTensor([2], signed), new QTensor([2], signed)));
        Assert.Contains("M.layer1.0.add: expected torch.quint8 inputs (the output's dtype), got torch.qint8 [2]", output.Message);

        QParams perChannel = QParams.PerChannel([0.1f, 0.2f], [0, 0], 0, QuantDType.QUInt8);
        var channels = Assert.Throws<ArgumentException>(() => add.Forward(new QTensor([2], perChannel), new QTensor([2], q)));
        Assert.Contains("M.layer1.0.add: expected an input with per-tensor qparams", channels.Message);

        var qparams = Assert.Throws<ArgumentException>(() => new QuantizedAdd("M", "add", QParams.PerTensor(0f, 0, QuantDType.QUInt8), false));
        Assert.Contains("M.add: output scale 0 must be positive and finite", qparams.Message);
    }

    [Fact]
    public void PrintsLikeFxsQuantizedOp()
    {
        Assert.Equal("quantized.add_relu(scale=0.5, zero_point=3)", new QuantizedAdd("M", "add", QParams.PerTensor(0.5f, 3, QuantDType.QUInt8), true).ToString());
        Assert.Equal("quantized.add(scale=0.5, zero_point=-3)", new QuantizedAdd("M", "add", QParams.PerTensor(0.5f, -3, QuantDType.QInt8), false).ToString());
    }
}
