using System;
using System.Linq;
using QuantGen.Modules;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.OpTestSupport;

namespace QuantGen.Tests.Modules;

/// <summary>
/// qint8 activations (seed 002's symmetric activations) through the layers that existed before the
/// graph-mode ops: quantize input, conv, linear, ReLU and flatten take and make qint8 tensors.
/// </summary>
public class Qint8ActivationTests
{
    private readonly ITestOutputHelper _output;

    public Qint8ActivationTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void QuantizeInputMakesQint8ByTheContract()
    {
        QParams q = QParams.PerTensor(0.02f, -5, QuantDType.QInt8);
        float[] values = ContractReference.RandomFloats(new Random(1), 2 * 3 * 4 * 5, -3f, 3f);
        QTensor x = new QuantizeInput("M", "quant", q).Forward(values, [2, 3, 4, 5]);
        Assert.Equal(QuantDType.QInt8, x.DType);
        Assert.Equal(MemoryFormat.ChannelsLast, x.Format);
        Assert.Equal(QuantizeAll(values, q), x.IntRepr());
        Assert.Contains(-128, x.IntRepr());   // saturates at the qint8 bounds
        Assert.Contains(127, x.IntRepr());

        var zeroPoint = Assert.Throws<ArgumentException>(() => new QuantizeInput("M", "quant", QParams.PerTensor(0.02f, 200, QuantDType.QInt8)));
        Assert.Contains("M.quant: input zero point 200 is outside torch.qint8's range -128..127", zeroPoint.Message);
    }

    [Theory]
    [InlineData(QuantBackend.X86, false)]
    [InlineData(QuantBackend.X86, true)]
    [InlineData(QuantBackend.Qnnpack, false)]
    [InlineData(QuantBackend.Qnnpack, true)]
    public void ConvWithQint8InputAndOutputIsWithinOneStepOfItsQdqReference(QuantBackend backend, bool relu)
    {
        var random = new Random((int)backend * 2 + (relu ? 1 : 0));
        var options = new Conv2dOptions(6, 9, 3, 3, 2, 2, 1, 1, 1, 1, 3);
        QParams qx = QParams.PerTensor(0.031f, 0, QuantDType.QInt8);   // symmetric activations
        QTensor x = RandomTensor(random, [2, 6, 9, 8], qx);
        float[] weights = ContractReference.RandomFloats(random, 9 * 2 * 3 * 3, -0.4f, 0.4f);
        QParams qw = QParams.PerTensor(weights.Max(MathF.Abs) / 127.5f, 0, QuantDType.QInt8);
        QTensor weight = QTensor.Quantize(weights, [9, 2, 3, 3], qw);
        float[] bias = ContractReference.RandomFloats(random, 9, -0.3f, 0.3f);

        using var scope = torch.NewDisposeScope();
        var reference = torch.nn.functional.conv2d(DequantizedTorch(x), torch.tensor(weight.Dequantize(), [9, 2, 3, 3]), torch.tensor(bias), [2, 2], [1, 1], [1, 1], 3);
        float[] values = Floats(reference);
        float absMax = values.Max(MathF.Abs);
        QParams qy = QParams.PerTensor(absMax / 127.5f, 0, QuantDType.QInt8);   // symmetric: zero point 0
        var conv = new QuantizedConv2d("M", "conv1", options, weight, bias, qx, qy, relu, backend);
        QTensor y = conv.Forward(x);
        Assert.Equal(QuantDType.QInt8, y.DType);
        var expected = relu ? torch.nn.functional.relu(reference) : reference;
        AssertWithinOneStep(_output, $"conv2d qint8 {backend} relu={relu}", QuantizeTorch(expected, qy), y.IntRepr(), exactFloor: 0.97);
        Assert.Contains(y.IntRepr(), v => v < 0 || relu);
    }

