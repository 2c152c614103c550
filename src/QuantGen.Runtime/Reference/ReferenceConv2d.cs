using System;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Reference;

/// <summary>
/// PyTorch's reference <c>QuantizedConv2d(Reference)</c> (+ fused ReLU): float conv2d on the fake-quantized
/// input with the DEQUANTIZED qint8 weights (the very integers <see cref="FusedConv2d.Convert"/> packs) and
/// the float bias, ReLU if fused, then quantize→dequantize with the output qparams.
/// </summary>
/// <remarks>
/// The bias stays float, as in PyTorch's reference modules: the Qnnpack preset's int32 bias is a detail
/// of the int8 kernel, which is why the int8 layer may differ from this one by one step.
/// </remarks>
public sealed class ReferenceConv2d : ReferenceLayer
{
    private readonly Tensor _weight;
    private readonly Tensor? _bias;
    private bool _disposed;

    internal ReferenceConv2d(string model, string layer, Conv2dOptions options, QTensor weight, float[]? bias, bool relu, QParams output)
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

    /// <summary>The conv's member name.</summary>
    public string Layer { get; }

    /// <summary>Hyper-parameters.</summary>
    public Conv2dOptions Options { get; }

    /// <summary>The quantized weight, logical [OutC, InC/groups, KH, KW]; the forward uses its dequantized values.</summary>
    public QTensor Weight { get; }

    /// <summary>The float bias (a copy), or null.</summary>
    public float[]? Bias { get; }

    /// <summary>True when a ReLU is fused.</summary>
    public bool Relu { get; }

    /// <inheritdoc/>
    public override QParams OutputQParams { get; }

    /// <summary>conv2d(input, dequantize(weight), bias) → ReLU if fused → fake-quantize with <see cref="OutputQParams"/>.</summary>
    /// <exception cref="ArgumentException">The input is not float32 [N, InC, H, W] or is smaller than the kernel's reach.</exception>
    public override Tensor forward(Tensor input)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string name = $"{Model}.{Layer}";
        int[] shape = ReferenceChecks.FloatInputShape(name, input);
        QuantizedConv2d.ValidateSpatialInput(name, Options, shape);
        Conv2dOptions o = Options;
        using var scope = torch.NewDisposeScope();
        Tensor output = nn.functional.conv2d(
            input, _weight, _bias,
            strides: [o.StrideHeight, o.StrideWidth],
            padding: [o.PadHeight, o.PadWidth],
            dilation: [o.DilationHeight, o.DilationWidth],
            groups: o.Groups);
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

    /// <summary>PyTorch's name for the reference module: <c>QuantizedConv2d(Reference)</c> (<c>QuantizedConvReLU2d(Reference)</c> fused).</summary>
    public override string ToString() => Relu ? "QuantizedConvReLU2d(Reference)" : "QuantizedConv2d(Reference)";
}
