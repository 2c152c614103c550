using QuantGen;
using QuantGen.Observers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace CenterNetHeadExample;

/// <summary>
/// Seed 002's CenterNet layout at toy size: a small strided backbone, the upsampler (Conv → 3 ×
/// [ConvTranspose2d(4, 2, 1) + BatchNorm2d + ReLU]) and three heads (heatmap, size, offset: Conv3×3 →
/// ReLU → Conv1×1) joined on the channel axis. The qconfig is the seed's: symmetric qint8 activations
/// from a histogram, per-channel symmetric weights — and for ConvTranspose2d per-channel on axis 1, the
/// configuration PyTorch rejected ("not supported yet") and the seed's author had to patch out.
/// </summary>
[Quantize]
[QConfig(ActivationDType = QuantDType.QInt8, ActivationScheme = QScheme.PerTensorSymmetric, ActivationReduceRange = false)]
[QConfig(typeof(ConvTranspose2d), ActivationDType = QuantDType.QInt8, ActivationScheme = QScheme.PerTensorSymmetric,
    ActivationReduceRange = false, WeightObserver = ObserverKind.PerChannelMinMax, WeightScheme = QScheme.PerChannelSymmetric, WeightAxis = 1)]
public partial class CenterNetHead : Module<Tensor, Tensor>
{
    public const int NumClasses = 2;

    private readonly Sequential backbone = Sequential(
        Conv2d(3, 16, 3, stride: 2, padding: 1, bias: false), BatchNorm2d(16), ReLU(),
        Conv2d(16, 32, 3, stride: 2, padding: 1, bias: false), BatchNorm2d(32), ReLU(),
        Conv2d(32, 64, 3, stride: 2, padding: 1, bias: false), BatchNorm2d(64), ReLU());

    private readonly Sequential deconv_layers = Sequential(
        Conv2d(64, 32, 3, padding: 1),
        ConvTranspose2d(32, 32, 4, stride: 2, padding: 1), BatchNorm2d(32), ReLU(),
        ConvTranspose2d(32, 32, 4, stride: 2, padding: 1), BatchNorm2d(32), ReLU(),
        ConvTranspose2d(32, 32, 4, stride: 2, padding: 1), BatchNorm2d(32), ReLU());

    private readonly Sequential hm = Sequential(Conv2d(32, 16, 3, padding: 1), ReLU(), Conv2d(16, NumClasses, 1));
    private readonly Sequential wh = Sequential(Conv2d(32, 16, 3, padding: 1), ReLU(), Conv2d(16, 2, 1));
    private readonly Sequential reg = Sequential(Conv2d(32, 16, 3, padding: 1), ReLU(), Conv2d(16, 2, 1));

    public CenterNetHead()
        : base(nameof(CenterNetHead)) => RegisterComponents();

    public override Tensor forward(Tensor x)
    {
        x = backbone.forward(x);
        x = deconv_layers.forward(x);
        Tensor heatmap = hm.forward(x);
        Tensor size = wh.forward(x);
        Tensor offset = reg.forward(x);
        return torch.cat(new[] { heatmap, size, offset }, 1);
    }
}
