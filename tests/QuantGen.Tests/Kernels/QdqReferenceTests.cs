using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Kernels.KernelTestMath;

namespace QuantGen.Tests.Kernels;

/// <summary>
/// The int8 path (scalar accumulate + requantize) against its QDQ reference computed by libtorch in
/// float: dequantize the quantized input and weights, <c>conv2d</c>/<c>linear</c> (+bias, +ReLU) in
/// float32, quantize with the output qparams by the contract's formula.
/// </summary>
/// <remarks>
/// Within one step everywhere: the two compute the same real number (sx·sw·acc + bias)/sy and differ
/// only in float32 rounding order (libtorch's summation, the X86 factors bs and M) and, for Qnnpack, in
/// the bias rounded to an integer multiple of sx·sw (at most M/2 of an output step). A result can
/// therefore only flip where the real value lies within that tiny distance of a rounding boundary, so
/// exactly-equal elements should be well above 99% (M is about 1e-3..1e-2 here); the floor asserted is
/// 98% so that a few unlucky boundary elements in a small layer cannot fail the test, while a formula
/// error (a wrong factor, zero point or rounding mode) moves far more than 2% of the outputs.
/// </remarks>
public class QdqReferenceTests
{
    private const double ExactShareFloor = 0.98;
    private readonly ITestOutputHelper _output;

    public QdqReferenceTests(ITestOutputHelper output) => _output = output;

    public static IEnumerable<object[]> ConvCases()
    {
        foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
        {
            foreach (bool relu in new[] { false, true })
            {
                // n, c, h, w, oc, k, stride, pad, dilation, groups
                yield return [backend, relu, new[] { 2, 8, 11, 13, 16, 3, 1, 1, 1, 1 }];
                yield return [backend, relu, new[] { 2, 3, 17, 17, 8, 7, 2, 3, 1, 1 }];
                yield return [backend, relu, new[] { 1, 6, 15, 15, 12, 5, 2, 2, 1, 3 }];
                yield return [backend, relu, new[] { 1, 16, 9, 9, 16, 3, 1, 2, 2, 16 }];
                yield return [backend, relu, new[] { 4, 17, 6, 7, 19, 1, 1, 0, 1, 1 }];
            }
        }
    }

