using QuantGen;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Binding;

/// <summary>Conv 3×3 → BatchNorm → ReLU, twice (a UNet's DoubleConv).</summary>
public sealed class TinyDoubleConv : Module<Tensor, Tensor>
{
    private readonly Sequential block;

    public TinyDoubleConv(long inChannels, long outChannels)
        : base(nameof(TinyDoubleConv))
    {
        block = Sequential(
            Conv2d(inChannels, outChannels, 3, padding: 1, bias: false), BatchNorm2d(outChannels), ReLU(),
            Conv2d(outChannels, outChannels, 3, padding: 1, bias: false), BatchNorm2d(outChannels), ReLU());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => block.forward(x);
}

/// <summary>A UNet up-sampling stage: ConvTranspose2d(k 2, s 2) on the deep input, the skip concatenated first, then a DoubleConv.</summary>
public sealed class TinyUp : Module<Tensor, Tensor, Tensor>
{
    private readonly ConvTranspose2d up;
    private readonly TinyDoubleConv conv;

    public TinyUp(long inChannels, long outChannels)
        : base(nameof(TinyUp))
    {
        up = ConvTranspose2d(inChannels, inChannels / 2, kernel_size: 2, stride: 2);
        conv = new TinyDoubleConv(inChannels, outChannels);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor skip)
    {
        Tensor upsampled = up.forward(x);
        return conv.forward(torch.cat(new[] { skip, upsampled }, 1));
    }
}

/// <summary>A three-input gate block: <c>relu(a + b) + c</c> through a 1×1 conv, its parameters in an expression body.</summary>
public sealed class TinyMerge3 : Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly Conv2d mix;

    public TinyMerge3(long channels)
        : base(nameof(TinyMerge3))
    {
        mix = Conv2d(channels, channels, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor a, Tensor b, Tensor c) => mix.forward(functional.relu(a + b)) + c;
}

/// <summary>
/// A two-level UNet as users write it (milesial's layout at toy size): named down and up stages, skips passed to a
/// module of two tensors, and a three-tensor merge block.
/// </summary>
[Quantize]
public sealed partial class TinyUNet : Module<Tensor, Tensor>
{
    private readonly TinyDoubleConv inc = new(3, 8);
    private readonly Sequential down1 = Sequential(MaxPool2d(2), new TinyDoubleConv(8, 16));
    private readonly Sequential down2 = Sequential(MaxPool2d(2), new TinyDoubleConv(16, 32));
    private readonly TinyUp up1 = new(32, 16);
    private readonly TinyUp up2 = new(16, 8);
    private readonly TinyMerge3 merge = new(8);
    private readonly Conv2d outc = Conv2d(8, 2, 1);

    public TinyUNet()
        : base(nameof(TinyUNet)) => RegisterComponents();

    public override Tensor forward(Tensor x)
    {
        Tensor x1 = inc.forward(x);
        Tensor x2 = down1.forward(x1);
        Tensor x3 = down2.forward(x2);
        Tensor y = up1.forward(x3, x2);
        y = up2.call(y, x1);
        y = merge.forward(y, x1, y);
        return outc.forward(y);
    }
}
