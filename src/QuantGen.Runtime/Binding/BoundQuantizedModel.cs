using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Reports;
using QuantGen.Serialization;
using System.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Binding;

/// <summary>One step of a converted bound model: an int8 layer, or a float op between dequantize and quantize.</summary>
/// <param name="Op">The bound op.</param>
/// <param name="Layer">The int8 layer (null for a float op).</param>
/// <param name="Int8">Runs the int8 layer on int8 inputs.</param>
/// <param name="Float">Runs the float op (TorchSharp) on float inputs.</param>
/// <param name="FloatReason">Why the op is float.</param>
public sealed record BoundStep(BoundOp Op, IQuantizedLayer? Layer, Func<QTensor[], Buffers.BufferSlot?, QTensor>? Int8, Func<Tensor[], Tensor>? Float, string? FloatReason)
{
    internal BoundStep(BoundOp op, IQuantizedLayer layer, Func<QTensor[], Buffers.BufferSlot?, QTensor> int8, string? floatReason)
        : this(op, layer, int8, null, floatReason)
    {
    }

    internal BoundStep(BoundOp op, IQuantizedLayer? layer, Func<Tensor[], Tensor> @float, string floatReason)
        : this(op, layer, null, @float, floatReason)
    {
    }

    /// <summary>A float op described as data (a file stores it, ONNX export writes it); null for an int8 op or one that cannot be described.</summary>
    public FloatOp? FloatOp { get; init; }

    /// <summary>Why a float op could not be described (so cannot be saved or exported), or null.</summary>
    public string? NotSavedBecause { get; init; }
}

/// <summary>What <c>Convert()</c> made of a bound model: its steps and the quantizers of float values int8 ops read.</summary>
public sealed class BoundQuantizedPlan
{
    internal BoundQuantizedPlan(string model, BoundGraph graph, BoundStep[] steps, QuantizeInput?[] quantizers, QuantizeInput input, string captureHash)
    {
        CaptureHash = captureHash;
        Model = model;
        Graph = graph;
        Steps = steps;
        Quantizers = quantizers;
        Input = input;
    }

    internal string Model { get; }

    internal BoundGraph Graph { get; }

    internal BoundStep[] Steps { get; }

    internal QuantizeInput?[] Quantizers { get; }

    internal QuantizeInput Input { get; }

    internal string CaptureHash { get; }

    /// <summary>The input record's name in the file of a model that takes token indices (a bound model's file otherwise has "input").</summary>
    internal const string IndicesInputLayer = "input.indices";

    /// <summary>The model takes integer token indices (its first ops are float, an Embedding): only <c>forward(Tensor)</c> applies.</summary>
    internal bool IntegerInput { get; init; }

    /// <summary>The function an int8 layer of a bound step runs (one place for Convert and Load).</summary>
    internal static Func<QTensor[], Buffers.BufferSlot?, QTensor> Runner(IQuantizedLayer layer) => layer switch
    {
        QuantizedConv2d conv => (a, slot) => conv.Forward(a[0], slot),
        QuantizedConvTranspose2d deconv => (a, slot) => deconv.Forward(a[0], slot),
        QuantizedLinear linear => (a, slot) => linear.Forward(a[0], slot),
        QuantizedBatchNorm2d bn => (a, slot) => bn.Forward(a[0], slot),
        QuantizedAdd add => (a, slot) => add.Forward(a[0], a[1], slot),
        QuantizedCat cat => (a, slot) => cat.Forward(a, slot),
        QuantizedReLU relu => (a, slot) => relu.Forward(a[0], slot),
        QuantizedHardtanh clamp => (a, slot) => clamp.Forward(a[0], slot),
        QuantizedElementwise elementwise => (a, slot) => elementwise.Forward(a[0], slot),
        QuantizedMaxPool2d pool => (a, slot) => pool.Forward(a[0], slot),
        QuantizedAvgPool2d pool => (a, slot) => pool.Forward(a[0], slot),
        QuantizedAdaptiveAvgPool2d pool => (a, slot) => pool.Forward(a[0], slot),
        QuantizedFlatten flatten => (a, slot) => flatten.Forward(a[0], slot),
        QuantizedReshape reshape => (a, slot) => reshape.Forward(a[0], slot),
        QuantizedMul mul => (a, slot) => mul.Forward(a[0], a[1], slot),
        QuantizedConstantOp constantOp => (a, slot) => constantOp.Forward(a[0], slot),
        QuantizedMean mean => (a, slot) => mean.Forward(a[0], slot),
        _ => throw new NotSupportedException($"{layer.Model}.{layer.Layer}: a {layer.GetType().Name} is not a step of a bound model."),
    };

