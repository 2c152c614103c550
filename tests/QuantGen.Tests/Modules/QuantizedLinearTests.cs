using System;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Observers;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.ContractReference;
using static TorchSharp.torch;

namespace QuantGen.Tests.Modules;

public class QuantizedLinearTests
{
    private readonly ITestOutputHelper _output;

    public QuantizedLinearTests(ITestOutputHelper output) => _output = output;

    private sealed record Operands(int[] Input, int InputZeroPoint, float InputScale, int[] Weight, float[] WeightScales, float[]? Bias);

    private static Operands MakeOperands(int seed, int rows, int inFeatures, int outFeatures, bool bias, bool perChannel)
    {
        var random = new Random(seed);
        int[] input = RandomInts(random, rows * inFeatures, 0, 255);
        int[] weight = RandomInts(random, outFeatures * inFeatures, -128, 127);
        float[] scales = perChannel ? RandomFloats(random, outFeatures, 0.001f, 0.01f) : Enumerable.Repeat(0.005f, outFeatures).ToArray();
        return new Operands(input, random.Next(0, 256), 0.01f + (0.02f * random.NextSingle()), weight, scales, bias ? RandomFloats(random, outFeatures, -2f, 2f) : null);
    }

    private static QuantizedLinear MakeLinear(Operands o, int inFeatures, int outFeatures, bool perChannel, QParams output, bool relu, QuantBackend backend) =>
        new("M", "fc", inFeatures, outFeatures,
            new QTensor([outFeatures, inFeatures], perChannel ? QParams.PerChannel(o.WeightScales, new int[outFeatures], 0, QuantDType.QInt8) : QParams.PerTensor(o.WeightScales[0], 0, QuantDType.QInt8), Bytes(o.Weight)),
            o.Bias, QParams.PerTensor(o.InputScale, o.InputZeroPoint, QuantDType.QUInt8), output, relu, backend);

