using System;
using System.Globalization;
using System.Text;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// Average pool on a quantized tensor (PyTorch's <c>nn.AvgPool2d</c> on a quint8/qint8 tensor); qparams
/// pass through; rounding as PyTorch's channels-last quantized avg_pool2d — see
/// <see cref="AvgPool2dScalar"/> and docs/numerics.md §5.
/// </summary>
public sealed class QuantizedAvgPool2d : IQuantizedLayer
{
    private readonly string _name;

    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member or op path, for error messages.</param>
    /// <param name="options">Kernel, stride (0 = kernel), padding, ceil_mode, count_include_pad, divisor_override; dilation must be 1.</param>
    /// <exception cref="ArgumentException">A size is not positive, the padding exceeds half the kernel, a dilation other than 1, or a zero divisor.</exception>
    public QuantizedAvgPool2d(string model, string layer, Pool2dOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        options.Validate($"{model}.{layer}", average: true);
        Model = model;
        Layer = layer;
        _name = $"{model}.{layer}";
        Options = options;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member or op path, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Hyper-parameters.</summary>
    public Pool2dOptions Options { get; }

    /// <summary>x: [N, C, H, W], quint8 or qint8, any layout; returns channels-last [N, C, OH, OW] with x's qparams.</summary>
    /// <exception cref="ArgumentException">Wrong rank, per-channel qparams, or an input too small for one window.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>
    /// As <see cref="Forward(QTensor)"/>, writing into <paramref name="output"/>'s buffer (a steady-state
    /// call then allocates nothing); null allocates a new tensor.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong rank, per-channel qparams, an input too small for one window, or an output slot that holds the input.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        LayerChecks.PerTensorInput(_name, input, nameof(input));
        Pool2dGeometry geometry = Options.GeometryFor(_name, input);
        ReadOnlySpan<int> outputShape = [geometry.Batch, geometry.Channels, geometry.OutHeight, geometry.OutWidth];
        QTensor result = LayerChecks.Output(output, outputShape, input.QParams, MemoryFormat.ChannelsLast);
        LayerChecks.NotAliased(_name, result, input, nameof(output));
        int zeroPoint = LayerChecks.ViewZeroPoint(input.QParams);
        AvgPool2dScalar.Apply(
            geometry, Options.CountIncludePad, Options.DivisorOverride,
            LayerScratch.Current.InputView(0, input, MemoryFormat.ChannelsLast), input.Scale, zeroPoint,
            result.StorageBytes, input.Scale, zeroPoint);
        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>PyTorch's repr: <c>AvgPool2d(kernel_size=2, stride=2, padding=0)</c>, plus the non-default flags.</summary>
    public override string ToString()
    {
        Pool2dOptions o = Options;
        var text = new StringBuilder("AvgPool2d(")
            .Append("kernel_size=").Append(Pool2dOptions.IntOrPair(o.KernelHeight, o.KernelWidth))
            .Append(", stride=").Append(Pool2dOptions.IntOrPair(o.EffectiveStrideHeight, o.EffectiveStrideWidth))
            .Append(", padding=").Append(Pool2dOptions.IntOrPair(o.PadHeight, o.PadWidth));
        if (o.CeilMode)
        {
            text.Append(", ceil_mode=True");
        }

        if (!o.CountIncludePad)
        {
            text.Append(", count_include_pad=False");
        }

        if (o.DivisorOverride is int divisor)
        {
            text.Append(", divisor_override=").Append(divisor.ToString(CultureInfo.InvariantCulture));
        }

        return text.Append(')').ToString();
    }
}
