using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Kernels;
using QuantGen.Modules;
using QuantGen.Tests.Kernels.Simd;
using Xunit.Abstractions;
using static QuantGen.Tests.Modules.OpTestSupport;

namespace QuantGen.Tests.Modules;

/// <summary>
/// QuantizedConv2d and QuantizedLinear run the dispatched (packed, SIMD) kernels: for every config this
/// machine supports (the scalar reference included), and for the dispatcher's own choice, the layer's
/// output equals the numerics contract re-written here (naive int32 accumulation on the logical integers,
/// then the backend's requantization with the output dtype's real zero point and range) bit for bit, on
/// odd shapes that leave tails in every tile dimension, both backends, quint8 and qint8 inputs and
/// outputs, with and without ReLU, with nonzero weight zero points, and for an input whose scale differs
/// from the calibrated one. (X86 with a qint8 output is the case the unsigned view cannot requantize
/// exactly, see RequantizeToDType; the real-zero-point formula here would catch a module that tried.)
/// </summary>
public class DispatchedLayerKernelTests(ITestOutputHelper output)
{
    /// <summary>Conv geometries: (options, H, W). 1×1 direct GEMM, the 7×7/2 C=3 stem, grouped, depthwise, dilated, 1×1 strided.</summary>
    private static readonly (Conv2dOptions Options, int Height, int Width)[] ConvShapes =
    [
        (new Conv2dOptions(19, 21, 1, 1), 5, 7),
        (new Conv2dOptions(3, 17, 7, 7, 2, 2, 3, 3), 11, 13),
        (new Conv2dOptions(12, 18, 3, 3, 1, 1, 1, 1, 1, 1, 3), 6, 5),
        (new Conv2dOptions(13, 13, 3, 3, 2, 1, 1, 1, 1, 1, 13), 9, 7),
        (new Conv2dOptions(5, 33, 3, 2, 1, 2, 0, 1, 2, 1), 8, 9),
        (new Conv2dOptions(40, 35, 1, 1, 2, 2), 7, 7),
    ];

    /// <summary>Linear inputs: (input shape, out features).</summary>
    private static readonly (int[] Shape, int OutFeatures)[] LinearShapes =
    [
        ([1, 37], 11),
        ([7, 64], 33),
        ([13, 5], 17),
        ([2, 3, 29], 19),
    ];

