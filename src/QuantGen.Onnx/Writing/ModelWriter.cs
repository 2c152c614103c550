using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Onnx.Protobuf;
using static QuantGen.Onnx.Writing.OnnxGraphBuilder;

namespace QuantGen.Onnx.Writing;

/// <summary>
/// Writes one converted model's graph as ONNX: walks <see cref="ModelGraph.Nodes"/> in forward order
/// and writes each node from its layer's state (weights, bias, qparams, options).
/// </summary>
/// <remarks>
/// QDQ form: every QuantGen value is a uint8/int8 tensor produced by a QuantizeLinear with the
/// writer's qparams; every reader gets its own DequantizeLinear (ONNX Runtime's QDQ selectors want a
/// DequantizeLinear that feeds only the op it belongs to). A fused ReLU is written as ONNX Runtime's
/// QDQ fusion expects: op → Relu → QuantizeLinear when the output zero point is the dtype's minimum
/// (the QuantizeLinear's clamp makes the Relu redundant, so ORT folds it), otherwise op →
/// QuantizeLinear → DequantizeLinear → Relu → QuantizeLinear, which keeps the op fusable and computes
/// the same integers (rounding commutes with max(·, 0)).
/// <para>
/// QOperator form: the same quantized values, each op written as the
/// quantized operator that reads and writes them (QLinearConv, QGemm, QLinearAdd ...); ops without
/// one keep the QDQ form's DequantizeLinear → float op → QuantizeLinear. Float form: the same graph on
/// float tensors.
/// </para>
/// </remarks>
internal sealed partial class ModelWriter
{
    private readonly ModelGraph _graph;
    private readonly Dictionary<string, IQuantizedLayer> _layers;
    private readonly QuantizeInput _input;
    private readonly OnnxExportOptions _options;
    private readonly OnnxGraphBuilder _builder = new();
    private readonly Dictionary<string, Value> _values = new(StringComparer.Ordinal);
    private readonly bool _activationsAsUInt8InQOperator;
    private readonly bool _floatOpsReadTheFloatInput;

    /// <summary>The model takes int64 token indices (an Embedding reads its input): set by <see cref="Write"/>.</summary>
    private bool _tokenInput;

    /// <param name="graph">The model's graph.</param>
    /// <param name="layers">Its layers; each node's layer has the node's name.</param>
    /// <param name="input">The layer that quantizes the float input (used when the layers do not list the Quantize node's).</param>
    /// <param name="options">Validated options.</param>
    /// <param name="floatOpsReadTheFloatInput">
    /// The model hands its float input to the float ops that read it as it is, quantizing it only for its int8 ops: a
    /// model bound at Prepare does (its <c>forward(Tensor)</c>), so its export does too; a generated model's float
    /// fallbacks read the quantized input, dequantized.
    /// </param>
    public ModelWriter(ModelGraph graph, IReadOnlyList<IQuantizedLayer> layers, QuantizeInput input, OnnxExportOptions options, bool floatOpsReadTheFloatInput)
    {
        _graph = graph;
        _input = input;
        _options = options;
        _floatOpsReadTheFloatInput = floatOpsReadTheFloatInput;

        // ORT's quantized operators compute in one activation type: the QOperator form writes every value
        // in the input's (uint8 when asked), a qint8 value as uint8 with its zero point + 128 or the reverse.
        _activationsAsUInt8InQOperator = options.ActivationsAsUInt8 || (input.IsObserved && input.QParams.DType == QuantDType.QUInt8);
        _layers = new Dictionary<string, IQuantizedLayer>(StringComparer.Ordinal);
        foreach (IQuantizedLayer layer in layers)
        {
            if (layer is null)
            {
                throw new ArgumentException($"{graph.Model}: the model's Layers list holds a null entry.", nameof(layers));
            }

            if (!_layers.TryAdd(layer.Layer, layer))
            {
                throw new ArgumentException($"{graph.Model}: two layers are named '{layer.Layer}'.", nameof(layers));
            }
        }
    }

    private bool Qdq => _options.Form == OnnxForm.Qdq;

    private bool QOperator => _options.Form == OnnxForm.QOperator;

    /// <summary>Values are quantized tensors with qparams (QDQ and QOperator forms), not float ones.</summary>
    private bool Quantized => _options.Form != OnnxForm.Float;

    /// <summary>The graph's operator domains besides ai.onnx (com.microsoft when a contrib op is written): the model imports each.</summary>
    public IReadOnlyCollection<string> Domains => _builder.Domains;

    private string Model => _graph.Model;

    /// <summary>Writes the graph.</summary>
    /// <exception cref="NotSupportedException">A float island or an op (or option of one) ONNX cannot express; the message names model and layer.</exception>
    /// <exception cref="InvalidOperationException">The graph and the layers disagree (a node without its layer, a layer of the wrong type, a value read before it is written).</exception>
    public GraphProto Write()
    {
        // A float op ONNX cannot express is refused before anything else: the rest of the graph may look fine. Encoder
        // layers are checked first, so a mask computed in forward is refused by the layer that reads it, which can say
        // what the value is for (the expression alone would be refused as C# ONNX cannot read, or as a reader of the
        // token indices).
        foreach (GraphNode encoder in _graph.Nodes.Where(n => n.Op == GraphOp.FloatIsland && IsEncoder(n)))
        {
            CheckFloatOp(encoder, StoredFloatOp(_layers[encoder.Name])!);
        }

        _tokenInput = TakesTokenIndices();
        foreach (GraphNode island in _graph.Nodes.Where(n => n.Op == GraphOp.FloatIsland && !IsEncoder(n)))
        {
            if (_layers.TryGetValue(island.Name, out IQuantizedLayer? layer) && StoredFloatOp(layer) is { } floatOp)
            {
                CheckFloatOp(island, floatOp);
            }
            else
            {
                WriteNode(island, inputRank: 0);
            }
        }

        // Reserved first, so no internal value can take the graph's input and output names.
        _builder.UniqueValue(_options.InputName);
        _builder.UniqueValue(_options.OutputName);
        GraphProto graph = _builder.Graph;
        graph.Name = Model;
        graph.DocString = $"{Model}, QuantGen graph {_graph.Hash}, {(Qdq ? "QDQ" : QOperator ? "QOperator" : "float")} form.";
        (int rank, IReadOnlyList<object> inputDims) = InputType();
        graph.Input.Add(ValueInfo(_options.InputName, _tokenInput ? TensorProto.Types.DataType.Int64 : TensorProto.Types.DataType.Float, inputDims));

        foreach (GraphNode node in _graph.Nodes)
        {
            WriteNode(node, rank);
        }

        if (!_values.TryGetValue(_graph.Output, out Value? result))
        {
            throw new InvalidOperationException($"{Model}: the graph's output '{_graph.Output}' is written by no node.");
        }

        // A model that ends in a float op returns that op's float result, as the int8 model's float forward does.
        _ = Quantized && result.Float is null && result.QParams is not null
            ? _builder.NodeWithOutput("DequantizeLinear", "output/DequantizeLinear", result.Operands, _options.OutputName)
            : _builder.NodeWithOutput("Identity", "output/Identity", [result.Float ?? result.Name], _options.OutputName);
        graph.Output.Add(ValueInfo(_options.OutputName, TensorProto.Types.DataType.Float, dims: null));
        return graph;
    }

