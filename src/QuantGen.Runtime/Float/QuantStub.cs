using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// Marks where float becomes quantized in eager mode (PyTorch's <c>QuantStub</c>); identity in float.
/// The generator puts an observer here in the Observed model and a <see cref="QuantizeInput"/> in the
/// Quantized one.
/// </summary>
public sealed class QuantStub : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the stub.</summary>
    public QuantStub() : base(nameof(QuantStub)) { }

    /// <summary>Returns <paramref name="input"/> unchanged.</summary>
    public override Tensor forward(Tensor input) => input;
}
