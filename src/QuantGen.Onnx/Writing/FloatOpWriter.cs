using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Onnx.Protobuf;
using static QuantGen.Onnx.Writing.OnnxGraphBuilder;

namespace QuantGen.Onnx.Writing;

/// <summary>
/// Ops that stay float (<see cref="FloatOp"/>): each is written as its float ONNX operator, reading its inputs in
/// float (a DequantizeLinear for a quantized one) and, in the quantized forms, followed by a QuantizeLinear with its
/// result's qparams for the int8 ops after it, while float readers take the float result itself — as the int8
/// model runs it. Weights are float initializers.
/// </summary>
internal sealed partial class ModelWriter
{
    /// <summary>The float op a layer holds as data: a bound model's float op, or a fallback the mapping kept in float.</summary>
    private static FloatOp? StoredFloatOp(IQuantizedLayer layer) => layer switch
    {
        FloatOp op => op,
        FloatFallback { Stored: { } op } => op,
        _ => null,
    };

    /// <summary>Refuses, before anything is written, a float op that has no ONNX form (the message names it and why).</summary>
    private void CheckFloatOp(GraphNode node, FloatOp op)
    {
        string? why = op.Kind switch
        {
            FloatOpKind.Function => $"it is a tensor expression of forward ('{string.Join(", ", node.Members.Select(m => m.Source))}') that ONNX export cannot read; write it with a module or a function QuantGen knows",
            FloatOpKind.PixelUnshuffle => "ONNX's SpaceToDepth orders channels unlike pixel_unshuffle",
            FloatOpKind.WeightOnlyEmbedding or FloatOpKind.Embedding when !ReadsTheTokenInput(node) =>
                $"it reads '{node.Inputs[0]}', not the model's token indices; ONNX export gives an Embedding the model's int64 input only",
            FloatOpKind.DynamicRecurrent when op.Text == "GRU" =>
                "ONNX Runtime has no dynamically quantized GRU operator (its one dynamic recurrent operator, com.microsoft DynamicQuantizeLSTM, is an LSTM), " +
                "and ONNX's GRU takes float weights, so no ONNX form computes what the dynamic GRU does",
            FloatOpKind.DynamicRecurrent when Quantized && NonZeroWeightZeroPoint(op) is { } tensor =>
                $"ONNX Runtime's DynamicQuantizeLSTM takes int8 weights with zero point 0 only (PyTorch's dynamic weight observers are symmetric), and {tensor} has another",
            FloatOpKind.DynamicEncoderLayer or FloatOpKind.DynamicEncoder when _options.Opset < 17 =>
                $"its LayerNorms are ONNX's LayerNormalization, which needs opset 17 (the export's opset is {_options.Opset})",
            FloatOpKind.DynamicEncoderLayer or FloatOpKind.DynamicEncoder when EncoderMaskRefusal(node, op) is { } mask => mask,
            FloatOpKind.DynamicMultiheadAttention => "a dynamic MultiheadAttention is not written to ONNX yet (its attention would need MatMulInteger projections around float Softmax)",
            FloatOpKind.AvgPool2d when op.Ints[8] > 0 => $"avg_pool2d with divisor_override={op.Ints[8]} has no ONNX AveragePool equivalent",
            FloatOpKind.AdaptiveAvgPool2d when op.Ints[0] != 1 || op.Ints[1] != 1 => $"adaptive_avg_pool2d to {op.Ints[0]}x{op.Ints[1]} has no ONNX operator; only (1, 1) exports",
            FloatOpKind.Reshape when Array.IndexOf(op.Ints, 0L) >= 0 => "a zero-size dimension reads as 'copy the input's dimension' in ONNX Reshape",
            FloatOpKind.Elementwise when ElementwiseOnnx(op) is null => $"{op.Text}{(op.Text == "Softplus" ? " with beta or threshold other than 1 and 20" : "")} has no ONNX operator here",
            FloatOpKind.Upsample when op.Text is not ("Nearest" or "Bilinear" or "Bicubic") => $"upsample mode {op.Text} is not written to ONNX",
            FloatOpKind.Upsample when op.Text == "Nearest" && op.Ints[^2] == 1 => "nearest upsampling with align_corners is not written to ONNX",
            FloatOpKind.Upsample when op.Floats.Length == 0 && _options.Opset < 18 => "Resize to a fixed size on two axes needs opset 18",
            FloatOpKind.LayerNorm when _options.Opset < 17 => "LayerNormalization needs opset 17",
            FloatOpKind.GroupNorm when _options.Opset < 21 => "GroupNormalization with per-channel scale and bias needs opset 21",
            FloatOpKind.Elementwise when op.Text == "GELU" && _options.Opset < 20 => "Gelu needs opset 20",
            FloatOpKind.Elementwise when op.Text == "Mish" && _options.Opset < 18 => "Mish needs opset 18",
            _ => null,
        };
        if (why is not null)
        {
            throw new NotSupportedException($"{Model}.{node.Name}: a float {(op.Kind == FloatOpKind.Elementwise ? op.Text : op.Kind.ToString())} cannot be exported: {why}.");
        }
    }

