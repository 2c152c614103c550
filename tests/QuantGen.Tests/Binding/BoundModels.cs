using System.Collections.Generic;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// The permute in IdiomNet is there to run in float: its QG0023 warning is expected.
#pragma warning disable QG0023

namespace QuantGen.Tests.Binding;

// Models written the way TorchSharp users write them (general-typed members, blocks from helpers and loops,
// dispose scopes, modules QuantGen has no int8 op for), compiled through the generator like a user's.

/// <summary>A plain (not [Quantize]) residual block: its forward is captured and inlined at Prepare.</summary>
public class ResidualBlock : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> bn1;
    private readonly Module<Tensor, Tensor> conv2;
    private readonly Module<Tensor, Tensor> bn2;
    private readonly Module<Tensor, Tensor>? shortcut;

    public ResidualBlock(long inChannels, long outChannels, long stride)
        : base(nameof(ResidualBlock))
    {
        conv1 = Conv2d(inChannels, outChannels, 3, stride: stride, padding: 1, bias: false);
        bn1 = BatchNorm2d(outChannels);
        conv2 = Conv2d(outChannels, outChannels, 3, padding: 1, bias: false);
        bn2 = BatchNorm2d(outChannels);
        if (stride != 1 || inChannels != outChannels)
        {
            shortcut = Sequential(Conv2d(inChannels, outChannels, 1, stride: stride, bias: false), BatchNorm2d(outChannels));
        }

        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = functional.relu(bn1.forward(conv1.forward(x)));
        y = bn2.forward(conv2.forward(y));
        if (shortcut is null)
        {
            return y.add_(x).relu_().MoveToOuterDisposeScope();
        }

        return y.add_(shortcut.forward(x)).relu_().MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Every idiom at once: members typed Module&lt;Tensor, Tensor&gt;, a Sequential filled from a list in a helper,
/// a ModuleList looped over in forward, a LogSoftmax (no int8 op: float), permute and
/// scalar arithmetic (float), torch.cat of a List&lt;Tensor&gt;, view(x.shape[0], -1).
/// </summary>
[Quantize]
public partial class IdiomNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> stem;
    private readonly Module<Tensor, Tensor> blocks;
    private readonly ModuleList<Module<Tensor, Tensor>> heads = new();
    private readonly Module<Tensor, Tensor> act;
    private readonly Module<Tensor, Tensor> branchA;
    private readonly Module<Tensor, Tensor> branchB;
    private readonly Module<Tensor, Tensor> pool;
    private readonly Module<Tensor, Tensor> fc;

    public IdiomNet(long classes = 10)
        : base(nameof(IdiomNet))
    {
        stem = Sequential(("conv-1", Conv2d(3, 8, 3, padding: 1)), ("bn-1", BatchNorm2d(8)), ("relu", ReLU()));
        blocks = MakeBlocks(8, new long[] { 8, 16 });
        for (int i = 0; i < 2; i++)
        {
            heads.Add(Sequential(Conv2d(16, 16, 1), BatchNorm2d(16), ReLU()));
        }

        act = LogSoftmax(1);
        branchA = Conv2d(16, 8, 1);
        branchB = Conv2d(16, 8, 3, padding: 1);
        pool = AdaptiveAvgPool2d(2);
        fc = Linear(16 * 2 * 2, classes);
        RegisterComponents();
    }

    private static Module<Tensor, Tensor> MakeBlocks(long inChannels, long[] widths)
    {
        var layers = new List<(string, Module<Tensor, Tensor>)>();
        for (int i = 0; i < widths.Length; i++)
        {
            layers.Add(($"block{i}", new ResidualBlock(inChannels, widths[i], i == 0 ? 1 : 2)));
            inChannels = widths[i];
        }

        return Sequential(layers);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        x = stem.forward(x);
        x = blocks.forward(x);
        foreach (var head in heads)
        {
            x = head.forward(x);
        }

        x = act.forward(x);
        var outputs = new List<Tensor>();
        outputs.Add(branchA.forward(x));
        outputs.Add(branchB.forward(x));
        x = torch.cat(outputs, 1);
        x = x.permute(0, 1, 3, 2) * 0.5f;
        x = pool.forward(x);
        x = x.view(x.shape[0], -1);
        return fc.forward(x).MoveToOuterDisposeScope();
    }
}

/// <summary>Regression: a Sequential created empty and filled with append(...) in the constructor.</summary>
[Quantize]
public partial class AppendNet : Module<Tensor, Tensor>
{
    private readonly Sequential features = Sequential();
    private readonly Module<Tensor, Tensor> classifier;

