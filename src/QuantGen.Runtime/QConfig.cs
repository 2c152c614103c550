using System;
using QuantGen.Observers;

namespace QuantGen;

/// <summary>
/// How to observe activations and weights, and which backend arithmetic the int8 model uses:
/// PyTorch's <c>QConfig(activation=..., weight=...)</c> plus the quantized engine.
/// </summary>
/// <param name="Activation">Observer recipe for every activation quantization point.</param>
/// <param name="Weight">Observer recipe for conv/linear weights.</param>
/// <param name="Backend">Integer arithmetic of the converted model (bias and requantization).</param>
public sealed record QConfig(ObserverSpec Activation, ObserverSpec Weight, QuantBackend Backend = QuantBackend.X86)
{
    /// <summary>
    /// <c>get_default_qconfig('x86')</c> (the same as 'fbgemm'): activations HistogramObserver quint8 with
    /// reduce_range, weights PerChannelMinMaxObserver symmetric qint8 on axis 0.
    /// </summary>
    public static QConfig X86 { get; } = new(
        ObserverSpec.Histogram(reduceRange: true),
        ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric),
        QuantBackend.X86);

    /// <summary><c>get_default_qconfig('fbgemm')</c>: identical to <see cref="X86"/>.</summary>
    public static QConfig Fbgemm => X86;

    /// <summary><c>get_default_qconfig('onednn')</c>: <see cref="X86"/> without reduce_range.</summary>
    public static QConfig OneDnn { get; } = X86 with { Activation = ObserverSpec.Histogram(reduceRange: false) };

    /// <summary>
    /// <c>get_default_qconfig('qnnpack')</c>: activations HistogramObserver quint8 (no reduce_range),
    /// weights per-tensor MinMaxObserver symmetric qint8; int32 bias.
    /// </summary>
    public static QConfig Qnnpack { get; } = new(
        ObserverSpec.Histogram(),
        ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric),
        QuantBackend.Qnnpack);

    /// <summary>The default qconfig of a backend.</summary>
    public static QConfig For(QuantBackend backend) => backend switch
    {
        QuantBackend.X86 => X86,
        QuantBackend.Qnnpack => Qnnpack,
        _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, "Unknown backend."),
    };

    /// <summary>Checks both observer recipes and the combinations the int8 kernels support.</summary>
    public void Validate()
    {
        Activation.Validate();
        Weight.Validate();
        if (Activation.Scheme.IsPerChannel())
        {
            throw new ArgumentException($"QConfig: activations must be observed per tensor, got {Activation}.");
        }

        if (Weight.DType != QuantDType.QInt8)
        {
            throw new ArgumentException($"QConfig: weights must be qint8, got {Weight}.");
        }

        if (Activation.DType != QuantDType.QUInt8)
        {
            throw new ArgumentException($"QConfig: activations must be quint8 in this version, got {Activation}.");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"QConfig(activation={Activation}, weight={Weight}, backend={Backend})";
}
