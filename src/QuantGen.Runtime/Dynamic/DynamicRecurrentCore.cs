using System;
using System.Collections.Generic;
using System.Globalization;
using QuantGen.Kernels;
using QuantGen.Modules;
using QuantGen.Observers;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>The recurrent cells QuantGen runs dynamically, with PyTorch's gate order.</summary>
internal enum RecurrentCellKind
{
    /// <summary>Gates i, f, g, o; a hidden and a cell state.</summary>
    Lstm,

    /// <summary>Gates r, z, n; a hidden state.</summary>
    Gru,

    /// <summary>An Elman cell, <c>h' = tanh(W_ih·x + b_ih + W_hh·h + b_hh)</c>.</summary>
    RnnTanh,

    /// <summary>An Elman cell, <c>h' = relu(W_ih·x + b_ih + W_hh·h + b_hh)</c>.</summary>
    RnnRelu,
}

/// <summary>
/// What the recurrence needs of a projection (<c>linear_ih</c> or <c>linear_hh</c> of one cell): <c>y = x·Wᵀ + b</c> over
/// whole row-major spans, allocating nothing. <see cref="DynamicQuantizedLinear"/> (int8 weights, the input quantized per
/// call) and <see cref="Float16Linear"/> (float16 weights, float32 arithmetic) are the two.
/// </summary>
internal interface IRecurrentProjection
{
    /// <summary>Input features.</summary>
    int InFeatures { get; }

    /// <summary>Output features (gates · hidden_size).</summary>
    int OutFeatures { get; }

    /// <summary>True when the projection adds a bias.</summary>
    bool HasBias { get; }

    /// <summary>y = x·Wᵀ + b for <paramref name="rows"/> rows.</summary>
    void Forward(ReadOnlySpan<float> input, int rows, Span<float> output);
}

/// <summary>
/// The parts of the dynamic recurrent layers that do not depend on how a projection computes: reading a TorchSharp
/// module's sizes and parameters, quantizing them to int8, and building the recurrence over the projections.
/// </summary>
internal static class DynamicRecurrentCore
{
    /// <summary>4 for an LSTM, 3 for a GRU, 1 for an Elman cell.</summary>
    public static int GateCount(RecurrentCellKind kind) => kind switch { RecurrentCellKind.Lstm => 4, RecurrentCellKind.Gru => 3, _ => 1 };

    /// <summary>
    /// The recurrence over <see cref="DynamicQuantizedLinear"/> projections (qint8 weights, the input quantized on every
    /// call): every input and state must be finite, since a dynamic linear takes its scale from their min and max.
    /// </summary>
    public static DynamicRecurrentCore<DynamicQuantizedLinear> Int8(RecurrentCellKind kind, string model, string layer, RecurrentShape shape, IReadOnlyList<RecurrentCellWeights> cells, QuantBackend backend, GemmConfig? kernelConfig) =>
        DynamicRecurrentCore<DynamicQuantizedLinear>.Create(
            kind,
            model,
            layer,
            shape,
            cells,
            (weights, suffix, inputSize, gateRows) => (
                Projection(model, layer, "ih", suffix, inputSize, gateRows, weights.WeightIh, weights.BiasIh, backend, kernelConfig),
                Projection(model, layer, "hh", suffix, shape.HiddenSize, gateRows, weights.WeightHh, weights.BiasHh, backend, kernelConfig)),
            finiteInputsOnly: true);

    /// <summary>
    /// The recurrence over <see cref="Float16Linear"/> projections (float16 weights, float32 arithmetic): nothing is
    /// quantized, so NaN and infinite inputs pass through as in the float module.
    /// </summary>
    public static DynamicRecurrentCore<Float16Linear> Float16(RecurrentCellKind kind, string model, string layer, RecurrentShape shape, IReadOnlyList<Float16RecurrentCellWeights> cells, int vectorBits) =>
        DynamicRecurrentCore<Float16Linear>.Create(
            kind,
            model,
            layer,
            shape,
            cells,
            (weights, suffix, inputSize, gateRows) => (
                new Float16Linear(model, $"{layer}.weight_ih_{suffix}", inputSize, gateRows, weights.WeightIh ?? throw new ArgumentNullException(nameof(cells), $"{model}.{layer}: cell {suffix} has no weight_ih."), weights.BiasIh, fusedRelu: false, vectorBits),
                new Float16Linear(model, $"{layer}.weight_hh_{suffix}", shape.HiddenSize, gateRows, weights.WeightHh ?? throw new ArgumentNullException(nameof(cells), $"{model}.{layer}: cell {suffix} has no weight_hh."), weights.BiasHh, fusedRelu: false, vectorBits)),
            finiteInputsOnly: false);

