using System;
using System.Linq;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Modules;

/// <summary>
/// The int8 ops squeeze-excitation and scaled residuals need — mul of two tensors with broadcasting, mul/add by a
/// constant, mean over dims — exact against their scalar references and hand-derived aten values, and within one
/// step of the QDQ float reference (dequantize, the float op in TorchSharp, quantize).
/// </summary>
public sealed class QuantizedMulMeanConstantTests
{
    private static QTensor Random(int[] shape, QParams qparams, MemoryFormat format, int seed)
    {
        var random = new Random(seed);
        int count = shape.Aggregate(1, (a, b) => a * b);
        float[] values = Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 6 - 2.5)).ToArray();
        return QTensor.Quantize(values, shape, qparams, format);
    }

    /// <summary>The logical integers in the unsigned view (qint8 moved up by 128).</summary>
    private static byte[] LogicalView(QTensor tensor) =>
        tensor.IntRepr().Select(q => (byte)(q + UInt8View.Offset(tensor.DType))).ToArray();

    private static float[] Float(Tensor tensor) => tensor.contiguous().data<float>().ToArray();

    public static TheoryData<int[], int[], QuantDType, MemoryFormat> MulShapes => new()
    {
        { [2, 16, 1, 1], [2, 16, 5, 7], QuantDType.QUInt8, MemoryFormat.ChannelsLast },
        { [2, 19, 6, 3], [2, 19, 1, 1], QuantDType.QUInt8, MemoryFormat.ChannelsLast },
        { [1, 5, 4, 4], [1, 5, 4, 4], QuantDType.QInt8, MemoryFormat.ChannelsLast },
        { [3, 7], [7], QuantDType.QUInt8, MemoryFormat.Contiguous },
        { [3, 1, 5], [1, 4, 5], QuantDType.QInt8, MemoryFormat.Contiguous },
        { [2, 3, 1, 4], [3, 5, 1], QuantDType.QUInt8, MemoryFormat.Contiguous },
        { [1, 33, 2, 2], [1, 33, 2, 2], QuantDType.QUInt8, MemoryFormat.Contiguous },
    };

    [Theory]
    [MemberData(nameof(MulShapes))]
    public void Mul_with_broadcasting_is_exact_against_the_scalar_reference_and_within_one_step_of_QDQ(int[] shapeA, int[] shapeB, QuantDType dtype, MemoryFormat format)
    {
        int zero = dtype == QuantDType.QInt8 ? -3 : 70;
        QParams qa = QParams.PerTensor(0.031f, zero, dtype), qb = QParams.PerTensor(0.017f, zero + 9, dtype), qy = QParams.PerTensor(0.0105f, zero - 20, dtype);
        QTensor a = Random(shapeA, qa, shapeA.Length == 4 ? format : MemoryFormat.Contiguous, 1);
        QTensor b = Random(shapeB, qb, shapeB.Length == 4 ? format : MemoryFormat.Contiguous, 2);
        QTensor y = new QuantizedMul("M", "se.mul", qy).Forward(a, b);

        int[] shape = MulScalar.BroadcastShape(shapeA, shapeB)!;
        Assert.Equal(shape, y.Shape);
        int offset = UInt8View.Offset(dtype);
        var expected = new byte[y.Count];
        MulScalar.Apply(LogicalView(a), shapeA, qa.Scale, qa.ZeroPoint + offset, LogicalView(b), shapeB, qb.Scale, qb.ZeroPoint + offset, expected, qy.Scale, qy.ZeroPoint + offset);
        Assert.Equal(expected.Select(v => v - offset).ToArray(), y.IntRepr());

        // QDQ reference: dequantize both, multiply in TorchSharp (its broadcasting), quantize with the output's qparams.
        using var scope = torch.NewDisposeScope();
        Tensor product = torch.tensor(a.Dequantize(), shapeA.Select(d => (long)d).ToArray()) * torch.tensor(b.Dequantize(), shapeB.Select(d => (long)d).ToArray());
        int[] qdq = QTensor.Quantize(Float(product), shape, qy).IntRepr();
        Assert.All(qdq.Zip(y.IntRepr()), p => Assert.InRange(Math.Abs(p.First - p.Second), 0, 1));
    }

    [Fact]
    public void Mul_matches_aten_on_values_worked_by_hand()
    {
        // m = 0.5 * 0.25 * (1 / 0.125) = 1; (q - z) products: (12-10)(7-5) = 4 -> 4 + 3 = 7; (9-10)(9-5) = -4 -> -1 -> clamps to 0.
        // A tie: sa = 0.5, sb = 0.5, sy = 0.5 gives m = 0.5; (11-10)(6-5) = 1 -> 0.5 -> 0 (half to even) + 3 = 3; (13-10)(6-5) = 3 -> 1.5 -> 2 + 3 = 5.
        QParams qy = QParams.PerTensor(0.125f, 3, QuantDType.QUInt8);
        var layer = new QuantizedMul("M", "mul", qy);
        QTensor a = new([1, 2], QParams.PerTensor(0.5f, 10, QuantDType.QUInt8), [12, 9]);
        QTensor b = new([1, 2], QParams.PerTensor(0.25f, 5, QuantDType.QUInt8), [7, 9]);
        Assert.Equal([7, 0], layer.Forward(a, b).IntRepr());

        var tie = new QuantizedMul("M", "mul", QParams.PerTensor(0.5f, 3, QuantDType.QUInt8));
        QTensor c = new([2], QParams.PerTensor(0.5f, 10, QuantDType.QUInt8), [11, 13]);
        QTensor d = new([1], QParams.PerTensor(0.5f, 5, QuantDType.QUInt8), [6]);
        Assert.Equal([3, 5], tie.Forward(c, d).IntRepr());
    }

    [Theory]
    [InlineData(256)]
    [InlineData(128)]
    public void The_vectorised_mul_is_bit_identical_to_the_scalar_loop(int vectorBits)
    {
        var random = new Random(vectorBits);
        foreach (int length in new[] { 1, 3, 4, 7, 8, 9, 31, 64, 333 })
        {
            byte[] a = new byte[length], b = new byte[length];
            random.NextBytes(a);
            random.NextBytes(b);
            byte[] one = [b[0]];
            foreach (byte[] other in new[] { b, one })
            {
                var vector = new byte[length];
                var scalar = new byte[length];
                MulKernel.Apply(a, 0.043f, 131, other, 0.021f, 90, vector, 0.013f, 77, vectorBits);
                MulKernel.Apply(a, 0.043f, 131, other, 0.021f, 90, scalar, 0.013f, 77, vectorBits: 0);
                Assert.Equal(scalar, vector);
            }
        }
    }

    [Fact]
    public void Shapes_that_do_not_broadcast_are_refused_naming_model_layer_and_both_shapes()
    {
        QParams q = QParams.PerTensor(0.1f, 0, QuantDType.QUInt8);
        var layer = new QuantizedMul("SeNet", "se.mul", q);
        var error = Assert.Throws<ArgumentException>(() => layer.Forward(new QTensor([1, 16, 1, 1], q), new QTensor([1, 8, 4, 4], q)));
        Assert.Contains("SeNet.se.mul", error.Message, StringComparison.Ordinal);
        Assert.Contains("[1, 16, 1, 1]", error.Message, StringComparison.Ordinal);
        Assert.Contains("[1, 8, 4, 4]", error.Message, StringComparison.Ordinal);
    }

    public static TheoryData<int[], int[], bool, QuantDType, MemoryFormat> MeanCases => new()
    {
        { [2, 16, 5, 7], [2, 3], true, QuantDType.QUInt8, MemoryFormat.ChannelsLast },
        { [2, 19, 6, 3], [-1, -2], false, QuantDType.QInt8, MemoryFormat.ChannelsLast },
        { [2, 5, 4, 4], [2, 3], true, QuantDType.QUInt8, MemoryFormat.Contiguous },
        { [2, 5, 4, 4], [1], true, QuantDType.QUInt8, MemoryFormat.ChannelsLast },
        { [3, 7, 5], [0, 2], false, QuantDType.QInt8, MemoryFormat.Contiguous },
    };

    [Theory]
    [MemberData(nameof(MeanCases))]
    public void Mean_is_exact_against_the_scalar_reference_and_within_one_step_of_QDQ(int[] shape, int[] dims, bool keepDim, QuantDType dtype, MemoryFormat format)
    {
        QParams q = QParams.PerTensor(0.027f, dtype == QuantDType.QInt8 ? 4 : 100, dtype);
        QTensor x = Random(shape, q, format, 7);
        QTensor y = new QuantizedMean("M", "se.mean", dims, keepDim).Forward(x);

        Assert.Equal(q.Scale, y.Scale);
        Assert.Equal(q.ZeroPoint, y.ZeroPoint);
        int offset = UInt8View.Offset(dtype);
        var expected = new byte[y.Count];
        MeanScalar.Apply(LogicalView(x), shape, dims, offset, expected);
        Assert.Equal(expected.Select(v => v - offset).ToArray(), y.IntRepr());

        using var scope = torch.NewDisposeScope();
        Tensor mean = torch.tensor(x.Dequantize(), shape.Select(d => (long)d).ToArray()).mean(dims.Select(d => (long)d).ToArray(), keepDim);
        Assert.Equal(mean.shape.Select(d => (int)d).ToArray(), y.Shape);
        int[] qdq = QTensor.Quantize(Float(mean), y.Shape, q).IntRepr();
        Assert.All(qdq.Zip(y.IntRepr()), p => Assert.InRange(Math.Abs(p.First - p.Second), 0, 1));
    }

    [Fact]
    public void Mean_rounds_the_float_mean_of_the_integers_half_to_even_as_aten()
    {
        // Means 1.5 -> 2, 2.5 -> 2, 3.25 -> 3 (quint8); qint8 -1.5 -> -2 on the stored (signed) integers.
        QParams u = QParams.PerTensor(0.1f, 0, QuantDType.QUInt8);
        QTensor x = new([3, 4], u, [1, 2, 1, 2, 2, 3, 2, 3, 3, 3, 3, 4]);
        Assert.Equal([2, 2, 3], new QuantizedMean("M", "mean", [1], false).Forward(x).IntRepr());
        QParams s = QParams.PerTensor(0.1f, 0, QuantDType.QInt8);
        QTensor signed = QTensor.Quantize([-0.1f, -0.2f], [1, 2], s);
        Assert.Equal([-2], new QuantizedMean("M", "mean", [1], false).Forward(signed).IntRepr());
    }

    [Fact]
    public void A_dim_out_of_range_is_refused_naming_the_layer()
    {
        var error = Assert.Throws<ArgumentException>(() => new QuantizedMean("SeNet", "se.mean", [4], true).Forward(new QTensor([1, 2, 3, 3], QParams.PerTensor(0.1f, 0, QuantDType.QUInt8))));
        Assert.Contains("SeNet.se.mean", error.Message, StringComparison.Ordinal);
        Assert.Contains("[1, 2, 3, 3]", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(QuantDType.QUInt8, 0.5, 0.5f, 10, 0.25f, 10)]     // c > 0: s' = c·s, z' = z, integers copied
    [InlineData(QuantDType.QUInt8, -2.0, 2.0f, 10, 0.25f, 245)]   // c < 0: s' = |c|·s, z' = 255 - (10 - 0), integers mirrored
    [InlineData(QuantDType.QInt8, -2.0, 2.0f, 10, 0.25f, -11)]    // qint8: z' = 127 - (10 + 128)
    [InlineData(QuantDType.QUInt8, 0.0, 2.0f, 10, 1.0f, 0)]       // c = 0: scale 1, zero point 0, all integers 0
    public void Mul_by_a_constant_moves_only_the_qparams_as_aten(QuantDType dtype, double constant, float expectedScaleFactor, int zeroPoint, float scale, int expectedZeroPoint)
    {
        QParams q = QParams.PerTensor(scale, zeroPoint, dtype);
        QTensor x = Random([1, 3, 4, 4], q, MemoryFormat.ChannelsLast, 3);
        QTensor y = new QuantizedConstantOp("M", "mul_scalar", ConstantOperator.Mul, constant).Forward(x);
        Assert.Equal(expectedZeroPoint, y.ZeroPoint);
        if (constant == 0.0)
        {
            Assert.Equal(1.0f, y.Scale);
            Assert.All(y.IntRepr(), v => Assert.Equal(0, v));
        }
        else
        {
            Assert.Equal((float)(Math.Abs(constant) * scale), y.Scale);
            Assert.Equal(expectedScaleFactor, y.Scale / scale, 6);
            (int qmin, int qmax) = dtype == QuantDType.QInt8 ? (-128, 127) : (0, 255);
            Assert.Equal(constant > 0 ? x.IntRepr() : x.IntRepr().Select(v => qmax + qmin - v).ToArray(), y.IntRepr());
        }

        // Within one step of the QDQ reference (here exact: the dequantized values are c·x to float rounding).
        float[] reference = x.Dequantize().Select(v => (float)(v * constant)).ToArray();
        int[] qdq = QTensor.Quantize(reference, y.Shape, y.QParams).IntRepr();
        Assert.All(qdq.Zip(y.IntRepr()), p => Assert.InRange(Math.Abs(p.First - p.Second), 0, 1));
    }

    [Fact]
    public void Add_of_a_constant_follows_atens_three_cases_on_values_worked_by_hand()
    {
        var add = (double c) => new QuantizedConstantOp("M", "add_scalar", ConstantOperator.Add, c);
        QParams q = QParams.PerTensor(0.5f, 10, QuantDType.QUInt8);
        QTensor x = new([1, 3], q, [10, 11, 255]);

        // In range: c_q = round(1.0 / 0.5) = 2, z' = 10 - 2 = 8, integers unchanged.
        QTensor inRange = add(1.0).Forward(x);
        Assert.Equal((0.5f, 8), (inRange.Scale, inRange.ZeroPoint));
        Assert.Equal([10, 11, 255], inRange.IntRepr());

        // Below: c_q = 20, z - c_q = -10 < 0: s' = (255 + 10) / 255 · 0.5, z' = 0, q' = round((q - 10 + 20) · (0.5 / s')).
        QTensor below = add(10.0).Forward(x);
        float s = (float)(265.0 / 255.0 * 0.5);
        Assert.Equal((s, 0), (below.Scale, below.ZeroPoint));
        float m = 0.5f * (1.0f / s);
        Assert.Equal(new[] { 20, 21, 265 }.Select(v => Math.Clamp((int)MathF.Round(v * m, MidpointRounding.ToEven), 0, 255)).ToArray(), below.IntRepr());
        Assert.Equal([19, 20, 255], below.IntRepr());

        // Above: c_q = -250, z - c_q = 260 > 255: s' = (260 - 0) / 255 · 0.5, z' = 255.
        QTensor above = add(-125.0).Forward(x);
        Assert.Equal(((float)(260.0 / 255.0 * 0.5), 255), (above.Scale, above.ZeroPoint));

        // Each within one step of the QDQ reference: dequantize, add, quantize with the result's qparams.
        foreach ((QTensor result, double c) in new[] { (inRange, 1.0), (below, 10.0), (above, -125.0) })
        {
            float[] reference = x.Dequantize().Select(v => (float)(v + c)).ToArray();
            int[] qdq = QTensor.Quantize(reference, result.Shape, result.QParams).IntRepr();
            Assert.All(qdq.Zip(result.IntRepr()), p => Assert.InRange(Math.Abs(p.First - p.Second), 0, 1));
        }
    }
}
