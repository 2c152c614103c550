using System;
using System.Collections.Generic;
using QuantGen;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RealModels;

/// <summary>
/// torchvision's vgg16_bn: thirteen 3×3 conv + BatchNorm + ReLU layers and five 2×2 max pools from the "D"
/// config list (-1 marks a pool), appended one by one to a Sequential; a 7×7 adaptive average pool; and the
/// three-layer classifier with ReLU and Dropout. <paramref name="widthDivisor"/> divides every conv and hidden
/// width (1 = the real network, 138 M parameters), so tests and quick runs can use a thin copy.
/// </summary>
[Quantize]
public partial class Vgg16Bn : Module<Tensor, Tensor>
{
    private static readonly int[] Cfg =
    {
        64, 64, -1,
        128, 128, -1,
        256, 256, 256, -1,
        512, 512, 512, -1,
        512, 512, 512, -1,
    };

    private readonly Module<Tensor, Tensor> features;
    private readonly Module<Tensor, Tensor> avgpool;
    private readonly Module<Tensor, Tensor> classifier;

    public Vgg16Bn(long numClasses = 1000, int widthDivisor = 1, double dropout = 0.5)
        : base(nameof(Vgg16Bn))
    {
        if (widthDivisor < 1 || 64 % widthDivisor != 0)
        {
            throw new ArgumentException("widthDivisor must divide 64 (1, 2, 4, 8, 16, 32 or 64).", nameof(widthDivisor));
        }

        features = MakeLayers(Cfg, widthDivisor);
        avgpool = AdaptiveAvgPool2d(new long[] { 7, 7 });

        long lastChannels = 512 / widthDivisor;
        long hidden = 4096 / widthDivisor;
        classifier = Sequential(
            Linear(lastChannels * 7 * 7, hidden),
            ReLU(inplace: true),
            Dropout(dropout),
            Linear(hidden, hidden),
            ReLU(inplace: true),
            Dropout(dropout),
            Linear(hidden, numClasses));

        RegisterComponents();

        foreach (var (_, m) in named_modules())
        {
            if (m is Conv2d conv)
            {
                init.kaiming_normal_(conv.weight, mode: init.FanInOut.FanOut, nonlinearity: init.NonlinearityType.ReLU);
                if (conv.bias is not null) init.constant_(conv.bias, 0);
            }
            else if (m is BatchNorm2d bn)
            {
                init.constant_(bn.weight, 1);
                init.constant_(bn.bias, 0);
            }
            else if (m is Linear linear)
            {
                init.normal_(linear.weight, 0, 0.01);
                init.constant_(linear.bias, 0);
            }
        }
    }

    private static Sequential MakeLayers(int[] cfg, int widthDivisor)
    {
        var layers = Sequential();
        long inChannels = 3;
        foreach (int v in cfg)
        {
            if (v == -1)
            {
                layers.append(MaxPool2d(2, stride: 2));
            }
            else
            {
                long channels = v / widthDivisor;
                layers.append(Conv2d(inChannels, channels, 3, padding: 1));
                layers.append(BatchNorm2d(channels));
                layers.append(ReLU(inplace: true));
                inChannels = channels;
            }
        }

        return layers;
    }

    public override Tensor forward(Tensor x)
    {
        x = features.forward(x);
        x = avgpool.forward(x);
        x = x.view(x.shape[0], -1);
        x = classifier.forward(x);
        return x;
    }
}