    /// <summary>
    /// A dynamic Linear as ONNX's dynamic quantization: DynamicQuantizeLinear on the input, MatMulInteger with the qint8
    /// weights (transposed to [in, out], per-column zero points), the int32 product cast to float and scaled by the input's
    /// and each column's weight scale, then the bias. ONNX's DynamicQuantizeLinear has its own input qparams (uint8 over the
    /// full 0..255, scale (max − min) / 255, no reduce_range), so ONNX Runtime rounds the input differently from QuantGen's
    /// PyTorch formula (docs/onnx-export.md).
    /// </summary>
    /// <param name="op">The op holding the Linear's tensors.</param>
    /// <param name="x">The float input.</param>
    /// <param name="name">Names the initializers and the DynamicQuantizeLinear node.</param>
    /// <param name="node">Writes the other nodes.</param>
    /// <param name="tensors">The prefix of the Linear's tensor names in <paramref name="op"/> ("in_proj." for an encoder layer's projection; "" for a DynamicLinear op).</param>
    private string WriteDynamicLinear(FloatOp op, string x, string name, Func<string, IEnumerable<string>, AttributeProto[], string> node, string tensors = "")
    {
        FloatOpTensor w = op.Tensor(tensors + "weight")!;
        int outFeatures = w.Shape[0], inFeatures = w.Shape[1];
        var transposed = new sbyte[w.Values.Length];
        for (int o = 0; o < outFeatures; o++)
        {
            for (int i = 0; i < inFeatures; i++)
            {
                transposed[(i * outFeatures) + o] = (sbyte)w.Values[(o * inFeatures) + i];
            }
        }

        float[] scales = op.Tensor(tensors + "weight_scale")!.Values;
        sbyte[] zeroPoints = Array.ConvertAll(op.Tensor(tensors + "weight_zero_point")!.Values, z => (sbyte)z);
        string weight = _builder.Initializer(name + ".weight_quantized", Int8([inFeatures, outFeatures], transposed));
        string weightZero = _builder.Initializer(name + ".weight_zero_point", zeroPoints.Length == 1 ? Int8([], zeroPoints) : Int8([zeroPoints.Length], zeroPoints));
        string weightScale = _builder.Initializer(name + ".weight_scale", Float([scales.Length], scales));
        string[] quantized = _builder.NodeWithOutputs("DynamicQuantizeLinear", name + "/DynamicQuantizeLinear", [x], [name + "/x_quantized", name + "/x_scale", name + "/x_zero_point"]);
        string product = node("MatMulInteger", [quantized[0], weight, quantized[2], weightZero], []);
        string asFloat = node("Cast", [product], [Int("to", (long)TensorProto.Types.DataType.Float)]);
        string scale = node("Mul", [quantized[1], weightScale], []);
        string y = node("Mul", [asFloat, scale], []);
        return op.Tensor(tensors + "bias") is { } bias
            ? node("Add", [y, _builder.Initializer(name + ".bias", Float([bias.Values.Length], bias.Values))], [])
            : y;
    }

