namespace QuantGen.Tests.Generator;

/// <summary>User models the generator tests run on; bad samples mark the line a diagnostic must point at with "//&lt;-".</summary>
public static class Samples
{
    public const string Marker = "//<-";

    /// <summary>Usings every sample starts with.</summary>
    public const string Usings = """
        using QuantGen;
        using QuantGen.Modules;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        """;

    /// <summary>Seed 000, PyTorch's eager-mode quantization QuickStart, as the contract writes it.</summary>
    public static readonly SourceFile Seed000 = new("M.cs", """
        using QuantGen;
        using QuantGen.Modules;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        [Quantize]                                   // X86 by default; [Quantize(QuantBackend.Qnnpack)]
        [Fuse(nameof(conv1), nameof(relu))]
        public partial class M : Module<Tensor, Tensor>
        {
            private readonly QuantStub quant = new();
            private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
            private readonly TorchSharp.Modules.ReLU relu = ReLU();
            private readonly TorchSharp.Modules.Conv2d conv2 = Conv2d(1, 1, 1);
            private readonly DeQuantStub dequant = new();

            public M() : base(nameof(M)) => RegisterComponents();

            public override Tensor forward(Tensor x)
            {
                x = quant.forward(x);
                x = conv1.forward(x);
                x = relu.forward(x);
                x = conv2.forward(x);
                x = dequant.forward(x);
                return x;
            }
        }
        """);

    /// <summary>conv+bn+relu, flatten, linear+relu, an unfused linear; Qnnpack; namespaced; nested calls and .call.</summary>
    public static readonly SourceFile VisionNet = new("Net.cs", """
        using QuantGen;
        using QuantGen.Modules;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Samples.Vision;

        [Quantize(QuantBackend.Qnnpack)]
        [Fuse(nameof(conv1), nameof(bn1), nameof(relu1))]
        [Fuse(nameof(fc1), nameof(relu2))]
        public partial class Net : Module<Tensor, Tensor>
        {
            private readonly QuantStub quant = new();
            private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(3, 8, 3, padding: 1);
            private readonly TorchSharp.Modules.BatchNorm2d bn1 = BatchNorm2d(8);
            private readonly TorchSharp.Modules.ReLU relu1 = ReLU();
            private readonly TorchSharp.Modules.Flatten flatten = Flatten();
            private readonly TorchSharp.Modules.Linear fc1 = Linear(8 * 4 * 4, 16);
            private readonly TorchSharp.Modules.ReLU relu2 = ReLU();
            private readonly TorchSharp.Modules.Linear fc2 = Linear(16, 10);
            private readonly DeQuantStub dequant = new();

            public Net() : base(nameof(Net)) => RegisterComponents();

            public override Tensor forward(Tensor input)
            {
                var x = quant.forward(input);
                x = relu1.forward(bn1.forward(conv1.forward(x)));
                x = flatten.call(x);
                x = this.relu2.forward(fc1.forward(x));
                Tensor y = fc2.forward(x);
                return dequant.forward(y);
            }
        }
        """);

    /// <summary>No stubs (the whole forward is quantized), expression body, Identity, Flatten(1, 3) as a property.</summary>
    public static readonly SourceFile NoStubs = new("Tiny.cs", """
        using QuantGen;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        [Quantize]
        [Fuse("conv", "relu")]
        internal partial class Tiny : Module<Tensor, Tensor>
        {
            private readonly TorchSharp.Modules.Conv2d conv = Conv2d(1, 2, 1);
            private readonly TorchSharp.Modules.ReLU relu = ReLU();
            private readonly TorchSharp.Modules.Identity skip = Identity();
            private TorchSharp.Modules.Flatten flat { get; } = Flatten(1, 3);
            private readonly TorchSharp.Modules.Linear head = Linear(2, 3);

            public Tiny() : base(nameof(Tiny)) => RegisterComponents();

            public override Tensor forward(Tensor x) => head.forward(flat.forward(skip.forward(relu.forward(conv.forward(x)))));
        }
        """);

