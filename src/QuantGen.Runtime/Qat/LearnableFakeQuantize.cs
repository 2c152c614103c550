using System;
using System.Globalization;
using QuantGen.Observers;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Qat;

/// <summary>
/// Fake quantize whose scale and zero point are trained parameters (PyTorch's <c>_LearnableFakeQuantize</c>, LSQ):
/// <see cref="Scale"/> and <see cref="ZeroPoint"/> get PyTorch's gradients (<see cref="LearnableFakeQuant"/>), optionally
/// scaled by 1/√(numel · quant_max). Three phases, with PyTorch's switches: <see cref="EnableStaticEstimate"/> (the
/// default: the observer sets the parameters every forward), <see cref="EnableParamLearning"/> (the optimizer trains
/// them), <see cref="EnableStaticObservation"/> (observe only, no fake quant).
/// </summary>
/// <remarks>
/// PyTorch clamps a scale the optimizer drove to zero or below back to float32 epsilon without a word; here a scale
/// ≤ 0 (or not finite) is an error naming the layer, since it means the qparam learning rate is too high. A positive
/// scale below epsilon is raised to epsilon, as in PyTorch. Symmetric schemes keep the zero point at 0.
/// </remarks>
public sealed class LearnableFakeQuantize : FakeQuantizeBase
{
    private readonly bool _perChannel;

    /// <summary>Creates the module; use <see cref="FakeQuantSpec.Create"/>.</summary>
    /// <param name="spec">A learnable recipe.</param>
    /// <param name="layer">The quantization point, named in errors.</param>
    /// <param name="channels">Per-channel schemes: the number of channels (one scale and zero point each).</param>
    /// <exception cref="ArgumentException">Another kind of recipe, or a channel count below 1.</exception>
    public LearnableFakeQuantize(FakeQuantSpec spec, string layer, int channels = 1)
        : base(spec, layer)
    {
        spec.Validate();
        if (spec.Kind != FakeQuantKind.Learnable)
        {
            throw new ArgumentException($"{layer}: {spec} does not learn its qparams; create it with FakeQuantSpec.Create (a FakeQuantize).");
        }

        _perChannel = spec.Observer.Scheme.IsPerChannel();
        if (_perChannel && channels < 1)
        {
            throw new ArgumentException($"{layer}: a per-channel learnable fake quantize needs the channel count (at least 1), got {channels}.");
        }

        int count = _perChannel ? channels : 1;

        // PyTorch's starting values: scale 1, zero point 0 (a float parameter, rounded when used).
        Scale = nn.Parameter(full(count, 1f));
        ZeroPoint = nn.Parameter(zeros(count));
        register_parameter("scale", Scale);
        register_parameter("zero_point", ZeroPoint);
    }

    /// <summary>The learned scale(s): one, or one per channel.</summary>
    public TorchSharp.Modules.Parameter Scale { get; }

    /// <summary>The learned zero point(s) as floats; rounded half to even and clamped to the range when used.</summary>
    public TorchSharp.Modules.Parameter ZeroPoint { get; }

    /// <summary>Whether the optimizer trains the qparams (PyTorch's <c>learning_enabled</c>).</summary>
    public bool LearningEnabled { get; private set; }

    /// <summary>PyTorch's <c>enable_param_learning()</c>: qparams trained, observer off, fake quant on.</summary>
    public void EnableParamLearning()
    {
        ToggleQParamLearning(true);
        EnableObserver(false);
        EnableFakeQuant(true);
    }

    /// <summary>PyTorch's <c>enable_static_estimate()</c>: qparams from the observer every forward, fake quant on.</summary>
    public void EnableStaticEstimate()
    {
        ToggleQParamLearning(false);
        EnableObserver(true);
        EnableFakeQuant(true);
    }

    /// <summary>PyTorch's <c>enable_static_observation()</c>: qparams from the observer, no fake quant.</summary>
    public void EnableStaticObservation()
    {
        ToggleQParamLearning(false);
        EnableObserver(true);
        EnableFakeQuant(false);
    }

    /// <summary>PyTorch's <c>toggle_qparam_learning(enabled)</c>: whether the scale and zero point take gradients.</summary>
    /// <param name="enabled">True to let the optimizer train them.</param>
    public void ToggleQParamLearning(bool enabled)
    {
        LearningEnabled = enabled;
        Scale.requires_grad = enabled;
        ZeroPoint.requires_grad = enabled;
    }

    /// <summary>Sets the qparams from the observer (if enabled), then fake-quantizes with the learned ones (if enabled).</summary>
    /// <param name="input">A float32 tensor.</param>
    /// <returns>The fake-quantized tensor, or <paramref name="input"/> when fake quant is disabled.</returns>
    /// <exception cref="InvalidOperationException">A learned scale ≤ 0 or not finite.</exception>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        FakeQuant.CheckInput(input, Layer);
        GradientWatch.ThrowIfNaNSeen();
        if (ObserverEnabled)
        {
            Observer.Observe(input);
            if (Observer.HasObserved)
            {
                CopyFromObserver(Observer.CalculateQParams());
            }
        }
        else
        {
            CheckAndClampScale();
        }

        if (!FakeQuantEnabled)
        {
            return input;
        }

        if (Spec.Observer.Scheme.IsSymmetric())
        {
            Overwrite(ZeroPoint, new float[ZeroPoint.shape[0]]);
        }

