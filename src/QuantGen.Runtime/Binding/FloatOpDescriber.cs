using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Modules;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Binding;

/// <summary>
/// Describes a bound op that stays float as a <see cref="FloatOp"/> (its constants and weights as data), so a
/// converted model with float ops can be saved and exported. An op it cannot describe — a user's module class
/// whose forward was not captured, a TorchSharp module with no description here — keeps running in-process, and
/// Save/export name it and say why.
/// </summary>
internal static class FloatOpDescriber
{
    /// <summary>The op as a <see cref="FloatOp"/>, or null with <paramref name="why"/> when it cannot be described.</summary>
    /// <param name="model">The model's name.</param>
    /// <param name="op">The bound op.</param>
    /// <param name="fused">The fused float module the op runs (FusedConv2d, ...), when it has one.</param>
    /// <param name="output">Quantizes the op's result.</param>
    /// <param name="why">Why the op cannot be described.</param>
    public static FloatOp? Describe(string model, BoundOp op, object? fused, QuantizeInput output, out string? why)
    {
        why = null;
        try
        {
            FloatOp? described = DescribeOrNull(model, op, fused, output);
            if (described is null)
            {
                why = op.Kind == BoundKind.FloatModule && op.Module is not null && CapturedModules.WhyNotCaptured(op.Module.GetType()) is { } notCaptured
                    ? $"it runs {op.TypeName}'s own forward, which the generator could not capture ({notCaptured})"
                    : $"it runs a {op.TypeName}, which QuantGen cannot describe as data (only its TorchSharp module knows what it computes)";
            }

            return described;
        }
        catch (Exception e) when (e is NotSupportedException or ArgumentException)
        {
            why = e.Message;
            return null;
        }
    }