    private static readonly (GraphOp Op, BoundKind Kind, QGenLayerKind Record)[] OpKinds =
    {
        (GraphOp.Conv2d, BoundKind.Conv2d, QGenLayerKind.Conv2d),
        (GraphOp.Linear, BoundKind.Linear, QGenLayerKind.Linear),
        (GraphOp.ConvTranspose2d, BoundKind.ConvTranspose2d, QGenLayerKind.ConvTranspose2d),
        (GraphOp.BatchNorm2d, BoundKind.BatchNorm2d, QGenLayerKind.BatchNorm2d),
        (GraphOp.ReLU, BoundKind.ReLU, QGenLayerKind.ReLU),
        (GraphOp.Hardtanh, BoundKind.Hardtanh, QGenLayerKind.Hardtanh),
        (GraphOp.Elementwise, BoundKind.Elementwise, QGenLayerKind.Elementwise),
        (GraphOp.Add, BoundKind.Add, QGenLayerKind.Add),
        (GraphOp.Cat, BoundKind.Cat, QGenLayerKind.Cat),
        (GraphOp.MaxPool2d, BoundKind.MaxPool2d, QGenLayerKind.MaxPool2d),
        (GraphOp.AvgPool2d, BoundKind.AvgPool2d, QGenLayerKind.AvgPool2d),
        (GraphOp.AdaptiveAvgPool2d, BoundKind.AdaptiveAvgPool2d, QGenLayerKind.AdaptiveAvgPool2d),
        (GraphOp.Flatten, BoundKind.Flatten, QGenLayerKind.Flatten),
        (GraphOp.Reshape, BoundKind.Reshape, QGenLayerKind.Reshape),
        (GraphOp.Mul, BoundKind.Mul, QGenLayerKind.Mul),
        (GraphOp.ConstantOp, BoundKind.MulConstant, QGenLayerKind.ConstantOp),
        (GraphOp.ConstantOp, BoundKind.AddConstant, QGenLayerKind.ConstantOp),
        (GraphOp.Mean, BoundKind.Mean, QGenLayerKind.Mean),
    };

    internal static GraphOp GraphOpOf(BoundKind kind) => Array.Find(OpKinds, k => k.Kind == kind).Op;

    /// <summary>The file's form: the graph record, the input quantizer, then every step's layer (int8, or a float op as data) in step order.</summary>
    internal IQuantizedModel FileView()
    {
        BoundStep[] unsaved = Array.FindAll(Steps, s => s.Int8 is null && s.FloatOp is null);
        if (unsaved.Length > 0)
        {
            throw new NotSupportedException(
                $"{Model}: {unsaved.Length} float op(s) cannot be stored: " +
                string.Join("; ", Array.ConvertAll(unsaved, s => $"{s.Op.Name} ({s.Op.Source}): {s.NotSavedBecause}")) +
                ". Give such a block a forward the generator can capture (or an int8 op), or keep the model in code.");
        }

        var steps = new List<BoundTopologyStep>(Steps.Length);
        var layers = new List<IQuantizedLayer>(Steps.Length + 2);
        foreach (BoundStep step in Steps)
        {
            GraphOp op = step.Int8 is null ? GraphOp.FloatIsland : GraphOpOf(step.Op.Kind);
            steps.Add(new BoundTopologyStep(step.Op.Name, op, step.Op.Inputs, step.Op.Output));
            layers.Add(step.Layer ?? step.FloatOp!);
        }

        var topology = new BoundTopology(Model, Graph.ValueCount, Graph.Result, steps);
        // A model that takes token indices says so by the input record's name; its qparams are a placeholder.
        layers.Insert(0, IntegerInput ? new QuantizeInput(Model, IndicesInputLayer, Input.QParams) : Input);
        layers.Insert(0, topology);
        return new SavedForm(new ModelGraph(Model, CaptureHash, "input", "result", Array.Empty<GraphNode>()), layers);
    }

