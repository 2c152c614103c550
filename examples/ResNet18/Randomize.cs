using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResNet18Example;

/// <summary>Gives freshly initialised BatchNorm layers non-trivial statistics, so folding them is exercised.</summary>
public static class Randomize
{
    /// <summary>Sets every BatchNorm2d's running mean/var, weight and bias to plausible random values.</summary>
    public static void BatchNormStatistics(nn.Module model, int seed)
    {
        using var generator = new torch.Generator((ulong)seed + 1);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach ((string _, nn.Module module) in model.named_modules())
        {
            if (module is BatchNorm2d bn)
            {
                long c = bn.running_mean!.shape[0];
                bn.running_mean.copy_(torch.randn(c, generator: generator) * 0.1f);
                bn.running_var!.copy_(torch.rand(c, generator: generator) * 0.5f + 0.75f);
                bn.weight!.copy_(torch.rand(c, generator: generator) * 0.5f + 0.75f);
                bn.bias!.copy_(torch.randn(c, generator: generator) * 0.1f);
            }
        }
    }
}