    private static FloatOp? DescribeOrNull(string model, BoundOp op, object? fused, QuantizeInput output)
    {
        string layer = op.Name;
        int inputs = op.Inputs.Length;
        bool relu = op.FusedRelu is not null;
        FloatOp Op(FloatOpKind kind, long[]? ints = null, double[]? floats = null, string text = "", FloatOpTensor[]? tensors = null, bool fusedRelu = false) =>
            new(model, layer, kind, text, ints ?? Array.Empty<long>(), floats ?? Array.Empty<double>(), tensors ?? Array.Empty<FloatOpTensor>(), fusedRelu, inputs, output);

        // Weighted ops: the fused float module the op runs (BatchNorm folded in, as PyTorch's fused modules are);
        // a [NoQuantize] or uncaptured conv/linear module is read as it is.
        IDisposable? readHere = null;
        fused ??= readHere = op.Module switch
        {
            Conv2d conv when op.Kind is BoundKind.FloatModule => FusedConv2d.Create(model, layer, conv, null, relu: false),
            ConvTranspose2d conv when op.Kind is BoundKind.FloatModule => FusedConvTranspose2d.Create(model, layer, conv, null, relu: false),
            Linear linear when op.Kind is BoundKind.FloatModule => FusedLinear.Create(model, layer, linear, relu: false),
            BatchNorm2d norm when op.Kind is BoundKind.FloatModule => FusedBatchNorm2d.Create(model, layer, norm, relu: false),
            _ => null,
        };
        using (readHere)
        {
            if (fused is not null)
            {
                return Weighted(model, layer, fused, inputs, output);
            }
        }

        switch (op.Kind)
        {
            case BoundKind.Conv2d or BoundKind.ConvTranspose2d or BoundKind.Linear or BoundKind.BatchNorm2d:
                return null;
            case BoundKind.ReLU:
                return Op(FloatOpKind.ReLU);
            case BoundKind.Hardtanh:
                return Op(FloatOpKind.Hardtanh, floats: [op.Floats[0], op.Floats[1]]);
            case BoundKind.Add:
                return Op(FloatOpKind.Add, fusedRelu: relu);
            case BoundKind.Cat:
                return Op(FloatOpKind.Cat, [op.Ints[0]]);
            case BoundKind.Mul:
                return Op(FloatOpKind.Mul);
            case BoundKind.MulConstant:
                return Op(FloatOpKind.MulConstant, floats: [op.Floats[0]]);
            case BoundKind.AddConstant:
                return Op(FloatOpKind.AddConstant, floats: [op.Floats[0]]);
            case BoundKind.Mean:
                return Op(FloatOpKind.Mean, Array.ConvertAll(op.Ints, i => (long)i));
            case BoundKind.Flatten:
                return Op(FloatOpKind.Flatten, [op.Ints[0], op.Ints[1]]);
            case BoundKind.Reshape:
                return Op(FloatOpKind.Reshape, Array.ConvertAll(op.Ints, i => (long)i));
            case BoundKind.MaxPool2d:
            {
                Pool2dOptions o = BoundObservedModel.MaxPoolOptions((MaxPool2d)op.Module!);
                return Op(FloatOpKind.MaxPool2d, [o.KernelHeight, o.KernelWidth, o.EffectiveStrideHeight, o.EffectiveStrideWidth, o.PadHeight, o.PadWidth, o.DilationHeight, o.DilationWidth, o.CeilMode ? 1 : 0]);
            }

            case BoundKind.AvgPool2d:
            {
                Pool2dOptions o = BoundObservedModel.AvgPoolOptions((AvgPool2d)op.Module!);
                return Op(FloatOpKind.AvgPool2d, [o.KernelHeight, o.KernelWidth, o.EffectiveStrideHeight, o.EffectiveStrideWidth, o.PadHeight, o.PadWidth, o.CeilMode ? 1 : 0, o.CountIncludePad ? 1 : 0, o.DivisorOverride ?? 0]);
            }

            case BoundKind.AdaptiveAvgPool2d:
                return op.Module is AdaptiveAvgPool2d pool
                    ? Op(FloatOpKind.AdaptiveAvgPool2d, [BoundObservedModel.OutputSize(pool, 0), BoundObservedModel.OutputSize(pool, 1)])
                    : Op(FloatOpKind.AdaptiveAvgPool2d, [op.Ints[0], op.Ints[1]]);
            case BoundKind.Elementwise:
                return Elementwise(op.Module!) is { } parameters ? Op(FloatOpKind.Elementwise, floats: parameters, text: op.TypeName) : null;
            case BoundKind.FloatFunction when op.FunctionOwner is { } owner:
                return Op(FloatOpKind.Function, [op.FunctionNode], floats: op.ScalarValues, text: $"{owner.ModuleType.FullName}|{owner.Hash}");
            case BoundKind.FloatModule:
                return op.Module switch
                {
                    Embedding embedding => EmbeddingOp(model, layer, embedding, Op),
                    PixelShuffle shuffle => Op(FloatOpKind.PixelShuffle, [shuffle.upscale_factor]),
                    PixelUnshuffle unshuffle => Op(FloatOpKind.PixelUnshuffle, [unshuffle.downscale_factor]),
                    Softmax softmax => Op(FloatOpKind.Softmax, [softmax.dim]),
                    LogSoftmax logSoftmax => Op(FloatOpKind.LogSoftmax, [logSoftmax.dim]),
                    Upsample upsample => Upsample(upsample, Op),
                    LayerNorm norm => Op(FloatOpKind.LayerNorm, (long[])norm.normalized_shape.Clone(), [norm.eps], tensors: Affine(norm.weight, norm.bias)),
                    GroupNorm norm => Op(FloatOpKind.GroupNorm, [norm.num_groups], [norm.eps], tensors: Affine(norm.weight, norm.bias)),
                    ReLU => Op(FloatOpKind.ReLU),
                    ReLU6 => Op(FloatOpKind.Hardtanh, floats: [0, 6]),
                    Hardtanh hardtanh => Op(FloatOpKind.Hardtanh, floats: [hardtanh.min_val, hardtanh.max_val]),
                    nn.Module module when Elementwise(module) is { } moduleParameters => Op(FloatOpKind.Elementwise, floats: moduleParameters, text: module.GetType().Name),
                    _ => null,
                };
            default:
                return null;
        }
    }

    /// <summary>A fused float module (conv, transposed conv, linear, batch norm) as a float op reading one input.</summary>
    /// <exception cref="ArgumentException">Not one of the fused modules.</exception>
    public static FloatOp OfFused(string model, string layer, object fused, QuantizeInput output) =>
        Weighted(model, layer, fused, 1, output) ?? throw new ArgumentException($"{model}.{layer}: a {fused.GetType().Name} is not a fused float module.", nameof(fused));

