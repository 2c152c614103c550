using System;
using System.Diagnostics;
using System.Globalization;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// Nearest-neighbour upsampling on a quantized tensor (PyTorch's 'nearest' index rule); qparams pass
/// through. Give either the output size or the scale factors — see <see cref="UpsampleNearest2dScalar"/>.
/// </summary>
public sealed class QuantizedUpsampleNearest2d : IQuantizedLayer
{
    private readonly string _name;

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

        // QuantGen's bounds (LayerLimits): a forged size or factor is refused here, at load, not by the allocator.
        if (hasSize)
        {
            LayerLimits.Field(name, "size", outputHeight!.Value, outputWidth!.Value, 1, nameof(outputHeight));
        }
        else if (scaleHeight > LayerLimits.MaxGeometry || scaleWidth > LayerLimits.MaxGeometry)
        {
            throw new ArgumentException($"{name}: scale_factor must be at most {LayerLimits.MaxGeometry} (QuantGen's bound on layer geometry), got ({Text(scaleHeight)}, {Text(scaleWidth)}).", nameof(scaleHeight));
        }

        Model = model;
        Layer = layer;
        _name = name;
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
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>
    /// As <see cref="Forward(QTensor)"/>, writing into <paramref name="output"/>'s buffer (a steady-state
    /// call then allocates nothing); null allocates a new tensor.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong rank, an empty dimension, per-channel qparams, scale factors that give an empty output, or an output slot that holds the input.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        string name = _name;
        LayerChecks.PerTensorInput(name, input, nameof(input));
        if (input.Rank != 4 || input.Dim(1) < 1 || input.Dim(2) < 1 || input.Dim(3) < 1)
        {
            throw new ArgumentException($"{name}: expected input [N, C, H, W] (rank 4, C, H and W positive), got {TorchText.Shape(input.ShapeSpan)}.", nameof(input));
        }

        int batch = input.Dim(0), channels = input.Dim(1), inHeight = input.Dim(2), inWidth = input.Dim(3);

        // floor(in · scale) in double, kept as a 64-bit value: a large product must be refused, not wrap as an int.
        long wantHeight = OutputHeight ?? (long)Math.Min(Math.Floor(inHeight * ScaleHeight!.Value), long.MaxValue / 4);
        long wantWidth = OutputWidth ?? (long)Math.Min(Math.Floor(inWidth * ScaleWidth!.Value), long.MaxValue / 4);
        if (wantHeight < 1 || wantWidth < 1)
        {
            throw new ArgumentException($"{name}: input {TorchText.Shape(input.ShapeSpan)} with scale factors ({Text(ScaleHeight)}, {Text(ScaleWidth)}) gives an empty output {wantHeight}x{wantWidth}.", nameof(input));
        }

        if (LayerLimits.OutputPlaneProblem(input.ShapeSpan, channels, wantHeight, wantWidth) is string problem)
        {
            throw new ArgumentException($"{name}: {problem} ({this}).", nameof(input));
        }

        int outHeight = (int)wantHeight, outWidth = (int)wantWidth;
        Debug.Assert(OutputHeight is not null || outHeight == UpsampleNearest2dScalar.OutputSize(inHeight, ScaleHeight!.Value), "the kernel's output size must agree");

        float heightScale = UpsampleNearest2dScalar.SourceScale(inHeight, outHeight, ScaleHeight);
        float widthScale = UpsampleNearest2dScalar.SourceScale(inWidth, outWidth, ScaleWidth);
        ReadOnlySpan<int> outputShape = [batch, channels, outHeight, outWidth];
        QTensor result = LayerChecks.Output(output, outputShape, input.QParams, MemoryFormat.ChannelsLast);
        LayerChecks.NotAliased(name, result, input, nameof(output));

        // A copy of bytes: the storage itself serves, whatever the dtype (read channels-last without flipping).
        ReadOnlySpan<byte> nhwc = input.Format == MemoryFormat.ChannelsLast ? input.StorageBytes : ChannelsLastCopy(input);
        UpsampleNearest2dScalar.Apply(batch, channels, inHeight, inWidth, outHeight, outWidth, heightScale, widthScale, nhwc, result.StorageBytes);
        return result;
    }

    private static ReadOnlySpan<byte> ChannelsLastCopy(QTensor input)
    {
        Span<byte> copy = LayerScratch.Current.Bytes(0, input.Count);
        input.CopyTo(copy, MemoryFormat.ChannelsLast, flipTopBit: false);
        return copy;
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
