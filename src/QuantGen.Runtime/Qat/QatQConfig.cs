using System;

namespace QuantGen.Qat;

/// <summary>
/// How to fake-quantize activations and weights while training, and which backend arithmetic the converted int8
/// model uses: PyTorch's QAT <c>QConfig(activation=FakeQuantize..., weight=FakeQuantize...)</c>.
/// </summary>
/// <remarks>
/// Start from a preset (<see cref="QConfig.QatX86"/>, <see cref="QConfig.QatQnnpack"/>, <see cref="QConfig.QatOneDnn"/>)
/// and change what differs with <c>with</c>, e.g. learned qparams for activations:
/// <c>QConfig.QatX86 with { Activation = FakeQuantSpec.Learnable(QConfig.QatX86.Activation.Observer) }</c>. docs/qat.md
/// explains the kinds and the two qparam formulas.
/// </remarks>
/// <param name="Activation">Fake-quantize recipe for every activation quantization point.</param>
/// <param name="Weight">Fake-quantize recipe for conv/linear weights.</param>
/// <param name="Backend">Integer arithmetic of the converted model.</param>
public sealed record QatQConfig(FakeQuantSpec Activation, FakeQuantSpec Weight, QuantBackend Backend = QuantBackend.X86)
{
    /// <summary>The observer-only <see cref="QConfig"/> the converted model's qparams come from (what convert reads).</summary>
    public QConfig Observers => new(Activation.Observer, Weight.Observer, Backend);

    /// <summary>Checks both fake-quantize recipes and, through <see cref="QConfig.Validate"/>, what the int8 kernels support.</summary>
    /// <exception cref="ArgumentException">An inconsistent recipe or an unsupported combination.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Activation, nameof(Activation));
        ArgumentNullException.ThrowIfNull(Weight, nameof(Weight));
        Activation.Validate();
        Weight.Validate();
        Observers.Validate();
    }

    /// <inheritdoc/>
    public override string ToString() => $"QatQConfig(activation={Activation}, weight={Weight}, backend={Backend})";
}
