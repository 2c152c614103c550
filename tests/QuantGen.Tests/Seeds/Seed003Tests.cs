using System;
using System.Linq;
using QuantGen;
using QuantGen.Modules;
using QuantGen.Observers;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Seeds;

/// <summary>Seed 003's model: QuantStub → 1×1 conv → DeQuantStub.</summary>
[Quantize(QuantBackend.X86)]
public partial class Seed003Model : Module<Tensor, Tensor>
{
    private readonly QuantStub quant = new();
    private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
    private readonly DeQuantStub dequant = new();

    public Seed003Model()
        : base(nameof(Seed003Model)) => RegisterComponents();

    public TorchSharp.Modules.Conv2d Conv1 => conv1;

    public override Tensor forward(Tensor x)
    {
        x = quant.forward(x);
        x = conv1.forward(x);
        x = dequant.forward(x);
        return x;
    }
}

/// <summary>
/// Seed 003, the forum question "my hand calculation gives 31, PyTorch gives 30": the int8 output equals
/// the numerics contract's integer computation with the exact scales, while the asker's computation
/// with the scales as PyTorch printed them (four decimals, as torch prints them) and the int32-bias formula is off.
/// </summary>
public sealed class Seed003Tests(ITestOutputHelper output)
{
    // The asker's qconfig: HistogramObserver(quint8, per_tensor_affine, reduce_range=True) for activations,
    // PerChannelMinMaxObserver(qint8, per_channel_symmetric) for weights, fbgemm engine.
    private static readonly QConfig SeedQConfig = new(
        ObserverSpec.Histogram(QuantDType.QUInt8, QScheme.PerTensorAffine, reduceRange: true),
        ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric),
        QuantBackend.X86);

    // The seed's printed output int_repr for input arange(64) / 255 (PyTorch 1.x, fbgemm).
    private static readonly int[] SeedPrintedOutput =
    [
        8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 13, 13, 14, 14, 15,
        15, 16, 16, 17, 17, 18, 18, 19, 19, 20, 20, 21, 21, 22, 22, 23,
        23, 24, 24, 25, 25, 26, 26, 27, 27, 28, 28, 28, 28, 29, 29, 30,
        30, 31, 31, 32, 32, 33, 33, 34, 34, 35, 35, 36, 36, 37, 37, 38,
    ];

    private static (Seed003Model Model, Seed003Model.Quantized Int8) Calibrated()
    {
        torch.manual_seed(2024);
        var model = new Seed003Model();
        model.eval();
        using (torch.no_grad())
        {
            // Weight 0.4827 and bias 0.0317: what the seed printed (weight int 127 at scale 0.0038 → 0.4808).
            model.Conv1.weight!.copy_(torch.full(new long[] { 1, 1, 1, 1 }, 0.4827f));
            model.Conv1.bias!.copy_(torch.full(new long[] { 1 }, 0.0317f));
        }

        using Seed003Model.Observed observed = model.Prepare(SeedQConfig);
        // Calibration recipe: torch.randint(0, 255, (1, 4, 16), dtype=uint8).unsqueeze(0) / 255.
        using Tensor calibration = torch.randint(0, 255, [1, 1, 4, 16], dtype: ScalarType.Byte).to(ScalarType.Float32) / 255;
        using (torch.no_grad())
        {
            observed.forward(calibration).Dispose();
        }

        return (model, observed.Convert());
    }

    private static float[] SeedInput() => Enumerable.Range(0, 64).Select(k => (float)(byte)k / 255).ToArray();

    [Fact]
    public void Int8OutputEqualsTheContractsIntegerComputation()
    {
        (Seed003Model model, Seed003Model.Quantized int8) = Calibrated();
        using (model)
        {
            QTensor qx = int8.quant.Forward(SeedInput(), [1, 1, 4, 16]);
            int[] actual = int8.conv1.Forward(qx).IntRepr();

            // docs/numerics.md §4, X86: float bias, bs = (1/sx)(1/sw), M = (1/sy)/bs.
            float sx = qx.Scale, sw = int8.conv1.Weight.QParams.Scales[0], sy = int8.conv1.Scale;
            int zx = qx.ZeroPoint, zy = int8.conv1.ZeroPoint, qw = int8.conv1.Weight.IntRepr()[0];
            float bias = int8.conv1.Bias![0];
            float bs = (1.0f / sx) * (1.0f / sw);
            float m = (1.0f / sy) / bs;
            int[] qxValues = qx.IntRepr();
            for (int i = 0; i < 64; i++)
            {
                int acc = (qxValues[i] - zx) * qw;
                float scaledBias = bias * bs;
                float v = ((float)acc + scaledBias) * m;
                int expected = Math.Clamp((int)MathF.Round(v + zy, MidpointRounding.ToEven), 0, 255);
                Assert.Equal(expected, actual[i]);
            }

            output.WriteLine($"sx={sx:R} sw={sw:R} sy={sy:R} zx={zx} zy={zy} qw={qw}");
        }
    }

    [Fact]
    public void TheAskersArithmeticIsWhatGivesThirtyOne()
    {
        // The forum's own numbers, re-done: (24*127 + round(0.0317 / (0.0038*0.0078))) * 0.0078*0.0038/0.0040.
        double biasQ = Math.Round(0.0317 / (0.0038 * 0.0078), MidpointRounding.ToEven);
        double zOut = ((24 * 127) + biasQ) * 0.0078 * 0.0038 / 0.0040;
        Assert.Equal(1070, biasQ);
        Assert.Equal(30.51438, zOut, 5);
        Assert.Equal(31, Math.Round(zOut, MidpointRounding.ToEven));
    }

    [Fact]
    public void WithPrintedScalesTheSameComputationIsOffWhileExactScalesMatch()
    {
        (Seed003Model model, Seed003Model.Quantized int8) = Calibrated();
        using (model)
        {
            QTensor qx = int8.quant.Forward(SeedInput(), [1, 1, 4, 16]);
            int[] actual = int8.conv1.Forward(qx).IntRepr();
            float sx = qx.Scale, sw = int8.conv1.Weight.QParams.Scales[0], sy = int8.conv1.Scale;
            int qw = int8.conv1.Weight.IntRepr()[0];
            int[] qxValues = qx.IntRepr();

            // The asker's formula (int32 bias with sx*sw, then * sx*sw/sy), once with the scales as printed
            // (four decimals, as torch prints them) and once with the exact ones.
            int[] Asker(double sxUsed, double swUsed, double syUsed) => qxValues.Select(q =>
            {
                double bq = Math.Round(0.0317 / (swUsed * sxUsed), MidpointRounding.ToEven);
                double z = ((q * qw) + bq) * sxUsed * swUsed / syUsed;
                return Math.Clamp((int)Math.Round(z, MidpointRounding.ToEven) + int8.conv1.ZeroPoint, 0, 255);
            }).ToArray();

            int[] printed = Asker(AsPrinted(sx), AsPrinted(sw), AsPrinted(sy));
            int[] exact = Asker(sx, sw, sy);
            int offPrinted = printed.Zip(actual).Count(p => p.First != p.Second);
            int offExact = exact.Zip(actual).Count(p => p.First != p.Second);
            output.WriteLine($"printed scales {AsPrinted(sx)}, {AsPrinted(sw)}, {AsPrinted(sy)}: {offPrinted}/64 outputs differ from the int8 model; exact scales: {offExact}/64.");

            Assert.True(offPrinted > 0, "rounded scales should change some outputs");
            Assert.True(offExact < offPrinted, "exact scales should match the int8 model better than printed ones");
            // Exact scales leave only the bias-arithmetic difference (int32 bias vs float bias): at most one step.
            Assert.All(exact.Zip(actual), p => Assert.InRange(p.First - p.Second, -1, 1));
        }
    }

    [Fact]
    public void OutputIsCloseToWhatPyTorchPrinted()
    {
        // PyTorch's printed output comes from its own calibration (random data we can't replay), so scales
        // differ slightly: agreement within one step is what can be asserted; the exact share is reported.
        (Seed003Model model, Seed003Model.Quantized int8) = Calibrated();
        using (model)
        {
            QTensor qx = int8.quant.Forward(SeedInput(), [1, 1, 4, 16]);
            int[] actual = int8.conv1.Forward(qx).IntRepr();
            int same = actual.Zip(SeedPrintedOutput).Count(p => p.First == p.Second);
            output.WriteLine($"{same}/64 outputs equal PyTorch's printed ones; input 24 -> {actual[Array.IndexOf(qx.IntRepr(), 24)]}.");
            Assert.All(actual.Zip(SeedPrintedOutput), p => Assert.InRange(p.First - p.Second, -1, 1));
        }
    }

    private static double AsPrinted(float scale) => Math.Round((double)scale, 4, MidpointRounding.ToEven); // torch prints 4 decimals
}
