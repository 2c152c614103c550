using System;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;
using static QuantGen.Tests.Kernels.KernelTestMath;

namespace QuantGen.Tests.Kernels;

public class RequantizeToDTypeTests
{
    [Theory]
    [InlineData(QuantBackend.X86, false)]
    [InlineData(QuantBackend.X86, true)]
    [InlineData(QuantBackend.Qnnpack, false)]
    [InlineData(QuantBackend.Qnnpack, true)]
    public void Qint8OutputsAreTheContractWithTheRealZeroPointClampedToMinus128To127(QuantBackend backend, bool relu)
    {
        var random = new Random((int)backend * 2 + (relu ? 1 : 0));
        int channels = 7;
        int[] accumulators = UniformInts(random, channels * 300, -40_000, 40_000);
        float sx = 0.013f, sy = 0.027f;
        float[] sw = Uniform(random, channels, 0.001f, 0.004f), bias = Uniform(random, channels, -0.5f, 0.5f);
        int zy = -17;
        var parameters = RequantizeParams.Create(backend, sx, sw, sy, zy + 128, bias, relu);
        var view = new byte[accumulators.Length];
        RequantizeToDType.Apply(accumulators, parameters, QuantDType.QInt8, view);

        for (int i = 0; i < accumulators.Length; i++)
        {
            int c = i % channels;
            int expected;
            if (backend == QuantBackend.X86)
            {
                float bs = (1.0f / sx) * (1.0f / sw[c]);
                float multiplier = (1.0f / sy) / bs;
                float biasTerm = bias[c] * bs;
                float v = ((float)accumulators[i] + biasTerm) * multiplier;
                v = relu ? Math.Max(v, 0f) : v;
                float shifted = v + zy;
                expected = (int)Math.Clamp(Math.Round((double)shifted, MidpointRounding.ToEven), -128, 127);
            }
            else
            {
                float product = sx * sw[c];
                int biasQ = (int)Math.Round((double)(bias[c] * (1.0f / product)), MidpointRounding.ToEven);
                float multiplier = (sw[c] * sx) * (1.0f / sy);
                int rounded = (int)Math.Round((double)((float)(accumulators[i] + biasQ) * multiplier), MidpointRounding.ToEven);
                expected = Math.Clamp(rounded + zy, relu ? zy : -128, 127);
            }

            Assert.Equal(expected + 128, view[i]);
        }
    }

    [Fact]
    public void X86RoundsWithTheRealZeroPointNotTheShiftedOne()
    {
        // sx = sw = sy = 1 → bs = M = 1; bias 0.5 + 2^-20 → v = 0.5 + 2^-20, which rounds to 1 with zy = 0.
        // In the +128 view, 128.5 + 2^-20 is not a float: it rounds to 128.5, then to 128 — one step off.
        float bias = 0.5f + MathF.Pow(2f, -20f);
        var parameters = RequantizeParams.Create(QuantBackend.X86, 1f, [1f], 1f, 128, [bias], relu: false);
        var view = new byte[1];
        RequantizeToDType.Apply([0], parameters, QuantDType.QInt8, view);
        Assert.Equal(129, view[0]);            // qint8 value 1

        var shiftedOnly = new byte[1];
        Requantize.RequantizeInt32ToUInt8([0], parameters, shiftedOnly);
        Assert.Equal(128, shiftedOnly[0]);     // what the plain +128 trick would give: qint8 value 0
    }

    [Fact]
    public void Quint8OutputsAreExactlyTheExistingRequantization()
    {
        var random = new Random(77);
        int[] accumulators = UniformInts(random, 3 * 500, -30_000, 30_000);
        var parameters = RequantizeParams.Create(QuantBackend.X86, 0.02f, [0.003f, 0.002f, 0.001f], 0.05f, 31, [0.1f, -0.2f, 0.3f], relu: true);
        var ours = new byte[accumulators.Length];
        var existing = new byte[accumulators.Length];
        RequantizeToDType.Apply(accumulators, parameters, QuantDType.QUInt8, ours);
        Requantize.RequantizeInt32ToUInt8(accumulators, parameters, existing);
        Assert.Equal(existing, ours);
    }
}