    /// <summary>
    /// A float16-weight Linear: its weight as a FLOAT16 initializer, Cast to float (exact: every float16 is a float32), then
    /// the float Linear's Gemm (rank-2 input, transB) or MatMul with the weight transposed to [in, out] and the bias added.
    /// ONNX Runtime multiplies by the layer's own weights; its GEMM sums in its own order (float32 rounding apart).
    /// </summary>
    private string WriteFloat16Linear(FloatOp op, string x, int rank, string name, Func<string, IEnumerable<string>, AttributeProto[], string> node)
    {
        FloatOpTensor w = op.Tensor("weight")!;
        int outFeatures = w.Shape[0], inFeatures = w.Shape[1];
        Half[] weight = Array.ConvertAll(w.Values, v => (Half)v);
        string? bias = op.Tensor("bias") is { } b ? _builder.Initializer(name + ".bias", Float([b.Values.Length], b.Values)) : null;
        AttributeProto toFloat = Int("to", (long)TensorProto.Types.DataType.Float);
        if (rank == 2)
        {
            string widened = node("Cast", [_builder.Initializer(name + ".weight_float16", Float16([outFeatures, inFeatures], weight))], [toFloat]);
            return node("Gemm", bias is null ? [x, widened] : [x, widened, bias], [Float("alpha", 1f), Float("beta", 1f), Int("transB", 1)]);
        }

        var transposed = new Half[weight.Length];
        for (int o = 0; o < outFeatures; o++)
        {
            for (int i = 0; i < inFeatures; i++)
            {
                transposed[(i * outFeatures) + o] = weight[(o * inFeatures) + i];
            }
        }

        string widenedT = node("Cast", [_builder.Initializer(name + ".weight_float16_t", Float16([inFeatures, outFeatures], transposed))], [toFloat]);
        string y = node("MatMul", [x, widenedT], []);
        return bias is null ? y : _builder.Node("Add", name + "/AddBias", [y, bias], name + "/biased");
    }

