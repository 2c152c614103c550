using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Runtime.Intrinsics;
using QuantGen.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>
/// libtorch's <c>MultiheadAttention</c> (which TorchSharp's module wraps: sequence first, <c>[length, batch, embed_dim]</c>)
/// with its packed q/k/v input projection and its output projection as <see cref="DynamicQuantizedLinear"/> layers (int8
/// weights, each input quantized per call), and the scores, softmax and weighted sum in float32:
/// <code>
/// q, k, v = in_proj_q(query), in_proj_k(key), in_proj_v(value)          (one call when query, key and value are one tensor)
/// a_h     = softmax((q_h · (1/√head_dim)) · k_hᵀ + attn_mask, −∞ at padded keys) · v_h
/// output  = out_proj(concat_h a_h),   weights = mean_h softmax(...)   (when asked for)
/// </code>
/// The attention core is the one <see cref="DynamicQuantizedTransformerEncoderLayer"/> runs (docs/numerics.md §12).
/// PyTorch's <c>quantize_dynamic</c> leaves attention float; QuantGen quantizes its projections. Dropout is identity
/// (eval). Safe to call from many threads.
/// </summary>
public sealed class DynamicQuantizedMultiheadAttention
{
    private readonly string _name;

    // The rows of the packed in_proj for q, k and v, holding the same int8 values and weight scales: a projection of one
    // input through a slice gives the bits of the packed projection's columns (each output is its own row's dot product).
    private readonly DynamicQuantizedLinear _queryProjection, _keyProjection, _valueProjection;

    /// <summary>Creates the layer from its parts (a file's, or <see cref="FromModule"/>'s).</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Layer name for errors.</param>
    /// <param name="heads">Attention heads (num_heads); divides embed_dim.</param>
    /// <param name="inProjection">q, k and v stacked: [3·embed_dim, embed_dim] (in_proj_weight, in_proj_bias).</param>
    /// <param name="outProjection">[embed_dim, embed_dim].</param>
    /// <exception cref="ArgumentException">Sizes that do not make one attention layer, or a fused ReLU (the message names the layer).</exception>
    public DynamicQuantizedMultiheadAttention(string model, string layer, int heads, DynamicQuantizedLinear inProjection, DynamicQuantizedLinear outProjection)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(inProjection);
        ArgumentNullException.ThrowIfNull(outProjection);
        _name = $"{model}.{layer}";
        int d = outProjection.OutFeatures;
        if (d < 1 || heads < 1 || d % heads != 0 || inProjection.InFeatures != d || inProjection.OutFeatures != 3 * d || outProjection.InFeatures != d)
        {
            throw new ArgumentException(
                $"{_name}: projections in_proj [{inProjection.OutFeatures}, {inProjection.InFeatures}], out_proj [{outProjection.OutFeatures}, {outProjection.InFeatures}] and {heads} heads do not make a multi-head attention (embed_dim must be a multiple of the heads; in_proj [3·d, d], out_proj [d, d]).",
                nameof(heads));
        }

        if (inProjection.FusedRelu || outProjection.FusedRelu || inProjection.Backend != outProjection.Backend)
        {
            throw new ArgumentException($"{_name}: attention's projections fuse no ReLU and share one backend (in_proj {inProjection.Backend}, out_proj {outProjection.Backend}).", nameof(outProjection));
        }

