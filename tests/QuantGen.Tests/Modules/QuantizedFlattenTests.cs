using System;
using System.Linq;
using QuantGen.Modules;
using TorchSharp;
using static QuantGen.Tests.Modules.ContractReference;
using static TorchSharp.torch;

namespace QuantGen.Tests.Modules;

public class QuantizedFlattenTests
{
    [Theory]
    [InlineData(1, -1)]
    [InlineData(0, -1)]
    [InlineData(0, -2)]
    [InlineData(-3, 2)]
    [InlineData(2, 3)]
    [InlineData(1, 1)]
    public void ChannelsLastStorageFlattensInLogicalNchwOrderAsTorchFlatten(int startDim, int endDim)
    {
        int[] shape = [2, 3, 4, 5];
        float[] values = RandomFloats(new Random(startDim * 10 + endDim + 50), 120, -1f, 2f);
        QTensor input = new QuantizeInput("M", "quant", QParams.PerTensor(0.02f, 60, QuantDType.QUInt8)).Forward(values, shape);
        Assert.Equal(MemoryFormat.ChannelsLast, input.Format);
        QTensor output = new QuantizedFlatten("M", "flatten", startDim, endDim).Forward(input);

        // torch.flatten on the dequantized float tensor gives the expected shape and order.
        using var scope = torch.NewDisposeScope();
        Tensor reference = torch.flatten(torch.tensor(input.Dequantize(), shape.Select(d => (long)d).ToArray()), startDim, endDim);
        Assert.Equal(reference.shape.Select(d => (int)d), output.Shape);
        Assert.Equal(reference.data<float>().ToArray(), output.Dequantize());
        Assert.Equal(MemoryFormat.Contiguous, output.Format);
        Assert.Same(input.QParams, output.QParams);

        // And the storage itself is row-major in that shape: the test's own NCHW order of the inputs.
        Assert.Equal(Bytes(values.Select(v => Quantize(v, 0.02f, 60, 0, 255)).ToArray()), output.Storage);
    }

    [Fact]
    public void TheResultDoesNotAliasAContiguousInput()
    {
        var input = new QTensor([2, 3], QParams.PerTensor(0.1f, 0, QuantDType.QUInt8), [1, 2, 3, 4, 5, 6]);
        QTensor output = new QuantizedFlatten("M", "flatten").Forward(input);
        Assert.Equal(new[] { 2, 3 }, output.Shape);
        output.Storage[0] = 99;
        Assert.Equal(1, input.Storage[0]);
    }

    [Theory]
    [InlineData(4, -1)]
    [InlineData(0, -5)]
    [InlineData(3, 1)]
    public void OutOfRangeOrReversedDimensionsAreRejectedNamingTheLayer(int startDim, int endDim)
    {
        var input = new QTensor([1, 2, 3, 4], QParams.PerTensor(0.1f, 0, QuantDType.QUInt8));
        var error = Assert.Throws<ArgumentException>(() => new QuantizedFlatten("M", "flatten", startDim, endDim).Forward(input));
        Assert.Contains("M.flatten", error.Message);
        Assert.Contains("[1, 2, 3, 4]", error.Message);
    }

    [Fact]
    public void ToStringMatchesPyTorchsRepr() =>
        Assert.Equal("Flatten(start_dim=1, end_dim=-1)", new QuantizedFlatten("M", "flatten").ToString());
}
