using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Qat;

/// <summary>
/// A small net written as TorchSharp users write one: members typed <c>Module&lt;Tensor, Tensor&gt;</c>, a stem built by a
/// helper as a Sequential, a conv-bn block with a residual add and ReLU, a pool, flatten and two linear layers. The
/// bound form (Prepare binds it at run time), so PrepareQat follows the same binding.
/// </summary>
[Quantize]
public partial class QatNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> stem;
    private readonly Module<Tensor, Tensor> conv = Conv2d(8, 8, 3, padding: 1, bias: false);
    private readonly Module<Tensor, Tensor> bn = BatchNorm2d(8);
    private readonly Module<Tensor, Tensor> relu = ReLU();
    private readonly Module<Tensor, Tensor> pool = AdaptiveAvgPool2d(1);
    private readonly Module<Tensor, Tensor> fc1 = Linear(8, 16);
    private readonly Module<Tensor, Tensor> act = ReLU();
    private readonly Module<Tensor, Tensor> fc2 = Linear(16, 4);

    public QatNet()
        : base(nameof(QatNet))
    {
        stem = ConvBnRelu(1, 8);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        x = stem.forward(x);
        x = relu.forward(bn.forward(conv.forward(x)) + x);
        x = pool.forward(x).flatten(1);
        return fc2.forward(act.forward(fc1.forward(x))).MoveToOuterDisposeScope();
    }

    private static Module<Tensor, Tensor> ConvBnRelu(long input, long output) =>
        Sequential(Conv2d(input, output, 3, padding: 1), BatchNorm2d(output), ReLU());
}

/// <summary>One conv-bn-relu, for checking the fused QAT forward against a re-computation by hand.</summary>
[Quantize]
public partial class QatConvBnNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv = Conv2d(3, 5, 3, padding: 1);
    private readonly Module<Tensor, Tensor> bn = BatchNorm2d(5);
    private readonly Module<Tensor, Tensor> relu = ReLU();

    public QatConvBnNet()
        : base(nameof(QatConvBnNet)) => RegisterComponents();

    public Conv2d Conv => (Conv2d)conv;

    public BatchNorm2d Norm => (BatchNorm2d)bn;

    public override Tensor forward(Tensor x) => relu.forward(bn.forward(conv.forward(x)));
}

/// <summary>A gate with a Sigmoid (PyTorch's fixed qparams 1/256) and a transposed conv with a BatchNorm.</summary>
[Quantize]
public partial class QatGateNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv = Conv2d(2, 4, 3, padding: 1);
    private readonly Module<Tensor, Tensor> gate = Sigmoid();
    private readonly Module<Tensor, Tensor> up = ConvTranspose2d(4, 3, 2, stride: 2);
    private readonly Module<Tensor, Tensor> upBn = BatchNorm2d(3);

    public QatGateNet()
        : base(nameof(QatGateNet)) => RegisterComponents();

    public override Tensor forward(Tensor x) => upBn.forward(up.forward(gate.forward(conv.forward(x))));
}

/// <summary>The generated form (concrete member types, the source says everything), to check PrepareQat's names match its Prepare's.</summary>
[Quantize]
public partial class QatGeneratedFormNet : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1 = Conv2d(1, 6, 3, padding: 1, bias: false);
    private readonly BatchNorm2d bn1 = BatchNorm2d(6);
    private readonly ReLU relu1 = ReLU();
    private readonly MaxPool2d pool = MaxPool2d(2);
    private readonly Conv2d conv2 = Conv2d(6, 6, 3, padding: 1);
    private readonly ReLU relu2 = ReLU();
    private readonly Linear fc = Linear(6 * 4 * 4, 3);

    public QatGeneratedFormNet()
        : base(nameof(QatGeneratedFormNet)) => RegisterComponents();

    public override Tensor forward(Tensor x)
    {
        x = pool.forward(relu1.forward(bn1.forward(conv1.forward(x))));
        x = relu2.forward(conv2.forward(x)) + x;
        x = torch.flatten(x, 1);
        return fc.forward(x);
    }
}

/// <summary>The README's first model: QuantStub and DeQuantStub, and a [Fuse] (the generated form, eager-mode style).</summary>
[Quantize]
[Fuse(nameof(conv1), nameof(relu))]
public partial class QatStubNet : Module<Tensor, Tensor>
{
    private readonly QuantGen.Modules.QuantStub quant = new();
    private readonly Conv2d conv1 = Conv2d(1, 4, 3);
    private readonly ReLU relu = ReLU();
    private readonly Conv2d conv2 = Conv2d(4, 1, 1);
    private readonly QuantGen.Modules.DeQuantStub dequant = new();

    public QatStubNet()
        : base(nameof(QatStubNet)) => RegisterComponents();

    public override Tensor forward(Tensor x) =>
        dequant.forward(conv2.forward(relu.forward(conv1.forward(quant.forward(x)))));
}
