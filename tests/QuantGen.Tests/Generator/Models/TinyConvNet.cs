using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Generator.Models;

/// <summary>
/// A [Quantize] model compiled by the real build, with the generator loaded as an analyzer by the SDK's
/// compiler: if the generated code did not compile, this test project would not build.
/// </summary>
[Quantize(QuantBackend.Qnnpack)]
[Fuse(nameof(conv), nameof(bn), nameof(relu))]
[Fuse(nameof(fc), nameof(fcRelu))]
public sealed partial class TinyConvNet : Module<Tensor, Tensor>
{
    private readonly QuantStub quant = new();
    private readonly TorchSharp.Modules.Conv2d conv = Conv2d(1, 2, 3, padding: 1);
    private readonly TorchSharp.Modules.BatchNorm2d bn = BatchNorm2d(2);
    private readonly TorchSharp.Modules.ReLU relu = ReLU();
    private readonly TorchSharp.Modules.Flatten flatten = Flatten();
    private readonly TorchSharp.Modules.Linear fc = Linear(2 * 4 * 4, 4);
    private readonly TorchSharp.Modules.ReLU fcRelu = ReLU();
    private readonly DeQuantStub dequant = new();

    /// <summary>Creates the float model.</summary>
    public TinyConvNet()
        : base(nameof(TinyConvNet)) => RegisterComponents();

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        Tensor x = quant.forward(input);
        x = relu.forward(bn.forward(conv.forward(x)));
        x = flatten.forward(x);
        x = fcRelu.forward(fc.forward(x));
        return dequant.forward(x);
    }
}
