using System;
using System.Linq;
using System.Threading.Tasks;
using QuantGen.Dynamic;
using QuantGen.Tests.Binding;
using QuantGen.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static QuantGen.Tests.Modules.ContractReference;
using static TorchSharp.torch;

namespace QuantGen.Tests.Dynamic;

// Builds TorchSharp modules, whose initialisers draw from libtorch's global generator: kept away from seeded tests.
[Collection(SeededTorchCollection.Name)]
public class DynamicQuantizedLinearTests
{
    private sealed record Operands(float[] Input, int[] Weight, float[] WeightScales, float[]? Bias);

    private static Operands MakeOperands(int seed, int rows, int inFeatures, int outFeatures, bool bias, bool perChannel)
    {
        var random = new Random(seed);
        // An input range that is not centred on zero, so the zero point is neither 0 nor the middle.
        float[] input = RandomFloats(random, rows * inFeatures, -1.3f, 2.9f);
        int[] weight = RandomInts(random, outFeatures * inFeatures, -128, 127);
        float[] scales = perChannel ? RandomFloats(random, outFeatures, 0.001f, 0.01f) : Enumerable.Repeat(0.0047f, outFeatures).ToArray();
        return new Operands(input, weight, scales, bias ? RandomFloats(random, outFeatures, -2f, 2f) : null);
    }

    private static QTensor WeightTensor(Operands o, int inFeatures, int outFeatures, bool perChannel) =>
        new([outFeatures, inFeatures], perChannel ? QParams.PerChannel(o.WeightScales, new int[outFeatures], 0, QuantDType.QInt8) : QParams.PerTensor(o.WeightScales[0], 0, QuantDType.QInt8), Bytes(o.Weight));

    public static TheoryData<QuantBackend, bool, bool, bool, int, int, int> Cases()
    {
        var data = new TheoryData<QuantBackend, bool, bool, bool, int, int, int>();
        foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
        {
            // rows, in_features, out_features: batch 1, K off every kernel's multiple (4, 8, 32), N odd.
            data.Add(backend, false, true, true, 1, 37, 11);
            data.Add(backend, true, true, false, 5, 7, 1);
            data.Add(backend, false, false, false, 3, 33, 17);
            data.Add(backend, true, false, true, 9, 64, 19);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardEqualsThePlainFormulaBitForBitOnEveryKernel(QuantBackend backend, bool relu, bool bias, bool perChannel, int rows, int inFeatures, int outFeatures)
    {
        Operands o = MakeOperands(seed: rows * 1000 + inFeatures, rows, inFeatures, outFeatures, bias, perChannel);
        float[] expected = Recompute(o, rows, inFeatures, outFeatures, relu, backend);

        int kernels = 0;
        foreach (GemmConfig config in GemmConfig.All.Where(c => c.IsSupported))
        {
            var linear = new DynamicQuantizedLinear("M", "fc", inFeatures, outFeatures, WeightTensor(o, inFeatures, outFeatures, perChannel), o.Bias, relu, backend, config);
            float[] actual = linear.Forward(o.Input, rows);
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"{config.Name}, output {i}: expected {expected[i]:R}, got {actual[i]:R}");
            }

            kernels++;
        }

        Assert.True(kernels >= 1);
    }

    [Fact]
    public void PresetsQuantizeTheInputDifferently()
    {
        float[] input = [-1f, 0.25f, 1f, 3f];
        var weight = new QTensor([1, 4], QParams.PerTensor(0.01f, 0, QuantDType.QInt8), Bytes([1, 2, 3, 4]));
        var x86 = new DynamicQuantizedLinear("M", "fc", 4, 1, weight, null, false, QuantBackend.X86);
        var qnnpack = new DynamicQuantizedLinear("M", "fc", 4, 1, weight, null, false, QuantBackend.Qnnpack);

        // X86 halves the range (reduce_range): scale 4/127; qnnpack keeps 0..255: scale 4/255.
        Assert.Equal(((float)(4.0 / 127), 32), x86.InputQParams(input));
        Assert.Equal(((float)(4.0 / 255), 64), qnnpack.InputQParams(input));
    }

