using System;
using System.Linq;
using static QuantGen.Tests.Kernels.KernelTestMath;

namespace QuantGen.Tests.Tensors;

public class QTensorTests
{
    private static readonly int[] Nchw = [2, 3, 4, 5];

    private static float[] RandomValues(int count, int seed) => Uniform(new Random(seed), count, -1f, 2f);

    [Fact]
    public void QuantizeFollowsTheFormulaInLogicalOrderForBothFormats()
    {
        float[] values = RandomValues(120, 1);
        var qp = QParams.PerTensor(0.0123f, 81, QuantDType.QUInt8);
        foreach (MemoryFormat format in new[] { MemoryFormat.Contiguous, MemoryFormat.ChannelsLast })
        {
            QTensor q = QTensor.Quantize(values, Nchw, qp, format);
            Assert.Equal(format, q.Format);
            Assert.Equal(values.Select(v => ContractQuantize(v, 0.0123f, 81, 0, 255)).ToArray(), q.IntRepr());
        }
    }

    [Fact]
    public void ChannelsLastStorageIsNhwc()
    {
        float[] values = RandomValues(120, 2);
        var qp = QParams.PerTensor(0.02f, 10, QuantDType.QUInt8);
        QTensor contiguous = QTensor.Quantize(values, Nchw, qp);
        QTensor channelsLast = QTensor.Quantize(values, Nchw, qp, MemoryFormat.ChannelsLast);

        // Written-out NCHW -> NHWC permutation.
        int n = 2, c = 3, h = 4, w = 5;
        var expected = new byte[120];
        for (int b = 0; b < n; b++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                for (int y = 0; y < h; y++)
                {
                    for (int x = 0; x < w; x++)
                    {
                        expected[(((b * h) + y) * w + x) * c + ch] = contiguous.Storage[(((b * c) + ch) * h + y) * w + x];
                    }
                }
            }
        }

