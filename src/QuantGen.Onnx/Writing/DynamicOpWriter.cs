using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Onnx.Protobuf;
using static QuantGen.Onnx.Writing.OnnxGraphBuilder;

namespace QuantGen.Onnx.Writing;

/// <summary>
/// The dynamically quantized and weight-only float ops (<see cref="FloatOpKind.DynamicLinear"/> in float form,
/// <see cref="FloatOpKind.DynamicRecurrent"/> LSTMs, <see cref="FloatOpKind.WeightOnlyEmbedding"/>): in the int8 forms
/// ONNX Runtime's integer operators on the layer's own int8 weights, in the float form ONNX's float operators on the
/// dequantized weights (the fp32 peer of the same model).
/// </summary>
internal sealed partial class ModelWriter
{
    /// <summary>ONNX's LSTM gates i, o, f, c as PyTorch's gate blocks (PyTorch stores i, f, g, o; c is PyTorch's g).</summary>
    private static readonly int[] TorchGateOfOnnxGate = [0, 3, 1, 2];

    /// <summary>The LSTM calls written so far (one per call, however many of its elements the model reads).</summary>
    private readonly List<LstmCall> _lstmCalls = [];

    /// <summary>Whether <paramref name="node"/> reads the model's input and the model takes token indices.</summary>
    private bool ReadsTheTokenInput(GraphNode node) =>
        _tokenInput && node.Inputs.Count == 1 && _graph.Nodes.FirstOrDefault(n => n.Op == GraphOp.Quantize)?.Output == node.Inputs[0];

    /// <summary>The first weight of a dynamic LSTM whose zero point is not 0, or null when all are 0.</summary>
    private static string? NonZeroWeightZeroPoint(FloatOp op) =>
        op.Tensors.FirstOrDefault(t => t.Name.EndsWith("_zero_point", StringComparison.Ordinal) && t.Values.Any(z => z != 0f))?.Name[..^"_zero_point".Length];

    /// <summary>
    /// A dynamic Linear in float form: ONNX's float Gemm (rank 2) or MatMul + Add on the dequantized weights
    /// <c>(q − zp_c) · s_c</c>, the values the int8 layer multiplies by.
    /// </summary>
    private string WriteDequantizedLinear(FloatOp op, string x, string name, int rank, Func<string, IEnumerable<string>, AttributeProto[], string> node)
    {
        FloatOpTensor w = op.Tensor("weight")!;
        int outFeatures = w.Shape[0], inFeatures = w.Shape[1];
        float[] scales = op.Tensor("weight_scale")!.Values, zeroPoints = op.Tensor("weight_zero_point")!.Values;
        var dequantized = new float[w.Values.Length];
        for (int o = 0; o < outFeatures; o++)
        {
            int c = scales.Length == 1 ? 0 : o;
            for (int i = 0; i < inFeatures; i++)
            {
                dequantized[(o * inFeatures) + i] = (w.Values[(o * inFeatures) + i] - zeroPoints[c]) * scales[c];
            }
        }

        string? bias = op.Tensor("bias") is { } b ? _builder.Initializer(name + ".bias", Float([b.Values.Length], b.Values)) : null;
        if (rank == 2)
        {
            string weight = _builder.Initializer(name + ".weight", Float([outFeatures, inFeatures], dequantized));
            return node("Gemm", bias is null ? [x, weight] : [x, weight, bias], [Float("alpha", 1f), Float("beta", 1f), Int("transB", 1)]);
        }

        string transposed = _builder.Initializer(name + ".weight_t", Float([inFeatures, outFeatures], Transpose(dequantized, outFeatures, inFeatures)));
        string y = node("MatMul", [x, transposed], []);
        return bias is null ? y : _builder.Node("Add", name + "/AddBias", [y, bias], name + "/biased");
    }