    [Theory]
    [InlineData(QuantBackend.X86)]
    [InlineData(QuantBackend.Qnnpack)]
    public void AnExactTieWithAnOddZeroPointRoundsAsThePresetSays(QuantBackend backend)
    {
        // Random inputs almost never land on a tie, so build one: a range whose zero point is odd, and an x
        // with x * (1/s) exactly k + 0.5. X86 rounds k + 0.5 + zx (to even), qnnpack rounds k + 0.5 and then adds zx.
        var weight = new QTensor([1, 1], QParams.PerTensor(1f, 0, QuantDType.QInt8), Bytes([1]));
        var linear = new DynamicQuantizedLinear("M", "fc", 1, 1, weight, null, false, backend);
        float max = 1f;
        (float scale, int zeroPoint) = linear.InputQParams([-1f, max]);
        while (zeroPoint % 2 == 0)
        {
            max += 0.01f;
            (scale, zeroPoint) = linear.InputQParams([-1f, max]);
        }

        float inverse = 1.0f / scale;
        float tie = float.NaN;
        for (int k = 2; k < 40 && float.IsNaN(tie); k++)
        {
            float candidate = (k + 0.5f) * scale;
            for (int back = 0; back < 4; back++)
            {
                candidate = MathF.BitDecrement(candidate);
            }

            for (int step = 0; step < 9; step++, candidate = MathF.BitIncrement(candidate))
            {
                if (candidate * inverse == k + 0.5f)
                {
                    tie = candidate;
                    break;
                }
            }
        }

        Assert.False(float.IsNaN(tie), "no exact tie found near (k + 0.5) * scale");
        float half = tie * inverse; // k + 0.5
        int expected = backend == QuantBackend.X86
            ? (int)MathF.Round(half + zeroPoint, MidpointRounding.ToEven) - zeroPoint
            : (int)MathF.Round(half, MidpointRounding.ToEven);
        Assert.Equal(1, Math.Abs(((int)MathF.Round(half + zeroPoint, MidpointRounding.ToEven) - zeroPoint) - (int)MathF.Round(half, MidpointRounding.ToEven)));

        // Rows [-1], [tie], [max]: the extremes fix the same qparams; weight 1 with scale 1 returns (q - zx) * sx.
        float[] y = linear.Forward([-1f, tie, max], 3);
        Assert.Equal((float)expected * scale, y[1]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FromLinearIsWithinTheInputRoundingOfTheFloatLinearOnDequantizedWeights(bool perChannel)
    {
        const int inFeatures = 23, outFeatures = 9, rows = 6;
        var random = new Random(perChannel ? 2 : 1);
        using var scope = torch.NewDisposeScope();
        Linear linear = torch.nn.Linear(inFeatures, outFeatures);
        using (torch.no_grad())
        {
            linear.weight!.copy_(torch.tensor(RandomFloats(random, inFeatures * outFeatures, -0.6f, 0.6f), [outFeatures, inFeatures]));
            linear.bias!.copy_(torch.tensor(RandomFloats(random, outFeatures, -0.3f, 0.3f), [outFeatures]));
        }

        foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
        {
            DynamicQuantizedLinear dynamic = DynamicQuantizedLinear.FromLinear("M", "fc", linear, backend, perChannel);
            Assert.Equal(perChannel, dynamic.Weight.QParams.IsPerChannel);
            float[] dequantized = dynamic.Weight.Dequantize();
            Tensor x = torch.tensor(RandomFloats(random, rows * inFeatures, -2f, 1.5f), [rows, inFeatures]);

            float[] expected = torch.nn.functional.linear(x, torch.tensor(dequantized, [outFeatures, inFeatures]), linear.bias).data<float>().ToArray();
            float[] actual = dynamic.Forward(x).data<float>().ToArray();

            // Each input moves by at most half a step when quantized, so an output moves by at most
            // (scale / 2) · Σ|w| of its row, plus float32 rounding.
            (float inputScale, _) = dynamic.InputQParams(x.data<float>().ToArray());
            for (int c = 0; c < outFeatures; c++)
            {
                float rowAbsSum = 0f;
                for (int k = 0; k < inFeatures; k++)
                {
                    rowAbsSum += MathF.Abs(dequantized[(c * inFeatures) + k]);
                }

                float bound = (inputScale / 2f * rowAbsSum) + 1e-5f;
                for (int r = 0; r < rows; r++)
                {
                    float difference = MathF.Abs(expected[(r * outFeatures) + c] - actual[(r * outFeatures) + c]);
                    Assert.True(difference <= bound, $"{backend} row {r} out {c}: |{expected[(r * outFeatures) + c]} - {actual[(r * outFeatures) + c]}| = {difference} > {bound}");
                }
            }
        }
    }

    [Fact]
    public void BadInputGivesErrorsNamingTheLayer()
    {
        var weight = new QTensor([3, 4], QParams.PerTensor(0.01f, 0, QuantDType.QInt8), new byte[12]);
        var linear = new DynamicQuantizedLinear("TextModel", "classifier", 4, 3, weight, null, false, QuantBackend.X86);

        var nan = Assert.Throws<ArgumentException>(() => linear.Forward([0f, 1f, float.NaN, 2f], 1));
        Assert.Contains("TextModel.classifier", nan.Message);
        Assert.Contains("row 0, feature 2", nan.Message);
        Assert.Contains("not finite", nan.Message);

        using var scope = torch.NewDisposeScope();
        var features = Assert.Throws<ArgumentException>(() => linear.Forward(torch.zeros(2, 5)));
        Assert.Contains("TextModel.classifier", features.Message);
        Assert.Contains("in_features=4", features.Message);
        Assert.Contains("[2, 5]", features.Message);

        var empty = Assert.Throws<ArgumentException>(() => linear.Forward(torch.zeros(0, 4)));
        Assert.Contains("TextModel.classifier", empty.Message);
        Assert.Contains("empty batch", empty.Message);

        var rank = Assert.Throws<ArgumentException>(() => linear.Forward(torch.zeros(4)));
        Assert.Contains("rank 2 or more", rank.Message);

        var dtype = Assert.Throws<ArgumentException>(() => linear.Forward(torch.zeros(new long[] { 1, 4 }, ScalarType.Float64)));
        Assert.Contains("Float32", dtype.Message);

        var count = Assert.Throws<ArgumentException>(() => linear.Forward(new float[7], 2));
        Assert.Contains("TextModel.classifier", count.Message);
    }

    [Fact]
    public void ConcurrentCallsGiveTheSameResultsAsSequentialOnes()
    {
        const int rows = 4, inFeatures = 29, outFeatures = 13;
        Operands o = MakeOperands(seed: 3, rows, inFeatures, outFeatures, bias: true, perChannel: true);
        var linear = new DynamicQuantizedLinear("M", "fc", inFeatures, outFeatures, WeightTensor(o, inFeatures, outFeatures, true), o.Bias, false, QuantBackend.X86);
        var random = new Random(4);
        // Inputs of different ranges, so every call has its own scale and zero point.
        float[][] inputs = Enumerable.Range(0, 32).Select(i => RandomFloats(random, rows * inFeatures, -1f - i, 1f + (0.5f * i))).ToArray();
        float[][] sequential = inputs.Select(x => linear.Forward(x, rows)).ToArray();

        var concurrent = new float[inputs.Length][];
        Parallel.For(0, inputs.Length * 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            concurrent[i % inputs.Length] = linear.Forward(inputs[i % inputs.Length], rows);
        });

        for (int i = 0; i < inputs.Length; i++)
        {
            Assert.Equal(sequential[i], concurrent[i]);
        }
    }

    /// <summary>
    /// docs/numerics.md §8 written out plainly: qparams from the whole input's min/max (checked separately against
    /// hand values in <see cref="DynamicQParamsTests"/>), the input quantized per preset, an exact integer dot
    /// product, then <c>(float)acc * (sx * sw_c) + bias_c</c> and the optional ReLU.
    /// </summary>
    private static float[] Recompute(Operands o, int rows, int inFeatures, int outFeatures, bool relu, QuantBackend backend)
    {
        float min = o.Input.Min(), max = o.Input.Max();
        (float sx, int zx) = DynamicQParams.Choose(min, max, 0, 255, reduceRange: backend == QuantBackend.X86);
        var q = new int[o.Input.Length];
        for (int i = 0; i < q.Length; i++)
        {
            float scaled = o.Input[i] * (1.0f / sx);
            float rounded = backend == QuantBackend.X86
                ? MathF.Round(scaled + zx, MidpointRounding.ToEven)
                : MathF.Round(scaled, MidpointRounding.ToEven) + zx;
            q[i] = (int)Math.Clamp(rounded, 0f, 255f);
        }

        var y = new float[rows * outFeatures];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < outFeatures; c++)
            {
                int acc = 0;
                for (int k = 0; k < inFeatures; k++)
                {
                    acc += (q[(r * inFeatures) + k] - zx) * o.Weight[(c * inFeatures) + k];
                }

                float multiplier = sx * o.WeightScales[c];
                float value = (float)acc * multiplier;
                if (o.Bias is not null)
                {
                    value = value + o.Bias[c];
                }

                y[(r * outFeatures) + c] = relu ? MathF.Max(value, 0f) : value;
            }
        }

        return y;
    }
}
