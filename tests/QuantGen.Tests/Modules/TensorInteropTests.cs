using System;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Modules;

public class TensorInteropTests
{
    [Fact]
    public void ToArrayReadsANonContiguousTensorInLogicalOrder()
    {
        using var scope = torch.NewDisposeScope();
        Tensor t = torch.tensor(new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3]).t();   // [[1, 4], [2, 5], [3, 6]]
        float[] values = TensorInterop.ToArray(t, out int[] shape);
        Assert.Equal(new[] { 3, 2 }, shape);
        Assert.Equal(new float[] { 1, 4, 2, 5, 3, 6 }, values);
    }

    [Fact]
    public void ToArrayRejectsOtherDTypesNamingTheDType()
    {
        using var scope = torch.NewDisposeScope();
        var error = Assert.Throws<ArgumentException>(() => TensorInterop.ToArray(torch.zeros(new long[] { 2, 2 }, ScalarType.Float64), out _));
        Assert.Contains("Float64", error.Message);
        Assert.Contains("[2, 2]", error.Message);
    }

    [Fact]
    public void FromArrayCopiesTheValuesIntoAFloat32CpuTensor()
    {
        float[] values = [1.5f, -2f, 3f, 0.25f, 5f, 6f];
        using Tensor t = TensorInterop.FromArray(values, [1, 2, 3]);
        values[0] = 100f;
        Assert.Equal(ScalarType.Float32, t.dtype);
        Assert.Equal(DeviceType.CPU, t.device_type);
        Assert.Equal(new long[] { 1, 2, 3 }, t.shape);
        Assert.Equal(new float[] { 1.5f, -2f, 3f, 0.25f, 5f, 6f }, t.data<float>().ToArray());
    }

    [Fact]
    public void FromArrayRejectsAShapeThatDoesNotMatch()
    {
        var error = Assert.Throws<ArgumentException>(() => TensorInterop.FromArray(new float[5], [2, 3]));
        Assert.Contains("[2, 3] holds 6 values, got 5", error.Message);
    }
}