    private void WriteFloatOp(GraphNode node, FloatOp op)
    {
        CheckFloatOp(node, op);
        if (node.Inputs.Count != op.InputCount)
        {
            throw new InvalidOperationException($"{Model}.{node.Name}: the float op reads {op.InputCount} value(s), the graph gives it {node.Inputs.Count}.");
        }

        Value[] inputs = Enumerable.Range(0, node.Inputs.Count).Select(i => Input(node, i, expectedRank: null)).ToArray();

        // Another element of a recurrent call already written reads the same values from the same op: nothing to read again.
        string[] x = IsRecurrent(op) && FindRecurrentCall(node, op) is not null
            ? []
            : inputs.Select(v => ReadForFloatOp(v, node.Name)).ToArray();
        int rank = inputs[0].Rank;
        string name = node.Name;
        long[] ints = op.Ints;
        double[] floats = op.Floats;
        string Weight(string tensor) => op.Tensor(tensor) is { } t
            ? _builder.Initializer(name + "." + tensor, Float(t.Shape.Select(d => (long)d).ToArray(), t.Values))
            : throw new InvalidOperationException($"{Model}.{name}: the float op has no {tensor}.");
        string? Optional(string tensor) => op.Tensor(tensor) is null ? null : Weight(tensor);
        string Node(string type, IEnumerable<string> operands, params AttributeProto[] attributes) =>
            _builder.Node(type, name + "/" + type, operands, name + "/" + type.ToLowerInvariant(), attributes);
        string Constant(string what, float[] values) => _builder.Initializer(name + "." + what, Float([values.Length], values));

        string y;
        switch (op.Kind)
        {
            case FloatOpKind.Conv2d:
            {
                RequireRank(node, inputs[0], 4);
                string? bias = Optional("bias");
                y = Node("Conv", bias is null ? [x[0], Weight("weight")] : [x[0], Weight("weight"), bias],
                    Ints("kernel_shape", ints[2], ints[3]), Ints("strides", ints[4], ints[5]), Ints("pads", ints[6], ints[7], ints[6], ints[7]),
                    Ints("dilations", ints[8], ints[9]), Int("group", ints[10]));
                break;
            }

            case FloatOpKind.ConvTranspose2d:
            {
                RequireRank(node, inputs[0], 4);
                string? bias = Optional("bias");
                y = Node("ConvTranspose", bias is null ? [x[0], Weight("weight")] : [x[0], Weight("weight"), bias],
                    Ints("kernel_shape", ints[2], ints[3]), Ints("strides", ints[4], ints[5]), Ints("pads", ints[6], ints[7], ints[6], ints[7]),
                    Ints("output_padding", ints[8], ints[9]), Ints("dilations", ints[10], ints[11]), Int("group", ints[12]));
                break;
            }

            case FloatOpKind.Linear:
            {
                string? bias = Optional("bias");
                if (rank == 2)
                {
                    y = Node("Gemm", bias is null ? [x[0], Weight("weight")] : [x[0], Weight("weight"), bias], Float("alpha", 1f), Float("beta", 1f), Int("transB", 1));
                }
                else
                {
                    FloatOpTensor w = op.Tensor("weight")!;
                    int outFeatures = w.Shape[0], inFeatures = w.Shape[1];
                    var transposed = new float[w.Values.Length];
                    for (int o = 0; o < outFeatures; o++)
                    {
                        for (int i = 0; i < inFeatures; i++)
                        {
                            transposed[i * outFeatures + o] = w.Values[o * inFeatures + i];
                        }
                    }

                    string weight = _builder.Initializer(name + ".weight_t", Float([inFeatures, outFeatures], transposed));
                    y = Node("MatMul", [x[0], weight]);
                    if (bias is not null)
                    {
                        y = _builder.Node("Add", name + "/AddBias", [y, bias], name + "/biased");
                    }
                }

                break;
            }

            case FloatOpKind.DynamicLinear:
                y = Quantized ? WriteDynamicLinear(op, x[0], name, Node) : WriteDequantizedLinear(op, x[0], name, rank, Node);
                break;
            case FloatOpKind.DynamicRecurrent or FloatOpKind.Float16Recurrent:
                y = WriteRecurrentElement(node, op, x, rank);
                break;
            case FloatOpKind.DynamicEncoderLayer or FloatOpKind.DynamicEncoder:
                RequireRank(node, inputs[0], 3);
                y = WriteEncoder(node, op, x);
                break;
            case FloatOpKind.Embedding:
                y = Node("Gather", [Weight("weight"), x[0]], Int("axis", 0));
                rank++;
                break;
            case FloatOpKind.WeightOnlyEmbedding:
                y = WriteWeightOnlyEmbedding(op, x[0], name, Node);
                rank++;
                break;
            case FloatOpKind.Float16Linear:
                y = WriteFloat16Linear(op, x[0], rank, name, Node);
                break;
            case FloatOpKind.BatchNorm2d:
            {
                RequireRank(node, inputs[0], 4);
                int channels = op.Tensor("running_mean")!.Values.Length;
                string scale = Optional("weight") ?? Constant("weight", Enumerable.Repeat(1f, channels).ToArray());
                string shift = Optional("bias") ?? Constant("bias", new float[channels]);
                y = Node("BatchNormalization", [x[0], scale, shift, Weight("running_mean"), Weight("running_var")], Float("epsilon", (float)floats[0]));
                break;
            }

            case FloatOpKind.ReLU:
                y = Node("Relu", [x[0]]);
                break;
            case FloatOpKind.Hardtanh:
                y = Node("Clip", [x[0], _builder.Initializer(name + ".min", Float([], [(float)floats[0]])), _builder.Initializer(name + ".max", Float([], [(float)floats[1]]))]);
                break;
            case FloatOpKind.Add:
                y = Node("Add", x);
                rank = Math.Max(inputs[0].Rank, inputs[1].Rank);
                break;
            case FloatOpKind.Cat:
                y = Node("Concat", x, Int("axis", ints[0]));
                break;
            case FloatOpKind.Mul:
                y = Node("Mul", x);
                rank = Math.Max(inputs[0].Rank, inputs[1].Rank);
                break;
            case FloatOpKind.MulConstant or FloatOpKind.AddConstant:
                y = Node(op.Kind == FloatOpKind.MulConstant ? "Mul" : "Add", [x[0], _builder.Initializer(name + ".constant", Float([], [(float)floats[0]]))]);
                break;
            case FloatOpKind.Mean:
            {
                long[] axes = ints[1..].Select(d => d < 0 ? d + rank : d).ToArray();
                y = _options.Opset >= 18
                    ? Node("ReduceMean", [x[0], _builder.Initializer(name + ".axes", Int64([axes.Length], axes))], Int("keepdims", ints[0]))
                    : Node("ReduceMean", [x[0]], Int("keepdims", ints[0]), Ints("axes", axes));
                rank = ints[0] != 0 ? rank : rank - axes.Length;
                break;
            }
            case FloatOpKind.Flatten:
            {
                int start = (int)(ints[0] < 0 ? ints[0] + rank : ints[0]);
                int end = (int)(ints[1] < 0 ? ints[1] + rank : ints[1]);
                if (rank == 0 || start < 0 || end >= rank || start > end)
                {
                    throw new InvalidOperationException($"{Model}.{name}: flatten(start_dim={ints[0]}, end_dim={ints[1]}) of a rank-{rank} value.");
                }

                // Reshape copies the dimensions kept (0) and infers the flattened one (-1).
                long[] shape = [.. Enumerable.Repeat(0L, start), -1L, .. Enumerable.Repeat(0L, rank - 1 - end)];
                y = Node("Reshape", [x[0], _builder.Initializer(name + ".shape", Int64([shape.Length], shape))]);
                rank = shape.Length;
                break;
            }

            case FloatOpKind.Reshape:
                y = Node("Reshape", [x[0], _builder.Initializer(name + ".shape", Int64([ints.Length], ints))]);
                rank = ints.Length;
                break;
            case FloatOpKind.MaxPool2d:
                RequireRank(node, inputs[0], 4);
                y = Node("MaxPool", [x[0]], Ints("kernel_shape", ints[0], ints[1]), Ints("strides", ints[2], ints[3]), Ints("pads", ints[4], ints[5], ints[4], ints[5]),
                    Ints("dilations", ints[6], ints[7]), Int("ceil_mode", ints[8]));
                break;
            case FloatOpKind.AvgPool2d:
                RequireRank(node, inputs[0], 4);
                y = Node("AveragePool", [x[0]], Ints("kernel_shape", ints[0], ints[1]), Ints("strides", ints[2], ints[3]), Ints("pads", ints[4], ints[5], ints[4], ints[5]),
                    Int("ceil_mode", ints[6]), Int("count_include_pad", ints[7]));
                break;
            case FloatOpKind.AdaptiveAvgPool2d:
                RequireRank(node, inputs[0], 4);
                y = Node("GlobalAveragePool", [x[0]]);
                break;
            case FloatOpKind.Elementwise:
                y = WriteElementwise(op, x[0], Node);
                break;
            case FloatOpKind.PixelShuffle:
                RequireRank(node, inputs[0], 4);
                y = Node("DepthToSpace", [x[0]], Int("blocksize", ints[0]), String("mode", "CRD"));
                break;
            case FloatOpKind.Softmax:
                y = Node("Softmax", [x[0]], Int("axis", ints[0]));
                break;
            case FloatOpKind.LogSoftmax:
                y = Node("LogSoftmax", [x[0]], Int("axis", ints[0]));
                break;
            case FloatOpKind.Upsample:
                RequireRank(node, inputs[0], 4);
                y = WriteResize(op, x[0], name, Node);
                break;
            case FloatOpKind.LayerNorm:
            {
                int elements = checked((int)ints.Aggregate(1L, (a, b) => a * b));
                string scale = Optional("weight") ?? Constant("weight", Enumerable.Repeat(1f, elements).ToArray());
                string[] operands = Optional("bias") is { } bias ? [x[0], scale, bias] : [x[0], scale];
                if (op.Tensor("weight") is null)
                {
                    // LayerNormalization broadcasts its scale over the normalized dimensions: shape it as they are.
                    scale = _builder.Initializer(name + ".ones", Float(ints, Enumerable.Repeat(1f, elements).ToArray()));
                    operands[1] = scale;
                }

                y = Node("LayerNormalization", operands, Int("axis", -ints.Length), Float("epsilon", (float)floats[0]));
                break;
            }

            case FloatOpKind.GroupNorm:
            {
                int channels = op.Tensor("weight")?.Values.Length ?? 0;
                if (channels == 0)
                {
                    throw new NotSupportedException($"{Model}.{name}: a GroupNorm without affine parameters needs its channel count, which the float op does not hold.");
                }

                string scale = Weight("weight");
                string shift = Optional("bias") ?? Constant("bias", new float[channels]);
                y = Node("GroupNormalization", [x[0], scale, shift], Int("num_groups", ints[0]), Float("epsilon", (float)floats[0]));
                break;
            }

            default:
                throw new NotSupportedException($"{Model}.{name}: ONNX export does not write a float {op.Kind}.");
        }

        if (op.Relu)
        {
            y = _builder.Node("Relu", name + "/Relu", [y], name + "/relu");
        }

        // Float readers take the float result; the int8 model quantizes it for its int8 readers only, and so does the graph.
        _values[node.Output] = Quantized && HasInt8Readers(node.Output) && op.Output.IsObserved
            ? QuantizeTo(y, op.Output.QParams, name, rank, reuse: null) with { Float = y }
            : new Value(y, null, null, null, rank) { Float = Quantized ? y : null };
    }

