using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using QuantGen.Modules;
using QuantGen.Observers;
using QuantGen.Qat;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Binding;

/// <summary>
/// PyTorch's <c>prepare_qat</c> for a [Quantize] model: the bound graph (the same binding, fusions and quantization points
/// as <see cref="BoundObservedModel"/>, planned by the same code) as a trainable TorchSharp module, with a fake quantize at
/// every activation that the int8 model quantizes and on every conv, transposed conv and linear weight. The generated
/// <c>M.Qat</c> derives from it; its <c>Convert()</c> gives the same <c>M.Quantized</c> as post-training quantization.
/// </summary>
/// <remarks>
/// <para>
/// The QAT model <b>shares</b> the float model's modules (PyTorch's <c>prepare_qat(model, inplace=True)</c>): its parameters
/// are the model's own, so the optimizer trains the model itself, BatchNorm updates its running statistics, and
/// <c>train()</c>/<c>eval()</c> switch the model too. Copy the model first (a new instance and <c>load_state_dict</c>) to keep
/// the original weights.
/// </para>
/// <para>
/// Conv + BatchNorm (+ ReLU) train as PyTorch's <c>ConvBn2d</c>/<c>ConvBnReLU2d</c> do (<see cref="QatConvolution"/>);
/// Linear (+ ReLU) as <c>qat.Linear</c>/<c>LinearReLU</c> (<see cref="QatLinear"/>); every other op runs in float as the
/// model wrote it, with a fake quantize on its output where the int8 model quantizes it. Ops that stay in float in the
/// converted model get no fake quantize. The sigmoid-like ops with fixed qparams get PyTorch's fixed fake quantize.
/// </para>
/// <para>
/// PyTorch's schedule: train a few epochs, <see cref="DisableObservers"/> to freeze the qparams, <see cref="FreezeBatchNorm"/>
/// to switch the fused BatchNorms to their running statistics, train on, then <c>eval()</c> and <c>Convert()</c>.
/// </para>
/// </remarks>
public abstract class BoundQatModel : nn.Module<Tensor, Tensor>
{
    private readonly BoundGraph _graph;
    private readonly Func<Tensor[], Tensor>[] _steps;
    private readonly FakeQuantizeBase?[] _activationFakeQuant;
    private readonly bool[] _fakeQuantized;
    private readonly bool[] _reluAtPoint;
    private readonly FakeQuantizeBase?[] _sharedFakeQuant;
    private readonly (int Value, string Layer)[] _convertPoints;
    private readonly List<(string Layer, FakeQuantizeBase FakeQuant, int Axis)> _weights = new();
    private readonly List<QatConvolution> _convolutions = new();
    private readonly string _captureHash;
    private bool _batchNormFrozen;
    private bool _converted;
    private bool _disposed;

    /// <summary>Binds, plans and builds the QAT form (generated code calls this from <c>PrepareQat()</c>).</summary>
    /// <param name="model">The float model (any mode; the QAT model starts in training mode, and so does the model).</param>
    /// <param name="modelName">Its class name.</param>
    /// <param name="forward">Its captured forward.</param>
    /// <param name="qconfig">The fake quantize recipes and the backend.</param>
    /// <param name="mapping">Which ops are quantized: its per-member and per-type entries (a null qconfig keeps an op in float); its global qconfig is replaced by <paramref name="qconfig"/>'s observers.</param>
    /// <param name="autoFuse">Apply FX's fusion patterns.</param>
    /// <exception cref="ArgumentException">An inconsistent qconfig, or a mapping naming layers the model does not have.</exception>
    /// <exception cref="QuantGenBindingException">A call cannot be bound (the message names model, path and source line).</exception>
    protected BoundQatModel(nn.Module model, string modelName, CapturedForward forward, QatQConfig qconfig, QConfigMapping mapping, bool autoFuse = true)
        : base(modelName + ".Qat")
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(qconfig);
        ArgumentNullException.ThrowIfNull(mapping);
        qconfig.Validate();
        ModelName = modelName;
        QConfig = qconfig;
        _captureHash = forward.Hash;
        mapping.SetGlobal(qconfig.Observers);
        if (mapping.FixedActivations.Count > 0 || mapping.FixedWeights.Count > 0)
        {
            throw new ArgumentException($"{modelName}: PrepareQat takes no fixed qparams (SetModuleQParams and friends): training decides them. Fix qparams on the mapping given to Prepare instead.");
        }

