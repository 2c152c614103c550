using System;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Reference;

/// <summary>
/// PyTorch's reference <c>QuantizedConvTranspose2d(Reference)</c> (+ ReLU): float conv_transpose2d on the
/// fake-quantized input with the DEQUANTIZED qint8 weights (the integers
/// <see cref="FusedConvTranspose2d.Convert"/> packs; per-tensor or per-channel along axis 1) and the float
/// bias, ReLU if fused, then quantize→dequantize with the output qparams.
/// </summary>
public sealed class ReferenceConvTranspose2d : ReferenceLayer
{
    private readonly Tensor _weight;
    private readonly Tensor? _bias;
    private bool _disposed;

    internal ReferenceConvTranspose2d(string model, string layer, ConvTranspose2dOptions options, QTensor weight, float[]? bias, bool relu, QParams output)
    {
        Model = model;
        Layer = layer;
        Options = options;
        Weight = weight;
        Bias = bias is null ? null : (float[])bias.Clone();
        Relu = relu;
        OutputQParams = output;
        _weight = ReferenceChecks.Owned(weight.Dequantize(), weight.Shape);
        _bias = bias is null ? null : ReferenceChecks.Owned(bias, [bias.Length]);
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>The conv-transpose's member name.</summary>
    public string Layer { get; }

    /// <summary>Hyper-parameters.</summary>
    public ConvTranspose2dOptions Options { get; }

    /// <summary>The quantized weight, logical [InC, OutC/groups, KH, KW]; the forward uses its dequantized values.</summary>
    public QTensor Weight { get; }

    /// <summary>The float bias (a copy), or null.</summary>
    public float[]? Bias { get; }

    /// <summary>True when a ReLU is fused.</summary>
    public bool Relu { get; }

    /// <inheritdoc/>
    public override QParams OutputQParams { get; }

    /// <summary>conv_transpose2d(input, dequantize(weight), bias) → ReLU if fused → fake-quantize with <see cref="OutputQParams"/>.</summary>
    /// <exception cref="ArgumentException">The input is not float32 [N, InC, H, W] or the output would be empty.</exception>
    public override Tensor forward(Tensor input)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string name = $"{Model}.{Layer}";
        int[] shape = ReferenceChecks.FloatInputShape(name, input);
        FusedConvTranspose2d.ValidateInputShape(name, Options, shape);
        using var scope = torch.NewDisposeScope();
        Tensor output = FusedConvTranspose2d.ConvTranspose(input, _weight, _bias, Options);
        if (Relu)
        {
            output = output.relu_();
        }

        return FakeQuant.Apply(output, OutputQParams).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _weight.Dispose();
            _bias?.Dispose();
        }
    }

    /// <summary>PyTorch's name for the reference module: <c>QuantizedConvTranspose2d(Reference)</c>.</summary>
    public override string ToString() => Relu ? "QuantizedConvTranspose2d(Reference)+ReLU" : "QuantizedConvTranspose2d(Reference)";
}