        Model = model;
        Layer = layer;
        EmbedDim = d;
        Heads = heads;
        InProjection = inProjection;
        OutProjection = outProjection;
        _queryProjection = RowSlice(inProjection, 0, d, "q");
        _keyProjection = RowSlice(inProjection, d, d, "k");
        _valueProjection = RowSlice(inProjection, 2 * d, d, "v");
    }

    /// <summary>Model name for errors.</summary>
    public string Model { get; }

    /// <summary>Layer name for errors.</summary>
    public string Layer { get; }

    /// <summary>embed_dim.</summary>
    public int EmbedDim { get; }

    /// <summary>num_heads.</summary>
    public int Heads { get; }

    /// <summary>The arithmetic preset of the projections.</summary>
    public QuantBackend Backend => InProjection.Backend;

    /// <summary>The packed q/k/v input projection.</summary>
    public DynamicQuantizedLinear InProjection { get; }

    /// <summary>The output projection.</summary>
    public DynamicQuantizedLinear OutProjection { get; }

    /// <summary>
    /// Quantizes a TorchSharp <see cref="MultiheadAttention"/> (only read; it must be in eval mode). TorchSharp exposes its
    /// parameters but not its head count, so the heads are identified by running the module once on a fixed probe input
    /// and comparing with the float32 attention of every divisor of embed_dim: exactly one must agree.
    /// </summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Layer name for errors.</param>
    /// <param name="module">The float module.</param>
    /// <param name="backend">The arithmetic preset of the projections.</param>
    /// <param name="perChannel">Per-output-feature weight scales.</param>
    /// <exception cref="NotSupportedException">A configuration QuantGen does not quantize (kdim or vdim other than embed_dim,
    /// add_bias_kv, add_zero_attn, training mode) or whose head count could not be identified (the message says which).</exception>
    public static DynamicQuantizedMultiheadAttention FromModule(string model, string layer, MultiheadAttention module, QuantBackend backend, bool perChannel = false)
    {
        ArgumentNullException.ThrowIfNull(module);
        int heads = Identify($"{model}.{layer}", module);
        return FromIdentified(model, layer, module, heads, backend, perChannel);
    }

    /// <summary>As <see cref="FromModule"/>, with the head count already identified (at Prepare).</summary>
    internal static DynamicQuantizedMultiheadAttention FromIdentified(string model, string layer, MultiheadAttention module, int heads, QuantBackend backend, bool perChannel) =>
        FromParameters(model, layer, AttentionParameters.Read($"{model}.{layer}", EncoderLayerParameters.Parameters(module), ""), heads, backend, perChannel);

    internal static DynamicQuantizedMultiheadAttention FromParameters(string model, string layer, AttentionParameters p, int heads, QuantBackend backend, bool perChannel)
    {
        int d = p.EmbedDim;
        return new DynamicQuantizedMultiheadAttention(
            model,
            layer,
            heads,
            DynamicQuantizedLinear.FromWeights(model, $"{layer}.in_proj", p.InWeight, 3 * d, d, p.InBias, backend, perChannel),
            DynamicQuantizedLinear.FromWeights(model, $"{layer}.out_proj", p.OutWeight, d, d, p.OutBias, backend, perChannel));
    }

    /// <summary>
    /// The head count of a TorchSharp multi-head attention, found by comparing its output on a probe input with the float32
    /// attention of each divisor of embed_dim (see <see cref="FromModule"/>).
    /// </summary>
    /// <param name="name">"Model.layer" for errors.</param>
    /// <param name="module">The float module, in eval mode.</param>
    /// <exception cref="NotSupportedException">An unsupported configuration, or no candidate (or more than one) agrees.</exception>
    public static int Identify(string name, MultiheadAttention module)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (module.training)
        {
            throw new NotSupportedException($"{name}: the MultiheadAttention is in training mode (its dropout is random), so its head count cannot be read from its output; call model.eval() before Prepare.");
        }

        AttentionParameters p = AttentionParameters.Read(name, EncoderLayerParameters.Parameters(module), "");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        int d = p.EmbedDim;
        // A fixed probe (its own generator: the caller's random stream is left alone): 5 positions, 2 sequences.
        using var generator = new Generator(20261207);
        Tensor probe = torch.randn(new long[] { 5, 2, d }, generator: generator);
        Tensor actual = module.forward(probe, probe, probe, null, false, null).Item1;
        float scale = Math.Max(1f, actual.abs().max().item<float>());
        var agreeing = new List<int>();
        var tried = new List<string>();
        foreach (int heads in Enumerable.Range(1, d).Where(h => d % h == 0))
        {
            float difference = (FloatReference(probe, probe, probe, p, heads) - actual).abs().max().item<float>();
            tried.Add($"{heads} heads: {difference.ToString("G3", CultureInfo.InvariantCulture)}");
            if (difference <= 1e-4f * scale)
            {
                agreeing.Add(heads);
            }
        }

        return agreeing.Count == 1
            ? agreeing[0]
            : throw new NotSupportedException(
                $"{name}: TorchSharp does not expose a MultiheadAttention's head count, and {(agreeing.Count == 0 ? "no" : agreeing.Count.ToString(CultureInfo.InvariantCulture))} candidate float32 attention(s) agree with its output on a probe input (largest difference per candidate: {string.Join(", ", tried)}; add_zero_attn is not supported); it stays float.");
    }

    /// <summary>
    /// The float32 multi-head attention with TorchSharp ops, output projection included (the identification's candidates,
    /// and the encoder layer's): sequence-first query [L, N, E], key and value [S, N, E]; an optional mask added to the
    /// scores, [L, S] or [N·heads, L, S].
    /// </summary>
    internal static Tensor FloatReference(Tensor query, Tensor key, Tensor value, AttentionParameters p, int heads, Tensor? additiveMask = null)
    {
        long targetLength = query.shape[0], sourceLength = key.shape[0], batch = query.shape[1];
        int d = p.EmbedDim, headDim = d / heads;
        Tensor W(float[] values, params long[] shape) => torch.tensor(values, shape);
        Tensor? B(float[]? values, int offset) => values is null ? null : torch.tensor(values.AsSpan(offset, d).ToArray(), new long[] { d });
        Tensor inWeight = W(p.InWeight, 3 * d, d);
        Tensor Project(Tensor input, int part) => nn.functional.linear(input, inWeight[TensorIndex.Slice(part * d, (part + 1) * d)], B(p.InBias, part * d));
        Tensor Heads(Tensor t, long length) => t.contiguous().view(length, batch * heads, headDim).transpose(0, 1);
        Tensor q = Heads(Project(query, 0) * (1.0 / Math.Sqrt(headDim)), targetLength), k = Heads(Project(key, 1), sourceLength), v = Heads(Project(value, 2), sourceLength);
        Tensor scores = torch.bmm(q, k.transpose(1, 2));
        if (additiveMask is not null)
        {
            scores = scores + additiveMask;
        }

        Tensor attended = torch.bmm(scores.softmax(-1), v).transpose(0, 1).contiguous().view(targetLength, batch, d);
        return nn.functional.linear(attended, W(p.OutWeight, d, d), p.OutBias is null ? null : W(p.OutBias, d));
    }

    /// <summary>
    /// The attention on sequence-first float32 tensors, as TorchSharp's <c>MultiheadAttention.forward</c> takes them.
    /// </summary>
    /// <param name="query">[L, N, embed_dim].</param>
    /// <param name="key">[S, N, embed_dim].</param>
    /// <param name="value">[S, N, embed_dim].</param>
    /// <param name="keyPaddingMask">null, or Bool [N, S]: true is a padded key (−∞ before the softmax).</param>
    /// <param name="needWeights">Also return the attention weights averaged over the heads, [N, L, S].</param>
    /// <param name="attnMask">null, or Bool or Float32 [L, S] or [N·heads, L, S] added to the scores (a bool mask is added as
    /// 0/1, as libtorch's C++ attention — which TorchSharp's float module runs — does; use a float mask with −∞ to mask).</param>
    /// <returns>The output [L, N, embed_dim], and the averaged weights when <paramref name="needWeights"/> (else null).
    /// A query whose keys are all masked gives NaN, as PyTorch's softmax does.</returns>
    /// <exception cref="ArgumentException">A wrong dtype or shape, or a non-finite input (the message names the layer, what was expected and what was given).</exception>
    public (Tensor Output, Tensor? Weights) Forward(Tensor query, Tensor key, Tensor value, Tensor? keyPaddingMask = null, bool needWeights = true, Tensor? attnMask = null)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        CheckInput(query, "query", -1, -1);
        int targetLength = checked((int)query.shape[0]), batch = checked((int)query.shape[1]);
        CheckInput(key, "key", -1, batch);
        int sourceLength = checked((int)key.shape[0]);
        CheckInput(value, "value", sourceLength, batch);
        AttentionMasks masks = new(
            AdditiveMask(_name, "attn_mask", attnMask, targetLength, sourceLength, batch * Heads, out bool perHead),
            perHead,
            PaddingMask(_name, "key_padding_mask", keyPaddingMask, batch, sourceLength));

        // One array for one tensor: self-attention projects q, k and v in one call of the packed in_proj.
        float[] q = TensorInterop.ToArray(query, out _);
        float[] k = ReferenceEquals(key, query) ? q : TensorInterop.ToArray(key, out _);
        float[] v = ReferenceEquals(value, query) ? q : ReferenceEquals(value, key) ? k : TensorInterop.ToArray(value, out _);
        float[]? weights = needWeights ? new float[batch * targetLength * sourceLength] : null;
        float[] output = Forward(q, k, v, targetLength, sourceLength, batch, masks, weights);
        return (TensorInterop.FromArray(output, [targetLength, batch, EmbedDim]), weights is null ? null : TensorInterop.FromArray(weights, [batch, targetLength, sourceLength]));
    }

    /// <summary>
    /// The attention on rows in [length, batch, embed_dim] order: out_proj(attention(q, k, v)). When
    /// <paramref name="query"/>, <paramref name="key"/> and <paramref name="value"/> are one array, the packed in_proj
    /// projects it once. <paramref name="averagedWeights"/>, when given, receives the head-averaged weights [N, L, S].
    /// </summary>
    internal float[] Forward(float[] query, float[] key, float[] value, int targetLength, int sourceLength, int batch, AttentionMasks masks, float[]? averagedWeights)
    {
        int d = EmbedDim, rows = targetLength * batch, sourceRows = sourceLength * batch;
        AttentionScratch scratch = AttentionScratch.Current;
        float[] attended = scratch.Floats(AttentionScratch.Slot.Attended, rows * d);
        if (ReferenceEquals(query, key) && ReferenceEquals(key, value))
        {
            float[] qkv = scratch.Floats(AttentionScratch.Slot.Projected, rows * 3 * d);
            InProjection.Forward(query.AsSpan(0, rows * d), rows, qkv.AsSpan(0, rows * 3 * d));
            Attend(new(qkv, 3 * d, 0), new(qkv, 3 * d, d), new(qkv, 3 * d, 2 * d), targetLength, sourceLength, batch, masks, attended, averagedWeights);
        }
        else
        {
            float[] q = _queryProjection.Forward(query, rows);
            float[] k = _keyProjection.Forward(key, sourceRows);
            float[] v = _valueProjection.Forward(value, sourceRows);
            Attend(new(q, d, 0), new(k, d, 0), new(v, d, 0), targetLength, sourceLength, batch, masks, attended, averagedWeights);
        }

        var output = new float[rows * d];
        OutProjection.Forward(attended.AsSpan(0, rows * d), rows, output);
        return output;
    }

    /// <summary>
    /// Scaled dot-product attention per sequence and head: <c>softmax((q/√head_dim)·kᵀ + mask)·v</c> in float32, row r of
    /// q, k and v being position·batch + sequence. The scores of a query are summed over the head's dimensions in order and
    /// the output over the keys in order, each step an elementwise multiply-add across keys (or dimensions): vectors of any
    /// width give the same bits as the scalar loop.
    /// </summary>
    private void Attend(ProjectedRows queries, ProjectedRows keysIn, ProjectedRows valuesIn, int targetLength, int sourceLength, int batch, AttentionMasks masks, float[] output, float[]? averagedWeights)
    {
        int d = EmbedDim, headDim = d / Heads;
        float scaling = (float)(1.0 / Math.Sqrt(headDim));
        // Rows padded with zeros to whole vectors of 16 (the widest Vector<float>; Vector256.Exp takes 8): no tail loops,
        // and the padding scores are −∞ before exp, so they weigh 0.
        int keys = (sourceLength + 15) / 16 * 16, dims = (headDim + 15) / 16 * 16, width = System.Numerics.Vector<float>.Count;
        AttentionScratch scratch = AttentionScratch.Current;
        float[] keysByDim = scratch.Floats(AttentionScratch.Slot.KeysByDim, headDim * keys);  // kᵀ: [head_dim, keys]
        float[] values = scratch.Floats(AttentionScratch.Slot.Values, sourceLength * dims);   // v: [source length, dims]
        float[] scores = scratch.Floats(AttentionScratch.Slot.Scores, keys);
        float[] target = scratch.Floats(AttentionScratch.Slot.Target, dims);
        float[] query = scratch.Floats(AttentionScratch.Slot.Query, headDim);

        // The padding columns of kᵀ and v must be zeros (the vector loops read them); the scratch holds anything.
        Array.Clear(keysByDim, 0, headDim * keys);
        Array.Clear(values, 0, sourceLength * dims);
        float[]? additive = masks.Additive;
        bool[]? padding = masks.Padding;
        for (int b = 0; b < batch; b++)
        {
            for (int h = 0; h < Heads; h++)
            {
                int headOffset = h * headDim;
                // A 3-D mask is [batch·heads, L, S] in PyTorch's order (sequence b, head h at b·heads + h); a 2-D one is shared.
                int maskOffset = masks.PerHead ? ((b * Heads) + h) * targetLength * sourceLength : 0;
                for (int j = 0; j < sourceLength; j++)
                {
                    int keyRow = keysIn.Offset(j, batch, b) + headOffset;
                    for (int e = 0; e < headDim; e++)
                    {
                        keysByDim[(e * keys) + j] = keysIn.Values[keyRow + e];
                    }

                    Array.Copy(valuesIn.Values, valuesIn.Offset(j, batch, b) + headOffset, values, j * dims, headDim);
                }

                for (int i = 0; i < targetLength; i++)
                {
                    // scores = Σ_e (q_e · scaling) · kᵀ[e, :], the dimensions in order: a multiply then an add per element
                    // (not fused), so any vector width gives the scalar loop's bits.
                    int queryRow = queries.Offset(i, batch, b) + headOffset;
                    for (int e = 0; e < headDim; e++)
                    {
                        query[e] = queries.Values[queryRow + e] * scaling;
                    }

                    for (int j = 0; j < keys; j += width)
                    {
                        // One vector of keys at a time, kept in a register across the dimensions.
                        var dot = System.Numerics.Vector<float>.Zero;
                        for (int e = 0; e < headDim; e++)
                        {
                            dot += new System.Numerics.Vector<float>(query[e]) * new System.Numerics.Vector<float>(keysByDim, (e * keys) + j);
                        }

                        dot.CopyTo(scores, j);
                    }

                    float max = float.NegativeInfinity;
                    for (int j = 0; j < sourceLength; j++)
                    {
                        if (additive is not null)
                        {
                            scores[j] += additive[maskOffset + (i * sourceLength) + j];
                        }

                        if (padding is not null && padding[(b * sourceLength) + j])
                        {
                            scores[j] = float.NegativeInfinity;
                        }

                        max = MathF.Max(max, scores[j]);
                    }

                    // All keys masked: max is −∞ and every weight NaN, as softmax gives. exp is .NET's vector exp (within an
                    // ulp or two of MathF.Exp), 8 scores at a time.
                    scores.AsSpan(sourceLength).Fill(float.NegativeInfinity);
                    var shift = Vector256.Create(max);
                    for (int j = 0; j < keys; j += 8)
                    {
                        Vector256.Exp(Vector256.Create<float>(scores.AsSpan(j, 8)) - shift).CopyTo(scores.AsSpan(j, 8));
                    }

                    float sum = 0f;
                    for (int j = 0; j < sourceLength; j++)
                    {
                        sum += scores[j];
                    }

                    // output = Σ_j weight_j · v[j, :], the keys in order, one vector of dimensions at a time in a register.
                    float inverse = 1f / sum;
                    for (int j = 0; j < sourceLength; j++)
                    {
                        scores[j] *= inverse;
                    }

                    if (averagedWeights is not null)
                    {
                        // Summed over the heads in order, divided by their count at the end (libtorch's sum(1) / num_heads).
                        int weightRow = ((b * targetLength) + i) * sourceLength;
                        for (int j = 0; j < sourceLength; j++)
                        {
                            averagedWeights[weightRow + j] += scores[j];
                        }
                    }

                    for (int e = 0; e < dims; e += width)
                    {
                        var accumulated = System.Numerics.Vector<float>.Zero;
                        for (int j = 0; j < sourceLength; j++)
                        {
                            accumulated += new System.Numerics.Vector<float>(scores[j]) * new System.Numerics.Vector<float>(values, (j * dims) + e);
                        }

                        accumulated.CopyTo(target, e);
                    }

                    Array.Copy(target, 0, output, (((i * batch) + b) * d) + headOffset, headDim);
                }
            }
        }

        if (averagedWeights is not null)
        {
            for (int w = 0; w < averagedWeights.Length; w++)
            {
                averagedWeights[w] /= Heads;
            }
        }
    }

    private void CheckInput(Tensor input, string what, int length, int batch)
    {
        if (input.dtype != ScalarType.Float32 || input.dim() != 3 || input.shape[2] != EmbedDim || input.shape[0] < 1 || input.shape[1] < 1
            || (length >= 0 && input.shape[0] != length) || (batch >= 0 && input.shape[1] != batch))
        {
            string expected = $"[{(length >= 0 ? length.ToString(CultureInfo.InvariantCulture) : "length")}, {(batch >= 0 ? batch.ToString(CultureInfo.InvariantCulture) : "batch")}, {EmbedDim}]";
            throw new ArgumentException($"{_name}: expected {what} as a Float32 {expected} (sequence first, as TorchSharp's MultiheadAttention takes it{(what == "query" ? "" : "; key and value share a length, and the query's batch")}), got {input.dtype} [{string.Join(", ", input.shape)}].", what);
        }
    }

    /// <summary>
    /// An attention mask added to the scores as float values: Bool or Float32 [L, S], or, when
    /// <paramref name="batchTimesHeads"/> is positive, [batch·heads, L, S] (<paramref name="perHead"/>). A bool mask is
    /// added as 0/1: libtorch's C++ attention (which TorchSharp's float modules run) does so, where Python PyTorch fills −∞.
    /// </summary>
    /// <param name="name">"Model.layer" for errors.</param>
    /// <param name="parameter">The parameter's name for errors ("attn_mask", "src_mask").</param>
    /// <param name="mask">The mask, or null.</param>
    /// <param name="targetLength">L.</param>
    /// <param name="sourceLength">S.</param>
    /// <param name="batchTimesHeads">N·heads for a 3-D mask, or 0 where only a 2-D mask is taken.</param>
    /// <param name="perHead">True for a 3-D mask.</param>
    internal static float[]? AdditiveMask(string name, string parameter, Tensor? mask, int targetLength, int sourceLength, int batchTimesHeads, out bool perHead)
    {
        perHead = false;
        if (mask is null)
        {
            return null;
        }

        bool twoD = mask.dim() == 2 && mask.shape[0] == targetLength && mask.shape[1] == sourceLength;
        bool threeD = batchTimesHeads > 0 && mask.dim() == 3 && mask.shape[0] == batchTimesHeads && mask.shape[1] == targetLength && mask.shape[2] == sourceLength;
        if (!(twoD || threeD) || (mask.dtype != ScalarType.Bool && mask.dtype != ScalarType.Float32))
        {
            string expected = batchTimesHeads > 0
                ? $"[{targetLength}, {sourceLength}] or [{batchTimesHeads}, {targetLength}, {sourceLength}] (batch·heads, target length, source length)"
                : $"[{targetLength}, {sourceLength}] (the sequence's length)";
            throw new ArgumentException($"{name}: expected {parameter} as a Bool or Float32 {expected}, got {mask.dtype} [{string.Join(", ", mask.shape)}].", parameter);
        }

        perHead = threeD;
        return mask.dtype == ScalarType.Bool
            ? Array.ConvertAll(TensorInterop.ToBoolArray(mask), masked => masked ? 1f : 0f)
            : TensorInterop.ToArray(mask, out _);
    }

    /// <summary>A key padding mask: Bool [batch, S], true where a key is padding.</summary>
    internal static bool[]? PaddingMask(string name, string parameter, Tensor? mask, int batch, int sourceLength)
    {
        if (mask is null)
        {
            return null;
        }

        long[] shape = mask.shape;
        if (mask.dtype != ScalarType.Bool || shape.Length != 2 || shape[0] != batch || shape[1] != sourceLength)
        {
            throw new ArgumentException($"{name}: expected {parameter} as a Bool [{batch}, {sourceLength}] (batch, length), got {mask.dtype} [{string.Join(", ", shape)}].", parameter);
        }

        return TensorInterop.ToBoolArray(mask);
    }

    /// <summary>Rows <paramref name="start"/>..+<paramref name="count"/> of a projection, with the same int8 values and scales.</summary>
    private static DynamicQuantizedLinear RowSlice(DynamicQuantizedLinear projection, int start, int count, string part)
    {
        int columns = projection.InFeatures;
        QParams q = projection.Weight.QParams;
        QParams sliced = q.IsPerChannel
            ? QParams.PerChannel(q.Scales.AsSpan(start, count).ToArray(), q.ZeroPoints.AsSpan(start, count).ToArray(), 0, QuantDType.QInt8)
            : q;
        byte[] storage = projection.Weight.StorageBytes.Slice(start * columns, count * columns).ToArray();
        float[]? bias = projection.Bias?.AsSpan(start, count).ToArray();
        return new DynamicQuantizedLinear(projection.Model, $"{projection.Layer}.{part}", columns, count, new QTensor([count, columns], sliced, storage), bias, false, projection.Backend);
    }

    /// <inheritdoc/>
    public override string ToString() => $"DynamicQuantizedMultiheadAttention(embed_dim={EmbedDim}, num_heads={Heads}, dtype=torch.qint8)";

    /// <summary>Projected rows: row r (position·batch + sequence) starts at r·<see cref="Stride"/> + <see cref="Start"/>.</summary>
    private readonly record struct ProjectedRows(float[] Values, int Stride, int Start)
    {
        public int Offset(int position, int batch, int sequence) => (((position * batch) + sequence) * Stride) + Start;
    }
}