    /// <summary>
    /// A weight-only Embedding. Int8 forms: the 8-bit rows stay 8-bit in the file; Gather picks each index's row, its scale
    /// and its bias, and <c>q · scale + bias</c> is computed in float64 and rounded to float32 once — the float64
    /// product of a float32 scale and an 8-bit value is exact, so this is QuantGen's <c>fma(scale, q, bias)</c>
    /// (docs/numerics.md §9) to the bit, but for a float64 sum that lands exactly on a float32 rounding tie (then 1 ulp).
    /// In float32 the product would be rounded before the add, which can lose the low bits of a result near zero.
    /// Float form: Gather on the table dequantized with that very fma.
    /// </summary>
    private string WriteWeightOnlyEmbedding(FloatOp op, string indices, string name, Func<string, IEnumerable<string>, AttributeProto[], string> node)
    {
        FloatOpTensor rows = op.Tensor("rows")!;
        float[] scale = op.Tensor("scale")!.Values, bias = op.Tensor("bias")!.Values;
        int count = rows.Shape[0], dim = rows.Shape[1];
        if (!Quantized)
        {
            var table = new float[rows.Values.Length];
            for (int r = 0; r < count; r++)
            {
                for (int j = 0; j < dim; j++)
                {
                    table[(r * dim) + j] = MathF.FusedMultiplyAdd(scale[r], rows.Values[(r * dim) + j], bias[r]);
                }
            }

            return node("Gather", [_builder.Initializer(name + ".weight", Float([count, dim], table)), indices], [Int("axis", 0)]);
        }

        AttributeProto toDouble = Int("to", (long)TensorProto.Types.DataType.Double);
        string values = _builder.Initializer(name + ".rows", UInt8([count, dim], Array.ConvertAll(rows.Values, v => (byte)v)));

        // Scales and biases as [rows, 1]: gathered, they broadcast over each row's values.
        string scales = _builder.Initializer(name + ".scale", Float([count, 1], scale));
        string biases = _builder.Initializer(name + ".bias", Float([count, 1], bias));
        string q = _builder.Node("Cast", name + "/CastRows", [_builder.Node("Gather", name + "/GatherRows", [values, indices], name + "/rows", Int("axis", 0))], name + "/rows_f64", toDouble);
        string s = _builder.Node("Cast", name + "/CastScale", [_builder.Node("Gather", name + "/GatherScale", [scales, indices], name + "/scale", Int("axis", 0))], name + "/scale_f64", toDouble);
        string b = _builder.Node("Cast", name + "/CastBias", [_builder.Node("Gather", name + "/GatherBias", [biases, indices], name + "/bias", Int("axis", 0))], name + "/bias_f64", toDouble);
        string sum = _builder.Node("Add", name + "/Add", [_builder.Node("Mul", name + "/Mul", [q, s], name + "/product"), b], name + "/sum_f64");
        return node("Cast", [sum], [Int("to", (long)TensorProto.Types.DataType.Float)]);
    }

    /// <summary>The LSTM call an element belongs to when one of its elements was written already: the same layer on the same values.</summary>
    private LstmCall? FindLstmCall(GraphNode node, FloatOp op) =>
        _lstmCalls.Find(call => call.Inputs.SequenceEqual(node.Inputs) && SameLayer(call.Op, op));

    private static bool SameLayer(FloatOp a, FloatOp b) =>
        a.Text == b.Text && a.Ints.AsSpan(1).SequenceEqual(b.Ints.AsSpan(1)) && a.Tensors.Count == b.Tensors.Count &&
        a.Tensors.Zip(b.Tensors).All(p => p.First.Name == p.Second.Name && p.First.Values.AsSpan().SequenceEqual(p.Second.Values));

    /// <summary>
    /// One element (0 output, 1 h_n, 2 c_n) of a dynamic LSTM call. The first element of a call writes the layers
    /// (<see cref="WriteLstmLayers"/>); the elements a model reads of the same call are separate float ops in QuantGen's
    /// file but share that one set of operators here, as the int8 model runs the layer once.
    /// </summary>
    private string WriteLstmElement(GraphNode node, FloatOp op, string[] x, int rank)
    {
        if (rank is not (2 or 3))
        {
            throw new NotSupportedException($"{Model}.{node.Name}: an LSTM reads [seq_len, batch, input_size] (or batch first, or unbatched [seq_len, input_size]); '{node.Inputs[0]}' has rank {rank}.");
        }

        LstmCall? call = FindLstmCall(node, op);
        if (call is null)
        {
            call = WriteLstmLayers(node, op, x, batched: rank == 3);
            _lstmCalls.Add(call);
        }

        int element = checked((int)op.Ints[0]);
        return call.Elements[element] ??= WriteLstmResult(call, element);
    }

