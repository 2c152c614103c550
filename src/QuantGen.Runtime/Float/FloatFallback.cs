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

    /// <summary>Creates the fallback from its float op described as data: it runs that op, and a file can store it.</summary>
    /// <param name="model">The model's name.</param>
    /// <param name="layer">The op's layer name.</param>
    /// <param name="op">The float op (its <see cref="FloatOp.Output"/> quantizes the result).</param>
    /// <param name="description">How the float op prints.</param>
    public FloatFallback(string model, string layer, FloatOp op, string description)
        : this(model, layer, RunOne(op), description, (op ?? throw new ArgumentNullException(nameof(op))).Output)
    {
        Stored = op;
    }

    /// <summary>The fallback of a conv kept in float (generated <c>Convert()</c> calls this).</summary>
    /// <param name="model">The model's name.</param>
    /// <param name="layer">The op's layer name.</param>
    /// <param name="fused">The fused float conv.</param>
    /// <param name="output">Quantizes the float result.</param>
    public static FloatFallback Of(string model, string layer, FusedConv2d fused, QuantizeInput output) => Described(model, layer, fused, output);

    /// <summary>The fallback of a transposed conv kept in float.</summary>
    /// <param name="model">The model's name.</param>
    /// <param name="layer">The op's layer name.</param>
    /// <param name="fused">The fused float transposed conv.</param>
    /// <param name="output">Quantizes the float result.</param>
    public static FloatFallback Of(string model, string layer, FusedConvTranspose2d fused, QuantizeInput output) => Described(model, layer, fused, output);

    /// <summary>The fallback of a linear kept in float.</summary>
    /// <param name="model">The model's name.</param>
    /// <param name="layer">The op's layer name.</param>
    /// <param name="fused">The fused float linear.</param>
    /// <param name="output">Quantizes the float result.</param>
    public static FloatFallback Of(string model, string layer, FusedLinear fused, QuantizeInput output) => Described(model, layer, fused, output);

    /// <summary>The fallback of a batch norm kept in float.</summary>
    /// <param name="model">The model's name.</param>
    /// <param name="layer">The op's layer name.</param>
    /// <param name="fused">The float batch norm.</param>
    /// <param name="output">Quantizes the float result.</param>
    public static FloatFallback Of(string model, string layer, FusedBatchNorm2d fused, QuantizeInput output) => Described(model, layer, fused, output);

    private static FloatFallback Described(string model, string layer, object fused, QuantizeInput output)
    {
        ArgumentNullException.ThrowIfNull(fused);
        FloatOp op = Binding.FloatOpDescriber.OfFused(model, layer, fused, output);
        return new FloatFallback(model, layer, op, fused.ToString() ?? op.Kind.ToString());
    }

    private static Func<Tensor, Tensor> RunOne(FloatOp op)
    {
        ArgumentNullException.ThrowIfNull(op);
        return x => op.Forward([x]);
    }

    /// <summary>The float op as data, when the fallback was made from one: a <c>.qgen</c> file stores it and ONNX export writes it.</summary>
    public FloatOp? Stored { get; }

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
