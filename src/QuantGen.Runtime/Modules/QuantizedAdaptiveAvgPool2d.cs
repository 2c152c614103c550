using System;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// Adaptive average pool on a quantized tensor (PyTorch's bins: start = floor(i*H/out), end =
/// ceil((i+1)*H/out)); qparams pass through; rounding as PyTorch's channels-last quantized kernel —
/// see <see cref="AdaptiveAvgPool2dScalar"/> and docs/numerics.md §5.
/// </summary>
public sealed class QuantizedAdaptiveAvgPool2d : IQuantizedLayer
{
    private readonly string _name;

    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member or op path, for error messages.</param>
    /// <param name="outputHeight">OH, positive.</param>
    /// <param name="outputWidth">OW, positive.</param>
    /// <exception cref="ArgumentException">A non-positive output size.</exception>
    public QuantizedAdaptiveAvgPool2d(string model, string layer, int outputHeight, int outputWidth)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        if (outputHeight < 1 || outputWidth < 1)
        {
            throw new ArgumentException($"{model}.{layer}: output_size must be positive, got {TorchText.Pair(outputHeight, outputWidth)}.");
        }

        // QuantGen's bound (LayerLimits): a forged output size is refused here, at load.
        LayerLimits.Field($"{model}.{layer}", "output_size", outputHeight, outputWidth, 1, nameof(outputHeight));

        Model = model;
        Layer = layer;
        _name = $"{model}.{layer}";
        OutputHeight = outputHeight;
        OutputWidth = outputWidth;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member or op path, for error messages.</summary>
    public string Layer { get; }

    /// <summary>OH.</summary>
    public int OutputHeight { get; }

    /// <summary>OW.</summary>
    public int OutputWidth { get; }

    /// <summary>x: [N, C, H, W], quint8 or qint8, any layout; returns channels-last [N, C, OH, OW] with x's qparams.</summary>
    /// <exception cref="ArgumentException">Wrong rank, an empty channel or spatial dimension, or per-channel qparams.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>
    /// As <see cref="Forward(QTensor)"/>, writing into <paramref name="output"/>'s buffer (a steady-state
    /// call then allocates nothing); null allocates a new tensor.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong rank, an empty channel or spatial dimension, per-channel qparams, or an output slot that holds the input.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        LayerChecks.PerTensorInput(_name, input, nameof(input));
        if (input.Rank != 4 || input.Dim(1) < 1 || input.Dim(2) < 1 || input.Dim(3) < 1)
        {
            throw new ArgumentException($"{_name}: expected input [N, C, H, W] (rank 4, C, H and W positive), got {TorchText.Shape(input.ShapeSpan)}.", nameof(input));
        }

        int batch = input.Dim(0), channels = input.Dim(1);
        if (LayerLimits.OutputPlaneProblem(input.ShapeSpan, channels, OutputHeight, OutputWidth) is string problem)
        {
            throw new ArgumentException($"{_name}: {problem} ({this}).", nameof(input));
        }

        ReadOnlySpan<int> outputShape = [batch, channels, OutputHeight, OutputWidth];
        QTensor result = LayerChecks.Output(output, outputShape, input.QParams, MemoryFormat.ChannelsLast);
        LayerChecks.NotAliased(_name, result, input, nameof(output));
        int zeroPoint = LayerChecks.ViewZeroPoint(input.QParams);
        AdaptiveAvgPool2dScalar.Apply(
            batch, channels, input.Dim(2), input.Dim(3), OutputHeight, OutputWidth,
            LayerScratch.Current.InputView(0, input, MemoryFormat.ChannelsLast), input.Scale, zeroPoint,
            result.StorageBytes, input.Scale, zeroPoint);
        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>PyTorch's repr: <c>AdaptiveAvgPool2d(output_size=(1, 1))</c>.</summary>
    public override string ToString() => $"AdaptiveAvgPool2d(output_size={TorchText.Pair(OutputHeight, OutputWidth)})";
}
