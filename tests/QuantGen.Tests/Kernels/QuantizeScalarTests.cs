using System;
using System.Linq;
using QuantGen.Kernels.Scalar;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Kernels.KernelTestMath;

namespace QuantGen.Tests.Kernels;

public class QuantizeScalarTests
{
    private readonly ITestOutputHelper _output;

    public QuantizeScalarTests(ITestOutputHelper output) => _output = output;

    [Theory]
    // scale 0.5 (reciprocal 2, exact), zero point 10: x*2 -> round half even -> +10.
    [InlineData(1.25f, 12)]   // 2.5 -> 2 (even) -> 12
    [InlineData(1.75f, 14)]   // 3.5 -> 4 (even) -> 14
    [InlineData(-0.25f, 10)]  // -0.5 -> -0 -> 10
    [InlineData(-0.75f, 8)]   // -1.5 -> -2 -> 8
    [InlineData(0.3f, 11)]    // 0.6 -> 1 -> 11
    [InlineData(1000f, 255)]  // 2000 -> clamps to the dtype max
    [InlineData(-1000f, 0)]   // -2000 -> clamps to the dtype min
    [InlineData(-5f, 0)]      // -10 + 10 = 0, exactly the minimum
    [InlineData(-5.5f, 0)]    // -11 + 10 = -1 -> 0
    public void QuantizesUInt8ByHand(float x, byte expected)
    {
        var q = new byte[1];
        QuantizeScalar.QuantizeToUInt8([x], q, 0.5f, 10);
        Assert.Equal(expected, q[0]);
    }

    [Fact]
    public void AddsTheZeroPointAfterRounding()
    {
        // 0.25 / 0.5 = 0.5 -> 0 (even), + 3 = 3. Adding first would give round(3.5) = 4.
        var q = new byte[1];
        QuantizeScalar.QuantizeToUInt8([0.25f], q, 0.5f, 3);
        Assert.Equal(3, q[0]);
    }

    [Fact]
    public void MultipliesByTheFloatReciprocalRatherThanDividing()
    {
        // fbgemm's own example: x * (1/scale) is exactly 127.5 (-> 128), x / scale is 127.49999 (-> 127).
        const float scale = 0.00214854861f;
        const float x = 0.273939937f;
        Assert.Equal(127.5f, x * (1.0f / scale));
        Assert.NotEqual(127.5f, x / scale);

        var q = new byte[1];
        QuantizeScalar.QuantizeToUInt8([x], q, scale, 0);
        Assert.Equal(128, q[0]);
    }

    [Theory]
    // scale 0.01, zero point -3: symmetric-style int8 with a nonzero zero point.
    [InlineData(0.005f, -3)]     // 0.005f * (1f / 0.01f) is exactly 0.5 in float32 -> 0 (even) -> -3
    [InlineData(2f, 127)]        // 200 - 3 -> 127
    [InlineData(-2f, -128)]      // -200 - 3 -> -128
    [InlineData(-1.25f, -128)]   // -125 - 3 = -128, exactly the minimum
    [InlineData(1.29f, 126)]     // 129 - 3 = 126
    public void QuantizesInt8ByHand(float x, sbyte expected)
    {
        var q = new sbyte[1];
        QuantizeScalar.QuantizeToInt8([x], q, 0.01f, -3);
        Assert.Equal(ContractQuantize(x, 0.01f, -3, -128, 127), q[0]);
        Assert.Equal(expected, q[0]);
    }

    [Fact]
    public void SymmetricWeightAtMaxClampsTo127()
    {
        // Symmetric scale = max / 127.5, so the max weight lands on 127.5 -> 128 -> clamps to 127.
        const float max = 0.51f;
        float scale = max / 127.5f;
        var q = new sbyte[2];
        QuantizeScalar.QuantizeToInt8([max, -max], q, scale, 0);
        Assert.Equal(127, q[0]);
        Assert.Equal(-128, q[1]);
    }

    [Fact]
    public void NonFiniteInputsFollowTheDocumentedRules()
    {
        float[] values = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, -float.MaxValue, 3e38f];
        var u = new byte[values.Length];
        QuantizeScalar.QuantizeToUInt8(values, u, 0.1f, 37);
        Assert.Equal(new byte[] { 37, 255, 0, 255, 0, 255 }, u);

        var s = new sbyte[values.Length];
        QuantizeScalar.QuantizeToInt8(values, s, 1e-30f, -5);   // 1e-30 makes even moderate values overflow to inf
        Assert.Equal(new sbyte[] { -5, 127, -128, 127, -128, 127 }, s);

