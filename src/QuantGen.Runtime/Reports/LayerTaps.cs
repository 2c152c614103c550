using TorchSharp;

namespace QuantGen.Reports;

/// <summary>Receives every layer's int8 output from a generated Quantized forward (for reports and agreement tests).</summary>
public interface IQuantizedTap
{
    /// <summary>Called after the op at <paramref name="layer"/> ("layer1.0.conv1") produced <paramref name="output"/>.</summary>
    void OnLayer(string layer, QTensor output);
}

/// <summary>Receives every layer's output from a generated Reference (QDQ) forward.</summary>
public interface IReferenceTap
{
    /// <summary>
    /// Called after the op at <paramref name="layer"/> produced <paramref name="output"/>: a float tensor
    /// already quantized→dequantized with <paramref name="qparams"/>. Return null to let the forward go on
    /// with <paramref name="output"/>, or a tensor of the same shape to go on with instead — how a per-op
    /// comparison feeds every reference op exactly the int8 model's input (see <see cref="LayerAgreement"/>).
    /// </summary>
    torch.Tensor? OnLayer(string layer, torch.Tensor output, QParams qparams);
}

/// <summary>
/// Receives every fused float op's output from a generated Observed forward (the float model with the
/// fusions applied, before quantization): the float side of layer reports and bias correction.
/// </summary>
public interface IFloatTap
{
    /// <summary>Called after the op at <paramref name="layer"/> produced <paramref name="output"/> (and its observer saw it).</summary>
    /// <param name="layer">The layer name, the same as the int8 and reference taps use.</param>
    /// <param name="output">The op's float output; disposed when forward returns, so clone what you keep.</param>
    /// <returns>A tensor to use downstream instead of <paramref name="output"/>, or null to keep it.</returns>
    torch.Tensor? OnLayer(string layer, torch.Tensor output);
}
