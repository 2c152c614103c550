using QuantGen;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ResNet18Example;

/// <summary>
/// torchvision's BasicBlock, written as an ordinary TorchSharp module: two 3×3 convs with BatchNorm, a
/// residual add, and a 1×1 downsample when the shape changes. No stubs, no hand-listed fusions: graph mode
/// fuses conv-bn-relu, conv-bn and add-relu by itself and inlines this block into the ResNet's graph.
/// </summary>
[Quantize]
public partial class BasicBlock : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly ReLU relu;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Sequential? downsample;

    public BasicBlock(long inplanes, long planes, long stride = 1)
        : base(nameof(BasicBlock))
    {
        conv1 = Conv2d(inplanes, planes, 3, stride: stride, padding: 1, bias: false);
        bn1 = BatchNorm2d(planes);
        relu = ReLU();
        conv2 = Conv2d(planes, planes, 3, stride: 1, padding: 1, bias: false);
        bn2 = BatchNorm2d(planes);
        downsample = stride != 1 || inplanes != planes
            ? Sequential(Conv2d(inplanes, planes, 1, stride: stride, bias: false), BatchNorm2d(planes))
            : null;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor identity = x;
        Tensor out_ = conv1.forward(x);
        out_ = bn1.forward(out_);
        out_ = relu.forward(out_);
        out_ = conv2.forward(out_);
        out_ = bn2.forward(out_);
        if (downsample is not null)
        {
            identity = downsample.forward(x);
        }

        out_ = out_ + identity;
        out_ = relu.forward(out_);
        return out_;
    }
}

/// <summary>torchvision's resnet18: a 7×7/2 stem, four stages of two BasicBlocks, global average pool, fc.</summary>
[Quantize]
public partial class ResNet18 : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1 = Conv2d(3, 64, 7, stride: 2, padding: 3, bias: false);
    private readonly BatchNorm2d bn1 = BatchNorm2d(64);
    private readonly ReLU relu = ReLU();
    private readonly MaxPool2d maxpool = MaxPool2d(3, stride: 2, padding: 1);
    private readonly Sequential layer1 = Sequential(new BasicBlock(64, 64), new BasicBlock(64, 64));
    private readonly Sequential layer2 = Sequential(new BasicBlock(64, 128, 2), new BasicBlock(128, 128));
    private readonly Sequential layer3 = Sequential(new BasicBlock(128, 256, 2), new BasicBlock(256, 256));
    private readonly Sequential layer4 = Sequential(new BasicBlock(256, 512, 2), new BasicBlock(512, 512));
    private readonly AdaptiveAvgPool2d avgpool = AdaptiveAvgPool2d(new long[] { 1, 1 });
    private readonly Linear fc;

    public ResNet18(long numClasses = 1000)
        : base(nameof(ResNet18))
    {
        fc = Linear(512, numClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = conv1.forward(x);
        x = bn1.forward(x);
        x = relu.forward(x);
        x = maxpool.forward(x);
        x = layer1.forward(x);
        x = layer2.forward(x);
        x = layer3.forward(x);
        x = layer4.forward(x);
        x = avgpool.forward(x);
        x = torch.flatten(x, 1);
        x = fc.forward(x);
        return x;
    }
}
