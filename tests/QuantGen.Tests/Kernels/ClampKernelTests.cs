using System;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Tests.Kernels;

/// <summary>The vectorised quantized clamp equals the scalar reference, bit for bit, on every length 0..300 and odd bounds.</summary>
public sealed class ClampKernelTests
{
    [Theory]
    [InlineData(0, 255)]
    [InlineData(64, 200)]
    [InlineData(0, 0)]
    [InlineData(255, 255)]
    [InlineData(17, 18)]
    public void VectorPathsEqualTheScalarReference(int low, int high)
    {
        var random = new Random(low * 256 + high);
        for (int length = 0; length <= 300; length++)
        {
            byte[] input = new byte[length];
            random.NextBytes(input);
            byte[] expected = new byte[length];
            ClampScalar.Apply(input, expected, (byte)low, (byte)high);
            foreach (int bits in new[] { -1, 128, 256 })
            {
                byte[] actual = new byte[length];
                ClampKernel.Apply(input, actual, (byte)low, (byte)high, bits);
                Assert.Equal(expected, actual);
            }

            // In place, as the layer may run on its input's storage.
            byte[] inPlace = (byte[])input.Clone();
            ClampKernel.Apply(inPlace, inPlace, (byte)low, (byte)high);
            Assert.Equal(expected, inPlace);
        }
    }

    [Fact]
    public void TheScalarReferenceClampsEachValueToTheBounds()
    {
        byte[] input = { 0, 10, 63, 64, 65, 199, 200, 201, 255 };
        byte[] output = new byte[input.Length];
        ClampScalar.Apply(input, output, 64, 200);
        Assert.Equal(new byte[] { 64, 64, 64, 64, 65, 199, 200, 200, 200 }, output);
        Assert.Throws<ArgumentException>(() => ClampScalar.Apply(input, output, 201, 200));
    }
}