    public static TheoryData<QuantBackend, bool, bool, bool> Cases()
    {
        var data = new TheoryData<QuantBackend, bool, bool, bool>();
        foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
        {
            foreach (bool relu in new[] { false, true })
            {
                data.Add(backend, relu, true, true);
                data.Add(backend, relu, false, false);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardEqualsTheContractFormulaExactly(QuantBackend backend, bool relu, bool bias, bool perChannel)
    {
        const int rows = 5, inFeatures = 37, outFeatures = 11;
        Operands o = MakeOperands(seed: 7, rows, inFeatures, outFeatures, bias, perChannel);
        QuantizedLinear linear = MakeLinear(o, inFeatures, outFeatures, perChannel, QParams.PerTensor(0.08f, 90, QuantDType.QUInt8), relu, backend);
        QTensor y = linear.Forward(new QTensor([rows, inFeatures], QParams.PerTensor(o.InputScale, o.InputZeroPoint, QuantDType.QUInt8), Bytes(o.Input)));

        var expected = new int[rows * outFeatures];
        for (int r = 0; r < rows; r++)
        {
            for (int f = 0; f < outFeatures; f++)
            {
                int acc = 0;
                for (int i = 0; i < inFeatures; i++)
                {
                    acc += (o.Input[(r * inFeatures) + i] - o.InputZeroPoint) * o.Weight[(f * inFeatures) + i];
                }

                float b = o.Bias?[f] ?? 0f;
                expected[(r * outFeatures) + f] = backend == QuantBackend.X86
                    ? RequantizeX86(acc, b, o.InputScale, o.WeightScales[f], 0.08f, 90, relu)
                    : RequantizeQnnpack(acc, b, o.InputScale, o.WeightScales[f], 0.08f, 90, relu);
            }
        }

        Assert.Equal(new[] { rows, outFeatures }, y.Shape);
        Assert.Equal(expected, y.IntRepr());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardIsWithinOneStepOfTheQdqReference(QuantBackend backend, bool relu, bool bias, bool perChannel)
    {
        const int inFeatures = 64, outFeatures = 10;
        int[] batch = [2, 3];   // a rank-3 input: leading dimensions are rows
        Operands o = MakeOperands(seed: 13, 6, inFeatures, outFeatures, bias, perChannel);
        float[] reference;
        using (var scope = torch.NewDisposeScope())
        {
            Tensor x = torch.tensor(o.Input.Select(q => Dequantize(q, o.InputScale, o.InputZeroPoint)).ToArray(), [2, 3, inFeatures]);
            Tensor w = torch.tensor(o.Weight.Select((q, i) => Dequantize(q, o.WeightScales[i / inFeatures], 0)).ToArray(), [outFeatures, inFeatures]);
            Tensor y = nn.functional.linear(x, w, o.Bias is null ? null : torch.tensor(o.Bias, [outFeatures]));
            reference = (relu ? nn.functional.relu(y) : y).data<float>().ToArray();
        }

        (float outputScale, int outputZeroPoint) = AffineQuint8(reference.Min(), reference.Max());
        QuantizedLinear linear = MakeLinear(o, inFeatures, outFeatures, perChannel, QParams.PerTensor(outputScale, outputZeroPoint, QuantDType.QUInt8), relu, backend);
        QTensor actual = linear.Forward(new QTensor([batch[0], batch[1], inFeatures], QParams.PerTensor(o.InputScale, o.InputZeroPoint, QuantDType.QUInt8), Bytes(o.Input)));
        Assert.Equal(new[] { 2, 3, outFeatures }, actual.Shape);
        int[] expected = reference.Select(v => Quantize(v, outputScale, outputZeroPoint, 0, 255)).ToArray();
        int[] got = actual.IntRepr();
        int exact = got.Zip(expected).Count(p => p.First == p.Second);
        int worst = got.Zip(expected).Max(p => Math.Abs(p.First - p.Second));
        _output.WriteLine($"{backend} relu={relu} bias={bias} perChannel={perChannel}: {exact}/{got.Length} exact, max |diff| {worst}");
        Assert.True(worst <= 1, $"an output is {worst} steps from the QDQ reference");
    }

    private static QuantizedLinear FourToTwo() =>
        new("M", "fc", 4, 2, new QTensor([2, 4], QParams.PerTensor(0.01f, 0, QuantDType.QInt8)), null,
            QParams.PerTensor(0.1f, 0, QuantDType.QUInt8), QParams.PerTensor(0.2f, 5, QuantDType.QUInt8), true, QuantBackend.X86);

    [Fact]
    public void BadInputIsRejectedNamingModelLayerExpectedAndActual()
    {
        QParams quint8 = QParams.PerTensor(0.1f, 0, QuantDType.QUInt8);
        var rank = Assert.Throws<ArgumentException>(() => FourToTwo().Forward(new QTensor([4], quint8)));
        Assert.Contains("M.fc: expected input [N, 4] (rank 2 or more, last dimension 4), got [4]", rank.Message);

        var features = Assert.Throws<ArgumentException>(() => FourToTwo().Forward(new QTensor([1, 3], quint8)));
        Assert.Contains("M.fc: expected input [N, 4] (rank 2 or more, last dimension 4), got [1, 3]", features.Message);

        var dtype = Assert.Throws<ArgumentException>(() => FourToTwo().Forward(new QTensor([1, 4], QParams.PerTensor(0.1f, 0, QuantDType.QInt8))));
        Assert.Contains("M.fc: expected a torch.quint8 input, got torch.qint8 [1, 4]", dtype.Message);
    }

    [Fact]
    public void ConstructorRejectsAWeightOfTheWrongShape()
    {
        QParams activation = QParams.PerTensor(0.1f, 0, QuantDType.QUInt8);
        var error = Assert.Throws<ArgumentException>(() => new QuantizedLinear("M", "fc", 4, 2, new QTensor([4, 2], QParams.PerTensor(0.01f, 0, QuantDType.QInt8)), null, activation, activation, false, QuantBackend.X86));
        Assert.Contains("M.fc: expected weight [2, 4] ([out_features, in_features]), got [4, 2]", error.Message);
    }

    [Fact]
    public void ToStringMatchesPyTorchsRepr()
    {
        Assert.Equal("QuantizedLinearReLU(in_features=4, out_features=2, scale=0.20000000298023224, zero_point=5, qscheme=torch.per_tensor_affine)", FourToTwo().ToString());
    }

    [Fact]
    public void FusedLinearForwardAndConvertFollowTheModule()
    {
        var module = nn.Linear(6, 3);
        using FusedLinear fused = FusedLinear.Create("M", "fc", module, relu: true);
        Assert.Equal((6, 3), (fused.InFeatures, fused.OutFeatures));
        using (var scope = torch.NewDisposeScope())
        {
            torch.manual_seed(4);
            Tensor x = torch.randn(5, 6);
            Assert.Equal(nn.functional.relu(module.forward(x)).data<float>().ToArray(), fused.forward(x).data<float>().ToArray());
            var error = Assert.Throws<ArgumentException>(() => fused.forward(torch.zeros(5, 7)));
            Assert.Contains("M.fc: expected input [N, 6] (last dimension 6), got [5, 7]", error.Message);
        }

        float[] weight = module.weight.data<float>().ToArray();
        QuantizedLinear int8 = fused.Convert(QParams.PerTensor(0.02f, 3, QuantDType.QUInt8), QParams.PerTensor(0.05f, 0, QuantDType.QUInt8), ObserverSpec.PerChannelMinMax(), QuantBackend.X86);
        var expected = new int[weight.Length];
        for (int f = 0; f < 3; f++)
        {
            float[] row = weight.Skip(f * 6).Take(6).ToArray();
            float scale = MathF.Max(MathF.Max(-MathF.Min(row.Min(), 0f), MathF.Max(row.Max(), 0f)) / 127.5f, 1.1920929e-07f);
            for (int i = 0; i < 6; i++)
            {
                expected[(f * 6) + i] = Quantize(row[i], scale, 0, -128, 127);
            }
        }

        Assert.Equal(expected, int8.Weight.IntRepr());
        Assert.Equal(module.bias!.data<float>().ToArray(), int8.Bias);
        Assert.True(int8.FusedRelu);
    }
}