    /// <summary>
    /// Rounds a float recurrent module's weights to float16 as PyTorch's float16 dynamic <c>from_float</c> does
    /// (<c>linear_prepack_fp16</c> per weight: saturated to ±65504, rounded to nearest even); the biases stay float32.
    /// </summary>
    public static Float16RecurrentCellWeights[] RoundParameters(string name, string moduleKind, int gates, RecurrentShape shape, IReadOnlyDictionary<string, Tensor> parameters)
    {
        var cells = new Float16RecurrentCellWeights[shape.Cells];
        bool hasBias = parameters.ContainsKey("bias_ih_l0");
        int gateRows = gates * shape.HiddenSize;
        for (int cell = 0; cell < shape.Cells; cell++)
        {
            string suffix = shape.CellSuffix(cell);
            int inputSize = shape.LayerInputSize(cell / shape.Directions);
            Half[] Weight(string what, int columns)
            {
                string parameter = $"weight_{what}_{suffix}";
                return Float16Weights.Round(name, parameter, ReadFloat(name, moduleKind, parameters, parameter, [gateRows, columns]));
            }

            float[]? Bias(string what) => hasBias ? ReadFloat(name, moduleKind, parameters, $"bias_{what}_{suffix}", [gateRows]) : null;

            cells[cell] = new Float16RecurrentCellWeights(Weight("ih", inputSize), Weight("hh", shape.HiddenSize), Bias("ih"), Bias("hh"));
        }

        return cells;
    }

