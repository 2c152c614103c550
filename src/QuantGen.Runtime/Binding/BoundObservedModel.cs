using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using QuantGen.Dynamic;
using QuantGen.Modules;
using QuantGen.Observers;
using QuantGen.Reports;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Binding;

/// <summary>
/// PyTorch's prepared model for a model bound at <c>Prepare()</c>: the bound graph in float with its fusions
/// applied and an observer at every quantization point. Run calibration batches through <see cref="forward(Tensor)"/>,
/// then convert. The generated <c>M.Observed</c> of a model captured this way derives from it.
/// </summary>
public abstract class BoundObservedModel : IObservedModel
{
    private readonly nn.Module _model;
    private readonly BoundGraph _graph;
    private readonly OpPlan[] _plans;
    private readonly Observer?[] _observers;
    private readonly List<IDisposable> _owned = new();

    /// <summary>The head count identified for each MultiheadAttention call (its elements are planned one by one).</summary>
    private readonly Dictionary<TupleModuleCall, int> _attentionHeads = new();
    private readonly string _captureHash;

    /// <summary>Calibration saw integer inputs (token indices): the converted model takes them as they are.</summary>
    private bool _integerInput;

    /// <summary>Binds and plans (generated code calls this from <c>Prepare()</c>).</summary>
    /// <param name="model">The float model, in eval mode.</param>
    /// <param name="modelName">Its class name.</param>
    /// <param name="forward">Its captured forward.</param>
    /// <param name="mapping">Which qconfig each op gets; a null qconfig keeps an op in float.</param>
    /// <param name="autoFuse">Apply FX's fusion patterns.</param>
    /// <param name="modelBackend">The <c>[Quantize]</c> attribute's backend: the model's integer arithmetic when the mapping has no global qconfig.</param>
    protected BoundObservedModel(nn.Module model, string modelName, CapturedForward forward, QConfigMapping mapping, bool autoFuse = true, QuantBackend modelBackend = QuantBackend.X86)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(mapping);
        ModelName = modelName;
        _model = model;
        QConfigMapping = mapping;
        // A mapping with no global qconfig (everything float but a few dynamic layers, say) keeps [Quantize]'s backend, as
        // ValidateBackend's message says: it once fell back to X86, so a Qnnpack model's dynamic layers silently ran X86's.
        QConfig = mapping.Global ?? QConfig.For(modelBackend);
        _graph = ModelBinder.Bind(model, modelName, forward, autoFuse);
        _captureHash = forward.Hash;

        IReadOnlyDictionary<string, nn.Module> modules = ModuleLookup.Index(model);
        var knownTypes = new HashSet<string>(modules.Values.Select(m => m.GetType().Name), StringComparer.Ordinal) { "add", "cat", "relu", "flatten", "reshape", "mul", "mul_scalar", "add_scalar", "mean" };
        var knownPaths = new HashSet<string>(modules.Keys.Where(k => k.Length > 0), StringComparer.Ordinal);
        knownPaths.UnionWith(_graph.Ops.Select(o => o.Name));
        mapping.Validate(modelName, knownPaths, knownTypes, allowDynamic: true);
        mapping.ValidateBackend(modelName, QConfig.Backend);

        // A member fused or folded into another op has no qconfig of its own: an entry naming it must be its op's.
        foreach (BoundOp op in _graph.Ops.Where(o => !o.IsFloat && o.Members.Count > 0))
        {
            QConfig? head = mapping.Resolve(op.Members[0].Path, op.TypeName);
            if (op.FusedBatchNorm is { } batchNorm)
            {
                mapping.ValidateFused(modelName, batchNorm.Path, op.Name, head, folded: true);
            }

            if (op.FusedRelu is { } relu)
            {
                mapping.ValidateFused(modelName, relu, op.Name, head);
            }
        }

        _plans = new OpPlan[_graph.Ops.Count];
        var int8Values = new bool[_graph.ValueCount];
        _observers = new Observer?[_graph.ValueCount];

        // Every observer is made here, so qparams the mapping fixes for a layer (SetModuleQParams, SetModuleRange,
        // SetQParamsFromStateDict) reach it whichever way the layer is observed.
        Observer Observe(ObserverSpec spec, string layer) => mapping.ActivationObserverSpec(modelName, layer, spec).Create($"{modelName}.{layer}");

        for (int i = 0; i < _plans.Length; i++)
        {
            BoundOp op = _graph.Ops[i];
            _plans[i] = Plan(op, int8Values);
            if (!_plans[i].Int8)
            {
                // A float op's output is observed too: an int8 op after it needs its qparams, and so do the layer
                // report and forward(QTensor) when the model ends in float.
                _observers[op.Output] ??= Observe(QConfig.Activation, op.Name);
            }
            else
            {
                int8Values[op.Output] = true;
                if (_plans[i].OwnObserver)
                {
                    _observers[op.Output] = Observe(_plans[i].QConfig!.Activation, op.Name);
                }

                foreach (int input in op.Inputs)
                {
                    if (!int8Values[input] && _observers[input] is null)
                    {
                        _observers[input] = Observe(QConfig.Activation, InputName(input));
                    }
                }
            }
        }

        // PyTorch fixes the output qparams of sigmoid-like ops (their range is known); a mapping that tries to set them
        // otherwise is a mistake to report, not a value to drop silently.
        foreach (OpPlan plan in _plans.Where(p => p.Int8 && p.Op.Kind == BoundKind.Elementwise))
        {
            if (ElementwiseTable.FixedOutputQParams(plan.Op.TypeName) is not { } fixedQParams)
            {
                continue;
            }

            FixedObserverValues? asked = mapping.FixedActivations.FirstOrDefault(e => e.Key == plan.Op.Name).Value ?? plan.QConfig?.Activation.Fixed;
            bool same = asked is { IsRange: false, Count: 1 } && asked.Scales[0] == fixedQParams.Scale && asked.ZeroPoints[0] == fixedQParams.ZeroPoint;
            if (asked is not null && !same)
            {
                throw new ArgumentException(
                    $"{modelName}.{plan.Op.Name}: a {plan.Op.TypeName}'s output qparams are fixed, as in PyTorch (scale {fixedQParams.Scale.ToString("R", System.Globalization.CultureInfo.InvariantCulture)} = 1/{MathF.Round(1f / fixedQParams.Scale)}, zero point {fixedQParams.ZeroPoint}, {fixedQParams.DType}: its output range is known), " +
                    $"but the QConfigMapping sets {asked}. Remove that entry (or fix the qparams of another layer).");
            }
        }