    public AppendNet()
        : base(nameof(AppendNet))
    {
        features.append(Conv2d(3, 8, 3, padding: 1));
        features.append(ReLU());
        features.append("pool-1", MaxPool2d(2));
        features.append(Conv2d(8, 8, 3, padding: 1));
        classifier = Sequential(Flatten(), Linear(8 * 4 * 4, 5));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => classifier.forward(features.forward(x));
}

/// <summary>A member the forward calls although the constructor may leave it null (no guard).</summary>
[Quantize]
public partial class UnguardedNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv = Conv2d(3, 4, 1);
    private readonly Module<Tensor, Tensor>? extra;

    public UnguardedNet(bool withExtra)
        : base(nameof(UnguardedNet))
    {
        if (withExtra)
        {
            extra = Conv2d(4, 4, 1);
        }

        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => extra!.forward(conv.forward(x));
}

/// <summary>
/// Patterns from public TorchSharp models: a private nested block class (TorchSharpExamples' ResNet), a plain bool
/// field set in the constructor and 'training == false' as conditions, torch.cat of a collection initializer and
/// ConvTranspose2d + BatchNorm2d (a UNet decoder), view(new long[] { x.shape[0], K }) (AlexNet).
/// </summary>
[Quantize]
public partial class SurveyPatternsNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> encoder;
    private readonly Module<Tensor, Tensor> down;
    private readonly Module<Tensor, Tensor> up;
    private readonly Module<Tensor, Tensor> upBn;
    private readonly Module<Tensor, Tensor> fuse;
    private readonly Module<Tensor, Tensor> head;
    private bool useDown;

    public SurveyPatternsNet(bool useDown)
        : base(nameof(SurveyPatternsNet))
    {
        this.useDown = useDown;
        encoder = new Block(3, 8);
        down = Conv2d(8, 8, 3, stride: 2, padding: 1);
        up = ConvTranspose2d(8, 8, 2, stride: 2);
        upBn = BatchNorm2d(8);
        fuse = Conv2d(16, 4, 1);
        head = Linear(4 * 8 * 8, 5);
        RegisterComponents();
    }

    private class Block : Module<Tensor, Tensor>
    {
        private readonly Module<Tensor, Tensor> conv;
        private readonly Module<Tensor, Tensor> bn;

        public Block(long inChannels, long outChannels)
            : base(nameof(Block))
        {
            conv = Conv2d(inChannels, outChannels, 3, padding: 1);
            bn = BatchNorm2d(outChannels);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => functional.relu(bn.forward(conv.forward(x)));
    }

    public override Tensor forward(Tensor x)
    {
        var skip = encoder.forward(x);
        var y = skip;
        if (useDown)
        {
            y = down.forward(y);
            y = functional.relu(upBn.forward(up.forward(y)));
        }

        y = torch.cat(new List<Tensor> { y, skip }, 1);
        y = fuse.forward(y);
        y = y.view(new long[] { y.shape[0], 4 * 8 * 8 });
        y = head.forward(y);
        if (training == false)
        {
            y = functional.relu(y);
        }

        return y;
    }
}

/// <summary>Activations of modern vision models as modules: each runs in int8 by table.</summary>
[Quantize]
public partial class ActivationsNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1 = Conv2d(3, 8, 3, padding: 1);
    private readonly Module<Tensor, Tensor> leaky = LeakyReLU(0.1);
    private readonly Module<Tensor, Tensor> conv2 = Conv2d(8, 8, 3, padding: 1);
    private readonly Module<Tensor, Tensor> hardswish = Hardswish();
    private readonly Module<Tensor, Tensor> conv3 = Conv2d(8, 8, 1);
    private readonly Module<Tensor, Tensor> silu = SiLU();
    private readonly Module<Tensor, Tensor> conv4 = Conv2d(8, 4, 1);
    private readonly Module<Tensor, Tensor> gate = Sigmoid();

    public ActivationsNet()
        : base(nameof(ActivationsNet)) => RegisterComponents();

    public override Tensor forward(Tensor x) =>
        gate.forward(conv4.forward(silu.forward(conv3.forward(hardswish.forward(conv2.forward(leaky.forward(conv1.forward(x))))))));
}

/// <summary>[NoQuantize] on a general-typed member of a bound model: that member's call stays float.</summary>
[Quantize]
public partial class NoQuantizeMemberNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1 = Conv2d(3, 8, 3, padding: 1);

    [NoQuantize]
    private readonly Module<Tensor, Tensor> sensitive = Sequential(Conv2d(8, 8, 3, padding: 1), ReLU());

    private readonly Module<Tensor, Tensor> conv2 = Conv2d(8, 4, 1);

    public NoQuantizeMemberNet()
        : base(nameof(NoQuantizeMemberNet)) => RegisterComponents();

    public override Tensor forward(Tensor x) => conv2.forward(sensitive.forward(conv1.forward(x)));
}