    /// <summary>
    /// Element <paramref name="element"/> of a dynamic LSTM/GRU call as a float op: the layer's integer weights, their
    /// qparams and float biases per cell (each element read stores its own copy, and after Load runs the layer itself).
    /// </summary>
    /// <exception cref="ArgumentException">Not a dynamic LSTM or GRU.</exception>
    public static FloatOp OfDynamicRecurrent(string model, string layer, object dynamic, int element, int inputs, QuantizeInput output)
    {
        (string type, Dynamic.RecurrentShape shape, QuantBackend backend, Func<int, Dynamic.DynamicQuantizedLinear> ih, Func<int, Dynamic.DynamicQuantizedLinear> hh) = dynamic switch
        {
            Dynamic.DynamicQuantizedLSTM lstm => ("LSTM", lstm.Shape, lstm.Backend, (Func<int, Dynamic.DynamicQuantizedLinear>)lstm.InputProjection, (Func<int, Dynamic.DynamicQuantizedLinear>)lstm.HiddenProjection),
            Dynamic.DynamicQuantizedGRU gru => ("GRU", gru.Shape, gru.Backend, gru.InputProjection, gru.HiddenProjection),
            _ => throw new ArgumentException($"{model}.{layer}: a {dynamic?.GetType().Name ?? "null"} is not a dynamic LSTM or GRU.", nameof(dynamic)),
        };
        var tensors = new List<FloatOpTensor>();
        bool perChannel = ih(0).Weight.QParams.IsPerChannel;
        bool bias = ih(0).Bias is not null;
        for (int cell = 0; cell < shape.Cells; cell++)
        {
            string suffix = shape.CellSuffix(cell);
            foreach ((string name, Dynamic.DynamicQuantizedLinear projection) in new[] { ($"weight_ih_{suffix}", ih(cell)), ($"weight_hh_{suffix}", hh(cell)) })
            {
                QParams q = projection.Weight.QParams;
                tensors.Add(Int8Weight(name, projection));
                tensors.Add(Vector(name + "_scale", q.Scales));
                tensors.Add(Vector(name + "_zero_point", Array.ConvertAll(q.ZeroPoints, z => (float)z)));
            }

            if (bias)
            {
                tensors.Add(Vector($"bias_ih_{suffix}", ih(cell).Bias!));
                tensors.Add(Vector($"bias_hh_{suffix}", hh(cell).Bias!));
            }
        }

        long[] ints = [element, shape.InputSize, shape.HiddenSize, shape.NumLayers, shape.Bidirectional ? 1 : 0, shape.BatchFirst ? 1 : 0, (long)backend, perChannel ? 1 : 0, bias ? 1 : 0];
        return new FloatOp(model, layer, FloatOpKind.DynamicRecurrent, type, ints, [], tensors, relu: false, inputs, output);
    }

    /// <summary>
    /// A dynamic Transformer encoder layer as a float op: each projection's integer weights, qparams and bias, the norms,
    /// and which of the op's inputs are the source, the attention mask and the key padding mask.
    /// </summary>
    /// <param name="model">Model name.</param>
    /// <param name="layer">The op's name.</param>
    /// <param name="encoder">The converted layer.</param>
    /// <param name="slots">The call's slots: per parameter (src, src_mask, src_key_padding_mask) the input it reads, or −1.</param>
    /// <param name="output">Its result's quantizer.</param>
    public static FloatOp OfDynamicEncoderLayer(string model, string layer, Dynamic.DynamicQuantizedTransformerEncoderLayer encoder, int[] slots, QuantizeInput output)
    {
        var tensors = new List<FloatOpTensor>();
        AddEncoderLayer(tensors, "", encoder);
        long Slot(int parameter) => parameter < slots.Length ? slots[parameter] : -1;
        bool perChannel = encoder.InProjection.Weight.QParams.IsPerChannel;
        long[] ints = [encoder.ModelDim, encoder.Heads, encoder.FeedForward, (long)encoder.Activation, (long)encoder.Backend, perChannel ? 1 : 0, Slot(1), Slot(2)];
        int inputs = slots.Where(s => s >= 0).Distinct().Count();
        return new FloatOp(model, layer, FloatOpKind.DynamicEncoderLayer, "", ints, [encoder.Eps], tensors, relu: false, inputs, output);
    }

