using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// These models exist to run ops in float: their QG0023 warnings are expected.
#pragma warning disable QG0023

namespace QuantGen.Tests.Binding;

/// <summary>
/// A model with float ops of every kind a user meets between int8 ones: a PixelShuffle, a GroupNorm, a GELU whose
/// input is float, a [NoQuantize] conv, a max pool on a float value, a bilinear Upsample, a LayerNorm, a flatten of
/// a float value and a LogSoftmax that ends the model (so the result is float).
/// </summary>
[Quantize]
public partial class FloatOpsNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1 = Conv2d(3, 16, 3, padding: 1);
    private readonly Module<Tensor, Tensor> shuffle = PixelShuffle(2);
    private readonly GroupNorm norm = GroupNorm(2, 4);
    private readonly Module<Tensor, Tensor> gelu = GELU();
    private readonly Module<Tensor, Tensor> conv2 = Conv2d(4, 8, 3, padding: 1);
    private readonly Module<Tensor, Tensor> bn2 = BatchNorm2d(8);
    private readonly Module<Tensor, Tensor> relu2 = ReLU();

    [NoQuantize]
    private readonly Module<Tensor, Tensor> conv3 = Conv2d(8, 8, 1);

    private readonly Module<Tensor, Tensor> pool = MaxPool2d(2);
    private readonly Module<Tensor, Tensor> up = Upsample(scale_factor: new double[] { 2, 2 }, mode: UpsampleMode.Bilinear, align_corners: false);
    private readonly Module<Tensor, Tensor> conv4 = Conv2d(8, 8, 3, padding: 1);
    private readonly Module<Tensor, Tensor> layerNorm = LayerNorm(new long[] { 16 });
    private readonly Module<Tensor, Tensor> flatten = Flatten();
    private readonly Module<Tensor, Tensor> fc = Linear(8 * 16 * 16, 10);
    private readonly Module<Tensor, Tensor> head = LogSoftmax(1);

    public FloatOpsNet()
        : base(nameof(FloatOpsNet))
    {
        // TorchSharp 0.107's GroupNorm leaves its weight and bias uninitialised (torch.empty): set them, as a trained
        // model's would be.
        using (torch.no_grad())
        {
            norm.weight!.uniform_(0.5, 1.5);
            norm.bias!.uniform_(-0.2, 0.2);
        }

        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        x = gelu.forward(norm.forward(shuffle.forward(conv1.forward(x))));
        x = relu2.forward(bn2.forward(conv2.forward(x)));
        x = up.forward(pool.forward(conv3.forward(x)));
        x = layerNorm.forward(conv4.forward(x));
        return head.forward(fc.forward(flatten.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>A PReLU (a learned slope per channel) has no int8 op and no float description: it runs, but cannot be stored.</summary>
[Quantize]
public partial class PReluNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1 = Conv2d(3, 8, 3, padding: 1);
    private readonly Module<Tensor, Tensor> act = PReLU(8);
    private readonly Module<Tensor, Tensor> conv2 = Conv2d(8, 4, 1);

    public PReluNet()
        : base(nameof(PReluNet)) => RegisterComponents();

    public override Tensor forward(Tensor x) => conv2.forward(act.forward(conv1.forward(x)));
}
