using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Reports;
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
}

/// <summary>What <c>Convert()</c> made of a bound model: its steps and the quantizers of float values int8 ops read.</summary>
public sealed class BoundQuantizedPlan
{
    internal BoundQuantizedPlan(string model, BoundGraph graph, BoundStep[] steps, QuantizeInput?[] quantizers, QuantizeInput input)
    {
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
}

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
    private readonly Buffers.ActivationBufferPool? _buffers;

    /// <summary>Wraps a converted plan (generated code calls this from <c>Convert()</c>).</summary>
    /// <param name="plan">What <see cref="BoundObservedModel"/> converted.</param>
    protected BoundQuantizedModel(BoundQuantizedPlan plan)
    {
        _plan = plan ?? throw new ArgumentNullException(nameof(plan));
        _hasFloatOps = plan.Steps.Any(s => s.Int8 is null);
        var layers = new List<IQuantizedLayer> { plan.Input };
        layers.AddRange(plan.Steps.Select(s => s.Layer).OfType<IQuantizedLayer>());
        _layers = layers.ToArray();
        _graph = CreateGraph(plan);
        (_slotOfValue, int slots) = PlanSlots(plan);
        _buffers = slots == 0 ? null : new Buffers.ActivationBufferPool(slots);
    }

    /// <summary>How many activation slots the buffer plan uses.</summary>
    public int ActivationSlots => _buffers?.SlotCount ?? 0;

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

    /// <summary>Not yet available for a model bound at Prepare.</summary>
    /// <param name="path">The file.</param>
    /// <exception cref="NotSupportedException">Always, for now: the .qgen format stores generated graphs only.</exception>
    public void Save(string path) => throw new NotSupportedException(
        $"{_plan.Model}: Save is not available yet for a model bound at Prepare (a general-typed member, a container built in code or a float op made the generator capture it); the .qgen format stores models whose graph the generator planned. Run it in-process, or export it with the float model instead.");

    /// <summary>Float in, float out. Safe to call from many threads at once.</summary>
    /// <param name="input">A float32 tensor of the shape the float model takes.</param>
    /// <returns>A new float32 tensor.</returns>
    public Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        (QTensor? q, Tensor? f) = Run(null, input.to(ScalarType.Float32), null);
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

        Buffers.ActivationBuffers? buffers = _buffers?.Rent();
        try
        {
            QTensor quantized = _plan.Input.Forward(input, shape, buffers is not null && _slotOfValue[0] >= 0 ? buffers[_slotOfValue[0]] : null);
            (QTensor? q, Tensor? _) = Run(quantized, null, null, buffers);
            outputShape = q!.Shape;
            return q.Dequantize();
        }
        finally
        {
            if (buffers is not null)
            {
                _buffers!.Return(buffers);
            }
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
        if (_hasFloatOps)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            return Result(Run(input, null, tap));
        }

        return Result(Run(input, null, tap));
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
        Buffers.ActivationBuffers? buffers = tap is null ? _buffers?.Rent() : null;
        try
        {
            return Run(qInput, fInput, tap, buffers);
        }
        finally
        {
            if (buffers is not null)
            {
                _buffers!.Return(buffers);
            }
        }
    }

    /// <summary>Runs the steps; values are per call (thread-safe). Either input may be given.</summary>
    private (QTensor? Q, Tensor? F) Run(QTensor? qInput, Tensor? fInput, IQuantizedTap? tap, Buffers.ActivationBuffers? buffers)
    {
        Buffers.BufferSlot? SlotOf(int value) => buffers is not null && _slotOfValue[value] >= 0 ? buffers[_slotOfValue[value]] : null;
        int count = _plan.Graph.ValueCount;
        var q = new QTensor?[count];
        var f = new Tensor?[count];
        q[0] = qInput;
        f[0] = fInput;
        foreach (BoundStep step in _plan.Steps)
        {
            int[] inputs = step.Op.Inputs;
            if (step.Int8 is { } int8)
            {
                var arguments = new QTensor[inputs.Length];
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
                var arguments = new Tensor[inputs.Length];
                for (int k = 0; k < inputs.Length; k++)
                {
                    int v = inputs[k];
                    f[v] ??= TensorInterop.FromArray(q[v]!.Dequantize(), q[v]!.Shape);
                    arguments[k] = f[v]!;
                }

                f[step.Op.Output] = step.Float!(arguments);
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
            GraphOp op = step.Int8 is null ? GraphOp.FloatIsland : step.Op.Kind switch
            {
                BoundKind.Conv2d => GraphOp.Conv2d,
                BoundKind.Linear => GraphOp.Linear,
                BoundKind.BatchNorm2d => GraphOp.BatchNorm2d,
                BoundKind.ReLU => GraphOp.ReLU,
                BoundKind.Hardtanh => GraphOp.Hardtanh,
                BoundKind.Add => GraphOp.Add,
                BoundKind.Cat => GraphOp.Cat,
                BoundKind.MaxPool2d => GraphOp.MaxPool2d,
                BoundKind.AvgPool2d => GraphOp.AvgPool2d,
                BoundKind.AdaptiveAvgPool2d => GraphOp.AdaptiveAvgPool2d,
                BoundKind.Flatten => GraphOp.Flatten,
                BoundKind.Reshape => GraphOp.Reshape,
                _ => GraphOp.FloatIsland,
            };
            nodes.Add(new GraphNode(step.Op.Name, op, step.Op.Inputs.Select(v => v == 0 ? "q_input" : Value(v)).ToArray(), Value(step.Op.Output), step.Op.Members.ToArray(), step.Op.Source));
        }

        return new ModelGraph(plan.Model, plan.Graph.Hash(), "input", Value(plan.Graph.Result), nodes);
    }
}
