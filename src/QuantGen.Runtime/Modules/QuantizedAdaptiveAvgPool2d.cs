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

        Model = model;
        Layer = layer;
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
    public QTensor Forward(QTensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        string name = $"{Model}.{Layer}";
        LayerChecks.PerTensorInput(name, input, nameof(input));
        if (input.Rank != 4 || input.Dim(1) < 1 || input.Dim(2) < 1 || input.Dim(3) < 1)
        {
            throw new ArgumentException($"{name}: expected input [N, C, H, W] (rank 4, C, H and W positive), got {TorchText.Shape(input.Shape)}.", nameof(input));
        }

        int batch = input.Dim(0), channels = input.Dim(1);
        int[] outputShape = [batch, channels, OutputHeight, OutputWidth];
        var output = new byte[checked(batch * channels * OutputHeight * OutputWidth)];
        int zeroPoint = LayerChecks.ViewZeroPoint(input.QParams);
        AdaptiveAvgPool2dScalar.Apply(
            batch, channels, input.Dim(2), input.Dim(3), OutputHeight, OutputWidth,
            LayerChecks.ViewOf(input, MemoryFormat.ChannelsLast), input.Scale, zeroPoint,
            output, input.Scale, zeroPoint);
        return LayerChecks.FromView(outputShape, input.QParams, output, MemoryFormat.ChannelsLast);
    }

    /// <summary>PyTorch's repr: <c>AdaptiveAvgPool2d(output_size=(1, 1))</c>.</summary>
    public override string ToString() => $"AdaptiveAvgPool2d(output_size={TorchText.Pair(OutputHeight, OutputWidth)})";
}
