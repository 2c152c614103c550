using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Binding;

// Squeeze-excitation as TorchSharp users write it (torchvision's SqueezeExcitation with a mean for the squeeze),
// and a scaled residual: mul of two tensors with broadcasting, mean over dims, and constant mul/add.

/// <summary>Squeeze-excitation: mean over H and W, a 1×1 conv down, ReLU, a 1×1 conv up, Sigmoid, times the input.</summary>
public class SqueezeExcitation : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> fc1;
    private readonly Module<Tensor, Tensor> activation;
    private readonly Module<Tensor, Tensor> fc2;
    private readonly Module<Tensor, Tensor> scaleActivation;

    public SqueezeExcitation(long channels, long squeezeChannels)
        : base(nameof(SqueezeExcitation))
    {
        fc1 = Conv2d(channels, squeezeChannels, 1);
        activation = ReLU();
        fc2 = Conv2d(squeezeChannels, channels, 1);
        scaleActivation = Sigmoid();
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        var scale = input.mean(new long[] { 2, 3 }, keepdim: true);
        scale = activation.forward(fc1.forward(scale));
        scale = scaleActivation.forward(fc2.forward(scale));
        return scale * input;
    }
}

/// <summary>A conv stem, a squeeze-excitation block, a scaled residual (<c>x + 0.5 * y</c>, then <c>+ 1</c>) and a 1×1 head.</summary>
[Quantize]
public partial class SeNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> stem;
    private readonly Module<Tensor, Tensor> se;
    private readonly Module<Tensor, Tensor> conv;
    private readonly Module<Tensor, Tensor> head;

    public SeNet()
        : base(nameof(SeNet))
    {
        stem = Sequential(Conv2d(3, 16, 3, padding: 1), BatchNorm2d(16), ReLU());
        se = new SqueezeExcitation(16, 4);
        conv = Sequential(Conv2d(16, 16, 3, padding: 1), BatchNorm2d(16));
        head = Conv2d(16, 8, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = se.forward(stem.forward(x));
        var residual = y + conv.forward(y) * 0.5f;
        return head.forward(residual + 1).MoveToOuterDisposeScope();
    }
}

/// <summary>Every spelling of the new ops the capture takes: torch.mul, x.mul(y), *=, x.mul(c), c * x, x.add(c), torch.mean.</summary>
[Quantize]
public partial class MulSpellingsNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> conv2;

    public MulSpellingsNet()
        : base(nameof(MulSpellingsNet))
    {
        conv1 = Conv2d(3, 4, 1);
        conv2 = Conv2d(3, 4, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var a = conv1.forward(x);
        var b = conv2.forward(x);
        var c = torch.mul(a, b);
        c = c.mul(torch.mean(b, new long[] { 2, 3 }, true));
        c *= a;
        c = 2 * c.mul(0.25);
        c = c.add(-0.5f);
        return c * -1.5f;
    }
}