    /// <summary>
    /// Quantizes a float recurrent module's parameters, read by name, each weight with its own observer as
    /// PyTorch's dynamic <c>from_float</c> does (per-tensor symmetric qint8, or per-channel along the gate rows).
    /// </summary>
    public static RecurrentCellWeights[] QuantizeParameters(string name, string moduleKind, int gates, RecurrentShape shape, IReadOnlyDictionary<string, Tensor> parameters, bool perChannel)
    {
        ObserverSpec weightSpec = perChannel
            ? ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric)
            : ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric);
        var cells = new RecurrentCellWeights[shape.Cells];
        bool hasBias = parameters.ContainsKey("bias_ih_l0");
        int gateRows = gates * shape.HiddenSize;
        for (int cell = 0; cell < shape.Cells; cell++)
        {
            string suffix = shape.CellSuffix(cell);
            int inputSize = shape.LayerInputSize(cell / shape.Directions);
            QTensor Weight(string what, int columns)
            {
                string parameter = $"weight_{what}_{suffix}";
                float[] values = ReadFloat(name, moduleKind, parameters, parameter, [gateRows, columns]);
                return FusedConv2d.QuantizeWeight($"{name}.{parameter}", weightSpec, values, [gateRows, columns], 0, moduleKind, $"[{gates} * hidden_size, {(what == "ih" ? "input size" : "hidden_size")}]");
            }

            float[]? Bias(string what) => hasBias ? ReadFloat(name, moduleKind, parameters, $"bias_{what}_{suffix}", [gateRows]) : null;

            cells[cell] = new RecurrentCellWeights(Weight("ih", inputSize), Weight("hh", shape.HiddenSize), Bias("ih"), Bias("hh"));
        }

        return cells;
    }

    /// <summary>
    /// Reads the sizes of a TorchSharp <c>LSTM</c>/<c>GRU</c> from its parameters (TorchSharp does not expose its
    /// options): hidden_size and input_size from <c>weight_ih_l0</c>, num_layers from the <c>weight_ih_l{k}</c>
    /// count, bidirectional from <c>weight_ih_l0_reverse</c>. batch_first is not a parameter: it is given, or found
    /// by running the float module once on <c>[1, 2, input_size]</c> zeros and reading h_n's batch dimension.
    /// </summary>
    public static (RecurrentShape Shape, Dictionary<string, Tensor> Parameters) ReadShape(string name, string moduleKind, int gates, nn.Module module, bool? batchFirst, Func<Tensor, Tensor> probeHiddenState)
    {
        var parameters = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach ((string parameterName, TorchSharp.Modules.Parameter parameter) in module.named_parameters())
        {
            parameters[parameterName] = parameter;
        }

        foreach (string parameterName in parameters.Keys)
        {
            if (parameterName.StartsWith("weight_hr", StringComparison.Ordinal))
            {
                throw new NotSupportedException($"{name}: the {moduleKind} has projections ({parameterName}, proj_size > 0); the dynamic {moduleKind} does not support them.");
            }
        }

        if (!parameters.TryGetValue("weight_ih_l0", out Tensor? first))
        {
            throw new ArgumentException($"{name}: the {moduleKind} has no parameter weight_ih_l0 (its parameters: {string.Join(", ", parameters.Keys)}).");
        }

        if (first.dim() != 2 || first.shape[0] % gates != 0)
        {
            throw new ArgumentException($"{name}: expected weight_ih_l0 [{gates} * hidden_size, input_size], got [{string.Join(", ", first.shape)}].");
        }

        int hiddenSize = checked((int)(first.shape[0] / gates));
        int inputSize = checked((int)first.shape[1]);
        int layers = 0;
        while (parameters.ContainsKey($"weight_ih_l{layers}"))
        {
            layers++;
        }

        bool bidirectional = parameters.ContainsKey("weight_ih_l0_reverse");
        bool isBatchFirst = batchFirst ?? ProbeBatchFirst(name, moduleKind, inputSize, first.dtype, probeHiddenState);
        return (new RecurrentShape(inputSize, hiddenSize, layers, bidirectional, isBatchFirst), parameters);
    }

    /// <summary>
    /// Reads and quantizes a TorchSharp <c>LSTMCell</c>/<c>GRUCell</c> (parameters <c>weight_ih</c>, <c>weight_hh</c>,
    /// <c>bias_ih</c>, <c>bias_hh</c>): one layer, one direction.
    /// </summary>
    public static (RecurrentShape Shape, RecurrentCellWeights Weights) ReadCell(string name, string moduleKind, int gates, nn.Module cell, bool perChannel)
    {
        var parameters = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach ((string parameterName, TorchSharp.Modules.Parameter parameter) in cell.named_parameters())
        {
            // The cell's names without the layer suffix, renamed to a one-layer module's.
            parameters[$"{parameterName}_l0"] = parameter;
        }

        if (!parameters.TryGetValue("weight_ih_l0", out Tensor? weightIh))
        {
            throw new ArgumentException($"{name}: the {moduleKind} has no parameter weight_ih.");
        }

        if (weightIh.dim() != 2 || weightIh.shape[0] % gates != 0)
        {
            throw new ArgumentException($"{name}: expected weight_ih [{gates} * hidden_size, input_size], got [{string.Join(", ", weightIh.shape)}].");
        }

        var shape = new RecurrentShape(checked((int)weightIh.shape[1]), checked((int)(weightIh.shape[0] / gates)));
        return (shape, QuantizeParameters(name, moduleKind, gates, shape, parameters, perChannel)[0]);
    }

    private static DynamicQuantizedLinear Projection(string model, string layer, string what, string suffix, int columns, int gateRows, QTensor weight, float[]? bias, QuantBackend backend, GemmConfig? kernelConfig)
    {
        ArgumentNullException.ThrowIfNull(weight);
        return new DynamicQuantizedLinear(model, $"{layer}.weight_{what}_{suffix}", columns, gateRows, weight, bias, fusedRelu: false, backend, kernelConfig);
    }

    private static float[] ReadFloat(string name, string moduleKind, IReadOnlyDictionary<string, Tensor> parameters, string parameter, long[] expected)
    {
        if (!parameters.TryGetValue(parameter, out Tensor? tensor))
        {
            throw new ArgumentException($"{name}: the {moduleKind} has no parameter {parameter} (its parameters: {string.Join(", ", parameters.Keys)}).");
        }

        if (!tensor.shape.AsSpan().SequenceEqual(expected))
        {
            throw new ArgumentException($"{name}: expected {parameter} [{string.Join(", ", expected)}], got [{string.Join(", ", tensor.shape)}].");
        }

        return FusedConv2d.ReadParameter(name, parameter, tensor)!;
    }

    private static bool ProbeBatchFirst(string name, string moduleKind, int inputSize, ScalarType dtype, Func<Tensor, Tensor> probeHiddenState)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        Tensor probe = torch.zeros([1, 2, inputSize], dtype);
        long hiddenBatch = probeHiddenState(probe).shape[1];
        return hiddenBatch switch
        {
            2 => false,
            1 => true,
            _ => throw new InvalidOperationException($"{name}: probing the {moduleKind}'s batch_first with input [1, 2, {inputSize}] gave h_n with batch {hiddenBatch}; pass batchFirst explicitly."),
        };
    }
}

