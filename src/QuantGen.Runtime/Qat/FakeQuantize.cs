using System;
using QuantGen.Observers;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Qat;

/// <summary>
/// Fake quantize with qparams from its observer (PyTorch's <c>FakeQuantize</c> and <c>FusedMovingAvgObsFakeQuantize</c>, and
/// the max|x| / 127 scheme): while the observer is enabled, every forward records the batch and recomputes the training
/// qparams (<see cref="TrainingQParams"/>); then it fake-quantizes with them (<see cref="FakeQuant"/>), straight-through
/// in the backward.
/// </summary>
public sealed class FakeQuantize : FakeQuantizeBase
{
    private QParams? _trainingQParams;

    /// <summary>Creates the module; use <see cref="FakeQuantSpec.Create"/>.</summary>
    /// <param name="spec">A non-learnable recipe.</param>
    /// <param name="layer">The quantization point, named in errors.</param>
    /// <exception cref="ArgumentException">A learnable or inconsistent recipe.</exception>
    public FakeQuantize(FakeQuantSpec spec, string layer)
        : base(spec, layer)
    {
        spec.Validate();
        if (spec.Kind == FakeQuantKind.Learnable)
        {
            throw new ArgumentException($"{layer}: {spec} learns its qparams; create it with FakeQuantSpec.Create (a LearnableFakeQuantize).");
        }
    }

    /// <summary>The qparams the forward fake-quantizes with: those of the last observed batch (null before the first).</summary>
    public QParams? TrainingQParams => _trainingQParams;

    /// <summary>Observes (if enabled), then fake-quantizes (if enabled) <paramref name="input"/>.</summary>
    /// <param name="input">A float32 tensor.</param>
    /// <returns>The fake-quantized tensor, or <paramref name="input"/> itself when fake quant is disabled.</returns>
    /// <exception cref="InvalidOperationException">Fake quant is enabled but no batch was ever observed.</exception>
    public override Tensor forward(Tensor input) => Forward(input, afterRelu: false);

    /// <summary>
    /// <c>forward(relu(input))</c>, in one pass each way where it can be (<see cref="FakeQuant.PerTensorAfterRelu"/>): per-tensor
    /// qparams, a CPU tensor, and an observer that needs only the batch's min and max (or is disabled or fixed). Otherwise
    /// it is that composition. The QAT form calls it for a conv or linear with a fused ReLU.
    /// </summary>
    /// <param name="input">A float32 tensor, before the ReLU.</param>
    /// <returns>The fake-quantized ReLU of <paramref name="input"/> (the ReLU alone when fake quant is disabled).</returns>
    /// <exception cref="InvalidOperationException">Fake quant is enabled but no batch was ever observed.</exception>
    public Tensor ForwardAfterRelu(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        bool fusable = input.device_type == DeviceType.CPU && input.dtype == ScalarType.Float32
            && !Spec.Observer.Scheme.IsPerChannel() && Spec.Kind != FakeQuantKind.AbsMaxSymmetric
            && (Observer.CanObserveRectified || !ObserverEnabled);
        return fusable ? Forward(input, afterRelu: true) : forward(nn.functional.relu(input));
    }

    private Tensor Forward(Tensor input, bool afterRelu)
    {
        ArgumentNullException.ThrowIfNull(input);
        FakeQuant.CheckInput(input, Layer);
        GradientWatch.ThrowIfNaNSeen();
        if (Observer.IsFixed)
        {
            // PyTorch's FixedQParamsFakeQuantize (sigmoid, tanh, hardsigmoid): the qparams never change.
            _trainingQParams = Observer.FixedQParams;
        }
        else if (ObserverEnabled)
        {
            if (afterRelu)
            {
                Observer.TryObserveRectified(input);
            }
            else
            {
                Observer.Observe(input);
            }

            if (Observer.HasObserved)
            {
                _trainingQParams = Spec.Kind switch
                {
                    FakeQuantKind.FusedMovingAverage => Qat.TrainingQParams.FromObserver(Observer),
                    FakeQuantKind.AbsMaxSymmetric => AbsMaxQParams(input),
                    _ => Observer.CalculateQParams(),
                };
            }
        }

        if (!FakeQuantEnabled)
        {
            return afterRelu ? nn.functional.relu(input) : input;
        }

        if (_trainingQParams is null)
        {
            throw new InvalidOperationException(
                $"{Layer}: fake quantize has no scale and zero point yet; run a forward with the observer enabled first (it is disabled, or observation is paused).");
        }

        if (training)
        {
            return afterRelu
                ? FakeQuant.PerTensorAfterRelu(input, _trainingQParams.Scale, _trainingQParams.ZeroPoint, QuantMin, QuantMax, Layer, GradientWatch)
                : FakeQuant.Apply(input, _trainingQParams, QuantMin, QuantMax, Layer, GradientWatch);
        }

        // In eval mode the fake quantize does what the converted int8 model will do: the qparams Convert() gives it (the
        // observer's formula) and the storage type's range (the int8 model's quantize and requantize clamp to 0..255 or
        // -128..127, not to a reduced quant range), so evaluating the QAT model predicts the int8 model. PyTorch keeps the
        // training formula and range in eval too; docs/qat.md says where the two differ.
        QParams qparams = Observer.HasObserved && !Observer.IsFixed ? Observer.CalculateQParams() : _trainingQParams;
        (int storageMin, int storageMax) = QParamsMath.QuantRange(Spec.Observer.DType, reduceRange: false);
        return afterRelu
            ? FakeQuant.PerTensorAfterRelu(input, qparams.Scale, qparams.ZeroPoint, storageMin, storageMax, Layer, GradientWatch)
            : FakeQuant.Apply(input, qparams, storageMin, storageMax, Layer, GradientWatch);
    }

    /// <inheritdoc/>
    public override QParams CalculateQParams() => Observer.CalculateQParams();

    /// <summary>The max|x| / 127 qparams of this very tensor (the observer keeps the averaged range for conversion).</summary>
    private QParams AbsMaxQParams(Tensor input)
    {
        float absMax;
        using (no_grad())
        using (Tensor detached = input.detach())
        using (Tensor magnitudes = detached.abs())
        using (Tensor max = magnitudes.max())
        using (Tensor onCpu = max.cpu())
        {
            absMax = onCpu.item<float>();
        }

        (float scale, int zeroPoint) = QParamsMath.FromMinMax(-absMax, absMax, Spec.Observer.DType, symmetric: true, QuantMin, QuantMax, Spec.Observer.QuantMin.HasValue);
        return QParams.PerTensor(scale, zeroPoint, Spec.Observer.DType);
    }
}
