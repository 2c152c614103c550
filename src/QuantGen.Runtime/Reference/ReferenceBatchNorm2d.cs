using System;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Reference;

/// <summary>
/// The reference form of a quantized BatchNorm2d / BNReLU2d: as PyTorch's reference model runs it, the float
/// <c>batch_norm</c> (eval statistics) on the fake-quantized input, ReLU if fused, then quantize→dequantize
/// with the output qparams. BatchNorm has no weight to quantize.
/// </summary>
public sealed class ReferenceBatchNorm2d : ReferenceLayer
{
    private readonly FusedBatchNorm2d _float;
    private bool _disposed;

    internal ReferenceBatchNorm2d(FusedBatchNorm2d floatBatchNorm, QParams output)
    {
        _float = floatBatchNorm;
        OutputQParams = output;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model => _float.Model;

    /// <summary>The BatchNorm's member name.</summary>
    public string Layer => _float.Layer;

    /// <summary>True when a ReLU is fused (BNReLU2d).</summary>
    public bool Relu => _float.Relu;

    /// <inheritdoc/>
    public override QParams OutputQParams { get; }

    /// <summary>batch_norm(input) with the running statistics → ReLU if fused → fake-quantize with <see cref="OutputQParams"/>.</summary>
    /// <exception cref="ArgumentException">The input is not float32 [N, C, H, W] with the BatchNorm's channel count.</exception>
    public override Tensor forward(Tensor input)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var scope = torch.NewDisposeScope();
        Tensor output = _float.forward(input);
        return FakeQuant.Apply(output, OutputQParams).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _float.Dispose();
        }
    }

    /// <summary>PyTorch's names: <c>QuantizedBatchNorm2d(Reference)</c> / <c>QuantizedBNReLU2d(Reference)</c>.</summary>
    public override string ToString() => Relu ? "QuantizedBNReLU2d(Reference)" : "QuantizedBatchNorm2d(Reference)";
}
