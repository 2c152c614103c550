using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using QuantGen.Binding;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>What a <see cref="FloatOp"/> computes. The numbers are part of the <c>.qgen</c> format (docs/model-file.md).</summary>
public enum FloatOpKind
{
    /// <summary>conv2d with folded weights. Ints: the 11 <see cref="Conv2dOptions"/>; tensors: weight [, bias].</summary>
    Conv2d = 1,

    /// <summary>conv_transpose2d. Ints: the 13 <see cref="ConvTranspose2dOptions"/>; tensors: weight [, bias].</summary>
    ConvTranspose2d = 2,

    /// <summary>linear with folded weights. Ints: in_features, out_features, folded BatchNorm1d features (−1: none); tensors: weight [, bias].</summary>
    Linear = 3,

    /// <summary>Eval-mode batch_norm. Floats: eps; tensors: running_mean, running_var [, weight] [, bias].</summary>
    BatchNorm2d = 4,

    /// <summary>relu.</summary>
    ReLU = 5,

    /// <summary>hardtanh (ReLU6, clamp). Floats: min_val, max_val.</summary>
    Hardtanh = 6,

    /// <summary>Addition of two tensors.</summary>
    Add = 7,

    /// <summary>torch.cat. Ints: dim.</summary>
    Cat = 8,

    /// <summary>flatten. Ints: start_dim, end_dim.</summary>
    Flatten = 9,

    /// <summary>reshape. Ints: the shape (−1 allowed once).</summary>
    Reshape = 10,

    /// <summary>max_pool2d. Ints: kernel, stride, padding, dilation (height, width each), ceil_mode.</summary>
    MaxPool2d = 11,

    /// <summary>avg_pool2d. Ints: kernel, stride, padding (height, width each), ceil_mode, count_include_pad, divisor_override (0: none).</summary>
    AvgPool2d = 12,

    /// <summary>adaptive_avg_pool2d. Ints: output height, output width.</summary>
    AdaptiveAvgPool2d = 13,

    /// <summary>A unary elementwise function. Text: the TorchSharp module's name (LeakyReLU, GELU, ...); Floats: its parameters.</summary>
    Elementwise = 14,

    /// <summary>pixel_shuffle. Ints: upscale_factor.</summary>
    PixelShuffle = 15,

    /// <summary>pixel_unshuffle. Ints: downscale_factor.</summary>
    PixelUnshuffle = 16,

    /// <summary>softmax. Ints: dim.</summary>
    Softmax = 17,

    /// <summary>log_softmax. Ints: dim.</summary>
    LogSoftmax = 18,

    /// <summary>interpolate (Upsample). Text: the mode; Ints: [out height, out width] or none, align_corners (−1 none, 0, 1), recompute_scale_factor (0, 1); Floats: [scale height, scale width] or none.</summary>
    Upsample = 19,

    /// <summary>layer_norm. Ints: normalized_shape; Floats: eps; tensors: [weight] [, bias].</summary>
    LayerNorm = 20,

    /// <summary>group_norm. Ints: num_groups; Floats: eps; tensors: [weight] [, bias].</summary>
    GroupNorm = 21,

    /// <summary>
    /// A tensor expression of the model's <c>forward</c> that the generator wrote as a C# function. Text: the class
    /// whose forward holds it (full name) and its captured forward's hash, "Class|hash"; Ints: the node's index.
    /// The function lives in the model's assembly, so a file is run by the model's own <c>Load</c>.
    /// </summary>
    Function = 22,

    /// <summary>mul of two tensors (broadcasting).</summary>
    Mul = 23,

    /// <summary>mul by a constant. Floats: [c].</summary>
    MulConstant = 24,

    /// <summary>add of a constant. Floats: [c].</summary>
    AddConstant = 25,

    /// <summary>mean over dims. Ints: [keepdim (0, 1), dims...].</summary>
    Mean = 26,

    /// <summary>
    /// A dynamically quantized Linear (<see cref="Dynamic.DynamicQuantizedLinear"/>: int8 weights, the input quantized on
    /// every call). Ints: in_features, out_features, the <see cref="QuantBackend"/>, per-channel weights (0, 1); tensors:
    /// weight [out, in] holding the qint8 values (integers in −128..127), weight_scale and weight_zero_point (one value, or
    /// one per output feature) [, bias]. A fused ReLU is the op's ReLU.
    /// </summary>
    DynamicLinear = 27,

    /// <summary>
    /// One element of a dynamically quantized LSTM or GRU call (<see cref="Dynamic.DynamicQuantizedLSTM"/>,
    /// <see cref="Dynamic.DynamicQuantizedGRU"/>). Text: "LSTM" or "GRU"; Ints: the element (0 output, 1 h_n, 2 c_n),
    /// input_size, hidden_size, num_layers, bidirectional (0, 1), batch_first (0, 1), the <see cref="QuantBackend"/>,
    /// per-channel weights (0, 1), bias (0, 1); tensors per cell (suffix l0, l0_reverse, l1, ...): weight_ih_{suffix} and
    /// weight_hh_{suffix} holding the qint8 values, each with _scale and _zero_point (one value, or one per gate row)
    /// [, bias_ih_{suffix}, bias_hh_{suffix}]. Inputs: x, then the initial state if forward gave one (LSTM h0, c0; GRU h0).
    /// </summary>
    DynamicRecurrent = 28,

    /// <summary>
    /// A weight-only quantized Embedding (<see cref="Dynamic.QuantizedEmbedding"/>, PyTorch's float_qparams_weight_only).
    /// Ints: num_embeddings, embedding_dim [, 4 for 4-bit rows]; tensors: rows [num_embeddings, embedding_dim] holding the
    /// quint8 values (integers in 0..255, <see cref="FloatOpElementType.UInt8"/>) or the quint4x2 ones (0..15,
    /// <see cref="FloatOpElementType.UInt4"/>), scale and bias [num_embeddings] (each row's scale and offset: float32, or
    /// float16 for 4-bit rows). Input: int64 indices.
    /// </summary>
    WeightOnlyEmbedding = 29,

    /// <summary>A float Embedding: a row lookup. Ints: num_embeddings, embedding_dim; tensors: weight [num_embeddings, embedding_dim]. Input: int64 indices.</summary>
    Embedding = 30,

    /// <summary>
    /// A float16-weight Linear (<see cref="Dynamic.Float16Linear"/>, PyTorch's float16_dynamic_qconfig): float32 arithmetic
    /// over float16 weights. Ints: in_features, out_features; tensors: weight [out, in] stored as
    /// <see cref="FloatOpElementType.Float16"/> (finite) [, bias as float32]. A fused ReLU is the op's ReLU.
    /// </summary>
    Float16Linear = 31,

    /// <summary>
    /// One element of a float16-weight LSTM or GRU call (<see cref="Dynamic.Float16LSTM"/>, <see cref="Dynamic.Float16GRU"/>).
    /// Text: "LSTM" or "GRU"; Ints: the element (0 output, 1 h_n, 2 c_n), input_size, hidden_size, num_layers,
    /// bidirectional (0, 1), batch_first (0, 1), bias (0, 1); tensors per cell (suffix l0, l0_reverse, l1, ...):
    /// weight_ih_{suffix} and weight_hh_{suffix} stored as <see cref="FloatOpElementType.Float16"/> (finite)
    /// [, bias_ih_{suffix}, bias_hh_{suffix} as float32]. Inputs: x, then the initial state if forward gave one.
    /// </summary>
    Float16Recurrent = 32,

    /// <summary>
    /// A Transformer encoder layer with dynamically quantized projections (<see cref="Dynamic.DynamicQuantizedTransformerEncoderLayer"/>).
    /// Ints: d_model, nhead, dim_feedforward, the activation (0 relu, 1 gelu), the <see cref="QuantBackend"/>, per-channel
    /// weights (0, 1), the input the attention mask is (−1: none), the input the key padding mask is (−1: none); Floats:
    /// LayerNorm eps; tensors: for in_proj, out_proj, linear1 and linear2 each {name}.weight (qint8 values), .weight_scale,
    /// .weight_zero_point and .bias, then norm1.weight, norm1.bias, norm2.weight, norm2.bias. Inputs: src first, then the masks.
    /// </summary>
    DynamicEncoderLayer = 33,

    /// <summary>
    /// A TransformerEncoder of dynamic layers (<see cref="Dynamic.DynamicQuantizedTransformerEncoder"/>). Ints: num_layers,
    /// then the eight of <see cref="DynamicEncoderLayer"/>; Floats: eps; tensors: each layer's twenty under "layers.{i}.".
    /// </summary>
    DynamicEncoder = 34,

    /// <summary>
    /// One element of a MultiheadAttention call with dynamically quantized projections
    /// (<see cref="Dynamic.DynamicQuantizedMultiheadAttention"/>). Ints: the element (0 attn_output, 1 attn_output_weights),
    /// embed_dim, num_heads, the <see cref="QuantBackend"/>, per-channel weights (0, 1), then the call's arguments: the inputs
    /// query, key and value are, the input key_padding_mask is (−1: none), need_weights (0, 1), the input attn_mask is
    /// (−1: none); tensors: for in_proj and out_proj each {name}.weight (qint8 values), .weight_scale, .weight_zero_point
    /// [, .bias]. Inputs: query first, then each distinct tensor the call reads.
    /// </summary>
    DynamicMultiheadAttention = 35,
}