    /// <summary>
    /// The LSTM's layers, one ONNX operator each (ONNX's LSTM is one layer, as aten's stacked layers are one
    /// <c>FullLayer</c> each): <c>com.microsoft:DynamicQuantizeLSTM</c> in the int8 forms, ONNX's <c>LSTM</c> on the
    /// dequantized weights in the float form. Both take time-major input <c>[seq_len, batch, features]</c>: a batch-first
    /// input is transposed before the first layer and an unbatched one gets a batch of 1. Each layer quantizes its input
    /// on its own, over the whole sequence, and the hidden state at every step, as PyTorch's dynamic LSTM does; ONNX
    /// Runtime chooses those qparams with its own formula (uint8 over the full 0..255, no reduce_range), so it rounds
    /// activations differently from QuantGen (docs/onnx-export.md).
    /// </summary>
    private LstmCall WriteLstmLayers(GraphNode node, FloatOp op, string[] x, bool batched)
    {
        string name = node.Name;
        long[] ints = op.Ints;
        int hidden = checked((int)ints[2]), layers = checked((int)ints[3]);
        bool bidirectional = ints[4] == 1, batchFirst = ints[5] == 1;
        int directions = bidirectional ? 2 : 1;
        string Axes(params long[] axes) => _builder.Initializer(name + ".axes", Int64([axes.Length], axes));
        string Unsqueeze1(string value, string what) => _builder.Node("Unsqueeze", $"{name}/Unsqueeze_{what}", [value, Axes(1)], $"{name}/{what}_batched");

        // ONNX's LSTM is time-major: [seq_len, batch, input_size].
        string sequence = !batched ? Unsqueeze1(x[0], "input")
            : batchFirst ? _builder.Node("Transpose", name + "/TransposeInput", [x[0]], name + "/input_time_major", Ints("perm", 1, 0, 2))
            : x[0];
        string? h0 = x.Length == 3 ? (batched ? x[1] : Unsqueeze1(x[1], "h0")) : null;
        string? c0 = x.Length == 3 ? (batched ? x[2] : Unsqueeze1(x[2], "c0")) : null;

        var finalHidden = new List<string>(layers);
        var finalCell = new List<string>(layers);
        for (int layer = 0; layer < layers; layer++)
        {
            string prefix = $"{name}.l{layer}";

            // Layer k's (h0, c0) are rows k·D .. k·D + D − 1 of the states PyTorch takes for all layers.
            string? StatesOfLayer(string? states, string what) => states is null || layers == 1 ? states
                : _builder.Node("Slice", $"{prefix}/Slice_{what}", [states, Axes(layer * directions), Axes((layer + 1) * directions), Axes(0)], $"{prefix}/{what}");
            string[] operands = LstmOperands(op, layer, prefix, Quantized);
            string[] outputs = [prefix + "/Y", prefix + "/Y_h", prefix + "/Y_c"];
            string[] inputs = Quantized
                ? [sequence, operands[0], operands[1], operands[2], "", StatesOfLayer(h0, "h0") ?? "", StatesOfLayer(c0, "c0") ?? "", "", operands[3], operands[4], operands[5], operands[6]]
                : [sequence, operands[0], operands[1], operands[2], "", StatesOfLayer(h0, "h0") ?? "", StatesOfLayer(c0, "c0") ?? ""];
            AttributeProto[] attributes = [Int("hidden_size", hidden), String("direction", bidirectional ? "bidirectional" : "forward")];
            string[] y = Quantized
                ? _builder.ContribNodeWithOutputs("DynamicQuantizeLSTM", prefix + "/DynamicQuantizeLSTM", inputs, outputs, attributes)
                : _builder.NodeWithOutputs("LSTM", prefix + "/LSTM", inputs, outputs, attributes);

            // Y is [seq_len, directions, batch, hidden]; the next layer and PyTorch's output read [seq_len, batch, directions · hidden].
            sequence = directions == 1
                ? _builder.Node("Squeeze", prefix + "/SqueezeDirections", [y[0], Axes(1)], prefix + "/output")
                : _builder.Node("Reshape", prefix + "/ReshapeDirections",
                    [_builder.Node("Transpose", prefix + "/TransposeDirections", [y[0]], prefix + "/output_by_batch", Ints("perm", 0, 2, 1, 3)), _builder.Initializer(prefix + ".output_shape", Int64([3], [0, 0, directions * hidden]))],
                    prefix + "/output");
            finalHidden.Add(y[1]);
            finalCell.Add(y[2]);
        }

        return new LstmCall(op, [.. node.Inputs], name, sequence, finalHidden, finalCell, batched, batchFirst);
    }