    private void WriteNode(GraphNode node, int inputRank)
    {
        switch (node.Op)
        {
            case GraphOp.Quantize:
                WriteQuantize(node, inputRank);
                break;
            case GraphOp.Conv2d:
                WriteConv(node, Layer<QuantizedConv2d>(node));
                break;
            case GraphOp.ConvTranspose2d:
                WriteConvTranspose(node, Layer<QuantizedConvTranspose2d>(node));
                break;
            case GraphOp.Linear:
                WriteLinear(node, Layer<QuantizedLinear>(node));
                break;
            case GraphOp.BatchNorm2d:
                WriteBatchNorm(node, Layer<QuantizedBatchNorm2d>(node));
                break;
            case GraphOp.ReLU:
                Layer<QuantizedReLU>(node);
                WriteRelu(node);
                break;
            case GraphOp.Hardtanh:
                WriteHardtanh(node, Layer<QuantizedHardtanh>(node));
                break;
            case GraphOp.Elementwise:
                WriteElementwise(node, Layer<QuantizedElementwise>(node));
                break;
            case GraphOp.Add:
                WriteAdd(node, Layer<QuantizedAdd>(node));
                break;
            case GraphOp.Cat:
                WriteCat(node, Layer<QuantizedCat>(node));
                break;
            case GraphOp.Mul:
                WriteMul(node, Layer<QuantizedMul>(node));
                break;
            case GraphOp.ConstantOp:
                WriteConstantOp(node, Layer<QuantizedConstantOp>(node));
                break;
            case GraphOp.Mean:
                WriteMean(node, Layer<QuantizedMean>(node));
                break;
            case GraphOp.MaxPool2d:
                WriteMaxPool(node, Layer<QuantizedMaxPool2d>(node));
                break;
            case GraphOp.AvgPool2d:
                WriteAvgPool(node, Layer<QuantizedAvgPool2d>(node));
                break;
            case GraphOp.AdaptiveAvgPool2d:
                WriteAdaptiveAvgPool(node, Layer<QuantizedAdaptiveAvgPool2d>(node));
                break;
            case GraphOp.UpsampleNearest2d:
                WriteUpsample(node, Layer<QuantizedUpsampleNearest2d>(node));
                break;
            case GraphOp.Flatten:
                WriteFlatten(node, Layer<QuantizedFlatten>(node));
                break;
            case GraphOp.Reshape:
                WriteReshape(node, Layer<QuantizedReshape>(node));
                break;
            case GraphOp.FloatIsland when _layers.TryGetValue(node.Name, out IQuantizedLayer? floatLayer) && StoredFloatOp(floatLayer) is { } floatOp:
                WriteFloatOp(node, floatOp);
                break;
            case GraphOp.FloatIsland:
                throw new NotSupportedException(
                    $"{Model}.{node.Name}: {string.Join(" + ", node.Members.Select(m => m.ModuleType))} ({node.Source}) runs in float as the module's own code, " +
                    "which ONNX export cannot see (it is not described as a float op: a user module whose forward was not captured, or a float island of a model with stubs); quantize it, or export the model without it.");
            default:
                throw new NotSupportedException($"{Model}.{node.Name}: ONNX export does not know the op {node.Op}.");
        }
    }

    private void WriteQuantize(GraphNode node, int rank)
    {
        if (node.Inputs.Count != 1 || node.Inputs[0] != _graph.Input)
        {
            throw new NotSupportedException($"{Model}.{node.Name}: only the model's entry can quantize a float value (this Quantize reads {string.Join(", ", node.Inputs)}, the input is '{_graph.Input}').");
        }

        QuantizeInput quantize = _layers.TryGetValue(node.Name, out IQuantizedLayer? layer)
            ? layer as QuantizeInput ?? throw WrongLayer(node, typeof(QuantizeInput), layer)
            : _input;
        var asItIs = new Value(_options.InputName, null, null, null, rank);
        if (_tokenInput || !Quantized)
        {
            // Token indices go to the Embedding as they are (the int8 model never quantizes them); so does the float form's input.
            _values[node.Output] = asItIs with { Float = _tokenInput ? _options.InputName : null };
            return;
        }

        // A bound model's float ops read the float input itself; a QuantizeLinear is written only for int8 readers
        // (and for a model that returns its quantized input).
        // An input no observer saw (a model converted without calibration) has no qparams: only float ops read it.
        bool int8Readers = quantize.IsObserved && (node.Output == _graph.Output || _graph.Readers(node.Output).Any(r => !ReadsTheFloatInput(r)));
        _values[node.Output] = int8Readers
            ? QuantizeTo(_options.InputName, quantize.QParams, node.Name, rank, reuse: null) with { Float = _floatOpsReadTheFloatInput ? _options.InputName : null }
            : asItIs with { Float = _options.InputName };
    }

    /// <summary>Whether <paramref name="reader"/> of the model input is a float op that the int8 model gives the float input (a bound model's stored float op).</summary>
    private bool ReadsTheFloatInput(GraphNode reader) =>
        _floatOpsReadTheFloatInput && reader.Op == GraphOp.FloatIsland && _layers.TryGetValue(reader.Name, out IQuantizedLayer? layer) && layer is FloatOp;

    /// <summary>
    /// Whether the model takes token indices: an Embedding (float or weight-only) reads its input, which the int8 model
    /// then never quantizes (<c>BoundQuantizedPlan.IntegerInput</c>: calibrated with integer input that no int8 op read).
    /// The ONNX input is then int64, and only Embeddings may read it.
    /// </summary>
    /// <exception cref="NotSupportedException">An Embedding and another op read the input.</exception>
    private bool TakesTokenIndices()
    {
        GraphNode? quantize = _graph.Nodes.FirstOrDefault(n => n.Op == GraphOp.Quantize);
        GraphNode[] readers = quantize is null ? [] : _graph.Readers(quantize.Output).ToArray();
        bool IsEmbedding(GraphNode reader) =>
            reader.Op == GraphOp.FloatIsland && _layers.TryGetValue(reader.Name, out IQuantizedLayer? layer) &&
            StoredFloatOp(layer) is { Kind: FloatOpKind.Embedding or FloatOpKind.WeightOnlyEmbedding };
        GraphNode? embedding = Array.Find(readers, IsEmbedding);
        if (embedding is null)
        {
            return false;
        }

        GraphNode? other = Array.Find(readers, r => !IsEmbedding(r));
        if (other is not null)
        {
            throw new NotSupportedException(
                $"{Model}.{other.Name}: reads the model's input, which is token indices (the Embedding '{embedding.Name}' reads it too); the ONNX graph takes int64 indices, which only an Embedding can read.");
        }

        return true;
    }

    private void WriteConv(GraphNode node, QuantizedConv2d conv)
    {
        Value input = Input(node, 0, expectedRank: 4);
        Conv2dOptions o = conv.Options;
        float[] weightScales = WeightScalesPerOutputChannel(conv.Weight, o.OutChannels, o.OutChannels);
        AttributeProto[] attributes =
        [
            Ints("kernel_shape", o.KernelHeight, o.KernelWidth),
            Ints("strides", o.StrideHeight, o.StrideWidth),
            Ints("pads", o.PadHeight, o.PadWidth, o.PadHeight, o.PadWidth),
            Ints("dilations", o.DilationHeight, o.DilationWidth),
            Int("group", o.Groups),
        ];
        if (QOperator)
        {
            WriteQLinearConv(node, input, conv, weightScales, attributes);
            return;
        }

        string x = ReadFloat(input, node.Name);
        string weight = WeightInput(node.Name, conv.Weight, axis: 0, transpose: false);
        string? bias = BiasInput(node.Name, conv.Bias, input, weightScales);
        string y = _builder.Node("Conv", node.Name + "/Conv", bias is null ? [x, weight] : [x, weight, bias], node.Name + "/conv", attributes);
        WriteOutput(node, y, conv.OutputQParams, conv.FusedRelu, rank: 4);
    }