        // The model input is always observed, so the int8 model can take a QTensor input.
        _observers[0] ??= Observe(QConfig.Activation, "input");
        mapping.ValidateFixedQParams(
            modelName,
            _observers.Where(o => o is not null).Select(o => o!.Layer[(modelName.Length + 1)..])
                .Concat(_plans.Where(p => p.Int8 && p.Op.Kind == BoundKind.Elementwise && ElementwiseTable.FixedOutputQParams(p.Op.TypeName) is not null).Select(p => p.Op.Name))
                .ToArray(),
            _plans.Where(p => p.Int8 && p.Op.Kind is BoundKind.Conv2d or BoundKind.ConvTranspose2d or BoundKind.Linear).Select(p => p.Op.Name).ToArray(),
            knownPaths);
    }

    /// <summary>The model's class name.</summary>
    public string ModelName { get; }

    /// <summary>The global qconfig of the mapping (else the X86 preset): its backend is the arithmetic Convert uses.</summary>
    public QConfig QConfig { get; }

    /// <summary>The mapping each op's qconfig was resolved from.</summary>
    public QConfigMapping QConfigMapping { get; }

    /// <summary>The bound graph: every op in forward order with the modules it was bound to.</summary>
    public BoundGraph Graph => _graph;

    /// <summary>Every activation observer, in forward order (the model input first).</summary>
    public IReadOnlyList<Observer> Observers => _observers.Where(o => o is not null).Select(o => o!).ToArray();

    nn.Module IObservedModel.Model => _model;

    /// <summary>Each op's plan — int8 or float, whether its output has an observer of its own — for the QAT form, which follows the same rules.</summary>
    internal IReadOnlyList<(BoundOp Op, bool Int8, bool OwnObserver, string? FloatReason)> OpPlans =>
        _plans.Select(p => (p.Op, p.Int8, p.OwnObserver, p.FloatReason)).ToArray();

    /// <summary>For each value of the graph, the layer its observer is named after ("conv1", "input"), or null where nothing observes it.</summary>
    internal string?[] ObservedLayers => _observers.Select(o => o?.Layer[(ModelName.Length + 1)..]).ToArray();

    /// <summary>The ops that stay in float in the converted model, each with why.</summary>
    public IReadOnlyList<(string Layer, string Type, string Reason, string Source)> FloatOps =>
        _plans.Where(p => !p.Int8).Select(p => (p.Op.Name, p.Op.TypeName, p.FloatReason ?? "", p.Op.Source)).ToArray();

    /// <summary>What Prepare made of the model: ops in int8 and in float (with why), fusions, observers.</summary>
    /// <returns>A few lines per op kind, for people.</returns>
    public string Summary()
    {
        var text = new StringBuilder();
        int int8 = _plans.Count(p => p.Int8);
        int dynamic = _plans.Count(IsDynamicOrWeightOnly);
        text.Append($"{ModelName}: {_plans.Length} ops after fusion, {int8} in int8, {(dynamic > 0 ? $"{dynamic} dynamic or weight-only, " : "")}{_plans.Length - int8 - dynamic} in float; {Observers.Count} activation observers.\n");
        foreach (IGrouping<string, OpPlan> group in _plans.Where(p => p.Int8).GroupBy(p => Describe(p.Op)))
        {
            text.Append($"  int8  {group.Count(),4} x {group.Key}\n");
        }

        // PyTorch's quantize_dynamic modules (int8 weights; an LSTM's gates, the outputs stay float) have a line of their own.
        foreach (IGrouping<(string, string), OpPlan> group in _plans.Where(IsDynamicOrWeightOnly).GroupBy(p => (p.Op.TypeName, p.FloatReason ?? "")))
        {
            text.Append($"  dyn   {group.Count(),4} x {group.Key.Item1}: {group.Key.Item2} (first: {group.First().Op.Name}, {group.First().Op.Source})\n");
        }

        foreach (IGrouping<(string, string), OpPlan> group in _plans.Where(p => !p.Int8 && !IsDynamicOrWeightOnly(p)).GroupBy(p => (p.Op.TypeName, p.FloatReason ?? "")))
        {
            string first = group.First().Op.Name;
            text.Append($"  float {group.Count(),4} x {group.Key.Item1}: {group.Key.Item2} (first: {first}, {group.First().Op.Source})\n");
        }

        if (int8 == 0 && dynamic > 0)
        {
            text.Append("  No static int8 op: Convert() needs no calibration batch (as quantize_dynamic); calibrating adds the qparams forward(QTensor) and the layer reports use.\n");
        }

        return text.ToString().TrimEnd('\n');
    }

    private static bool IsDynamicOrWeightOnly(OpPlan plan) => plan.FloatReason is DynamicReason or WeightOnlyReason or Float16Reason;

    private static string Describe(BoundOp op) =>
        op.TypeName + (op.FusedBatchNorm is null ? "" : "+BatchNorm2d") + (op.FusedRelu is null ? "" : "+ReLU");

    /// <summary>Runs the fused float model, recording every quantization point.</summary>
    /// <param name="input">A calibration batch.</param>
    /// <returns>The float result, as the fused float model computes it.</returns>
    public Tensor forward(Tensor input) => forward(input, null);

    /// <summary>As <see cref="forward(Tensor)"/>, reporting each op's float output to <paramref name="tap"/>.</summary>
    /// <param name="input">A calibration batch.</param>
    /// <param name="tap">Receives each layer's float output (a tensor it returns replaces the output downstream); null for none.</param>
    /// <returns>The float result.</returns>
    public Tensor forward(Tensor input, IFloatTap? tap)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = torch.NewDisposeScope();
        var values = new Tensor?[_graph.ValueCount];
        if (input.is_floating_point())
        {
            _observers[0]?.Observe(input);
        }
        else
        {
            // Token indices for an Embedding: nothing to quantize, so nothing to observe.
            _integerInput = true;
        }

        values[0] = tap?.OnLayer("input", input) ?? input;
        foreach (OpPlan plan in _plans)
        {
            BoundOp op = plan.Op;
            var inputs = new Tensor[op.Inputs.Length];
            for (int k = 0; k < inputs.Length; k++)
            {
                inputs[k] = values[op.Inputs[k]]!;
            }

            Tensor output;
            try
            {
                output = plan.Float(inputs);
            }
            catch (Exception e) when (e is not QuantGenBindingException)
            {
                throw new QuantGenBindingException($"{ModelName}.{op.Name} ({op.Source}, '{op.Text}'): the float op failed on inputs of shape {string.Join(" and ", inputs.Select(t => "[" + string.Join(", ", t.shape) + "]"))}: {e.Message}", e);
            }

            if (_observers[op.Output] is { } observer && output.is_floating_point())
            {
                observer.Observe(output);
            }

            output = tap?.OnLayer(op.Name, output) ?? output;
            values[op.Output] = output;
        }

        return values[_graph.Result]!.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Runs calibration batches through <see cref="forward(Tensor)"/> under <c>torch.no_grad()</c> with the float model in
    /// eval mode, disposing each batch's intermediate tensors, and reports progress after every batch.
    /// </summary>
    /// <param name="batches">Float input batches; those made before the call are not disposed, those the sequence makes on the fly are.</param>
    /// <param name="progress">Told the batches done, the total when the sequence knows it, and the time so far; null for none.</param>
    /// <returns>The final progress: batches run, the total, the time taken.</returns>
    /// <exception cref="ArgumentException">There is no batch, or a batch is null.</exception>
    public QuantGen.Calibration.CalibrationProgress Calibrate(IEnumerable<Tensor> batches, IProgress<QuantGen.Calibration.CalibrationProgress>? progress = null) =>
        QuantGen.Calibration.ObservedCalibration.Run(this, batches, progress);

    /// <summary>PyTorch's <c>convert()</c> on the bound graph (the generated <c>Convert()</c> wraps it).</summary>
    /// <returns>The converted steps the int8 model runs.</returns>
    /// <exception cref="InvalidOperationException">An observer has seen no calibration data.</exception>
    protected BoundQuantizedPlan ConvertBound()
    {
        // The values whose qparams an int8 op's arithmetic reads: its inputs and its own observed output. Only these
        // need calibration data; a model quantized only dynamically or weight-only (no static int8 op reads a
        // value) converts without any, as PyTorch's quantize_dynamic does, and its unobserved values get quantizers
        // that refuse to quantize (forward(QTensor), the layer tap) instead of made-up qparams.
        var readByInt8 = new bool[_graph.ValueCount];
        foreach (OpPlan plan in _plans.Where(p => p.Int8))
        {
            foreach (int input in plan.Op.Inputs)
            {
                readByInt8[input] = true;
            }

            readByInt8[plan.Op.Output] |= plan.OwnObserver;
        }

        var qparams = new QParams?[_graph.ValueCount];
        var quantizers = new QuantizeInput?[_graph.ValueCount];
        for (int v = 0; v < _observers.Length; v++)
        {
            if (_observers[v] is { } observer)
            {
                if (v == 0 && _integerInput && !observer.HasObserved)
                {
                    // The model takes token indices, never a quantized input: the input quantizer is a placeholder
                    // that the converted model refuses to use (it takes the indices as they are).
                    qparams[0] = QParams.PerTensor(1f, 0, QuantDType.QUInt8);
                    continue;
                }

                if (!observer.HasObserved && !observer.IsFixed)
                {
                    if (readByInt8[v])
                    {
                        throw new InvalidOperationException($"{ModelName}: Convert() before calibration: the observer at {observer.Layer} has seen no data, and an int8 op reads that value. Run calibration batches through forward first (Calibrate(batches)); only a model quantized just dynamically or weight-only converts without them.");
                    }

                    continue;
                }

                qparams[v] = observer.CalculateQParams();
            }
        }

        QuantizeInput QuantizerOf(int value, string layer) =>
            qparams[value] is { } observed ? new QuantizeInput(ModelName, layer, observed) : QuantizeInput.NotObserved(ModelName, layer);

        var steps = new BoundStep[_plans.Length];
        var int8Values = new bool[_graph.ValueCount];
        var dynamicCalls = new Dictionary<TupleModuleCall, (TupleModuleCall Call, object Layer)>();
        for (int i = 0; i < _plans.Length; i++)
        {
            OpPlan plan = _plans[i];
            BoundOp op = plan.Op;
            if (!plan.Int8)
            {
                QuantizeInput quantizer = quantizers[op.Output] ??= QuantizerOf(op.Output, op.Name);
                if (plan.QConfig is { IsWeightOnly: true } && op.Module is Embedding embedding)
                {
                    QuantizedEmbedding table = QuantizedEmbedding.FromEmbedding(ModelName, op.Members[0].Path, embedding, plan.QConfig.WeightOnlyBitWidth);
                    steps[i] = new BoundStep(op, null, a => table.Forward(a[0]), WeightOnlyReason)
                    {
                        FloatOp = FloatOpDescriber.OfWeightOnlyEmbedding(ModelName, op.Name, table, quantizer),
                    };
                    continue;
                }

                if (plan.QConfig is { IsFloat16: true } && op.TupleCall is { } float16Call)
                {
                    // As the int8 dynamic LSTM/GRU below: one float16-weight layer per call, each element stored on its own.
                    if (!dynamicCalls.TryGetValue(float16Call, out (TupleModuleCall Call, object Layer) float16))
                    {
                        float16 = Float16Recurrent(op, float16Call);
                        dynamicCalls[float16Call] = float16;
                    }

                    int element = op.Ints[0];
                    TupleModuleCall float16Run = float16.Call;
                    FloatOp stored = FloatOpDescriber.OfFloat16Recurrent(ModelName, op.Name, float16.Layer, element, op.Inputs.Length, quantizer);
                    steps[i] = new BoundStep(op, null, a => float16Run.Run(a)[element], Float16Reason) { FloatOp = stored };
                    continue;
                }

                if (plan.QConfig is { IsFloat16: true } && plan.Fused is FusedLinear float16Linear)
                {
                    // Described as data: the converted model runs the same float op (and layer) a loaded file does.
                    Float16Linear float16Layer = Float16Linear.FromValues(ModelName, op.Name, float16Linear.InFeatures, float16Linear.OutFeatures, float16Linear.Weight, float16Linear.Bias);
                    FloatOp stored = FloatOpDescriber.OfFloat16Linear(ModelName, op.Name, float16Layer, float16Linear.Relu, quantizer);
                    steps[i] = new BoundStep(op, null, stored.Forward, Float16Reason) { FloatOp = stored };
                    continue;
                }

                if (plan.QConfig is { IsDynamic: true } attentionQConfig && op.TupleCall is { TypeName: "MultiheadAttention", Slots: { } slots } attentionCall && plan.Fused is int heads)
                {
                    // Every element read from one call shares one layer, run once per input; a file stores each element
                    // as a float op of its own (which runs the layer itself after Load).
                    if (!dynamicCalls.TryGetValue(attentionCall, out (TupleModuleCall Call, object Layer) attention))
                    {
                        bool perChannel = attentionQConfig.Weight.Scheme is QScheme.PerChannelSymmetric or QScheme.PerChannelAffine;
                        DynamicQuantizedMultiheadAttention attentionLayer = DynamicQuantizedMultiheadAttention.FromIdentified(ModelName, op.Members[0].Path, (MultiheadAttention)attentionCall.Module, heads, attentionQConfig.Backend, perChannel);
                        attention = (attentionCall.With(a =>
                        {
                            (Tensor output, Tensor? weights) = attentionLayer.Forward(a[slots[0]], a[slots[1]], a[slots[2]], ArgumentsCall.Argument(a, slots[3]), slots[4] == ArgumentsCall.ConstantTrue, ArgumentsCall.Argument(a, slots[5]));
                            return [output, weights!];
                        }), attentionLayer);
                        dynamicCalls[attentionCall] = attention;
                    }

                    int element = op.Ints[0];
                    TupleModuleCall attentionRun = attention.Call;
                    FloatOp stored = FloatOpDescriber.OfDynamicMultiheadAttention(ModelName, op.Name, (DynamicQuantizedMultiheadAttention)attention.Layer, element, slots, quantizer);
                    steps[i] = new BoundStep(op, null, a => attentionRun.Run(a)[element], DynamicReason) { FloatOp = stored };
                    continue;
                }

                if (plan.QConfig is { IsDynamic: true } recurrentQConfig && op.TupleCall is { } tupleCall)
                {
                    // Every element read from one LSTM/GRU call shares one dynamic layer, run once per input; a file
                    // stores each element as a float op of its own.
                    if (!dynamicCalls.TryGetValue(tupleCall, out (TupleModuleCall Call, object Layer) dynamic))
                    {
                        dynamic = DynamicRecurrent(op, tupleCall, recurrentQConfig);
                        dynamicCalls[tupleCall] = dynamic;
                    }

                    int item = op.Ints[0];
                    TupleModuleCall dynamicCall = dynamic.Call;
                    FloatOp stored = FloatOpDescriber.OfDynamicRecurrent(ModelName, op.Name, dynamic.Layer, item, op.Inputs.Length, quantizer);
                    steps[i] = new BoundStep(op, null, a => dynamicCall.Run(a)[item], DynamicReason) { FloatOp = stored };
                    continue;
                }

                if (plan.QConfig is { IsDynamic: true } encoderQConfig && op.Module is TransformerEncoderLayer or TransformerEncoder
                    && plan.Fused is ValueTuple<int, EncoderActivation> identity)
                {
                    bool perChannel = encoderQConfig.Weight.Scheme is QScheme.PerChannelSymmetric or QScheme.PerChannelAffine;
                    string path = op.Members[0].Path;
                    FloatOp stored = op.Module is TransformerEncoder floatStack
                        ? FloatOpDescriber.OfDynamicEncoder(ModelName, op.Name, DynamicQuantizedTransformerEncoder.FromIdentified(ModelName, path, floatStack, identity.Item1, identity.Item2, encoderQConfig.Backend, perChannel), op.Ints, quantizer)
                        : FloatOpDescriber.OfDynamicEncoderLayer(ModelName, op.Name, DynamicQuantizedTransformerEncoderLayer.FromIdentified(ModelName, path, (TransformerEncoderLayer)op.Module, identity.Item1, identity.Item2, encoderQConfig.Backend, perChannel), op.Ints, quantizer);
                    steps[i] = new BoundStep(op, null, stored.Forward, DynamicReason) { FloatOp = stored };
                    continue;
                }

                if (plan.QConfig is { IsDynamic: true } dynamicQConfig && plan.Fused is FusedLinear floatLinear)
                {
                    // Described as data like any float op, so a file (and ONNX export) stores it and Load runs the same code.
                    DynamicQuantizedLinear dynamic = floatLinear.ConvertDynamic(dynamicQConfig.Weight, dynamicQConfig.Backend);
                    FloatOp stored = FloatOpDescriber.OfFused(ModelName, op.Name, dynamic, quantizer);
                    steps[i] = new BoundStep(op, null, stored.Forward, DynamicReason) { FloatOp = stored };
                    continue;
                }

                // Described as data, the op runs the same way here and after Save/Load; an op that cannot be
                // described keeps its module (and the file refuses it, saying why).
                FloatOp? saved = FloatOpDescriber.Describe(ModelName, op, plan.Fused, quantizer, out string? notSaved);
                steps[i] = new BoundStep(op, null, saved is null ? plan.Float : saved.Forward, plan.FloatReason ?? "") { FloatOp = saved, NotSavedBecause = notSaved };
                continue;
            }

            foreach (int input in op.Inputs)
            {
                if (!int8Values[input])
                {
                    quantizers[input] ??= new QuantizeInput(ModelName, InputName(input), qparams[input]!);
                }
            }

            QParams In(int k) => qparams[op.Inputs[k]]!;
            QParams Own() => qparams[op.Output]!;
            string layer = op.Name;
            IQuantizedLayer built;
            switch (op.Kind)
            {
                case BoundKind.Conv2d:
                {
                    QuantizedConv2d conv = ((FusedConv2d)plan.Fused!).Convert(In(0), Own(), plan.QConfig!.Weight, QConfig.Backend);
                    built = conv;
                    break;
                }

                case BoundKind.ConvTranspose2d:
                    built = ((FusedConvTranspose2d)plan.Fused!).Convert(In(0), Own(), plan.QConfig!.Weight, QConfig.Backend);
                    break;

                case BoundKind.Linear:
                {
                    QuantizedLinear linear = ((FusedLinear)plan.Fused!).Convert(In(0), Own(), plan.QConfig!.Weight, QConfig.Backend);
                    built = linear;
                    break;
                }

                case BoundKind.BatchNorm2d:
                {
                    QuantizedBatchNorm2d bn = ((FusedBatchNorm2d)plan.Fused!).Convert(In(0), Own());
                    built = bn;
                    break;
                }

                case BoundKind.Add:
                {
                    var add = new QuantizedAdd(ModelName, layer, Own(), op.FusedRelu is not null);
                    built = add;
                    break;
                }

                case BoundKind.Cat:
                {
                    var cat = new QuantizedCat(ModelName, layer, op.Ints[0], Own());
                    built = cat;
                    break;
                }

                case BoundKind.Mul:
                    built = new QuantizedMul(ModelName, layer, Own());
                    break;

                case BoundKind.MulConstant or BoundKind.AddConstant:
                {
                    // aten computes the result's qparams from the input's and the constant; no observer is involved.
                    var constantOp = new QuantizedConstantOp(ModelName, layer, op.Kind == BoundKind.MulConstant ? ConstantOperator.Mul : ConstantOperator.Add, op.Floats[0]);
                    qparams[op.Output] = constantOp.OutputQParams(In(0));
                    built = constantOp;
                    break;
                }

                case BoundKind.Mean:
                    built = new QuantizedMean(ModelName, layer, op.Ints[1..], op.Ints[0] != 0);
                    break;

                case BoundKind.ReLU:
                {
                    var relu = new QuantizedReLU(ModelName, layer);
                    built = relu;
                    break;
                }

                case BoundKind.Hardtanh:
                {
                    var clamp = new QuantizedHardtanh(ModelName, layer, op.Floats[0], op.Floats[1]);
                    built = clamp;
                    break;
                }

                case BoundKind.Elementwise:
                {
                    QParams output = ElementwiseTable.FixedOutputQParams(op.TypeName) ?? Own();
                    qparams[op.Output] = output;
                    var module = (nn.Module<Tensor, Tensor>)op.Module!;
                    built = new QuantizedElementwise(ModelName, layer, module.GetType().Name, In(0), output, ElementwiseTable.Create($"{ModelName}.{layer}", module.forward, In(0), output));
                    break;
                }

                case BoundKind.MaxPool2d:
                {
                    var pool = new QuantizedMaxPool2d(ModelName, layer, MaxPoolOptions((MaxPool2d)op.Module!));
                    built = pool;
                    break;
                }

                case BoundKind.AvgPool2d:
                {
                    var pool = new QuantizedAvgPool2d(ModelName, layer, AvgPoolOptions((AvgPool2d)op.Module!));
                    built = pool;
                    break;
                }

                case BoundKind.AdaptiveAvgPool2d:
                {
                    (int height, int width) = op.Module is AdaptiveAvgPool2d module ? (OutputSize(module, 0), OutputSize(module, 1)) : (op.Ints[0], op.Ints[1]);
                    var pool = new QuantizedAdaptiveAvgPool2d(ModelName, layer, height, width);
                    built = pool;
                    break;
                }

                case BoundKind.Flatten:
                {
                    var flatten = new QuantizedFlatten(ModelName, layer, op.Ints[0], op.Ints[1]);
                    built = flatten;
                    break;
                }

                case BoundKind.Reshape:
                {
                    var reshape = new QuantizedReshape(ModelName, layer, op.Ints);
                    built = reshape;
                    break;
                }

                default:
                    throw new InvalidOperationException($"{ModelName}.{layer}: no int8 op for {op.Kind}.");
            }

            int8Values[op.Output] = true;
            if (!plan.OwnObserver)
            {
                // ReLU, pools, flatten, reshape: the output keeps the input's qparams (PyTorch's shared observer);
                // a fixed-qparams op has set its own above.
                qparams[op.Output] ??= In(0);
            }

            steps[i] = new BoundStep(op, built, BoundQuantizedPlan.Runner(built), null);
        }

        return new BoundQuantizedPlan(ModelName, _graph, steps, quantizers, QuantizerOf(0, "input"), _captureHash)
        {
            IntegerInput = _integerInput && !_observers[0]!.HasObserved,
        };
    }

    /// <summary>Releases the fused float modules that no float op of a converted model still uses.</summary>
    public void Dispose()
    {
        foreach (IDisposable owned in _owned)
        {
            owned.Dispose();
        }

        _owned.Clear();
        GC.SuppressFinalize(this);
    }

    /// <summary>The prepared model, one op per line with its observer.</summary>
    /// <returns>The ops in forward order.</returns>
    public override string ToString()
    {
        var text = new StringBuilder($"{ModelName}(\n");
        foreach (OpPlan plan in _plans)
        {
            text.Append($"  ({plan.Op.Name}): {Describe(plan.Op)}{(plan.Int8 ? "" : " [float: " + plan.FloatReason + "]")}");
            if (_observers[plan.Op.Output] is { } observer)
            {
                text.Append($"\n    (activation_post_process): {observer.Spec}");
            }

            text.Append('\n');
        }

        return text.Append(')').ToString();
    }

    private string InputName(int value)
    {
        if (value == 0)
        {
            return "input";
        }

        BoundOp? writer = _graph.Ops.FirstOrDefault(o => o.Output == value);
        return writer is null ? $"value{value}" : writer.Name;
    }

    /// <summary>Decides int8 or float for one op and builds its float form.</summary>
    private OpPlan Plan(BoundOp op, bool[] int8Values)
    {
        bool anyInt8Input = op.Inputs.Any(v => int8Values[v]);
        QConfig? qconfig = op.IsFloat ? null : QConfigMapping.Resolve(op.Members[0].Path, op.TypeName);
        Func<Tensor[], Tensor> plain = PlainFloat(op);
        if (op.TupleCall is { TypeName: "MultiheadAttention" } attentionCall && op.FloatReason != "[NoQuantize]"
            && QConfigMapping.Resolve(op.Members[0].Path, op.TypeName) is { IsDynamic: true } attentionQConfig)
        {
            // Dynamic int8 projections after Convert; float while calibrating. TorchSharp hides the head count, so it is
            // identified now, once per call (a configuration QuantGen does not quantize stays float, saying why).
            attentionQConfig.Validate();
            if (attentionQConfig.IsFloat16)
            {
                return new OpPlan(op, false, false, null, null, plain, "QConfig.Float16Dynamic has no MultiheadAttention form (QConfig.Dynamic() gives it dynamic int8 projections)");
            }

            try
            {
                if (!_attentionHeads.TryGetValue(attentionCall, out int heads))
                {
                    heads = DynamicQuantizedMultiheadAttention.Identify($"{ModelName}.{op.Members[0].Path}", (MultiheadAttention)attentionCall.Module);
                    _attentionHeads[attentionCall] = heads;
                }

                return new OpPlan(op, false, false, attentionQConfig, heads, plain, DynamicReason);
            }
            catch (NotSupportedException e)
            {
                return new OpPlan(op, false, false, null, null, plain, e.Message);
            }
        }

        if (op.TupleCall is { TypeName: "LSTM" or "GRU" } && op.FloatReason != "[NoQuantize]"
            && QConfigMapping.Resolve(op.Members[0].Path, op.TypeName) is { IsDynamic: true } recurrent)
        {
            // quantize_dynamic's LSTM/GRU: float while calibrating (no observer of its own), dynamic int8 (or float16
            // weights) after Convert.
            recurrent.Validate();
            return new OpPlan(op, false, false, recurrent, null, plain, recurrent.IsFloat16 ? Float16Reason : DynamicReason);
        }

        if (op.Kind == BoundKind.FloatModule && op.Module is Embedding && op.FloatReason != "[NoQuantize]"
            && QConfigMapping.Resolve(op.Members[0].Path, op.TypeName) is { IsWeightOnly: true } weightOnly)
        {
            // float_qparams_weight_only: float while calibrating, 8-bit rows after Convert.
            return new OpPlan(op, false, false, weightOnly, null, plain, WeightOnlyReason);
        }

        if (op.Kind == BoundKind.FloatModule && op.Module is TransformerEncoderLayer or TransformerEncoder && op.FloatReason != "[NoQuantize]"
            && QConfigMapping.Resolve(op.Members[0].Path, op.TypeName) is { IsDynamic: true } encoderQConfig)
        {
            // Dynamic int8 projections after Convert; float while calibrating. TorchSharp hides the head count and the
            // activation, so they are identified now (a layer that cannot be identified stays float, saying why).
            encoderQConfig.Validate();
            try
            {
                string name = $"{ModelName}.{op.Name}";
                (int Heads, EncoderActivation Activation) identity = op.Module is TransformerEncoder stack
                    ? DynamicQuantizedTransformerEncoder.Identify(name, stack) is var (heads, activation, _) ? (heads, activation) : default
                    : DynamicQuantizedTransformerEncoderLayer.Identify(name, (TransformerEncoderLayer)op.Module);
                return new OpPlan(op, false, false, encoderQConfig, identity, plain, DynamicReason);
            }
            catch (NotSupportedException e)
            {
                return new OpPlan(op, false, false, null, null, plain, e.Message);
            }
        }

        if (op.IsFloat)
        {
            return new OpPlan(op, false, false, null, null, plain, op.FloatReason);
        }

        if (qconfig is null)
        {
            // Kept in float by the mapping: the fused float op (BatchNorm folded, ReLU fused), as PyTorch keeps a
            // fused module whose qconfig is None; the same op a converted model runs and a file stores.
            if (FusedFloat(op) is { } fusedFloat)
            {
                _owned.Add((IDisposable)fusedFloat.Module);
                return new OpPlan(op, false, false, null, fusedFloat.Module, fusedFloat.Forward, "its qconfig is None");
            }

            return new OpPlan(op, false, false, null, null, plain, "its qconfig is None");
        }

        qconfig.Validate();
        if (qconfig.IsWeightOnly)
        {
            return new OpPlan(op, false, false, null, null, plain, "its qconfig is weight-only, which quantizes Embedding layers only");
        }

        if (qconfig.IsDynamic)
        {
            return DynamicPlan(op, qconfig, plain);
        }

        if (op.Kind is BoundKind.Conv2d or BoundKind.ConvTranspose2d or BoundKind.Linear)
        {
            // Weight qparams the mapping fixes for this layer replace its weight observer (checked against the layer below).
            qconfig = qconfig with { Weight = QConfigMapping.WeightObserverSpec(ModelName, op.Name, qconfig.Weight) };
        }

        switch (op.Kind)
        {
            case BoundKind.Conv2d:
                try
                {
                    FusedConv2d fused = FusedConv2d.Create(ModelName, op.Name, (Conv2d)op.Module!, (BatchNorm2d?)op.FusedBatchNorm?.Module, op.FusedRelu is not null);
                    fused.ValidateWeightSpec(qconfig.Weight);
                    _owned.Add(fused);
                    return new OpPlan(op, true, true, qconfig, fused, a => fused.forward(a[0]), null);
                }
                catch (NotSupportedException e)
                {
                    return new OpPlan(op, false, false, null, null, plain, e.Message);
                }

            case BoundKind.ConvTranspose2d:
                try
                {
                    FusedConvTranspose2d fused = FusedConvTranspose2d.Create(ModelName, op.Name, (ConvTranspose2d)op.Module!, (BatchNorm2d?)op.FusedBatchNorm?.Module, op.FusedRelu is not null);
                    fused.ValidateWeightSpec(qconfig.Weight);
                    _owned.Add(fused);
                    return new OpPlan(op, true, true, qconfig, fused, a => fused.forward(a[0]), null);
                }
                catch (NotSupportedException e)
                {
                    return new OpPlan(op, false, false, null, null, plain, e.Message);
                }

            case BoundKind.Linear:
                try
                {
                    FusedLinear fused = FusedLinear.Create(ModelName, op.Name, (Linear)op.Module!, op.FusedRelu is not null);
                    fused.ValidateWeightSpec(qconfig.Weight);
                    _owned.Add(fused);
                    return new OpPlan(op, true, true, qconfig, fused, a => fused.forward(a[0]), null);
                }
                catch (NotSupportedException e)
                {
                    return new OpPlan(op, false, false, null, null, plain, e.Message);
                }

            case BoundKind.BatchNorm2d:
                try
                {
                    FusedBatchNorm2d fused = FusedBatchNorm2d.Create(ModelName, op.Name, (BatchNorm2d)op.Module!, op.FusedRelu is not null);
                    _owned.Add(fused);
                    return new OpPlan(op, true, true, qconfig, fused, a => fused.forward(a[0]), null);
                }
                catch (NotSupportedException e)
                {
                    return new OpPlan(op, false, false, null, null, plain, e.Message);
                }

            case BoundKind.Elementwise:
                // Fixed-qparams ops (sigmoid, hardsigmoid, tanh) take PyTorch's fixed output qparams; others observe.
                return anyInt8Input
                    ? new OpPlan(op, true, ElementwiseTable.FixedOutputQParams(op.TypeName) is null, qconfig, null, plain, null)
                    : new OpPlan(op, false, false, null, null, plain, "its input is float");

            case BoundKind.Add or BoundKind.Cat or BoundKind.Mul:
                return anyInt8Input
                    ? new OpPlan(op, true, true, qconfig, null, plain, null)
                    : new OpPlan(op, false, false, null, null, plain, "its inputs are float");

            default:
                // ReLU, pools, flatten, reshape: int8 exactly when the input is (they share its qparams).
                return anyInt8Input
                    ? new OpPlan(op, true, false, qconfig, null, plain, null)
                    : new OpPlan(op, false, false, null, null, plain, "its input is float");
        }
    }

    /// <summary>
    /// An op whose qconfig is dynamic: a Linear (with its fused ReLU) runs in float during calibration — its input
    /// needs no observer, as PyTorch's dynamic modules have none — and becomes a <see cref="DynamicQuantizedLinear"/>
    /// (or, under <see cref="QConfig.Float16Dynamic"/>, a <see cref="Float16Linear"/>) at Convert; any other op stays in
    /// float, as <c>quantize_dynamic</c> leaves it.
    /// </summary>
    private OpPlan DynamicPlan(BoundOp op, QConfig qconfig, Func<Tensor[], Tensor> plain)
    {
        if (op.Kind is not BoundKind.Linear)
        {
            return new OpPlan(op, false, false, null, null, plain, qconfig.IsFloat16
                ? "its qconfig is float16 dynamic, which converts Linear, LSTM and GRU layers only"
                : "its qconfig is dynamic, which quantizes Linear layers only");
        }

        try
        {
            if (qconfig.IsFloat16)
            {
                // float16_dynamic_qconfig: float while calibrating, float16 weights after Convert (no weight observer).
                FusedLinear float16 = FusedLinear.Create(ModelName, op.Name, (Linear)op.Module!, op.FusedRelu is not null);
                _owned.Add(float16);
                return new OpPlan(op, false, false, qconfig, float16, a => float16.forward(a[0]), Float16Reason);
            }

            qconfig = qconfig with { Weight = QConfigMapping.WeightObserverSpec(ModelName, op.Name, qconfig.Weight) };
            FusedLinear fused = FusedLinear.Create(ModelName, op.Name, (Linear)op.Module!, op.FusedRelu is not null);
            fused.ValidateWeightSpec(qconfig.Weight);
            _owned.Add(fused);
            return new OpPlan(op, false, false, qconfig, fused, a => fused.forward(a[0]), DynamicReason);
        }
        catch (NotSupportedException e)
        {
            return new OpPlan(op, false, false, null, null, plain, e.Message);
        }
    }

    /// <summary>PyTorch's dynamic LSTM/GRU for a bound call: int8 weights (per tensor, or per channel as the qconfig's weight observer says), float gates.</summary>
    private (TupleModuleCall Call, object Layer) DynamicRecurrent(BoundOp op, TupleModuleCall call, QConfig qconfig)
    {
        bool perChannel = qconfig.Weight.Scheme is QScheme.PerChannelSymmetric or QScheme.PerChannelAffine;
        string layer = op.Members[0].Path;
        switch (call.Module)
        {
            case LSTM lstm:
            {
                DynamicQuantizedLSTM dynamic = DynamicQuantizedLSTM.FromLSTM(ModelName, layer, lstm, qconfig.Backend, perChannel);
                return (call.With(a =>
                {
                    (Tensor output, Tensor h, Tensor c) = dynamic.Forward(a[0], a.Length == 3 ? (a[1], a[2]) : null);
                    return [output, h, c];
                }), dynamic);
            }

            case GRU gru:
            {
                DynamicQuantizedGRU dynamic = DynamicQuantizedGRU.FromGRU(ModelName, layer, gru, qconfig.Backend, perChannel);
                return (call.With(a =>
                {
                    (Tensor output, Tensor h) = dynamic.Forward(a[0], a.Length == 2 ? a[1] : null);
                    return [output, h];
                }), dynamic);
            }

            default:
                throw new InvalidOperationException($"{ModelName}.{layer}: a {call.TypeName} has no dynamic int8 form.");
        }
    }

    /// <summary>PyTorch's float16 dynamic LSTM/GRU for a bound call: float16 weights, float32 arithmetic.</summary>
    private (TupleModuleCall Call, object Layer) Float16Recurrent(BoundOp op, TupleModuleCall call)
    {
        string layer = op.Members[0].Path;
        switch (call.Module)
        {
            case LSTM lstm:
            {
                Float16LSTM float16 = Float16LSTM.FromLSTM(ModelName, layer, lstm);
                return (call.With(a =>
                {
                    (Tensor output, Tensor h, Tensor c) = float16.Forward(a[0], a.Length == 3 ? (a[1], a[2]) : null);
                    return [output, h, c];
                }), float16);
            }

            case GRU gru:
            {
                Float16GRU float16 = Float16GRU.FromGRU(ModelName, layer, gru);
                return (call.With(a =>
                {
                    (Tensor output, Tensor h) = float16.Forward(a[0], a.Length == 2 ? a[1] : null);
                    return [output, h];
                }), float16);
            }

            default:
                throw new InvalidOperationException($"{ModelName}.{layer}: a {call.TypeName} has no float16-weight form.");
        }
    }

    /// <summary>A conv, transposed conv, linear or batch norm as its fused float module, or null when it cannot be fused.</summary>
    private (object Module, Func<Tensor[], Tensor> Forward)? FusedFloat(BoundOp op)
    {
        bool relu = op.FusedRelu is not null;
        try
        {
            switch (op.Kind)
            {
                case BoundKind.Conv2d:
                {
                    FusedConv2d fused = FusedConv2d.Create(ModelName, op.Name, (Conv2d)op.Module!, (BatchNorm2d?)op.FusedBatchNorm?.Module, relu);
                    return (fused, a => fused.forward(a[0]));
                }

                case BoundKind.ConvTranspose2d:
                {
                    FusedConvTranspose2d fused = FusedConvTranspose2d.Create(ModelName, op.Name, (ConvTranspose2d)op.Module!, (BatchNorm2d?)op.FusedBatchNorm?.Module, relu);
                    return (fused, a => fused.forward(a[0]));
                }

                case BoundKind.Linear:
                {
                    FusedLinear fused = FusedLinear.Create(ModelName, op.Name, (Linear)op.Module!, relu);
                    return (fused, a => fused.forward(a[0]));
                }

                case BoundKind.BatchNorm2d:
                {
                    FusedBatchNorm2d fused = FusedBatchNorm2d.Create(ModelName, op.Name, (BatchNorm2d)op.Module!, relu);
                    return (fused, a => fused.forward(a[0]));
                }

                default:
                    return null;
            }
        }
        catch (NotSupportedException)
        {
            // The plain module then runs as the user wrote it (a padding mode the fused conv does not take, ...).
            return null;
        }
    }

    /// <summary>The op in plain float (TorchSharp), fusions included: what runs when the op stays float.</summary>
    internal static Func<Tensor[], Tensor> PlainFloat(BoundOp op)
    {
        Func<Tensor, Tensor> Relu(Func<Tensor, Tensor> f) => op.FusedRelu is null ? f : x => nn.functional.relu(f(x));
        switch (op.Kind)
        {
            case BoundKind.Conv2d or BoundKind.ConvTranspose2d:
            {
                var conv = (nn.Module<Tensor, Tensor>)op.Module!;
                var bn = (nn.Module<Tensor, Tensor>?)op.FusedBatchNorm?.Module;
                Func<Tensor, Tensor> f = Relu(bn is null ? conv.forward : x => bn.forward(conv.forward(x)));
                return a => f(a[0]);
            }

            case BoundKind.Add:
                return op.FusedRelu is null ? a => a[0] + a[1] : a => nn.functional.relu(a[0] + a[1]);
            case BoundKind.Cat:
            {
                long dim = op.Ints[0];
                return a => torch.cat(a, dim);
            }

            case BoundKind.ReLU:
                return a => nn.functional.relu(a[0]);
            case BoundKind.Mul:
                return a => a[0] * a[1];
            case BoundKind.MulConstant:
            {
                double constant = op.Floats[0];
                return a => a[0] * constant;
            }

            case BoundKind.AddConstant:
            {
                double constant = op.Floats[0];
                return a => a[0] + constant;
            }

            case BoundKind.Mean:
            {
                long[] dims = op.Ints[1..].Select(d => (long)d).ToArray();
                bool keepDim = op.Ints[0] != 0;
                return a => a[0].mean(dims, keepDim);
            }

            case BoundKind.Hardtanh:
            {
                // clamp, not hardtanh: TorchSharp 0.107's functional.hardtanh and Hardtanh module return their input
                // unchanged (ReLU6 is right). PyTorch's hardtanh is this clamp, and so is the int8 op.
                double min = op.Floats[0], max = op.Floats[1];
                return a => a[0].clamp(min, max);
            }

            case BoundKind.AdaptiveAvgPool2d when op.Module is null:
            {
                long[] size = { op.Ints[0], op.Ints[1] };
                return a => nn.functional.adaptive_avg_pool2d(a[0], size);
            }

            case BoundKind.Flatten:
            {
                long start = op.Ints[0], end = op.Ints[1];
                return a => a[0].flatten(start, end);
            }

            case BoundKind.Reshape:
            {
                long[] shape = op.Ints.Select(i => (long)i).ToArray();
                return a => a[0].reshape(shape);
            }

            case BoundKind.FloatFunction:
            case BoundKind.FloatModule when op.Function is not null:
                return op.Function!;
            default:
            {
                var module = (nn.Module<Tensor, Tensor>)op.Module!;
                Func<Tensor, Tensor> f = Relu(module.forward);
                return a => f(a[0]);
            }
        }
    }

    private static int At(long[]? values, int axis, int fallback) =>
        values is null || values.Length == 0 ? fallback : checked((int)values[values.Length == 1 ? 0 : axis]);

    internal static Pool2dOptions MaxPoolOptions(MaxPool2d pool) => new(
        At(pool.kernel_size, 0, 1), At(pool.kernel_size, 1, 1),
        At(pool.stride, 0, At(pool.kernel_size, 0, 1)), At(pool.stride, 1, At(pool.kernel_size, 1, 1)),
        At(pool.padding, 0, 0), At(pool.padding, 1, 0),
        At(pool.dilation, 0, 1), At(pool.dilation, 1, 1),
        CeilMode: pool.ceil_mode);

    internal static Pool2dOptions AvgPoolOptions(AvgPool2d pool) => new(
        At(pool.kernel_size, 0, 1), At(pool.kernel_size, 1, 1),
        At(pool.stride, 0, At(pool.kernel_size, 0, 1)), At(pool.stride, 1, At(pool.kernel_size, 1, 1)),
        At(pool.padding, 0, 0), At(pool.padding, 1, 0),
        CeilMode: pool.ceil_mode, CountIncludePad: pool.count_include_pad);

    internal static int OutputSize(AdaptiveAvgPool2d pool, int axis) =>
        checked((int)pool.output_size[pool.output_size.Length == 1 ? 0 : axis]);

    internal const string DynamicReason = "dynamic quantization: int8 weights, its input quantized on every call";

    internal const string WeightOnlyReason = "weight-only quantization: 8-bit or 4-bit rows (as its qconfig says), each with a float scale and zero point";

    internal const string Float16Reason = "float16 weights: stored as float16, float32 arithmetic, activations not quantized (float16_dynamic_qconfig)";

    /// <summary>One op's plan: int8 or float, its qconfig, its fused float module and float form.</summary>
    private sealed record OpPlan(BoundOp Op, bool Int8, bool OwnObserver, QConfig? QConfig, object? Fused, Func<Tensor[], Tensor> Float, string? FloatReason);
}

/// <summary>A model's forward could not be bound or run in float at Prepare; the message names model, layer and source line.</summary>
public sealed class QuantGenBindingException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public QuantGenBindingException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