    /// <summary>Reads a bound model's file: the graph record is checked, then each layer is read as the kind its step needs.</summary>
    internal static BoundQuantizedPlan Read(QGenReader reader, string model, string captureHash)
    {
        var topology = (BoundTopology)reader.ReadNext("graph", QGenLayerKind.BoundGraph);
        QuantizeInput? input = reader.ReadOptional<QuantizeInput>("input");
        bool integerInput = input is null;
        input ??= reader.Read<QuantizeInput>(IndicesInputLayer);
        var ops = new List<BoundOp>(topology.Steps.Count);
        var steps = new BoundStep[topology.Steps.Count];
        var quantizers = new QuantizeInput?[topology.ValueCount];
        for (int i = 0; i < steps.Length; i++)
        {
            BoundTopologyStep saved = topology.Steps[i];
            if (saved.Op == GraphOp.FloatIsland)
            {
                var floatOp = (FloatOp)reader.ReadNext(saved.Name, QGenLayerKind.FloatOp);
                if (floatOp.InputCount != saved.Inputs.Length)
                {
                    throw new QGenFormatException(reader.FileName, QGenFormatError.InvalidLayer, $"{reader.FileName}: float op '{saved.Name}' reads {floatOp.InputCount} tensor(s), but the graph gives it {saved.Inputs.Length}.");
                }

                string typeName = floatOp.Kind is FloatOpKind.Elementwise ? floatOp.Text : floatOp.Kind.ToString();
                var floatStep = new BoundOp(BoundKind.FloatModule, saved.Name, saved.Inputs, saved.Output, "", saved.Name) { TypeName = typeName, FloatReason = "stored as a float op" };
                floatStep.Members.Add(new GraphMember(saved.Name, typeName, ""));
                ops.Add(floatStep);
                steps[i] = new BoundStep(floatStep, null, floatOp.Forward, "stored as a float op") { FloatOp = floatOp };
                quantizers[saved.Output] = floatOp.Output;
                continue;
            }

            int kind = Array.FindIndex(OpKinds, k => k.Op == saved.Op);
            if (kind < 0)
            {
                throw new QGenFormatException(reader.FileName, QGenFormatError.InvalidLayer, $"{reader.FileName}: step '{saved.Name}' is a {saved.Op}, which a bound model does not run.");
            }

            IQuantizedLayer layer = reader.ReadNext(saved.Name, OpKinds[kind].Record);
            var op = new BoundOp(OpKinds[kind].Kind, saved.Name, saved.Inputs, saved.Output, "", saved.Name) { TypeName = OpKinds[kind].Kind.ToString() };
            op.Members.Add(new GraphMember(saved.Name, op.TypeName, ""));
            ops.Add(op);
            steps[i] = new BoundStep(op, layer, Runner(layer), null);
        }

        // A value saved as never observed (a model converted without calibration) has no qparams: an int8 step that
        // reads one would have nothing to quantize it with, so such a file is refused here rather than at run time.
        foreach (BoundStep step in steps.Where(s => s.Int8 is not null))
        {
            foreach (int value in step.Op.Inputs)
            {
                QuantizeInput? quantizer = value == 0 ? input : quantizers[value];
                if (quantizer is { IsObserved: false })
                {
                    throw new QGenFormatException(reader.FileName, QGenFormatError.InvalidLayer, $"{reader.FileName}: int8 step '{step.Op.Name}' reads '{quantizer.Layer}', which the file says was never observed (it has no qparams).");
                }
            }
        }

        var graph = new BoundGraph(model, ops, topology.ValueCount, topology.Result);
        return new BoundQuantizedPlan(model, graph, steps, quantizers, input, captureHash) { IntegerInput = integerInput };
    }

    private sealed class SavedForm(ModelGraph graph, IReadOnlyList<IQuantizedLayer> layers) : IQuantizedModel
    {
        public ModelGraph Graph => graph;

        public IReadOnlyList<IQuantizedLayer> Layers => layers;

        public QuantizeInput Input => (QuantizeInput)layers[1];

        public QTensor forward(QTensor input) => throw new NotSupportedException("the saved form of a bound model only describes its file.");

        public QTensor forward(QTensor input, IQuantizedTap? tap) => throw new NotSupportedException("the saved form of a bound model only describes its file.");