    /// <summary>A dynamic TransformerEncoder as a float op: the number of layers first, then as one layer, each layer's tensors under "layers.{i}.".</summary>
    /// <param name="model">Model name.</param>
    /// <param name="layer">The op's name.</param>
    /// <param name="encoder">The converted encoder.</param>
    /// <param name="slots">The call's slots: per parameter (src, mask, src_key_padding_mask) the input it reads, or −1.</param>
    /// <param name="output">Its result's quantizer.</param>
    public static FloatOp OfDynamicEncoder(string model, string layer, Dynamic.DynamicQuantizedTransformerEncoder encoder, int[] slots, QuantizeInput output)
    {
        var tensors = new List<FloatOpTensor>();
        for (int i = 0; i < encoder.Layers.Count; i++)
        {
            AddEncoderLayer(tensors, $"layers.{i}.", encoder.Layers[i]);
        }

        Dynamic.DynamicQuantizedTransformerEncoderLayer first = encoder.Layers[0];
        long Slot(int parameter) => parameter < slots.Length ? slots[parameter] : -1;
        bool perChannel = first.InProjection.Weight.QParams.IsPerChannel;
        long[] ints = [encoder.Layers.Count, first.ModelDim, first.Heads, first.FeedForward, (long)first.Activation, (long)first.Backend, perChannel ? 1 : 0, Slot(1), Slot(2)];
        int inputs = slots.Where(s => s >= 0).Distinct().Count();
        return new FloatOp(model, layer, FloatOpKind.DynamicEncoder, "", ints, [first.Eps], tensors, relu: false, inputs, output);
    }

    /// <summary>
    /// Element <paramref name="element"/> of a dynamic MultiheadAttention call as a float op: in_proj's and out_proj's integer
    /// weights, qparams and biases, and which of the op's inputs the call's arguments are (each element read stores its own
    /// copy, and after Load runs the layer itself).
    /// </summary>
    /// <param name="model">Model name.</param>
    /// <param name="layer">The op's name.</param>
    /// <param name="attention">The converted layer.</param>
    /// <param name="element">0 attn_output, 1 attn_output_weights.</param>
    /// <param name="slots">The call's slots: query, key, value, key_padding_mask, need_weights, attn_mask (see <see cref="TupleModuleCall.Slots"/>).</param>
    /// <param name="output">Its result's quantizer.</param>
    public static FloatOp OfDynamicMultiheadAttention(string model, string layer, Dynamic.DynamicQuantizedMultiheadAttention attention, int element, int[] slots, QuantizeInput output)
    {
        ArgumentNullException.ThrowIfNull(attention);
        ArgumentNullException.ThrowIfNull(slots);
        var tensors = new List<FloatOpTensor>();
        AddProjection(tensors, "in_proj", attention.InProjection);
        AddProjection(tensors, "out_proj", attention.OutProjection);
        bool perChannel = attention.InProjection.Weight.QParams.IsPerChannel;
        long[] ints = [element, attention.EmbedDim, attention.Heads, (long)attention.Backend, perChannel ? 1 : 0, slots[0], slots[1], slots[2], slots[3], slots[4] == ArgumentsCall.ConstantTrue ? 1 : 0, slots[5]];
        return new FloatOp(model, layer, FloatOpKind.DynamicMultiheadAttention, "", ints, [], tensors, relu: false, slots.Max() + 1, output);
    }

    private static void AddProjection(List<FloatOpTensor> tensors, string name, Dynamic.DynamicQuantizedLinear projection)
    {
        QParams q = projection.Weight.QParams;
        tensors.Add(Int8Weight(name + ".weight", projection));
        tensors.Add(Vector(name + ".weight_scale", q.Scales));
        tensors.Add(Vector(name + ".weight_zero_point", Array.ConvertAll(q.ZeroPoints, z => (float)z)));
        if (projection.Bias is { } bias)
        {
            tensors.Add(Vector(name + ".bias", bias));
        }
    }

