using System.Collections.Generic;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.QConfigs;

/// <summary>
/// A model as PyTorch's eager-mode quantization tutorial writes it (QuantStub, conv1+relu1 fused, conv2, flatten, fc,
/// DeQuantStub), so its layers have the names a PyTorch quantized state_dict uses: quant, conv1, conv2, fc.
/// The generated form.
/// </summary>
[Quantize]
[Fuse(nameof(conv1), nameof(relu1))]
public partial class EagerNet : Module<Tensor, Tensor>
{
    private readonly QuantStub quant = new();
    private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(3, 4, 3, padding: 1);
    private readonly TorchSharp.Modules.ReLU relu1 = ReLU();
    private readonly TorchSharp.Modules.Conv2d conv2 = Conv2d(4, 6, 3);
    private readonly TorchSharp.Modules.Flatten flatten = Flatten();
    private readonly TorchSharp.Modules.Linear fc = Linear(6 * 4 * 4, 5);
    private readonly DeQuantStub dequant = new();

    /// <summary>Creates the float model; input [N, 3, 6, 6].</summary>
    public EagerNet()
        : base(nameof(EagerNet)) => RegisterComponents();

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        Tensor x = quant.forward(input);
        x = relu1.forward(conv1.forward(x));
        x = conv2.forward(x);
        x = flatten.forward(x);
        x = fc.forward(x);
        return dequant.forward(x);
    }
}

/// <summary>
/// The same network as TorchSharp users write it (general-typed members, a Sequential filled in a loop, no stubs):
/// the bound form. Its layers: input, features.conv-1 (ReLU fused), features.conv-2, head.
/// </summary>
[Quantize]
public partial class LoopNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> features;
    private readonly Module<Tensor, Tensor> head;

    /// <summary>Creates the float model; input [N, 3, 6, 6].</summary>
    public LoopNet()
        : base(nameof(LoopNet))
    {
        var layers = new List<(string, Module<Tensor, Tensor>)>();
        long channels = 3;
        int index = 1;
        foreach (long width in new long[] { 4, 6 })
        {
            layers.Add(($"conv-{index}", Conv2d(channels, width, 3, padding: index == 1 ? 1 : 0)));
            if (index == 1)
            {
                layers.Add(($"relu-{index}", ReLU()));
            }

            channels = width;
            index++;
        }

        features = Sequential(layers);
        head = Linear(6 * 4 * 4, 5);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => head.forward(features.forward(x).flatten(1));
}
