using System;
using QuantGen.Modules;
using QuickStart;
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

    [Fact]
    public void ToArrayOfAnEmptyTensorIsEmptyWithItsShape()
    {
        // TorchSharp's data<float>() throws ArgumentOutOfRangeException("startingIndex") for an empty tensor.
        using var scope = torch.NewDisposeScope();
        Assert.Empty(TensorInterop.ToArray(torch.zeros(0, 3, 4, 4), out int[] batchOfZero));
        Assert.Equal(new[] { 0, 3, 4, 4 }, batchOfZero);
        Assert.Empty(TensorInterop.ToArray(torch.zeros(2, 3, 0, 4).permute(0, 2, 3, 1), out int[] emptyPlane));
        Assert.Equal(new[] { 2, 0, 4, 3 }, emptyPlane);
    }

    [Fact]
    public void ToArrayRefusesADimensionBeyondInt32NamingTheShape()
    {
        // An empty tensor can have a dimension of 3e9 without storage; before, this was an OverflowException.
        using var scope = torch.NewDisposeScope();
        var error = Assert.Throws<ArgumentException>(() => TensorInterop.ToArray(torch.empty(new long[] { 0, 3_000_000_000L }), out _));
        Assert.Contains("shape [0, 3000000000] has a dimension beyond QuantGen's int32 sizes", error.Message);
    }

    [Fact]
    public void FromArrayMakesAnEmptyTensor()
    {
        using Tensor t = TensorInterop.FromArray([], [0, 3]);
        Assert.Equal(new long[] { 0, 3 }, t.shape);
    }

    [Fact]
    public void AGeneratedModelTakesABatchOfZeroAndRefusesAnEmptyPlaneByName()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(1);
        using var model = new M();
        model.eval();
        using M.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            observed.forward(torch.randn(1, 1, 2, 3)).Dispose();
        }

        M.Quantized int8 = observed.Convert();
        using Tensor empty = int8.forward(torch.zeros(0, 1, 2, 3));
        Assert.Equal(new long[] { 0, 1, 2, 3 }, empty.shape);

        var error = Assert.Throws<ArgumentException>(() => int8.forward(torch.zeros(1, 1, 0, 3)));
        Assert.StartsWith("M.conv1: expected input [N, C, H, W] with H and W positive, got [1, 1, 0, 3].", error.Message);
    }
}
