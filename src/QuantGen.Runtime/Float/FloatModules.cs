using System;
using QuantGen.Observers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Modules;

// TODO(helper B2): implement; split into one file per class.

/// <summary>
/// Marks where float becomes quantized in eager mode (PyTorch's <c>QuantStub</c>); identity in float.
/// </summary>
public sealed class QuantStub : nn.Module<Tensor, Tensor>
{
    public QuantStub() : base(nameof(QuantStub)) { }

    public override Tensor forward(Tensor input) => input;
}

/// <summary>Marks where quantized becomes float again (PyTorch's <c>DeQuantStub</c>); identity in float.</summary>
public sealed class DeQuantStub : nn.Module<Tensor, Tensor>
{
    public DeQuantStub() : base(nameof(DeQuantStub)) { }

    public override Tensor forward(Tensor input) => input;
}

/// <summary>
/// A float conv with its fused BatchNorm folded in and an optional fused ReLU (PyTorch's ConvReLU2d /
/// folded ConvBn2d): what the Observed model runs and what Convert() quantizes.
/// </summary>
public sealed class FusedConv2d : IDisposable
{
    /// <summary>Reads the conv (and folds bn into it per the contract, float32) from TorchSharp modules.</summary>
    public static FusedConv2d Create(string model, string layer, Conv2d conv, BatchNorm2d? batchNorm, bool relu) => throw new NotImplementedException();

    public string Model => throw new NotImplementedException();

    public string Layer => throw new NotImplementedException();

    public Conv2dOptions Options => throw new NotImplementedException();

    /// <summary>Folded float weights, logical [OutC, InC/groups, KH, KW].</summary>
    public float[] Weight => throw new NotImplementedException();

    /// <summary>Folded float bias (null when the conv has none and no BN was folded).</summary>
    public float[]? Bias => throw new NotImplementedException();

    public bool Relu => throw new NotImplementedException();

    /// <summary>Float forward (conv with folded parameters, then ReLU if fused); validates the input shape.</summary>
    public Tensor forward(Tensor input) => throw new NotImplementedException();

    /// <summary>Observes the weights with <paramref name="weightSpec"/>, quantizes them and builds the int8 layer.</summary>
    public QuantizedConv2d Convert(QParams input, QParams output, ObserverSpec weightSpec, QuantBackend backend) => throw new NotImplementedException();

    public void Dispose() => throw new NotImplementedException();
}

/// <summary>A float linear with an optional fused ReLU (PyTorch's LinearReLU).</summary>
public sealed class FusedLinear : IDisposable
{
    public static FusedLinear Create(string model, string layer, Linear linear, bool relu) => throw new NotImplementedException();

    public int InFeatures => throw new NotImplementedException();

    public int OutFeatures => throw new NotImplementedException();

    public float[] Weight => throw new NotImplementedException();

    public float[]? Bias => throw new NotImplementedException();

    public bool Relu => throw new NotImplementedException();

    public Tensor forward(Tensor input) => throw new NotImplementedException();

    public QuantizedLinear Convert(QParams input, QParams output, ObserverSpec weightSpec, QuantBackend backend) => throw new NotImplementedException();

    public void Dispose() => throw new NotImplementedException();
}

/// <summary>Float tensors ↔ arrays, for the generated Quantized forward's Tensor overload.</summary>
public static class TensorInterop
{
    /// <summary>The values of a float32 tensor in logical row-major order, and its shape.</summary>
    public static float[] ToArray(Tensor tensor, out int[] shape) => throw new NotImplementedException();

    /// <summary>A new float32 CPU tensor holding <paramref name="values"/> with <paramref name="shape"/>.</summary>
    public static Tensor FromArray(float[] values, int[] shape) => throw new NotImplementedException();
}
