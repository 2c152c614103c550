using System;
using QuantGen.Observers;

namespace QuantGen.Qat;

/// <summary>
/// A recipe for one fake quantize: PyTorch's <c>FusedMovingAvgObsFakeQuantize.with_args(observer=..., ...)</c>.
/// A <see cref="QatQConfig"/> holds two (activations and weights); <see cref="Create"/> makes the module.
/// </summary>
/// <param name="Kind">Where the training qparams come from.</param>
/// <param name="Observer">
/// The observer recipe: it records the range while training and its <c>calculate_qparams</c> gives the qparams of the
/// converted int8 model (for <see cref="FakeQuantKind.Learnable"/> only the starting values).
/// </param>
public sealed record FakeQuantSpec(FakeQuantKind Kind, ObserverSpec Observer)
{
    /// <summary>
    /// For <see cref="FakeQuantKind.Learnable"/>: scale the scale and zero-point gradients by
    /// 1/√(numel · quant_max), PyTorch's <c>use_grad_scaling</c> (the LSQ paper's gradient scale). Off by default, as in PyTorch.
    /// </summary>
    public bool UseGradScaling { get; init; }

    /// <summary><c>FusedMovingAvgObsFakeQuantize.with_args(observer=...)</c>: the observer must be a moving-average kind.</summary>
    /// <param name="observer">A <see cref="ObserverSpec.MovingAverageMinMax"/> or <see cref="ObserverSpec.MovingAveragePerChannelMinMax"/> recipe.</param>
    /// <returns>The recipe.</returns>
    public static FakeQuantSpec FusedMovingAverage(ObserverSpec observer) => new(FakeQuantKind.FusedMovingAverage, observer);

    /// <summary><c>FakeQuantize.with_args(observer=...)</c>: any observer; its own qparams formula while training.</summary>
    /// <param name="observer">The observer recipe.</param>
    /// <returns>The recipe.</returns>
    public static FakeQuantSpec WithObserverQParams(ObserverSpec observer) => new(FakeQuantKind.ObserverQParams, observer);

    /// <summary><c>_LearnableFakeQuantize.with_args(observer=..., use_grad_scaling=...)</c> (LSQ).</summary>
    /// <param name="observer">The observer that gives the starting scale and zero point (and the quantized range).</param>
    /// <param name="useGradScaling">Scale the qparam gradients by 1/√(numel · quant_max).</param>
    /// <returns>The recipe.</returns>
    public static FakeQuantSpec Learnable(ObserverSpec observer, bool useGradScaling = false) =>
        new(FakeQuantKind.Learnable, observer) { UseGradScaling = useGradScaling };

    /// <summary>
    /// Symmetric int8, scale = max|x| / 127 of each tensor as it is quantized, range [−127, 127]; for conversion a
    /// moving average (by <paramref name="averagingConstant"/>) of the same range.
    /// </summary>
    /// <param name="averagingConstant">The weight of each new batch in the range kept for conversion, in (0, 1].</param>
    /// <returns>The recipe.</returns>
    public static FakeQuantSpec AbsMaxSymmetric(float averagingConstant = 0.01f) =>
        new(FakeQuantKind.AbsMaxSymmetric, ObserverSpec.MovingAverageMinMax(averagingConstant, QuantDType.QInt8, QScheme.PerTensorSymmetric, quantMin: -127, quantMax: 127));

    /// <summary>Whether the recipe is consistent: the observer's own checks, and the observer kinds each fake quantize needs.</summary>
    /// <exception cref="ArgumentException">An inconsistent recipe, with the reason.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Observer, nameof(Observer));
        Observer.Validate();
        bool builtIn = Observer.Fixed is null && Observer.CustomFactory is null;
        switch (Kind)
        {
            case FakeQuantKind.FusedMovingAverage when !builtIn || Observer.Kind is not (ObserverKind.MovingAverageMinMax or ObserverKind.MovingAveragePerChannelMinMax):
                throw new ArgumentException($"{this}: the fused moving-average fake quantize averages the range itself, so its observer must be MovingAverageMinMax or MovingAveragePerChannelMinMax, got {Observer}.");
            case FakeQuantKind.AbsMaxSymmetric when !Observer.Scheme.IsSymmetric() || Observer.Scheme.IsPerChannel():
                throw new ArgumentException($"{this}: the max|x| / 127 scheme is symmetric and per tensor, got {Observer}.");
            case FakeQuantKind.FusedMovingAverage or FakeQuantKind.ObserverQParams or FakeQuantKind.Learnable or FakeQuantKind.AbsMaxSymmetric:
                break;
            default:
                throw new ArgumentException($"Unknown fake quantize kind {Kind}.");
        }
    }

    /// <summary>Creates the fake-quantize module for the quantization point <paramref name="layer"/> ("Model.member").</summary>
    /// <param name="layer">The quantization point, named in errors.</param>
    /// <param name="channels">For a learnable per-channel recipe: the number of channels (one scale each); ignored otherwise.</param>
    /// <returns>A <see cref="FakeQuantize"/> or <see cref="LearnableFakeQuantize"/> with observer and fake quant enabled.</returns>
    /// <exception cref="ArgumentException">An inconsistent recipe (see <see cref="Validate"/>).</exception>
    public FakeQuantizeBase Create(string layer, int channels = 1)
    {
        Validate();
        return Kind == FakeQuantKind.Learnable
            ? new LearnableFakeQuantize(this, layer, channels)
            : new FakeQuantize(this, layer);
    }

    /// <summary>PyTorch-like text: <c>FusedMovingAvgObsFakeQuantize(observer=MovingAverageMinMaxObserver(...))</c>.</summary>
    public override string ToString() => Kind switch
    {
        FakeQuantKind.FusedMovingAverage => $"FusedMovingAvgObsFakeQuantize(observer={Observer})",
        FakeQuantKind.ObserverQParams => $"FakeQuantize(observer={Observer})",
        FakeQuantKind.Learnable => $"LearnableFakeQuantize(observer={Observer}, use_grad_scaling={(UseGradScaling ? "True" : "False")})",
        FakeQuantKind.AbsMaxSymmetric => $"AbsMaxSymmetricFakeQuantize(observer={Observer})",
        _ => $"{Kind}(observer={Observer})",
    };
}
