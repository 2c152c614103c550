using System;
using QuantGen.Kernels.Scalar;
using static QuantGen.Tests.Kernels.KernelTestMath;

namespace QuantGen.Tests.Kernels;

/// <summary>Add, re-quantization (cat) and the unsigned view, against the contract written out in the test.</summary>
public class ElementwiseScalarTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AddEqualsDequantizeAddQuantize(bool relu)
    {
        var random = new Random(relu ? 11 : 12);
        int[] a = UniformInts(random, 4096, 0, 255), b = UniformInts(random, 4096, 0, 255);
        (float sa, int za) = (0.0371f, 119);
        (float sb, int zb) = (0.0213f, 64);
        (float sy, int zy) = (0.0457f, 97);
        var output = new byte[a.Length];
        AddScalar.Apply(Array.ConvertAll(a, v => (byte)v), sa, za, Array.ConvertAll(b, v => (byte)v), sb, zb, output, sy, zy, relu);
        for (int i = 0; i < a.Length; i++)
        {
            float sum = ContractDequantize(a[i], sa, za) + ContractDequantize(b[i], sb, zb);
            if (relu)
            {
                sum = Math.Max(sum, 0f);
            }

            Assert.Equal(ContractQuantize(sum, sy, zy, 0, 255), output[i]);
        }
    }

    [Fact]
    public void AddTiesRoundToEvenAndReluFloorsAtTheZeroPoint()
    {
        // 0.5 + 0.25 = 0.75 = 1.5 output steps of 0.5: rounds to 2 → zy + 2.
        var output = new byte[1];
        AddScalar.Apply(new byte[] { 11 }, 0.5f, 10, new byte[] { 21 }, 0.25f, 20, output, 0.5f, 100, relu: false);
        Assert.Equal(102, output[0]);

        // 0.5 + 0.5 = 1.0 = 2.5 steps of 0.4: rounds to 2 (even) → 102.
        AddScalar.Apply(new byte[] { 11 }, 0.5f, 10, new byte[] { 22 }, 0.25f, 20, output, 0.4f, 100, relu: false);
        Assert.Equal(102, output[0]);

        // -1.5 with ReLU → 0 → the zero point; without, -3 steps → 97.
        AddScalar.Apply(new byte[] { 7 }, 0.5f, 10, new byte[] { 20 }, 0.25f, 20, output, 0.5f, 100, relu: true);
        Assert.Equal(100, output[0]);
        AddScalar.Apply(new byte[] { 7 }, 0.5f, 10, new byte[] { 20 }, 0.25f, 20, output, 0.5f, 100, relu: false);
        Assert.Equal(97, output[0]);
    }

    [Fact]
    public void RequantizeEqualsDequantizeThenQuantize()
    {
        var all = new byte[256];
        for (int i = 0; i < 256; i++)
        {
            all[i] = (byte)i;
        }

        var output = new byte[256];
        RequantizeScalar.Apply(all, 0.0313f, 131, output, 0.0171f, 40);
        for (int q = 0; q < 256; q++)
        {
            Assert.Equal(ContractQuantize(ContractDequantize(q, 0.0313f, 131), 0.0171f, 40, 0, 255), output[q]);
        }
    }

    [Theory]
    [InlineData(0.0313f, 131)]
    [InlineData(1e-6f, 0)]
    [InlineData(3.7f, 255)]
    [InlineData(0.1f, 128)]
    public void RequantizingToTheSameQParamsIsTheIdentityEvenThroughTheFormula(float scale, int zeroPoint)
    {
        // The copy shortcut changes nothing: dequantize→quantize with equal qparams returns every value.
        for (int q = 0; q < 256; q++)
        {
            Assert.Equal(q, ContractQuantize(ContractDequantize(q, scale, zeroPoint), scale, zeroPoint, 0, 255));
        }

        var all = new byte[256];
        for (int i = 0; i < 256; i++)
        {
            all[i] = (byte)i;
        }

        var output = new byte[256];
        RequantizeScalar.Apply(all, scale, zeroPoint, output, scale, zeroPoint);
        Assert.Equal(all, output);
    }

    [Fact]
    public void TheUnsignedViewFlipsTheTopBitOfQint8AndCopiesQuint8()
    {
        byte[] qint8 = [0x80, 0xFF, 0x00, 0x7F];   // -128, -1, 0, 127
        var view = new byte[4];
        UInt8View.Convert(qint8, view, QuantDType.QInt8);
        Assert.Equal(new byte[] { 0, 127, 128, 255 }, view);   // each value + 128
        UInt8View.Convert(view, view, QuantDType.QInt8);
        Assert.Equal(qint8, view);                              // its own inverse
        Assert.Same(qint8, UInt8View.Of(qint8, QuantDType.QUInt8));
        Assert.Equal(128, UInt8View.Offset(QuantDType.QInt8));
        Assert.Equal(0, UInt8View.Offset(QuantDType.QUInt8));
    }

    [Fact]
    public void BadArgumentsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => AddScalar.Apply(new byte[2], 1f, 0, new byte[3], 1f, 0, new byte[2], 1f, 0, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => AddScalar.Apply(new byte[2], 0f, 0, new byte[2], 1f, 0, new byte[2], 1f, 0, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => RequantizeScalar.Apply(new byte[2], 1f, 300, new byte[2], 1f, 0));
        Assert.Throws<ArgumentException>(() => UInt8View.Convert(new byte[2], new byte[3], QuantDType.QInt8));
    }
}