        // One set of rules: the post-training form plans the graph (which ops are int8, which values are quantized),
        // and the QAT form puts its fake quantizes exactly there.
        IReadOnlyList<(BoundOp Op, bool Int8, bool OwnObserver, string? FloatReason)> plans;
        string?[] observedLayers;
        using (var planning = new PlanningForm(model, modelName, forward, mapping, autoFuse))
        {
            _graph = planning.Graph;
            plans = planning.OpPlans;
            observedLayers = planning.ObservedLayers;
        }

        foreach ((BoundOp op, _, _, string? reason) in plans)
        {
            if (reason is BoundObservedModel.DynamicReason or BoundObservedModel.WeightOnlyReason or BoundObservedModel.Float16Reason)
            {
                string kind = reason switch { BoundObservedModel.DynamicReason => "dynamic", BoundObservedModel.Float16Reason => "float16 dynamic", _ => "weight-only" };
                throw new ArgumentException($"{modelName}.{op.Name}: its qconfig is {kind}; QAT trains static quantization only. Give it a static qconfig, or None to keep it in float.");
            }
        }

        register_module("model", model);
        int valueCount = _graph.ValueCount;
        var int8Output = new bool[valueCount];
        var int8Input = new bool[valueCount];
        foreach ((BoundOp op, bool int8, _, _) in plans)
        {
            if (int8)
            {
                int8Output[op.Output] = true;
                foreach (int input in op.Inputs)
                {
                    int8Input[input] = true;
                }
            }
        }

        _activationFakeQuant = new FakeQuantizeBase?[valueCount];
        _fakeQuantized = new bool[valueCount];
        var points = new List<(int, string)>();
        for (int v = 0; v < valueCount; v++)
        {
            if (observedLayers[v] is not { } layer)
            {
                continue;
            }

            // A value the int8 model quantizes is fake-quantized; one it keeps in float is only observed (its qparams
            // serve forward(QTensor) and the reports, as in the post-training form).
            _activationFakeQuant[v] = Register(qconfig.Activation.Create($"{modelName}.{layer}"), layer, "activation_post_process");
            _fakeQuantized[v] = int8Output[v] || int8Input[v];
            points.Add((v, layer));
        }

        _convertPoints = points.ToArray();
        _reluAtPoint = new bool[valueCount];
        _steps = new Func<Tensor[], Tensor>[plans.Count];
        for (int i = 0; i < plans.Count; i++)
        {
            (BoundOp op, bool int8, _, _) = plans[i];
            _steps[i] = int8 ? Int8Step(op) : BoundObservedModel.PlainFloat(op);
        }

        // Ops whose int8 output keeps their input's qparams but rounds (average pools, mean) round here too, with the
        // fake quantize their input's qparams come from (walking back through ReLU, max pool, flatten...).
        _sharedFakeQuant = new FakeQuantizeBase?[valueCount];
        var qparamsFrom = new FakeQuantizeBase?[valueCount];
        for (int v = 0; v < valueCount; v++)
        {
            qparamsFrom[v] = _activationFakeQuant[v];
        }

        foreach ((BoundOp op, bool int8, bool ownObserver, _) in plans)
        {
            if (!int8 || ownObserver || op.Inputs.Length != 1 || qparamsFrom[op.Output] is not null)
            {
                continue;
            }

            if (op.Kind is BoundKind.MulConstant or BoundKind.AddConstant || (op.Kind == BoundKind.Elementwise && ElementwiseTable.FixedOutputQParams(op.TypeName) is not null))
            {
                continue;   // qparams of their own, derived or fixed
            }

            qparamsFrom[op.Output] = qparamsFrom[op.Inputs[0]];
            if (op.Kind is BoundKind.AvgPool2d or BoundKind.AdaptiveAvgPool2d or BoundKind.Mean)
            {
                _sharedFakeQuant[op.Output] = qparamsFrom[op.Inputs[0]];
            }
        }

