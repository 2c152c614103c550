using System;
using System.Linq;
using QuantGen.Modules;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.OpTestSupport;

namespace QuantGen.Tests.Modules;

public class QuantizedBatchNorm2dTests
{
    private readonly ITestOutputHelper _output;

    public QuantizedBatchNorm2dTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData(QuantDType.QUInt8, 1, false)]
    [InlineData(QuantDType.QUInt8, 3, true)]
    [InlineData(QuantDType.QInt8, 17, false)]
    [InlineData(QuantDType.QInt8, 64, true)]
    public void IsWithinOneStepOfItsQdqReference(QuantDType dtype, int channels, bool relu)
    {
        var random = new Random(channels + (relu ? 100 : 0));
        bool signed = dtype == QuantDType.QInt8;
        QParams qx = QParams.PerTensor(0.021f, signed ? 5 : 133, dtype);
        QTensor x = RandomTensor(random, [2, channels, 7, 9], qx);
        float[] gamma = ContractReference.RandomFloats(random, channels, 0.5f, 1.5f);
        float[] beta = ContractReference.RandomFloats(random, channels, -1f, 1f);
        float[] mean = ContractReference.RandomFloats(random, channels, -0.5f, 0.5f);
        float[] variance = ContractReference.RandomFloats(random, channels, 0.3f, 3f);

        using var scope = torch.NewDisposeScope();
        var reference = torch.nn.functional.batch_norm(
            DequantizedTorch(x), torch.tensor(mean), torch.tensor(variance), torch.tensor(gamma), torch.tensor(beta), false, 0.1, 1e-5);
        float[] values = Floats(reference);
        (float sy, int zy) = ContractReference.AffineQuint8(values.Min(), values.Max());
        QParams qy = QParams.PerTensor(sy, signed ? zy - 128 : zy, dtype);
        if (relu)
        {
            reference = torch.nn.functional.relu(reference);
        }

        var bn = QuantizedBatchNorm2d.FromStatistics("M", "bn1", gamma, beta, mean, variance, 1e-5, qy, relu);
        QTensor y = bn.Forward(x);
        Assert.Equal(x.Shape, y.Shape);
        Assert.Same(qy, y.QParams);

        // Same real number, different float32 roundings (libtorch's (x - mean) / sqrt(var + eps) * gamma + beta
        // versus the folded alpha·(q - zx) + beta'): only values within a rounding of a tie can differ.
        AssertWithinOneStep(_output, $"batch_norm {dtype} C={channels} relu={relu}", QuantizeTorch(reference, qy), y.IntRepr(), exactFloor: 0.98);
    }

    [Fact]
    public void BadInputsAreRejectedNamingModelAndLayer()
    {
        QParams q = QParams.PerTensor(0.1f, 3, QuantDType.QUInt8);
        var bn = new QuantizedBatchNorm2d("M", "bn1", [1f, 1f, 1f], [0f, 0f, 0f], q, relu: false);
        var channels = Assert.Throws<ArgumentException>(() => bn.Forward(new QTensor([1, 1, 2, 3], q)));
        Assert.Contains("M.bn1: expected input [N, 3, H, W] (rank 4, 3 channels), got [1, 1, 2, 3]", channels.Message);

        var dtype = Assert.Throws<ArgumentException>(() => bn.Forward(new QTensor([1, 3, 2, 2], QParams.PerTensor(0.1f, 0, QuantDType.QInt8))));
        Assert.Contains("M.bn1: expected a torch.quint8 input (the output's dtype), got torch.qint8 [1, 3, 2, 2]", dtype.Message);

        var lengths = Assert.Throws<ArgumentException>(() => new QuantizedBatchNorm2d("M", "bn1", [1f, 1f], [0f], q, false));
        Assert.Contains("M.bn1: expected one scale and one shift per channel, got 2 scales and 1 shifts", lengths.Message);

        var finite = Assert.Throws<ArgumentException>(() => new QuantizedBatchNorm2d("M", "bn1", [1f, float.NaN], [0f, 0f], q, false));
        Assert.Contains("M.bn1: scale[1] is NaN", finite.Message);

        var statistics = Assert.Throws<ArgumentException>(() => QuantizedBatchNorm2d.FromStatistics("M", "bn1", [1f], null, [0f, 0f], [1f, 1f], 1e-5, q, false));
        Assert.Contains("M.bn1:", statistics.Message);
    }
}
