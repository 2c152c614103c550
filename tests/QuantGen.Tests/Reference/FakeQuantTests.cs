using System;
using System.Linq;
using QuantGen.Reference;
using QuantGen.Tests.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Reference;

/// <summary>FakeQuant.Apply = the contract's quantize then dequantize, element by element (docs/numerics.md §2, §6).</summary>
public class FakeQuantTests
{
    private static float[] Apply(float[] values, long[] shape, QParams qparams)
    {
        using var scope = torch.NewDisposeScope();
        Tensor input = torch.tensor(values, shape);
        Tensor output = FakeQuant.Apply(input, qparams);
        Assert.Equal(shape, output.shape);
        Assert.Equal(ScalarType.Float32, output.dtype);
        return output.data<float>().ToArray();
    }

    [Fact]
    public void TiesRoundToEvenBeforeTheZeroPointIsAdded()
    {
        // scale 0.5 (a power of two: x * (1 / 0.5) is exact), zero point 3.
        // x / s: 0.25 → 0.5 → 0; 0.75 → 1.5 → 2; 1.25 → 2.5 → 2; -0.25 → -0.5 → -0; -0.75 → -1.5 → -2.
        // q = that + 3 → 3, 5, 5, 3, 1; dequantized (q - 3) * 0.5 → 0, 1, 1, 0, -1.
        // (Rounding x / s + zp instead would give 3.5 → 4 for the first: 0.5.)
        float[] actual = Apply([0.25f, 0.75f, 1.25f, -0.25f, -0.75f], [5], QParams.PerTensor(0.5f, 3, QuantDType.QUInt8));
        Assert.Equal([0f, 1f, 1f, 0f, -1f], actual);
    }

    [Fact]
    public void ClampsToTheFullDTypeRange()
    {
        // quint8, scale 0.1, zero point 10: representable -1.0 .. 24.5.
        float[] actual = Apply([-5f, 30f, 24.5f, -1f], [2, 2], QParams.PerTensor(0.1f, 10, QuantDType.QUInt8));
        float[] expected = [ContractReference.Dequantize(0, 0.1f, 10), ContractReference.Dequantize(255, 0.1f, 10), ContractReference.Dequantize(255, 0.1f, 10), ContractReference.Dequantize(0, 0.1f, 10)];
        Assert.Equal(expected, actual);

        // qint8 symmetric, scale 1: -128..127.
        Assert.Equal([-128f, 127f, 127f], Apply([-300f, 127.5f, 128f], [3], QParams.PerTensor(1f, 0, QuantDType.QInt8)));
    }

    [Fact]
    public void NonFiniteValuesFollowTheContract()
    {
        // +inf → dtype max, -inf → dtype min, NaN → the zero point (dequantizes to exactly 0).
        float[] values = [float.PositiveInfinity, float.NegativeInfinity, float.NaN];
        Assert.Equal([(255 - 7) * 0.25f, (0 - 7) * 0.25f, 0f], Apply(values, [3], QParams.PerTensor(0.25f, 7, QuantDType.QUInt8)));
        Assert.Equal([127 * 0.25f, -128 * 0.25f, 0f], Apply(values, [3], QParams.PerTensor(0.25f, 0, QuantDType.QInt8)));
    }