    private static void AddEncoderLayer(List<FloatOpTensor> tensors, string prefix, Dynamic.DynamicQuantizedTransformerEncoderLayer encoder)
    {
        foreach ((string name, Dynamic.DynamicQuantizedLinear projection) in new[] { ("in_proj", encoder.InProjection), ("out_proj", encoder.OutProjection), ("linear1", encoder.Linear1), ("linear2", encoder.Linear2) })
        {
            AddProjection(tensors, prefix + name, projection);
        }

        (float[] norm1Weight, float[] norm1Bias, float[] norm2Weight, float[] norm2Bias) = encoder.Norms;
        tensors.Add(Vector(prefix + "norm1.weight", norm1Weight));
        tensors.Add(Vector(prefix + "norm1.bias", norm1Bias));
        tensors.Add(Vector(prefix + "norm2.weight", norm2Weight));
        tensors.Add(Vector(prefix + "norm2.bias", norm2Bias));
    }
    /// <summary>A float16-weight Linear as a float op: its float16 weight, float32 bias, and the fused ReLU as the op's.</summary>
    public static FloatOp OfFloat16Linear(string model, string layer, Dynamic.Float16Linear linear, bool relu, QuantizeInput output)
    {
        ArgumentNullException.ThrowIfNull(linear);
        var tensors = new List<FloatOpTensor> { Float16("weight", [linear.OutFeatures, linear.InFeatures], linear.Weight) };
        if (linear.Bias is { } bias)
        {
            tensors.Add(Vector("bias", bias));
        }

        return new FloatOp(model, layer, FloatOpKind.Float16Linear, "", [linear.InFeatures, linear.OutFeatures], [], tensors, relu || linear.FusedRelu, 1, output);
    }

    /// <summary>
    /// Element <paramref name="element"/> of a float16-weight LSTM/GRU call as a float op: per cell the float16 weights and
    /// float32 biases (each element read stores its own copy, and after Load runs the layer itself).
    /// </summary>
    /// <exception cref="ArgumentException">Not a float16-weight LSTM or GRU.</exception>
    public static FloatOp OfFloat16Recurrent(string model, string layer, object float16, int element, int inputs, QuantizeInput output)
    {
        (string type, Dynamic.RecurrentShape shape, Func<int, Dynamic.Float16Linear> ih, Func<int, Dynamic.Float16Linear> hh) = float16 switch
        {
            Dynamic.Float16LSTM lstm => ("LSTM", lstm.Shape, (Func<int, Dynamic.Float16Linear>)lstm.InputProjection, (Func<int, Dynamic.Float16Linear>)lstm.HiddenProjection),
            Dynamic.Float16GRU gru => ("GRU", gru.Shape, gru.InputProjection, gru.HiddenProjection),
            _ => throw new ArgumentException($"{model}.{layer}: a {float16?.GetType().Name ?? "null"} is not a float16-weight LSTM or GRU.", nameof(float16)),
        };
        var tensors = new List<FloatOpTensor>();
        bool bias = ih(0).Bias is not null;
        for (int cell = 0; cell < shape.Cells; cell++)
        {
            string suffix = shape.CellSuffix(cell);
            foreach ((string name, Dynamic.Float16Linear projection) in new[] { ($"weight_ih_{suffix}", ih(cell)), ($"weight_hh_{suffix}", hh(cell)) })
            {
                tensors.Add(Float16(name, [projection.OutFeatures, projection.InFeatures], projection.Weight));
            }

            if (bias)
            {
                tensors.Add(Vector($"bias_ih_{suffix}", ih(cell).Bias!));
                tensors.Add(Vector($"bias_hh_{suffix}", hh(cell).Bias!));
            }
        }

        long[] ints = [element, shape.InputSize, shape.HiddenSize, shape.NumLayers, shape.Bidirectional ? 1 : 0, shape.BatchFirst ? 1 : 0, bias ? 1 : 0];
        return new FloatOp(model, layer, FloatOpKind.Float16Recurrent, type, ints, [], tensors, relu: false, inputs, output);
    }

    private static FloatOpTensor Float16(string name, int[] shape, Half[] values) =>
        new(name, shape, Dynamic.Float16Weights.Widen(values)) { ElementType = FloatOpElementType.Float16 };

