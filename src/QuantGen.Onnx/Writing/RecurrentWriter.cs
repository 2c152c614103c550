using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Onnx.Protobuf;
using static QuantGen.Onnx.Writing.OnnxGraphBuilder;

namespace QuantGen.Onnx.Writing;

/// <summary>
/// The recurrent float ops, one ONNX operator per layer: a dynamic LSTM (<see cref="FloatOpKind.DynamicRecurrent"/>) as
/// <c>com.microsoft:DynamicQuantizeLSTM</c> on its int8 weights in the int8 forms and ONNX's <c>LSTM</c> on the
/// dequantized weights in the float form; a float16-weight LSTM or GRU (<see cref="FloatOpKind.Float16Recurrent"/>) as
/// ONNX's <c>LSTM</c> / <c>GRU</c> on its float16 weights, <c>Cast</c> to float, in every form (it has no integer
/// arithmetic). The gate order, the stacking of layers and directions, batch_first, unbatched input and initial states
/// are one code path for all three.
/// </summary>
internal sealed partial class ModelWriter
{
    /// <summary>ONNX's LSTM gates i, o, f, c as PyTorch's gate blocks (PyTorch stores i, f, g, o; c is PyTorch's g).</summary>
    private static readonly int[] TorchLstmGateOfOnnxGate = [0, 3, 1, 2];

    /// <summary>ONNX's GRU gates z, r, h as PyTorch's gate blocks (PyTorch stores r, z, n; h is PyTorch's n).</summary>
    private static readonly int[] TorchGruGateOfOnnxGate = [1, 0, 2];

    /// <summary>The recurrent calls written so far (one per call, however many of its elements the model reads).</summary>
    private readonly List<RecurrentCall> _recurrentCalls = [];

    /// <summary>How a recurrent layer's weights are written.</summary>
    private enum RecurrentWeights
    {
        /// <summary>int8 with scales, DynamicQuantizeLSTM's layout <c>[D, input, gates · hidden]</c>.</summary>
        Int8,

        /// <summary>float32 <c>(q − zp) · scale</c>, ONNX LSTM's layout <c>[D, gates · hidden, input]</c>.</summary>
        Dequantized,

        /// <summary>float16 initializers in ONNX LSTM's / GRU's layout, each Cast to float.</summary>
        Float16,
    }

    private static bool IsRecurrent(FloatOp op) => op.Kind is FloatOpKind.DynamicRecurrent or FloatOpKind.Float16Recurrent;

    private RecurrentWeights WeightsOf(FloatOp op) =>
        op.Kind == FloatOpKind.Float16Recurrent ? RecurrentWeights.Float16 : Quantized ? RecurrentWeights.Int8 : RecurrentWeights.Dequantized;

    /// <summary>The recurrent call an element belongs to when one of its elements was written already: the same layer on the same values.</summary>
    private RecurrentCall? FindRecurrentCall(GraphNode node, FloatOp op) =>
        _recurrentCalls.Find(call => call.Inputs.SequenceEqual(node.Inputs) && SameLayer(call.Op, op));

    private static bool SameLayer(FloatOp a, FloatOp b) =>
        a.Kind == b.Kind && a.Text == b.Text && a.Ints.AsSpan(1).SequenceEqual(b.Ints.AsSpan(1)) && a.Tensors.Count == b.Tensors.Count &&
        a.Tensors.Zip(b.Tensors).All(p => p.First.Name == p.Second.Name && p.First.Values.AsSpan().SequenceEqual(p.Second.Values));

    /// <summary>
    /// One element (0 output, 1 h_n, 2 an LSTM's c_n) of a recurrent call. The first element of a call writes the layers
    /// (<see cref="WriteRecurrentLayers"/>); the elements a model reads of the same call are separate float ops in
    /// QuantGen's file but share that one set of operators here, as the int8 model runs the layer once.
    /// </summary>
    private string WriteRecurrentElement(GraphNode node, FloatOp op, string[] x, int rank)
    {
        if (rank is not (2 or 3))
        {
            throw new NotSupportedException($"{Model}.{node.Name}: an {op.Text} reads [seq_len, batch, input_size] (or batch first, or unbatched [seq_len, input_size]); '{node.Inputs[0]}' has rank {rank}.");
        }

        RecurrentCall? call = FindRecurrentCall(node, op);
        if (call is null)
        {
            call = WriteRecurrentLayers(node, op, x, batched: rank == 3);
            _recurrentCalls.Add(call);
        }

        int element = checked((int)op.Ints[0]);
        return call.Elements[element] ??= WriteRecurrentResult(call, element);
    }

