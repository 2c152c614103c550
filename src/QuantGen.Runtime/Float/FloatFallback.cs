using System;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// An op the QConfigMapping kept in float (PyTorch's <c>qconfig = None</c> for a module): the int8 model
/// dequantizes its input, runs the fused float op (TorchSharp) and quantizes the result with the op's own
/// output observer's qparams, so the ops around it stay int8.
/// </summary>
public sealed class FloatFallback : IQuantizedLayer
{
    private readonly Func<Tensor, Tensor> _forward;
    private readonly string _description;

    /// <summary>Creates the fallback.</summary>
    /// <param name="model">The model's name.</param>
    /// <param name="layer">The op's layer name.</param>
    /// <param name="forward">The fused float op (conv with its batch norm folded and ReLU fused, ...).</param>
    /// <param name="description">How the float op prints.</param>
    /// <param name="output">Quantizes the float result (the op's output observer's qparams).</param>
    public FloatFallback(string model, string layer, Func<Tensor, Tensor> forward, string description, QuantizeInput output)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Layer = layer ?? throw new ArgumentNullException(nameof(layer));
        _forward = forward ?? throw new ArgumentNullException(nameof(forward));
        _description = description ?? string.Empty;
        Output = output ?? throw new ArgumentNullException(nameof(output));
    }

    /// <inheritdoc/>
    public string Model { get; }

    /// <inheritdoc/>
    public string Layer { get; }

    /// <summary>Quantizes the float op's result for the int8 ops after it.</summary>
    public QuantizeInput Output { get; }

    /// <summary>Dequantizes, runs the float op and quantizes its result.</summary>
    /// <param name="input">The op's int8 input.</param>
    /// <returns>The op's result, quantized with <see cref="Output"/>'s qparams.</returns>
    public QTensor Forward(QTensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = torch.NewDisposeScope();
        using var grad = torch.no_grad();
        Tensor values = TensorInterop.FromArray(input.Dequantize(), input.Shape);
        float[] result = TensorInterop.ToArray(_forward(values), out int[] shape);
        return Output.Forward(result, shape);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{_description} (float: its qconfig is None), then {Output}";
}