        public float[] forward(ReadOnlySpan<float> input, int[] shape, out int[] outputShape) => throw new NotSupportedException("the saved form of a bound model only describes its file.");
    }
}

/// <summary>A bound model loaded from its file without its class (<see cref="QGenFile.LoadBoundModel"/>).</summary>
internal sealed class FileBoundQuantizedModel(BoundQuantizedPlan plan) : BoundQuantizedModel(plan);

/// <summary>
/// A model bound at <c>Prepare()</c>, converted to int8 (PyTorch's converted model): int8 layers with prepacked
/// weights where an int8 op exists, float ops (TorchSharp) between dequantize and quantize elsewhere.
/// The generated <c>M.Quantized</c> of a model captured this way derives from it.
/// Every <c>forward</c> overload is safe to call from many threads at once: a call's values live in arrays of
/// its own, and the layers keep no per-call state.
/// </summary>
public abstract class BoundQuantizedModel : IQuantizedModel
{
    private readonly BoundQuantizedPlan _plan;
    private readonly ModelGraph _graph;
    private readonly IQuantizedLayer[] _layers;
    private readonly bool _hasFloatOps;

    // The buffer plan: the activation slot each int8 value is written into (-1: a new tensor), chosen once so
    // values whose lifetimes do not overlap share memory; one set of slots is rented per call.
    private readonly int[] _slotOfValue;
    private readonly int _slotCount;
    private readonly Buffers.IdlePool<CallState> _calls;

    /// <summary>Wraps a converted plan (generated code calls this from <c>Convert()</c>).</summary>
    /// <param name="plan">What <see cref="BoundObservedModel"/> converted.</param>
    protected BoundQuantizedModel(BoundQuantizedPlan plan)
    {
        _plan = plan ?? throw new ArgumentNullException(nameof(plan));
        _hasFloatOps = plan.Steps.Any(s => s.Int8 is null);
        // A float op is represented by the quantizer of its result, as a float island of the generated form is.
        var layers = new List<IQuantizedLayer> { plan.Input };
        layers.AddRange(plan.Steps.Select(s => s.Layer ?? (IQuantizedLayer?)s.FloatOp ?? plan.Quantizers[s.Op.Output]).OfType<IQuantizedLayer>());
        _layers = layers.ToArray();
        _graph = CreateGraph(plan);
        (_slotOfValue, _slotCount) = PlanSlots(plan);
        _calls = new Buffers.IdlePool<CallState>(Buffers.ActivationBufferPool.DefaultCapacity, () => new CallState(plan, _slotCount));
    }

    /// <summary>How many activation slots the buffer plan uses.</summary>
    public int ActivationSlots => _slotCount;

    /// <summary>
    /// What one call holds while it runs, kept for the next call (so a steady-state forward allocates only its
    /// result): the values by index, each step's argument array, and the activation slots.
    /// </summary>
    private sealed class CallState
    {
        public CallState(BoundQuantizedPlan plan, int slots)
        {
            Q = new QTensor?[plan.Graph.ValueCount];
            F = new Tensor?[plan.Graph.ValueCount];
            Int8Arguments = Array.ConvertAll(plan.Steps, s => new QTensor[s.Op.Inputs.Length]);
            FloatArguments = Array.ConvertAll(plan.Steps, s => new Tensor[s.Op.Inputs.Length]);
            Buffers = slots == 0 ? null : new Buffers.ActivationBuffers(slots);
        }

        public QTensor?[] Q { get; }

        public Tensor?[] F { get; }

        public QTensor[][] Int8Arguments { get; }

        public Tensor[][] FloatArguments { get; }

        public Buffers.ActivationBuffers? Buffers { get; }

        /// <summary>Drops the references to this call's tensors (the result is the caller's; float ones are disposed by its scope).</summary>
        public void Clear()
        {
            Array.Clear(Q);
            Array.Clear(F);
            foreach (QTensor[] arguments in Int8Arguments)
            {
                Array.Clear(arguments);
            }

            foreach (Tensor[] arguments in FloatArguments)
            {
                Array.Clear(arguments);
            }
        }
    }

