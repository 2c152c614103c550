using System;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Observers;
using QuantGen.Reference;
using TorchSharp;
using static QuantGen.Tests.Reference.QdqMath;
using static TorchSharp.torch;

namespace QuantGen.Tests.Reference;

/// <summary>
/// Each reference layer against an independent re-computation: the weights quantized and dequantized here by the
/// contract's formulas, the same TorchSharp float op on them, the output fake-quantized here. Exact: the float op
/// gets bit-identical inputs, so any difference is a weight or output quantization error.
/// </summary>
public class ReferenceLayerTests
{
    private static readonly QParams QUInt8Input = QParams.PerTensor(0.0213f, 97, QuantDType.QUInt8);
    private static readonly QParams QUInt8Output = QParams.PerTensor(0.0371f, 61, QuantDType.QUInt8);
    private static readonly QParams QInt8Output = QParams.PerTensor(0.0297f, 0, QuantDType.QInt8);

    public static TheoryData<string, bool> WeightSpecs() => new()
    {
        { "per-channel-symmetric", false },
        { "per-channel-symmetric", true },
        { "per-tensor-symmetric", true },
        { "per-channel-affine", false },
        { "per-tensor-affine", true },
    };

    private static ObserverSpec Spec(string name, int axis) => name switch
    {
        "per-channel-symmetric" => ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric, axis),
        "per-channel-affine" => ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelAffine, axis),
        "per-tensor-symmetric" => ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric),
        "per-tensor-affine" => ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorAffine),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    private static float[] ExpectedWeights(string spec, float[] weight, int[] shape, int axis) =>
        FakeQuantizeWeights(weight, shape, spec.StartsWith("per-channel", StringComparison.Ordinal) ? axis : null, spec.EndsWith("symmetric", StringComparison.Ordinal));

    /// <summary>A fake-quantized input tensor: random values quantized→dequantized with <paramref name="qparams"/> by the test's formula.</summary>
    private static Tensor QdqInput(int seed, long[] shape, QParams qparams)
    {
        var random = new Random(seed);
        float[] values = Uniform(random, (int)shape.Aggregate(1L, (a, b) => a * b), -2.5f, 3f);
        return torch.tensor(FakeQuantizeActivation(values, qparams), shape);
    }

    private static Tensor Owned(float[] values, int[] shape) => torch.tensor(values, shape.Select(d => (long)d).ToArray());

    [Theory]
    [MemberData(nameof(WeightSpecs))]
    public void Conv2dEqualsFloatConvOnQdqWeights(string spec, bool relu)
    {
        torch.manual_seed(21);
        var conv = nn.Conv2d(6, 8, 3, stride: 2, padding: 1, groups: 2);
        var bn = nn.BatchNorm2d(8);
        using (torch.no_grad())
        {
            bn.running_mean!.uniform_(-0.5, 0.5);
            bn.running_var!.uniform_(0.5, 2);
            bn.weight!.uniform_(0.5, 1.5);
        }

        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", conv, bn, relu);
        using ReferenceLayer layer = fused.ToReference(QUInt8Output, Spec(spec, 0));
        using var scope = torch.NewDisposeScope();
        Tensor x = QdqInput(1, [2, 6, 9, 7], QUInt8Input);

        float[] weight = ExpectedWeights(spec, fused.Weight, fused.WeightShape, axis: 0);
        Tensor y = nn.functional.conv2d(x, Owned(weight, fused.WeightShape), Owned(fused.Bias!, [8]), strides: [2, 2], padding: [1, 1], groups: 2);
        if (relu)
        {
            y = y.relu();
        }

        float[] expected = FakeQuantizeActivation(y.data<float>().ToArray(), QUInt8Output);
        Tensor actual = layer.forward(x);
        Assert.Equal(y.shape, actual.shape);
        Assert.Equal(expected, actual.data<float>().ToArray());
        Assert.Same(QUInt8Output, layer.OutputQParams);
        Assert.Equal(relu ? "QuantizedConvReLU2d(Reference)" : "QuantizedConv2d(Reference)", layer.ToString());
    }

    [Theory]
    [InlineData(QuantBackend.X86)]
    [InlineData(QuantBackend.Qnnpack)]
    public void Conv2dReferenceHoldsTheIntegersConvertPacks(QuantBackend backend)
    {
        torch.manual_seed(22);
        var conv = nn.Conv2d(3, 5, 3);
        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", conv, null, relu: false);
        ObserverSpec spec = QConfig.For(backend).Weight;
        using var layer = (ReferenceConv2d)fused.ToReference(QUInt8Output, spec);
        QuantizedConv2d int8 = fused.Convert(QUInt8Input, QUInt8Output, spec, backend);
        Assert.Equal(int8.Weight.IntRepr(), layer.Weight.IntRepr());
        Assert.Equal(int8.Weight.QParams.Scales, layer.Weight.QParams.Scales);
        Assert.Equal(conv.bias!.data<float>().ToArray(), layer.Bias);
    }

    [Theory]
    [MemberData(nameof(WeightSpecs))]
    public void LinearEqualsFloatLinearOnQdqWeights(string spec, bool relu)
    {
        torch.manual_seed(23);
        var linear = nn.Linear(10, 7);
        var bn = nn.BatchNorm1d(7);
        using (torch.no_grad())
        {
            bn.running_mean!.uniform_(-0.5, 0.5);
            bn.running_var!.uniform_(0.5, 2);
        }

        using FusedLinear fused = FusedLinear.Create("M", "fc", linear, bn, relu);
        using ReferenceLayer layer = fused.ToReference(QInt8Output, Spec(spec, 0));
        using var scope = torch.NewDisposeScope();
        Tensor x = QdqInput(2, [5, 10], QUInt8Input);

        float[] weight = ExpectedWeights(spec, fused.Weight, [7, 10], axis: 0);
        Tensor y = nn.functional.linear(x, Owned(weight, [7, 10]), Owned(fused.Bias!, [7]));
        if (relu)
        {
            y = y.relu();
        }

        float[] expected = FakeQuantizeActivation(y.data<float>().ToArray(), QInt8Output);
        Assert.Equal(expected, layer.forward(x).data<float>().ToArray());
        Assert.Equal(relu ? "QuantizedLinearReLU(Reference)" : "QuantizedLinear(Reference)", layer.ToString());
    }

    public static TheoryData<string, bool, int> ConvTransposeCases()
    {
        var cases = new TheoryData<string, bool, int>();
        foreach (object[] row in WeightSpecs())
        {
            cases.Add((string)row[0], (bool)row[1], 1);
        }

        // Grouped: axis 1 holds OutC/groups entries, each observed over every group's input channels.
        cases.Add("per-channel-symmetric", true, 2);
        cases.Add("per-tensor-symmetric", false, 2);
        return cases;
    }

    [Theory]
    [MemberData(nameof(ConvTransposeCases))]
    public void ConvTranspose2dEqualsFloatConvTransposeOnQdqWeights(string spec, bool relu, int groups)
    {
        torch.manual_seed(24);
        var deconv = nn.ConvTranspose2d(6, 4, 4, stride: 2, padding: 1, output_padding: 1, groups: groups);
        var bn = nn.BatchNorm2d(4);
        using (torch.no_grad())
        {
            bn.running_mean!.uniform_(-0.5, 0.5);
            bn.running_var!.uniform_(0.5, 2);
            bn.weight!.uniform_(-1.5, 1.5);
        }

        using FusedConvTranspose2d fused = FusedConvTranspose2d.Create("M", "up", deconv, bn, relu);
        using ReferenceLayer layer = fused.ToReference(QInt8Output, Spec(spec, 1));
        using var scope = torch.NewDisposeScope();
        Tensor x = QdqInput(3, [2, 6, 5, 4], QParams.PerTensor(0.02f, 0, QuantDType.QInt8));

        // Per channel along axis 1 of [InC, OutC, KH, KW]: one scale per output channel.
        float[] weight = ExpectedWeights(spec, fused.Weight, fused.WeightShape, axis: 1);
        Tensor y = nn.functional.conv_transpose2d(x, Owned(weight, fused.WeightShape), Owned(fused.Bias!, [4]), strides: [2, 2], padding: [1, 1], output_padding: [1, 1], groups: groups);
        if (relu)
        {
            y = y.relu();
        }

        float[] expected = FakeQuantizeActivation(y.data<float>().ToArray(), QInt8Output);
        Tensor actual = layer.forward(x);
        Assert.Equal([2L, 4L, 11L, 9L], actual.shape);
        Assert.Equal(expected, actual.data<float>().ToArray());

        var typed = (ReferenceConvTranspose2d)layer;
        Assert.Equal(spec.StartsWith("per-channel", StringComparison.Ordinal) ? 1 : -1, typed.Weight.QParams.Axis);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BatchNorm2dEqualsFloatBatchNormThenQdq(bool relu)
    {
        torch.manual_seed(25);
        var bn = nn.BatchNorm2d(5);
        using (torch.no_grad())
        {
            bn.running_mean!.uniform_(-0.5, 0.5);
            bn.running_var!.uniform_(0.5, 2);
            bn.weight!.uniform_(-1.5, 1.5);
            bn.bias!.uniform_(-0.5, 0.5);
        }

        bn.eval();
        ReferenceLayer layer;
        using (FusedBatchNorm2d fused = FusedBatchNorm2d.Create("M", "bn", bn, relu))
        {
            layer = fused.ToReference(QUInt8Output);
        }

        // The reference layer owns its statistics: it still runs after the float layer is disposed.
        using (layer)
        {
            using var scope = torch.NewDisposeScope();
            Tensor x = QdqInput(4, [2, 5, 3, 4], QUInt8Input);
            Tensor y = bn.forward(x);
            if (relu)
            {
                y = y.relu();
            }

            float[] expected = FakeQuantizeActivation(y.data<float>().ToArray(), QUInt8Output);
            Assert.Equal(expected, layer.forward(x).data<float>().ToArray());
            Assert.Equal(relu ? "QuantizedBNReLU2d(Reference)" : "QuantizedBatchNorm2d(Reference)", layer.ToString());
        }
    }

    [Fact]
    public void PerChannelOutputQParamsAreRejectedNamingTheLayer()
    {
        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", nn.Conv2d(1, 2, 1), null, relu: false);
        QParams perChannel = QParams.PerChannel([0.1f, 0.2f], [0, 0], 1, QuantDType.QUInt8);
        var error = Assert.Throws<ArgumentException>(() => fused.ToReference(perChannel, QConfig.X86.Weight));
        Assert.Contains("M.conv1: output qparams must be per tensor", error.Message);
    }

    [Fact]
    public void WrongInputsAreRejectedNamingTheLayer()
    {
        using FusedConv2d fused = FusedConv2d.Create("M", "conv1", nn.Conv2d(3, 2, 3), null, relu: false);
        using ReferenceLayer layer = fused.ToReference(QUInt8Output, QConfig.X86.Weight);
        using var scope = torch.NewDisposeScope();
        var error = Assert.Throws<ArgumentException>(() => layer.forward(torch.zeros(1, 2, 5, 5)));
        Assert.Contains("M.conv1: expected input [N, 3, H, W]", error.Message);
    }
}