    private static FloatOp EmbeddingOp(string model, string layer, Embedding embedding, Func<FloatOpKind, long[]?, double[]?, string, FloatOpTensor[]?, bool, FloatOp> op)
    {
        (float[] weight, int rows, int dim) = Dynamic.QuantizedEmbeddingBag.ReadTable($"{model}.{layer}", embedding.weight);
        return op(FloatOpKind.Embedding, [rows, dim], null, "", [new FloatOpTensor("weight", [rows, dim], weight)], false);
    }

    /// <summary>
    /// A weight-only Embedding as a float op: its rows' values (one byte each for 8-bit rows, two per byte for 4-bit ones)
    /// with each row's scale and bias (float32 for 8-bit rows, float16 for 4-bit ones, as the packed table holds them).
    /// </summary>
    public static FloatOp OfWeightOnlyEmbedding(string model, string layer, Dynamic.QuantizedEmbedding table, QuantizeInput output)
    {
        ArgumentNullException.ThrowIfNull(table);
        Dynamic.RowwiseQuantizedTable rowwise = table.Table;
        int rows = table.NumEmbeddings, dim = table.EmbeddingDim;
        var values = new float[(long)rows * dim];
        var scales = new float[rows];
        var biases = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < dim; j++)
            {
                values[((long)r * dim) + j] = rowwise.Value(r, j);
            }

