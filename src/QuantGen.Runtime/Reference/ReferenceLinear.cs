using System;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Reference;

/// <summary>
/// PyTorch's reference <c>QuantizedLinear(Reference)</c> (+ fused ReLU): float linear on the fake-quantized
/// input with the DEQUANTIZED qint8 weights (the integers <see cref="FusedLinear.Convert"/> packs) and the
/// float bias, ReLU if fused, then quantize→dequantize with the output qparams.
/// </summary>
public sealed class ReferenceLinear : ReferenceLayer
{
    private readonly Tensor _weight;
    private readonly Tensor? _bias;
    private readonly int? _batchNormFeatures;
    private bool _disposed;

    internal ReferenceLinear(string model, string layer, int inFeatures, int outFeatures, QTensor weight, float[]? bias, bool relu, int? batchNormFeatures, QParams output)
    {
        Model = model;
        Layer = layer;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = weight;
        Bias = bias is null ? null : (float[])bias.Clone();
        Relu = relu;
        _batchNormFeatures = batchNormFeatures;
        OutputQParams = output;
        _weight = ReferenceChecks.Owned(weight.Dequantize(), weight.Shape);
        _bias = bias is null ? null : ReferenceChecks.Owned(bias, [bias.Length]);
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>The linear's member name.</summary>
    public string Layer { get; }

    /// <summary>Input features.</summary>
    public int InFeatures { get; }

    /// <summary>Output features.</summary>
    public int OutFeatures { get; }

    /// <summary>The quantized weight [OutFeatures, InFeatures]; the forward uses its dequantized values.</summary>
    public QTensor Weight { get; }

    /// <summary>The float bias (a copy), or null.</summary>
    public float[]? Bias { get; }

    /// <summary>True when a ReLU is fused.</summary>
    public bool Relu { get; }

    /// <summary>True when a BatchNorm1d was folded in (see <see cref="FusedLinear.FoldedBatchNorm"/> for the inputs that allows).</summary>
    public bool FoldedBatchNorm => _batchNormFeatures is not null;

    /// <inheritdoc/>
    public override QParams OutputQParams { get; }

    /// <summary>linear(input, dequantize(weight), bias) → ReLU if fused → fake-quantize with <see cref="OutputQParams"/>.</summary>
    /// <exception cref="ArgumentException">The input is not float32 or its last dimension is not <see cref="InFeatures"/>.</exception>
    public override Tensor forward(Tensor input)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string name = $"{Model}.{Layer}";
        int[] shape = ReferenceChecks.FloatInputShape(name, input);
        FusedLinear.ValidateInputShape(name, InFeatures, _batchNormFeatures, shape);
        using var scope = torch.NewDisposeScope();
        Tensor output = nn.functional.linear(input, _weight, _bias);
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

    /// <summary>PyTorch's name for the reference module: <c>QuantizedLinear(Reference)</c> (<c>QuantizedLinearReLU(Reference)</c> fused).</summary>
    public override string ToString() => Relu ? "QuantizedLinearReLU(Reference)" : "QuantizedLinear(Reference)";
}