    [Theory]
    [InlineData(QuantDType.QUInt8, 0.0173f, 131)]
    [InlineData(QuantDType.QUInt8, 0.0042f, 0)]
    [InlineData(QuantDType.QInt8, 0.0211f, 0)]
    [InlineData(QuantDType.QInt8, 0.0093f, -17)]
    public void PerTensorEqualsTheContractFormulaAndTheInt8TensorsValues(QuantDType dtype, float scale, int zeroPoint)
    {
        var random = new Random(zeroPoint + (int)(scale * 1e4));
        float[] values = QdqMath.Uniform(random, 4 * 3 * 5 * 2, -3f, 3f);

        // Exact ties of the contract's own arithmetic: x = (k + 0.5) * scale, whose x * (1 / scale) lands on k + 0.5 for many k.
        for (int i = 0; i < 40; i++)
        {
            values[i] = ((i - 20) + 0.5f) * scale;
        }

        var qparams = QParams.PerTensor(scale, zeroPoint, dtype);
        float[] actual = Apply(values, [4, 3, 5, 2], qparams);
        int qmin = dtype == QuantDType.QUInt8 ? 0 : -128, qmax = dtype == QuantDType.QUInt8 ? 255 : 127;
        float[] expected = values.Select(x => ContractReference.Dequantize(ContractReference.Quantize(x, scale, zeroPoint, qmin, qmax), scale, zeroPoint)).ToArray();
        Assert.Equal(expected, actual);
        Assert.Equal(QTensor.Quantize(values, [4, 3, 5, 2], qparams).Dequantize(), actual);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void PerChannelUsesEachChannelsScaleAndZeroPoint(int axis)
    {
        int[] shape = [2, 3, 4, 5];
        var random = new Random(100 + axis);
        int channels = shape[axis];
        float[] scales = QdqMath.Uniform(random, channels, 0.005f, 0.05f);
        int[] zeroPoints = Enumerable.Range(0, channels).Select(c => (c * 7) - 10).ToArray();
        float[] values = QdqMath.Uniform(random, 2 * 3 * 4 * 5, -2f, 2f);
        var qparams = QParams.PerChannel(scales, zeroPoints, axis, QuantDType.QInt8);

        float[] actual = Apply(values, [2, 3, 4, 5], qparams);
        int inner = shape.Skip(axis + 1).Aggregate(1, (a, b) => a * b);
        float[] expected = QdqMath.FakeQuantize(values, scales, zeroPoints, inner, -128, 127);
        Assert.Equal(expected, actual);
        Assert.Equal(QTensor.Quantize(values, shape, qparams).Dequantize(), actual);
    }

    [Fact]
    public void ReducedRangeQParamsStillClampToTheFullRange()
    {
        // A scale from reduce_range (0..127) shapes the step, but values beyond 127 steps are kept up to 255.
        float[] actual = Apply([200f * 0.01f], [1], QParams.PerTensor(0.01f, 0, QuantDType.QUInt8));
        Assert.Equal(ContractReference.Dequantize(200, 0.01f, 0), actual[0]);
    }

    [Fact]
    public void TheInputIsNotChanged()
    {
        using var scope = torch.NewDisposeScope();
        Tensor input = torch.tensor(new[] { 0.123f, -4.56f }, [2]);
        Tensor output = FakeQuant.Apply(input, QParams.PerTensor(0.1f, 128, QuantDType.QUInt8));
        Assert.Equal([0.123f, -4.56f], input.data<float>().ToArray());
        Assert.NotEqual(input.data<float>().ToArray(), output.data<float>().ToArray());
    }

    [Fact]
    public void BadArgumentsAreRejected()
    {
        using var scope = torch.NewDisposeScope();
        Tensor input = torch.zeros(2, 3);
        Assert.Throws<ArgumentException>(() => FakeQuant.Apply(input, QParams.PerChannel([0.1f, 0.1f], [0, 0], 1, QuantDType.QInt8)));
        Assert.Throws<ArgumentException>(() => FakeQuant.Apply(input, QParams.PerChannel([0.1f, 0.1f], [0, 0], 2, QuantDType.QInt8)));
        Assert.Throws<ArgumentException>(() => FakeQuant.Apply(torch.zeros(2, 3, ScalarType.Float64), QParams.PerTensor(0.1f, 0, QuantDType.QInt8)));
        Assert.ThrowsAny<ArgumentException>(() => FakeQuant.Apply(input, QParams.PerTensor(0f, 0, QuantDType.QInt8)));
    }
}
