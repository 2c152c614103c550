using System;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Tests.Kernels;

public class ReluScalarTests
{
    [Fact]
    public void ClampsBelowTheZeroPoint()
    {
        byte[] input = [0, 99, 100, 101, 255];
        var output = new byte[5];
        ReluScalar.Apply(input, output, 100);
        Assert.Equal(new byte[] { 100, 100, 100, 101, 255 }, output);
    }

    [Fact]
    public void WorksInPlace()
    {
        byte[] data = [3, 0, 7, 1];
        ReluScalar.Apply(data, data, 2);
        Assert.Equal(new byte[] { 3, 2, 7, 2 }, data);
    }

    [Fact]
    public void ZeroPointZeroIsTheIdentity()
    {
        var all = new byte[256];
        for (int i = 0; i < 256; i++)
        {
            all[i] = (byte)i;
        }

        var output = new byte[256];
        ReluScalar.Apply(all, output, 0);
        Assert.Equal(all, output);
    }

    [Fact]
    public void RejectsBadArguments()
    {
        Assert.Throws<ArgumentException>(() => ReluScalar.Apply(new byte[3], new byte[2], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReluScalar.Apply(new byte[3], new byte[3], 256));
    }
}