    [Theory]
    [InlineData(QuantBackend.X86)]
    [InlineData(QuantBackend.Qnnpack)]
    public void LinearWithQint8InputAndAffineQint8OutputIsWithinOneStepOfItsQdqReference(QuantBackend backend)
    {
        var random = new Random(20 + (int)backend);
        QParams qx = QParams.PerTensor(0.02f, 7, QuantDType.QInt8);
        QTensor x = RandomTensor(random, [5, 37], qx, MemoryFormat.Contiguous);
        float[] weights = ContractReference.RandomFloats(random, 11 * 37, -0.2f, 0.2f);
        QTensor weight = QTensor.Quantize(weights, [11, 37], QParams.PerTensor(weights.Max(MathF.Abs) / 127.5f, 0, QuantDType.QInt8));
        float[] bias = ContractReference.RandomFloats(random, 11, -0.2f, 0.2f);

        using var scope = torch.NewDisposeScope();
        var reference = torch.nn.functional.linear(DequantizedTorch(x), torch.tensor(weight.Dequantize(), [11, 37]), torch.tensor(bias));
        float[] values = Floats(reference);
        (float sy, int zy) = ContractReference.AffineQuint8(values.Min(), values.Max());
        QParams qy = QParams.PerTensor(sy, zy - 128, QuantDType.QInt8);   // affine qint8, odd-looking zero point
        QTensor y = new QuantizedLinear("M", "fc", 37, 11, weight, bias, qx, qy, false, backend).Forward(x);
        AssertWithinOneStep(_output, $"linear qint8 {backend}", QuantizeTorch(reference, qy), y.IntRepr(), exactFloor: 0.97);
    }

    [Fact]
    public void ConvRejectsAnInputOfTheOtherDTypeThanCalibrated()
    {
        QParams qx = QParams.PerTensor(0.031f, 0, QuantDType.QInt8);
        var conv = new QuantizedConv2d("M", "conv1", new Conv2dOptions(1, 1, 1, 1), new QTensor([1, 1, 1, 1], QParams.PerTensor(0.1f, 0, QuantDType.QInt8)), null, qx, qx, false, QuantBackend.X86);
        var error = Assert.Throws<ArgumentException>(() => conv.Forward(new QTensor([1, 1, 2, 2], QParams.PerTensor(0.1f, 0, QuantDType.QUInt8))));
        Assert.Contains("M.conv1: expected a torch.qint8 input, got torch.quint8 [1, 1, 2, 2]", error.Message);
    }

    [Theory]
    [InlineData(MemoryFormat.Contiguous)]
    [InlineData(MemoryFormat.ChannelsLast)]
    public void ReluIsMaxOfTheSignedValueAndTheZeroPoint(MemoryFormat format)
    {
        int[] shape = [2, 3, 4, 5];
        QParams q = QParams.PerTensor(0.1f, -20, QuantDType.QInt8);
        QTensor x = RandomTensor(new Random(9), shape, q, format);
        int[] values = x.IntRepr();
        QTensor y = new QuantizedReLU("M", "relu").Forward(x);
        Assert.Equal(values.Select(v => Math.Max(v, -20)).ToArray(), y.IntRepr());
        Assert.Equal(format, y.Format);
        Assert.Same(q, y.QParams);
        Assert.Equal(values, x.IntRepr());   // the input is not changed
    }

    [Fact]
    public void FlattenKeepsQint8ValuesInLogicalOrder()
    {
        QParams q = QParams.PerTensor(0.1f, 3, QuantDType.QInt8);
        QTensor x = RandomTensor(new Random(4), [2, 3, 4, 5], q, MemoryFormat.ChannelsLast);
        QTensor y = new QuantizedFlatten("M", "flatten").Forward(x);
        Assert.Equal(new[] { 2, 60 }, y.Shape);
        Assert.Equal(x.IntRepr(), y.IntRepr());
        Assert.Equal(QuantDType.QInt8, y.DType);
    }
}
