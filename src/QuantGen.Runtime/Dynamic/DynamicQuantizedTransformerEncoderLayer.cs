using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Numerics;
using QuantGen.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>The feed-forward activation of a Transformer encoder layer (TorchSharp's <c>TransformerEncoderLayer.Activations</c>).</summary>
public enum EncoderActivation
{
    /// <summary>relu, the default.</summary>
    ReLU = 0,

    /// <summary>gelu (the exact, erf form).</summary>
    GELU = 1,
}

/// <summary>
/// A post-norm Transformer encoder layer (libtorch's <c>TransformerEncoderLayer</c>, which TorchSharp wraps) with its
/// four projections — attention's packed q/k/v input projection and its output projection, the feed-forward pair — as
/// <see cref="DynamicQuantizedLinear"/> layers (int8 weights, the input quantized per call), and attention's scores,
/// softmax and weighted sum, the residual adds and both LayerNorms in float32:
/// <code>
/// x = LayerNorm1(src + out_proj(attention(in_proj(src), src_mask, key_padding_mask)))
/// y = LayerNorm2(x + linear2(activation(linear1(x))))
/// </code>
/// PyTorch's <c>quantize_dynamic</c> leaves attention's projections in float (<c>out_proj</c> is a
/// NonDynamicallyQuantizableLinear, <c>in_proj_weight</c> a bare parameter) and quantizes only linear1 and linear2;
/// QuantGen quantizes all four (docs/numerics.md §12). Dropout is identity (eval). Safe to call from many threads.
/// </summary>
public sealed class DynamicQuantizedTransformerEncoderLayer
{
    private readonly float[] _norm1Weight, _norm1Bias, _norm2Weight, _norm2Bias;
    private readonly string _name;

    /// <summary>The self-attention block (in_proj, attention, out_proj): one implementation with the standalone layer.</summary>
    private readonly DynamicQuantizedMultiheadAttention _selfAttention;

    /// <summary>Creates the layer from its parts (a file's, or <see cref="FromModule"/>'s).</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Layer name for errors.</param>
    /// <param name="heads">Attention heads (nhead); divides the model dimension.</param>
    /// <param name="activation">The feed-forward activation (a ReLU is fused into linear1, a GELU follows it).</param>
    /// <param name="eps">LayerNorm's epsilon.</param>
    /// <param name="inProjection">q, k and v stacked: [3·d_model, d_model].</param>
    /// <param name="outProjection">[d_model, d_model].</param>
    /// <param name="linear1">[dim_feedforward, d_model].</param>
    /// <param name="linear2">[d_model, dim_feedforward].</param>
    /// <param name="norm1Weight">norm1's weight, d_model values.</param>
    /// <param name="norm1Bias">norm1's bias.</param>
    /// <param name="norm2Weight">norm2's weight.</param>
    /// <param name="norm2Bias">norm2's bias.</param>
    /// <exception cref="ArgumentException">Sizes that do not make one encoder layer, or non-finite norm parameters (the message names the layer).</exception>
    public DynamicQuantizedTransformerEncoderLayer(
        string model,
        string layer,
        int heads,
        EncoderActivation activation,
        float eps,
        DynamicQuantizedLinear inProjection,
        DynamicQuantizedLinear outProjection,
        DynamicQuantizedLinear linear1,
        DynamicQuantizedLinear linear2,
        float[] norm1Weight,
        float[] norm1Bias,
        float[] norm2Weight,
        float[] norm2Bias)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(inProjection);
        ArgumentNullException.ThrowIfNull(outProjection);
        ArgumentNullException.ThrowIfNull(linear1);
        ArgumentNullException.ThrowIfNull(linear2);
        _name = $"{model}.{layer}";
        int d = outProjection.OutFeatures;
        int feedForward = linear1.OutFeatures;
        if (d < 1 || heads < 1 || d % heads != 0
            || inProjection.InFeatures != d || inProjection.OutFeatures != 3 * d || outProjection.InFeatures != d
            || linear1.InFeatures != d || linear2.InFeatures != feedForward || linear2.OutFeatures != d)
        {
            throw new ArgumentException(
                $"{_name}: projections in_proj [{inProjection.OutFeatures}, {inProjection.InFeatures}], out_proj [{outProjection.OutFeatures}, {outProjection.InFeatures}], linear1 [{linear1.OutFeatures}, {linear1.InFeatures}], linear2 [{linear2.OutFeatures}, {linear2.InFeatures}] and {heads} heads do not make an encoder layer (d_model must be a multiple of the heads; in_proj [3·d, d], out_proj [d, d], linear1 [ff, d], linear2 [d, ff]).",
                nameof(heads));
        }

        if (!Enum.IsDefined(activation) || linear1.FusedRelu != (activation == EncoderActivation.ReLU) || inProjection.FusedRelu || outProjection.FusedRelu || linear2.FusedRelu)
        {
            throw new ArgumentException($"{_name}: the {activation} activation must be linear1's fused ReLU (and no other projection fuses one).", nameof(activation));
        }

        if (!(eps > 0f) || !float.IsFinite(eps))
        {
            throw new ArgumentException($"{_name}: LayerNorm eps {eps.ToString("R", CultureInfo.InvariantCulture)} must be positive and finite.", nameof(eps));
        }

        _norm1Weight = NormParameter(norm1Weight, d, "norm1.weight");
        _norm1Bias = NormParameter(norm1Bias, d, "norm1.bias");
        _norm2Weight = NormParameter(norm2Weight, d, "norm2.weight");
        _norm2Bias = NormParameter(norm2Bias, d, "norm2.bias");
        Model = model;
        Layer = layer;
        ModelDim = d;
        Heads = heads;
        FeedForward = feedForward;
        Activation = activation;
        Eps = eps;
        InProjection = inProjection;
        OutProjection = outProjection;
        Linear1 = linear1;
        Linear2 = linear2;
        Backend = inProjection.Backend;
        _selfAttention = new DynamicQuantizedMultiheadAttention(model, $"{layer}.self_attn", heads, inProjection, outProjection);
    }

    /// <summary>Model name for errors.</summary>
    public string Model { get; }

    /// <summary>Layer name for errors.</summary>
    public string Layer { get; }

    /// <summary>d_model.</summary>
    public int ModelDim { get; }

    /// <summary>nhead.</summary>
    public int Heads { get; }

    /// <summary>dim_feedforward.</summary>
    public int FeedForward { get; }

    /// <summary>The feed-forward activation.</summary>
    public EncoderActivation Activation { get; }

    /// <summary>LayerNorm's epsilon.</summary>
    public float Eps { get; }

    /// <summary>The arithmetic preset of the projections.</summary>
    public QuantBackend Backend { get; }

    /// <summary>Attention's packed q/k/v input projection.</summary>
    public DynamicQuantizedLinear InProjection { get; }

    /// <summary>Attention's output projection.</summary>
    public DynamicQuantizedLinear OutProjection { get; }

    /// <summary>The feed-forward block's first Linear (with the ReLU fused when the activation is ReLU).</summary>
    public DynamicQuantizedLinear Linear1 { get; }

    /// <summary>The feed-forward block's second Linear.</summary>
    public DynamicQuantizedLinear Linear2 { get; }

    /// <summary>norm1's weight and bias, then norm2's (copies).</summary>
    public (float[] Norm1Weight, float[] Norm1Bias, float[] Norm2Weight, float[] Norm2Bias) Norms =>
        ((float[])_norm1Weight.Clone(), (float[])_norm1Bias.Clone(), (float[])_norm2Weight.Clone(), (float[])_norm2Bias.Clone());

    /// <summary>
    /// Quantizes a TorchSharp <see cref="TransformerEncoderLayer"/> (only read; it must be in eval mode). TorchSharp
    /// exposes its parameters but not its head count or activation, so these are identified by running the layer once
    /// on a fixed probe input and comparing with the float32 encoder layer of each candidate (every divisor of d_model
    /// as the heads × ReLU/GELU; LayerNorm eps 1e-5, libtorch's): exactly one must agree (docs/numerics.md §12).
    /// </summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Layer name for errors.</param>
    /// <param name="module">The float layer.</param>
    /// <param name="backend">The arithmetic preset of the projections.</param>
    /// <param name="perChannel">Per-output-feature weight scales.</param>
    /// <exception cref="NotSupportedException">The layer's configuration could not be identified (the message says why).</exception>
    public static DynamicQuantizedTransformerEncoderLayer FromModule(string model, string layer, TransformerEncoderLayer module, QuantBackend backend, bool perChannel = false)
    {
        ArgumentNullException.ThrowIfNull(module);
        EncoderLayerParameters p = EncoderLayerParameters.Read($"{model}.{layer}", module);
        (int heads, EncoderActivation activation) = Identify($"{model}.{layer}", module, p);
        return FromParameters(model, layer, p, heads, activation, backend, perChannel);
    }

    /// <summary>As <see cref="FromModule"/>, with the head count and activation already identified (at Prepare).</summary>
    internal static DynamicQuantizedTransformerEncoderLayer FromIdentified(string model, string layer, TransformerEncoderLayer module, int heads, EncoderActivation activation, QuantBackend backend, bool perChannel) =>
        FromParameters(model, layer, EncoderLayerParameters.Read($"{model}.{layer}", module), heads, activation, backend, perChannel);

    internal static DynamicQuantizedTransformerEncoderLayer FromParameters(string model, string layer, EncoderLayerParameters p, int heads, EncoderActivation activation, QuantBackend backend, bool perChannel)
    {
        int d = p.ModelDim, ff = p.FeedForward;
        return new DynamicQuantizedTransformerEncoderLayer(
            model,
            layer,
            heads,
            activation,
            DefaultEps,
            DynamicQuantizedLinear.FromWeights(model, $"{layer}.self_attn.in_proj", p.InWeight, 3 * d, d, p.InBias, backend, perChannel),
            DynamicQuantizedLinear.FromWeights(model, $"{layer}.self_attn.out_proj", p.OutWeight, d, d, p.OutBias, backend, perChannel),
            DynamicQuantizedLinear.FromWeights(model, $"{layer}.linear1", p.Linear1Weight, ff, d, p.Linear1Bias, backend, perChannel, fusedRelu: activation == EncoderActivation.ReLU),
            DynamicQuantizedLinear.FromWeights(model, $"{layer}.linear2", p.Linear2Weight, d, ff, p.Linear2Bias, backend, perChannel),
            p.Norm1Weight,
            p.Norm1Bias,
            p.Norm2Weight,
            p.Norm2Bias);
    }

    /// <summary>libtorch's TransformerEncoderLayer LayerNorm epsilon (TorchSharp does not let it be set).</summary>
    public const float DefaultEps = 1e-5f;

    /// <summary>
    /// The head count and activation of a TorchSharp encoder layer, found by comparing its output on a probe input with
    /// the float32 layer of each candidate configuration (see <see cref="FromModule"/>).
    /// </summary>
    /// <param name="name">"Model.layer" for errors.</param>
    /// <param name="module">The float layer, in eval mode.</param>
    /// <exception cref="NotSupportedException">No candidate, or more than one, agrees (the message says which were tried).</exception>
    public static (int Heads, EncoderActivation Activation) Identify(string name, TransformerEncoderLayer module)
    {
        ArgumentNullException.ThrowIfNull(module);
        return Identify(name, module, EncoderLayerParameters.Read(name, module));
    }

    private static (int Heads, EncoderActivation Activation) Identify(string name, TransformerEncoderLayer module, EncoderLayerParameters p) =>
        Identify(name, module, module.call, [p]);

    /// <summary>
    /// The head count and activation shared by the layers <paramref name="layers"/> of <paramref name="module"/>, whose
    /// one-input call is <paramref name="run"/>: its output on a probe against each candidate stack of float32 layers.
    /// </summary>
    internal static (int Heads, EncoderActivation Activation) Identify(string name, nn.Module module, Func<Tensor, Tensor> run, IReadOnlyList<EncoderLayerParameters> layers)
    {
        if (module.training)
        {
            throw new NotSupportedException($"{name}: the {module.GetType().Name} is in training mode (its dropout is random), so its head count and activation cannot be read from its output; call model.eval() before Prepare.");
        }

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        EncoderLayerParameters p = layers[0];
        int d = p.ModelDim;
        // A fixed probe (its own generator: the caller's random stream is left alone): 5 positions, 2 sequences.
        using var generator = new Generator(20261207);
        Tensor probe = torch.randn(new long[] { 5, 2, d }, generator: generator);
        Tensor actual = run(probe);
        float scale = Math.Max(1f, actual.abs().max().item<float>());
        var agreeing = new List<(int, EncoderActivation)>();
        var tried = new List<string>();
        foreach (int heads in Enumerable.Range(1, d).Where(h => d % h == 0))
        {
            foreach (EncoderActivation activation in Enum.GetValues<EncoderActivation>())
            {
                Tensor expected = probe;
                foreach (EncoderLayerParameters layer in layers)
                {
                    expected = FloatReference(expected, layer, heads, activation, DefaultEps);
                }

                float difference = (expected - actual).abs().max().item<float>();
                tried.Add($"{heads} heads/{activation}: {difference.ToString("G3", CultureInfo.InvariantCulture)}");
                if (difference <= 1e-4f * scale)
                {
                    agreeing.Add((heads, activation));
                }
            }
        }

        return agreeing.Count == 1
            ? agreeing[0]
            : throw new NotSupportedException(
                $"{name}: TorchSharp does not expose a {module.GetType().Name}'s head count or activation, and {(agreeing.Count == 0 ? "no" : agreeing.Count.ToString(CultureInfo.InvariantCulture))} candidate float32 layer(s) agree with its output on a probe input (largest difference per candidate: {string.Join(", ", tried)}); it stays float.");
    }

    /// <summary>The float32 post-norm encoder layer with TorchSharp ops (the identification's candidates).</summary>
    internal static Tensor FloatReference(Tensor src, EncoderLayerParameters p, int heads, EncoderActivation activation, float eps)
    {
        int d = p.ModelDim;
        Tensor W(float[] values, params long[] shape) => torch.tensor(values, shape);
        Tensor attended = DynamicQuantizedMultiheadAttention.FloatReference(src, src, src, p.Attention, heads);
        Tensor x = nn.functional.layer_norm(src + attended, new long[] { d }, W(p.Norm1Weight, d), W(p.Norm1Bias, d), eps);
        Tensor hidden = nn.functional.linear(x, W(p.Linear1Weight, p.FeedForward, d), W(p.Linear1Bias, p.FeedForward));
        hidden = activation == EncoderActivation.ReLU ? nn.functional.relu(hidden) : nn.functional.gelu(hidden);
        Tensor y = nn.functional.linear(hidden, W(p.Linear2Weight, d, p.FeedForward), W(p.Linear2Bias, d));
        return nn.functional.layer_norm(x + y, new long[] { d }, W(p.Norm2Weight, d), W(p.Norm2Bias, d), eps);
    }

    /// <summary>
    /// The layer on a sequence-first float32 input [length, batch, d_model] (TorchSharp's layout), with an optional
    /// attention mask [length, length] added to the scores (float: use −∞ to mask; bool: added as 0/1, as TorchSharp's
    /// float layer does — libtorch's C++ attention does not mask with a bool src_mask) and key padding mask
    /// [batch, length] (bool: true is padding). A row whose keys are all masked gives NaN, as PyTorch's softmax does.
    /// </summary>
    /// <param name="src">The input.</param>
    /// <param name="srcMask">null, or the attention mask.</param>
    /// <param name="keyPaddingMask">null, or the key padding mask.</param>
    /// <returns>A new float32 tensor [length, batch, d_model].</returns>
    /// <exception cref="ArgumentException">A wrong dtype or shape, or a non-finite input (the message names the layer and what was expected).</exception>
    public Tensor Forward(Tensor src, Tensor? srcMask = null, Tensor? keyPaddingMask = null)
    {
        ArgumentNullException.ThrowIfNull(src);

        // Each shape read is a native call and a new array: read once.
        long[] shape = src.shape;
        if (src.dtype != ScalarType.Float32 || shape.Length != 3 || shape[2] != ModelDim || shape[0] < 1 || shape[1] < 1)
        {
            throw new ArgumentException($"{_name}: expected a Float32 input [length, batch, {ModelDim}] (sequence first, as TorchSharp's TransformerEncoderLayer takes it), got {src.dtype} [{string.Join(", ", shape)}].", nameof(src));
        }

        int length = checked((int)shape[0]), batch = checked((int)shape[1]);
        var masks = new AttentionMasks(
            DynamicQuantizedMultiheadAttention.AdditiveMask(_name, "src_mask", srcMask, length, length, 0, out _),
            false,
            DynamicQuantizedMultiheadAttention.PaddingMask(_name, "src_key_padding_mask", keyPaddingMask, batch, length));
        float[] x = TensorInterop.ToArray(src, out _);
        float[] output = Forward(x, length, batch, masks);
        return TensorInterop.FromArray(output, [length, batch, ModelDim]);
    }

    /// <summary>
    /// The layer on rows in <paramref name="x"/>'s [length, batch, d_model] order, with the attention mask
    /// ([length, length]) and key padding mask ([batch, length]) of <paramref name="masks"/>.
    /// </summary>
    private float[] Forward(float[] x, int length, int batch, AttentionMasks masks)
    {
        int rows = length * batch;
        float[] projected = _selfAttention.Forward(x, x, x, length, length, batch, masks, averagedWeights: null);
        AddAndNormalize(x, projected, _norm1Weight, _norm1Bias);
        int hiddenCount = rows * FeedForward;
        Span<float> hidden = AttentionScratch.Current.Floats(AttentionScratch.Slot.Hidden, hiddenCount).AsSpan(0, hiddenCount);
        Linear1.Forward(x, rows, hidden);
        if (Activation == EncoderActivation.GELU)
        {
            // The exact (erf) GELU as libtorch computes it; .NET has no erf.
            using var scope = torch.NewDisposeScope();
            TensorInterop.ToArray(nn.functional.gelu(torch.tensor(hidden.ToArray())), out _).CopyTo(hidden);
        }

        Linear2.Forward(hidden, rows, projected);
        AddAndNormalize(x, projected, _norm2Weight, _norm2Bias);
        return x;
    }

    /// <summary>
    /// <c>x = LayerNorm(x + y)</c> per row of d_model values, in place: two passes (the mean, then the biased variance of
    /// the centred values), each summed in <see cref="Vector{T}"/>-wide partial sums and then across them (the tail
    /// element by element) — another order than libtorch's, within float32 rounding of it.
    /// </summary>
    private void AddAndNormalize(float[] x, float[] y, float[] weight, float[] bias)
    {
        int d = ModelDim, width = Vector<float>.Count, whole = d - (d % width);
        for (int offset = 0; offset < x.Length; offset += d)
        {
            Span<float> row = x.AsSpan(offset, d);
            ReadOnlySpan<float> added = y.AsSpan(offset, d);
            Vector<float> sums = Vector<float>.Zero;
            int j = 0;
            for (; j < whole; j += width)
            {
                Vector<float> v = new Vector<float>(row.Slice(j)) + new Vector<float>(added.Slice(j));
                v.CopyTo(row.Slice(j));
                sums += v;
            }

            float sum = Vector.Sum(sums);
            for (; j < d; j++)
            {
                row[j] += added[j];
                sum += row[j];
            }

            float mean = sum / d;
            var meanVector = new Vector<float>(mean);
            Vector<float> squares = Vector<float>.Zero;
            for (j = 0; j < whole; j += width)
            {
                Vector<float> centred = new Vector<float>(row.Slice(j)) - meanVector;
                squares += centred * centred;
            }

            float variance = Vector.Sum(squares);
            for (; j < d; j++)
            {
                float centred = row[j] - mean;
                variance += centred * centred;
            }

            float inverse = 1.0f / MathF.Sqrt((variance / d) + Eps);
            var inverseVector = new Vector<float>(inverse);
            for (j = 0; j < whole; j += width)
            {
                Vector<float> normalized = (new Vector<float>(row.Slice(j)) - meanVector) * inverseVector;
                ((normalized * new Vector<float>(weight, j)) + new Vector<float>(bias, j)).CopyTo(row.Slice(j));
            }

            for (; j < d; j++)
            {
                row[j] = ((row[j] - mean) * inverse * weight[j]) + bias[j];
            }
        }
    }

    private float[] NormParameter(float[] values, int d, string what)
    {
        ArgumentNullException.ThrowIfNull(values, what);
        if (values.Length != d || values.Any(v => !float.IsFinite(v)))
        {
            throw new ArgumentException($"{_name}: {what} must hold {d} finite values, got {values.Length}.", what);
        }

        return (float[])values.Clone();
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"DynamicQuantizedTransformerEncoderLayer(d_model={ModelDim}, nhead={Heads}, dim_feedforward={FeedForward}, activation={Activation.ToString().ToLowerInvariant()}, dtype=torch.qint8)";
}

/// <summary>A TorchSharp TransformerEncoderLayer's parameters as float arrays, checked for the shapes of one layer.</summary>
internal sealed record EncoderLayerParameters(
    int ModelDim,
    int FeedForward,
    float[] InWeight,
    float[] InBias,
    float[] OutWeight,
    float[] OutBias,
    float[] Linear1Weight,
    float[] Linear1Bias,
    float[] Linear2Weight,
    float[] Linear2Bias,
    float[] Norm1Weight,
    float[] Norm1Bias,
    float[] Norm2Weight,
    float[] Norm2Bias)
{
    /// <summary>The layer's self-attention parameters (self_attn.in_proj_*, self_attn.out_proj.*).</summary>
    public AttentionParameters Attention => new(ModelDim, InWeight, InBias, OutWeight, OutBias);

    public static EncoderLayerParameters Read(string name, TransformerEncoderLayer module) => Read(name, Parameters(module), "");

    public static Dictionary<string, Tensor> Parameters(nn.Module module)
    {
        var parameters = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach ((string parameter, Parameter value) in module.named_parameters())
        {
            parameters[parameter] = value;
        }

        return parameters;
    }

    /// <summary>One layer's parameters, named <paramref name="prefix"/> + "self_attn.in_proj_weight" and so on.</summary>
    public static EncoderLayerParameters Read(string name, Dictionary<string, Tensor> parameters, string prefix)
    {
        Tensor Get(string parameter, int rank) => parameters.TryGetValue(prefix + parameter, out Tensor? t) && t.dim() == rank && t.dtype == ScalarType.Float32
            ? t
            : throw new NotSupportedException($"{name}: a TransformerEncoderLayer without a float32 '{prefix}{parameter}' of rank {rank} (found: {string.Join(", ", parameters.Select(kv => $"{kv.Key} {kv.Value.dtype} [{string.Join(", ", kv.Value.shape)}]"))}).");
        float[] Values(Tensor t)
        {
            using var noGrad = torch.no_grad();
            float[] values = t.detach().contiguous().cpu().data<float>().ToArray();
            return values.All(float.IsFinite) ? values : throw new ArgumentException($"{name}: a non-finite value in a TransformerEncoderLayer parameter of shape [{string.Join(", ", t.shape)}].");
        }

        Tensor inWeight = Get("self_attn.in_proj_weight", 2), linear1 = Get("linear1.weight", 2);
        int d = checked((int)inWeight.shape[1]), ff = checked((int)linear1.shape[0]);
        var p = new EncoderLayerParameters(
            d,
            ff,
            Values(inWeight),
            Values(Get("self_attn.in_proj_bias", 1)),
            Values(Get("self_attn.out_proj.weight", 2)),
            Values(Get("self_attn.out_proj.bias", 1)),
            Values(linear1),
            Values(Get("linear1.bias", 1)),
            Values(Get("linear2.weight", 2)),
            Values(Get("linear2.bias", 1)),
            Values(Get("norm1.weight", 1)),
            Values(Get("norm1.bias", 1)),
            Values(Get("norm2.weight", 1)),
            Values(Get("norm2.bias", 1)));
        if (p.InWeight.Length != 3 * d * d || p.InBias.Length != 3 * d || p.OutWeight.Length != d * d || p.OutBias.Length != d
            || p.Linear1Weight.Length != ff * d || p.Linear1Bias.Length != ff || p.Linear2Weight.Length != d * ff || p.Linear2Bias.Length != d
            || p.Norm1Weight.Length != d || p.Norm1Bias.Length != d || p.Norm2Weight.Length != d || p.Norm2Bias.Length != d)
        {
            throw new NotSupportedException($"{name}: the TransformerEncoderLayer's parameters do not have the shapes of one post-norm encoder layer with d_model {d} and dim_feedforward {ff}.");
        }

        return p;
    }
}