    /// <summary>
    /// The layers, one ONNX operator each (ONNX's LSTM and GRU are one layer, as aten's stacked layers are one
    /// <c>FullLayer</c> each). All take time-major input <c>[seq_len, batch, features]</c>: a batch-first input is
    /// transposed before the first layer and an unbatched one gets a batch of 1. A dynamic LSTM's layers quantize their
    /// input on their own, over the whole sequence, and the hidden state at every step, as PyTorch's dynamic LSTM does;
    /// ONNX Runtime chooses those qparams with its own formula (uint8 over the full 0..255, no reduce_range), so it rounds
    /// activations differently from QuantGen (docs/onnx-export.md). A float16-weight layer quantizes nothing.
    /// </summary>
    private RecurrentCall WriteRecurrentLayers(GraphNode node, FloatOp op, string[] x, bool batched)
    {
        string name = node.Name;
        long[] ints = op.Ints;
        int hidden = checked((int)ints[2]), layers = checked((int)ints[3]);
        bool bidirectional = ints[4] == 1, batchFirst = ints[5] == 1, gru = op.Text == "GRU";
        int directions = bidirectional ? 2 : 1;
        RecurrentWeights weights = WeightsOf(op);
        string Axes(params long[] axes) => _builder.Initializer(name + ".axes", Int64([axes.Length], axes));
        string Unsqueeze1(string value, string what) => _builder.Node("Unsqueeze", $"{name}/Unsqueeze_{what}", [value, Axes(1)], $"{name}/{what}_batched");

        // ONNX's LSTM and GRU are time-major: [seq_len, batch, input_size].
        string sequence = !batched ? Unsqueeze1(x[0], "input")
            : batchFirst ? _builder.Node("Transpose", name + "/TransposeInput", [x[0]], name + "/input_time_major", Ints("perm", 1, 0, 2))
            : x[0];

        // The initial states follow the sequence when forward gave them: h0 (and an LSTM's c0).
        string? h0 = x.Length >= 2 ? (batched ? x[1] : Unsqueeze1(x[1], "h0")) : null;
        string? c0 = x.Length == 3 ? (batched ? x[2] : Unsqueeze1(x[2], "c0")) : null;

        var finalHidden = new List<string>(layers);
        var finalCell = new List<string>(layers);
        for (int layer = 0; layer < layers; layer++)
        {
            string prefix = $"{name}.l{layer}";

            // Layer k's states are rows k·D .. k·D + D − 1 of the states PyTorch takes for all layers.
            string? StatesOfLayer(string? states, string what) => states is null || layers == 1 ? states
                : _builder.Node("Slice", $"{prefix}/Slice_{what}", [states, Axes(layer * directions), Axes((layer + 1) * directions), Axes(0)], $"{prefix}/{what}");
            string[] operands = RecurrentOperands(op, layer, prefix, weights);
            AttributeProto[] attributes = [Int("hidden_size", hidden), String("direction", bidirectional ? "bidirectional" : "forward")];
            string[] y;
            if (weights == RecurrentWeights.Int8)
            {
                string[] inputs = [sequence, operands[0], operands[1], operands[2], "", StatesOfLayer(h0, "h0") ?? "", StatesOfLayer(c0, "c0") ?? "", "", operands[3], operands[4], operands[5], operands[6]];
                y = _builder.ContribNodeWithOutputs("DynamicQuantizeLSTM", prefix + "/DynamicQuantizeLSTM", inputs, [prefix + "/Y", prefix + "/Y_h", prefix + "/Y_c"], attributes);
            }
            else if (gru)
            {
                // linear_before_reset = 1 is PyTorch's n = tanh(W_in·x + b_in + r ⊙ (W_hn·h + b_hn)); ONNX's default applies r before R.
                string[] inputs = [sequence, operands[0], operands[1], operands[2], "", StatesOfLayer(h0, "h0") ?? ""];
                y = _builder.NodeWithOutputs("GRU", prefix + "/GRU", inputs, [prefix + "/Y", prefix + "/Y_h"], [.. attributes, Int("linear_before_reset", 1)]);
            }
            else
            {
                string[] inputs = [sequence, operands[0], operands[1], operands[2], "", StatesOfLayer(h0, "h0") ?? "", StatesOfLayer(c0, "c0") ?? ""];
                y = _builder.NodeWithOutputs("LSTM", prefix + "/LSTM", inputs, [prefix + "/Y", prefix + "/Y_h", prefix + "/Y_c"], attributes);
            }

            // Y is [seq_len, directions, batch, hidden]; the next layer and PyTorch's output read [seq_len, batch, directions · hidden].
            sequence = directions == 1
                ? _builder.Node("Squeeze", prefix + "/SqueezeDirections", [y[0], Axes(1)], prefix + "/output")
                : _builder.Node("Reshape", prefix + "/ReshapeDirections",
                    [_builder.Node("Transpose", prefix + "/TransposeDirections", [y[0]], prefix + "/output_by_batch", Ints("perm", 0, 2, 1, 3)), _builder.Initializer(prefix + ".output_shape", Int64([3], [0, 0, directions * hidden]))],
                    prefix + "/output");
            finalHidden.Add(y[1]);
            if (!gru)
            {
                finalCell.Add(y[2]);
            }
        }

        return new RecurrentCall(op, [.. node.Inputs], name, sequence, finalHidden, finalCell, batched, batchFirst);
    }

