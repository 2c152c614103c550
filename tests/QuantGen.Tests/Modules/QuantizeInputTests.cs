using System;
using System.Linq;
using QuantGen.Modules;
using static QuantGen.Tests.Modules.ContractReference;

namespace QuantGen.Tests.Modules;

public class QuantizeInputTests
{
    [Fact]
    public void FourDimensionalInputIsQuantizedByTheFormulaIntoChannelsLastStorage()
    {
        int[] shape = [2, 3, 4, 5];
        float[] values = RandomFloats(new Random(3), 2 * 3 * 4 * 5, -3f, 5f);
        var quantize = new QuantizeInput("M", "quant", QParams.PerTensor(0.03f, 77, QuantDType.QUInt8));
        QTensor q = quantize.Forward(values, shape);

        int[] expected = values.Select(v => Quantize(v, 0.03f, 77, 0, 255)).ToArray();
        Assert.Equal(MemoryFormat.ChannelsLast, q.Format);
        Assert.Equal(shape, q.Shape);

        // The storage, read by the test's own NHWC indexing, holds the NCHW values.
        Assert.Equal(NhwcBytes(expected, shape), q.Storage);
    }

    [Fact]
    public void OtherRanksAreContiguous()
    {
        float[] values = [-1f, 0f, 0.5f, 100f, 0.015f, 0.045f];
        var quantize = new QuantizeInput("M", "quant", QParams.PerTensor(0.03f, 0, QuantDType.QUInt8));
        QTensor q = quantize.Forward(values, [2, 3]);
        Assert.Equal(MemoryFormat.Contiguous, q.Format);

        // Hand-derived: -1 clamps to 0; 0.5 / 0.03 = 16.67 -> 17; 100 clamps to 255; 0.015 * (1/0.03) is
        // 0.49999997 in float32 -> 0; 0.045 * (1/0.03) = 1.5 -> 2 (ties to even).
        Assert.Equal(new[] { 0, 0, 17, 255, Quantize(0.015f, 0.03f, 0, 0, 255), Quantize(0.045f, 0.03f, 0, 0, 255) }, q.IntRepr());
        Assert.Equal(values.Select(v => Quantize(v, 0.03f, 0, 0, 255)).ToArray(), q.IntRepr());
    }

    [Fact]
    public void NonFiniteValuesFollowTheDocumentedRule()
    {
        // QuantizeScalar's documented inference rule: +inf -> dtype max, -inf -> dtype min, NaN -> zero point.
        var quantize = new QuantizeInput("M", "quant", QParams.PerTensor(0.1f, 20, QuantDType.QUInt8));
        QTensor q = quantize.Forward([float.PositiveInfinity, float.NegativeInfinity, float.NaN, 1f], [4]);
        Assert.Equal(new[] { 255, 0, 20, 30 }, q.IntRepr());
    }

    [Fact]
    public void AShapeThatDoesNotMatchTheValuesIsRejectedNamingTheLayer()
    {
        var quantize = new QuantizeInput("M", "quant", QParams.PerTensor(0.1f, 0, QuantDType.QUInt8));
        var error = Assert.Throws<ArgumentException>(() => quantize.Forward(new float[5], [1, 1, 2, 3]));
        Assert.Contains("M.quant: shape [1, 1, 2, 3] holds 6 values, got 5", error.Message);
    }

    [Fact]
    public void ToStringMatchesPyTorchsRepr()
    {
        Assert.Equal("Quantize(scale=tensor([0.0011]), zero_point=tensor([0]), dtype=torch.quint8)", new QuantizeInput("M", "quant", QParams.PerTensor(0.0010776f, 0, QuantDType.QUInt8)).ToString());
        Assert.Equal("Quantize(scale=tensor([5.0000e-05]), zero_point=tensor([3]), dtype=torch.quint8)", new QuantizeInput("M", "quant", QParams.PerTensor(0.00005f, 3, QuantDType.QUInt8)).ToString());
    }
}