    [Theory]
    [MemberData(nameof(ConvCases))]
    public void Conv2dMatchesQdqWithinOneStep(QuantBackend backend, bool relu, int[] p)
    {
        int n = p[0], c = p[1], h = p[2], w = p[3], oc = p[4], k = p[5], stride = p[6], pad = p[7], dilation = p[8], groups = p[9];
        int icPerGroup = c / groups;
        var random = new Random(p.Aggregate(17, (a, b) => (a * 31) + b) + (relu ? 1 : 0) + (10 * (int)backend));

        int[] inputShape = [n, c, h, w];
        int[] weightShape = [oc, icPerGroup, k, k];
        float[] x = Uniform(random, n * c * h * w, -1f, 2f);
        float bound = 1f / MathF.Sqrt(icPerGroup * k * k);
        float[] weights = Uniform(random, oc * icPerGroup * k * k, -bound, bound);
        float[] bias = Uniform(random, oc, -0.3f, 0.3f);

        (QTensor qx, QTensor qw, float sx, int zx, float[] swPerChannel) = QuantizeOperands(backend, x, inputShape, weights, weightShape);

        // QDQ reference in libtorch (NCHW).
        float[] dx = DequantizeLogical(qx);
        float[] dw = DequantizeLogical(qw);
        float[] yPreRelu, y;
        using (var scope = torch.NewDisposeScope())
        {
            var tx = torch.tensor(dx, inputShape.Select(d => (long)d).ToArray());
            var tw = torch.tensor(dw, weightShape.Select(d => (long)d).ToArray());
            var tb = torch.tensor(bias, [oc]);
            var conv = torch.nn.functional.conv2d(tx, tw, tb, [stride, stride], [pad, pad], [dilation, dilation], groups);
            yPreRelu = conv.data<float>().ToArray();
            y = torch.nn.functional.relu(conv).data<float>().ToArray();
        }

        // Output qparams from the pre-ReLU range even with ReLU, so zy > 0 and the ReLU clamp matters.
        (float sy, int zy) = AffineQParams(yPreRelu.Min(), yPreRelu.Max(), 255);
        if (!relu)
        {
            y = yPreRelu;
        }

        // int8 path.
        var geometry = new Conv2dGeometry(n, c, h, w, oc, k, k, stride, stride, pad, pad, dilation, dilation, groups);
        int oh = geometry.OutHeight, ow = geometry.OutWidth;
        var acc = new int[n * oh * ow * oc];
        Conv2dScalar.Accumulate(geometry, qx.AsUInt8(), zx, qw.AsInt8(), new int[oc], acc);
        var parameters = RequantizeParams.Create(backend, sx, swPerChannel, sy, zy, bias, relu);
        var qy = new byte[acc.Length];
        Requantize.RequantizeInt32ToUInt8(acc, parameters, qy);

        Assert.Equal(n * oc * oh * ow, y.Length);
        int exact = 0;
        for (int b = 0; b < n; b++)
        {
            for (int o = 0; o < oc; o++)
            {
                for (int i = 0; i < oh; i++)
                {
                    for (int j = 0; j < ow; j++)
                    {
                        int reference = ContractQuantize(y[(((b * oc) + o) * oh + i) * ow + j], sy, zy, 0, 255);
                        int ours = qy[(((b * oh) + i) * ow + j) * oc + o];
                        Assert.True(Math.Abs(reference - ours) <= 1, $"[{b}, {o}, {i}, {j}]: QDQ {reference}, int8 {ours}");
                        exact += reference == ours ? 1 : 0;
                    }
                }
            }
        }

        Report($"conv2d {backend} relu={relu} [{string.Join(",", p)}]", exact, y.Length, sx, sy, zy);
    }

    public static IEnumerable<object[]> LinearCases()
    {
        foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
        {
            foreach (bool relu in new[] { false, true })
            {
                // batch, in, out
                yield return [backend, relu, new[] { 64, 37, 19 }];
                yield return [backend, relu, new[] { 16, 256, 100 }];
                yield return [backend, relu, new[] { 1, 1000, 1000 }];
            }
        }
    }

    [Theory]
    [MemberData(nameof(LinearCases))]
    public void LinearMatchesQdqWithinOneStep(QuantBackend backend, bool relu, int[] p)
    {
        int batch = p[0], inFeatures = p[1], outFeatures = p[2];
        var random = new Random(p.Aggregate(5, (a, b) => (a * 31) + b) + (relu ? 1 : 0) + (10 * (int)backend));
        float[] x = Uniform(random, batch * inFeatures, -1.5f, 1f);
        float bound = 1f / MathF.Sqrt(inFeatures);
        float[] weights = Uniform(random, outFeatures * inFeatures, -bound, bound);
        float[] bias = Uniform(random, outFeatures, -bound, bound);

        (QTensor qx, QTensor qw, float sx, int zx, float[] swPerChannel) = QuantizeOperands(backend, x, [batch, inFeatures], weights, [outFeatures, inFeatures]);

        float[] yPreRelu, y;
        using (var scope = torch.NewDisposeScope())
        {
            var tx = torch.tensor(DequantizeLogical(qx), [batch, inFeatures]);
            var tw = torch.tensor(DequantizeLogical(qw), [outFeatures, inFeatures]);
            var linear = torch.nn.functional.linear(tx, tw, torch.tensor(bias, [outFeatures]));
            yPreRelu = linear.data<float>().ToArray();
            y = relu ? torch.nn.functional.relu(linear).data<float>().ToArray() : yPreRelu;
        }

        (float sy, int zy) = AffineQParams(yPreRelu.Min(), yPreRelu.Max(), 255);

        var acc = new int[batch * outFeatures];
        LinearScalar.Accumulate(batch, inFeatures, outFeatures, qx.AsUInt8(), zx, qw.AsInt8(), new int[outFeatures], acc);
        var qy = new byte[acc.Length];
        Requantize.RequantizeInt32ToUInt8(acc, RequantizeParams.Create(backend, sx, swPerChannel, sy, zy, bias, relu), qy);

        int exact = 0;
        for (int i = 0; i < y.Length; i++)
        {
            int reference = ContractQuantize(y[i], sy, zy, 0, 255);
            Assert.True(Math.Abs(reference - qy[i]) <= 1, $"[{i / outFeatures}, {i % outFeatures}]: QDQ {reference}, int8 {qy[i]}");
            exact += reference == qy[i] ? 1 : 0;
        }

        Report($"linear {backend} relu={relu} [{string.Join(",", p)}]", exact, y.Length, sx, sy, zy);
    }

