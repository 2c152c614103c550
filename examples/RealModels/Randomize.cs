using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RealModels;

/// <summary>
/// Gives freshly initialised BatchNorm layers non-trivial statistics (a freshly built layer has mean 0, var 1,
/// weight 1, bias 0, which folds into nothing), so folding them into the convolutions is really exercised.
/// </summary>
public static class Randomize
{
    /// <summary>Sets every BatchNorm1d's and BatchNorm2d's running mean/var, weight and bias to plausible random values.</summary>
    public static void BatchNormStatistics(nn.Module model, int seed)
    {
        using var generator = new torch.Generator((ulong)seed + 1);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach ((string _, nn.Module module) in model.named_modules())
        {
            switch (module)
            {
                case BatchNorm1d bn:
                    Set(bn.running_mean, bn.running_var, bn.weight, bn.bias, generator);
                    break;
                case BatchNorm2d bn:
                    Set(bn.running_mean, bn.running_var, bn.weight, bn.bias, generator);
                    break;
            }
        }
    }

    private static void Set(Tensor? runningMean, Tensor? runningVar, Tensor? weight, Tensor? bias, torch.Generator generator)
    {
        if (runningMean is null || runningVar is null)
        {
            throw new InvalidOperationException("A BatchNorm layer without running statistics (track_running_stats: false) cannot be folded.");
        }

        long c = runningMean.shape[0];
        runningMean.copy_(torch.randn(c, generator: generator) * 0.1f);
        runningVar.copy_(torch.rand(c, generator: generator) * 0.5f + 0.75f);
        weight?.copy_(torch.rand(c, generator: generator) * 0.5f + 0.75f);
        bias?.copy_(torch.randn(c, generator: generator) * 0.1f);
    }
}