/// <summary>How a <see cref="FloatOpTensor"/>'s values are stored (in a <c>.qgen</c> file: 4 or 2 bytes each).</summary>
public enum FloatOpElementType
{
    /// <summary>float32: any value.</summary>
    Float32 = 0,

    /// <summary>
    /// float16: every value is a float16 value widened to float32 (exact), and a file stores its 2-byte IEEE binary16
    /// pattern. Only the weights of <see cref="FloatOpKind.Float16Linear"/> and <see cref="FloatOpKind.Float16Recurrent"/>
    /// ops are float16.
    /// </summary>
    Float16 = 1,

    /// <summary>
    /// int8: every value is an integer in −128..127 (a qint8 weight), and a file stores one signed byte each. Only the
    /// integer weights of the dynamic kinds (<see cref="FloatOpKind.DynamicLinear"/>, <see cref="FloatOpKind.DynamicRecurrent"/>,
    /// <see cref="FloatOpKind.DynamicEncoderLayer"/>, <see cref="FloatOpKind.DynamicEncoder"/>,
    /// <see cref="FloatOpKind.DynamicMultiheadAttention"/>) are int8.
    /// </summary>
    Int8 = 2,

    /// <summary>
    /// uint8: every value is an integer in 0..255, and a file stores one byte each. Only the rows of a
    /// <see cref="FloatOpKind.WeightOnlyEmbedding"/> are uint8.
    /// </summary>
    UInt8 = 3,

    /// <summary>
    /// 4-bit: every value is an integer in 0..15, and a file stores two per byte (the even-indexed value in the low
    /// nibble, as PyTorch's quint4x2). Only the rows of a 4-bit <see cref="FloatOpKind.WeightOnlyEmbedding"/> are 4-bit.
    /// </summary>
    UInt4 = 4,
}

/// <summary>A named float tensor of a <see cref="FloatOp"/> (a weight, a running statistic).</summary>
/// <param name="Name">What it is ("weight", "bias", "running_mean").</param>
/// <param name="Shape">Its logical shape.</param>
/// <param name="Values">Its values in row-major order (float16 values widened to float32 when <see cref="ElementType"/> is float16).</param>
public sealed record FloatOpTensor(string Name, int[] Shape, float[] Values)
{
    /// <summary>How the values are stored: float32 (the default), float16, or as integers of one byte or half a byte.</summary>
    public FloatOpElementType ElementType { get; init; } = FloatOpElementType.Float32;
}

/// <summary>
/// An op that stays float in an int8 model, described as data: what it computes, its constants and weights, and
/// the quantizer of its result for the int8 ops that read it. It runs on TorchSharp (the same libtorch op as the
/// float model's module, so a loaded file gives the converted model's results to the bit); a <c>.qgen</c> file
/// stores it and ONNX export writes it as the float ONNX operator between DequantizeLinear and QuantizeLinear.
/// </summary>
/// <remarks>
/// Thread-safe: the weights become TorchSharp tensors once, on first use (so reading a file does not need
/// libtorch), and are only read after that.
/// </remarks>
public sealed class FloatOp : IQuantizedLayer
{
    private static readonly HashSet<string> ElementwiseFunctions = new(StringComparer.Ordinal)
    {
        "LeakyReLU", "Hardswish", "Hardsigmoid", "SiLU", "Sigmoid", "Tanh", "ELU", "CELU", "SELU", "GELU", "Mish",
        "Softplus", "Softsign", "Tanhshrink", "Hardshrink", "Softshrink", "LogSigmoid", "Threshold",
    };

    private static readonly string[] UpsampleModes = Enum.GetNames<UpsampleMode>();

    private readonly long[] _ints;
    private readonly double[] _floats;
    private readonly FloatOpTensor[] _tensors;
    private readonly Lazy<Func<Tensor[], Tensor>> _run;

    /// <summary>The layer of a <see cref="FloatOpKind.DynamicRecurrent"/>, <see cref="FloatOpKind.WeightOnlyEmbedding"/>, <see cref="FloatOpKind.Float16Linear"/> or <see cref="FloatOpKind.Float16Recurrent"/> op, built (and so checked) by the constructor.</summary>
    private object? _recurrent;

    /// <summary>Creates a float op, checking that its constants and weights make the op its kind says.</summary>
    /// <param name="model">The model's name.</param>
    /// <param name="layer">The op's layer name.</param>
    /// <param name="kind">What it computes.</param>
    /// <param name="text">The kind's text argument (see <see cref="FloatOpKind"/>), else "".</param>
    /// <param name="ints">Integer constants (see <see cref="FloatOpKind"/>).</param>
    /// <param name="floats">Float constants.</param>
    /// <param name="tensors">Weights and statistics, by name.</param>
    /// <param name="relu">A ReLU fused after the op.</param>
    /// <param name="inputCount">How many tensors it reads.</param>
    /// <param name="output">Quantizes its result for the int8 ops that read it.</param>
    /// <exception cref="ArgumentException">The constants, weights or input count do not make a valid op of that kind (the message names the layer).</exception>
    public FloatOp(string model, string layer, FloatOpKind kind, string text, long[] ints, double[] floats, IReadOnlyList<FloatOpTensor> tensors, bool relu, int inputCount, QuantizeInput output)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        Model = model;
        Layer = layer;
        Kind = kind;
        Text = text ?? throw new ArgumentNullException(nameof(text));
        _ints = (long[])(ints ?? throw new ArgumentNullException(nameof(ints))).Clone();
        _floats = (double[])(floats ?? throw new ArgumentNullException(nameof(floats))).Clone();
        _tensors = (tensors ?? throw new ArgumentNullException(nameof(tensors))).ToArray();
        Relu = relu;
        InputCount = inputCount;
        Output = output ?? throw new ArgumentNullException(nameof(output));
        Validate();
        _run = new Lazy<Func<Tensor[], Tensor>>(CreateRunner, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <inheritdoc/>
    public string Model { get; }

    /// <inheritdoc/>
    public string Layer { get; }

    /// <summary>What the op computes.</summary>
    public FloatOpKind Kind { get; }

    /// <summary>The kind's text argument (an elementwise function's name, an upsample mode, a function's class), else "".</summary>
    public string Text { get; }

    /// <summary>Integer constants (a copy).</summary>
    public long[] Ints => (long[])_ints.Clone();

    /// <summary>Float constants (a copy).</summary>
    public double[] Floats => (double[])_floats.Clone();

    /// <summary>Weights and statistics.</summary>
    public IReadOnlyList<FloatOpTensor> Tensors => _tensors;

    /// <summary>A ReLU fused after the op.</summary>
    public bool Relu { get; }

    /// <summary>How many tensors the op reads.</summary>
    public int InputCount { get; }

    /// <summary>Quantizes the op's float result for the int8 ops that read it.</summary>
    public QuantizeInput Output { get; }

    /// <summary>The named tensor, or null.</summary>
    /// <param name="name">"weight", "bias", "running_mean", ...</param>
    public FloatOpTensor? Tensor(string name) => Array.Find(_tensors, t => t.Name == name);

    /// <summary>Runs the op on float inputs (TorchSharp).</summary>
    /// <param name="inputs">The op's <see cref="InputCount"/> float32 inputs.</param>
    /// <returns>A new float32 tensor.</returns>
    /// <exception cref="ArgumentException">The wrong number of inputs.</exception>
    public Tensor Forward(Tensor[] inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Length != InputCount)
        {
            throw new ArgumentException($"{Model}.{Layer}: the float {Describe()} reads {InputCount} tensor(s), got {inputs.Length}.", nameof(inputs));
        }

        Func<Tensor[], Tensor> run = _run.Value;
        Tensor result;
        try
        {
            result = run(inputs);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or QuantGenConfigurationException) && !e.Message.StartsWith(Name, StringComparison.Ordinal))
        {
            // libtorch's own message names neither the model nor the op.
            throw new ArgumentException(
                $"{Name}: the float {Describe()} failed on input(s) of shape {string.Join(" and ", inputs.Select(t => "[" + string.Join(", ", t.shape) + "]"))}: {e.Message}", nameof(inputs), e);
        }

