// The graph-mode sample models of Samples.cs as real [Quantize] classes, so the SDK's own compiler runs
// the generator on them during this project's build (InProjectModelTests checks what it produced).
using QuantGen;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Generator.Models.ResNet
{
    [Quantize]
    public partial class BasicBlock : Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Conv2d conv1;
        private readonly TorchSharp.Modules.BatchNorm2d bn1;
        private readonly TorchSharp.Modules.ReLU relu = ReLU();
        private readonly TorchSharp.Modules.Conv2d conv2;
        private readonly TorchSharp.Modules.BatchNorm2d bn2;
        private readonly TorchSharp.Modules.Sequential? downsample;

        public BasicBlock(long inplanes, long planes, long stride = 1) : base(nameof(BasicBlock))
        {
            conv1 = Conv2d(inplanes, planes, 3, stride: stride, padding: 1, bias: false);
            bn1 = BatchNorm2d(planes);
            conv2 = Conv2d(planes, planes, 3, padding: 1, bias: false);
            bn2 = BatchNorm2d(planes);
            downsample = stride != 1 || inplanes != planes
                ? Sequential(Conv2d(inplanes, planes, 1, stride: stride, bias: false), BatchNorm2d(planes))
                : null;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var identity = x;
            var y = conv1.forward(x);
            y = bn1.forward(y);
            y = relu.forward(y);
            y = conv2.forward(y);
            y = bn2.forward(y);
            if (downsample is not null)
            {
                identity = downsample.forward(x);
            }

            y += identity;
            y = relu.forward(y);
            return y;
        }
    }
}

namespace QuantGen.Tests.Generator.Models.ResNet
{
    [Quantize]
    public partial class SmallResNet : Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(3, 16, 7, stride: 2, padding: 3, bias: false);
        private readonly TorchSharp.Modules.BatchNorm2d bn1 = BatchNorm2d(16);
        private readonly TorchSharp.Modules.ReLU relu = ReLU();
        private readonly TorchSharp.Modules.MaxPool2d maxpool = MaxPool2d(3, stride: 2, padding: 1);
        private readonly TorchSharp.Modules.Sequential layer1 = Sequential(new BasicBlock(16, 16), new BasicBlock(16, 16));
        private readonly TorchSharp.Modules.Sequential layer2 = Sequential(new BasicBlock(16, 32, 2), new BasicBlock(32, 32));
        private readonly TorchSharp.Modules.AdaptiveAvgPool2d avgpool = AdaptiveAvgPool2d(new long[] { 1, 1 });
        private readonly TorchSharp.Modules.Linear fc = Linear(32, 10);

        public SmallResNet() : base(nameof(SmallResNet)) => RegisterComponents();

        public override Tensor forward(Tensor x)
        {
            x = conv1.forward(x);
            x = bn1.forward(x);
            x = relu.forward(x);
            x = maxpool.forward(x);
            x = layer1.forward(x);
            x = layer2.forward(x);
            x = avgpool.forward(x);
            x = torch.flatten(x, 1);
            return fc.forward(x);
        }
    }
}

namespace QuantGen.Tests.Generator.Models.Detection
{
    [Quantize]
    public partial class CenterNetHead : Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Conv2d stem = Conv2d(3, 16, 3, stride: 2, padding: 1, bias: false);
        private readonly TorchSharp.Modules.BatchNorm2d stemBn = BatchNorm2d(16);
        private readonly TorchSharp.Modules.ReLU relu = ReLU();
        private readonly TorchSharp.Modules.Conv2d down = Conv2d(16, 32, 3, stride: 2, padding: 1, bias: false);
        private readonly TorchSharp.Modules.BatchNorm2d downBn = BatchNorm2d(32);
        private readonly TorchSharp.Modules.Sequential deconv = Sequential(
            Conv2d(32, 32, 3, padding: 1), ConvTranspose2d(32, 32, 4, stride: 2, padding: 1, bias: false), BatchNorm2d(32), ReLU(),
            Conv2d(32, 16, 3, padding: 1), ConvTranspose2d(16, 16, 4, stride: 2, padding: 1, bias: false), BatchNorm2d(16), ReLU(),
            Conv2d(16, 16, 3, padding: 1), ConvTranspose2d(16, 16, 4, stride: 2, padding: 1, bias: false), BatchNorm2d(16), ReLU());
        private readonly TorchSharp.Modules.Sequential heatmap = Sequential(("conv", Conv2d(16, 16, 3, padding: 1)), ("relu", ReLU()), ("out", Conv2d(16, 2, 1)));
        private readonly TorchSharp.Modules.Sequential size = Sequential(("conv", Conv2d(16, 16, 3, padding: 1)), ("relu", ReLU()), ("out", Conv2d(16, 2, 1)));
        private readonly TorchSharp.Modules.Sequential offset = Sequential(("conv", Conv2d(16, 16, 3, padding: 1)), ("relu", ReLU()), ("out", Conv2d(16, 2, 1)));

        public CenterNetHead() : base(nameof(CenterNetHead)) => RegisterComponents();

        public override Tensor forward(Tensor image)
        {
            var x = relu.forward(stemBn.forward(stem.forward(image)));
            x = relu.forward(downBn.forward(down.forward(x)));
            var features = deconv.forward(x);
            var hm = heatmap.forward(features);
            var wh = size.forward(features);
            var reg = offset.forward(features);
            return torch.cat(new[] { hm, wh, reg }, 1);
        }
    }
}

namespace QuantGen.Tests.Generator.Models.Fashion
{
    [Quantize(QuantBackend.Qnnpack)]
    public partial class FashionCnn : Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 16, 3, padding: 1);
        private readonly TorchSharp.Modules.ReLU relu1 = ReLU();
        private readonly TorchSharp.Modules.MaxPool2d pool = MaxPool2d(2);
        private readonly TorchSharp.Modules.Conv2d conv2 = Conv2d(16, 32, 3, padding: 1);
        private readonly TorchSharp.Modules.Linear fc1 = Linear(32 * 7 * 7, 128);
        private readonly TorchSharp.Modules.Dropout dropout = Dropout(0.25);
        private readonly TorchSharp.Modules.Linear fc2 = Linear(128, 10);

        public FashionCnn() : base(nameof(FashionCnn)) => RegisterComponents();

        public override Tensor forward(Tensor x)
        {
            x = pool.forward(relu1.forward(conv1.forward(x)));
            x = functional.max_pool2d(functional.relu(conv2.forward(x)), 2);
            x = x.view(-1, 32 * 7 * 7);
            x = fc1.forward(x).relu();
            x = dropout.forward(x);
            return fc2.forward(x);
        }
    }
}