        train();
    }

    /// <summary>The model's class name.</summary>
    public string ModelName { get; }

    /// <summary>The fake quantize recipes and the backend of the converted model.</summary>
    public QatQConfig QConfig { get; }

    /// <summary>The bound graph, as <see cref="BoundObservedModel.Graph"/> has it.</summary>
    public BoundGraph Graph => _graph;

    /// <summary>The identity of the captured forward this form was built from.</summary>
    protected string CaptureHash => _captureHash;

    /// <summary>Every fake quantize: activations in forward order (the input first), then weights.</summary>
    public IReadOnlyList<FakeQuantizeBase> FakeQuantizes =>
        _activationFakeQuant.Where(f => f is not null).Select(f => f!).Concat(_weights.Select(w => w.FakeQuant)).ToArray();

    /// <summary>True once <see cref="ConvertMapping"/> ran (the generated <c>Convert()</c>): training this form further changes nothing converted.</summary>
    public bool IsConverted => _converted;

    /// <summary>True after <see cref="FreezeBatchNorm"/>.</summary>
    public bool IsBatchNormFrozen => _batchNormFrozen;

    /// <summary>The QAT forward: the model's ops in float with fake quantize at the int8 model's quantization points.</summary>
    /// <param name="input">A float32 batch.</param>
    /// <returns>The output, differentiable with respect to the model's parameters (and learnable qparams).</returns>
    /// <exception cref="InvalidOperationException">Training after <c>Convert()</c>, or a NaN gradient reached a fake quantize in the last backward.</exception>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (_converted && training)
        {
            throw new InvalidOperationException(
                $"{ModelName}.Qat: training after Convert(): the converted int8 model has its own copy of the weights and qparams, so further training would not reach it. " +
                "Train before converting, or call PrepareQat() again for a new QAT model (eval-mode forwards are fine).");
        }

        using var scope = torch.NewDisposeScope();
        var values = new Tensor?[_graph.ValueCount];
        values[0] = Point(0, input);
        for (int i = 0; i < _steps.Length; i++)
        {
            BoundOp op = _graph.Ops[i];
            var inputs = new Tensor[op.Inputs.Length];
            for (int k = 0; k < inputs.Length; k++)
            {
                inputs[k] = values[op.Inputs[k]]!;
            }

            Tensor output;
            try
            {
                output = _steps[i](inputs);
            }
            catch (Exception e) when (e is not (QuantGenBindingException or InvalidOperationException))
            {
                throw new QuantGenBindingException($"{ModelName}.{op.Name} ({op.Source}, '{op.Text}'): the QAT op failed on inputs of shape {string.Join(" and ", inputs.Select(t => "[" + string.Join(", ", t.shape) + "]"))}: {e.Message}", e);
            }

            values[op.Output] = Point(op.Output, output);
        }

        return values[_graph.Result]!.MoveToOuterDisposeScope();
    }

    /// <summary>Sets training or eval mode on this form and the model; fused BatchNorms stay in eval mode once frozen.</summary>
    /// <param name="on">True for training mode.</param>
    public override void train(bool on = true)
    {
        base.train(on);
        if (_batchNormFrozen)
        {
            foreach (QatConvolution conv in _convolutions)
            {
                conv.BatchNorm?.eval();
            }
        }
    }

    /// <summary>PyTorch's <c>disable_observer</c> on every fake quantize: the qparams stay as they are from now on.</summary>
    public void DisableObservers() => ForEachFakeQuant(f => f.DisableObserver());

    /// <summary>PyTorch's <c>enable_observer</c> on every fake quantize.</summary>
    public void EnableObservers() => ForEachFakeQuant(f => f.EnableObserver());

    /// <summary>PyTorch's <c>disable_fake_quant</c> on every fake quantize: the forward is the float model's (observers still run if enabled).</summary>
    public void DisableFakeQuant() => ForEachFakeQuant(f => f.DisableFakeQuant());

    /// <summary>PyTorch's <c>enable_fake_quant</c> on every fake quantize.</summary>
    public void EnableFakeQuant() => ForEachFakeQuant(f => f.EnableFakeQuant());

    /// <summary>
    /// PyTorch's <c>freeze_bn_stats</c>: every BatchNorm fused into a conv uses (and no longer updates) its running
    /// statistics, in training mode too, so the weights finish training against the statistics they will be folded with.
    /// </summary>
    public void FreezeBatchNorm()
    {
        _batchNormFrozen = true;
        foreach (QatConvolution conv in _convolutions)
        {
            conv.BatchNorm?.eval();
        }
    }

    /// <summary>
    /// What <c>Convert()</c> hands to <c>Prepare(mapping)</c>: <paramref name="mapping"/> (the class's default mapping) with
    /// the QAT qconfig's observers as its global qconfig and every quantization point's and weight's qparams fixed to what
    /// the fake quantizes' <c>calculate_qparams</c> give (PyTorch's convert reads them the same way). Marks this form converted.
    /// </summary>
    /// <param name="mapping">A fresh copy of the class's default mapping.</param>
    /// <returns><paramref name="mapping"/>, changed.</returns>
    /// <exception cref="InvalidOperationException">The form is in training mode (PyTorch converts in eval mode), or a fake quantize has seen no batch.</exception>
    protected QConfigMapping ConvertMapping(QConfigMapping mapping)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        if (training)
        {
            throw new InvalidOperationException(
                $"{ModelName}.Qat: Convert() in training mode. PyTorch converts a QAT model in eval mode: call qat.eval() first, so every BatchNorm is folded with its running statistics.");
        }

        ForEachFakeQuant(f => f.GradientWatch.ThrowIfNaNSeen());
        mapping.SetGlobal(QConfig.Observers);
        mapping.FixedPointsMayBeAbsent = true;
        foreach ((int value, string layer) in _convertPoints)
        {
            QParams q = CalculateQParams(_activationFakeQuant[value]!, layer);
            mapping.SetModuleQParams(layer, q.Scale, q.ZeroPoint);
        }

        foreach ((string layer, FakeQuantizeBase fakeQuant, int axis) in _weights)
        {
            QParams q = CalculateQParams(fakeQuant, layer + ".weight");
            if (q.IsPerChannel)
            {
                mapping.SetModuleWeightQParams(layer, q.Scales, q.ZeroPoints, axis);
            }
            else
            {
                mapping.SetModuleWeightQParams(layer, q.Scale, q.ZeroPoint);
            }
        }

        _converted = true;
        return mapping;
    }

    /// <summary>
    /// Releases the fake quantizes (and a learnable one's parameters) but not the model: the QAT form borrows the model's
    /// modules, and TorchSharp's <c>Module.Dispose</c> would dispose every registered parameter and submodule, the model's
    /// among them, leaving the caller's model unusable. The form's own (empty) native module is left to its finalizer.
    /// </summary>
    /// <param name="disposing">True from <c>Dispose()</c>.</param>
    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            foreach (FakeQuantizeBase fakeQuant in FakeQuantizes)
            {
                fakeQuant.Dispose();
            }
        }
    }

    /// <summary>The QAT form, one op per line with its fake quantizes.</summary>
    /// <returns>The ops in forward order.</returns>
    public override string ToString()
    {
        var text = new StringBuilder($"{ModelName}.Qat(\n");
        if (_activationFakeQuant[0] is { } inputFq)
        {
            text.Append($"  (input): {(_fakeQuantized[0] ? inputFq.Spec.ToString() : "float, observed")}\n");
        }

        foreach (BoundOp op in _graph.Ops)
        {
            text.Append($"  ({op.Name}): {op.TypeName}{(op.FusedBatchNorm is null ? "" : "+BatchNorm2d")}{(op.FusedRelu is null ? "" : "+ReLU")}");
            if (_weights.FirstOrDefault(w => w.Layer == op.Name).FakeQuant is { } weightFq)
            {
                text.Append($"\n    (weight_fake_quant): {weightFq.Spec}");
            }

            if (_activationFakeQuant[op.Output] is { } fq)
            {
                text.Append(_fakeQuantized[op.Output] ? $"\n    (activation_post_process): {fq.Spec}" : "\n    (float output, observed)");
            }

            text.Append('\n');
        }

        return text.Append(')').ToString();
    }

    private static QParams CalculateQParams(FakeQuantizeBase fakeQuant, string layer)
    {
        try
        {
            return fakeQuant.CalculateQParams();
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException($"{fakeQuant.Layer}: Convert() before any training batch reached this fake quantize, so it has no qparams. Run training (or at least one forward in training mode) first.", e);
        }
    }

    private Tensor Point(int value, Tensor x)
    {
        if (_activationFakeQuant[value] is not { } fakeQuant)
        {
            return _sharedFakeQuant[value] is { } shared ? shared.ForwardShared(x) : x;
        }

        if (_reluAtPoint[value])
        {
            return ((FakeQuantize)fakeQuant).ForwardAfterRelu(x);
        }

        if (_fakeQuantized[value])
        {
            return fakeQuant.forward(x);
        }

        if (fakeQuant.ObserverEnabled)
        {
            fakeQuant.Observer.Observe(x);
        }

        return x;
    }

    private Func<Tensor[], Tensor> Int8Step(BoundOp op)
    {
        string name = $"{ModelName}.{op.Name}";
        switch (op.Kind)
        {
            case BoundKind.Conv2d or BoundKind.ConvTranspose2d:
            {
                int axis = op.Kind == BoundKind.ConvTranspose2d ? 1 : 0;
                var module = (nn.Module<Tensor, Tensor>)op.Module!;
                long channels = module is ConvTranspose2d t ? t.out_channels / t.groups : ((Conv2d)module).out_channels;
                FakeQuantizeBase weightFq = WeightFakeQuant(op.Name, axis, checked((int)channels));
                var conv = new QatConvolution(name, module, (BatchNorm2d?)op.FusedBatchNorm?.Module, op.FusedRelu is not null, weightFq) { LeavesReluToOutput = ReluAtPoint(op) };
                _convolutions.Add(conv);
                return a => conv.Forward(a[0]);
            }

            case BoundKind.Linear:
            {
                var module = (Linear)op.Module!;
                FakeQuantizeBase weightFq = WeightFakeQuant(op.Name, 0, checked((int)module.out_features));
                var linear = new QatLinear(name, module, op.FusedRelu is not null, weightFq) { LeavesReluToOutput = ReluAtPoint(op) };
                return a => linear.Forward(a[0]);
            }

            case BoundKind.Add when ReluAtPoint(op):
                return a => a[0] + a[1];

            case BoundKind.Elementwise when ElementwiseTable.FixedOutputQParams(op.TypeName) is { } fixedQParams:
            {
                // PyTorch's FixedQParamsFakeQuantize: sigmoid 1/256, tanh 2/256 — the int8 op's output qparams.
                var spec = FakeQuantSpec.WithObserverQParams(ObserverSpec.FixedQParams(fixedQParams.Scale, fixedQParams.ZeroPoint, fixedQParams.DType));
                _activationFakeQuant[op.Output] = Register(spec.Create($"{ModelName}.{op.Name}"), op.Name, "activation_post_process");
                _fakeQuantized[op.Output] = true;
                return BoundObservedModel.PlainFloat(op);
            }

            default:
                return BoundObservedModel.PlainFloat(op);
        }
    }

    /// <summary>
    /// Whether <paramref name="op"/>'s fused ReLU runs inside its output's fake quantize (one pass each way instead of a
    /// ReLU pass and a fake-quantize pass: <see cref="FakeQuantize.ForwardAfterRelu"/>), and marks it so. Bit for bit the
    /// same forward and gradient; learnable fake quantizes keep the separate ReLU.
    /// </summary>
    private bool ReluAtPoint(BoundOp op)
    {
        bool fused = op.FusedRelu is not null && _fakeQuantized[op.Output] && _activationFakeQuant[op.Output] is FakeQuantize;
        _reluAtPoint[op.Output] |= fused;
        return fused;
    }

    private FakeQuantizeBase WeightFakeQuant(string layer, int axis, int channels)
    {
        FakeQuantSpec spec = QConfig.Weight;
        if (spec.Observer.Scheme.IsPerChannel() && spec.Observer.ChannelAxis != axis)
        {
            spec = spec with { Observer = spec.Observer with { ChannelAxis = axis } };
        }

        FakeQuantizeBase fakeQuant = Register(spec.Create($"{ModelName}.{layer}.weight", channels), layer, "weight_fake_quant");
        _weights.Add((layer, fakeQuant, axis));
        return fakeQuant;
    }

    private FakeQuantizeBase Register(FakeQuantizeBase fakeQuant, string layer, string role)
    {
        // Module names may not contain dots: "layer1.0.conv1" → "layer1_0_conv1_weight_fake_quant".
        register_module($"{layer.Replace('.', '_')}_{role}", fakeQuant);
        return fakeQuant;
    }

    private void ForEachFakeQuant(Action<FakeQuantizeBase> action)
    {
        foreach (FakeQuantizeBase fakeQuant in FakeQuantizes)
        {
            action(fakeQuant);
        }
    }

    /// <summary>The post-training form, used only for its plan (it is disposed once the QAT form is built).</summary>
    private sealed class PlanningForm : BoundObservedModel
    {
        public PlanningForm(nn.Module model, string modelName, CapturedForward forward, QConfigMapping mapping, bool autoFuse)
            : base(model, modelName, forward, mapping, autoFuse)
        {
        }
    }
}
