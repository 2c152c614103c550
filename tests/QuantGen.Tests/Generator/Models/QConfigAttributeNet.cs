using QuantGen.Observers;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Generator.Models;

/// <summary>
/// A [Quantize] model compiled by the real build with one [QConfig] of each kind (global, module type, member
/// path), for the generated <c>DefaultQConfigMapping()</c> and the per-op resolution at Prepare.
/// </summary>
[Quantize(QuantBackend.Qnnpack)]
[QConfig(ActivationDType = QuantDType.QInt8, ActivationScheme = QScheme.PerTensorSymmetric)]
[QConfig(typeof(TorchSharp.Modules.ConvTranspose2d), WeightObserver = ObserverKind.PerChannelMinMax, WeightScheme = QScheme.PerChannelSymmetric, WeightAxis = 1)]
[QConfig("head", ActivationObserver = ObserverKind.MinMax, ActivationReduceRange = true, WeightDType = QuantDType.QInt8)]
public sealed partial class QConfigAttributeNet : Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Conv2d stem = Conv2d(2, 4, 3, padding: 1);
    private readonly TorchSharp.Modules.ConvTranspose2d up = ConvTranspose2d(4, 3, 2, stride: 2);
    private readonly TorchSharp.Modules.Conv2d head = Conv2d(3, 2, 1);

    /// <summary>Creates the float model.</summary>
    public QConfigAttributeNet()
        : base(nameof(QConfigAttributeNet)) => RegisterComponents();

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => head.forward(up.forward(stem.forward(input)));
}