    private void WriteConvTranspose(GraphNode node, QuantizedConvTranspose2d conv)
    {
        Value input = Input(node, 0, expectedRank: 4);
        ConvTranspose2dOptions o = conv.Options;
        string x = ReadFloat(input, node.Name);

        // ONNX's ConvTranspose weight is [C_in, C_out / group, kH, kW], PyTorch's layout: per-channel on axis 1.
        string weight = WeightInput(node.Name, conv.Weight, axis: 1, transpose: false);
        string? bias = BiasInput(node.Name, conv.Bias, input, WeightScalesPerOutputChannel(conv.Weight, o.OutChannels, o.OutChannels / o.Groups));
        string y = _builder.Node("ConvTranspose", node.Name + "/ConvTranspose", bias is null ? [x, weight] : [x, weight, bias], node.Name + "/conv_transpose",
            Ints("kernel_shape", o.KernelHeight, o.KernelWidth),
            Ints("strides", o.StrideHeight, o.StrideWidth),
            Ints("pads", o.PadHeight, o.PadWidth, o.PadHeight, o.PadWidth),
            Ints("output_padding", o.OutputPadHeight, o.OutputPadWidth),
            Ints("dilations", o.DilationHeight, o.DilationWidth),
            Int("group", o.Groups));
        WriteOutput(node, y, conv.OutputQParams, conv.FusedRelu, rank: 4);
    }

    private void WriteLinear(GraphNode node, QuantizedLinear linear)
    {
        Value input = Input(node, 0, expectedRank: null);
        if (input.Rank < 2)
        {
            throw new NotSupportedException($"{Model}.{node.Name}: linear needs an input of rank 2 or more, this one has rank {input.Rank}.");
        }

        float[] weightScales = WeightScalesPerOutputChannel(linear.Weight, linear.OutFeatures, linear.OutFeatures);
        if (QOperator)
        {
            WriteQGemm(node, input, linear, weightScales);
            return;
        }

        string x = ReadFloat(input, node.Name);
        string? bias = BiasInput(node.Name, linear.Bias, input, weightScales);
        string y;
        if (input.Rank == 2)
        {
            // Gemm with transB = 1 reads the weight as PyTorch stores it, [out, in]: its rows are the output
            // columns, so per-channel scales stay on axis 0 — what ORT's QGemm takes as per-column B scales.
            string weight = WeightInput(node.Name, linear.Weight, axis: 0, transpose: false);
            y = _builder.Node("Gemm", node.Name + "/Gemm", bias is null ? [x, weight] : [x, weight, bias], node.Name + "/gemm",
                Float("alpha", 1f), Float("beta", 1f), Int("transB", 1));
        }
        else
        {
            // Gemm is 2-D only: MatMul with the transposed weight [in, out] (per-channel on axis 1), then the bias.
            string weight = WeightInput(node.Name, linear.Weight, axis: 0, transpose: true);
            y = _builder.Node("MatMul", node.Name + "/MatMul", [x, weight], node.Name + "/matmul");
            if (bias is not null)
            {
                y = _builder.Node("Add", node.Name + "/AddBias", [y, bias], node.Name + "/biased");
            }
        }

        WriteOutput(node, y, linear.OutputQParams, linear.FusedRelu, input.Rank);
    }

    private void WriteBatchNorm(GraphNode node, QuantizedBatchNorm2d batchNorm)
    {
        Value input = Input(node, 0, expectedRank: 4);
        string x = ReadFloat(input, node.Name);
        int channels = batchNorm.Channels;

        // The layer holds the folded per-channel scale and shift (y = x * scale + shift): written as a
        // BatchNormalization with mean 0, variance 1 and epsilon 0, which computes exactly that.
        string scale = _builder.Initializer(node.Name + ".scale", Float([channels], batchNorm.ChannelScale));
        string shift = _builder.Initializer(node.Name + ".shift", Float([channels], batchNorm.ChannelShift));
        string mean = _builder.Initializer(node.Name + ".mean", Float([channels], new float[channels]));
        string variance = _builder.Initializer(node.Name + ".var", Float([channels], Enumerable.Repeat(1f, channels).ToArray()));
        string y = _builder.Node("BatchNormalization", node.Name + "/BatchNormalization", [x, scale, shift, mean, variance], node.Name + "/batch_norm",
            Float("epsilon", 0f));
        WriteOutput(node, y, batchNorm.OutputQParams, batchNorm.Relu, rank: 4);
    }

    private void WriteAdd(GraphNode node, QuantizedAdd add)
    {
        if (node.Inputs.Count != 2)
        {
            throw new InvalidOperationException($"{Model}.{node.Name}: add reads two values, the graph gives it {node.Inputs.Count}.");
        }

        Value a = Input(node, 0, expectedRank: null), b = Input(node, 1, expectedRank: null);
        int rank = Math.Max(a.Rank, b.Rank);
        if (QOperator)
        {
            _values[node.Output] = QuantizedOp(node.Name, "QLinearAdd", contrib: true, add.OutputQParams, add.Relu, rank, node.Name,
                (scale, zeroPoint) => [.. a.Operands, .. b.Operands, scale, zeroPoint]);
            return;
        }

        string y = _builder.Node("Add", node.Name + "/Add", [ReadFloat(a, node.Name), ReadFloat(b, node.Name)], node.Name + "/add");
        WriteOutput(node, y, add.OutputQParams, add.Relu, rank);
    }

    /// <summary>Tensor × tensor (ONNX Mul broadcasts as PyTorch does): QLinearMul in QOperator form, DQ → Mul → Q otherwise.</summary>
    private void WriteMul(GraphNode node, QuantizedMul mul)
    {
        if (node.Inputs.Count != 2)
        {
            throw new InvalidOperationException($"{Model}.{node.Name}: mul reads two values, the graph gives it {node.Inputs.Count}.");
        }

        Value a = Input(node, 0, expectedRank: null), b = Input(node, 1, expectedRank: null);
        int rank = Math.Max(a.Rank, b.Rank);
        if (QOperator)
        {
            _values[node.Output] = QuantizedOp(node.Name, "QLinearMul", contrib: true, mul.OutputQParams, relu: false, rank, node.Name,
                (scale, zeroPoint) => [.. a.Operands, .. b.Operands, scale, zeroPoint]);
            return;
        }

        string y = _builder.Node("Mul", node.Name + "/Mul", [ReadFloat(a, node.Name), ReadFloat(b, node.Name)], node.Name + "/mul");
        WriteOutput(node, y, mul.OutputQParams, relu: false, rank);
    }

    /// <summary>
    /// Mul or add by a constant: the float op on the dequantized input with the constant as an initializer, quantized
    /// to the qparams aten gives the result (in both quantized forms; ONNX has no operator that only moves qparams).
    /// </summary>
    private void WriteConstantOp(GraphNode node, QuantizedConstantOp op)
    {
        Value input = Input(node, 0, expectedRank: null);
        string constant = _builder.Initializer(node.Name + ".constant", Float([], [(float)op.Constant]));
        string opType = op.Operator == ConstantOperator.Mul ? "Mul" : "Add";
        string y = _builder.Node(opType, node.Name + "/" + opType, [ReadFloat(input, node.Name), constant], node.Name + "/" + opType.ToLowerInvariant());
        if (!Quantized || input.QParams is null)
        {
            _values[node.Output] = new Value(y, null, null, null, input.Rank);
            return;
        }

        _values[node.Output] = QuantizeTo(y, op.OutputQParams(input.QParams), node.Name, input.Rank, reuse: null);
    }