    /// <summary>
    /// Greedy interval assignment in step order: an int8 step's output takes a free slot (never one its inputs
    /// hold), and a value's slot is freed after its last reader. The result and float values get no slot: the
    /// result leaves the call, and float ops allocate through TorchSharp anyway.
    /// </summary>
    private static (int[] SlotOfValue, int Count) PlanSlots(BoundQuantizedPlan plan)
    {
        int values = plan.Graph.ValueCount, result = plan.Graph.Result;
        var lastRead = new int[values];
        Array.Fill(lastRead, -1);
        for (int i = 0; i < plan.Steps.Length; i++)
        {
            foreach (int input in plan.Steps[i].Op.Inputs)
            {
                lastRead[input] = i;
            }
        }

        var slotOf = new int[values];
        Array.Fill(slotOf, -1);
        var free = new SortedSet<int>();
        int count = 0;
        int Take()
        {
            if (free.Count > 0)
            {
                int slot = free.Min;
                free.Remove(slot);
                return slot;
            }

            return count++;
        }

        // The model input, when it is quantized on entry, lives until its last reader.
        if (result != 0 && lastRead[0] >= 0)
        {
            slotOf[0] = Take();
        }

        for (int i = 0; i < plan.Steps.Length; i++)
        {
            BoundStep step = plan.Steps[i];
            int output = step.Op.Output;
            if (step.Int8 is not null && output != result && lastRead[output] > i)
            {
                slotOf[output] = Take();
            }

            foreach (int input in step.Op.Inputs)
            {
                if (lastRead[input] == i && slotOf[input] >= 0 && input != output)
                {
                    free.Add(slotOf[input]);
                }
            }
        }

        return (slotOf, count);
    }

    /// <summary>The int8 graph: ops in forward order, float ops as float islands, the members each op stands for.</summary>
    public ModelGraph Graph => _graph;

    /// <summary>The int8 layers, in forward order (the input quantizer first).</summary>
    public IReadOnlyList<IQuantizedLayer> Layers => _layers;

    /// <summary>Quantizes the float input.</summary>
    public QuantizeInput Input => _plan.Input;

    /// <summary>The ops that run in float, each with why.</summary>
    public IReadOnlyList<(string Layer, string Type, string Reason)> FloatOps =>
        _plan.Steps.Where(s => s.Int8 is null).Select(s => (s.Op.Name, s.Op.TypeName, s.FloatReason ?? "")).ToArray();

    /// <summary>The identity of what was bound: op kinds, names, fusions and edges.</summary>
    public string BoundGraphHash => _plan.Graph.Hash();

    /// <summary>
    /// Writes the int8 model to a <c>.qgen</c> file: its bound graph (ops and edges) and every layer, so the generated
    /// <c>Load</c> rebuilds it with no model instance and no TorchSharp (docs/model-file.md).
    /// </summary>
    /// <param name="path">The file to create or overwrite.</param>
    /// <exception cref="NotSupportedException">A float op cannot be described as data (a module whose forward was not captured); the message lists them.</exception>
    public void Save(string path) => QGenFile.Save(path, _plan.FileView());

    /// <summary>Writes the int8 model in the <c>.qgen</c> format to a stream.</summary>
    /// <param name="stream">A writable stream.</param>
    /// <exception cref="NotSupportedException">A float op cannot be described as data; the message lists them.</exception>
    public void Save(Stream stream) => QGenFile.Save(stream, _plan.FileView());

    /// <summary>Reads what <see cref="Save(string)"/> wrote (generated <c>Load</c> calls this).</summary>
    /// <param name="path">The file.</param>
    /// <param name="model">The model class's name.</param>
    /// <param name="forward">The class's captured forward: a file saved from other code is refused.</param>
    /// <returns>The converted plan.</returns>
    /// <exception cref="QGenFormatException">The file is corrupted, truncated, of another model or of another version of its code.</exception>
    protected static BoundQuantizedPlan LoadPlan(string path, string model, CapturedForward forward)
    {
        ArgumentNullException.ThrowIfNull(forward);
        using QGenReader reader = QGenFile.OpenRead(path, model, forward.Hash);
        return BoundQuantizedPlan.Read(reader, model, forward.Hash);
    }

    /// <summary>As <see cref="LoadPlan(string, string, CapturedForward)"/>, from a stream.</summary>
    /// <param name="stream">A readable stream holding a <c>.qgen</c> file.</param>
    /// <param name="model">The model class's name.</param>
    /// <param name="forward">The class's captured forward.</param>
    /// <returns>The converted plan.</returns>
    protected static BoundQuantizedPlan LoadPlan(Stream stream, string model, CapturedForward forward)
    {
        ArgumentNullException.ThrowIfNull(forward);
        using QGenReader reader = QGenFile.OpenRead(stream, model, forward.Hash);
        return BoundQuantizedPlan.Read(reader, model, forward.Hash);
    }

