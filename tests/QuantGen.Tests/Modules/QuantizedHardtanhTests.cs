using System;
using System.Linq;
using QuantGen.Modules;

namespace QuantGen.Tests.Modules;

/// <summary>
/// Quantized Hardtanh / ReLU6 (aten's quantized hardtanh: clamp(q, quantize(min), quantize(max)) with the input's
/// qparams): exact against integers derived by hand here, and within one step of the QDQ float reference.
/// </summary>
public sealed class QuantizedHardtanhTests
{
    [Theory]
    [InlineData(QuantDType.QUInt8, 0.05f, 20, 0f, 6f)]
    [InlineData(QuantDType.QUInt8, 0.1f, 128, -1f, 1f)]
    [InlineData(QuantDType.QInt8, 0.03f, -5, 0f, 6f)]
    [InlineData(QuantDType.QUInt8, 0.02f, 0, 0f, 6f)]
    public void ClampsInTheIntegersWithTheInputsQParams(QuantDType dtype, float scale, int zeroPoint, float min, float max)
    {
        (int qmin, int qmax) = dtype == QuantDType.QInt8 ? (-128, 127) : (0, 255);
        QParams qparams = QParams.PerTensor(scale, zeroPoint, dtype);
        int[] integers = Enumerable.Range(qmin, qmax - qmin + 1).ToArray();
        float[] values = integers.Select(q => (q - zeroPoint) * scale).ToArray();
        QTensor input = QTensor.Quantize(values, [1, integers.Length], qparams);
        Assert.Equal(integers, input.IntRepr());

        var layer = new QuantizedHardtanh("M", "act", min, max);
        QTensor output = layer.Forward(input);

        // By hand: the bounds are min/scale and max/scale away from the zero point (no ties in these cases).
        int low = Math.Clamp((int)Math.Round(min / (double)scale, MidpointRounding.ToEven) + zeroPoint, qmin, qmax);
        int high = Math.Clamp((int)Math.Round(max / (double)scale, MidpointRounding.ToEven) + zeroPoint, qmin, qmax);
        Assert.Equal(integers.Select(q => Math.Clamp(q, low, high)).ToArray(), output.IntRepr());
        Assert.Equal(qparams.Scale, output.Scale);
        Assert.Equal(qparams.ZeroPoint, output.ZeroPoint);

        // The QDQ reference: dequantize, hardtanh in float, quantize with the same qparams.
        float[] reference = values.Select(v => Math.Clamp(v, min, max)).ToArray();
        int[] qdq = QTensor.Quantize(reference, [1, reference.Length], qparams).IntRepr();
        Assert.All(qdq.Zip(output.IntRepr()), pair => Assert.InRange(Math.Abs(pair.First - pair.Second), 0, 1));
    }

    [Fact]
    public void BadBoundsAndPerChannelInputsAreRefusedNamingTheLayer()
    {
        var error = Assert.Throws<ArgumentException>(() => new QuantizedHardtanh("M", "act", 2f, 1f));
        Assert.Contains("M.act", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new QuantizedHardtanh("M", "act", float.NaN, 1f));
        Assert.Equal("ReLU6()", new QuantizedHardtanh("M", "act", 0f, 6f).ToString());
    }
}
