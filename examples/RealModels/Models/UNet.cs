using QuantGen;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RealModels;

/// <summary>(Conv 3×3 → BatchNorm → ReLU) × 2, as the popular PyTorch UNet (milesial/Pytorch-UNet) writes its DoubleConv.</summary>
public class DoubleConv : Module<Tensor, Tensor>
{
    private readonly Sequential double_conv;

    public DoubleConv(long inChannels, long outChannels, long? midChannels = null)
        : base(nameof(DoubleConv))
    {
        long mid = midChannels ?? outChannels;
        double_conv = Sequential(
            Conv2d(inChannels, mid, kernel_size: 3, padding: 1, bias: false),
            BatchNorm2d(mid),
            ReLU(inplace: true),
            Conv2d(mid, outChannels, kernel_size: 3, padding: 1, bias: false),
            BatchNorm2d(outChannels),
            ReLU(inplace: true));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => double_conv.forward(x);
}

/// <summary>Downscaling: max-pool 2×2, then <see cref="DoubleConv"/>.</summary>
public class Down : Module<Tensor, Tensor>
{
    private readonly Sequential maxpool_conv;

    public Down(long inChannels, long outChannels)
        : base(nameof(Down))
    {
        maxpool_conv = Sequential(MaxPool2d(2), new DoubleConv(inChannels, outChannels));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => maxpool_conv.forward(x);
}

/// <summary>Upscaling with a learned ConvTranspose2d(k 2, s 2), the skip connection concatenated on channels, then <see cref="DoubleConv"/>.</summary>
public class Up : Module<Tensor, Tensor, Tensor>
{
    private readonly ConvTranspose2d up;
    private readonly DoubleConv conv;

    public Up(long inChannels, long outChannels)
        : base(nameof(Up))
    {
        up = ConvTranspose2d(inChannels, inChannels / 2, kernel_size: 2, stride: 2);
        conv = new DoubleConv(inChannels, outChannels);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x1, Tensor x2)
    {
        x1 = up.forward(x1);
        // The input sizes are multiples of 16 here, so no padding to match the skip's size is needed.
        return conv.forward(torch.cat(new[] { x2, x1 }, 1));
    }
}

/// <summary>
/// A UNet for segmentation as PyTorch users write it (milesial/Pytorch-UNet's UNet with bilinear = false): an input
/// DoubleConv, four <see cref="Down"/> and four <see cref="Up"/> stages as named fields, the skip connections passed
/// explicitly, and a 1×1 output convolution. Base width 16 (16 → 256 channels); the up-sampling is ConvTranspose2d.
/// Only <c>[Quantize]</c> and <c>partial</c> are added for QuantGen.
/// </summary>
[Quantize]
public partial class UNet : Module<Tensor, Tensor>
{
    private readonly DoubleConv inc;
    private readonly Down down1, down2, down3, down4;
    private readonly Up up1, up2, up3, up4;
    private readonly Conv2d outc;

    public UNet(long inChannels = 3, long classes = 2, long baseWidth = 16)
        : base(nameof(UNet))
    {
        long w = baseWidth;
        inc = new DoubleConv(inChannels, w);
        down1 = new Down(w, w * 2);
        down2 = new Down(w * 2, w * 4);
        down3 = new Down(w * 4, w * 8);
        down4 = new Down(w * 8, w * 16);
        up1 = new Up(w * 16, w * 8);
        up2 = new Up(w * 8, w * 4);
        up3 = new Up(w * 4, w * 2);
        up4 = new Up(w * 2, w);
        outc = Conv2d(w, classes, kernel_size: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor x1 = inc.forward(x);
        Tensor x2 = down1.forward(x1);
        Tensor x3 = down2.forward(x2);
        Tensor x4 = down3.forward(x3);
        Tensor x5 = down4.forward(x4);
        x = up1.forward(x5, x4);
        x = up2.forward(x, x3);
        x = up3.forward(x, x2);
        x = up4.forward(x, x1);
        return outc.forward(x);
    }
}
