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
/// <see cref="FloatOpKind.WeightOnlyEmbedding"/>; the LSTMs are in RecurrentWriter.cs): in the int8 forms
/// ONNX Runtime's integer operators on the layer's own int8 weights, in the float form ONNX's float operators on the
/// dequantized weights (the fp32 peer of the same model).
/// </summary>
internal sealed partial class ModelWriter
{
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
    /// <param name="op">The op holding the Linear's tensors.</param>
    /// <param name="x">The float input.</param>
    /// <param name="name">Names the initializers and the bias Add.</param>
    /// <param name="rank">The input's rank.</param>
    /// <param name="node">Writes the other nodes.</param>
    /// <param name="tensors">The prefix of the Linear's tensor names in <paramref name="op"/> ("in_proj." for an encoder layer's projection; "" for a DynamicLinear op).</param>
    private string WriteDequantizedLinear(FloatOp op, string x, string name, int rank, Func<string, IEnumerable<string>, AttributeProto[], string> node, string tensors = "")
    {
        FloatOpTensor w = op.Tensor(tensors + "weight")!;
        int outFeatures = w.Shape[0], inFeatures = w.Shape[1];
        float[] scales = op.Tensor(tensors + "weight_scale")!.Values, zeroPoints = op.Tensor(tensors + "weight_zero_point")!.Values;
        var dequantized = new float[w.Values.Length];
        for (int o = 0; o < outFeatures; o++)
        {
            int c = scales.Length == 1 ? 0 : o;
            for (int i = 0; i < inFeatures; i++)
            {
                dequantized[(o * inFeatures) + i] = (w.Values[(o * inFeatures) + i] - zeroPoints[c]) * scales[c];
            }
        }

        string? bias = op.Tensor(tensors + "bias") is { } b ? _builder.Initializer(name + ".bias", Float([b.Values.Length], b.Values)) : null;
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
}
