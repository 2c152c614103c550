using System;
using QuantGen.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Qat;

/// <summary>
/// The QAT form of a conv or transposed conv and what is fused into it — PyTorch's <c>torch.ao.nn.qat.Conv2d</c>,
/// <c>intrinsic.qat.ConvReLU2d</c>, <c>ConvBn2d</c> and <c>ConvBnReLU2d</c> — run over the user's own modules, so training
/// it trains their parameters and BatchNorm statistics.
/// </summary>
/// <remarks>
/// With a BatchNorm it is PyTorch's <c>_ConvBnNd._forward_approximate</c>: the weight is scaled by
/// <c>γ / √(running_var + ε)</c> before its fake quantize (the weight the int8 model will hold once the BatchNorm is folded),
/// the conv runs without bias, its output is divided by the same factor, the conv's bias is added, and the BatchNorm runs as it is — on the
/// batch's statistics in training mode (updating the running ones), on the running statistics in eval mode or after
/// <c>FreezeBatchNorm()</c>. ReLU follows when fused (inside the output's fake quantize when it can:
/// <see cref="LeavesReluToOutput"/>).
/// </remarks>
public sealed class QatConvolution
{
    private readonly nn.Module<Tensor, Tensor> _conv;
    private readonly Tensor _weight;
    private readonly Tensor? _bias;
    private readonly BatchNorm2d? _batchNorm;
    private readonly Conv2dOptions _options;
    private readonly ConvTranspose2dOptions _transposedOptions;

    /// <summary>Creates the QAT conv over <paramref name="conv"/> (a Conv2d or ConvTranspose2d).</summary>
    /// <param name="name">"Model.layer", named in errors.</param>
    /// <param name="conv">The user's conv module; its parameters are used, not copied.</param>
    /// <param name="batchNorm">The BatchNorm2d fused into it, or null.</param>
    /// <param name="relu">Whether a ReLU is fused.</param>
    /// <param name="weightFakeQuant">The weight's fake quantize (per channel along the output channels: axis 0, or 1 for a transposed conv).</param>
    /// <exception cref="NotSupportedException">A conv the int8 kernels do not take (padding mode, a grouped transposed conv with a BatchNorm).</exception>
    internal QatConvolution(string name, nn.Module<Tensor, Tensor> conv, BatchNorm2d? batchNorm, bool relu, FakeQuantizeBase weightFakeQuant)
    {
        Name = name;
        _conv = conv;
        _batchNorm = batchNorm;
        Relu = relu;
        WeightFakeQuant = weightFakeQuant;
        switch (conv)
        {
            case Conv2d plain:
                _options = FusedConv2d.ReadOptions(name, plain);
                _weight = plain.weight!;
                _bias = plain.bias;
                OutputChannelAxis = 0;
                break;
            case ConvTranspose2d transposed:
                _transposedOptions = FusedConvTranspose2d.ReadOptions(name, transposed);
                _weight = transposed.weight!;
                _bias = transposed.bias;
                IsTransposed = true;
                OutputChannelAxis = 1;
                if (batchNorm is not null && _transposedOptions.Groups != 1)
                {
                    throw new NotSupportedException($"{name}: a grouped ConvTranspose2d (groups={_transposedOptions.Groups}) with a BatchNorm2d has no QAT form: the BatchNorm's per-channel factor does not line up with the weight's axis 1.");
                }

                break;
            default:
                throw new NotSupportedException($"{name}: {conv.GetType().Name} has no QAT conv form.");
        }
    }

    /// <summary>"Model.layer".</summary>
    public string Name { get; }

    /// <summary>Whether this is a transposed conv (weight [InC, OutC/groups, KH, KW]).</summary>
    public bool IsTransposed { get; }

    /// <summary>The weight axis of the output channels (0 for Conv2d, 1 for ConvTranspose2d).</summary>
    public int OutputChannelAxis { get; }

    /// <summary>Whether a ReLU is fused.</summary>
    public bool Relu { get; }

    /// <summary>
    /// True when the fused ReLU is left to the output's fake quantize, which applies it in the same pass
    /// (<see cref="FakeQuantize.ForwardAfterRelu"/>): <see cref="Forward"/> then returns the value before the ReLU.
    /// </summary>
    public bool LeavesReluToOutput { get; init; }

    /// <summary>The BatchNorm fused into this conv, or null.</summary>
    public BatchNorm2d? BatchNorm => _batchNorm;

