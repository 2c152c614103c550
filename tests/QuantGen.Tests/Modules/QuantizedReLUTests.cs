using System;
using System.Linq;
using QuantGen.Modules;
using static QuantGen.Tests.Modules.ContractReference;

namespace QuantGen.Tests.Modules;

public class QuantizedReLUTests
{
    [Theory]
    [InlineData(MemoryFormat.Contiguous)]
    [InlineData(MemoryFormat.ChannelsLast)]
    public void EveryValueBecomesMaxOfItselfAndTheZeroPoint(MemoryFormat format)
    {
        int[] shape = [2, 3, 4, 5];
        int[] values = RandomInts(new Random(9), 120, 0, 255);
        QParams qparams = QParams.PerTensor(0.1f, 137, QuantDType.QUInt8);
        byte[] storage = format == MemoryFormat.ChannelsLast ? NhwcBytes(values, shape) : Bytes(values);
        var input = new QTensor(shape, qparams, storage, format);
        QTensor output = new QuantizedReLU("M", "relu").Forward(input);

        Assert.Equal(values.Select(v => Math.Max(v, 137)).ToArray(), output.IntRepr());
        Assert.Equal(format, output.Format);
        Assert.Same(qparams, output.QParams);
        Assert.Equal(values, input.IntRepr());   // the input is not changed
    }

    [Fact]
    public void APerChannelInputIsRejectedNamingTheLayer()
    {
        // qint8 inputs are accepted (Qint8ActivationTests); per-channel qparams are a wiring mistake.
        var error = Assert.Throws<ArgumentException>(() => new QuantizedReLU("M", "relu").Forward(new QTensor([2], QParams.PerChannel([0.1f, 0.2f], [0, 0], 0, QuantDType.QUInt8))));
        Assert.Contains("M.relu: expected a per-tensor torch.quint8 or torch.qint8 input, got torch.quint8 [2]", error.Message);
    }
}