        Assert.Equal(expected, channelsLast.Storage);
        Assert.Equal(expected, contiguous.WithFormat(MemoryFormat.ChannelsLast).Storage);
        Assert.Equal(contiguous.Storage, channelsLast.WithFormat(MemoryFormat.Contiguous).Storage);
        Assert.Same(channelsLast, channelsLast.WithFormat(MemoryFormat.ChannelsLast));
        Assert.Equal(contiguous.Dequantize(), channelsLast.Dequantize());
    }

    [Fact]
    public void IntAtReadsTheLogicalIndexInEitherFormat()
    {
        // Storage written by hand in NHWC for logical [1, 2, 2, 2]: value = 10*c + 2*h + w (+1 to stay off 0).
        // NHWC order walks (h, w, c): (0,0,0) (0,0,1) (0,1,0) (0,1,1) ...
        byte[] nhwc = [1, 11, 2, 12, 3, 13, 4, 14];
        var qp = QParams.PerTensor(1f, 0, QuantDType.QUInt8);
        var q = new QTensor([1, 2, 2, 2], qp, nhwc, MemoryFormat.ChannelsLast);
        Assert.Equal(1, q.IntAt(0, 0, 0, 0));
        Assert.Equal(2, q.IntAt(0, 0, 0, 1));
        Assert.Equal(3, q.IntAt(0, 0, 1, 0));
        Assert.Equal(11, q.IntAt(0, 1, 0, 0));
        Assert.Equal(14, q.IntAt(0, 1, 1, 1));
        Assert.Equal(new[] { 1, 2, 3, 4, 11, 12, 13, 14 }, q.IntRepr());

        QTensor contiguous = q.WithFormat(MemoryFormat.Contiguous);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 11, 12, 13, 14 }, contiguous.Storage);
        Assert.Equal(13, contiguous.IntAt(0, 1, 1, 0));
    }

    [Fact]
    public void QInt8StorageIsTwosComplement()
    {
        var q = new QTensor([4], QParams.PerTensor(0.5f, -1, QuantDType.QInt8), [0xFF, 0x80, 0x7F, 0x00]);
        Assert.Equal(new[] { -1, -128, 127, 0 }, q.IntRepr());
        Assert.Equal(new[] { 0f, -63.5f, 64f, 0.5f }, q.Dequantize());
        Assert.Equal(new sbyte[] { -1, -128, 127, 0 }, q.AsInt8().ToArray());
        Assert.Throws<InvalidOperationException>(() => q.AsUInt8());
    }

    [Fact]
    public void PerChannelDequantizeUsesEachChannelsScaleAndZeroPoint()
    {
        // Logical [2, 3], axis 1: column c uses scales[c], zps[c].
        var qp = QParams.PerChannel([0.1f, 0.2f, 0.5f], [0, 1, -2], 1, QuantDType.QInt8);
        var q = new QTensor([2, 3], qp, [10, 11, 0, 0xFE, 1, 2]);   // ints 10, 11, 0, -2, 1, 2
        float[] expected =
        [
            (10 - 0) * 0.1f, (11 - 1) * 0.2f, (0 - (-2)) * 0.5f,
            (-2 - 0) * 0.1f, (1 - 1) * 0.2f, (2 - (-2)) * 0.5f,
        ];
        Assert.Equal(expected, q.Dequantize());
    }

    [Fact]
    public void PerChannelOnAxisOneOfAChannelsLastTensor()
    {
        float[] values = RandomValues(120, 3);
        float[] scales = [0.01f, 0.02f, 0.03f];
        int[] zeroPoints = [5, 100, 250];
        var qp = QParams.PerChannel(scales, zeroPoints, 1, QuantDType.QUInt8);
        QTensor q = QTensor.Quantize(values, Nchw, qp, MemoryFormat.ChannelsLast);
        int[] ints = q.IntRepr();
        float[] dequantized = q.Dequantize();
        for (int i = 0; i < values.Length; i++)
        {
            int c = (i / 20) % 3;
            Assert.Equal(ContractQuantize(values[i], scales[c], zeroPoints[c], 0, 255), ints[i]);
            Assert.Equal(ContractDequantize(ints[i], scales[c], zeroPoints[c]), dequantized[i]);
        }

        // Storage is NHWC, so consecutive bytes cycle through the channels' zero points in a zero-filled tensor.
        var zeros = new QTensor(Nchw, qp, MemoryFormat.ChannelsLast);
        Assert.Equal(new byte[] { 5, 100, 250, 5, 100, 250 }, zeros.Storage.Take(6).ToArray());
        Assert.All(zeros.Dequantize(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void ShapeIsACopyAndDimReadsIt()
    {
        var q = new QTensor(Nchw, QParams.PerTensor(1f, 3, QuantDType.QUInt8));
        int[] shape = q.Shape;
        shape[0] = 99;
        Assert.Equal(Nchw, q.Shape);
        Assert.Equal(4, q.Rank);
        Assert.Equal(3, q.Dim(1));
        Assert.Equal(5, q.Dim(-1));
        Assert.Equal(120, q.Count);
        Assert.All(q.IntRepr(), v => Assert.Equal(3, v));
        Assert.Throws<ArgumentOutOfRangeException>(() => q.Dim(4));
    }

    [Fact]
    public void ToStringMatchesPyTorchForSeed000sOutput()
    {
        // Seed 000: model_int8.conv1(qx) printed by PyTorch (ints 89/102, scale 0.006616627331823111).
        var q = new QTensor([1, 1, 2, 3], QParams.PerTensor(0.006616627331823111f, 0, QuantDType.QUInt8), [89, 102, 102, 102, 89, 89]);
        const string expected =
            "tensor([[[[0.5889, 0.6749, 0.6749],\n" +
            "          [0.6749, 0.5889, 0.5889]]]], size=(1, 1, 2, 3), dtype=torch.quint8,\n" +
            "       quantization_scheme=torch.per_tensor_affine, scale=0.006616627331823111,\n" +
            "       zero_point=0)";
        Assert.Equal(expected, q.ToString());
        Assert.Equal(
            "tensor([[[[ 89, 102, 102],\n" +
            "          [102,  89,  89]]]], dtype=torch.uint8)",
            q.IntReprToString());
    }

    [Fact]
    public void ToStringMatchesPyTorchForAPerChannelWeight()
    {
        // Seed 000: the quantized conv1 weight, int 127, scale 0.3064 / 127.5 printed as 0.0024.
        var q = new QTensor([1, 1, 1, 1], QParams.PerChannel([0.3064f / 127.5f], [0], 0, QuantDType.QInt8), [127]);
        const string expected =
            "tensor([[[[0.3052]]]], size=(1, 1, 1, 1), dtype=torch.qint8,\n" +
            "       quantization_scheme=torch.per_channel_affine,\n" +
            "       scale=tensor([0.0024], dtype=torch.float64), zero_point=tensor([0]),\n" +
            "       axis=0)";
        Assert.Equal(expected, q.ToString());
        Assert.Equal("tensor([[[[127]]]], dtype=torch.int8)", q.IntReprToString());
    }

    [Fact]
    public void IntReprToStringOfSeed000sInput()
    {
        var q = new QTensor([1, 1, 2, 3], QParams.PerTensor(0.0011f, 0, QuantDType.QUInt8), [0, 255, 255, 255, 0, 0]);
        Assert.Equal(
            "tensor([[[[  0, 255, 255],\n" +
            "          [255,   0,   0]]]], dtype=torch.uint8)",
            q.IntReprToString());
    }

    [Fact]
    public void ToStringSummarizesLargeTensorsAndWrapsLongRows()
    {
        var big = new QTensor([2, 3, 40, 40], QParams.PerTensor(0.5f, 0, QuantDType.QUInt8), Enumerable.Range(0, 9600).Select(i => (byte)(i % 7)).ToArray());
        string text = big.IntReprToString();
        Assert.Contains("...", text);
        Assert.StartsWith("tensor([[[[0, 1, 2,  ..., 2, 3, 4],", text);
        Assert.EndsWith("dtype=torch.uint8)", text);

        var row = new QTensor([40], QParams.PerTensor(0.01f, 0, QuantDType.QUInt8), Enumerable.Range(0, 40).Select(i => (byte)(100 + i)).ToArray());
        string[] lines = row.ToString().Split('\n');
        Assert.True(lines.Length > 3);
        Assert.All(lines, line => Assert.True(line.Length <= 80, $"line longer than 80: {line}"));
        Assert.StartsWith("tensor([1.0000, 1.0100, 1.0200,", lines[0]);
        Assert.StartsWith("        1.", lines[1]);
    }

    [Fact]
    public void ToStringUsesIntegerAndScientificModesLikePyTorch()
    {
        // Integer-valued values print as "1." etc.; a smallest magnitude under 1e-4 switches to scientific.
        var ints = new QTensor([3], QParams.PerTensor(1f, 0, QuantDType.QUInt8), [0, 1, 20]);
        Assert.StartsWith("tensor([ 0.,  1., 20.], size=(3,)", ints.ToString());

        var tiny = new QTensor([2], QParams.PerTensor(0.00001f, 0, QuantDType.QUInt8), [1, 255]);
        Assert.StartsWith("tensor([1.0000e-05, 2.5500e-03], size=(2,)", tiny.ToString());
    }

    [Fact]
    public void RejectsBadArguments()
    {
        var qp = QParams.PerTensor(0.1f, 0, QuantDType.QUInt8);

        var ex = Assert.Throws<ArgumentException>(() => new QTensor([2, 3], qp, new byte[5]));
        Assert.Contains("6 elements", ex.Message);
        Assert.Contains("5 bytes", ex.Message);

        ex = Assert.Throws<ArgumentException>(() => new QTensor([2, 3, 4], qp, MemoryFormat.ChannelsLast));
        Assert.Contains("ChannelsLast", ex.Message);
        Assert.Contains("rank 3", ex.Message);

        ex = Assert.Throws<ArgumentException>(() => new QTensor([2, 3], QParams.PerChannel([1f, 1f], [0, 0], 2, QuantDType.QInt8)));
        Assert.Contains("axis 2", ex.Message);

        ex = Assert.Throws<ArgumentException>(() => new QTensor([2, 3], QParams.PerChannel([1f, 1f], [0, 0], 1, QuantDType.QInt8)));
        Assert.Contains("2 per-channel scales", ex.Message);
        Assert.Contains("3 channels", ex.Message);

        Assert.Throws<ArgumentException>(() => new QTensor([2, -1], qp));
        Assert.Throws<ArgumentException>(() => new QTensor([2], QParams.PerTensor(0.1f, 0, (QuantDType)9)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new QTensor([2], QParams.PerTensor(0.1f, -1, QuantDType.QUInt8)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new QTensor([2], QParams.PerTensor(0f, 0, QuantDType.QUInt8)));
        Assert.Throws<ArgumentNullException>(() => new QTensor(null!, qp));

        ex = Assert.Throws<ArgumentException>(() => QTensor.Quantize(new float[5], [2, 3], qp));
        Assert.Contains("5 values", ex.Message);

        var q = new QTensor([2, 3], qp);
        Assert.Throws<ArgumentException>(() => q.IntAt(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => q.IntAt(2, 0));
        Assert.Throws<ArgumentException>(() => q.WithFormat(MemoryFormat.ChannelsLast));
        Assert.Throws<InvalidOperationException>(() => q.AsInt8());
        Assert.Throws<ArgumentException>(() => q.Dequantize(new float[5]));
    }
}
