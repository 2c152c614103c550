using System;
using QuantGen.Observers;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Observers;

/// <summary>
/// The observers' qparams fed to libtorch's own quantize (<c>quantize_per_tensor</c> / <c>quantize_per_channel</c>)
/// give the same integers as the numerics contract's formula: the qparams are usable as PyTorch's and the
/// formula matches libtorch. Random data, so no value sits exactly on a rounding tie.
/// </summary>
public class TorchQuantizeAgreementTests
{
    public static TheoryData<ObserverKind, QuantDType, QScheme, bool> PerTensorCases => new()
    {
        { ObserverKind.MinMax, QuantDType.QUInt8, QScheme.PerTensorAffine, false },
        { ObserverKind.MinMax, QuantDType.QInt8, QScheme.PerTensorSymmetric, false },
        { ObserverKind.MinMax, QuantDType.QUInt8, QScheme.PerTensorAffine, true },
        { ObserverKind.MovingAverageMinMax, QuantDType.QUInt8, QScheme.PerTensorAffine, false },
        { ObserverKind.Histogram, QuantDType.QUInt8, QScheme.PerTensorAffine, true },
        { ObserverKind.Histogram, QuantDType.QInt8, QScheme.PerTensorSymmetric, false },
    };

    [Theory]
    [MemberData(nameof(PerTensorCases))]
    public void PerTensorQParamsQuantizeLikeLibtorch(ObserverKind kind, QuantDType dtype, QScheme scheme, bool reduceRange)
    {
        float[] first = ObserverTestData.Normal(seed: 71, count: 3_000, mean: 0.4f, std: 1.5f);
        float[] second = ObserverTestData.Normal(seed: 72, count: 3_000, mean: -0.2f, std: 2f);
        Observer observer = new ObserverSpec(kind, dtype, scheme, reduceRange).Create("M.quant");
        observer.ObserveFlat(first);
        observer.ObserveFlat(second);
        QParams q = observer.CalculateQParams();

        using var input = tensor(second);
        using var quantized = quantize_per_tensor(input, q.Scale, q.ZeroPoint, dtype == QuantDType.QUInt8 ? ScalarType.QUInt8 : ScalarType.QInt8);
        using var integers = quantized.int_repr().to(ScalarType.Int32);
        int[] libtorch = integers.data<int>().ToArray();

        for (int i = 0; i < second.Length; i++)
        {
            Assert.Equal(ObserverTestData.Quantize(second[i], q.Scale, q.ZeroPoint, dtype), libtorch[i]);
        }
    }

    [Theory]
    [InlineData(QuantDType.QInt8, QScheme.PerChannelSymmetric, 0)]
    [InlineData(QuantDType.QInt8, QScheme.PerChannelSymmetric, 1)]
    [InlineData(QuantDType.QUInt8, QScheme.PerChannelAffine, 0)]
    public void PerChannelQParamsQuantizeLikeLibtorch(QuantDType dtype, QScheme scheme, int axis)
    {
        int[] shape = [4, 3, 3, 3];
        float[] weights = ObserverTestData.Normal(seed: 81, count: 4 * 3 * 3 * 3, std: 0.2f);
        for (int i = 0; i < 27; i++)
        {
            weights[i] *= 10f; // channel 0 (axis 0) gets a much wider range than the others
        }

        Observer observer = ObserverSpec.PerChannelMinMax(dtype, scheme, axis).Create("M.conv1.weight");
        observer.Observe(weights, shape);
        QParams q = observer.CalculateQParams();
        Assert.Equal(shape[axis], q.Scales.Length);

        using var input = tensor(weights).reshape(4, 3, 3, 3);
        using var scales = tensor(q.Scales).to(ScalarType.Float64);
        using var zeroPoints = tensor(q.ZeroPoints).to(ScalarType.Int64);
        using var quantized = quantize_per_channel(input, scales, zeroPoints, axis, dtype == QuantDType.QUInt8 ? ScalarType.QUInt8 : ScalarType.QInt8);
        using var integers = quantized.int_repr().to(ScalarType.Int32).contiguous();
        int[] libtorch = integers.data<int>().ToArray();

        int inner = 1;
        for (int d = axis + 1; d < shape.Length; d++)
        {
            inner *= shape[d];
        }

        for (int i = 0; i < weights.Length; i++)
        {
            int channel = (i / inner) % shape[axis];
            Assert.Equal(ObserverTestData.Quantize(weights[i], q.Scales[channel], q.ZeroPoints[channel], dtype), libtorch[i]);
        }
    }
}
