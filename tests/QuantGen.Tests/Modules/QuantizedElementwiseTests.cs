using System;
using System.Linq;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Modules;

/// <summary>
/// Unary ops by table: every input integer maps to quantize(f(dequantize(q))), checked against LeakyReLU and
/// Hardsigmoid derived by hand, and the layer against its table on every integer and layout.
/// </summary>
public sealed class QuantizedElementwiseTests
{
    [Theory]
    [InlineData(0.05f, 128, 0.04f, 30)]
    [InlineData(0.02f, 0, 0.02f, 5)]
    public void The_LeakyReLU_table_is_its_QDQ_reference_derived_by_hand(float inScale, int inZero, float outScale, int outZero)
    {
        QParams input = QParams.PerTensor(inScale, inZero, QuantDType.QUInt8), output = QParams.PerTensor(outScale, outZero, QuantDType.QUInt8);
        using var leaky = nn.LeakyReLU(0.1);
        int[] table = ElementwiseTable.Create("M.act", leaky.forward, input, output);
        for (int q = 0; q < 256; q++)
        {
            // By hand, in float32 as the contract says: dequantize, leaky ReLU, multiply by the reciprocal, round half to even.
            float x = (float)(q - inZero) * inScale;
            float y = x >= 0 ? x : x * 0.1f;
            int expected = Math.Clamp((int)MathF.Round(y * (1.0f / outScale), MidpointRounding.ToEven) + outZero, 0, 255);
            // Exact for x >= 0; below zero libtorch multiplies by the slope held as a double (0.1, not 0.1f), which
            // may land a product on the other side of a rounding boundary: one step at most.
            Assert.True(Math.Abs(expected - table[q]) <= (x < 0 ? 1 : 0), $"q={q}: table {table[q]}, by hand {expected}");
        }
    }

    [Fact]
    public void Hardsigmoid_takes_PyTorchs_fixed_qparams_and_its_table_is_exact()
    {
        QParams fixedOutput = ElementwiseTable.FixedOutputQParams("Hardsigmoid")!;
        Assert.Equal((1f / 256f, 0), (fixedOutput.Scale, fixedOutput.ZeroPoint));
        Assert.Equal((2f / 256f, 128), (ElementwiseTable.FixedOutputQParams("Tanh")!.Scale, ElementwiseTable.FixedOutputQParams("Tanh")!.ZeroPoint));
        Assert.Null(ElementwiseTable.FixedOutputQParams("LeakyReLU"));

        QParams input = QParams.PerTensor(0.05f, 128, QuantDType.QUInt8);
        using var hardsigmoid = nn.Hardsigmoid();
        int[] table = ElementwiseTable.Create("M.gate", hardsigmoid.forward, input, fixedOutput);
        for (int q = 0; q < 256; q++)
        {
            // relu6(x + 3) / 6: multiples of 0.05 plus 3, over 6, on a 1/256 grid; no ties at these inputs.
            double x = (q - 128) * 0.05;
            double y = Math.Clamp(x + 3, 0, 6) / 6;
            int expected = Math.Clamp((int)Math.Round(y * 256, MidpointRounding.ToEven), 0, 255);
            Assert.Equal(expected, table[q]);
        }
    }

    [Theory]
    [InlineData(QuantDType.QUInt8)]
    [InlineData(QuantDType.QInt8)]
    public void The_layer_maps_every_integer_through_its_table(QuantDType dtype)
    {
        (int min, int max) = dtype == QuantDType.QInt8 ? (-128, 127) : (0, 255);
        QParams input = QParams.PerTensor(0.1f, dtype == QuantDType.QInt8 ? 0 : 128, dtype);
        QParams output = QParams.PerTensor(0.07f, dtype == QuantDType.QInt8 ? -3 : 10, dtype);
        var random = new Random(4);
        int[] table = Enumerable.Range(0, 256).Select(_ => random.Next(min, max + 1)).ToArray();
        var layer = new QuantizedElementwise("M", "act", "Custom", input, output, table);
        int[] integers = Enumerable.Range(min, 256).Concat(Enumerable.Range(min, 256).Reverse()).ToArray();
        QTensor x = QTensor.Quantize(integers.Select(q => (q - input.ZeroPoint) * input.Scale).ToArray(), [2, 2, 8, 16], input);
        Assert.Equal(integers, x.IntRepr());
        int[] result = layer.Forward(x).IntRepr();
        Assert.Equal(integers.Select(q => table[q - min]).ToArray(), result);

        var wrong = QTensor.Quantize(new float[4], [1, 4], QParams.PerTensor(0.2f, input.ZeroPoint, dtype));
        var error = Assert.Throws<ArgumentException>(() => layer.Forward(wrong));
        Assert.Contains("M.act", error.Message, StringComparison.Ordinal);
    }
}
