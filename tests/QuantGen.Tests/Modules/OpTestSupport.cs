using System;
using System.Linq;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantGen.Tests.Modules;

/// <summary>
/// Shared pieces of the int8 op tests: random quantized tensors, logical NCHW indexing, the trip to
/// and from libtorch's quantized tensors, and the contract's quantize for QDQ references.
/// </summary>
internal static class OpTestSupport
{
    /// <summary>A tensor of uniformly random integers over the whole dtype range, in <paramref name="format"/>.</summary>
    public static QTensor RandomTensor(Random random, int[] shape, QParams qparams, MemoryFormat format = MemoryFormat.ChannelsLast) =>
        RandomTensor(random, shape, qparams, qparams.DType.Min(), qparams.DType.Max(), format);

    /// <summary>A tensor of uniformly random integers in [min, max], in <paramref name="format"/>.</summary>
    public static QTensor RandomTensor(Random random, int[] shape, QParams qparams, int min, int max, MemoryFormat format = MemoryFormat.ChannelsLast)
    {
        int count = shape.Aggregate(1, (a, b) => a * b);
        int[] logical = ContractReference.RandomInts(random, count, min, max);
        return FromLogical(logical, shape, qparams, format);
    }

    /// <summary>A tensor holding <paramref name="logical"/> (row-major NCHW integers) in <paramref name="format"/>.</summary>
    public static QTensor FromLogical(int[] logical, int[] shape, QParams qparams, MemoryFormat format = MemoryFormat.ChannelsLast)
    {
        byte[] storage = format == MemoryFormat.ChannelsLast ? ContractReference.NhwcBytes(logical, shape) : ContractReference.Bytes(logical);
        return new QTensor(shape, qparams, storage, format);
    }

    /// <summary>Row-major offset of [n, c, h, w] in an [N, C, H, W] array.</summary>
    public static int At(int[] shape, int n, int c, int h, int w) => (((((n * shape[1]) + c) * shape[2]) + h) * shape[3]) + w;

    /// <summary>The contract's quantize of every value (docs/numerics.md §2), clamped to the dtype.</summary>
    public static int[] QuantizeAll(float[] values, QParams qparams) =>
        values.Select(v => ContractReference.Quantize(v, qparams.Scale, qparams.ZeroPoint, qparams.DType.Min(), qparams.DType.Max())).ToArray();

    /// <summary>The libtorch dtype of <paramref name="dtype"/>.</summary>
    public static ScalarType TorchDType(QuantDType dtype) => dtype == QuantDType.QUInt8 ? ScalarType.QUInt8 : ScalarType.QInt8;

    /// <summary>
    /// A libtorch quantized tensor with exactly <paramref name="tensor"/>'s integers and qparams,
    /// channels-last (as PyTorch's quantized conv outputs are) or contiguous. Made by quantizing the
    /// exactly dequantized values, which lands on the same integers (checked).
    /// </summary>
    public static Tensor ToTorch(QTensor tensor, bool channelsLast)
    {
        int[] shape = tensor.Shape;
        float[] values = tensor.Dequantize();
        Tensor floats;
        if (channelsLast)
        {
            int n = shape[0], c = shape[1], h = shape[2], w = shape[3];
            var nhwc = new float[values.Length];
            for (int b = 0; b < n; b++)
            {
                for (int ch = 0; ch < c; ch++)
                {
                    for (int y = 0; y < h; y++)
                    {
                        for (int x = 0; x < w; x++)
                        {
                            nhwc[((((b * h) + y) * w) + x) * c + ch] = values[At(shape, b, ch, y, x)];
                        }
                    }
                }
            }

            floats = torch.tensor(nhwc, [n, h, w, c]).permute(0, 3, 1, 2);
        }
        else
        {
            floats = torch.tensor(values, shape.Select(d => (long)d).ToArray());
        }

        Tensor quantized = torch.quantize_per_tensor(floats, tensor.Scale, tensor.ZeroPoint, TorchDType(tensor.DType));
        Assert.Equal(tensor.IntRepr(), Ints(quantized));
        Assert.Equal(channelsLast && shape[1] > 1 && shape[2] * shape[3] > 1, !quantized.is_contiguous());
        return quantized;
    }

    /// <summary>A libtorch quantized tensor's integers in logical row-major order.</summary>
    public static int[] Ints(Tensor quantized)
    {
        using Tensor ints = quantized.int_repr().to(ScalarType.Int32).contiguous();
        return ints.data<int>().ToArray();
    }

    /// <summary>A float tensor's values in logical row-major order.</summary>
    public static float[] Floats(Tensor values)
    {
        using Tensor contiguous = values.contiguous();
        return contiguous.data<float>().ToArray();
    }

    /// <summary>The dequantized values as a float libtorch tensor of the same logical shape.</summary>
    public static Tensor DequantizedTorch(QTensor tensor) =>
        torch.tensor(tensor.Dequantize(), tensor.Shape.Select(d => (long)d).ToArray());

    /// <summary>Counts equal elements and the largest difference; asserts the sizes agree.</summary>
    public static (int Exact, int WorstDifference) Compare(int[] expected, int[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        int exact = 0, worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            int difference = Math.Abs(expected[i] - actual[i]);
            exact += difference == 0 ? 1 : 0;
            worst = Math.Max(worst, difference);
        }

        return (exact, worst);
    }

    /// <summary>The contract's quantize of a float libtorch result (logical order) with <paramref name="qparams"/>.</summary>
    public static int[] QuantizeTorch(Tensor values, QParams qparams) => QuantizeAll(Floats(values), qparams);

    /// <summary>
    /// Asserts every int8 output is within one step of its QDQ reference, reports the share exactly
    /// equal, and (when given) asserts that share reaches <paramref name="exactFloor"/>.
    /// </summary>
    public static void AssertWithinOneStep(ITestOutputHelper output, string what, int[] reference, int[] ours, double exactFloor = 0)
    {
        (int exact, int worst) = Compare(reference, ours);
        double share = ours.Length == 0 ? 1 : (double)exact / ours.Length;
        output.WriteLine($"{what}: {exact}/{ours.Length} exact vs the QDQ reference ({share:P2}), max |diff| {worst}");
        Assert.True(worst <= 1, $"{what}: an output is {worst} steps from the QDQ reference");
        Assert.True(share >= exactFloor, $"{what}: only {share:P2} exact, expected at least {exactFloor:P0}");
    }
}