    /// <summary>
    /// A layer's W, R, B (and for DynamicQuantizeLSTM W_scale, W_zero_point, R_scale, R_zero_point) as initializers,
    /// directions stacked, the gates in ONNX's order: an LSTM's i, o, f, c where PyTorch has i, f, g, o; a GRU's z, r, h
    /// where PyTorch has r, z, n. DynamicQuantizeLSTM reads W <c>[directions, input_size, 4·hidden]</c> and R
    /// <c>[directions, hidden, 4·hidden]</c> (each column a gate row of PyTorch's weight, the int8 values as they are)
    /// with one scale per direction or per column; ONNX's LSTM and GRU read W <c>[directions, gates·hidden,
    /// input_size]</c>, PyTorch's layout: dequantized, or the float16 values behind a Cast. B is <c>[W_b, R_b]</c> per direction.
    /// </summary>
    private string[] RecurrentOperands(FloatOp op, int layer, string prefix, RecurrentWeights weights)
    {
        long[] ints = op.Ints;
        int hidden = checked((int)ints[2]);
        int directions = ints[4] == 1 ? 2 : 1;
        bool dynamic = op.Kind == FloatOpKind.DynamicRecurrent;
        bool perChannel = dynamic && ints[7] == 1;
        bool hasBias = (dynamic ? ints[8] : ints[6]) == 1;
        int[] torchGateOfOnnxGate = op.Text == "GRU" ? TorchGruGateOfOnnxGate : TorchLstmGateOfOnnxGate;
        int gates = torchGateOfOnnxGate.Length * hidden;
        int layerInput = layer == 0 ? checked((int)ints[1]) : directions * hidden;
        var w = new float[directions * layerInput * gates];
        var r = new float[directions * hidden * gates];
        var wScale = new float[directions * (perChannel ? gates : 1)];
        var rScale = new float[wScale.Length];
        var bias = new float[directions * 2 * gates];
        for (int d = 0; d < directions; d++)
        {
            string suffix = $"l{layer}{(d == 1 ? "_reverse" : "")}";
            for (int column = 0; column < gates; column++)
            {
                // Column (gate, unit) of ONNX's layout is row (PyTorch's gate, unit) of PyTorch's weights.
                int row = (torchGateOfOnnxGate[column / hidden] * hidden) + (column % hidden);
                Place(op, "weight_ih_" + suffix, row, column, layerInput, d, w, wScale, weights);
                Place(op, "weight_hh_" + suffix, row, column, hidden, d, r, rScale, weights);
                if (hasBias)
                {
                    bias[(d * 2 * gates) + column] = op.Tensor("bias_ih_" + suffix)!.Values[row];
                    bias[(d * 2 * gates) + gates + column] = op.Tensor("bias_hh_" + suffix)!.Values[row];
                }
            }
        }

        string b = hasBias ? _builder.Initializer(prefix + ".B", Float([directions, 2 * gates], bias)) : "";
        switch (weights)
        {
            case RecurrentWeights.Dequantized:
                return
                [
                    _builder.Initializer(prefix + ".W", Float([directions, gates, layerInput], w)),
                    _builder.Initializer(prefix + ".R", Float([directions, gates, hidden], r)),
                    b,
                ];
            case RecurrentWeights.Float16:
            {
                // The values are float16 widened (exactly) to float32: back to float16 they are the layer's own bits.
                AttributeProto toFloat = Int("to", (long)TensorProto.Types.DataType.Float);
                string Widened(string what, long[] dims, float[] values) => _builder.Node(
                    "Cast", $"{prefix}/Cast{what}", [_builder.Initializer($"{prefix}.{what}_float16", Float16(dims, Array.ConvertAll(values, v => (Half)v)))], $"{prefix}/{what}", toFloat);
                return [Widened("W", [directions, gates, layerInput], w), Widened("R", [directions, gates, hidden], r), b];
            }

            default:
            {
                long[] scaleDims = perChannel ? [directions, gates] : [directions];
                return
                [
                    _builder.Initializer(prefix + ".W_quantized", Int8([directions, layerInput, gates], Array.ConvertAll(w, v => (sbyte)v))),
                    _builder.Initializer(prefix + ".R_quantized", Int8([directions, hidden, gates], Array.ConvertAll(r, v => (sbyte)v))),
                    b,
                    _builder.Initializer(prefix + ".W_scale", Float(scaleDims, wScale)),
                    _builder.Initializer(prefix + ".W_zero_point", Int8(scaleDims, new sbyte[wScale.Length])),
                    _builder.Initializer(prefix + ".R_scale", Float(scaleDims, rScale)),
                    _builder.Initializer(prefix + ".R_zero_point", Int8(scaleDims, new sbyte[rScale.Length])),
                ];
            }
        }
    }