/// <summary>
/// The recurrence of PyTorch's dynamic LSTM/GRU/RNN cells as aten's <c>FullLayer</c> / <c>FullBidirectionalLayer</c> run
/// it on the CPU (docs/numerics.md §10): per layer and direction, one projection of the whole <c>[T·N, in]</c> input
/// (one dynamic quantization of the layer's input, for the int8 projections), then per step a projection of the
/// <c>[N, H]</c> hidden state and the gates in float32 (<see cref="RecurrentGatesKernel"/>). The projections are
/// <see cref="DynamicQuantizedLinear"/> (<see cref="DynamicQuantizedLSTM"/>, <see cref="DynamicQuantizedGRU"/> and the
/// cells) or <see cref="Float16Linear"/> (<see cref="Float16LSTM"/>, <see cref="Float16GRU"/>).
/// </summary>
/// <remarks>
/// Steady state allocates nothing: the layer outputs, the projected inputs, the step's hidden gates and the
/// states live in the calling thread's <see cref="RecurrentScratch"/>; the int8 linears use the thread's
/// <see cref="LayerScratch"/>. Nothing a call changes is held by the object, so many threads may call it at once.
/// </remarks>
/// <typeparam name="TProjection">The projection each cell's <c>linear_ih</c> and <c>linear_hh</c> are.</typeparam>
internal sealed class DynamicRecurrentCore<TProjection>
    where TProjection : class, IRecurrentProjection
{
    private readonly TProjection[] _inputProjections;
    private readonly TProjection[] _hiddenProjections;

    /// <summary>
    /// Refuse non-finite inputs and states before any step runs (the int8 projections take their scale from the
    /// values' min and max); the float16-weight projections compute in float32 and let NaN and infinity through as the
    /// float module does.
    /// </summary>
    private readonly bool _finiteInputsOnly;

    private DynamicRecurrentCore(RecurrentCellKind kind, string name, RecurrentShape shape, TProjection[] inputProjections, TProjection[] hiddenProjections, bool finiteInputsOnly)
    {
        Kind = kind;
        Name = name;
        Shape = shape;
        Gates = DynamicRecurrentCore.GateCount(kind);
        _inputProjections = inputProjections;
        _hiddenProjections = hiddenProjections;
        _finiteInputsOnly = finiteInputsOnly;
    }

    public RecurrentCellKind Kind { get; }

    public string Name { get; }

    public RecurrentShape Shape { get; }

    /// <summary>4 for an LSTM, 3 for a GRU.</summary>
    public int Gates { get; }

    public bool HasBias => _inputProjections[0].HasBias;

    public TProjection InputProjection(int cell) => _inputProjections[cell];

    public TProjection HiddenProjection(int cell) => _hiddenProjections[cell];

    /// <summary>
    /// Checks the shape and the cell count, then builds each cell's (input, hidden) projections with
    /// <paramref name="project"/> (given the cell's weights, its suffix <c>l0</c>, <c>l0_reverse</c>…, its input size and
    /// the gate rows), which checks the weights themselves.
    /// </summary>
    public static DynamicRecurrentCore<TProjection> Create<TCell>(RecurrentCellKind kind, string model, string layer, RecurrentShape shape, IReadOnlyList<TCell> cells, Func<TCell, string, int, int, (TProjection Input, TProjection Hidden)> project, bool finiteInputsOnly)
        where TCell : class
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(cells);
        string name = $"{model}.{layer}";
        shape.Validate(name);
        if (cells.Count != shape.Cells)
        {
            throw new ArgumentException($"{name}: expected {shape.Cells} cells (num_layers={shape.NumLayers} × directions={shape.Directions}), got {cells.Count}.", nameof(cells));
        }

        int gateRows = DynamicRecurrentCore.GateCount(kind) * shape.HiddenSize;
        var inputProjections = new TProjection[shape.Cells];
        var hiddenProjections = new TProjection[shape.Cells];
        for (int cell = 0; cell < shape.Cells; cell++)
        {
            TCell weights = cells[cell] ?? throw new ArgumentNullException(nameof(cells), $"{name}: cell {shape.CellSuffix(cell)} is null.");
            (inputProjections[cell], hiddenProjections[cell]) = project(weights, shape.CellSuffix(cell), shape.LayerInputSize(cell / shape.Directions), gateRows);
        }

        return new DynamicRecurrentCore<TProjection>(kind, name, shape, inputProjections, hiddenProjections, finiteInputsOnly);
    }

    /// <summary>Checks a cell's float32 input <c>[batch, input_size]</c> (or unbatched <c>[input_size]</c>); returns (batch, batched).</summary>
    public (int Batch, bool Batched) CheckCellInput(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        RecurrentShape shape = Shape;
        long[] dims = input.shape;
        if (input.dtype != ScalarType.Float32 || (dims.Length != 2 && dims.Length != 1) || dims[^1] != shape.InputSize)
        {
            throw new ArgumentException($"{Name}: expected a Float32 input [batch, input_size] (or unbatched [input_size]) with input_size={shape.InputSize}, got {input.dtype} [{string.Join(", ", dims)}].", nameof(input));
        }

        long batch = dims.Length == 2 ? dims[0] : 1;
        if (batch < 1)
        {
            throw new ArgumentException($"{Name}: expected a batch of at least one row, got batch={batch} (input [{string.Join(", ", dims)}]).", nameof(input));
        }

        if (batch * Math.Max(shape.InputSize, Gates * shape.HiddenSize) > Array.MaxLength)
        {
            throw new ArgumentException($"{Name}: input [{string.Join(", ", dims)}] is too large for one call.", nameof(input));
        }

        return ((int)batch, dims.Length == 2);
    }

    /// <summary>A cell state's values, checked against <c>[batch, hidden_size]</c> (or <c>[hidden_size]</c> unbatched).</summary>
    public float[] CellStateValues(Tensor? state, string what, int batch, bool batched)
    {
        if (state is null)
        {
            return [];
        }

        long[] expected = batched ? [batch, Shape.HiddenSize] : [Shape.HiddenSize];
        if (state.dtype != ScalarType.Float32 || !state.shape.AsSpan().SequenceEqual(expected))
        {
            throw new ArgumentException($"{Name}: expected {what} of Float32 [{string.Join(", ", expected)}] ({(batched ? "[batch, hidden_size]" : "[hidden_size]")}), got {state.dtype} [{string.Join(", ", state.shape)}].", what);
        }

        return TensorInterop.ToArray(state, out _);
    }

    /// <summary>
    /// Runs the recurrence over span input in the shape's layout (<c>[T, N, in]</c>, or <c>[N, T, in]</c> when
    /// batch_first), writing output (same layout, <c>OutputSize</c> features) and the final states
    /// <c>[Cells, N, H]</c>. Empty initial states mean zeros. <paramref name="c0"/>/<paramref name="cN"/> are for
    /// the LSTM only.
    /// </summary>
    public void Forward(ReadOnlySpan<float> input, int sequenceLength, int batch, ReadOnlySpan<float> h0, ReadOnlySpan<float> c0, Span<float> output, Span<float> hN, Span<float> cN)
    {
        RecurrentShape shape = Shape;
        CheckSizes(input.Length, sequenceLength, batch, h0.Length, c0.Length, output.Length, hN.Length, cN.Length);
        if (_finiteInputsOnly)
        {
            CheckFinite(input, "input", shape.InputSize, sequenceLength, batch, byStep: true);
            CheckFinite(h0, "h_0", shape.HiddenSize, shape.Cells, batch, byStep: false);
            CheckFinite(c0, "c_0", shape.HiddenSize, shape.Cells, batch, byStep: false);
        }

        int hidden = shape.HiddenSize;
        int gateWidth = Gates * hidden;
        int rows = sequenceLength * batch;
        int stateLength = batch * hidden;
        RecurrentScratch scratch = RecurrentScratch.Current;
        Span<float> projected = scratch.Projected(rows * gateWidth);
        Span<float> hiddenGates = scratch.HiddenGates(batch * gateWidth);
        Span<float> h = scratch.Hidden(stateLength);
        Span<float> c = Kind == RecurrentCellKind.Lstm ? scratch.Cell(stateLength) : default;

        ReadOnlySpan<float> layerInput = input;
        for (int layer = 0; layer < shape.NumLayers; layer++)
        {
            Span<float> layerOutput = layer == shape.NumLayers - 1 ? output : scratch.LayerOutput(layer % 2, rows * shape.OutputSize);
            for (int direction = 0; direction < shape.Directions; direction++)
            {
                int cell = (layer * shape.Directions) + direction;
                _inputProjections[cell].Forward(layerInput, rows, projected);
                int stateOffset = cell * stateLength;
                if (h0.IsEmpty)
                {
                    h.Clear();
                }
                else
                {
                    h0.Slice(stateOffset, stateLength).CopyTo(h);
                }

                if (Kind == RecurrentCellKind.Lstm)
                {
                    if (c0.IsEmpty)
                    {
                        c.Clear();
                    }
                    else
                    {
                        c0.Slice(stateOffset, stateLength).CopyTo(c);
                    }
                }

                TProjection hiddenProjection = _hiddenProjections[cell];
                for (int step = 0; step < sequenceLength; step++)
                {
                    int t = direction == 1 ? sequenceLength - 1 - step : step;
                    hiddenProjection.Forward(h, batch, hiddenGates);
                    for (int n = 0; n < batch; n++)
                    {
                        int row = shape.BatchFirst ? (n * sequenceLength) + t : (t * batch) + n;
                        ReadOnlySpan<float> inputGates = projected.Slice(row * gateWidth, gateWidth);
                        ReadOnlySpan<float> stepHiddenGates = hiddenGates.Slice(n * gateWidth, gateWidth);
                        Span<float> hRow = h.Slice(n * hidden, hidden);
                        if (Kind == RecurrentCellKind.Lstm)
                        {
                            RecurrentGatesKernel.Lstm(inputGates, stepHiddenGates, hRow, c.Slice(n * hidden, hidden));
                        }
                        else if (Kind == RecurrentCellKind.Gru)
                        {
                            RecurrentGatesKernel.Gru(inputGates, stepHiddenGates, hRow);
                        }
                        else
                        {
                            RecurrentGatesKernel.Elman(inputGates, stepHiddenGates, hRow, Kind == RecurrentCellKind.RnnRelu);
                        }

                        hRow.CopyTo(layerOutput.Slice((row * shape.OutputSize) + (direction * hidden), hidden));
                    }
                }

                h.CopyTo(hN.Slice(stateOffset, stateLength));
                if (Kind == RecurrentCellKind.Lstm)
                {
                    c.CopyTo(cN.Slice(stateOffset, stateLength));
                }
            }

            layerInput = layerOutput;
        }
    }

    /// <summary>
    /// Checks a float32 tensor input and the optional states, and returns (T, N, batched). Rank 3 is batched
    /// (<c>[T, N, in]</c> or <c>[N, T, in]</c>), rank 2 unbatched <c>[T, in]</c> as in PyTorch.
    /// </summary>
    public (int SequenceLength, int Batch, bool Batched) CheckTensorInput(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        RecurrentShape shape = Shape;
        if (input.dtype != ScalarType.Float32)
        {
            throw new ArgumentException($"{Name}: expected a Float32 input, got {input.dtype} [{string.Join(", ", input.shape)}].", nameof(input));
        }

        long[] dims = input.shape;
        string layout = shape.BatchFirst ? "[batch, seq_len, input_size]" : "[seq_len, batch, input_size]";
        if ((dims.Length != 3 && dims.Length != 2) || dims[^1] != shape.InputSize)
        {
            throw new ArgumentException($"{Name}: expected input {layout} (or unbatched [seq_len, input_size]) with input_size={shape.InputSize}, got [{string.Join(", ", dims)}].", nameof(input));
        }

        bool batched = dims.Length == 3;
        long sequenceLength = batched && shape.BatchFirst ? dims[1] : dims[0];
        long batch = !batched ? 1 : shape.BatchFirst ? dims[0] : dims[1];
        if (sequenceLength < 1)
        {
            throw new ArgumentException($"{Name}: expected a sequence of at least one step, got seq_len={sequenceLength} (input [{string.Join(", ", dims)}], {layout}).", nameof(input));
        }

        if (batch < 1)
        {
            throw new ArgumentException($"{Name}: expected a batch of at least one sequence, got batch={batch} (input [{string.Join(", ", dims)}], {layout}).", nameof(input));
        }

        if (sequenceLength * batch * Math.Max(shape.InputSize, Gates * shape.OutputSize) > Array.MaxLength)
        {
            throw new ArgumentException($"{Name}: input [{string.Join(", ", dims)}] is too large for one call.", nameof(input));
        }

        return ((int)sequenceLength, (int)batch, batched);
    }

    /// <summary>The values of an initial state tensor, checked against <c>[Cells, N, H]</c> (or <c>[Cells, H]</c> unbatched).</summary>
    public float[] StateValues(Tensor? state, string what, int batch, bool batched)
    {
        if (state is null)
        {
            return [];
        }

        RecurrentShape shape = Shape;
        long[] expected = batched ? [shape.Cells, batch, shape.HiddenSize] : [shape.Cells, shape.HiddenSize];
        if (state.dtype != ScalarType.Float32 || !state.shape.AsSpan().SequenceEqual(expected))
        {
            throw new ArgumentException(
                $"{Name}: expected {what} of Float32 [{string.Join(", ", expected)}] ([num_layers * num_directions, {(batched ? "batch, " : string.Empty)}hidden_size] with {shape.Describe()}), " +
                $"got {state.dtype} [{string.Join(", ", state.shape)}].", what);
        }

        return TensorInterop.ToArray(state, out _);
    }

    private void CheckSizes(int inputLength, int sequenceLength, int batch, int h0Length, int c0Length, int outputLength, int hNLength, int cNLength)
    {
        RecurrentShape shape = Shape;
        if (sequenceLength < 1)
        {
            throw new ArgumentException($"{Name}: expected a sequence of at least one step, got seq_len={sequenceLength}.", nameof(sequenceLength));
        }

        if (batch < 1)
        {
            throw new ArgumentException($"{Name}: expected a batch of at least one sequence, got batch={batch}.", nameof(batch));
        }

        long rows = (long)sequenceLength * batch;
        if (rows * Math.Max(shape.InputSize, Gates * shape.OutputSize) > Array.MaxLength)
        {
            throw new ArgumentException($"{Name}: seq_len={sequenceLength} × batch={batch} is too large for one call.", nameof(sequenceLength));
        }

        // Messages are built only on failure: this runs on every call, which allocates nothing.
        Expect(inputLength, rows * shape.InputSize, "input", sequenceLength, batch);
        Expect(outputLength, rows * shape.OutputSize, "output", sequenceLength, batch);
        long stateLength = (long)shape.Cells * batch * shape.HiddenSize;
        if (h0Length != 0)
        {
            Expect(h0Length, stateLength, "h_0", sequenceLength, batch);
        }

        Expect(hNLength, stateLength, "h_n", sequenceLength, batch);
        if (Kind == RecurrentCellKind.Lstm)
        {
            if (c0Length != 0)
            {
                Expect(c0Length, stateLength, "c_0", sequenceLength, batch);
            }

            if (h0Length == 0 != (c0Length == 0))
            {
                throw new ArgumentException($"{Name}: expected both h_0 and c_0 or neither, got {(h0Length == 0 ? "c_0 only" : "h_0 only")}.", nameof(c0Length));
            }

            Expect(cNLength, stateLength, "c_n", sequenceLength, batch);
        }
        else if (c0Length != 0 || cNLength != 0)
        {
            throw new ArgumentException($"{Name}: only an LSTM has a cell state, got c_0 or c_n.");
        }
    }

    private void Expect(long actual, long expected, string what, int sequenceLength, int batch)
    {
        if (actual == expected)
        {
            return;
        }

        RecurrentShape shape = Shape;
        string sequenceLayout = shape.BatchFirst ? "[batch, seq_len, features]" : "[seq_len, batch, features]";
        string layout = what switch
        {
            "input" => $"{sequenceLayout} with seq_len={sequenceLength}, batch={batch}, input_size={shape.InputSize}",
            "output" => $"{sequenceLayout} with seq_len={sequenceLength}, batch={batch}, {shape.Directions} × hidden_size={shape.HiddenSize} features",
            _ => $"[num_layers * num_directions={shape.Cells}, batch={batch}, hidden_size={shape.HiddenSize}]{(what.EndsWith('0') ? " (or none for zeros)" : string.Empty)}",
        };
        throw new ArgumentException($"{Name}: expected {what} of {expected} values ({layout}), got {actual}.", what);
    }

    private void CheckFinite(ReadOnlySpan<float> values, string what, int features, int outer, int batch, bool byStep)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                int vector = i / features;
                string where;
                if (byStep)
                {
                    (int t, int n) = Shape.BatchFirst ? (vector % outer, vector / outer) : (vector / batch, vector % batch);
                    where = $"step {t}, batch {n}";
                }
                else
                {
                    where = $"{Shape.CellSuffix(vector / batch)}, batch {vector % batch}";
                }

                throw new ArgumentException(
                    $"{Name}: {what} value {values[i].ToString(CultureInfo.InvariantCulture)} at {where}, feature {i % features} is not finite; a dynamic layer's scale comes from its inputs' min and max, which must be finite.",
                    what);
            }
        }
    }
}

