using System;
using System.Collections.Generic;
using QuantGen;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RealModels;

/// <summary>
/// torchvision's ResNet-50 bottleneck block (1×1 reduce, 3×3, 1×1 expand ×4, residual add, ReLU), written the
/// way TorchSharp users write it: fields typed <c>Module&lt;Tensor, Tensor&gt;</c>, an optional downsample that is
/// null when the shapes already match, and a dispose scope in forward. It is a plain module, not [Quantize]:
/// QuantGen must see through it from the ResNet50 that contains it.
/// </summary>
public class Bottleneck : Module<Tensor, Tensor>
{
    public const int Expansion = 4;

    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> bn1;
    private readonly Module<Tensor, Tensor> conv2;
    private readonly Module<Tensor, Tensor> bn2;
    private readonly Module<Tensor, Tensor> conv3;
    private readonly Module<Tensor, Tensor> bn3;
    private readonly Module<Tensor, Tensor> relu;
    private readonly Module<Tensor, Tensor>? downsample;

    public Bottleneck(long inplanes, long planes, long stride = 1, Module<Tensor, Tensor>? downsample = null)
        : base(nameof(Bottleneck))
    {
        conv1 = Conv2d(inplanes, planes, 1, bias: false);
        bn1 = BatchNorm2d(planes);
        conv2 = Conv2d(planes, planes, 3, stride: stride, padding: 1, bias: false);
        bn2 = BatchNorm2d(planes);
        conv3 = Conv2d(planes, planes * Expansion, 1, bias: false);
        bn3 = BatchNorm2d(planes * Expansion);
        relu = ReLU(inplace: true);
        this.downsample = downsample;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        Tensor identity = x;

        Tensor out_ = conv1.forward(x);
        out_ = bn1.forward(out_);
        out_ = relu.forward(out_);

        out_ = conv2.forward(out_);
        out_ = bn2.forward(out_);
        out_ = relu.forward(out_);

        out_ = conv3.forward(out_);
        out_ = bn3.forward(out_);

        if (downsample != null)
        {
            identity = downsample.forward(x);
        }

        out_ += identity;
        out_ = relu.forward(out_);
        return out_.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// torchvision's resnet50 ([3, 4, 6, 3] bottlenecks). The stages come from a MakeLayer helper that builds a list
/// in a loop and wraps it in a Sequential, as in torchvision's <c>_make_layer</c>. <paramref name="baseWidth"/>
/// (64 in the real network) scales every stage's width, so tests can run a thin copy quickly.
/// </summary>
[Quantize]
public partial class ResNet50 : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> bn1;
    private readonly Module<Tensor, Tensor> relu;
    private readonly Module<Tensor, Tensor> maxpool;
    private readonly Module<Tensor, Tensor> layer1;
    private readonly Module<Tensor, Tensor> layer2;
    private readonly Module<Tensor, Tensor> layer3;
    private readonly Module<Tensor, Tensor> layer4;
    private readonly Module<Tensor, Tensor> avgpool;
    private readonly Module<Tensor, Tensor> fc;

    private long inplanes;

    public ResNet50(long numClasses = 1000, long baseWidth = 64)
        : base(nameof(ResNet50))
    {
        inplanes = baseWidth;
        conv1 = Conv2d(3, inplanes, 7, stride: 2, padding: 3, bias: false);
        bn1 = BatchNorm2d(inplanes);
        relu = ReLU(inplace: true);
        maxpool = MaxPool2d(3, stride: 2, padding: 1);
        layer1 = MakeLayer(baseWidth, 3);
        layer2 = MakeLayer(baseWidth * 2, 4, stride: 2);
        layer3 = MakeLayer(baseWidth * 4, 6, stride: 2);
        layer4 = MakeLayer(baseWidth * 8, 3, stride: 2);
        avgpool = AdaptiveAvgPool2d(1);
        fc = Linear(baseWidth * 8 * Bottleneck.Expansion, numClasses);

        RegisterComponents();

        foreach (var (_, m) in named_modules())
        {
            switch (m)
            {
                case Conv2d conv:
                    init.kaiming_normal_(conv.weight, mode: init.FanInOut.FanOut, nonlinearity: init.NonlinearityType.ReLU);
                    break;
                case BatchNorm2d bn:
                    init.constant_(bn.weight, 1);
                    init.constant_(bn.bias, 0);
                    break;
            }
        }
    }

    private Module<Tensor, Tensor> MakeLayer(long planes, int blocks, long stride = 1)
    {
        Module<Tensor, Tensor>? downsample = null;
        if (stride != 1 || inplanes != planes * Bottleneck.Expansion)
        {
            downsample = Sequential(
                Conv2d(inplanes, planes * Bottleneck.Expansion, 1, stride: stride, bias: false),
                BatchNorm2d(planes * Bottleneck.Expansion));
        }

        var layers = new List<(string, Module<Tensor, Tensor>)>();
        layers.Add(("0", new Bottleneck(inplanes, planes, stride, downsample)));
        inplanes = planes * Bottleneck.Expansion;
        for (int i = 1; i < blocks; i++)
        {
            layers.Add(($"{i}", new Bottleneck(inplanes, planes)));
        }

        return Sequential(layers);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        x = conv1.forward(x);
        x = bn1.forward(x);
        x = relu.forward(x);
        x = maxpool.forward(x);

        x = layer1.forward(x);
        x = layer2.forward(x);
        x = layer3.forward(x);
        x = layer4.forward(x);

        x = avgpool.forward(x);
        x = x.flatten(1);
        x = fc.forward(x);
        return x.MoveToOuterDisposeScope();
    }
}