    /// <summary>
    /// Quantizes the operands as each preset would: X86 input quint8 with reduce_range (0..127) and
    /// per-channel symmetric weights; Qnnpack input 0..255 and per-tensor symmetric weights. 4-D tensors
    /// are stored channels-last, which for the weights is the kernel's OHWI.
    /// </summary>
    private static (QTensor Input, QTensor Weights, float InputScale, int InputZeroPoint, float[] WeightScalesPerChannel) QuantizeOperands(
        QuantBackend backend, float[] x, int[] inputShape, float[] weights, int[] weightShape)
    {
        (float sx, int zx) = AffineQParams(x.Min(), x.Max(), backend == QuantBackend.X86 ? 127 : 255);
        MemoryFormat format = inputShape.Length == 4 ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;
        QTensor qx = QTensor.Quantize(x, inputShape, QParams.PerTensor(sx, zx, QuantDType.QUInt8), format);

        int outChannels = weightShape[0];
        int perChannel = weights.Length / outChannels;
        float[] sw;
        QParams weightQParams;
        if (backend == QuantBackend.X86)
        {
            sw = Enumerable.Range(0, outChannels)
                .Select(o => SymmetricScale(weights.Skip(o * perChannel).Take(perChannel).Max(MathF.Abs)))
                .ToArray();
            weightQParams = QParams.PerChannel(sw, new int[outChannels], 0, QuantDType.QInt8);
        }
        else
        {
            float scale = SymmetricScale(weights.Max(MathF.Abs));
            sw = Enumerable.Repeat(scale, outChannels).ToArray();
            weightQParams = QParams.PerTensor(scale, 0, QuantDType.QInt8);
        }

        QTensor qw = QTensor.Quantize(weights, weightShape, weightQParams, format);
        return (qx, qw, sx, zx, sw);
    }

    /// <summary>Dequantizes from the integers by the contract's formula (logical order, own channel's scale along axis 0).</summary>
    private static float[] DequantizeLogical(QTensor q)
    {
        int[] ints = q.IntRepr();
        QParams qp = q.QParams;
        int perChannel = ints.Length / q.Shape[0];
        var values = new float[ints.Length];
        for (int i = 0; i < ints.Length; i++)
        {
            int c = qp.IsPerChannel ? i / perChannel : 0;
            values[i] = ContractDequantize(ints[i], qp.Scales[c], qp.ZeroPoints[c]);
        }

        return values;
    }

    private void Report(string what, int exact, int total, float sx, float sy, int zy)
    {
        double share = (double)exact / total;
        _output.WriteLine($"{what}: {exact}/{total} exactly equal ({100 * share:F3}%), sx={sx:R} sy={sy:R} zy={zy}");
        Assert.True(share >= ExactShareFloor, $"{what}: only {100 * share:F2}% exactly equal to the QDQ reference");
    }
}
