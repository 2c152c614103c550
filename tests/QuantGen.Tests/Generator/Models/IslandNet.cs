using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Generator.Models;

/// <summary>
/// conv → [NoQuantize] conv → conv, compiled by the real build: conv2 is a float island (PyTorch's
/// qconfig = None), so the int8 model dequantizes before it and quantizes its result again.
/// </summary>
[Quantize]
public sealed partial class IslandNet : Module<Tensor, Tensor>
{
    private readonly QuantStub quant = new();
    private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(2, 3, 3, padding: 1);
    [NoQuantize]
    private readonly TorchSharp.Modules.Conv2d conv2 = Conv2d(3, 3, 3, padding: 1);
    private readonly TorchSharp.Modules.Conv2d conv3 = Conv2d(3, 2, 1);
    private readonly DeQuantStub dequant = new();

    /// <summary>Creates the float model with seeded weights.</summary>
    public IslandNet()
        : base(nameof(IslandNet)) => RegisterComponents();

    /// <summary>The island's float module, for tests that recompute it (a method, so it is not a member module).</summary>
    public TorchSharp.Modules.Conv2d IslandModule() => conv2;

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        Tensor x = quant.forward(input);
        x = conv1.forward(x);
        x = conv2.forward(x);
        x = conv3.forward(x);
        return dequant.forward(x);
    }
}