    /// <summary>The weight's fake quantize (PyTorch's <c>weight_fake_quant</c>).</summary>
    public FakeQuantizeBase WeightFakeQuant { get; }

    /// <summary>The QAT forward (see the class remarks).</summary>
    /// <param name="input">A float32 [N, C, H, W] batch.</param>
    /// <returns>The output, differentiable with respect to the input, the conv's and the BatchNorm's parameters.</returns>
    public Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (_batchNorm is null)
        {
            Tensor output = Convolve(input, WeightFakeQuant.forward(_weight), _bias);
            return Relu && !LeavesReluToOutput ? nn.functional.relu(output) : output;
        }

        // PyTorch's _forward_approximate: fake-quantize the weight as it will be once the BatchNorm is folded
        // (scaled by gamma / sqrt(running_var + eps)), undo the scale on the output, then let the BatchNorm normalise.
        long channels = _batchNorm.num_features;
        Tensor runningStd = (_batchNorm.running_var! + _batchNorm.eps).sqrt();
        Tensor scaleFactor = _batchNorm.weight is { } gamma ? gamma / runningStd : runningStd.reciprocal();
        long[] weightShape = IsTransposed ? [1, channels, 1, 1] : [channels, 1, 1, 1];
        Tensor scaledWeight = WeightFakeQuant.forward(_weight * scaleFactor.reshape(weightShape));

        // PyTorch's order exactly. Dividing the small fake-quantized weight instead (a conv is linear in its weight) would
        // save two passes over the output each way (the Fashion-MNIST CNN's backward 44 → 35 ms), but its different
        // rounding moved that example's QAT results by up to 0.8 point (4-bit 88.48% → 87.70%), so QAT here follows
        // PyTorch's arithmetic rather than a faster equivalent.
        Tensor convolved = Convolve(input, scaledWeight, null) / scaleFactor.reshape(1, channels, 1, 1);
        if (_bias is not null)
        {
            convolved = convolved + _bias.reshape(1, channels, 1, 1);
        }

        Tensor normalised = _batchNorm.forward(convolved);
        return Relu && !LeavesReluToOutput ? nn.functional.relu(normalised) : normalised;
    }

    private Tensor Convolve(Tensor input, Tensor weight, Tensor? bias)
    {
        if (IsTransposed)
        {
            return FusedConvTranspose2d.ConvTranspose(input, weight, bias, _transposedOptions);
        }

        Conv2dOptions o = _options;
        return nn.functional.conv2d(
            input, weight, bias,
            strides: [o.StrideHeight, o.StrideWidth],
            padding: [o.PadHeight, o.PadWidth],
            dilation: [o.DilationHeight, o.DilationWidth],
            groups: o.Groups);
    }
}

/// <summary>
/// The QAT form of a Linear (and LinearReLU) — PyTorch's <c>torch.ao.nn.qat.Linear</c> and <c>intrinsic.qat.LinearReLU</c> —
/// over the user's own module: <c>linear(x, weight_fake_quant(weight), bias)</c>, then ReLU when fused.
/// </summary>
public sealed class QatLinear
{
    private readonly Linear _linear;

    internal QatLinear(string name, Linear linear, bool relu, FakeQuantizeBase weightFakeQuant)
    {
        Name = name;
        _linear = linear;
        Relu = relu;
        WeightFakeQuant = weightFakeQuant;
    }

    /// <summary>"Model.layer".</summary>
    public string Name { get; }

    /// <summary>Whether a ReLU is fused.</summary>
    public bool Relu { get; }

    /// <summary>The weight's fake quantize (PyTorch's <c>weight_fake_quant</c>).</summary>
    public FakeQuantizeBase WeightFakeQuant { get; }

    /// <summary>True when the fused ReLU is left to the output's fake quantize (as <see cref="QatConvolution.LeavesReluToOutput"/>).</summary>
    public bool LeavesReluToOutput { get; init; }

    /// <summary>The QAT forward.</summary>
    /// <param name="input">A float32 [..., in_features] batch.</param>
    /// <returns>The output, differentiable with respect to the input and the Linear's parameters.</returns>
    public Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Tensor output = nn.functional.linear(input, WeightFakeQuant.forward(_linear.weight!), _linear.bias);
        return Relu && !LeavesReluToOutput ? nn.functional.relu(output) : output;
    }
}
