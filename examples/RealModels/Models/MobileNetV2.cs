using System;
using System.Collections.Generic;
using QuantGen;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RealModels;

/// <summary>
/// MobileNetV2's inverted residual: an optional 1×1 expansion (ConvBNReLU), a 3×3 depthwise ConvBNReLU, then a
/// linear 1×1 projection with BatchNorm; the input is added back when stride is 1 and the widths match. The
/// layers sit in one Sequential built from a list in the constructor, as in torchvision. A plain module.
/// </summary>
public class InvertedResidual : Module<Tensor, Tensor>
{
    private readonly bool useResShortcut;
    private readonly Sequential conv;

    public InvertedResidual(long inp, long oup, long stride, long expandRatio)
        : base(nameof(InvertedResidual))
    {
        if (stride != 1 && stride != 2) throw new ArgumentException($"stride should be 1 or 2, not {stride}", nameof(stride));

        long hiddenDim = inp * expandRatio;
        useResShortcut = stride == 1 && inp == oup;

        var layers = new List<Module<Tensor, Tensor>>();
        if (expandRatio != 1)
        {
            // pointwise expansion
            layers.Add(MobileNetV2.ConvBNReLU(inp, hiddenDim, kernelSize: 1));
        }

        // depthwise
        layers.Add(MobileNetV2.ConvBNReLU(hiddenDim, hiddenDim, stride: stride, groups: hiddenDim));
        // pointwise-linear
        layers.Add(Conv2d(hiddenDim, oup, 1, bias: false));
        layers.Add(BatchNorm2d(oup));
        conv = Sequential(layers);

        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (useResShortcut)
        {
            return x + conv.forward(x);
        }

        return conv.forward(x);
    }
}

/// <summary>
/// torchvision's mobilenet_v2: the features come from the {t, c, n, s} table (expansion, output channels,
/// repeats, first stride) in a loop, between a 3×3/2 stem and a 1×1 head, all ConvBNReLU with ReLU6.
/// <paramref name="widthMult"/> scales the channels (rounded to multiples of <paramref name="roundNearest"/>).
/// </summary>
[Quantize]
public partial class MobileNetV2 : Module<Tensor, Tensor>
{
    private static readonly int[][] InvertedResidualSetting =
    {
        // t, c, n, s
        new[] { 1, 16, 1, 1 },
        new[] { 6, 24, 2, 2 },
        new[] { 6, 32, 3, 2 },
        new[] { 6, 64, 4, 2 },
        new[] { 6, 96, 3, 1 },
        new[] { 6, 160, 3, 2 },
        new[] { 6, 320, 1, 1 },
    };

    private readonly Module<Tensor, Tensor> features;
    private readonly Module<Tensor, Tensor> classifier;

    public MobileNetV2(long numClasses = 1000, double widthMult = 1.0, long roundNearest = 8, double dropout = 0.2)
        : base(nameof(MobileNetV2))
    {
        long inputChannel = 32;
        long lastChannel = 1280;

        inputChannel = MakeDivisible(inputChannel * widthMult, roundNearest);
        long finalChannel = MakeDivisible(lastChannel * Math.Max(1.0, widthMult), roundNearest);

        var layers = new List<Module<Tensor, Tensor>>();
        layers.Add(ConvBNReLU(3, inputChannel, stride: 2));
        foreach (int[] setting in InvertedResidualSetting)
        {
            int t = setting[0], c = setting[1], n = setting[2], s = setting[3];
            long outputChannel = MakeDivisible(c * widthMult, roundNearest);
            for (int i = 0; i < n; i++)
            {
                long stride = i == 0 ? s : 1;
                layers.Add(new InvertedResidual(inputChannel, outputChannel, stride, expandRatio: t));
                inputChannel = outputChannel;
            }
        }

        layers.Add(ConvBNReLU(inputChannel, finalChannel, kernelSize: 1));
        features = Sequential(layers);

        classifier = Sequential(
            Dropout(dropout),
            Linear(finalChannel, numClasses));

        RegisterComponents();

        foreach (var (_, m) in named_modules())
        {
            if (m is Conv2d conv)
            {
                init.kaiming_normal_(conv.weight, mode: init.FanInOut.FanOut);
                if (conv.bias is not null) init.zeros_(conv.bias);
            }
            else if (m is BatchNorm2d bn)
            {
                init.ones_(bn.weight);
                init.zeros_(bn.bias);
            }
            else if (m is Linear linear)
            {
                init.normal_(linear.weight, 0, 0.01);
                init.zeros_(linear.bias);
            }
        }
    }

    /// <summary>Conv2d (same padding, no bias) + BatchNorm2d + ReLU6, torchvision's ConvBNReLU.</summary>
    public static Sequential ConvBNReLU(long inPlanes, long outPlanes, long kernelSize = 3, long stride = 1, long groups = 1)
    {
        long padding = (kernelSize - 1) / 2;
        return Sequential(
            Conv2d(inPlanes, outPlanes, kernelSize, stride: stride, padding: padding, groups: groups, bias: false),
            BatchNorm2d(outPlanes),
            ReLU6(inplace: true));
    }

    /// <summary>Rounds <paramref name="v"/> to a multiple of <paramref name="divisor"/>, never more than 10% down.</summary>
    private static long MakeDivisible(double v, long divisor, long? minValue = null)
    {
        long min = minValue ?? divisor;
        long newV = Math.Max(min, (long)(v + divisor / 2.0) / divisor * divisor);
        if (newV < 0.9 * v)
        {
            newV += divisor;
        }

        return newV;
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        x = features.forward(x);
        x = functional.adaptive_avg_pool2d(x, 1);
        x = torch.flatten(x, 1);
        x = classifier.forward(x);
        return x.MoveToOuterDisposeScope();
    }
}