/// <summary>
/// The working memory of <see cref="DynamicRecurrentCore{TProjection}.Forward"/>, one per thread (as <see cref="LayerScratch"/>):
/// arrays grow to the largest call and are kept, so a steady-state call allocates nothing. A recurrent forward calls
/// no user code and no other recurrent layer, so one thread's uses never overlap.
/// </summary>
internal sealed class RecurrentScratch
{
    [ThreadStatic]
    private static RecurrentScratch? t_current;

    private float[] _projected = [];
    private float[] _hiddenGates = [];
    private float[] _hidden = [];
    private float[] _cell = [];
    private float[] _layerOutputEven = [];
    private float[] _layerOutputOdd = [];

    private RecurrentScratch()
    {
    }

    public static RecurrentScratch Current => t_current ??= new RecurrentScratch();

    public Span<float> Projected(int length) => Grow(ref _projected, length);

    public Span<float> HiddenGates(int length) => Grow(ref _hiddenGates, length);

    public Span<float> Hidden(int length) => Grow(ref _hidden, length);

    public Span<float> Cell(int length) => Grow(ref _cell, length);

    /// <summary>Two buffers alternate between layers: layer k reads layer k − 1's while writing its own.</summary>
    public Span<float> LayerOutput(int parity, int length) => parity == 0 ? Grow(ref _layerOutputEven, length) : Grow(ref _layerOutputOdd, length);

    private static Span<float> Grow(ref float[] array, int length)
    {
        if (array.Length < length)
        {
            array = new float[length];
        }

        return array.AsSpan(0, length);
    }
}