    /// <summary>
    /// Nested in a generic class, a Flatten whose start_dim is only known at run time, an unfused ReLU (AutoFuse off), a
    /// member named with a keyword and a member named "input" next to the generated input quantizer.
    /// </summary>
    public static readonly SourceFile NestedGeneric = new("Zoo.cs", """
        using QuantGen;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Samples
        {
            public partial class Zoo<TTag>
            {
                [Quantize(Backend = QuantBackend.Qnnpack, AutoFuse = false)]
                public partial class Mlp : Module<Tensor, Tensor>
                {
                    private static readonly long StartDim = 1;
                    private readonly TorchSharp.Modules.Flatten flatten = Flatten(StartDim);
                    private readonly TorchSharp.Modules.Linear input = Linear(4, 4);
                    private readonly TorchSharp.Modules.ReLU act = ReLU();
                    private readonly TorchSharp.Modules.Linear @fixed = Linear(4, 2);

                    public Mlp() : base(nameof(Mlp)) => RegisterComponents();

                    public override Tensor forward(Tensor x)
                    {
                        using var flat = flatten.forward(x);
                        x = input.forward(flat);
                        x = act.forward(x);
                        return @fixed.forward(x);
                    }
                }
            }
        }
        """);

    /// <summary>torchvision's BasicBlock: residual add, relu called twice, a downsample that may be null.</summary>
    public static readonly SourceFile BasicBlock = new("BasicBlock.cs", """
        using QuantGen;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Samples.ResNet;

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
        """);

    /// <summary>A small ResNet: stem, max pool, two Sequential layers of BasicBlocks (the second downsamples), pool, flatten, fc.</summary>
    public static readonly SourceFile SmallResNet = new("SmallResNet.cs", """
        using QuantGen;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Samples.ResNet;

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
        """);

    /// <summary>
    /// A CenterNet-style head: a small backbone, the seed-002 upsampler (Conv2d → ConvTranspose2d +
    /// BatchNorm2d + ReLU, three times) and three heads joined by torch.cat on dim 1.
    /// </summary>
    public static readonly SourceFile CenterNetHead = new("CenterNetHead.cs", """
        using QuantGen;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Samples.Detection;

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
        """);

    /// <summary>A Fashion-MNIST CNN: conv-relu-maxpool twice (module and functional), flatten, linear-relu, dropout, linear.</summary>
    public static readonly SourceFile FashionCnn = new("FashionCnn.cs", """
        using QuantGen;
        using TorchSharp;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Samples.Fashion;

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
        """);

    /// <summary>Models that must produce no diagnostics and compile cleanly.</summary>
    public static readonly SourceFile[] Good = { Seed000, VisionNet, NoStubs, NestedGeneric, FashionCnn, CenterNetHead };

    /// <summary>Good models that need another file: (path of the model, its files).</summary>
    public static readonly (string Path, SourceFile[] Files)[] GoodGroups =
    {
        (BasicBlock.Path, new[] { BasicBlock }),
        (SmallResNet.Path, new[] { SmallResNet, BasicBlock }),
    };

    /// <summary>A class with [Quantize] around <paramref name="body"/> (members + forward), for bad samples.</summary>
    public static SourceFile Model(string body, string attributes = "[Quantize]", string header = "public partial class Bad : Module<Tensor, Tensor>") =>
        new("Bad.cs", Usings + attributes + "\n" + header + "\n{\n" + body + "\n}\n");

    /// <summary>The seed's members, for bad samples that only change forward or the attributes.</summary>
    public const string SeedMembers = """
            private readonly QuantStub quant = new();
            private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(1, 1, 1);
            private readonly TorchSharp.Modules.ReLU relu = ReLU();
            private readonly TorchSharp.Modules.Conv2d conv2 = Conv2d(1, 1, 1);
            private readonly DeQuantStub dequant = new();
            public Bad() : base(nameof(Bad)) => RegisterComponents();
        """;
}