        // NaN -> zero point dequantizes to exactly 0.
        var back = new float[1];
        QuantizeScalar.DequantizeUInt8(u.AsSpan(0, 1), back, 0.1f, 37);
        Assert.Equal(0f, back[0]);
    }

    [Fact]
    public void DequantizesByHand()
    {
        var values = new float[3];
        QuantizeScalar.DequantizeUInt8([12, 10, 0], values, 0.5f, 10);
        Assert.Equal(new[] { 1f, 0f, -5f }, values);

        QuantizeScalar.DequantizeInt8([-128, 127, -3], values, 0.25f, -3);
        Assert.Equal(new[] { -31.25f, 32.5f, 0f }, values);
    }

    [Fact]
    public void DequantizeMatchesTheFormulaOnEveryInteger()
    {
        const float scale = 0.0123456f;
        var all = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        var values = new float[256];
        QuantizeScalar.DequantizeUInt8(all, values, scale, 91);
        for (int q = 0; q < 256; q++)
        {
            Assert.Equal(ContractDequantize(q, scale, 91), values[q]);
        }
    }

    [Fact]
    public void RejectsBadArguments()
    {
        var ex = Assert.Throws<ArgumentException>(() => QuantizeScalar.QuantizeToUInt8(new float[3], new byte[2], 0.1f, 0));
        Assert.Contains("3", ex.Message);
        Assert.Contains("2", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => QuantizeScalar.QuantizeToUInt8(new float[1], new byte[1], 0f, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => QuantizeScalar.QuantizeToUInt8(new float[1], new byte[1], -1f, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => QuantizeScalar.QuantizeToUInt8(new float[1], new byte[1], float.NaN, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => QuantizeScalar.QuantizeToUInt8(new float[1], new byte[1], 0.1f, 256));
        Assert.Throws<ArgumentOutOfRangeException>(() => QuantizeScalar.QuantizeToInt8(new float[1], new sbyte[1], 0.1f, 128));
        Assert.Throws<ArgumentException>(() => QuantizeScalar.DequantizeInt8(new sbyte[1], new float[2], 0.1f, 0));
    }

    /// <summary>Random data plus exact ties: values at (k + 0.5) * scale, kept only where the product really is a tie.</summary>
    private static float[] DataWithTies(int seed, float scale, int randomCount, int tieCandidates, out int ties)
    {
        var random = new Random(seed);
        float[] values = Uniform(random, randomCount, -200 * scale, 200 * scale);
        var candidates = new float[tieCandidates];
        for (int i = 0; i < tieCandidates; i++)
        {
            int k = random.Next(-180, 180);
            candidates[i] = (k + 0.5f) * scale;
        }

        float[] all = [.. values, .. candidates];
        ties = all.Count(x => IsTie(x, scale));
        return all;
    }

    [Theory]
    [InlineData(0.0235f, 117, 1)]
    [InlineData(0.1f, 0, 2)]
    [InlineData(1f / 127f, 64, 3)]
    [InlineData(0.003906f, 255, 4)]
    public void PerTensorUInt8MatchesLibtorchAndTheFormula(float scale, int zeroPoint, int seed)
    {
        float[] values = DataWithTies(seed, scale, 20000, 4000, out int ties);
        var ours = new byte[values.Length];
        QuantizeScalar.QuantizeToUInt8(values, ours, scale, zeroPoint);

        byte[] torchResult;
        float[] torchDequantized;
        using (var scope = torch.NewDisposeScope())
        {
            var t = torch.tensor(values, [values.Length]);
            var quantized = torch.quantize_per_tensor(t, scale, zeroPoint, torch.ScalarType.QUInt8);
            torchResult = quantized.int_repr().data<byte>().ToArray();
            torchDequantized = quantized.dequantize().data<float>().ToArray();
        }

        var ourDequantized = new float[values.Length];
        QuantizeScalar.DequantizeUInt8(ours, ourDequantized, scale, zeroPoint);
        Assert.Equal(torchDequantized, ourDequantized);

        int formulaMismatches = 0, torchMismatches = 0, torchTieMismatches = 0, doubleDivisionDiffers = 0, zeroPointFirstDiffers = 0;
        for (int i = 0; i < values.Length; i++)
        {
            int expected = ContractQuantize(values[i], scale, zeroPoint, 0, 255);
            formulaMismatches += ours[i] != expected ? 1 : 0;

            // The two near-miss formulas the contract rules out; the data must be able to tell them apart.
            double divided = Math.Round((double)values[i] / scale, MidpointRounding.ToEven) + zeroPoint;
            doubleDivisionDiffers += Math.Clamp((int)divided, 0, 255) != expected ? 1 : 0;
            float shifted = (values[i] * (1.0f / scale)) + zeroPoint;
            zeroPointFirstDiffers += Math.Clamp((int)Math.Round((double)shifted, MidpointRounding.ToEven), 0, 255) != expected ? 1 : 0;
            if (torchResult[i] != ours[i])
            {
                torchMismatches++;
                torchTieMismatches += IsTie(values[i], scale) ? 1 : 0;
            }
        }

        _output.WriteLine($"quint8 scale={scale:R} zp={zeroPoint}: {values.Length} values, {ties} exact ties; libtorch disagrees on {torchMismatches} ({torchTieMismatches} of them ties); "
            + $"dividing in double would change {doubleDivisionDiffers}, adding the zero point before rounding {zeroPointFirstDiffers}");
        Assert.True(ties > 1000, $"the data should hold many exact ties, has {ties}");
        Assert.True(doubleDivisionDiffers > 0, "the data cannot tell the contract from a float64 division");
        if (zeroPoint % 2 == 1)
        {
            Assert.True(zeroPointFirstDiffers > 0, "the data cannot tell where the zero point is added");
        }

        Assert.Equal(0, formulaMismatches);
        Assert.Equal(0, torchMismatches);
    }

    [Theory]
    [InlineData(0.0041f, 0, 5)]
    [InlineData(0.02f, -7, 6)]
    public void PerTensorInt8MatchesLibtorchAndTheFormula(float scale, int zeroPoint, int seed)
    {
        float[] values = DataWithTies(seed, scale, 20000, 4000, out int ties);
        var ours = new sbyte[values.Length];
        QuantizeScalar.QuantizeToInt8(values, ours, scale, zeroPoint);

        sbyte[] torchResult;
        using (var scope = torch.NewDisposeScope())
        {
            var t = torch.tensor(values, [values.Length]);
            torchResult = torch.quantize_per_tensor(t, scale, zeroPoint, torch.ScalarType.QInt8).int_repr().data<sbyte>().ToArray();
        }

        int formulaMismatches = 0, torchMismatches = 0;
        for (int i = 0; i < values.Length; i++)
        {
            formulaMismatches += ours[i] != ContractQuantize(values[i], scale, zeroPoint, -128, 127) ? 1 : 0;
            torchMismatches += torchResult[i] != ours[i] ? 1 : 0;
        }

        _output.WriteLine($"qint8 scale={scale:R} zp={zeroPoint}: {values.Length} values, {ties} exact ties; libtorch disagrees on {torchMismatches}");
        Assert.True(ties > 1000, $"the data should hold many exact ties, has {ties}");
        Assert.Equal(0, formulaMismatches);
        Assert.Equal(0, torchMismatches);
    }

    [Theory]
    [InlineData(0, QuantDType.QInt8)]
    [InlineData(1, QuantDType.QUInt8)]
    [InlineData(3, QuantDType.QInt8)]
    public void PerChannelMatchesLibtorchAndTheFormula(int axis, QuantDType dtype)
    {
        int[] shape = [6, 5, 7, 9];
        int count = shape.Aggregate(1, (a, b) => a * b);
        var random = new Random(10 + axis);
        int channels = shape[axis];
        float[] scales = Uniform(random, channels, 0.001f, 0.05f);
        int[] zeroPoints = dtype == QuantDType.QInt8 ? UniformInts(random, channels, -20, 20) : UniformInts(random, channels, 0, 255);
        int quantMin = dtype.Min(), quantMax = dtype.Max();
        int stride = shape.Skip(axis + 1).Aggregate(1, (a, b) => a * b);

        // Half the values random, half exact ties of their own channel's scale.
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            float scale = scales[(i / stride) % channels];
            values[i] = i % 2 == 0
                ? Uniform(random, 1, -150 * scale, 150 * scale)[0]
                : (random.Next(-140, 140) + 0.5f) * scale;
        }

        QTensor ours = QTensor.Quantize(values, shape, QParams.PerChannel(scales, zeroPoints, axis, dtype));
        int[] ourInts = ours.IntRepr();

        int[] torchInts;
        using (var scope = torch.NewDisposeScope())
        {
            var t = torch.tensor(values, shape.Select(d => (long)d).ToArray());
            var s = torch.tensor(scales.Select(x => (double)x).ToArray(), [channels]);
            var z = torch.tensor(zeroPoints.Select(x => (long)x).ToArray(), [channels]);
            var q = torch.quantize_per_channel(t, s, z, axis, dtype == QuantDType.QInt8 ? torch.ScalarType.QInt8 : torch.ScalarType.QUInt8).int_repr();
            torchInts = dtype == QuantDType.QInt8
                ? q.data<sbyte>().ToArray().Select(x => (int)x).ToArray()
                : q.data<byte>().ToArray().Select(x => (int)x).ToArray();
        }

        int ties = 0, formulaMismatches = 0, torchMismatches = 0;
        for (int i = 0; i < count; i++)
        {
            int c = (i / stride) % channels;
            ties += IsTie(values[i], scales[c]) ? 1 : 0;
            formulaMismatches += ourInts[i] != ContractQuantize(values[i], scales[c], zeroPoints[c], quantMin, quantMax) ? 1 : 0;
            torchMismatches += ourInts[i] != torchInts[i] ? 1 : 0;
        }

        _output.WriteLine($"per-channel {dtype} axis {axis}: {count} values, {ties} exact ties; libtorch disagrees on {torchMismatches}");
        Assert.True(ties > count / 10, $"the data should hold many exact ties, has {ties}");
        Assert.Equal(0, formulaMismatches);
        Assert.Equal(0, torchMismatches);
    }
}