    /// <summary>
    /// Row <paramref name="row"/> of a cell's weight into column <paramref name="column"/> of direction <paramref name="direction"/>:
    /// int8 values into <c>[D, columns of input, gates·hidden]</c> with the row's scale (DynamicQuantizeLSTM), or
    /// dequantized or float16 values into <c>[D, gates·hidden, columns of input]</c> (ONNX's LSTM and GRU).
    /// </summary>
    private static void Place(FloatOp op, string weight, int row, int column, int inputs, int direction, float[] target, float[] scales, RecurrentWeights weights)
    {
        FloatOpTensor tensor = op.Tensor(weight)!;
        float[] values = tensor.Values;
        int gateCount = tensor.Shape[0];
        int directionBase = direction * inputs * gateCount;
        if (weights == RecurrentWeights.Float16)
        {
            Array.Copy(values, row * inputs, target, directionBase + (column * inputs), inputs);
            return;
        }

        float[] rowScales = op.Tensor(weight + "_scale")!.Values;
        float[] zeroPoints = op.Tensor(weight + "_zero_point")!.Values;
        int c = rowScales.Length == 1 ? 0 : row;
        for (int k = 0; k < inputs; k++)
        {
            float q = values[(row * inputs) + k];
            if (weights == RecurrentWeights.Int8)
            {
                target[directionBase + (k * gateCount) + column] = q;
            }
            else
            {
                target[directionBase + (column * inputs) + k] = (q - zeroPoints[c]) * rowScales[c];
            }
        }

        scales[rowScales.Length == 1 ? direction : (direction * gateCount) + column] = rowScales[c];
    }

    /// <summary>An element of a written recurrent call in PyTorch's shapes: output <c>[seq_len, batch, D·hidden]</c> (batch first when the module is), h_n or c_n <c>[layers · D, batch, hidden]</c>; unbatched without the batch.</summary>
    private string WriteRecurrentResult(RecurrentCall call, int element)
    {
        string name = call.Name;
        string BatchAxis() => _builder.Initializer(name + ".batch_axis", Int64([1], [1]));
        if (element == 0)
        {
            return !call.Batched ? _builder.Node("Squeeze", name + "/SqueezeOutput", [call.Output, BatchAxis()], name + "/output")
                : call.BatchFirst ? _builder.Node("Transpose", name + "/TransposeOutput", [call.Output], name + "/output_batch_first", Ints("perm", 1, 0, 2))
                : call.Output;
        }

        List<string> states = element == 1 ? call.FinalHidden : call.FinalCell;
        string what = element == 1 ? "h_n" : "c_n";
        string result = states.Count == 1 ? states[0] : _builder.Node("Concat", $"{name}/Concat_{what}", states, $"{name}/{what}", Int("axis", 0));
        return call.Batched ? result : _builder.Node("Squeeze", $"{name}/Squeeze_{what}", [result, BatchAxis()], $"{name}/{what}_unbatched");
    }

    /// <summary>
    /// One recurrent call as written: the op and the graph values it reads, the last layer's time-major output, every
    /// layer's final states (an LSTM's cell states too), and the ONNX value of each element once a reader asked for it.
    /// </summary>
    private sealed record RecurrentCall(FloatOp Op, string[] Inputs, string Name, string Output, List<string> FinalHidden, List<string> FinalCell, bool Batched, bool BatchFirst)
    {
        /// <summary>The ONNX value of element 0 (output), 1 (h_n), 2 (c_n), once written.</summary>
        public string?[] Elements { get; } = new string?[3];
    }
}
