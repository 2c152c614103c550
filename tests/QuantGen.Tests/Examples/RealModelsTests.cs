using System.Linq;
using QuantGen.Binding;
using RealModels;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Examples;

/// <summary>
/// examples/RealModels at thin widths and a small input: ResNet-50, MobileNetV2 and VGG-16-BN as TorchSharp users
/// write them quantize with only [Quantize] + partial, and the int8 logits track TorchSharp's float logits.
/// </summary>
[Collection(QuantGen.Tests.Binding.SeededTorchCollection.Name)]
public sealed class RealModelsTests
{
    private const int Size = 64;

    private static double Quantize<TObserved>(nn.Module<Tensor, Tensor> model, System.Func<TObserved> prepare, System.Func<TObserved, IQuantizedModelWithTensorForward> convert, out TObserved observed)
        where TObserved : BoundObservedModel
    {
        Randomize.BatchNormStatistics(model, 1);
        model.eval();
        observed = prepare();
        using var noGrad = torch.no_grad();
        for (int i = 0; i < 3; i++)
        {
            using Tensor batch = torch.randn(2, 3, Size, Size);
            observed.forward(batch).Dispose();
        }

        IQuantizedModelWithTensorForward int8 = convert(observed);
        using Tensor x = torch.randn(4, 3, Size, Size);
        using Tensor expected = model.forward(x);
        using Tensor actual = int8.Forward(x);
        return Comparison.SqnrDb(expected, actual);
    }

    /// <summary>The one thing the three generated Quantized types share for this test: a float forward.</summary>
    public interface IQuantizedModelWithTensorForward
    {
        Tensor Forward(Tensor x);
    }

    private sealed class Int8(System.Func<Tensor, Tensor> forward) : IQuantizedModelWithTensorForward
    {
        public Tensor Forward(Tensor x) => forward(x);
    }

    [Fact]
    public void ResNet50_binds_every_op_to_int8_with_its_bottlenecks_inlined()
    {
        torch.manual_seed(0);
        using var model = new ResNet50(numClasses: 10, baseWidth: 16);
        double sqnr = Quantize(model, () => model.Prepare(), o => new Int8(o.Convert().forward), out ResNet50.Observed observed);
        using (observed)
        {
            Assert.Empty(observed.FloatOps);
            Assert.Equal(16, observed.Graph.Ops.Count(o => o.Kind == BoundKind.Add && o.FusedRelu is not null));
            Assert.Equal(53, observed.Graph.Ops.Count(o => o.Kind == BoundKind.Conv2d && o.FusedBatchNorm is not null));
            Assert.True(sqnr >= 25, $"ResNet-50 int8 vs float SQNR {sqnr:F1} dB");
        }
    }

    [Fact]
    public void MobileNetV2_runs_every_op_in_int8_ReLU6_as_an_integer_clamp()
    {
        torch.manual_seed(0);
        using var model = new MobileNetV2(numClasses: 10, widthMult: 0.35);
        double sqnr = Quantize(model, () => model.Prepare(), o => new Int8(o.Convert().forward), out MobileNetV2.Observed observed);
        using (observed)
        {
            // ReLU6 after every expand and depthwise conv and after the last 1x1: 1 + 1 + 16 x 2 + 1.
            Assert.Empty(observed.FloatOps);
            Assert.Equal(35, observed.Graph.Ops.Count(o => o.Kind == BoundKind.Hardtanh && o.TypeName == "ReLU6"));
            Assert.Contains(observed.Graph.Ops, o => o.Kind == BoundKind.AdaptiveAvgPool2d && o.Module is null);
            Assert.Contains(observed.Graph.Ops, o => o.Kind == BoundKind.Conv2d && ((TorchSharp.Modules.Conv2d)o.Module!).groups > 1);
            Assert.True(sqnr >= 25, $"MobileNetV2 int8 vs float SQNR {sqnr:F1} dB");
        }
    }

    [Fact]
    public void Vgg16Bn_built_with_append_from_a_config_list_is_all_int8()
    {
        torch.manual_seed(0);
        using var model = new Vgg16Bn(numClasses: 10, widthDivisor: 16);
        double sqnr = Quantize(model, () => model.Prepare(), o => new Int8(o.Convert().forward), out Vgg16Bn.Observed observed);
        using (observed)
        {
            Assert.Empty(observed.FloatOps);
            Assert.Equal(13, observed.Graph.Ops.Count(o => o.Kind == BoundKind.Conv2d && o.FusedBatchNorm is not null && o.FusedRelu is not null));
            Assert.True(sqnr >= 25, $"VGG-16-BN int8 vs float SQNR {sqnr:F1} dB");
        }
    }
}