    /// <summary>
    /// A layer's W, R, B (and in the int8 forms W_scale, W_zero_point, R_scale, R_zero_point) as initializers, directions
    /// stacked. ONNX orders the gates i, o, f, c where PyTorch has i, f, g, o. DynamicQuantizeLSTM reads W
    /// <c>[directions, input_size, 4·hidden]</c> and R <c>[directions, hidden, 4·hidden]</c> (each column a gate row of
    /// PyTorch's weight, the int8 values as they are) with one scale per direction or per column; ONNX's LSTM reads W
    /// <c>[directions, 4·hidden, input_size]</c>, PyTorch's layout, dequantized. B is <c>[W_b, R_b]</c> per direction.
    /// </summary>
    private string[] LstmOperands(FloatOp op, int layer, string prefix, bool quantized)
    {
        long[] ints = op.Ints;
        int hidden = checked((int)ints[2]);
        int directions = ints[4] == 1 ? 2 : 1;
        bool perChannel = ints[7] == 1, hasBias = ints[8] == 1;
        int gates = 4 * hidden;
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
                int row = (TorchGateOfOnnxGate[column / hidden] * hidden) + (column % hidden);
                Place(op, "weight_ih_" + suffix, row, column, layerInput, d, w, wScale, quantized);
                Place(op, "weight_hh_" + suffix, row, column, hidden, d, r, rScale, quantized);
                if (hasBias)
                {
                    bias[(d * 2 * gates) + column] = op.Tensor("bias_ih_" + suffix)!.Values[row];
                    bias[(d * 2 * gates) + gates + column] = op.Tensor("bias_hh_" + suffix)!.Values[row];
                }
            }
        }

        string b = hasBias ? _builder.Initializer(prefix + ".B", Float([directions, 2 * gates], bias)) : "";
        if (!quantized)
        {
            return
            [
                _builder.Initializer(prefix + ".W", Float([directions, gates, layerInput], w)),
                _builder.Initializer(prefix + ".R", Float([directions, gates, hidden], r)),
                b,
            ];
        }

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

    /// <summary>
    /// Row <paramref name="row"/> of a cell's weight into column <paramref name="column"/> of direction <paramref name="direction"/>:
    /// int8 values into <c>[D, columns of input, 4·hidden]</c> with the row's scale (quantized), or dequantized values into
    /// <c>[D, 4·hidden, columns of input]</c> (float).
    /// </summary>
    private static void Place(FloatOp op, string weight, int row, int column, int inputs, int direction, float[] target, float[] scales, bool quantized)
    {
        float[] values = op.Tensor(weight)!.Values;
        float[] rowScales = op.Tensor(weight + "_scale")!.Values;
        float[] zeroPoints = op.Tensor(weight + "_zero_point")!.Values;
        int c = rowScales.Length == 1 ? 0 : row;
        int gateCount = op.Tensor(weight)!.Shape[0];
        int directionBase = direction * inputs * gateCount;
        for (int k = 0; k < inputs; k++)
        {
            float q = values[(row * inputs) + k];
            if (quantized)
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

    /// <summary>An element of a written LSTM call in PyTorch's shapes: output <c>[seq_len, batch, D·hidden]</c> (batch first when the module is), h_n or c_n <c>[layers · D, batch, hidden]</c>; unbatched without the batch.</summary>
    private string WriteLstmResult(LstmCall call, int element)
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
    /// One LSTM call as written: the op and the graph values it reads, the last layer's time-major output, every layer's
    /// final states, and the ONNX value of each element once a reader asked for it.
    /// </summary>
    private sealed record LstmCall(FloatOp Op, string[] Inputs, string Name, string Output, List<string> FinalHidden, List<string> FinalCell, bool Batched, bool BatchFirst)
    {
        /// <summary>The ONNX value of element 0 (output), 1 (h_n), 2 (c_n), once written.</summary>
        public string?[] Elements { get; } = new string?[3];
    }
}
