using QuantGen;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PackageConsumer;

/// <summary>
/// A small image classifier as a user writes it: no stubs, no hand-listed fusions. The QuantGen package's
/// generator fuses conv-bn-relu and conv-relu and adds <c>TinyNet.Observed</c> and <c>TinyNet.Quantized</c>.
/// </summary>
[Quantize]
public partial class TinyNet : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1 = Conv2d(3, 16, 3, padding: 1, bias: false);
    private readonly BatchNorm2d bn1 = BatchNorm2d(16);
    private readonly ReLU relu1 = ReLU();
    private readonly MaxPool2d pool = MaxPool2d(2);
    private readonly Conv2d conv2 = Conv2d(16, 32, 3, padding: 1);
    private readonly ReLU relu2 = ReLU();
    private readonly AdaptiveAvgPool2d avgpool = AdaptiveAvgPool2d(new long[] { 1, 1 });
    private readonly Linear fc = Linear(32, 10);

    /// <summary>Creates the model with TorchSharp's default initialisation.</summary>
    public TinyNet()
        : base(nameof(TinyNet)) => RegisterComponents();

    /// <summary>N×3×H×W images to N×10 logits.</summary>
    public override Tensor forward(Tensor x)
    {
        x = relu1.forward(bn1.forward(conv1.forward(x)));
        x = pool.forward(x);
        x = relu2.forward(conv2.forward(x));
        x = avgpool.forward(x);
        x = torch.flatten(x, 1);
        return fc.forward(x);
    }
}
