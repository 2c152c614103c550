using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// Marks where quantized becomes float again (PyTorch's <c>DeQuantStub</c>); identity in float. The
/// Quantized model dequantizes here.
/// </summary>
public sealed class DeQuantStub : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the stub.</summary>
    public DeQuantStub() : base(nameof(DeQuantStub)) { }

    /// <summary>Returns <paramref name="input"/> unchanged.</summary>
    public override Tensor forward(Tensor input) => input;
}