    /// <summary>Float in, float out. Safe to call from many threads at once.</summary>
    /// <param name="input">A float32 tensor of the shape the float model takes.</param>
    /// <returns>A new float32 tensor.</returns>
    public Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        // Token indices (an Embedding first) go in as they are; any other input is float32, as the observers saw it.
        // An input no observer saw (converted without calibration) may be either: only float ops read it.
        bool indicesAllowed = _plan.IntegerInput || !_plan.Input.IsObserved;
        (QTensor? q, Tensor? f) = Run(null, indicesAllowed && !input.is_floating_point() ? input : input.to(ScalarType.Float32), null);
        Tensor result = f ?? TensorInterop.FromArray(q!.Dequantize(), q.Shape);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Float in, float out on arrays: values in logical row-major (NCHW) order. Safe to call from many threads at once.</summary>
    /// <param name="input">The input values.</param>
    /// <param name="shape">The input's logical shape.</param>
    /// <param name="outputShape">The result's logical shape.</param>
    /// <returns>The dequantized result.</returns>
    public float[] forward(ReadOnlySpan<float> input, int[] shape, out int[] outputShape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ThrowIfIntegerInput("forward(float[])");
        if (_hasFloatOps)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            (QTensor? q, Tensor? f) = Run(null, TensorInterop.FromArray(input.ToArray(), shape), null);
            if (f is not null)
            {
                return TensorInterop.ToArray(f, out outputShape);
            }

            outputShape = q!.Shape;
            return q.Dequantize();
        }