    /// <summary>Mean over dims: ReduceMean (axes as an input from opset 18) between DequantizeLinear and QuantizeLinear in the input's qparams.</summary>
    private void WriteMean(GraphNode node, QuantizedMean mean)
    {
        Value input = Input(node, 0, expectedRank: null);
        long[] axes = Array.ConvertAll(mean.Dims, d => (long)(d < 0 ? d + input.Rank : d));
        int rank = mean.KeepDim ? input.Rank : input.Rank - axes.Length;
        string[] extra = [];
        var attributes = new List<AttributeProto> { Int("keepdims", mean.KeepDim ? 1 : 0) };
        if (_options.Opset >= 18)
        {
            extra = [_builder.Initializer(node.Name + ".axes", Int64([axes.Length], axes))];
        }
        else
        {
            attributes.Add(Ints("axes", axes));
        }

        string y = _builder.Node("ReduceMean", node.Name + "/ReduceMean", [ReadFloat(input, node.Name), .. extra], node.Name + "/reducemean", attributes.ToArray());
        _values[node.Output] = Quantized && input.QParams is not null
            ? QuantizeTo(y, input.QParams, node.Name, rank, reuse: input)
            : new Value(y, null, null, null, rank);
    }

    private void WriteCat(GraphNode node, QuantizedCat cat)
    {
        if (node.Inputs.Count == 0)
        {
            throw new InvalidOperationException($"{Model}.{node.Name}: cat reads no value.");
        }

        Value[] inputs = node.Inputs.Select((_, i) => Input(node, i, expectedRank: null)).ToArray();
        int rank = inputs[0].Rank;
        if (cat.Dim < -rank || cat.Dim >= rank)
        {
            throw new InvalidOperationException($"{Model}.{node.Name}: cat along dim {cat.Dim} of rank-{rank} inputs.");
        }

        if (QOperator)
        {
            _values[node.Output] = QuantizedOp(node.Name, "QLinearConcat", contrib: true, cat.OutputQParams, relu: false, rank, node.Name,
                (scale, zeroPoint) => [scale, zeroPoint, .. inputs.SelectMany(v => v.Operands)], Int("axis", cat.Dim));
            return;
        }

        string y = _builder.Node("Concat", node.Name + "/Concat", inputs.Select(v => ReadFloat(v, node.Name)), node.Name + "/concat",
            Int("axis", cat.Dim));
        WriteOutput(node, y, cat.OutputQParams, relu: false, rank);
    }

    private void WriteMaxPool(GraphNode node, QuantizedMaxPool2d pool)
    {
        Pool2dOptions o = pool.Options;
        Input(node, 0, expectedRank: 4);
        PassThrough(node, "MaxPool", [],
        [
            Ints("kernel_shape", o.KernelHeight, o.KernelWidth),
            Ints("strides", o.EffectiveStrideHeight, o.EffectiveStrideWidth),
            Ints("pads", o.PadHeight, o.PadWidth, o.PadHeight, o.PadWidth),
            Ints("dilations", o.DilationHeight, o.DilationWidth),
            Int("ceil_mode", o.CeilMode ? 1 : 0),
        ]);
    }

    private void WriteAvgPool(GraphNode node, QuantizedAvgPool2d pool)
    {
        Pool2dOptions o = pool.Options;
        if (o.DivisorOverride is int divisor)
        {
            throw new NotSupportedException($"{Model}.{node.Name}: avg_pool2d with divisor_override={divisor} has no ONNX AveragePool equivalent.");
        }

        Input(node, 0, expectedRank: 4);
        PassThrough(node, "AveragePool", [],
        [
            Ints("kernel_shape", o.KernelHeight, o.KernelWidth),
            Ints("strides", o.EffectiveStrideHeight, o.EffectiveStrideWidth),
            Ints("pads", o.PadHeight, o.PadWidth, o.PadHeight, o.PadWidth),
            Int("ceil_mode", o.CeilMode ? 1 : 0),
            Int("count_include_pad", o.CountIncludePad ? 1 : 0),
        ], qlinearOp: "QLinearAveragePool");
    }

    private void WriteAdaptiveAvgPool(GraphNode node, QuantizedAdaptiveAvgPool2d pool)
    {
        if (pool.OutputHeight != 1 || pool.OutputWidth != 1)
        {
            throw new NotSupportedException(
                $"{Model}.{node.Name}: adaptive_avg_pool2d to {pool.OutputHeight}x{pool.OutputWidth} has no ONNX operator; only output size (1, 1) exports (as GlobalAveragePool).");
        }

        Input(node, 0, expectedRank: 4);
        PassThrough(node, "GlobalAveragePool", [], [], qlinearOp: "QLinearGlobalAveragePool");
    }

    private void WriteUpsample(GraphNode node, QuantizedUpsampleNearest2d upsample)
    {
        Value input = Input(node, 0, expectedRank: 4);

        // PyTorch's 'nearest' reads source index floor(d * in / out): ONNX's asymmetric coordinates with floor.
        AttributeProto[] attributes =
        [
            String("mode", "nearest"),
            String("coordinate_transformation_mode", "asymmetric"),
            String("nearest_mode", "floor"),
        ];
        if (upsample.ScaleHeight is double scaleHeight && upsample.ScaleWidth is double scaleWidth)
        {
            string scales = _builder.Initializer(node.Name + ".scales", Float([4], [1f, 1f, (float)scaleHeight, (float)scaleWidth]));
            PassThrough(node, "Resize", ["", scales], attributes);
            return;
        }

        long outHeight = upsample.OutputHeight!.Value, outWidth = upsample.OutputWidth!.Value;
        if (_options.Opset >= 18)
        {
            string sizes = _builder.Initializer(node.Name + ".sizes", Int64([2], [outHeight, outWidth]));
            PassThrough(node, "Resize", ["", "", sizes], [.. attributes, Ints("axes", 2, 3)]);
            return;
        }

        // Before opset 18 sizes name every dimension: the input's N and C, then the fixed output size.
        // Read from the quantized tensor so its DequantizeLinear keeps the Resize as its only reader.
        string allSizes = ShapeWithTail(input.Name, node.Name, end: 2, [outHeight, outWidth]);
        PassThrough(node, "Resize", ["", "", allSizes], attributes);
    }

    private void WriteFlatten(GraphNode node, QuantizedFlatten flatten)
    {
        Value input = Input(node, 0, expectedRank: null);
        int rank = input.Rank;
        int start = flatten.StartDim < 0 ? flatten.StartDim + rank : flatten.StartDim;
        int end = flatten.EndDim < 0 ? flatten.EndDim + rank : flatten.EndDim;
        if (rank == 0 || start < 0 || end >= rank || start > end)
        {
            throw new InvalidOperationException($"{Model}.{node.Name}: flatten(start_dim={flatten.StartDim}, end_dim={flatten.EndDim}) of a rank-{rank} value.");
        }

        if (start == end)
        {
            // torch.flatten over a single dimension returns the input unchanged.
            _values[node.Output] = input;
            return;
        }

        if (end != rank - 1)
        {
            throw new NotSupportedException(
                $"{Model}.{node.Name}: flatten(start_dim={flatten.StartDim}, end_dim={flatten.EndDim}) keeps trailing dimensions whose sizes the exported graph does not know; only flattening through the last dimension exports.");
        }

        int outputRank = rank - (end - start);
        if (start == 1)
        {
            // ONNX Flatten makes [d0 ... d(axis-1), rest] only for axis 1 the same as torch.flatten(x, 1).
            PassThrough(node, "Flatten", [], [Int("axis", 1)], outputRank);
            return;
        }

        // Reshape's 0 copies the input's dimension at the same index: the leading ones stay, -1 takes the rest.
        long[] shape = [.. Enumerable.Repeat(0L, start), -1L];
        string target = _builder.Initializer(node.Name + ".shape", Int64([shape.Length], shape));
        PassThrough(node, "Reshape", [target], [], outputRank);
    }

