using System;
using System.Text;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// Max pool on a quantized tensor (PyTorch's <c>nn.MaxPool2d</c> on a quint8/qint8 tensor): integer
/// max over the window's positions inside the input (padding never wins; ceil_mode and dilation as
/// PyTorch), qparams pass through — see <see cref="MaxPool2dScalar"/>.
/// </summary>
public sealed class QuantizedMaxPool2d : IQuantizedLayer
{
    private readonly string _name;

    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member or op path, for error messages.</param>
    /// <param name="options">Kernel, stride (0 = kernel), padding, dilation, ceil_mode.</param>
    /// <exception cref="ArgumentException">A size is not positive, or the padding exceeds half the effective kernel (PyTorch's rule).</exception>
    public QuantizedMaxPool2d(string model, string layer, Pool2dOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        options.Validate($"{model}.{layer}", average: false);
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
        MaxPool2dKernel.Apply(geometry, LayerScratch.Current.InputView(0, input, MemoryFormat.ChannelsLast), result.StorageBytes);
        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>PyTorch's repr: <c>MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)</c>.</summary>
    public override string ToString()
    {
        Pool2dOptions o = Options;
        return new StringBuilder("MaxPool2d(")
            .Append("kernel_size=").Append(Pool2dOptions.IntOrPair(o.KernelHeight, o.KernelWidth))
            .Append(", stride=").Append(Pool2dOptions.IntOrPair(o.EffectiveStrideHeight, o.EffectiveStrideWidth))
            .Append(", padding=").Append(Pool2dOptions.IntOrPair(o.PadHeight, o.PadWidth))
            .Append(", dilation=").Append(Pool2dOptions.IntOrPair(o.DilationHeight, o.DilationWidth))
            .Append(", ceil_mode=").Append(o.CeilMode ? "True" : "False")
            .Append(')').ToString();
    }
}