        return Relu ? nn.functional.relu(result) : result;
    }

    /// <summary>The op as one line: <c>Conv2d(3, 8, kernel_size=(3, 3)) [float]</c>.</summary>
    public override string ToString() => $"{Describe()}{(Relu ? " + ReLU" : "")} (float), then {Output}";

    private string Describe() => Kind switch
    {
        FloatOpKind.Elementwise => Text,
        FloatOpKind.Function => "function",
        FloatOpKind.Upsample => $"Upsample(mode={Text})",
        FloatOpKind.DynamicRecurrent => $"Dynamic{Text}(input_size={_ints[1]}, hidden_size={_ints[2]}, num_layers={_ints[3]}) element {_ints[0]}",
        FloatOpKind.DynamicEncoderLayer or FloatOpKind.DynamicEncoder => _recurrent!.ToString()!,
        FloatOpKind.DynamicMultiheadAttention => $"{_recurrent} element {_ints[0]}",
        FloatOpKind.Float16Recurrent => $"Float16{Text}(input_size={_ints[1]}, hidden_size={_ints[2]}, num_layers={_ints[3]}) element {_ints[0]}",
        _ when _ints.Length > 0 && _ints.Length <= 4 => $"{Kind}({string.Join(", ", _ints.Select(i => i.ToString(CultureInfo.InvariantCulture)))})",
        _ => Kind.ToString(),
    };

    private string Name => $"{Model}.{Layer}";

    private ArgumentException Invalid(string what) => new($"{Name}: a float {Kind} op {what}.");

    private void Validate()
    {
        if (!Enum.IsDefined(Kind))
        {
            throw new ArgumentException($"{Name}: {(int)Kind} is not a float op kind.");
        }

        if (InputCount < 1 || InputCount > BoundTopology.MaxInputs)
        {
            throw Invalid($"reads 1 to {BoundTopology.MaxInputs} tensors, not {InputCount}");
        }

        foreach (FloatOpTensor tensor in _tensors)
        {
            if (tensor is null || string.IsNullOrEmpty(tensor.Name) || tensor.Shape is null || tensor.Values is null)
            {
                throw Invalid("has a tensor without a name, shape or values");
            }

            long count = 1;
            foreach (int size in tensor.Shape)
            {
                count = size < 0 ? -1 : checked(count * size);
            }

            if (count != tensor.Values.Length)
            {
                throw Invalid($"has a tensor '{tensor.Name}' of shape [{string.Join(", ", tensor.Shape)}] with {tensor.Values.Length} values");
            }

            ValidateElementType(tensor);
        }

        if (_floats.Any(f => double.IsNaN(f)))
        {
            throw Invalid("has a NaN constant");
        }

        const int unary = 1;
        switch (Kind)
        {
            case FloatOpKind.Conv2d:
            {
                Need(11, 0, unary);
                Conv2dOptions o = ConvOptions();
                NeedWeight([o.OutChannels, o.InChannels / o.Groups, o.KernelHeight, o.KernelWidth], o.OutChannels);
                break;
            }

            case FloatOpKind.ConvTranspose2d:
            {
                Need(13, 0, unary);
                ConvTranspose2dOptions o = ConvTransposeOptions();
                NeedWeight([o.InChannels, o.OutChannels / o.Groups, o.KernelHeight, o.KernelWidth], o.OutChannels);
                break;
            }

            case FloatOpKind.Linear:
                Need(3, 0, unary);
                Positive(0, 2);
                NeedWeight([checked((int)_ints[1]), checked((int)_ints[0])], checked((int)_ints[1]));
                break;
            case FloatOpKind.BatchNorm2d:
            {
                Need(0, 1, unary);
                FloatOpTensor mean = Tensor("running_mean") ?? throw Invalid("has no running_mean");
                int channels = mean.Values.Length;
                foreach (string name in new[] { "running_var", "weight", "bias" })
                {
                    if (Tensor(name) is { } t && t.Values.Length != channels)
                    {
                        throw Invalid($"has {t.Values.Length} values of {name} for {channels} channels");
                    }
                }

                _ = Tensor("running_var") ?? throw Invalid("has no running_var");
                break;
            }

            case FloatOpKind.ReLU:
                Need(0, 0, unary);
                break;
            case FloatOpKind.Hardtanh:
                Need(0, 2, unary);
                if (!(_floats[0] <= _floats[1]))
                {
                    throw Invalid($"has min_val {_floats[0]} above max_val {_floats[1]}");
                }

                break;
            case FloatOpKind.Add:
                Need(0, 0, 2);
                break;
            case FloatOpKind.Cat:
                Need(1, 0, InputCount);
                break;
            case FloatOpKind.Flatten:
                Need(2, 0, unary);
                break;
            case FloatOpKind.Reshape:
                if (_ints.Length is < 1 or > 8 || _ints.Count(i => i == -1) > 1 || _ints.Any(i => i < -1))
                {
                    throw Invalid($"has the shape [{string.Join(", ", _ints)}]; 1 to 8 sizes, at most one -1");
                }

                Need(_ints.Length, 0, unary);
                break;
            case FloatOpKind.MaxPool2d:
                Need(9, 0, unary);
                Positive(0, 2);
                Positive(2, 2);
                NonNegative(4, 2);
                Positive(6, 2);
                break;
            case FloatOpKind.AvgPool2d:
                Need(9, 0, unary);
                Positive(0, 2);
                Positive(2, 2);
                NonNegative(4, 2);
                NonNegative(8, 1);
                break;
            case FloatOpKind.AdaptiveAvgPool2d:
                Need(2, 0, unary);
                Positive(0, 2);
                break;
            case FloatOpKind.Elementwise:
                if (!ElementwiseFunctions.Contains(Text))
                {
                    throw Invalid($"names the function '{Text}', which is not one of {string.Join(", ", ElementwiseFunctions)}");
                }

                Need(0, ElementwiseParameterCount(Text), unary);
                break;
            case FloatOpKind.PixelShuffle or FloatOpKind.PixelUnshuffle:
                Need(1, 0, unary);
                Positive(0, 1);
                break;
            case FloatOpKind.Softmax or FloatOpKind.LogSoftmax:
                Need(1, 0, unary);
                break;
            case FloatOpKind.Upsample:
                if (!UpsampleModes.Contains(Text))
                {
                    throw Invalid($"has the mode '{Text}'; expected one of {string.Join(", ", UpsampleModes)}");
                }

                if (!((_ints.Length == 4 && _floats.Length == 0 && _ints[0] > 0 && _ints[1] > 0) || (_ints.Length == 2 && _floats.Length == 2 && _floats.All(f => f > 0 && double.IsFinite(f)))))
                {
                    throw Invalid("has neither an output size nor positive scale factors for height and width");
                }

                if (_ints[^2] is < -1 or > 1 || _ints[^1] is < 0 or > 1)
                {
                    throw Invalid($"has align_corners {_ints[^2]} (-1, 0 or 1) and recompute_scale_factor {_ints[^1]} (0 or 1)");
                }

                Need(_ints.Length, _floats.Length, unary);
                break;
            case FloatOpKind.LayerNorm:
                if (_ints.Length is < 1 or > 8 || _ints.Any(i => i < 1))
                {
                    throw Invalid($"has the normalized shape [{string.Join(", ", _ints)}]");
                }

                Need(_ints.Length, 1, unary);
                NeedAffine(checked((int)_ints.Aggregate(1L, (a, b) => a * b)));
                break;
            case FloatOpKind.GroupNorm:
                Need(1, 1, unary);
                Positive(0, 1);
                if (Tensor("weight") is { } weight && weight.Values.Length % _ints[0] != 0)
                {
                    throw Invalid($"has {weight.Values.Length} channels, not a multiple of its {_ints[0]} groups");
                }

                break;
            case FloatOpKind.Mul:
                Need(0, 0, 2);
                break;
            case FloatOpKind.MulConstant or FloatOpKind.AddConstant:
                Need(0, 1, unary);
                if (!double.IsFinite(_floats[0]))
                {
                    throw Invalid($"has the constant {_floats[0]}; a finite one is expected");
                }

                break;
            case FloatOpKind.DynamicLinear:
                ValidateDynamicLinear();
                break;
            case FloatOpKind.DynamicRecurrent:
                _recurrent = DynamicRecurrent();
                break;
            case FloatOpKind.WeightOnlyEmbedding:
                _recurrent = WeightOnlyEmbedding();
                break;
            case FloatOpKind.DynamicEncoderLayer:
                Need(8, 1, InputCount);
                _recurrent = EncoderLayerAt(0, "");
                if (_tensors.Length != 20)
                {
                    throw Invalid($"has {_tensors.Length} tensors; an encoder layer takes 20");
                }

                break;
            case FloatOpKind.DynamicEncoder:
            {
                Need(9, 1, InputCount);
                if (_ints[0] is < 1 or > 12 || _tensors.Length != 20 * _ints[0])
                {
                    throw Invalid($"has {_ints[0]} layers and {_tensors.Length} tensors; 1..12 layers of 20 tensors each are expected");
                }

                _recurrent = new Dynamic.DynamicQuantizedTransformerEncoder(Model, Layer, Enumerable.Range(0, Int(0)).Select(i => EncoderLayerAt(1, $"layers.{i}.")).ToArray());
                break;
            }
            case FloatOpKind.DynamicMultiheadAttention:
                _recurrent = MultiheadAttention();
                break;
            case FloatOpKind.Float16Linear:
                _recurrent = Float16Linear();
                break;
            case FloatOpKind.Float16Recurrent:
                _recurrent = Float16Recurrent();
                break;
            case FloatOpKind.Embedding:
                Need(2, 0, 1);
                if (_ints[0] is < 1 or > int.MaxValue || _ints[1] is < 1 or > int.MaxValue || _tensors.Length != 1)
                {
                    throw Invalid($"has {_ints[0]} rows of {_ints[1]} values and {_tensors.Length} tensors");
                }

                NeedWeight([Int(0), Int(1)], Int(1));
                break;
            case FloatOpKind.Mean:
                if (_ints.Length is < 2 or > 9 || _ints[0] is not (0 or 1))
                {
                    throw Invalid($"has [{string.Join(", ", _ints)}]; expected keepdim (0 or 1) and 1 to 8 dims");
                }

                Need(_ints.Length, 0, unary);
                break;
            case FloatOpKind.Function:
                // Floats: the values of the module's number members the expression reads (read at Prepare).
                Need(1, _floats.Length, InputCount);
                if (_floats.Any(v => !double.IsFinite(v)))
                {
                    throw Invalid("has a non-finite member value");
                }

                if (!Text.Contains('|', StringComparison.Ordinal) || _ints[0] < 0)
                {
                    throw Invalid($"refers to '{Text}' node {_ints[0]}; expected 'Class|hash' and a node index");
                }

                break;
        }
    }

    private void Need(int ints, int floats, int inputs)
    {
        if (_ints.Length != ints || _floats.Length != floats || InputCount != inputs)
        {
            throw Invalid($"has {_ints.Length} integer and {_floats.Length} float constants and {InputCount} inputs; it takes {ints}, {floats} and {inputs}");
        }
    }

    private void Positive(int start, int count)
    {
        for (int i = start; i < start + count; i++)
        {
            if (_ints[i] < 1)
            {
                throw Invalid($"has {_ints[i]} where a positive size is expected (constant {i})");
            }
        }
    }

    private void NonNegative(int start, int count)
    {
        for (int i = start; i < start + count; i++)
        {
            if (_ints[i] < 0)
            {
                throw Invalid($"has {_ints[i]} where a size of 0 or more is expected (constant {i})");
            }
        }
    }

    private void NeedWeight(int[] shape, int outputs)
    {
        FloatOpTensor weight = Tensor("weight") ?? throw Invalid("has no weight");
        if (!weight.Shape.SequenceEqual(shape))
        {
            throw Invalid($"has a weight of shape [{string.Join(", ", weight.Shape)}]; its options need [{string.Join(", ", shape)}]");
        }

        if (Tensor("bias") is { } bias && bias.Values.Length != outputs)
        {
            throw Invalid($"has {bias.Values.Length} bias values for {outputs} outputs");
        }
    }

    private void NeedAffine(int elements)
    {
        foreach (string name in new[] { "weight", "bias" })
        {
            if (Tensor(name) is { } t && t.Values.Length != elements)
            {
                throw Invalid($"has {t.Values.Length} values of {name} for a normalized shape of {elements} elements");
            }
        }
    }

    private static int ElementwiseParameterCount(string function) => function switch
    {
        "LeakyReLU" or "ELU" or "CELU" or "GELU" or "Hardshrink" or "Softshrink" => 1,
        "Softplus" or "Threshold" => 2,
        _ => 0,
    };

    private int Int(int i) => checked((int)_ints[i]);

    private Conv2dOptions ConvOptions()
    {
        Positive(0, 6);
        Positive(8, 3);
        var o = new Conv2dOptions(Int(0), Int(1), Int(2), Int(3), Int(4), Int(5), Int(6), Int(7), Int(8), Int(9), Int(10));
        if (o.PadHeight < 0 || o.PadWidth < 0 || o.InChannels % o.Groups != 0 || o.OutChannels % o.Groups != 0)
        {
            throw Invalid($"has the options {o}");
        }

        return o;
    }

    private ConvTranspose2dOptions ConvTransposeOptions()
    {
        Positive(0, 6);
        Positive(10, 3);
        var o = new ConvTranspose2dOptions(Int(0), Int(1), Int(2), Int(3), Int(4), Int(5), Int(6), Int(7), Int(8), Int(9), Int(10), Int(11), Int(12));
        if (o.PadHeight < 0 || o.PadWidth < 0 || o.OutputPadHeight < 0 || o.OutputPadWidth < 0 || o.InChannels % o.Groups != 0 || o.OutChannels % o.Groups != 0)
        {
            throw Invalid($"has the options {o}");
        }

        return o;
    }

    private float[]? Values(string name) => Tensor(name)?.Values;

    private void ValidateDynamicLinear()
    {
        Need(4, 0, 1);
        Positive(0, 2);
        if (!Enum.IsDefined((QuantBackend)_ints[2]) || _ints[3] is not (0 or 1))
        {
            throw Invalid($"has backend {_ints[2]} and per-channel flag {_ints[3]}");
        }

        int inFeatures = Int(0), outFeatures = Int(1);
        NeedWeight([outFeatures, inFeatures], outFeatures);
        int channels = _ints[3] == 1 ? outFeatures : 1;
        FloatOpTensor scale = Tensor("weight_scale") ?? throw Invalid("has no weight_scale");
        FloatOpTensor zero = Tensor("weight_zero_point") ?? throw Invalid("has no weight_zero_point");
        if (scale.Values.Length != channels || zero.Values.Length != channels)
        {
            throw Invalid($"has {scale.Values.Length} weight scales and {zero.Values.Length} zero points for {channels} channel(s)");
        }

        foreach (float v in Tensor("weight")!.Values)
        {
            if (v != MathF.Round(v) || v < sbyte.MinValue || v > sbyte.MaxValue)
            {
                throw Invalid($"has a weight value {v.ToString("R", CultureInfo.InvariantCulture)}; qint8 weights are integers in -128..127");
            }
        }

        for (int c = 0; c < channels; c++)
        {
            if (!(scale.Values[c] > 0f) || !float.IsFinite(scale.Values[c]) || zero.Values[c] != MathF.Round(zero.Values[c]) || zero.Values[c] < sbyte.MinValue || zero.Values[c] > sbyte.MaxValue)
            {
                throw Invalid($"has weight scale {scale.Values[c]} and zero point {zero.Values[c]} for channel {c}");
            }
        }
    }

    /// <summary>
    /// A tensor's element type is one the format knows, float16 only for the weights of the float16 kinds (which must
    /// store them so), and a float16 tensor holds float16 values: finite, each exactly a float16 widened to float32.
    /// The integer element types belong to the integer weights of the dynamic and weight-only kinds and hold integers
    /// in their range (a file written before they existed stores those weights as float32, which is still read).
    /// </summary>
    private void ValidateElementType(FloatOpTensor tensor)
    {
        bool float16Kind = Kind is FloatOpKind.Float16Linear or FloatOpKind.Float16Recurrent;
        bool weight = tensor.Name.StartsWith("weight", StringComparison.Ordinal);
        switch (tensor.ElementType)
        {
            case FloatOpElementType.Float32 when float16Kind && weight:
                throw Invalid($"stores its {tensor.Name} as float32; a float16 op's weights are float16");
            case FloatOpElementType.Float32:
                return;
            case FloatOpElementType.Float16 when !(float16Kind && weight) && !(Kind == FloatOpKind.WeightOnlyEmbedding && tensor.Name is "scale" or "bias"):
                throw Invalid($"stores its tensor '{tensor.Name}' as float16; only the weights of a float16 op and a 4-bit embedding's scales and biases are float16");
            case FloatOpElementType.Float16:
                for (int i = 0; i < tensor.Values.Length; i++)
                {
                    float value = tensor.Values[i];
                    if (!float.IsFinite(value) || BitConverter.SingleToInt32Bits((float)(Half)value) != BitConverter.SingleToInt32Bits(value))
                    {
                        throw Invalid($"has the {tensor.Name} value {value.ToString("R", CultureInfo.InvariantCulture)} at {i}; float16 {(weight ? "weights" : "values")} are finite float16 values");
                    }
                }

                return;
            case FloatOpElementType.Int8 or FloatOpElementType.UInt8 or FloatOpElementType.UInt4:
                if (!IntegerTensorAllowed(tensor))
                {
                    throw Invalid($"stores its tensor '{tensor.Name}' as {tensor.ElementType}; only the integer weights of a dynamic or weight-only op are stored as integers");
                }

                (int low, int high) = IntegerRange(tensor.ElementType);
                for (int i = 0; i < tensor.Values.Length; i++)
                {
                    float value = tensor.Values[i];
                    if (value != MathF.Round(value) || value < low || value > high)
                    {
                        throw Invalid($"has the {tensor.Name} value {value.ToString("R", CultureInfo.InvariantCulture)} at {i}; {tensor.ElementType} values are integers in {low}..{high}");
                    }
                }

                return;
            default:
                throw Invalid($"stores its tensor '{tensor.Name}' with element type {(int)tensor.ElementType}, which is not one this version knows");
        }
    }

    /// <summary>The integers an integer element type holds.</summary>
    internal static (int Low, int High) IntegerRange(FloatOpElementType type) => type switch
    {
        FloatOpElementType.Int8 => (-128, 127),
        FloatOpElementType.UInt8 => (0, 255),
        FloatOpElementType.UInt4 => (0, 15),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Not an integer element type."),
    };

    /// <summary>
    /// Whether a tensor may be stored as integers: the qint8 weights of the dynamic kinds (named weight, weight_ih_…,
    /// weight_hh_… or ….weight — not their scales and zero points) and a weight-only Embedding's rows.
    /// </summary>
    private bool IntegerTensorAllowed(FloatOpTensor tensor)
    {
        string name = tensor.Name;
        bool qparam = name.EndsWith("_scale", StringComparison.Ordinal) || name.EndsWith("_zero_point", StringComparison.Ordinal);
        return (Kind, tensor.ElementType) switch
        {
            (FloatOpKind.WeightOnlyEmbedding, FloatOpElementType.UInt8 or FloatOpElementType.UInt4) => name == "rows",
            (FloatOpKind.DynamicLinear, FloatOpElementType.Int8) => name == "weight",
            (FloatOpKind.DynamicRecurrent, FloatOpElementType.Int8) => !qparam && (name.StartsWith("weight_ih_", StringComparison.Ordinal) || name.StartsWith("weight_hh_", StringComparison.Ordinal)),
            (FloatOpKind.DynamicEncoderLayer or FloatOpKind.DynamicEncoder or FloatOpKind.DynamicMultiheadAttention, FloatOpElementType.Int8) =>
                !qparam && name.EndsWith(".weight", StringComparison.Ordinal) && !name.Contains("norm", StringComparison.Ordinal),
            _ => false,
        };
    }

    /// <summary>The float16-weight Linear a <see cref="FloatOpKind.Float16Linear"/> op stands for (its ReLU is the op's): sizes, weight shape and bias checked.</summary>
    private Dynamic.Float16Linear Float16Linear()
    {
        Need(2, 0, 1);
        if (_ints[0] is < 1 or > int.MaxValue || _ints[1] is < 1 or > int.MaxValue || _tensors.Length > 2 || (_tensors.Length == 2 && Tensor("bias") is null))
        {
            throw Invalid($"has in_features {_ints[0]}, out_features {_ints[1]} and the tensors {string.Join(", ", _tensors.Select(t => t.Name))}; a weight and an optional bias expected");
        }

        NeedWeight([Int(1), Int(0)], Int(1));
        return new Dynamic.Float16Linear(Model, Layer, Int(0), Int(1), Halves(Tensor("weight")!), Values("bias"), fusedRelu: false);
    }

    /// <summary>
    /// The float16-weight LSTM/GRU a <see cref="FloatOpKind.Float16Recurrent"/> op stands for, with every constant and tensor
    /// checked first: sizes, flags, the element, the input count, each cell's weights (float16, of the shape the sizes
    /// give) and biases; the layer's constructor checks the rest.
    /// </summary>
    private object Float16Recurrent()
    {
        Need(7, 0, InputCount);
        (Dynamic.RecurrentShape shape, int rows, bool lstm) = RecurrentHeader(flagsFrom: 4, flagsTo: 6);
        bool bias = _ints[6] == 1;
        var cells = new Dynamic.Float16RecurrentCellWeights[shape.Cells];
        for (int cell = 0; cell < shape.Cells; cell++)
        {
            string suffix = shape.CellSuffix(cell);
            cells[cell] = new Dynamic.Float16RecurrentCellWeights(
                Float16Weight($"weight_ih_{suffix}", rows, shape.LayerInputSize(cell / shape.Directions)),
                Float16Weight($"weight_hh_{suffix}", rows, shape.HiddenSize),
                bias ? BiasValues($"bias_ih_{suffix}", rows) : null,
                bias ? BiasValues($"bias_hh_{suffix}", rows) : null);
        }

        int expectedTensors = shape.Cells * (bias ? 4 : 2);
        if (_tensors.Length != expectedTensors)
        {
            throw Invalid($"has {_tensors.Length} tensors; {shape.Cells} cell(s) {(bias ? "with" : "without")} biases take {expectedTensors}");
        }

        return lstm ? new Dynamic.Float16LSTM(Model, Layer, shape, cells) : new Dynamic.Float16GRU(Model, Layer, shape, cells);
    }

    /// <summary>
    /// The header both recurrent kinds share: text LSTM or GRU, sizes 1..65536 in constants 1–3, 0/1 flags in constants
    /// <paramref name="flagsFrom"/>..<paramref name="flagsTo"/>, the element and input count; returns the shape, the gate rows and whether it is an LSTM.
    /// </summary>
    private (Dynamic.RecurrentShape Shape, int GateRows, bool Lstm) RecurrentHeader(int flagsFrom, int flagsTo)
    {
        bool lstm = Text == "LSTM";
        if (!lstm && Text != "GRU")
        {
            throw Invalid($"is a '{Text}'; LSTM or GRU expected");
        }

        for (int i = 1; i <= 3; i++)
        {
            if (_ints[i] is < 1 or > 1 << 16)
            {
                throw Invalid($"has {_ints[i]} as constant {i}; input_size, hidden_size and num_layers are 1..65536");
            }
        }

        for (int i = flagsFrom; i <= flagsTo; i++)
        {
            if (_ints[i] is not (0 or 1))
            {
                throw Invalid($"has {_ints[i]} as flag {i}; 0 or 1 expected");
            }
        }

        int outputs = lstm ? 3 : 2;
        if (_ints[0] < 0 || _ints[0] >= outputs || (InputCount != 1 && InputCount != outputs))
        {
            throw Invalid($"reads element {_ints[0]} with {InputCount} inputs; a {Text} has {outputs} elements and takes its input alone or with {(lstm ? "h0 and c0" : "h0")}");
        }

        var shape = new Dynamic.RecurrentShape(Int(1), Int(2), Int(3), _ints[4] == 1, _ints[5] == 1);
        return (shape, checked((lstm ? 4 : 3) * shape.HiddenSize), lstm);
    }

    private Half[] Float16Weight(string name, int rows, int columns)
    {
        FloatOpTensor weight = Tensor(name) ?? throw Invalid($"has no {name}");
        if (weight.Shape.Length != 2 || weight.Shape[0] != rows || weight.Shape[1] != columns)
        {
            throw Invalid($"has {name} of shape [{string.Join(", ", weight.Shape)}]; its sizes need [{rows}, {columns}]");
        }

        return Halves(weight);
    }

    /// <summary>A float16 tensor's values as float16 (exact: <see cref="ValidateElementType"/> has checked each is one).</summary>
    private static Half[] Halves(FloatOpTensor tensor) => Array.ConvertAll(tensor.Values, v => (Half)v);

    /// <summary>
    /// The dynamic LSTM/GRU a <see cref="FloatOpKind.DynamicRecurrent"/> op stands for, with every constant and tensor checked
    /// first: sizes, flags, the element, the input count, and each cell's weights (integers in −128..127 of the shape the
    /// sizes give), scales (positive, finite), zero points and biases; the layer's constructor checks the rest.
    /// </summary>
    private object DynamicRecurrent()
    {
        Need(9, 0, InputCount);
        bool lstm = Text == "LSTM";
        if (!lstm && Text != "GRU")
        {
            throw Invalid($"is a '{Text}'; LSTM or GRU expected");
        }

        for (int i = 1; i <= 3; i++)
        {
            if (_ints[i] is < 1 or > 1 << 16)
            {
                throw Invalid($"has {_ints[i]} as constant {i}; input_size, hidden_size and num_layers are 1..65536");
            }
        }

        for (int i = 4; i <= 8; i++)
        {
            if (i != 6 && _ints[i] is not (0 or 1))
            {
                throw Invalid($"has {_ints[i]} as flag {i}; 0 or 1 expected");
            }
        }

        if (!Enum.IsDefined((QuantBackend)_ints[6]))
        {
            throw Invalid($"has backend {_ints[6]}");
        }

        int gates = lstm ? 4 : 3;
        int outputs = lstm ? 3 : 2;
        if (_ints[0] < 0 || _ints[0] >= outputs || (InputCount != 1 && InputCount != outputs))
        {
            throw Invalid($"reads element {_ints[0]} with {InputCount} inputs; a {Text} has {outputs} elements and takes its input alone or with {(lstm ? "h0 and c0" : "h0")}");
        }

        var shape = new Dynamic.RecurrentShape(Int(1), Int(2), Int(3), _ints[4] == 1, _ints[5] == 1);
        bool perChannel = _ints[7] == 1, bias = _ints[8] == 1;
        int rows = checked(gates * shape.HiddenSize);
        var cells = new Dynamic.RecurrentCellWeights[shape.Cells];
        for (int cell = 0; cell < shape.Cells; cell++)
        {
            string suffix = shape.CellSuffix(cell);
            int layerInput = shape.LayerInputSize(cell / shape.Directions);
            cells[cell] = new Dynamic.RecurrentCellWeights(
                QuantizedWeight($"weight_ih_{suffix}", rows, layerInput, perChannel),
                QuantizedWeight($"weight_hh_{suffix}", rows, shape.HiddenSize, perChannel),
                bias ? BiasValues($"bias_ih_{suffix}", rows) : null,
                bias ? BiasValues($"bias_hh_{suffix}", rows) : null);
        }

        int expectedTensors = shape.Cells * (bias ? 8 : 6);
        if (_tensors.Length != expectedTensors)
        {
            throw Invalid($"has {_tensors.Length} tensors; {shape.Cells} cell(s) {(bias ? "with" : "without")} biases take {expectedTensors}");
        }

        var backend = (QuantBackend)_ints[6];
        return lstm
            ? new Dynamic.DynamicQuantizedLSTM(Model, Layer, shape, cells, backend)
            : new Dynamic.DynamicQuantizedGRU(Model, Layer, shape, cells, backend);
    }

    /// <summary>
    /// The table of a <see cref="FloatOpKind.WeightOnlyEmbedding"/> op: sizes, bit width (8, or 4 as the third constant),
    /// values (integers in 0..255 or 0..15), scales and biases checked, then packed as the layer holds them.
    /// </summary>
    private Dynamic.QuantizedEmbedding WeightOnlyEmbedding()
    {
        // num_embeddings, embedding_dim, and the bit width when it is not 8 (a version-1 file has no third constant).
        Need(_ints.Length == 3 ? 3 : 2, 0, 1);

        if (_ints[0] is < 1 or > int.MaxValue || _ints[1] is < 1 or > 1 << 20)
        {
            throw Invalid($"has {_ints[0]} rows of {_ints[1]} values");
        }

        int bitWidth = _ints.Length == 3 ? (int)Math.Clamp(_ints[2], int.MinValue, int.MaxValue) : 8;
        if (bitWidth is not (8 or 4))
        {
            throw Invalid($"has rows of {_ints[2]} bits; rows are 8-bit (quint8) or 4-bit (quint4x2)");
        }

        int rows = Int(0), dim = Int(1);
        FloatOpTensor values = Tensor("rows") ?? throw Invalid("has no rows");
        FloatOpTensor scale = Tensor("scale") ?? throw Invalid("has no scale");
        FloatOpTensor bias = Tensor("bias") ?? throw Invalid("has no bias");
        if (values.Shape.Length != 2 || values.Shape[0] != rows || values.Shape[1] != dim || scale.Values.Length != rows || bias.Values.Length != rows || _tensors.Length != 3)
        {
            throw Invalid($"has rows [{string.Join(", ", values.Shape)}], {scale.Values.Length} scales and {bias.Values.Length} biases for [{rows}, {dim}]");
        }

        if (bitWidth == 4 && (values.ElementType != FloatOpElementType.UInt4 || scale.ElementType != FloatOpElementType.Float16 || bias.ElementType != FloatOpElementType.Float16))
        {
            throw Invalid($"stores 4-bit rows as {values.ElementType} with {scale.ElementType} scales and {bias.ElementType} biases; a 4-bit table stores its rows as UInt4 and its scales and biases as Float16");
        }

        int high = (1 << bitWidth) - 1;
        int valueBytes = bitWidth == 8 ? dim : dim / 2;
        int stride = checked(valueBytes + (bitWidth == 8 ? 8 : 4));
        var packed = new byte[checked((long)rows * stride)];
        for (int r = 0; r < rows; r++)
        {
            Span<byte> row = packed.AsSpan(r * stride, stride);
            for (int j = 0; j < dim; j++)
            {
                float v = values.Values[((long)r * dim) + j];
                if (v != MathF.Round(v) || v < 0 || v > high)
                {
                    throw Invalid($"has the row value {v.ToString("R", CultureInfo.InvariantCulture)}; {bitWidth}-bit rows hold integers in 0..{high}");
                }

                if (bitWidth == 8)
                {
                    row[j] = (byte)v;
                }
                else
                {
                    row[j >> 1] |= (byte)((int)v << ((j & 1) * 4));
                }
            }

            if (bitWidth == 8)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(row.Slice(valueBytes), scale.Values[r]);
                System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(row.Slice(valueBytes + 4), bias.Values[r]);
            }
            else
            {
                System.Buffers.Binary.BinaryPrimitives.WriteHalfLittleEndian(row.Slice(valueBytes), (Half)scale.Values[r]);
                System.Buffers.Binary.BinaryPrimitives.WriteHalfLittleEndian(row.Slice(valueBytes + 2), (Half)bias.Values[r]);
            }
        }

        // An odd dimension for 4-bit rows, and a non-finite or negative scale, are refused by the table, naming the layer.
        return Dynamic.QuantizedEmbedding.FromPacked(Model, Layer, packed, rows, dim, bitWidth);
    }

    private QTensor QuantizedWeight(string name, int rows, int columns, bool perChannel)
    {
        FloatOpTensor weight = Tensor(name) ?? throw Invalid($"has no {name}");
        if (weight.Shape.Length != 2 || weight.Shape[0] != rows || weight.Shape[1] != columns)
        {
            throw Invalid($"has {name} of shape [{string.Join(", ", weight.Shape)}]; its sizes need [{rows}, {columns}]");
        }

        foreach (float v in weight.Values)
        {
            if (v != MathF.Round(v) || v < sbyte.MinValue || v > sbyte.MaxValue)
            {
                throw Invalid($"has a {name} value {v.ToString("R", CultureInfo.InvariantCulture)}; qint8 weights are integers in -128..127");
            }
        }

        int channels = perChannel ? rows : 1;
        FloatOpTensor scale = Tensor(name + "_scale") ?? throw Invalid($"has no {name}_scale");
        FloatOpTensor zero = Tensor(name + "_zero_point") ?? throw Invalid($"has no {name}_zero_point");
        if (scale.Values.Length != channels || zero.Values.Length != channels)
        {
            throw Invalid($"has {scale.Values.Length} scales and {zero.Values.Length} zero points for {name}'s {channels} channel(s)");
        }

        for (int c = 0; c < channels; c++)
        {
            if (!(scale.Values[c] > 0f) || !float.IsFinite(scale.Values[c]) || zero.Values[c] != MathF.Round(zero.Values[c]) || zero.Values[c] < sbyte.MinValue || zero.Values[c] > sbyte.MaxValue)
            {
                throw Invalid($"has scale {scale.Values[c]} and zero point {zero.Values[c]} for channel {c} of {name}");
            }
        }

        int[] zeroPoints = Array.ConvertAll(zero.Values, z => (int)z);
        QParams qparams = perChannel
            ? QParams.PerChannel((float[])scale.Values.Clone(), zeroPoints, 0, QuantDType.QInt8)
            : QParams.PerTensor(scale.Values[0], zeroPoints[0], QuantDType.QInt8);
        return new QTensor([rows, columns], qparams, Array.ConvertAll(weight.Values, v => unchecked((byte)(sbyte)v)));
    }

    private float[] BiasValues(string name, int rows)
    {
        FloatOpTensor bias = Tensor(name) ?? throw Invalid($"has no {name}");
        if (bias.Values.Length != rows || bias.Values.Any(v => !float.IsFinite(v)))
        {
            throw Invalid($"has {name} of {bias.Values.Length} values (finite values, {rows} expected)");
        }

        return (float[])bias.Values.Clone();
    }

    /// <summary>
    /// One encoder layer of a <see cref="FloatOpKind.DynamicEncoderLayer"/> op (constants from <paramref name="first"/>,
    /// tensors named "{prefix}in_proj.weight" and so on) or of a <see cref="FloatOpKind.DynamicEncoder"/> op, every
    /// constant and tensor checked first (sizes, flags, which inputs the masks are, each projection's weights, qparams
    /// and bias, the norms).
    /// </summary>
    private Dynamic.DynamicQuantizedTransformerEncoderLayer EncoderLayerAt(int first, string prefix)
    {
        for (int i = first; i < first + 3; i++)
        {
            if (_ints[i] is < 1 or > 1 << 16)
            {
                throw Invalid($"has {_ints[i]} as constant {i}; d_model, nhead and dim_feedforward are 1..65536");
            }
        }

        if (_ints[first] % _ints[first + 1] != 0 || !Enum.IsDefined((Dynamic.EncoderActivation)_ints[first + 3]) || !Enum.IsDefined((QuantBackend)_ints[first + 4]) || _ints[first + 5] is not (0 or 1))
        {
            throw Invalid($"has d_model {_ints[first]}, {_ints[first + 1]} heads, activation {_ints[first + 3]}, backend {_ints[first + 4]} and per-channel flag {_ints[first + 5]}");
        }

        long mask = _ints[first + 6], padding = _ints[first + 7];
        int expectedInputs = 1 + (mask >= 0 ? 1 : 0) + (padding >= 0 ? 1 : 0);
        if (InputCount != expectedInputs || mask is < -1 or 0 || padding is < -1 or 0 || mask >= InputCount || padding >= InputCount || (mask > 0 && mask == padding))
        {
            throw Invalid($"reads {InputCount} inputs with the attention mask at {mask} and the padding mask at {padding}; src is input 0 and each mask given is a later input of its own");
        }

        if (!(_floats[0] > 0) || !double.IsFinite(_floats[0]))
        {
            throw Invalid($"has LayerNorm eps {_floats[0]}; a positive one is expected");
        }

        int d = Int(first), heads = Int(first + 1), feedForward = Int(first + 2);
        var backend = (QuantBackend)_ints[first + 4];
        bool perChannel = _ints[first + 5] == 1;
        var activation = (Dynamic.EncoderActivation)_ints[first + 3];
        Dynamic.DynamicQuantizedLinear Projection(string name, int rows, int columns, bool relu) =>
            new(Model, $"{Layer}.{prefix}{name}", columns, rows, QuantizedWeight(prefix + name + ".weight", rows, columns, perChannel), BiasValues(prefix + name + ".bias", rows), relu, backend);
        return new Dynamic.DynamicQuantizedTransformerEncoderLayer(
            Model,
            Layer,
            heads,
            activation,
            (float)_floats[0],
            Projection("in_proj", 3 * d, d, relu: false),
            Projection("out_proj", d, d, relu: false),
            Projection("linear1", feedForward, d, relu: activation == Dynamic.EncoderActivation.ReLU),
            Projection("linear2", d, feedForward, relu: false),
            BiasValues(prefix + "norm1.weight", d),
            BiasValues(prefix + "norm1.bias", d),
            BiasValues(prefix + "norm2.weight", d),
            BiasValues(prefix + "norm2.bias", d));
    }

    /// <summary>
    /// The layer of a <see cref="FloatOpKind.DynamicMultiheadAttention"/> op, every constant and tensor checked first: the
    /// element, sizes, flags, which inputs the call's arguments are (query is input 0, every input is read, the weights
    /// element needs need_weights), each projection's weights, qparams and optional bias, and no other tensor.
    /// </summary>
    private Dynamic.DynamicQuantizedMultiheadAttention MultiheadAttention()
    {
        Need(11, 0, InputCount);
        if (_ints[0] is not (0 or 1) || _ints[1] is < 1 or > 1 << 16 || _ints[2] < 1 || _ints[1] % _ints[2] != 0 || !Enum.IsDefined((QuantBackend)_ints[3]) || _ints[4] is not (0 or 1))
        {
            throw Invalid($"has element {_ints[0]} (0 or 1), embed_dim {_ints[1]} (1..65536), {_ints[2]} heads (a divisor of embed_dim), backend {_ints[3]} and per-channel flag {_ints[4]}");
        }

        long query = _ints[5], key = _ints[6], value = _ints[7], padding = _ints[8], needWeights = _ints[9], mask = _ints[10];
        long[] given = [query, key, value, padding, mask];
        bool everyInputRead = Enumerable.Range(0, InputCount).All(i => Array.IndexOf(given, (long)i) >= 0);
        if (query != 0 || key < 0 || value < 0 || padding < -1 || mask < -1 || given.Any(i => i >= InputCount) || !everyInputRead || needWeights is not (0 or 1) || (_ints[0] == 1 && needWeights == 0))
        {
            throw Invalid($"reads {InputCount} inputs as query {query}, key {key}, value {value}, key_padding_mask {padding}, attn_mask {mask} with need_weights {needWeights} for element {_ints[0]}; query is input 0, every input is one of them, and the weights element needs need_weights 1");
        }

        int d = Int(1);
        bool perChannel = _ints[4] == 1;
        var backend = (QuantBackend)_ints[3];
        int expectedTensors = 6 + (Tensor("in_proj.bias") is null ? 0 : 1) + (Tensor("out_proj.bias") is null ? 0 : 1);
        if (_tensors.Length != expectedTensors)
        {
            throw Invalid($"has {_tensors.Length} tensors; in_proj and out_proj take weight, weight_scale, weight_zero_point and an optional bias each");
        }

        Dynamic.DynamicQuantizedLinear Projection(string name, int rows) =>
            new(Model, $"{Layer}.{name}", d, rows, QuantizedWeight(name + ".weight", rows, d, perChannel), Tensor(name + ".bias") is null ? null : BiasValues(name + ".bias", rows), false, backend);
        return new Dynamic.DynamicQuantizedMultiheadAttention(Model, Layer, Int(2), Projection("in_proj", 3 * d), Projection("out_proj", d));
    }

    /// <summary>The dynamic Linear a <see cref="FloatOpKind.DynamicLinear"/> op stands for (its ReLU is the op's).</summary>
    private Dynamic.DynamicQuantizedLinear DynamicLinear()
    {
        int inFeatures = Int(0), outFeatures = Int(1);
        float[] scales = Values("weight_scale")!;
        int[] zeroPoints = Array.ConvertAll(Values("weight_zero_point")!, z => (int)z);
        QParams qparams = _ints[3] == 1
            ? QParams.PerChannel(scales, zeroPoints, 0, QuantDType.QInt8)
            : QParams.PerTensor(scales[0], zeroPoints[0], QuantDType.QInt8);
        byte[] storage = Array.ConvertAll(Values("weight")!, v => unchecked((byte)(sbyte)v));
        var weight = new QTensor([outFeatures, inFeatures], qparams, storage);
        return new Dynamic.DynamicQuantizedLinear(Model, Layer, inFeatures, outFeatures, weight, Values("bias"), fusedRelu: false, (QuantBackend)_ints[2]);
    }

    /// <summary>Builds the TorchSharp function once: weights become tensors owned by this op.</summary>
    private Func<Tensor[], Tensor> CreateRunner()
    {
        Tensor? Owned(string name) => Tensor(name) is { } t
            ? torch.tensor(t.Values, Array.ConvertAll(t.Shape, d => (long)d), ScalarType.Float32).DetachFromDisposeScope()
            : null;
        long[] Pair(int i) => [_ints[i], _ints[i + 1]];
        switch (Kind)
        {
            case FloatOpKind.Conv2d:
            {
                FusedConv2d conv = FusedConv2d.FromValues(Model, Layer, ConvOptions(), Values("weight")!, Values("bias"), relu: false);
                return a => conv.forward(a[0]);
            }

            case FloatOpKind.ConvTranspose2d:
            {
                FusedConvTranspose2d conv = FusedConvTranspose2d.FromValues(Model, Layer, ConvTransposeOptions(), Values("weight")!, Values("bias"), relu: false);
                return a => conv.forward(a[0]);
            }

            case FloatOpKind.Linear:
            {
                FusedLinear linear = FusedLinear.FromValues(Model, Layer, Int(0), Int(1), Values("weight")!, Values("bias"), relu: false, _ints[2] < 0 ? null : Int(2));
                return a => linear.forward(a[0]);
            }

            case FloatOpKind.BatchNorm2d:
            {
                FusedBatchNorm2d norm = FusedBatchNorm2d.FromValues(Model, Layer, Values("running_mean")!, Values("running_var")!, Values("weight"), Values("bias"), _floats[0], relu: false);
                return a => norm.forward(a[0]);
            }

            case FloatOpKind.ReLU:
                return a => nn.functional.relu(a[0]);
            case FloatOpKind.Hardtanh:
            {
                double min = _floats[0], max = _floats[1];
                // clamp: TorchSharp 0.107's hardtanh returns its input unchanged; PyTorch's hardtanh is this clamp.
                return a => a[0].clamp(min, max);
            }

            case FloatOpKind.Add:
                return a => a[0] + a[1];
            case FloatOpKind.Cat:
            {
                long dim = _ints[0];
                return a => torch.cat(a, dim);
            }

            case FloatOpKind.Flatten:
            {
                long start = _ints[0], end = _ints[1];
                return a => a[0].flatten(start, end);
            }

            case FloatOpKind.Reshape:
            {
                long[] shape = Ints;
                return a => a[0].reshape(shape);
            }

            case FloatOpKind.MaxPool2d:
            {
                long[] kernel = Pair(0), stride = Pair(2), padding = Pair(4), dilation = Pair(6);
                bool ceil = _ints[8] != 0;
                return a => nn.functional.max_pool2d(a[0], kernel, stride, padding, dilation, ceil);
            }

            case FloatOpKind.AvgPool2d:
            {
                long[] kernel = Pair(0), stride = Pair(2), padding = Pair(4);
                bool ceil = _ints[6] != 0, countIncludePad = _ints[7] != 0;
                long? divisor = _ints[8] > 0 ? _ints[8] : null;
                return a => nn.functional.avg_pool2d(a[0], kernel, stride, padding, ceil, countIncludePad, divisor);
            }

            case FloatOpKind.AdaptiveAvgPool2d:
            {
                long[] size = Pair(0);
                return a => nn.functional.adaptive_avg_pool2d(a[0], size);
            }

            case FloatOpKind.Elementwise:
                return Elementwise();
            case FloatOpKind.PixelShuffle:
            {
                long factor = _ints[0];
                return a => nn.functional.pixel_shuffle(a[0], factor);
            }

            case FloatOpKind.PixelUnshuffle:
            {
                long factor = _ints[0];
                return a => nn.functional.pixel_unshuffle(a[0], factor);
            }

            case FloatOpKind.Softmax:
            {
                long dim = _ints[0];
                return a => nn.functional.softmax(a[0], dim);
            }

            case FloatOpKind.LogSoftmax:
            {
                long dim = _ints[0];
                return a => nn.functional.log_softmax(a[0], dim);
            }

            case FloatOpKind.Upsample:
            {
                // What TorchSharp's Upsample.forward calls: interpolate with the module's size or scale, mode and flags.
                var mode = (InterpolationMode)Enum.Parse<UpsampleMode>(Text);
                long[]? size = _floats.Length == 0 ? Pair(0) : null;
                double[]? scale = _floats.Length == 0 ? null : Floats;
                long alignFlag = _ints[^2];
                bool? alignCorners = alignFlag < 0 ? null : alignFlag != 0;
                bool recompute = _ints[^1] != 0;
                return a => nn.functional.interpolate(a[0], size, scale, mode, alignCorners, recompute);
            }

            case FloatOpKind.LayerNorm:
            {
                long[] shape = Ints;
                Tensor? weight = Owned("weight"), bias = Owned("bias");
                double eps = _floats[0];
                return a => nn.functional.layer_norm(a[0], shape, weight, bias, eps);
            }

            case FloatOpKind.GroupNorm:
            {
                long groups = _ints[0];
                Tensor? weight = Owned("weight"), bias = Owned("bias");
                double eps = _floats[0];
                return a => nn.functional.group_norm(a[0], groups, weight, bias, eps);
            }

            case FloatOpKind.Mul:
                return a => a[0] * a[1];
            case FloatOpKind.MulConstant:
            {
                double constant = _floats[0];
                return a => a[0] * constant;
            }

            case FloatOpKind.AddConstant:
            {
                double constant = _floats[0];
                return a => a[0] + constant;
            }

            case FloatOpKind.DynamicLinear:
            {
                Dynamic.DynamicQuantizedLinear linear = DynamicLinear();
                return a => linear.Forward(a[0]);
            }

            case FloatOpKind.DynamicRecurrent:
            {
                int element = Int(0);
                if (_recurrent is Dynamic.DynamicQuantizedLSTM lstm)
                {
                    return a =>
                    {
                        (Tensor output, Tensor h, Tensor c) = lstm.Forward(a[0], a.Length == 3 ? (a[1], a[2]) : null);
                        return element == 0 ? output : element == 1 ? h : c;
                    };
                }

                var gru = (Dynamic.DynamicQuantizedGRU)_recurrent!;
                return a =>
                {
                    (Tensor output, Tensor h) = gru.Forward(a[0], a.Length == 2 ? a[1] : null);
                    return element == 0 ? output : h;
                };
            }

            case FloatOpKind.WeightOnlyEmbedding:
            {
                var table = (Dynamic.QuantizedEmbedding)_recurrent!;
                return a => table.Forward(a[0]);
            }

            case FloatOpKind.DynamicEncoderLayer:
            {
                var encoder = (Dynamic.DynamicQuantizedTransformerEncoderLayer)_recurrent!;
                int mask = Int(6), padding = Int(7);
                return a => encoder.Forward(a[0], mask > 0 ? a[mask] : null, padding > 0 ? a[padding] : null);
            }

            case FloatOpKind.DynamicEncoder:
            {
                var encoder = (Dynamic.DynamicQuantizedTransformerEncoder)_recurrent!;
                int mask = Int(7), padding = Int(8);
                return a => encoder.Forward(a[0], mask > 0 ? a[mask] : null, padding > 0 ? a[padding] : null);
            }

            case FloatOpKind.DynamicMultiheadAttention:
            {
                var attention = (Dynamic.DynamicQuantizedMultiheadAttention)_recurrent!;
                int element = Int(0), query = Int(5), key = Int(6), value = Int(7), padding = Int(8), mask = Int(10);
                bool needWeights = _ints[9] == 1;
                return a =>
                {
                    (Tensor output, Tensor? weights) = attention.Forward(a[query], a[key], a[value], padding >= 0 ? a[padding] : null, needWeights, mask >= 0 ? a[mask] : null);
                    return element == 0 ? output : weights!;
                };
            }

            case FloatOpKind.Float16Linear:
            {
                var linear = (Dynamic.Float16Linear)_recurrent!;
                return a => linear.Forward(a[0]);
            }

            case FloatOpKind.Float16Recurrent:
            {
                int element = Int(0);
                if (_recurrent is Dynamic.Float16LSTM lstm)
                {
                    return a =>
                    {
                        (Tensor output, Tensor h, Tensor c) = lstm.Forward(a[0], a.Length == 3 ? (a[1], a[2]) : null);
                        return element == 0 ? output : element == 1 ? h : c;
                    };
                }

                var gru = (Dynamic.Float16GRU)_recurrent!;
                return a =>
                {
                    (Tensor output, Tensor h) = gru.Forward(a[0], a.Length == 2 ? a[1] : null);
                    return element == 0 ? output : h;
                };
            }

            case FloatOpKind.Embedding:
            {
                // The rows gathered as nn.Embedding's forward does (a copy, so the same bits); libtorch checks the indices.
                Tensor weight = Owned("weight")!;
                long dim = _ints[1];
                return a => weight.index_select(0, a[0].flatten()).reshape([.. a[0].shape, dim]);
            }

            case FloatOpKind.Mean:
            {
                long[] dims = _ints[1..];
                bool keepDim = _ints[0] != 0;
                return a => a[0].mean(dims, keepDim);
            }

            case FloatOpKind.Function:
            {
                Func<Tensor[], Tensor> function = ResolveFunction();
                return function;
            }

            default:
                throw new InvalidOperationException($"{Name}: no float function for {Kind}.");
        }
    }

    private Func<Tensor[], Tensor> Elementwise()
    {
        double p0 = _floats.Length > 0 ? _floats[0] : 0, p1 = _floats.Length > 1 ? _floats[1] : 0;
        return Text switch
        {
            "LeakyReLU" => a => nn.functional.leaky_relu(a[0], p0),
            "Hardswish" => a => nn.functional.hardswish(a[0]),
            "Hardsigmoid" => a => nn.functional.hardsigmoid(a[0]),
            "SiLU" => a => nn.functional.silu(a[0]),
            "Sigmoid" => a => nn.functional.sigmoid(a[0]),
            "Tanh" => a => nn.functional.tanh(a[0]),
            "ELU" => a => nn.functional.elu(a[0], p0),
            "CELU" => a => nn.functional.celu(a[0], p0),
            "SELU" => a => nn.functional.selu(a[0]),
            "GELU" => p0 == 0 ? a => nn.functional.gelu(a[0], TorchSharp.Modules.GELU.Approximate.none) : a => nn.functional.gelu(a[0], TorchSharp.Modules.GELU.Approximate.tanh),
            "Mish" => a => nn.functional.mish(a[0]),
            "Softplus" => a => nn.functional.softplus(a[0], p0, p1),
            "Softsign" => a => nn.functional.softsign(a[0]),
            "Tanhshrink" => a => nn.functional.tanhshrink(a[0]),
            "Hardshrink" => a => nn.functional.hardshrink(a[0], p0),
            "Softshrink" => a => nn.functional.softshrink(a[0], p0),
            "LogSigmoid" => a => nn.functional.logsigmoid(a[0]),
            "Threshold" => a => nn.functional.threshold(a[0], p0, p1),
            _ => throw Invalid($"names the function '{Text}'"),
        };
    }

    /// <summary>The generator's function for a captured expression, found among the captured forwards of the loaded assemblies.</summary>
    private Func<Tensor[], Tensor> ResolveFunction()
    {
        int bar = Text.LastIndexOf('|');
        string owner = Text[..bar], hash = Text[(bar + 1)..];
        CapturedForward forward = CapturedModules.FindByName(owner)
            ?? throw new InvalidOperationException(
                $"{Name}: the float expression comes from {owner}'s forward, whose code is not loaded in this process; load the file with the model's own Load (M.Quantized.Load), from the assembly that defines {owner}.");
        if (forward.Hash != hash)
        {
            throw new InvalidOperationException($"{Name}: {owner}'s forward has changed since the file was saved (captured hash {forward.Hash}, the file's {hash}); convert and save the model again.");
        }

        int node = Int(0);
        if (node < forward.Nodes.Count && forward.Nodes[node] is { FloatOf: { } floatOf, Scalars: { } scalars })
        {
            double[] values = (double[])_floats.Clone();
            return values.Length == scalars.Length
                ? a => floatOf(a, values)
                : throw new InvalidOperationException($"{Name}: the file gives {values.Length} member value(s) to node {node} of {owner}'s forward, which reads {scalars.Length} ({string.Join(", ", scalars)}).");
        }

        return node < forward.Nodes.Count && forward.Nodes[node].Float is { } function && _floats.Length == 0
            ? function
            : throw new InvalidOperationException($"{Name}: node {node} of {owner}'s forward is not a float expression{(_floats.Length > 0 ? " that reads member values" : "")}.");
    }
}