    private void WriteReshape(GraphNode node, QuantizedReshape reshape)
    {
        Input(node, 0, expectedRank: null);
        int[] shape = reshape.Shape;
        if (Array.IndexOf(shape, 0) >= 0)
        {
            throw new NotSupportedException($"{Model}.{node.Name}: reshape to [{string.Join(", ", shape)}] has a zero-size dimension, which ONNX Reshape reads as 'copy the input's dimension'.");
        }

        string target = _builder.Initializer(node.Name + ".shape", Int64([shape.Length], shape.Select(d => (long)d).ToArray()));
        PassThrough(node, "Reshape", [target], [], shape.Length);
    }

    /// <summary>
    /// An op whose output has its input's qparams (max pool, average pools, resize, flatten, reshape, relu).
    /// QOperator form: the op on the integers themselves, or <paramref name="qlinearOp"/> (com.microsoft)
    /// given the input's qparams for its input and its output.
    /// </summary>
    private void PassThrough(GraphNode node, string opType, string[] extraInputs, AttributeProto[] attributes, int? outputRank = null, string? qlinearOp = null)
    {
        Value input = Input(node, 0, expectedRank: null);
        int rank = outputRank ?? input.Rank;
        if (QOperator)
        {
            string quantized = qlinearOp is null
                ? _builder.Node(opType, node.Name + "/" + opType, [input.Name, .. extraInputs], node.Name, attributes)
                : _builder.ContribNode(qlinearOp, node.Name + "/" + qlinearOp, [.. input.Operands, input.Scale!, input.ZeroPoint!], node.Name, attributes);
            _values[node.Output] = input with { Name = quantized, Rank = rank };
            return;
        }

        string y = _builder.Node(opType, node.Name + "/" + opType, [ReadFloat(input, node.Name), .. extraInputs], node.Name + "/" + opType.ToLowerInvariant(), attributes);
        _values[node.Output] = Quantized
            ? QuantizeTo(y, input.QParams!, node.Name, rank, reuse: input)
            : new Value(y, null, null, null, rank);
    }

    /// <summary>A standalone ReLU: max(q, zero point) on the integers in QOperator form (<see cref="ClampAtZeroPoint"/>), a float Relu otherwise.</summary>
    private void WriteRelu(GraphNode node)
    {
        if (QOperator)
        {
            _values[node.Output] = ClampAtZeroPoint(Input(node, 0, expectedRank: null), node.Name);
            return;
        }

        PassThrough(node, "Relu", [], []);
    }

    /// <summary>
    /// Hardtanh / ReLU6: Clip on the integers at the quantized bounds in QOperator form (exactly what the int8 op
    /// computes), a float Clip between DequantizeLinear and QuantizeLinear in the same qparams otherwise.
    /// </summary>
    private void WriteHardtanh(GraphNode node, QuantizedHardtanh clamp)
    {
        if (QOperator)
        {
            Value input = Input(node, 0, expectedRank: null);
            (int low, int high) = clamp.Bounds(input.QParams!);
            TensorProto Bound(int q) => input.QParams!.DType == QuantDType.QInt8
                ? OnnxGraphBuilder.Int8([], [(sbyte)q])
                : OnnxGraphBuilder.UInt8([], [(byte)q]);
            string lowName = _builder.Initializer(node.Name + "/min", Bound(low));
            string highName = _builder.Initializer(node.Name + "/max", Bound(high));
            _values[node.Output] = input with { Name = _builder.Node("Clip", node.Name + "/Clip", [input.Name, lowName, highName], node.Name) };
            return;
        }

        string min = _builder.Initializer(node.Name + "/min_val", OnnxGraphBuilder.Float([], [clamp.MinValue]));
        string max = _builder.Initializer(node.Name + "/max_val", OnnxGraphBuilder.Float([], [clamp.MaxValue]));
        PassThrough(node, "Clip", [min, max], []);
    }

