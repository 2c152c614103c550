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
    /// Nested in a generic class, a Flatten whose start_dim is only known at run time, an unfused ReLU, a
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
                [Quantize(Backend = QuantBackend.Qnnpack)]
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

    /// <summary>Models that must produce no diagnostics and compile cleanly.</summary>
    public static readonly SourceFile[] Good = { Seed000, VisionNet, NoStubs, NestedGeneric };

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
