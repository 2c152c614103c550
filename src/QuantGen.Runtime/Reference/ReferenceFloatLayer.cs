using System;
using QuantGen.Reference;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// The Reference (QDQ) form of an op the QConfigMapping kept in float: the fused float op on the
/// fake-quantized input with float weights, its output fake-quantized with the op's output qparams, as the
/// int8 model's <see cref="FloatFallback"/> computes it.
/// </summary>
public sealed class ReferenceFloatLayer : ReferenceLayer
{
    private readonly Func<Tensor, Tensor> _forward;

    /// <summary>Creates the layer; the float op stays owned by whoever created it (not disposed here).</summary>
    /// <param name="forward">The fused float op.</param>
    /// <param name="outputQParams">The op's output observer's qparams.</param>
    public ReferenceFloatLayer(Func<Tensor, Tensor> forward, QParams outputQParams)
    {
        _forward = forward ?? throw new ArgumentNullException(nameof(forward));
        OutputQParams = outputQParams ?? throw new ArgumentNullException(nameof(outputQParams));
    }

    /// <inheritdoc/>
    public override QParams OutputQParams { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => FakeQuant.Apply(_forward(input), OutputQParams);

    /// <inheritdoc/>
    public override void Dispose()
    {
        // The float op belongs to the Observed model that made this layer.
    }
}
