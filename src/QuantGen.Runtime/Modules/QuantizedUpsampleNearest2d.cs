using System;
using System.Globalization;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// Nearest-neighbour upsampling on a quantized tensor (PyTorch's 'nearest' index rule); qparams pass
/// through. Give either the output size or the scale factors — see <see cref="UpsampleNearest2dScalar"/>.
/// </summary>
public sealed class QuantizedUpsampleNearest2d : IQuantizedLayer
{
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member or op path, for error messages.</param>
    /// <param name="outputHeight">Output height (with <paramref name="outputWidth"/>), or null when scale factors are given.</param>
    /// <param name="outputWidth">Output width, or null.</param>
    /// <param name="scaleHeight">Row scale factor (with <paramref name="scaleWidth"/>), or null when an output size is given.</param>
    /// <param name="scaleWidth">Column scale factor, or null.</param>
    /// <exception cref="ArgumentException">Not exactly one complete pair, or a non-positive (or non-finite) value.</exception>
    public QuantizedUpsampleNearest2d(string model, string layer, int? outputHeight, int? outputWidth, double? scaleHeight, double? scaleWidth)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        string name = $"{model}.{layer}";
        bool hasSize = outputHeight.HasValue || outputWidth.HasValue;
        bool hasScale = scaleHeight.HasValue || scaleWidth.HasValue;
        if (hasSize == hasScale)
        {
            throw new ArgumentException($"{name}: give either the output size or the scale factors, not {(hasSize ? "both" : "neither")}.");
        }

        if (hasSize && (outputHeight is not int h || outputWidth is not int w || h < 1 || w < 1))
        {
            throw new ArgumentException($"{name}: the output size needs a positive height and width, got ({Text(outputHeight)}, {Text(outputWidth)}).");
        }

        if (hasScale && (scaleHeight is not double sh || scaleWidth is not double sw || !(sh > 0) || !(sw > 0) || !double.IsFinite(sh) || !double.IsFinite(sw)))
        {
            throw new ArgumentException($"{name}: the scale factors need a positive, finite height and width factor, got ({Text(scaleHeight)}, {Text(scaleWidth)}).");
        }

        Model = model;
        Layer = layer;
        OutputHeight = outputHeight;
        OutputWidth = outputWidth;
        ScaleHeight = scaleHeight;
        ScaleWidth = scaleWidth;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member or op path, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Fixed output height, or null.</summary>
    public int? OutputHeight { get; }

    /// <summary>Fixed output width, or null.</summary>
    public int? OutputWidth { get; }

    /// <summary>Row scale factor, or null.</summary>
    public double? ScaleHeight { get; }

    /// <summary>Column scale factor, or null.</summary>
    public double? ScaleWidth { get; }

    /// <summary>x: [N, C, H, W], quint8 or qint8, any layout; returns channels-last [N, C, OH, OW] with x's qparams.</summary>
    /// <exception cref="ArgumentException">Wrong rank, an empty dimension, per-channel qparams, or scale factors that give an empty output.</exception>
    public QTensor Forward(QTensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        string name = $"{Model}.{Layer}";
        LayerChecks.PerTensorInput(name, input, nameof(input));
        if (input.Rank != 4 || input.Dim(1) < 1 || input.Dim(2) < 1 || input.Dim(3) < 1)
        {
            throw new ArgumentException($"{name}: expected input [N, C, H, W] (rank 4, C, H and W positive), got {TorchText.Shape(input.Shape)}.", nameof(input));
        }

        int batch = input.Dim(0), channels = input.Dim(1), inHeight = input.Dim(2), inWidth = input.Dim(3);
        int outHeight = OutputHeight ?? UpsampleNearest2dScalar.OutputSize(inHeight, ScaleHeight!.Value);
        int outWidth = OutputWidth ?? UpsampleNearest2dScalar.OutputSize(inWidth, ScaleWidth!.Value);
        if (outHeight < 1 || outWidth < 1)
        {
            throw new ArgumentException($"{name}: input {TorchText.Shape(input.Shape)} with scale factors ({Text(ScaleHeight)}, {Text(ScaleWidth)}) gives an empty output {outHeight}x{outWidth}.", nameof(input));
        }

        float heightScale = UpsampleNearest2dScalar.SourceScale(inHeight, outHeight, ScaleHeight);
        float widthScale = UpsampleNearest2dScalar.SourceScale(inWidth, outWidth, ScaleWidth);
        int[] outputShape = [batch, channels, outHeight, outWidth];
        var output = new byte[checked(batch * channels * outHeight * outWidth)];

        // A copy of bytes: the storage itself serves, whatever the dtype.
        QTensor nhwc = input.WithFormat(MemoryFormat.ChannelsLast);
        UpsampleNearest2dScalar.Apply(batch, channels, inHeight, inWidth, outHeight, outWidth, heightScale, widthScale, nhwc.Storage, output);
        return new QTensor(outputShape, input.QParams, output, MemoryFormat.ChannelsLast);
    }

    /// <summary>PyTorch's repr: <c>Upsample(scale_factor=2.0, mode='nearest')</c> or <c>Upsample(size=(4, 6), mode='nearest')</c>.</summary>
    public override string ToString()
    {
        string what = OutputHeight is int h && OutputWidth is int w
            ? "size=" + TorchText.Pair(h, w)
            : "scale_factor=" + (ScaleHeight == ScaleWidth
                ? TorchText.PythonFloat(ScaleHeight!.Value)
                : "(" + TorchText.PythonFloat(ScaleHeight!.Value) + ", " + TorchText.PythonFloat(ScaleWidth!.Value) + ")");
        return $"Upsample({what}, mode='nearest')";
    }

    private static string Text(int? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "None";

    private static string Text(double? value) => value is double v ? TorchText.PythonFloat(v) : "None";
}