/// <summary>The masks of one attention call: an additive mask ([L, S], or [N·heads, L, S] when per head) and key padding [N, S].</summary>
internal readonly record struct AttentionMasks(float[]? Additive, bool PerHead, bool[]? Padding);

/// <summary>A TorchSharp attention's parameters as float arrays: packed in_proj [3·E, E] and out_proj [E, E], biases optional.</summary>
internal sealed record AttentionParameters(int EmbedDim, float[] InWeight, float[]? InBias, float[] OutWeight, float[]? OutBias)
{
    /// <summary>
    /// The attention parameters named <paramref name="prefix"/> + "in_proj_weight" and so on; refuses what QuantGen does
    /// not quantize (separate q/k/v weights for a kdim or vdim other than embed_dim, add_bias_kv's bias_k and bias_v).
    /// </summary>
    public static AttentionParameters Read(string name, Dictionary<string, Tensor> parameters, string prefix)
    {
        if (parameters.ContainsKey(prefix + "q_proj_weight"))
        {
            throw new NotSupportedException($"{name}: a MultiheadAttention whose kdim or vdim differs from embed_dim (separate q_proj_weight, k_proj_weight, v_proj_weight) has no dynamic int8 form yet; it stays float.");
        }

        if (parameters.ContainsKey(prefix + "bias_k") || parameters.ContainsKey(prefix + "bias_v"))
        {
            throw new NotSupportedException($"{name}: a MultiheadAttention with add_bias_kv (bias_k, bias_v) has no dynamic int8 form yet; it stays float.");
        }

        Tensor? Get(string parameter, int rank, bool required) => parameters.TryGetValue(prefix + parameter, out Tensor? t) && t.dim() == rank && t.dtype == ScalarType.Float32
            ? t
            : required || parameters.ContainsKey(prefix + parameter)
                ? throw new NotSupportedException($"{name}: an attention without a float32 '{prefix}{parameter}' of rank {rank} (found: {string.Join(", ", parameters.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(kv => $"{kv.Key} {kv.Value.dtype} [{string.Join(", ", kv.Value.shape)}]"))}).")
                : null;
        float[]? Values(Tensor? t)
        {
            if (t is null)
            {
                return null;
            }

            using var noGrad = torch.no_grad();
            float[] values = t.detach().contiguous().cpu().data<float>().ToArray();
            return values.All(float.IsFinite) ? values : throw new ArgumentException($"{name}: a non-finite value in an attention parameter of shape [{string.Join(", ", t.shape)}].");
        }

        Tensor inWeight = Get("in_proj_weight", 2, required: true)!;
        int d = checked((int)inWeight.shape[1]);
        var p = new AttentionParameters(d, Values(inWeight)!, Values(Get("in_proj_bias", 1, false)), Values(Get("out_proj.weight", 2, true))!, Values(Get("out_proj.bias", 1, false)));
        if (p.InWeight.Length != 3 * d * d || p.InBias is { Length: var inBias } && inBias != 3 * d || p.OutWeight.Length != d * d || p.OutBias is { Length: var outBias } && outBias != d)
        {
            throw new NotSupportedException($"{name}: the attention's parameters do not have the shapes of in_proj [3·{d}, {d}] and out_proj [{d}, {d}].");
        }

        return p;
    }
}
