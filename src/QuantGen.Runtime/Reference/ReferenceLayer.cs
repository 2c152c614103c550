using System;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// One op of the generated Reference (QDQ) form: the float op on fake-quantized inputs and dequantized
/// weights, its output quantized→dequantized with the op's output qparams (PyTorch's
/// <c>convert_fx(is_reference=True)</c>).
/// </summary>
public abstract class ReferenceLayer : IDisposable
{
    /// <summary>The output qparams the result was fake-quantized with.</summary>
    public abstract QParams OutputQParams { get; }

    /// <summary>Runs the reference op; the input is already fake-quantized.</summary>
    public abstract Tensor forward(Tensor input);

    /// <inheritdoc/>
    public abstract void Dispose();
}