    public static IEnumerable<object[]> Cases()
    {
        foreach (QuantBackend backend in new[] { QuantBackend.X86, QuantBackend.Qnnpack })
        {
            foreach (QuantDType input in new[] { QuantDType.QUInt8, QuantDType.QInt8 })
            {
                foreach (QuantDType outputDType in new[] { QuantDType.QUInt8, QuantDType.QInt8 })
                {
                    yield return [backend, input, outputDType];
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ConvEqualsItsScalarReferenceForEveryConfig(QuantBackend backend, QuantDType inputDType, QuantDType outputDType)
    {
        var random = new Random(1000 + ((int)backend * 4) + ((int)inputDType * 2) + (int)outputDType);
        int checkedConfigs = 0;
        foreach ((Conv2dOptions o, int height, int width) in ConvShapes)
        {
            foreach (bool relu in new[] { false, true })
            {
                int inPerGroup = o.InChannels / o.Groups;
                int k = o.KernelHeight * o.KernelWidth * inPerGroup;
                (QTensor weight, float[] bias, QParams qx, QParams qy) = LayerData(random, [o.OutChannels, inPerGroup, o.KernelHeight, o.KernelWidth], k, inputDType, outputDType);
                QTensor x = RandomTensor(random, [2, o.InChannels, height, width], qx);
                QTensor rescaled = WithScale(x, qx.Scale * 1.37f);

                QuantizedConv2d Create(GemmConfig? config) => new("M", "conv", o, weight, bias, qx, qy, relu, backend, config);
                int[] ConvContract(QTensor input)
                {
                    int[] acc = ContractReference.ConvAccumulate(
                        input.IntRepr(), input.Shape, input.ZeroPoint, weight.IntRepr(), weight.QParams.ZeroPoints, o.OutChannels,
                        o.KernelHeight, o.KernelWidth, o.StrideHeight, o.StrideWidth, o.PadHeight, o.PadWidth, o.DilationHeight, o.DilationWidth, o.Groups,
                        out int outHeight, out int outWidth);
                    int plane = outHeight * outWidth;
                    return Requantized(acc, i => (i / plane) % o.OutChannels, backend, bias, input.Scale, weight.QParams.Scales, qy, relu);
                }

                int[] expected = ConvContract(x);
                int[] expectedRescaled = ConvContract(rescaled);
                string what = $"conv {o} {height}x{width} {backend} {inputDType}->{outputDType} relu={relu}";
                AssertSpread(expected, what);

                QuantizedConv2d dispatched = Create(null);
                Assert.Equal(KernelDispatch.Config, dispatched.KernelConfig);
                AssertSame(expected, dispatched.Forward(x), $"{what} dispatcher ({KernelDispatch.Isa})");
                foreach (GemmConfig config in SupportedConfigs())
                {
                    QuantizedConv2d layer = Create(config);
                    Assert.Equal(config, layer.KernelConfig);
                    AssertSame(expected, layer.Forward(x), $"{what} {config.Name}");
                    AssertSame(expected, layer.Forward(x), $"{what} {config.Name} (second call, reused scratch)");
                    AssertSame(expectedRescaled, layer.Forward(rescaled), $"{what} {config.Name} (other input scale)");
                    checkedConfigs++;
                }
            }
        }

        output.WriteLine($"{checkedConfigs} layer/config pairs equal the contract; supported: {string.Join(", ", SupportedConfigs().Select(c => c.Name))}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LinearEqualsItsScalarReferenceForEveryConfig(QuantBackend backend, QuantDType inputDType, QuantDType outputDType)
    {
        var random = new Random(2000 + ((int)backend * 4) + ((int)inputDType * 2) + (int)outputDType);
        foreach ((int[] shape, int outFeatures) in LinearShapes)
        {
            foreach (bool relu in new[] { false, true })
            {
                int inFeatures = shape[^1];
                (QTensor weight, float[] bias, QParams qx, QParams qy) = LayerData(random, [outFeatures, inFeatures], inFeatures, inputDType, outputDType);
                QTensor x = RandomTensor(random, shape, qx, MemoryFormat.Contiguous);
                QTensor rescaled = WithScale(x, qx.Scale * 0.61f);

                QuantizedLinear Create(GemmConfig? config) => new("M", "fc", inFeatures, outFeatures, weight, bias, qx, qy, relu, backend, config);
                int[] LinearContract(QTensor input)
                {
                    int[] values = input.IntRepr(), weights = weight.IntRepr(), zw = weight.QParams.ZeroPoints;
                    int rows = values.Length / inFeatures;
                    var acc = new int[rows * outFeatures];
                    for (int r = 0; r < rows; r++)
                    {
                        for (int j = 0; j < outFeatures; j++)
                        {
                            int sum = 0;
                            for (int i = 0; i < inFeatures; i++)
                            {
                                sum += (values[(r * inFeatures) + i] - input.ZeroPoint) * (weights[(j * inFeatures) + i] - zw[j]);
                            }

                            acc[(r * outFeatures) + j] = sum;
                        }
                    }

                    return Requantized(acc, i => i % outFeatures, backend, bias, input.Scale, weight.QParams.Scales, qy, relu);
                }

                int[] expected = LinearContract(x);
                int[] expectedRescaled = LinearContract(rescaled);
                string what = $"linear [{string.Join(", ", shape)}]->{outFeatures} {backend} {inputDType}->{outputDType} relu={relu}";
                AssertSpread(expected, what);

                QuantizedLinear dispatched = Create(null);
                Assert.Equal(KernelDispatch.Config, dispatched.KernelConfig);
                AssertSame(expected, dispatched.Forward(x), $"{what} dispatcher ({KernelDispatch.Isa})");
                foreach (GemmConfig config in SupportedConfigs())
                {
                    QuantizedLinear layer = Create(config);
                    AssertSame(expected, layer.Forward(x), $"{what} {config.Name}");
                    AssertSame(expected, layer.Forward(x), $"{what} {config.Name} (second call, reused scratch)");
                    AssertSame(expectedRescaled, layer.Forward(rescaled), $"{what} {config.Name} (other input scale)");
                }
            }
        }
    }

    /// <summary>
    /// X86 adds the output zero point before rounding, so a qint8 output cannot be requantized in the
    /// unsigned view: with sx = sw = sy = 1 and bias 0.5 + 2⁻²⁰, <c>v = acc + 0.5 + 2⁻²⁰</c>; <c>rne(v)</c>
    /// rounds up, but <c>v + 128</c> loses the 2⁻²⁰ (float32's step at 128 is 2⁻¹⁶) and ties to even.
    /// Expected values: the hand-derived <c>rne(acc + 0.5 + 2⁻²⁰) = acc + 1</c>. 21 channels and 7 rows
    /// leave tails in every SIMD tile.
    /// </summary>
    [Fact]
    public void X86Qint8OutputRoundsWithTheRealZeroPointOnEveryConfig()
    {
        const int rows = 7, outFeatures = 21;
        float bias0 = 0.5f + MathF.Pow(2f, -20);
        Assert.NotEqual(MathF.Round(bias0, MidpointRounding.ToEven), MathF.Round(bias0 + 128f, MidpointRounding.ToEven) - 128f); // the trap exists
        var bias = Enumerable.Repeat(bias0, outFeatures).ToArray();
        QParams q = QParams.PerTensor(1f, 0, QuantDType.QInt8);
        QTensor weight = new([outFeatures, 1], q, ContractReference.Bytes(Enumerable.Repeat(1, outFeatures).ToArray()));
        int[] xs = Enumerable.Range(0, rows).Select(r => (r * 3) - 9).ToArray();   // -9, -6, ..., 9
        QTensor x = new([rows, 1], q, ContractReference.Bytes(xs));
        int[] expected = xs.SelectMany(v => Enumerable.Repeat(v + 1, outFeatures)).ToArray();

        var convWeight = new QTensor([outFeatures, 1, 1, 1], q, ContractReference.Bytes(Enumerable.Repeat(1, outFeatures).ToArray()));
        QTensor image = FromLogical(xs, [1, 1, 1, rows], q);
        int[] expectedImage = Enumerable.Range(0, outFeatures).SelectMany(_ => xs.Select(v => v + 1)).ToArray();   // [1, OC, 1, W] logical
        foreach (GemmConfig? config in SupportedConfigs().Append(null))
        {
            var linear = new QuantizedLinear("M", "fc", 1, outFeatures, weight, bias, q, q, false, QuantBackend.X86, config);
            AssertSame(expected, linear.Forward(x), $"linear {config?.Name ?? "dispatcher"}");
            var conv = new QuantizedConv2d("M", "conv", new Conv2dOptions(1, outFeatures, 1, 1), convWeight, bias, q, q, false, QuantBackend.X86, config);
            AssertSame(expectedImage, conv.Forward(image), $"conv {config?.Name ?? "dispatcher"}");
        }
    }

    /// <summary>
    /// The generated AVX-512 VNNI kernels (JIT on) and the managed AVX-VNNI kernels (JIT off) give the same
    /// layers bit for bit, on every path the driver takes with those panels: 1×1 direct rows, gathered
    /// im2col rows with weight zero points, per-tap pointers (input channels a multiple of 4, padded), kernel
    /// row runs of a one- and a three-channel input, and linear layers from one row to more than two tiles.
    /// </summary>
    [Fact]
    public void GeneratedKernelsGiveTheManagedKernelsLayers()
    {
        if (!GemmConfig.AvxVnniGenerated.IsSupported || !GemmConfig.AvxVnni.IsSupported)
        {
            output.WriteLine($"SKIPPED: {GemmConfig.AvxVnniGenerated.Name} or {GemmConfig.AvxVnni.Name} does not run here ({QuantGen.Kernels.X86.Generated.GemmAvx512VnniGenerated.Status}).");
            return;
        }

        var random = new Random(31);
        (Conv2dOptions Options, int Height, int Width)[] shapes =
        [
            .. ConvShapes,
            (new Conv2dOptions(16, 23, 3, 3, 1, 1, 1, 1), 9, 11),
            (new Conv2dOptions(20, 17, 3, 3, 2, 2, 1, 1, 2, 2), 13, 10),
            (new Conv2dOptions(1, 9, 5, 5, 1, 1, 2, 2), 12, 7),
            (new Conv2dOptions(3, 64, 7, 7, 2, 2, 3, 3), 17, 15),
        ];
        foreach ((Conv2dOptions o, int height, int width) in shapes)
        {
            foreach (bool withWeightZeroPoints in new[] { false, true })
            {
                int inPerGroup = o.InChannels / o.Groups;
                int k = o.KernelHeight * o.KernelWidth * inPerGroup;
                (QTensor weight, float[] bias, QParams qx, QParams qy) = LayerData(random, [o.OutChannels, inPerGroup, o.KernelHeight, o.KernelWidth], k, QuantDType.QUInt8, QuantDType.QUInt8);
                if (!withWeightZeroPoints)
                {
                    weight = new QTensor(weight.Shape, QParams.PerChannel(weight.QParams.Scales, new int[o.OutChannels], 0, QuantDType.QInt8), weight.Storage);
                }

                QTensor x = RandomTensor(random, [3, o.InChannels, height, width], qx);
                var managed = new QuantizedConv2d("M", "conv", o, weight, bias, qx, qy, false, QuantBackend.X86, GemmConfig.AvxVnni);
                var generated = new QuantizedConv2d("M", "conv", o, weight, bias, qx, qy, false, QuantBackend.X86, GemmConfig.AvxVnniGenerated);
                int[] expected = managed.Forward(x).IntRepr();
                AssertSpread(expected, $"conv {o}");
                AssertSame(expected, generated.Forward(x), $"conv {o} {height}x{width}, weight zero points {withWeightZeroPoints}: generated vs managed");
            }
        }

        foreach (int rows in new[] { 1, 2, 5, 6, 7, 13 })
        {
            foreach (int inFeatures in new[] { 1, 3, 4, 17, 64, 130 })
            {
                const int outFeatures = 37;
                (QTensor weight, float[] bias, QParams qx, QParams qy) = LayerData(random, [outFeatures, inFeatures], inFeatures, QuantDType.QUInt8, QuantDType.QUInt8);
                QTensor x = RandomTensor(random, [rows, inFeatures], qx, MemoryFormat.Contiguous);
                var managed = new QuantizedLinear("M", "fc", inFeatures, outFeatures, weight, bias, qx, qy, true, QuantBackend.Qnnpack, GemmConfig.AvxVnni);
                var generated = new QuantizedLinear("M", "fc", inFeatures, outFeatures, weight, bias, qx, qy, true, QuantBackend.Qnnpack, GemmConfig.AvxVnniGenerated);
                AssertSame(managed.Forward(x).IntRepr(), generated.Forward(x), $"linear {rows}x{inFeatures}->{outFeatures}: generated vs managed");
            }
        }
    }

    [Fact]
    public void AnUnsupportedConfigIsRefusedAtConstruction()
    {
        GemmConfig? unsupported = GemmConfig.All.FirstOrDefault(c => !c.IsSupported);
        if (unsupported is null)
        {
            output.WriteLine("SKIPPED: every config is supported here.");
            return;
        }

        QTensor weight = QTensor.Quantize(new float[4 * 3], [4, 3], QParams.PerTensor(0.01f, 0, QuantDType.QInt8));
        QParams q = QParams.PerTensor(0.1f, 0, QuantDType.QUInt8);
        var error = Assert.Throws<PlatformNotSupportedException>(() => new QuantizedLinear("M", "fc", 3, 4, weight, null, q, q, false, QuantBackend.X86, unsupported));
        Assert.Contains(unsupported.Name, error.Message);
    }

    /// <summary>
    /// The contract's requantization of logical accumulators, with the output dtype's real zero point and
    /// range. X86: <c>bs = (1/sx)(1/sw)</c>, <c>M = (1/sy)/bs</c>, <c>v = ((float)acc + bias·bs)·M</c>, ReLU,
    /// <c>clamp(rne(v + zy), min, max)</c>. Qnnpack: <c>bq = rne(bias·(1/(sx·sw)))</c>, <c>M = (sw·sx)·(1/sy)</c>,
    /// <c>clamp(rne((acc + bq)·M) + zy, relu ? zy : min, max)</c>. No FMA: every product is its own statement.
    /// </summary>
    private static int[] Requantized(int[] accumulators, Func<int, int> channelOf, QuantBackend backend, float[] bias, float inputScale, float[] weightScales, QParams output, bool relu)
    {
        int min = output.DType.Min(), max = output.DType.Max(), zy = output.ZeroPoint;
        var result = new int[accumulators.Length];
        for (int i = 0; i < accumulators.Length; i++)
        {
            int c = channelOf(i);
            float sw = weightScales[c];
            if (backend == QuantBackend.X86)
            {
                float inverseInput = 1.0f / inputScale;
                float inverseWeight = 1.0f / sw;
                float bs = inverseInput * inverseWeight;
                float inverseOutput = 1.0f / output.Scale;
                float multiplier = inverseOutput / bs;
                float biasTerm = bias[c] * bs;
                float sum = (float)accumulators[i] + biasTerm;
                float v = sum * multiplier;
                if (relu)
                {
                    v = MathF.Max(v, 0f);
                }

                float shifted = v + zy;
                result[i] = (int)Math.Clamp(MathF.Round(shifted, MidpointRounding.ToEven), min, max);
            }
            else
            {
                float product = inputScale * sw;
                float inverseProduct = 1.0f / product;
                float scaledBias = bias[c] * inverseProduct;
                int biasQ = (int)MathF.Round(scaledBias, MidpointRounding.ToEven);
                float swTimesSx = sw * inputScale;
                float inverseOutput = 1.0f / output.Scale;
                float multiplier = swTimesSx * inverseOutput;
                float value = (float)(accumulators[i] + biasQ) * multiplier;
                int rounded = (int)MathF.Round(value, MidpointRounding.ToEven);
                result[i] = Math.Clamp(rounded + zy, relu ? zy : min, max);
            }
        }

        return result;
    }

    private static IEnumerable<GemmConfig> SupportedConfigs() =>
        SimdTestData.ConfigNames.Select(SimdTestData.Config).Where(c => c.IsSupported);

    /// <summary>
    /// Per-channel weights (full int8 range, some channels with a nonzero zero point), a bias, input
    /// qparams with a nonzero zero point, and an output scale that puts the typical accumulator
    /// (≈ √K · 74 · 74 for uniform 8-bit data) about 40 steps from the zero point, so outputs spread
    /// over the range and some saturate.
    /// </summary>
    private static (QTensor Weight, float[] Bias, QParams Input, QParams Output) LayerData(Random random, int[] weightShape, int k, QuantDType inputDType, QuantDType outputDType)
    {
        int outChannels = weightShape[0];
        int count = weightShape.Aggregate(1, (a, b) => a * b);
        var scales = new float[outChannels];
        var zeroPoints = new int[outChannels];
        for (int c = 0; c < outChannels; c++)
        {
            scales[c] = 0.002f + (0.008f * (float)random.NextDouble());
            zeroPoints[c] = c % 3 == 1 ? random.Next(-20, 21) : 0;
        }

        QParams qw = QParams.PerChannel(scales, zeroPoints, 0, QuantDType.QInt8);
        int[] logical = ContractReference.RandomInts(random, count, -128, 127);
        QTensor weight = new(weightShape, qw, ContractReference.Bytes(logical));

        float sx = 0.02f + (0.02f * (float)random.NextDouble());
        QParams qx = QParams.PerTensor(sx, inputDType == QuantDType.QUInt8 ? random.Next(90, 160) : random.Next(-30, 31), inputDType);
        float typicalAccumulator = MathF.Sqrt(k) * 74f * 74f;
        float sy = sx * 0.006f * typicalAccumulator / 40f;
        QParams qy = QParams.PerTensor(sy, outputDType == QuantDType.QUInt8 ? 100 : -20, outputDType);
        float[] bias = ContractReference.RandomFloats(random, outChannels, -20f * sy, 20f * sy);
        return (weight, bias, qx, qy);
    }

    /// <summary>The same integers under other per-tensor qparams (scale only).</summary>
    private static QTensor WithScale(QTensor x, float scale) =>
        new(x.Shape, QParams.PerTensor(scale, x.QParams.ZeroPoint, x.DType), (byte[])x.Storage.Clone(), x.Format);

    /// <summary>Guards the test itself: outputs that all clamp to one value would hide kernel differences.</summary>
    private static void AssertSpread(int[] values, string what)
    {
        int distinct = values.Distinct().Count();
        Assert.True(distinct >= Math.Min(20, values.Length / 4), $"{what}: only {distinct} distinct outputs of {values.Length}; the test data do not exercise the requantization.");
    }

    private static void AssertSame(int[] expected, QTensor actual, string what)
    {
        int[] values = actual.IntRepr();
        Assert.Equal(expected.Length, values.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] != values[i])
            {
                Assert.Fail($"{what}: element {i} is {values[i]}, the contract gives {expected[i]}.");
            }
        }
    }
}