    private void RequireRank(GraphNode node, Value input, int rank)
    {
        if (input.Rank != rank)
        {
            throw new NotSupportedException($"{Model}.{node.Name}: the float op expects a rank-{rank} input, '{node.Inputs[0]}' has rank {input.Rank}.");
        }
    }

    /// <summary>The ONNX operator of an elementwise function with its attributes, or null when there is none here.</summary>
    private static (string Op, AttributeProto[] Attributes)? ElementwiseOnnx(FloatOp op)
    {
        double p0 = op.Floats.Length > 0 ? op.Floats[0] : 0, p1 = op.Floats.Length > 1 ? op.Floats[1] : 0;
        return op.Text switch
        {
            "LeakyReLU" => ("LeakyRelu", [Float("alpha", (float)p0)]),
            "ELU" => ("Elu", [Float("alpha", (float)p0)]),
            "CELU" => ("Celu", [Float("alpha", (float)p0)]),
            "SELU" => ("Selu", []),
            "GELU" => ("Gelu", [String("approximate", p0 == 0 ? "none" : "tanh")]),
            "Hardswish" => ("HardSwish", []),

            // PyTorch's hardsigmoid is relu6(x + 3) / 6: ONNX HardSigmoid with alpha 1/6 and beta 1/2.
            "Hardsigmoid" => ("HardSigmoid", [Float("alpha", 1f / 6f), Float("beta", 0.5f)]),
            "Sigmoid" => ("Sigmoid", []),
            "Tanh" => ("Tanh", []),
            "SiLU" => ("SiLU", []),
            "Mish" => ("Mish", []),
            "Softplus" when p0 == 1 && p1 == 20 => ("Softplus", []),
            "Softsign" => ("Softsign", []),
            _ => null,
        };
    }

