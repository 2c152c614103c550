using System;
using System.Linq;
using QuantGen.Modules;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.OpTestSupport;

namespace QuantGen.Tests.Modules;

public class QuantizedCatTests
{
    private readonly ITestOutputHelper _output;

    public QuantizedCatTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData(QuantDType.QUInt8, 1)]
    [InlineData(QuantDType.QInt8, 1)]
    [InlineData(QuantDType.QUInt8, 3)]
    [InlineData(QuantDType.QInt8, -2)]
    [InlineData(QuantDType.QUInt8, 0)]
    public void ThreeInputsWithDifferentQParamsEqualTheQdqReference(QuantDType dtype, int dim)
    {
        var random = new Random(dim + 10 * (int)dtype);
        bool signed = dtype == QuantDType.QInt8;
        QParams[] inputs =
        [
            QParams.PerTensor(0.05f, signed ? -7 : 120, dtype),
            QParams.PerTensor(0.031f, signed ? 11 : 77, dtype),
            QParams.PerTensor(0.05f, signed ? -7 : 120, dtype),   // equal to the output's: copied
        ];
        QParams output = QParams.PerTensor(0.05f, signed ? -7 : 120, dtype);
        int resolved = dim < 0 ? dim + 4 : dim;
        int[] sizes = [3, 1, 4];
        QTensor[] tensors = inputs.Select((q, i) =>
        {
            int[] shape = [2, 3, 5, 6];
            shape[resolved] = sizes[i];
            return RandomTensor(random, shape, q, i == 1 ? MemoryFormat.Contiguous : MemoryFormat.ChannelsLast);
        }).ToArray();

        QTensor y = new QuantizedCat("M", "cat", dim, output).Forward(tensors);
        int[] expectedShape = [2, 3, 5, 6];
        expectedShape[resolved] = 8;
        Assert.Equal(expectedShape, y.Shape);
        Assert.Equal(MemoryFormat.ChannelsLast, y.Format);

        using var scope = torch.NewDisposeScope();
        var reference = torch.cat(tensors.Select(DequantizedTorch).ToArray(), dim);
        AssertWithinOneStep(_output, $"cat {dtype} dim={dim}", QuantizeTorch(reference, output), y.IntRepr(), exactFloor: 1.0);
    }

    [Fact]
    public void BadInputsAreRejectedNamingModelAndLayer()
    {
        QParams q = QParams.PerTensor(0.1f, 3, QuantDType.QUInt8);
        var cat = new QuantizedCat("M", "layer2.cat", 1, q);
        var shape = Assert.Throws<ArgumentException>(() => cat.Forward(new QTensor([1, 2, 4, 4], q), new QTensor([1, 2, 5, 4], q)));
        Assert.Contains("M.layer2.cat: inputs must match in every dimension but 1: [1, 2, 4, 4] vs [1, 2, 5, 4]", shape.Message);

        var rank = Assert.Throws<ArgumentException>(() => cat.Forward(new QTensor([1, 2, 4, 4], q), new QTensor([1, 2, 4], q)));
        Assert.Contains("M.layer2.cat: inputs must match", rank.Message);

        var dim = Assert.Throws<ArgumentException>(() => new QuantizedCat("M", "cat", 4, q).Forward(new QTensor([1, 2, 4, 4], q)));
        Assert.Contains("M.cat: dim 4 is out of range for rank-4 inputs", dim.Message);

        var dtype = Assert.Throws<ArgumentException>(() => cat.Forward(new QTensor([1, 2], q), new QTensor([1, 2], QParams.PerTensor(0.1f, 0, QuantDType.QInt8))));
        Assert.Contains("M.layer2.cat: expected torch.quint8 inputs (the output's dtype), input 1 is torch.qint8 [1, 2]", dtype.Message);

        var none = Assert.Throws<ArgumentException>(() => cat.Forward());
        Assert.Contains("M.layer2.cat: cat needs at least one input", none.Message);
    }
}