            scales[r] = rowwise.Scale(r);
            biases[r] = rowwise.Bias(r);
        }

        bool nibbles = rowwise.BitWidth == 4;
        FloatOpElementType qparamType = nibbles ? FloatOpElementType.Float16 : FloatOpElementType.Float32;
        FloatOpTensor[] tensors =
        [
            new FloatOpTensor("rows", [rows, dim], values) { ElementType = nibbles ? FloatOpElementType.UInt4 : FloatOpElementType.UInt8 },
            Vector("scale", scales) with { ElementType = qparamType },
            Vector("bias", biases) with { ElementType = qparamType },
        ];
        long[] ints = nibbles ? [rows, dim, 4] : [rows, dim];
        return new FloatOp(model, layer, FloatOpKind.WeightOnlyEmbedding, "", ints, [], tensors, relu: false, 1, output);
    }

    private static FloatOp? Weighted(string model, string layer, object fused, int inputs, QuantizeInput output)
    {
        FloatOp Op(FloatOpKind kind, long[]? ints = null, double[]? floats = null, string text = "", FloatOpTensor[]? tensors = null, bool fusedRelu = false) =>
            new(model, layer, kind, text, ints ?? Array.Empty<long>(), floats ?? Array.Empty<double>(), tensors ?? Array.Empty<FloatOpTensor>(), fusedRelu, inputs, output);
        switch (fused)
        {
            case FusedConv2d conv:
            {
                Conv2dOptions o = conv.Options;
                return Op(FloatOpKind.Conv2d,
                    [o.InChannels, o.OutChannels, o.KernelHeight, o.KernelWidth, o.StrideHeight, o.StrideWidth, o.PadHeight, o.PadWidth, o.DilationHeight, o.DilationWidth, o.Groups],
                    tensors: Weights(conv.Weight, conv.WeightShape, conv.Bias), fusedRelu: conv.Relu);
            }

            case FusedConvTranspose2d conv:
            {
                ConvTranspose2dOptions o = conv.Options;
                return Op(FloatOpKind.ConvTranspose2d,
                    [o.InChannels, o.OutChannels, o.KernelHeight, o.KernelWidth, o.StrideHeight, o.StrideWidth, o.PadHeight, o.PadWidth, o.OutputPadHeight, o.OutputPadWidth, o.DilationHeight, o.DilationWidth, o.Groups],
                    tensors: Weights(conv.Weight, conv.WeightShape, conv.Bias), fusedRelu: conv.Relu);
            }

            case FusedLinear linear:
                return Op(FloatOpKind.Linear, [linear.InFeatures, linear.OutFeatures, linear.BatchNormFeatures ?? -1],
                    tensors: Weights(linear.Weight, [linear.OutFeatures, linear.InFeatures], linear.Bias), fusedRelu: linear.Relu);
            case Dynamic.DynamicQuantizedLinear dynamic:
            {
                QParams q = dynamic.Weight.QParams;
                var tensors = new List<FloatOpTensor>
                {
                    Int8Weight("weight", dynamic),
                    Vector("weight_scale", q.Scales),
                    Vector("weight_zero_point", Array.ConvertAll(q.ZeroPoints, z => (float)z)),
                };
                if (dynamic.Bias is { } bias)
                {
                    tensors.Add(Vector("bias", bias));
                }

                return Op(FloatOpKind.DynamicLinear, [dynamic.InFeatures, dynamic.OutFeatures, (long)dynamic.Backend, q.IsPerChannel ? 1 : 0], tensors: tensors.ToArray(), fusedRelu: dynamic.FusedRelu);
            }

            case FusedBatchNorm2d norm:
            {
                (float[] mean, float[] variance, float[]? gamma, float[]? beta, double eps) = norm.Statistics;
                var tensors = new List<FloatOpTensor> { Vector("running_mean", mean), Vector("running_var", variance) };
                if (gamma is not null)
                {
                    tensors.Add(Vector("weight", gamma));
                }

                if (beta is not null)
                {
                    tensors.Add(Vector("bias", beta));
                }

                return Op(FloatOpKind.BatchNorm2d, floats: [eps], tensors: tensors.ToArray(), fusedRelu: norm.Relu);
            }

            default:
                return null;
        }
    }

    private delegate FloatOp OpFactory(FloatOpKind kind, long[]? ints = null, double[]? floats = null, string text = "", FloatOpTensor[]? tensors = null, bool fusedRelu = false);

    private static FloatOp? Upsample(Upsample upsample, OpFactory op)
    {
        long align = upsample.align_corners is bool a ? (a ? 1 : 0) : -1;
        long recompute = upsample.recompute_scale_factor == true ? 1 : 0;
        ReadOnlySpan<long> size = upsample.size;
        ReadOnlySpan<double> scale = upsample.scale_factor;
        if (size.Length > 0)
        {
            return size.Length is 1 or 2
                ? op(FloatOpKind.Upsample, [size[0], size[^1], align, recompute], text: upsample.mode.ToString())
                : throw new NotSupportedException($"Upsample with a {size.Length}-element size is not a 2-D upsample.");
        }

        return scale.Length is 1 or 2
            ? op(FloatOpKind.Upsample, [align, recompute], [scale[0], scale[^1]], text: upsample.mode.ToString())
            : throw new NotSupportedException("Upsample has neither a size nor a 2-D scale factor.");
    }

    /// <summary>An elementwise module's parameters (in <see cref="FloatOpKind.Elementwise"/>'s order), or null for another module.</summary>
    private static double[]? Elementwise(nn.Module module) => module switch
    {
        LeakyReLU m => [m.negative_slope],
        ELU m => [m.alpha],
        CELU m => [m.alpha],
        GELU m => [m.approximate == TorchSharp.Modules.GELU.Approximate.tanh ? 1 : 0],
        Softplus m => [m.beta, m.threshold],
        Hardswish or Hardsigmoid or SiLU or Sigmoid or Tanh or SELU or Mish or Softsign or Tanhshrink or LogSigmoid => Array.Empty<double>(),
        _ => null,
    };

    private static FloatOpTensor[] Weights(float[] weight, int[] shape, float[]? bias) =>
        bias is null ? [new("weight", shape, weight)] : [new("weight", shape, weight), Vector("bias", bias)];

    private static FloatOpTensor Vector(string name, float[] values) => new(name, [values.Length], values);

    /// <summary>A dynamic projection's qint8 weight [out, in], stored one byte per value.</summary>
    private static FloatOpTensor Int8Weight(string name, Dynamic.DynamicQuantizedLinear projection) =>
        new(name, [projection.OutFeatures, projection.InFeatures], Array.ConvertAll(projection.Weight.IntRepr(), v => (float)v)) { ElementType = FloatOpElementType.Int8 };

    private static FloatOpTensor[] Affine(Tensor? weight, Tensor? bias)
    {
        var tensors = new List<FloatOpTensor>(2);
        foreach ((string name, Tensor? tensor) in new[] { ("weight", weight), ("bias", bias) })
        {
            if (tensor is not null)
            {
                using Tensor detached = tensor.detach();
                float[] values = TensorInterop.ToArray(detached, out int[] shape);
                tensors.Add(new FloatOpTensor(name, shape, values));
            }
        }

        return tensors.ToArray();
    }
}