    /// <summary>
    /// A unary op by table: its 256 output integers as a uint8 initializer, gathered by the input integers
    /// (Cast to int32, Gather) — the same table the int8 op uses, so the exported model computes exactly what it
    /// does, whatever the float function. Written for quint8 activations in the quantized forms.
    /// </summary>
    private void WriteElementwise(GraphNode node, QuantizedElementwise elementwise)
    {
        Value input = Input(node, 0, expectedRank: null);
        if (!Quantized || elementwise.InputQParams.DType != QuantDType.QUInt8 || elementwise.OutputQParams.DType != QuantDType.QUInt8
            || !WrittenAsUInt8(elementwise.InputQParams) || !WrittenAsUInt8(elementwise.OutputQParams))
        {
            throw new NotSupportedException($"{Model}.{node.Name}: {elementwise.Function} is exported as a table lookup on quint8 activations in the QDQ or QOperator form; this export writes {(Quantized ? "qint8 values" : "float values")} there.");
        }

        byte[] table = Array.ConvertAll(elementwise.Table, t => (byte)t);
        string tableName = _builder.Initializer(node.Name + ".table", OnnxGraphBuilder.UInt8([256], table));
        string indices = _builder.Node("Cast", node.Name + "/Cast", [input.Name], node.Name + "/indices", [OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Int32)]);
        string gathered = _builder.Node("Gather", node.Name + "/Gather", [tableName, indices], node.Name, [OnnxGraphBuilder.Int("axis", 0)]);
        (string scale, string zeroPoint) = ActivationQParams(elementwise.OutputQParams, node.Name);
        _values[node.Output] = new Value(gathered, elementwise.OutputQParams, scale, zeroPoint, input.Rank);
    }

    // The QOperator form's own ops: each reads quantized tensors with their qparams and writes the layer's
    // output quantized, as ONNX Runtime's quantizer writes with QuantFormat.QOperator — the kernels ORT
    // fuses the QDQ form into, written directly. Ops without a quantized operator in ORT (ConvTranspose,
    // BatchNormalization) take the QDQ form's path, DequantizeLinear → float op → QuantizeLinear; ops whose
    // output has the input's qparams and that ONNX defines on 8-bit integers (MaxPool, Resize, Flatten,
    // Reshape) run on the integers directly (PassThrough).

    /// <summary>
    /// QLinearConv: int8 weights (per-channel scales and zero points along axis 0, which ORT 1.31 takes even
    /// where the zero points differ), int32 bias at <c>sx · sw_c</c>.
    /// </summary>
    private void WriteQLinearConv(GraphNode node, Value input, QuantizedConv2d conv, float[] weightScales, AttributeProto[] attributes)
    {
        string[] weight = WriteQuantizedWeight(node.Name, conv.Weight, axis: 0, transpose: false).Operands;
        string[] bias = conv.Bias is { } b ? [WriteInt32Bias(node.Name, b, input, weightScales, out _)] : [];
        _values[node.Output] = QuantizedOp(node.Name, "QLinearConv", contrib: false, conv.OutputQParams, conv.FusedRelu, rank: 4, node.Name,
            (scale, zeroPoint) => [.. input.Operands, .. weight, scale, zeroPoint, .. bias],
            attributes);
    }

    /// <summary>
    /// com.microsoft QGemm (<c>transB = 1</c>, the weight as PyTorch stores it, per-column scales) with the
    /// int32 bias — what ORT makes of the QDQ form's Gemm. QLinearMatMul has no bias input, so a rank > 2
    /// input is flattened to 2-D around the QGemm (<c>[-1, in]</c>, then its own leading dimensions and
    /// <c>out</c>): the same arithmetic for every linear.
    /// </summary>
    private void WriteQGemm(GraphNode node, Value input, QuantizedLinear linear, float[] weightScales)
    {
        Value rows = input;
        if (input.Rank > 2)
        {
            string flat = _builder.Initializer(node.Name + ".rows_shape", Int64([2], [-1, linear.InFeatures]));
            rows = input with { Name = _builder.Node("Reshape", node.Name + "/ReshapeRows", [input.Name, flat], node.Name + "/rows"), Rank = 2 };
        }

        string[] weight = WriteQuantizedWeight(node.Name, linear.Weight, axis: 0, transpose: false).Operands;
        string bias = linear.Bias is { } b ? WriteInt32Bias(node.Name, b, rows, weightScales, out _) : string.Empty;
        Value y = QuantizedOp(node.Name, "QGemm", contrib: true, linear.OutputQParams, linear.FusedRelu, rank: 2, input.Rank > 2 ? node.Name + "/gemm" : node.Name,
            (scale, zeroPoint) => [.. rows.Operands, .. weight, bias, scale, zeroPoint],
            Float("alpha", 1f), Int("transB", 1));
        if (input.Rank > 2)
        {
            string shape = ShapeWithTail(input.Name, node.Name, end: -1, [linear.OutFeatures]);
            y = y with { Name = _builder.Node("Reshape", node.Name + "/Reshape", [y.Name, shape], node.Name), Rank = input.Rank };
        }

        _values[node.Output] = y;
    }

    /// <summary>
    /// A quantized operator writing <paramref name="output"/> in <paramref name="qparams"/>: <paramref name="inputs"/>
    /// places the output's scale and zero point initializers among its operands. A fused ReLU is the output's own
    /// saturation when the zero point is the dtype's minimum, and <see cref="ClampAtZeroPoint"/> otherwise.
    /// </summary>
    private Value QuantizedOp(string layer, string opType, bool contrib, QParams qparams, bool relu, int rank, string output, Func<string, string, string[]> inputs, params AttributeProto[] attributes)
    {
        (string scale, string zeroPoint) = ActivationQParams(qparams, layer);
        bool clamp = relu && !ReluIsSaturation(qparams);
        string name = clamp ? output + "/before_relu" : output;
        string[] operands = inputs(scale, zeroPoint);
        string quantized = contrib
            ? _builder.ContribNode(opType, layer + "/" + opType, operands, name, attributes)
            : _builder.Node(opType, layer + "/" + opType, operands, name, attributes);
        var value = new Value(quantized, qparams, scale, zeroPoint, rank);
        return clamp ? ClampAtZeroPoint(value, output) : value;
    }

    /// <summary>
    /// ReLU on a quantized tensor: <c>Clip(q, min = zero point)</c> on the integers, which is
    /// <c>max(q, zp)</c> — exactly quantize(max(x, 0)), as rounding commutes with max(·, 0).
    /// </summary>
    private Value ClampAtZeroPoint(Value value, string output) =>
        value with { Name = _builder.Node("Clip", output + "/Clip", [value.Name, value.ZeroPoint!], output) };

    /// <summary>
    /// Quantizes a float result with the layer's qparams (QDQ form, and QOperator's ops that stay in float)
    /// and records it as the node's output; applies a fused ReLU.
    /// </summary>
    private void WriteOutput(GraphNode node, string y, QParams qparams, bool relu, int rank)
    {
        if (relu && Qdq && !ReluIsSaturation(qparams))
        {
            // A ReLU above the dtype's minimum is not a clamp of the QuantizeLinear: quantize the op's output
            // (ORT fuses op → Q), then DQ → Relu → Q in the same qparams, which is max(q, zp) exactly.
            Value raw = QuantizeTo(y, qparams, node.Name + "/before_relu", rank, reuse: null);
            y = _builder.Node("Relu", node.Name + "/Relu", [ReadFloat(raw, node.Name + "/Relu")], node.Name + "/relu");
            _values[node.Output] = QuantizeTo(y, qparams, node.Name, rank, reuse: raw);
            return;
        }

        if (relu)
        {
            // Float form; a float op of the QOperator form (no fusion to keep); or the QuantizeLinear's clamp at
            // the zero point already is the ReLU, and ORT folds Relu → Q into the op.
            y = _builder.Node("Relu", node.Name + "/Relu", [y], node.Name + "/relu");
        }

        _values[node.Output] = Quantized
            ? QuantizeTo(y, qparams, node.Name, rank, reuse: null)
            : new Value(y, null, null, null, rank);
    }

    /// <summary>Whether max(·, 0) before quantizing is the quantization's own clamp: the zero point is the dtype's minimum.</summary>
    private static bool ReluIsSaturation(QParams qparams) => qparams.ZeroPoint == qparams.DType.Min();

    /// <summary>A QuantizeLinear of <paramref name="floatName"/>; its scale and zero point are new initializers, or <paramref name="reuse"/>'s when given (same qparams).</summary>
    private Value QuantizeTo(string floatName, QParams qparams, string layer, int rank, Value? reuse)
    {
        (string scale, string zeroPoint) = reuse is null ? ActivationQParams(qparams, layer) : (reuse.Scale!, reuse.ZeroPoint!);
        string quantized = _builder.Node("QuantizeLinear", layer + "/QuantizeLinear", [floatName, scale, zeroPoint], layer);
        return new Value(quantized, qparams, scale, zeroPoint, rank);
    }

    /// <summary>
    /// A per-tensor activation's scale and zero point as initializers. The zero point's type is the quantized
    /// tensor's: uint8 for quint8, int8 for qint8, or the other one with the zero point moved by 128 (the same
    /// values in the other view) — qint8 as uint8 when <see cref="OnnxExportOptions.ActivationsAsUInt8"/> is
    /// set, and in QOperator form every value in the input's type (<see cref="WrittenAsUInt8"/>).
    /// </summary>
    private (string Scale, string ZeroPoint) ActivationQParams(QParams qparams, string layer)
    {
        if (qparams.IsPerChannel)
        {
            throw new NotSupportedException($"{Model}.{layer}: activations with per-channel qparams ({qparams}) have no QuantizeLinear or QLinear operator here: they take one scale per tensor.");
        }

        int shift = qparams.DType == QuantDType.QUInt8 ? 0 : 128;
        string scale = _builder.Initializer(layer + ".output_scale", Float([], [qparams.Scale]));
        string zeroPoint = _builder.Initializer(layer + ".output_zero_point", WrittenAsUInt8(qparams)
            ? UInt8([], [(byte)(qparams.ZeroPoint + shift)])
            : Int8([], [(sbyte)(qparams.ZeroPoint + shift - 128)]));
        return (scale, zeroPoint);
    }

    /// <summary>Whether a value of these qparams is written as uint8 (else int8); see <see cref="ActivationQParams"/>.</summary>
    private bool WrittenAsUInt8(QParams qparams) => QOperator
        ? _activationsAsUInt8InQOperator
        : qparams.DType == QuantDType.QUInt8 || _options.ActivationsAsUInt8;

    /// <summary>
    /// The float tensor an int8 op's float form reads: a DequantizeLinear of its own of the quantized value (QDQ form,
    /// and QOperator's ops without a quantized operator) — also of a float op's result, which the int8 model quantizes
    /// for its int8 readers — or the value itself (float form).
    /// </summary>
    private string ReadFloat(Value value, string reader) =>
        Quantized && value.QParams is not null
            ? _builder.Node("DequantizeLinear", reader + "/DequantizeLinear", value.Operands, value.Name + "/dequantized")
            : value.Float ?? value.Name;

    /// <summary>What a float op reads: a float op's result (or a bound model's float input) as it is, as the int8 model hands it on; else <see cref="ReadFloat"/>.</summary>
    private string ReadForFloatOp(Value value, string reader) => value.Float ?? ReadFloat(value, reader);

    /// <summary>
    /// Whether an op that is not a float op reads <paramref name="value"/> (so it needs its quantized form). Float ops
    /// (a bound model's, or a fallback the mapping kept in float) read a float op's result in float.
    /// </summary>
    private bool HasInt8Readers(string value) =>
        _graph.Readers(value).Any(r => !(r.Op == GraphOp.FloatIsland && _layers.TryGetValue(r.Name, out IQuantizedLayer? layer) && StoredFloatOp(layer) is not null));

    /// <summary>
    /// The weight as an op input: an int8 initializer behind a DequantizeLinear (per-channel along
    /// <paramref name="axis"/>, or per-tensor) in QDQ form and for QOperator's float ops, the dequantized
    /// float values in float form.
    /// <paramref name="transpose"/> swaps a 2-D weight's dimensions (the axis moves with them).
    /// </summary>
    private string WeightInput(string layer, QTensor weight, int axis, bool transpose)
    {
        if (!Quantized)
        {
            CheckWeightAxis(layer, weight, axis);
            float[] values = weight.Dequantize();
            return _builder.Initializer(layer + ".weight", Float(WeightDims(weight, transpose), transpose ? Transpose(values, weight.Dim(0), weight.Dim(1)) : values));
        }

        QuantizedWeight w = WriteQuantizedWeight(layer, weight, axis, transpose);
        return w.Axis is int outputAxis
            ? _builder.Node("DequantizeLinear", layer + "/weight/DequantizeLinear", w.Operands, layer + ".weight", Int("axis", outputAxis))
            : _builder.Node("DequantizeLinear", layer + "/weight/DequantizeLinear", w.Operands, layer + ".weight");
    }

    /// <summary>
    /// The weight's int8 integers, scales and zero points as initializers (per-channel along
    /// <paramref name="axis"/>, or scalars): what a DequantizeLinear (QDQ) or a QLinearConv/QGemm reads.
    /// </summary>
    private QuantizedWeight WriteQuantizedWeight(string layer, QTensor weight, int axis, bool transpose)
    {
        CheckWeightAxis(layer, weight, axis);
        QParams qparams = weight.QParams;
        int[] ints = weight.IntRepr();
        if (transpose)
        {
            ints = Transpose(ints, weight.Dim(0), weight.Dim(1));
        }

        string quantized = _builder.Initializer(layer + ".weight_quantized", Int8(WeightDims(weight, transpose), ints.Select(v => (sbyte)v).ToArray()));
        if (qparams.IsPerChannel)
        {
            string scales = _builder.Initializer(layer + ".weight_scale", Float([qparams.Scales.Length], qparams.Scales));
            string zeroPoints = _builder.Initializer(layer + ".weight_zero_point", Int8([qparams.ZeroPoints.Length], qparams.ZeroPoints.Select(z => (sbyte)z).ToArray()));
            return new QuantizedWeight([quantized, scales, zeroPoints], transpose ? 1 - axis : axis);
        }

        string scale = _builder.Initializer(layer + ".weight_scale", Float([], [qparams.Scale]));
        string zeroPoint = _builder.Initializer(layer + ".weight_zero_point", Int8([], [(sbyte)qparams.ZeroPoint]));
        return new QuantizedWeight([quantized, scale, zeroPoint], null);
    }

    private void CheckWeightAxis(string layer, QTensor weight, int axis)
    {
        if (weight.QParams.IsPerChannel && weight.QParams.Axis != axis)
        {
            throw new NotSupportedException($"{Model}.{layer}: per-channel weights along axis {weight.QParams.Axis}; ONNX's {(axis == 0 ? "Conv/Gemm" : "ConvTranspose")} needs them along axis {axis}.");
        }
    }

    private static long[] WeightDims(QTensor weight, bool transpose)
    {
        long[] dims = weight.Shape.Select(d => (long)d).ToArray();
        return transpose ? [dims[1], dims[0]] : dims;
    }

    /// <summary>
    /// The bias as an op input, or null without one. QDQ form: the int32 bias (<see cref="WriteInt32Bias"/>)
    /// behind a DequantizeLinear (axis 0) — the form ORT turns into QLinearConv/QGemm's int32 bias. Float
    /// form: the float bias.
    /// </summary>
    private string? BiasInput(string layer, float[]? bias, Value input, float[] weightScales)
    {
        if (bias is null)
        {
            return null;
        }

        if (!Quantized)
        {
            return _builder.Initializer(layer + ".bias", Float([bias.Length], bias));
        }

        string values = WriteInt32Bias(layer, bias, input, weightScales, out float[] scales);
        string scale = _builder.Initializer(layer + ".bias_scale", Float([bias.Length], scales));
        string zeroPoint = _builder.Initializer(layer + ".bias_zero_point", Int32([bias.Length], new int[bias.Length]));
        return _builder.Node("DequantizeLinear", layer + "/bias/DequantizeLinear", [values, scale, zeroPoint], layer + ".bias", Int("axis", 0));
    }

    /// <summary>
    /// The bias as an int32 initializer, quantized with scale <c>input_scale · weight_scale_c</c>
    /// (<paramref name="scales"/>) and rounded as the Qnnpack preset does
    /// (<c>rne(bias_c · (1 / (sx · sw_c)))</c>, docs/numerics.md §4).
    /// </summary>
    private string WriteInt32Bias(string layer, float[] bias, Value input, float[] weightScales, out float[] scales)
    {
        float inputScale = input.QParams!.Scale;
        scales = new float[bias.Length];
        var quantized = new int[bias.Length];
        for (int c = 0; c < bias.Length; c++)
        {
            scales[c] = inputScale * weightScales[c];
            double rounded = Math.Round(bias[c] * (1.0f / scales[c]), MidpointRounding.ToEven);
            quantized[c] = (int)Math.Clamp(rounded, int.MinValue, int.MaxValue);
        }

        return _builder.Initializer(layer + ".bias_quantized", Int32([bias.Length], quantized));
    }

    /// <summary>
    /// The weight scale each output channel's accumulator is multiplied by: per-tensor repeated, or
    /// per-channel where entry <c>c % perGroup</c> serves output channel c (conv: perGroup = out
    /// channels; transposed conv: out channels / groups, its weights repeat per group).
    /// </summary>
    private static float[] WeightScalesPerOutputChannel(QTensor weight, int outChannels, int perGroup)
    {
        QParams qparams = weight.QParams;
        var scales = new float[outChannels];
        for (int c = 0; c < outChannels; c++)
        {
            scales[c] = qparams.IsPerChannel ? qparams.Scales[c % perGroup] : qparams.Scale;
        }

        return scales;
    }

    private Value Input(GraphNode node, int index, int? expectedRank)
    {
        if (index >= node.Inputs.Count)
        {
            throw new InvalidOperationException($"{Model}.{node.Name}: the graph gives the {node.Op} node {node.Inputs.Count} inputs, it reads input {index}.");
        }

        string name = node.Inputs[index];
        if (!_values.TryGetValue(name, out Value? value))
        {
            throw new InvalidOperationException($"{Model}.{node.Name}: reads '{name}', which no earlier node writes.");
        }

        if (expectedRank is int rank && value.Rank != rank)
        {
            throw new NotSupportedException($"{Model}.{node.Name}: {node.Op} expects a rank-{rank} input, '{name}' has rank {value.Rank}.");
        }

        return value;
    }

    private T Layer<T>(GraphNode node)
        where T : class, IQuantizedLayer
    {
        if (!_layers.TryGetValue(node.Name, out IQuantizedLayer? layer))
        {
            throw new InvalidOperationException($"{Model}.{node.Name}: the graph has this {node.Op} node but the model has no layer of that name (the layers are {string.Join(", ", _layers.Keys)}).");
        }

        return layer as T ?? throw WrongLayer(node, typeof(T), layer);
    }

    private InvalidOperationException WrongLayer(GraphNode node, Type expected, IQuantizedLayer actual) =>
        new($"{Model}.{node.Name}: a {node.Op} node needs a {expected.Name} layer, the model's is a {actual.GetType().Name}.");

    /// <summary>The input's rank and dimensions: the options' shape, or symbolic sizes around the channel count of the first layer that reads it.</summary>
    private (int Rank, IReadOnlyList<object> Dims) InputType()
    {
        if (_options.InputShape is { } shape)
        {
            var dims = shape.Select(d => (object)d).ToList();
            if (_options.DynamicBatch)
            {
                dims[0] = "batch";
            }

            return (shape.Length, dims);
        }

        object batch = "batch";
        if (_tokenInput)
        {
            // Token indices [batch, sequence], as text models take them (InputShape gives any other rank).
            return (2, [batch, "sequence"]);
        }

        // The first reader whose op fixes the rank tells it (a mean or a reshape reads any rank).
        GraphNode? quantize = _graph.Nodes.FirstOrDefault(n => n.Op == GraphOp.Quantize);
        GraphNode[] readers = quantize is null ? [] : _graph.Readers(quantize.Output).ToArray();
        // Only a reader of it as its first operand: an encoder's mask or a recurrent layer's initial state has another shape.
        GraphNode? reader = readers.FirstOrDefault(r => r.Inputs[0] == quantize!.Output && InputTypeFrom(Layer<IQuantizedLayer>(r), batch) is not null) ?? readers.FirstOrDefault();
        return (reader is null || reader.Inputs[0] != quantize!.Output ? null : InputTypeFrom(Layer<IQuantizedLayer>(reader), batch)) ?? throw new NotSupportedException(
            $"{Model}: the input's rank cannot be told from its readers ({(readers.Length == 0 ? "none" : string.Join(", ", readers.Select(r => $"{r.Name}, {r.Op}")))}); give OnnxExportOptions.InputShape.");
    }

    /// <summary>The input's rank and dimensions as the layer that reads it fixes them, or null when it reads any rank.</summary>
    private static (int Rank, IReadOnlyList<object> Dims)? InputTypeFrom(IQuantizedLayer layer, object batch) =>
        layer switch
        {
            FloatOp { Kind: FloatOpKind.DynamicRecurrent or FloatOpKind.Float16Recurrent } recurrent => recurrent.Ints[5] == 1
                ? (3, [batch, "sequence", checked((int)recurrent.Ints[1])])
                : (3, ["sequence", batch, checked((int)recurrent.Ints[1])]),
            FloatOp { Kind: FloatOpKind.DynamicEncoderLayer } encoder => (3, ["sequence", batch, checked((int)encoder.Ints[0])]),
            FloatOp { Kind: FloatOpKind.DynamicEncoder } encoder => (3, ["sequence", batch, checked((int)encoder.Ints[1])]),
            QuantizedConv2d conv => (4, [batch, conv.Options.InChannels, "height", "width"]),
            QuantizedConvTranspose2d conv => (4, [batch, conv.Options.InChannels, "height", "width"]),
            QuantizedBatchNorm2d batchNorm => (4, [batch, batchNorm.Channels, "height", "width"]),
            QuantizedMaxPool2d or QuantizedAvgPool2d or QuantizedAdaptiveAvgPool2d or QuantizedUpsampleNearest2d =>
                (4, [batch, "channels", "height", "width"]),
            QuantizedLinear linear => (2, [batch, linear.InFeatures]),
            FloatOp { Kind: FloatOpKind.DynamicLinear or FloatOpKind.Linear or FloatOpKind.Float16Linear } linear => (2, [batch, checked((int)linear.Ints[0])]),
            FloatOp { Kind: FloatOpKind.Conv2d or FloatOpKind.ConvTranspose2d } conv => (4, [batch, checked((int)conv.Ints[0]), "height", "width"]),
            _ => null,
        };

    /// <summary>
    /// A 1-D int64 shape: the first dimensions of <paramref name="tensor"/>, up to <paramref name="end"/>
    /// (a Slice index, negative from the back), then <paramref name="tail"/> — sizes the graph knows only in part.
    /// </summary>
    private string ShapeWithTail(string tensor, string layer, long end, long[] tail)
    {
        string shape = _builder.Node("Shape", layer + "/Shape", [tensor], layer + "/input_shape");
        string starts = _builder.Initializer(layer + ".slice_starts", Int64([1], [0]));
        string ends = _builder.Initializer(layer + ".slice_ends", Int64([1], [end]));
        string leading = _builder.Node("Slice", layer + "/Slice", [shape, starts, ends], layer + "/leading_dims");
        string trailing = _builder.Initializer(layer + ".trailing_dims", Int64([tail.Length], tail));
        return _builder.Node("Concat", layer + "/ConcatSizes", [leading, trailing], layer + "/sizes", Int("axis", 0));
    }

    private static T[] Transpose<T>(T[] values, int rows, int columns)
    {
        var result = new T[values.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < columns; c++)
            {
                result[(c * rows) + r] = values[(r * columns) + c];
            }
        }

        return result;
    }

    /// <summary>
    /// One QuantGen value in the ONNX graph: in QDQ and QOperator form the quantized tensor and the names of
    /// its scale and zero point initializers; in float form the float tensor (no qparams).
    /// </summary>
    private sealed record Value(string Name, QParams? QParams, string? Scale, string? ZeroPoint, int Rank)
    {
        /// <summary>The value in float, when a float op wrote it: float readers take it as it is (the int8 ones its quantized form).</summary>
        public string? Float { get; init; }

        /// <summary>The tensor, its scale and its zero point: how DequantizeLinear and the QLinear operators read a quantized operand.</summary>
        public string[] Operands => [Name, Scale!, ZeroPoint!];
    }

    /// <summary>A weight's int8 initializer, scale and zero point (<see cref="Operands"/>), and the per-channel axis in the written layout (null per-tensor).</summary>
    private sealed record QuantizedWeight(string[] Operands, int? Axis);
}
