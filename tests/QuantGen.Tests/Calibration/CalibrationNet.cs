using QuantGen.Observers;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Calibration;

/// <summary>
/// A small graph-mode model for the calibration tests: conv-bn-relu, conv-bn with a residual add and ReLU, max pool,
/// flatten, linear. Its [QConfig] attributes pick QuantGen's calibration observers, so the generated
/// <c>DefaultQConfigMapping()</c> shows the new named arguments reaching the observer specs.
/// </summary>
[Quantize]
[QConfig(ActivationObserver = ObserverKind.Percentile, ActivationPercentile = 99.9)]
[QConfig("fc", ActivationObserver = ObserverKind.Entropy)]
[QConfig("conv2", ActivationObserver = ObserverKind.Mse)]
public sealed partial class CalibrationNet : Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Conv2d conv1 = Conv2d(3, 8, 3, padding: 1, bias: false);
    private readonly TorchSharp.Modules.BatchNorm2d bn1 = BatchNorm2d(8);
    private readonly TorchSharp.Modules.ReLU relu1 = ReLU();
    private readonly TorchSharp.Modules.Conv2d conv2 = Conv2d(8, 8, 3, padding: 1);
    private readonly TorchSharp.Modules.BatchNorm2d bn2 = BatchNorm2d(8);
    private readonly TorchSharp.Modules.ReLU relu2 = ReLU();
    private readonly TorchSharp.Modules.MaxPool2d pool = MaxPool2d(2);
    private readonly TorchSharp.Modules.Linear fc = Linear(8 * 4 * 4, 5);

    /// <summary>Creates the float model.</summary>
    public CalibrationNet()
        : base(nameof(CalibrationNet)) => RegisterComponents();

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        x = relu1.forward(bn1.forward(conv1.forward(x)));
        Tensor identity = x;
        x = bn2.forward(conv2.forward(x));
        x = relu2.forward(x + identity);
        x = pool.forward(x);
        x = torch.flatten(x, 1);
        return fc.forward(x);
    }

    /// <summary>
    /// Multiplies the weights of output channel 0 of conv2 and fc by <paramref name="factor"/>: with per-tensor weights the
    /// scale then follows that channel, and the other channels' weights round coarsely — a systematic per-channel error.
    /// </summary>
    public void ExaggerateFirstOutputChannel(float factor)
    {
        using var noGrad = torch.no_grad();
        conv2.weight![0].mul_(factor);
        fc.weight![0].mul_(factor);
    }

    /// <summary>Gives every BatchNorm non-trivial running statistics and affine parameters (seeded), as a trained model has.</summary>
    public void RandomizeBatchNorm(int seed)
    {
        torch.manual_seed(seed);
        using var noGrad = torch.no_grad();
        foreach (TorchSharp.Modules.BatchNorm2d bn in new[] { bn1, bn2 })
        {
            bn.running_mean!.copy_(torch.randn(bn.running_mean.shape) * 0.3f);
            bn.running_var!.copy_(torch.rand(bn.running_var.shape) + 0.5f);
            bn.weight!.copy_(torch.rand(bn.weight.shape) + 0.5f);
            bn.bias!.copy_(torch.randn(bn.bias.shape) * 0.2f);
        }
    }
}
