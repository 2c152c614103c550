using System;

namespace QuantGen.Modules;

/// <summary>
/// PyTorch's <c>Quantize</c> (a converted QuantStub, or the model's entry): float values → a quantized
/// tensor with fixed, calibrated <see cref="QParams"/>, by the numerics contract
/// <c>q = clamp(round_half_even(x * (1f / scale)) + zp, dtype_min, dtype_max)</c>.
/// </summary>
/// <remarks>
/// Non-finite values at inference follow <see cref="Kernels.Scalar.QuantizeScalar"/>: +inf saturates to
/// the dtype maximum, -inf to the minimum, and NaN becomes the zero point (it dequantizes to exactly 0).
/// PyTorch maps all three to the integer 0 instead; calibration refuses them outright, so they can only
/// reach a converted model at inference.
/// </remarks>
public sealed class QuantizeInput : IQuantizedLayer
{
    private readonly QParams? _qparams;

    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member name (e.g. "quant"), for error messages.</param>
    /// <param name="qparams">Per-tensor scale and zero point from calibration (quint8 or qint8; the tensor it makes has that dtype).</param>
    public QuantizeInput(string model, string layer, QParams qparams)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(qparams);
        if (qparams.IsPerChannel)
        {
            throw new ArgumentException($"{model}.{layer}: input quantization needs per-tensor qparams, got {qparams}.", nameof(qparams));
        }

        LayerChecks.ActivationQParams($"{model}.{layer}", "input", qparams, nameof(qparams));

        Model = model;
        Layer = layer;
        _qparams = qparams;
    }

    private QuantizeInput(string model, string layer)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        Model = model;
        Layer = layer;
    }

    /// <summary>
    /// The quantizer of a value no observer saw: the model was converted without calibration batches, which a model
    /// quantized only dynamically or weight-only does not need (as PyTorch's <c>quantize_dynamic</c> needs none). No
    /// int8 op reads such a value; it has no qparams, and quantizing with it throws, naming the layer.
    /// </summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">The op whose output it is (or "input"), for error messages.</param>
    /// <returns>A quantizer whose <see cref="IsObserved"/> is false.</returns>
    public static QuantizeInput NotObserved(string model, string layer) => new(model, layer);

    /// <summary>False for a value no observer saw (<see cref="NotObserved"/>): it has no qparams.</summary>
    public bool IsObserved => _qparams is not null;

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>The scale and zero point every input is quantized with.</summary>
    /// <exception cref="InvalidOperationException">The value was never observed (<see cref="IsObserved"/> is false).</exception>
    public QParams QParams => _qparams ?? throw new InvalidOperationException(
        $"{Model}.{Layer}: this value was never observed (the model was converted without calibration batches), so it has no int8 scale and zero point. " +
        "Quantizing it (forward(QTensor), an int8 result, a layer report or tap) needs a calibrated model: run Calibrate(batches) before Convert().");

    /// <summary>The per-tensor scale.</summary>
    public float Scale => QParams.Scale;

    /// <summary>The per-tensor zero point.</summary>
    public int ZeroPoint => QParams.ZeroPoint;

    /// <summary>
    /// Quantizes <paramref name="values"/>, given in logical row-major order (NCHW for images). A 4-D
    /// result is stored channels-last (what the conv kernels read), any other rank contiguous.
    /// </summary>
    /// <exception cref="ArgumentException">The shape has a negative dimension or does not match the number of values.</exception>
    public QTensor Forward(ReadOnlySpan<float> values, int[] shape) => Forward(values, shape, null);

    /// <summary>
    /// As <see cref="Forward(ReadOnlySpan{float}, int[])"/>, writing the result into
    /// <paramref name="output"/>'s buffer (a steady-state call then allocates nothing); null allocates a new tensor.
    /// </summary>
    /// <exception cref="ArgumentException">The shape has a negative dimension or does not match the number of values.</exception>
    public QTensor Forward(ReadOnlySpan<float> values, int[] shape, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(shape);
        // The element count in 64 bits, stopping past Array.MaxLength: eight dimensions of 65536 must not
        // wrap around to a count that matches (an empty span would then "fit" a huge shape).
        long count = 1;
        foreach (int dimension in shape)
        {
            if (dimension < 0)
            {
                throw new ArgumentException($"{Model}.{Layer}: shape {TorchText.Shape(shape)} has a negative dimension.", nameof(shape));
            }
        }

        foreach (int dimension in shape)
        {
            count = Math.Min(count * dimension, (long)Array.MaxLength + 1);
        }

        if (count > Array.MaxLength)
        {
            throw new ArgumentException($"{Model}.{Layer}: shape {TorchText.Shape(shape)} holds more values than a tensor can ({Array.MaxLength}).", nameof(shape));
        }

        if (count != values.Length)
        {
            throw new ArgumentException($"{Model}.{Layer}: shape {TorchText.Shape(shape)} holds {count} values, got {values.Length}.", nameof(shape));
        }

        // The model's first step: let the kernel threads wake while the input is quantized.
        Kernels.KernelThreads.Prewake();
        MemoryFormat format = shape.Length == 4 ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;
        QTensor result = LayerChecks.Output(output, shape, QParams, format);
        result.QuantizeFrom(values);
        return result;
    }

    /// <summary>PyTorch's repr: <c>Quantize(scale=tensor([0.0011]), zero_point=tensor([0]), dtype=torch.quint8)</c>.</summary>
    public override string ToString() => !IsObserved ? "Quantize(not observed: converted without calibration)" :
        $"Quantize(scale={TorchText.ScalarTensor(Scale)}, zero_point={TorchText.IntTensor(ZeroPoint)}, dtype={QParams.DType.ToTorchString()})";
}