        float gradFactor = Spec.UseGradScaling ? GradFactor(input.numel(), QuantMax) : 1f;
        int axis = _perChannel ? FakeQuant.ResolveAxis(input, Spec.Observer.ChannelAxis, Layer) : -1;
        if (_perChannel && input.shape[axis] != Scale.shape[0])
        {
            throw new ArgumentException($"{Layer}: the learnable fake quantize has {Scale.shape[0]} channels but the tensor has shape [{string.Join(", ", input.shape)}] ({input.shape[axis]} along axis {axis}).");
        }

        // In eval mode, the storage type's range, as the converted int8 model clamps (see FakeQuantize.forward).
        (int low, int high) = training ? (QuantMin, QuantMax) : QParamsMath.QuantRange(Spec.Observer.DType, reduceRange: false);
        return LearnableFakeQuant.Apply(input, Scale, ZeroPoint, low, high, axis, gradFactor, GradientWatch);
    }

    /// <summary>
    /// PyTorch's <c>calculate_qparams</c>: the learned scale (raised to float32 epsilon if below it) and the zero point
    /// rounded half to even and clamped to the range.
    /// </summary>
    /// <returns>Per-tensor or per-channel qparams.</returns>
    /// <exception cref="InvalidOperationException">A learned scale ≤ 0 or not finite.</exception>
    public override QParams CalculateQParams()
    {
        CheckAndClampScale();
        float[] scales = ValuesOf(Scale);
        float[] zeroPoints = ValuesOf(ZeroPoint);
        var rounded = new int[zeroPoints.Length];
        for (int c = 0; c < rounded.Length; c++)
        {
            rounded[c] = (int)Math.Clamp(MathF.Round(zeroPoints[c], MidpointRounding.ToEven), QuantMin, QuantMax);
        }

        if (!_perChannel)
        {
            return QParams.PerTensor(scales[0], rounded[0], Spec.Observer.DType);
        }

        int axis = Observer is MovingAveragePerChannelMinMaxObserver { ResolvedChannelAxis: >= 0 } averaged ? averaged.ResolvedChannelAxis
            : Observer is PerChannelMinMaxObserver { ResolvedChannelAxis: >= 0 } running ? running.ResolvedChannelAxis
            : Spec.Observer.ChannelAxis;
        return QParams.PerChannel(scales, rounded, axis, Spec.Observer.DType);
    }

    /// <summary>PyTorch's LSQ gradient scale, <c>1 / (numel · quant_max) ** 0.5</c> in double, used as float32.</summary>
    /// <param name="numel">Elements of the quantized tensor.</param>
    /// <param name="quantMax">The effective quant_max.</param>
    /// <returns>The factor.</returns>
    public static float GradFactor(long numel, int quantMax) => (float)(1.0 / Math.Sqrt((double)numel * quantMax));

    private void CopyFromObserver(QParams qparams)
    {
        float[] scales = qparams.Scales;
        int[] zeroPoints = qparams.ZeroPoints;
        if (scales.Length != Scale.shape[0])
        {
            throw new ArgumentException($"{Layer}: the observer found {scales.Length} channels but the learnable fake quantize was made with {Scale.shape[0]}.");
        }

        Overwrite(Scale, scales);
        Overwrite(ZeroPoint, Array.ConvertAll(zeroPoints, z => (float)z));
    }

    /// <summary>
    /// Writes <paramref name="values"/> into a qparam's storage as PyTorch's <c>param.data.copy_()</c> does: without a
    /// version bump, so a forward that used the old values earlier in the same graph (the same fake quantize applied
    /// twice) still back-propagates, instead of failing inside libtorch's backward. Unchanged values are not written.
    /// </summary>
    private static void Overwrite(TorchSharp.Modules.Parameter parameter, float[] values)
    {
        float[] current = ValuesOf(parameter);
        if (current.AsSpan().SequenceEqual(values))
        {
            return;
        }

        if (parameter.device_type != DeviceType.CPU)
        {
            using (no_grad())
            using (Tensor replacement = tensor(values, device: parameter.device))
            {
                parameter.copy_(replacement);
            }

            return;
        }

        var storage = parameter.data<float>();
        for (int i = 0; i < values.Length; i++)
        {
            storage[i] = values[i];
        }
    }

    private static float[] ValuesOf(Tensor parameter)
    {
        using Tensor detached = parameter.detach();
        using Tensor onCpu = detached.cpu();
        return onCpu.data<float>().ToArray();
    }

    private void CheckAndClampScale()
    {
        float[] scales = ValuesOf(Scale);
        for (int c = 0; c < scales.Length; c++)
        {
            if (!(scales[c] > 0f) || !float.IsFinite(scales[c]))
            {
                string where = _perChannel ? $" (channel {c})" : string.Empty;
                throw new InvalidOperationException(
                    $"{Layer}: the learned scale{where} is {scales[c].ToString("R", CultureInfo.InvariantCulture)}; a scale must stay positive and finite. " +
                    "The optimizer drove it there: lower the learning rate of the qparams, or enable gradient scaling (FakeQuantSpec.Learnable(..., useGradScaling: true)).");
            }
        }

        Overwrite(Scale, Array.ConvertAll(scales, v => MathF.Max(v, QParamsMath.Eps)));
    }
}
