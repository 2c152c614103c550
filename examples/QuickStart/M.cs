using QuantGen;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuickStart;

/// <summary>
/// Seed 000's model: <c>QuantStub → conv1 → relu → conv2 → DeQuantStub</c>, written as an ordinary
/// TorchSharp module. <c>[Quantize]</c> (X86 preset: PyTorch's <c>get_default_qconfig('fbgemm')</c>) and
/// <c>[Fuse]</c> (PyTorch's <c>fuse_modules(model, [['conv1', 'relu']])</c>) are all it takes: the
/// QuantGen generator adds <c>Prepare()</c>, <c>M.Observed</c> and <c>M.Quantized</c> at compile time.
/// </summary>
[Quantize(QuantBackend.X86)]
[Fuse(nameof(conv1), nameof(relu))]
public partial class M : Module<Tensor, Tensor>
{
    // QuantStub converts tensors from floating point to quantized.
    private readonly QuantStub quant = new();
    private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
    private readonly TorchSharp.Modules.ReLU relu = ReLU();
    private readonly TorchSharp.Modules.Conv2d conv2 = Conv2d(1, 1, 1);

    // DeQuantStub converts tensors from quantized to floating point.
    private readonly DeQuantStub dequant = new();

    public M()
        : base(nameof(M)) => RegisterComponents();

    /// <summary>conv1's float weight and bias, for the hand re-computation (seed 000's last cells).</summary>
    public TorchSharp.Modules.Conv2d Conv1 => conv1;

    public override Tensor forward(Tensor x)
    {
        // Manually specify where tensors are converted from floating point to quantized.
        x = quant.forward(x);
        x = conv1.forward(x);
        x = relu.forward(x);
        x = conv2.forward(x);
        // Manually specify where tensors are converted from quantized back to floating point.
        x = dequant.forward(x);
        return x;
    }
}