        CallState call = _calls.Rent();
        try
        {
            QTensor quantized = _plan.Input.Forward(input, shape, call.Buffers is not null && _slotOfValue[0] >= 0 ? call.Buffers[_slotOfValue[0]] : null);
            (QTensor? q, Tensor? _) = Run(quantized, null, null, call);
            outputShape = q!.Shape;
            return q.Dequantize();
        }
        finally
        {
            call.Clear();
            _calls.Return(call);
        }
    }

    /// <summary>Int8 in, int8 out: the input quantized with <see cref="Input"/>'s qparams. Safe to call from many threads at once.</summary>
    /// <param name="input">The quantized input.</param>
    /// <returns>The int8 result (a float result is quantized with the last observer's qparams if the model ends in float).</returns>
    public QTensor forward(QTensor input) => forward(input, null);

    /// <summary>As <see cref="forward(QTensor)"/>, reporting every int8 op's output to <paramref name="tap"/>.</summary>
    /// <param name="input">The quantized input.</param>
    /// <param name="tap">Receives each int8 layer's output; null for none.</param>
    /// <returns>The int8 result.</returns>
    public QTensor forward(QTensor input, IQuantizedTap? tap)
    {
        ArgumentNullException.ThrowIfNull(input);
        ThrowIfIntegerInput("forward(QTensor)");
        if (_hasFloatOps)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            return Result(Run(input, null, tap));
        }

        return Result(Run(input, null, tap));
    }

    private void ThrowIfIntegerInput(string overload)
    {
        if (_plan.IntegerInput)
        {
            throw new InvalidOperationException($"{_plan.Model}: this model takes integer token indices (it was calibrated with them), not a quantized or float input; call forward(Tensor) with the indices instead of {overload}.");
        }
    }

    private QTensor Result((QTensor? Q, Tensor? F) result)
    {
        if (result.Q is not null)
        {
            return result.Q;
        }

        float[] values = TensorInterop.ToArray(result.F!, out int[] shape);
        return QTensor.Quantize(values, shape, _plan.Quantizers[_plan.Graph.Result]?.QParams ?? _plan.Input.QParams);
    }

    /// <summary>Runs the steps with a rented set of activation slots (none with a tap: it may keep every output).</summary>
    private (QTensor? Q, Tensor? F) Run(QTensor? qInput, Tensor? fInput, IQuantizedTap? tap)
    {
        CallState call = _calls.Rent();
        try
        {
            return Run(qInput, fInput, tap, call);
        }
        finally
        {
            call.Clear();
            _calls.Return(call);
        }
    }

    /// <summary>Runs the steps on a call's own state (thread-safe); either input may be given. With a tap no slot is used: it may keep every output.</summary>
    private (QTensor? Q, Tensor? F) Run(QTensor? qInput, Tensor? fInput, IQuantizedTap? tap, CallState call)
    {
        Buffers.ActivationBuffers? buffers = tap is null ? call.Buffers : null;
        Buffers.BufferSlot? SlotOf(int value) => buffers is not null && _slotOfValue[value] >= 0 ? buffers[_slotOfValue[value]] : null;
        QTensor?[] q = call.Q;
        Tensor?[] f = call.F;
        q[0] = qInput;
        f[0] = fInput;
        if (tap is not null && qInput is not null)
        {
            tap.OnLayer("input", qInput);
        }

        for (int s = 0; s < _plan.Steps.Length; s++)
        {
            BoundStep step = _plan.Steps[s];
            int[] inputs = step.Op.Inputs;
            if (step.Int8 is { } int8)
            {
                QTensor[] arguments = call.Int8Arguments[s];
                for (int k = 0; k < inputs.Length; k++)
                {
                    int v = inputs[k];
                    if (q[v] is null)
                    {
                        QuantizeInput quantizer = v == 0 ? _plan.Input : _plan.Quantizers[v]!;
                        float[] values = TensorInterop.ToArray(f[v]!, out int[] shape);
                        q[v] = quantizer.Forward(values, shape, v == 0 ? SlotOf(0) : null);
                    }

                    arguments[k] = q[v]!;
                }

                q[step.Op.Output] = int8(arguments, SlotOf(step.Op.Output));
                tap?.OnLayer(step.Op.Name, q[step.Op.Output]!);
            }
            else
            {
                Tensor[] arguments = call.FloatArguments[s];
                for (int k = 0; k < inputs.Length; k++)
                {
                    int v = inputs[k];
                    f[v] ??= TensorInterop.FromArray(q[v]!.Dequantize(), q[v]!.Shape);
                    arguments[k] = f[v]!;
                }

                f[step.Op.Output] = step.Float!(arguments);
                if (tap is not null)
                {
                    // A float op reports its result as the int8 model hands it on: quantized with its observer's qparams.
                    float[] values = TensorInterop.ToArray(f[step.Op.Output]!, out int[] shape);
                    q[step.Op.Output] = _plan.Quantizers[step.Op.Output]!.Forward(values, shape);
                    tap.OnLayer(step.Op.Name, q[step.Op.Output]!);
                }
            }
        }

        int result = _plan.Graph.Result;
        return (q[result], q[result] is null ? f[result] : null);
    }

    /// <summary>The layers and float ops, one per line.</summary>
    /// <returns>The converted model as PyTorch prints one.</returns>
    public override string ToString()
    {
        var text = new System.Text.StringBuilder($"{_plan.Model}(\n  (input): {_plan.Input}\n");
        foreach (BoundStep step in _plan.Steps)
        {
            text.Append($"  ({step.Op.Name}): {(step.Layer is not null ? step.Layer.ToString() : $"{step.Op.TypeName} [float: {step.FloatReason}]")}\n");
        }

        return text.Append(')').ToString();
    }

    private static ModelGraph CreateGraph(BoundQuantizedPlan plan)
    {
        static string Value(int v) => v == 0 ? "input" : "t" + v.ToString(CultureInfo.InvariantCulture);
        var nodes = new List<GraphNode>
        {
            new("input", GraphOp.Quantize, new[] { "input" }, "q_input", Array.Empty<GraphMember>(), ""),
        };
        foreach (BoundStep step in plan.Steps)
        {
            GraphOp op = step.Int8 is null ? GraphOp.FloatIsland : BoundQuantizedPlan.GraphOpOf(step.Op.Kind);
            nodes.Add(new GraphNode(step.Op.Name, op, step.Op.Inputs.Select(v => v == 0 ? "q_input" : Value(v)).ToArray(), Value(step.Op.Output), step.Op.Members.ToArray(), step.Op.Source));
        }

        return new ModelGraph(plan.Model, plan.Graph.Hash(), "input", Value(plan.Graph.Result), nodes);
    }
}