    private static string WriteElementwise(FloatOp op, string x, Func<string, IEnumerable<string>, AttributeProto[], string> node)
    {
        (string type, AttributeProto[] attributes) = ElementwiseOnnx(op)!.Value;

        // SiLU has no ONNX operator: x * Sigmoid(x).
        return type == "SiLU" ? node("Mul", [x, node("Sigmoid", [x], [])], []) : node(type, [x], attributes);
    }

    private string WriteResize(FloatOp op, string x, string name, Func<string, IEnumerable<string>, AttributeProto[], string> node)
    {
        bool alignCorners = op.Ints[^2] == 1;
        AttributeProto[] attributes = op.Text switch
        {
            // PyTorch's 'nearest' reads source index floor(d * in / out): asymmetric coordinates with floor.
            "Nearest" => [String("mode", "nearest"), String("coordinate_transformation_mode", "asymmetric"), String("nearest_mode", "floor")],
            "Bilinear" => [String("mode", "linear"), String("coordinate_transformation_mode", alignCorners ? "align_corners" : "pytorch_half_pixel")],
            _ => [String("mode", "cubic"), Float("cubic_coeff_a", -0.75f), String("coordinate_transformation_mode", alignCorners ? "align_corners" : "pytorch_half_pixel")],
        };
        if (op.Floats.Length == 2)
        {
            string scales = _builder.Initializer(name + ".scales", Float([4], [1f, 1f, (float)op.Floats[0], (float)op.Floats[1]]));
            return node("Resize", [x, "", scales], attributes);
        }

        string sizes = _builder.Initializer(name + ".sizes", Int64([2], [op.Ints[0], op.Ints[1]]));
        return node("Resize", [x, "", "", sizes], [.. attributes, Ints("axes", 2, 3)]);
    }
}
