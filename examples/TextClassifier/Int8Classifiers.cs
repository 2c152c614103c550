using System;
using System.Collections.Generic;
using QuantGen;
using QuantGen.Dynamic;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TextClassifier;

/// <summary>A classifier's int8 form: token indices in, logits out, on QuantGen's kernels only (no libtorch).</summary>
public interface IInt8Classifier
{
    /// <summary>Logits [batch, classes] for a padded batch of token indices [batch, length] (padding 0 after each text).</summary>
    float[] Forward(ReadOnlySpan<long> tokens, int batch, int length);

    /// <summary>
    /// Bytes of the int8 model: for a converted model its saved .qgen file (what a user ships: int8 weights one byte each,
    /// their qparams, float biases, embedding rows of 8 or 4 bits with their scale and bias, any parameter kept in float,
    /// and the file's own header and layer names); for the hand-built layers the sum of those weights.
    /// </summary>
    long Bytes { get; }
}

/// <summary>
/// <see cref="LstmClassifier"/> in dynamic int8, built from QuantGen's layers: the embedding as 8-bit rows
/// (<see cref="QuantizedEmbedding"/>), the LSTM as <see cref="DynamicQuantizedLSTM"/> and the head as
/// <see cref="DynamicQuantizedLinear"/> (qint8 weights, activations quantized per call), the masked mean in float.
/// </summary>
public sealed class Int8LstmClassifier : IInt8Classifier
{
    private readonly QuantizedEmbedding _embedding;
    private readonly DynamicQuantizedLSTM _lstm;
    private readonly DynamicQuantizedLinear _head;

    /// <summary>Quantizes a trained float classifier (only read).</summary>
    /// <param name="model">The float model.</param>
    /// <param name="backend">The dynamic arithmetic preset (docs/numerics.md §8).</param>
    public Int8LstmClassifier(LstmClassifier model, QuantBackend backend = QuantBackend.X86)
    {
        ArgumentNullException.ThrowIfNull(model);
        const string Name = nameof(LstmClassifier);
        _embedding = QuantizedEmbedding.FromEmbedding(Name, "embedding", model.TokenEmbedding);
        _lstm = DynamicQuantizedLSTM.FromLSTM(Name, "lstm", model.Lstm, backend, batchFirst: true);
        _head = DynamicQuantizedLinear.FromLinear(Name, "head", model.Head, backend);
    }

    /// <inheritdoc/>
    public long Bytes
    {
        get
        {
            long bytes = _embedding.PackedWeight.Length + Int8Sizes.Of(_head);
            for (int cell = 0; cell < _lstm.Shape.Cells; cell++)
            {
                bytes += Int8Sizes.Of(_lstm.InputProjection(cell)) + Int8Sizes.Of(_lstm.HiddenProjection(cell));
            }

            return bytes;
        }
    }

    /// <inheritdoc/>
    public float[] Forward(ReadOnlySpan<long> tokens, int batch, int length)
    {
        Int8Sizes.CheckBatch(nameof(LstmClassifier), tokens, batch, length);
        int hidden = _lstm.Shape.HiddenSize;
        var embedded = new float[tokens.Length * _embedding.EmbeddingDim];
        _embedding.Forward(tokens, embedded);
        var output = new float[batch * length * hidden];
        var hN = new float[batch * hidden];
        var cN = new float[batch * hidden];
        _lstm.Forward(embedded, length, batch, default, default, output, hN, cN);
        return _head.Forward(Int8Sizes.MaskedMean(output, tokens, batch, length, hidden), batch);
    }

    /// <summary>
    /// The same layers through their tensor overloads, with the model's own masked mean (TorchSharp's sum order, which
    /// the span form above does not keep): what the converted model must compute, bit for bit.
    /// </summary>
    public float[] ForwardOnTensors(ReadOnlySpan<long> tokens, int batch, int length)
    {
        Int8Sizes.CheckBatch(nameof(LstmClassifier), tokens, batch, length);
        using var scope = torch.NewDisposeScope();
        using Tensor input = torch.tensor(tokens.ToArray(), new long[] { batch, length });
        (Tensor output, _, _) = _lstm.Forward(_embedding.Forward(input));
        return _head.Forward(GlossModels.MaskedMean(output, input)).data<float>().ToArray();
    }
}

/// <summary>
/// <see cref="LstmClassifier"/> converted as a PyTorch user would: <c>Prepare</c> with a QConfigMapping that makes the
/// Embedding weight-only (<see cref="QConfig.FloatQParamsWeightOnly"/>, or its 4-bit form) and the LSTM and Linear dynamic
/// (<see cref="QConfig.Dynamic"/>), then <c>Convert</c> — no calibration batch, as PyTorch's quantize_dynamic. The same layers as
/// <see cref="Int8LstmClassifier"/> (with 8-bit rows), found by binding the captured forward instead of by hand.
/// </summary>
public sealed class ConvertedLstmClassifier : IInt8Classifier
{
    private readonly LstmClassifier.Quantized _model;

    /// <summary>Prepares and converts <paramref name="model"/> (left unchanged).</summary>
    /// <param name="model">The trained float model, in eval mode.</param>
    /// <param name="backend">The dynamic arithmetic preset (docs/numerics.md §8).</param>
    /// <param name="embeddingBits">8 (PyTorch's float_qparams_weight_only_qconfig) or 4 (its _4bit form).</param>
    public ConvertedLstmClassifier(LstmClassifier model, QuantBackend backend, int embeddingBits = 8)
    {
        ArgumentNullException.ThrowIfNull(model);
        QConfig dynamic = QConfig.Dynamic(backend);
        QConfigMapping mapping = new QConfigMapping(null)
            .SetModuleType("Embedding", Int8Sizes.WeightOnly(embeddingBits))
            .SetModuleType("LSTM", dynamic)
            .SetModuleType("Linear", dynamic);
        LstmClassifier.Observed observed = model.Prepare(mapping);
        Summary = observed.Summary();
        _model = observed.Convert();
        Bytes = Int8Sizes.SavedBytes(_model.Save);
    }

    /// <summary>What Prepare made of the model.</summary>
    public string Summary { get; }

    /// <inheritdoc/>
    public long Bytes { get; }

    /// <inheritdoc/>
    public float[] Forward(ReadOnlySpan<long> tokens, int batch, int length)
    {
        Int8Sizes.CheckBatch(nameof(LstmClassifier), tokens, batch, length);
        using var scope = torch.NewDisposeScope();
        using Tensor input = torch.tensor(tokens.ToArray(), new long[] { batch, length });
        return _model.forward(input).data<float>().ToArray();
    }
}

/// <summary>
/// <see cref="TransformerClassifier"/> converted as a PyTorch user would: <c>Prepare</c> with a QConfigMapping that makes
/// the token Embedding weight-only (8-bit or 4-bit rows) and every TransformerEncoderLayer and Linear dynamic, then
/// <c>Convert</c> (no calibration batch). The same layers as <see cref="Int8TransformerClassifier"/> (with 8-bit rows),
/// found by binding the captured forward.
/// </summary>
public sealed class ConvertedTransformerClassifier : IInt8Classifier
{
    private readonly TransformerClassifier.Quantized _model;

    /// <summary>Prepares and converts <paramref name="model"/> (left unchanged).</summary>
    /// <param name="model">The trained float model, in eval mode.</param>
    /// <param name="backend">The dynamic arithmetic preset (docs/numerics.md §8).</param>
    /// <param name="embeddingBits">8 (PyTorch's float_qparams_weight_only_qconfig) or 4 (its _4bit form).</param>
    public ConvertedTransformerClassifier(TransformerClassifier model, QuantBackend backend, int embeddingBits = 8)
    {
        ArgumentNullException.ThrowIfNull(model);
        QConfig dynamic = QConfig.Dynamic(backend);
        QConfigMapping mapping = new QConfigMapping(null)
            .SetModuleName("embedding", Int8Sizes.WeightOnly(embeddingBits))
            .SetModuleType("TransformerEncoderLayer", dynamic)
            .SetModuleType("Linear", dynamic);
        TransformerClassifier.Observed observed = model.Prepare(mapping);
        Summary = observed.Summary();
        _model = observed.Convert();
        Bytes = Int8Sizes.SavedBytes(_model.Save);
    }

    /// <summary>What Prepare made of the model.</summary>
    public string Summary { get; }

    /// <inheritdoc/>
    public long Bytes { get; }

    /// <inheritdoc/>
    public float[] Forward(ReadOnlySpan<long> tokens, int batch, int length)
    {
        Int8Sizes.CheckBatch(nameof(TransformerClassifier), tokens, batch, length);
        using var scope = torch.NewDisposeScope();
        using Tensor input = torch.tensor(tokens.ToArray(), new long[] { batch, length });
        return _model.forward(input).data<float>().ToArray();
    }
}

/// <summary>
/// <see cref="TransformerClassifier"/> in dynamic int8: the token embedding as 8-bit rows, every Linear of the encoder
/// layers (attention's packed q/k/v input projection and output projection, the feed-forward pair) and the head as
/// <see cref="DynamicQuantizedLinear"/>; attention scores, softmax, the position embedding, residual adds, LayerNorm and
/// ReLU in float32 (QuantGen has no int8 attention module yet, so the encoder layer is rebuilt here from its parameters).
/// </summary>
public sealed class Int8TransformerClassifier : IInt8Classifier
{
    private const float LayerNormEps = 1e-5f;
    private readonly QuantizedEmbedding _embedding;
    private readonly float[] _position;
    private readonly EncoderLayer[] _layers;
    private readonly DynamicQuantizedLinear _head;
    private readonly int _dim;
    private readonly int _heads;

    /// <summary>Quantizes a trained float classifier (only read).</summary>
    /// <param name="model">The float model.</param>
    /// <param name="settings">Its settings (the number of heads, which TorchSharp does not expose).</param>
    /// <param name="backend">The dynamic arithmetic preset.</param>
    public Int8TransformerClassifier(TransformerClassifier model, GlossTraining settings, QuantBackend backend = QuantBackend.X86)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        const string Name = nameof(TransformerClassifier);
        _embedding = QuantizedEmbedding.FromEmbedding(Name, "embedding", model.TokenEmbedding);
        _dim = _embedding.EmbeddingDim;
        _heads = settings.Heads;
        _position = Values(model.PositionEmbedding.weight!);
        var layers = new List<EncoderLayer>();
        for (int i = 0; i < model.Layers.Count; i++)
        {
            var parameters = new Dictionary<string, Tensor>();
            foreach ((string name, Parameter parameter) in model.Layers[i].named_parameters())
            {
                parameters[name] = parameter;
            }

            string layer = $"layers.{i}";
            layers.Add(new EncoderLayer(
                Linear(Name, $"{layer}.self_attn.in_proj", parameters["self_attn.in_proj_weight"], parameters["self_attn.in_proj_bias"], backend),
                Linear(Name, $"{layer}.self_attn.out_proj", parameters["self_attn.out_proj.weight"], parameters["self_attn.out_proj.bias"], backend),
                Linear(Name, $"{layer}.linear1", parameters["linear1.weight"], parameters["linear1.bias"], backend, fusedRelu: true),
                Linear(Name, $"{layer}.linear2", parameters["linear2.weight"], parameters["linear2.bias"], backend),
                Values(parameters["norm1.weight"]),
                Values(parameters["norm1.bias"]),
                Values(parameters["norm2.weight"]),
                Values(parameters["norm2.bias"])));
        }

        _layers = layers.ToArray();
        _head = DynamicQuantizedLinear.FromLinear(Name, "head", model.Head, backend);
    }

    /// <inheritdoc/>
    public long Bytes
    {
        get
        {
            long bytes = _embedding.PackedWeight.Length + (_position.Length * 4L) + Int8Sizes.Of(_head);
            foreach (EncoderLayer layer in _layers)
            {
                bytes += Int8Sizes.Of(layer.InProjection) + Int8Sizes.Of(layer.OutProjection) + Int8Sizes.Of(layer.Linear1) + Int8Sizes.Of(layer.Linear2);
                bytes += 4L * (layer.Norm1Weight.Length + layer.Norm1Bias.Length + layer.Norm2Weight.Length + layer.Norm2Bias.Length);
            }

            return bytes;
        }
    }

    /// <inheritdoc/>
    public float[] Forward(ReadOnlySpan<long> tokens, int batch, int length)
    {
        Int8Sizes.CheckBatch(nameof(TransformerClassifier), tokens, batch, length);
        int dim = _dim;
        if (length * dim > _position.Length)
        {
            throw new ArgumentException($"{nameof(TransformerClassifier)}: texts of at most {_position.Length / dim} tokens (the position embedding's rows), got {length}.", nameof(length));
        }

        // Batch-major [batch, length, dim] rows: every op here is per token row except attention, which reads
        // the rows of one text, so the layout needs no transposes (TorchSharp's layer is sequence-first).
        int rows = batch * length;
        var x = new float[rows * dim];
        _embedding.Forward(tokens, x);
        for (int r = 0; r < rows; r++)
        {
            int position = r % length;
            for (int j = 0; j < dim; j++)
            {
                x[(r * dim) + j] += _position[(position * dim) + j];
            }
        }

        var qkv = new float[rows * 3 * dim];
        var attention = new float[rows * dim];
        var projected = new float[rows * dim];
        var scores = new float[length];
        foreach (EncoderLayer layer in _layers)
        {
            layer.InProjection.Forward(x, rows, qkv);
            Attend(qkv, tokens, batch, length, attention, scores);
            layer.OutProjection.Forward(attention, rows, projected);
            AddAndNormalize(x, projected, layer.Norm1Weight, layer.Norm1Bias);
            float[] hidden = layer.Linear1.Forward(x, rows);
            layer.Linear2.Forward(hidden, rows, projected);
            AddAndNormalize(x, projected, layer.Norm2Weight, layer.Norm2Bias);
        }

        return _head.Forward(Int8Sizes.MaskedMean(x, tokens, batch, length, dim), batch);
    }

    /// <summary>
    /// Multi-head scaled dot-product attention in float32 over the packed [rows, 3·dim] q/k/v projection (PyTorch's
    /// <c>in_proj</c> order: q, k, v), with padding keys masked out: <c>softmax(q·kᵀ / √head_dim) · v</c> per head.
    /// </summary>
    private void Attend(float[] qkv, ReadOnlySpan<long> tokens, int batch, int length, float[] output, float[] scores)
    {
        int dim = _dim;
        int headDim = dim / _heads;
        float scale = (float)(1.0 / Math.Sqrt(headDim));
        var query = new float[headDim];
        int stride = 3 * dim;
        Array.Clear(output);
        for (int b = 0; b < batch; b++)
        {
            int first = b * length;
            for (int h = 0; h < _heads; h++)
            {
                int qOffset = h * headDim;
                int kOffset = dim + (h * headDim);
                int vOffset = (2 * dim) + (h * headDim);
                for (int i = 0; i < length; i++)
                {
                    ReadOnlySpan<float> q = qkv.AsSpan(((first + i) * stride) + qOffset, headDim);
                    for (int d = 0; d < headDim; d++)
                    {
                        query[d] = q[d] * scale;
                    }

                    float max = float.NegativeInfinity;
                    for (int j = 0; j < length; j++)
                    {
                        if (tokens[first + j] == Vocabulary.Padding)
                        {
                            scores[j] = float.NegativeInfinity;
                            continue;
                        }

                        ReadOnlySpan<float> k = qkv.AsSpan(((first + j) * stride) + kOffset, headDim);
                        float dot = 0f;
                        for (int d = 0; d < headDim; d++)
                        {
                            dot += query[d] * k[d];
                        }

                        scores[j] = dot;
                        max = MathF.Max(max, scores[j]);
                    }

                    float sum = 0f;
                    for (int j = 0; j < length; j++)
                    {
                        scores[j] = float.IsNegativeInfinity(scores[j]) ? 0f : MathF.Exp(scores[j] - max);
                        sum += scores[j];
                    }

                    Span<float> target = output.AsSpan(((first + i) * dim) + qOffset, headDim);
                    float inverse = 1f / sum;
                    for (int j = 0; j < length; j++)
                    {
                        float weight = scores[j] * inverse;
                        if (weight == 0f)
                        {
                            continue;
                        }

                        ReadOnlySpan<float> v = qkv.AsSpan(((first + j) * stride) + vOffset, headDim);
                        for (int d = 0; d < headDim; d++)
                        {
                            target[d] += weight * v[d];
                        }
                    }
                }
            }
        }
    }

    /// <summary><c>x = LayerNorm(x + y)</c> per row of <see cref="_dim"/> values (biased variance, eps 1e-5), in place.</summary>
    private void AddAndNormalize(float[] x, float[] y, float[] weight, float[] bias)
    {
        int dim = _dim;
        for (int offset = 0; offset < x.Length; offset += dim)
        {
            Span<float> row = x.AsSpan(offset, dim);
            float mean = 0f;
            for (int j = 0; j < dim; j++)
            {
                row[j] += y[offset + j];
                mean += row[j];
            }

            mean /= dim;
            float variance = 0f;
            for (int j = 0; j < dim; j++)
            {
                float centred = row[j] - mean;
                variance += centred * centred;
            }

            float inverse = 1.0f / MathF.Sqrt((variance / dim) + LayerNormEps);
            for (int j = 0; j < dim; j++)
            {
                row[j] = ((row[j] - mean) * inverse * weight[j]) + bias[j];
            }
        }
    }

    private static DynamicQuantizedLinear Linear(string model, string layer, Tensor weight, Tensor bias, QuantBackend backend, bool fusedRelu = false)
    {
        // DynamicQuantizedLinear reads a TorchSharp Linear; the encoder layer keeps its projections as raw parameters
        // (in_proj_weight has no Linear of its own), so they are copied into one.
        using var noGrad = torch.no_grad();
        using var linear = torch.nn.Linear(weight.shape[1], weight.shape[0]);
        linear.weight!.copy_(weight);
        linear.bias!.copy_(bias);
        return DynamicQuantizedLinear.FromLinear(model, layer, linear, backend, fusedRelu: fusedRelu);
    }

    private static float[] Values(Tensor tensor)
    {
        using var noGrad = torch.no_grad();
        return tensor.detach().contiguous().data<float>().ToArray();
    }

    private sealed record EncoderLayer(
        DynamicQuantizedLinear InProjection,
        DynamicQuantizedLinear OutProjection,
        DynamicQuantizedLinear Linear1,
        DynamicQuantizedLinear Linear2,
        float[] Norm1Weight,
        float[] Norm1Bias,
        float[] Norm2Weight,
        float[] Norm2Bias);
}

/// <summary>Helpers shared by the int8 classifiers.</summary>
public static class Int8Sizes
{
    /// <summary>PyTorch's weight-only embedding qconfig for 8-bit rows (float_qparams_weight_only_qconfig) or 4-bit ones (its _4bit form).</summary>
    public static QConfig WeightOnly(int bits) => bits switch
    {
        8 => QConfig.FloatQParamsWeightOnly,
        4 => QConfig.FloatQParamsWeightOnly4Bit,
        _ => throw new ArgumentOutOfRangeException(nameof(bits), bits, "Embedding rows are 8-bit or 4-bit."),
    };

    /// <summary>The length of the .qgen file a converted model saves (written to memory).</summary>
    public static long SavedBytes(Action<System.IO.Stream> save)
    {
        ArgumentNullException.ThrowIfNull(save);
        using var stream = new System.IO.MemoryStream();
        save(stream);
        return stream.Length;
    }

    /// <summary>Bytes of a dynamic linear: one byte per weight, a 4-byte scale and zero point per scale, 4 bytes per bias.</summary>
    public static long Of(DynamicQuantizedLinear linear)
    {
        ArgumentNullException.ThrowIfNull(linear);
        long bytes = linear.Weight.Count + (8L * linear.Weight.QParams.Scales.Length);
        return bytes + (4L * (linear.Bias?.Length ?? 0));
    }

    /// <summary>
    /// Checks a padded batch: <paramref name="batch"/> × <paramref name="length"/> indices, each text starting with a
    /// real token (an all-padding text has nothing to average).
    /// </summary>
    /// <exception cref="ArgumentException">The message names the model, what was expected and what came.</exception>
    public static void CheckBatch(string model, ReadOnlySpan<long> tokens, int batch, int length)
    {
        if (batch < 1 || length < 1 || tokens.Length != (long)batch * length)
        {
            throw new ArgumentException($"{model}: expected token indices [batch, length] with batch and length at least 1, got {tokens.Length} indices for batch {batch} and length {length}.", nameof(tokens));
        }

        for (int b = 0; b < batch; b++)
        {
            if (tokens[b * length] == Vocabulary.Padding)
            {
                throw new ArgumentException($"{model}: text {b} of the batch starts with padding (index {Vocabulary.Padding}); expected a real token first and padding only after it.", nameof(tokens));
            }
        }
    }

    /// <summary>The mean of <paramref name="values"/> [batch, length, features] over each text's non-padding positions.</summary>
    public static float[] MaskedMean(float[] values, ReadOnlySpan<long> tokens, int batch, int length, int features)
    {
        var pooled = new float[batch * features];
        for (int b = 0; b < batch; b++)
        {
            Span<float> target = pooled.AsSpan(b * features, features);
            int count = 0;
            for (int t = 0; t < length; t++)
            {
                if (tokens[(b * length) + t] == Vocabulary.Padding)
                {
                    continue;
                }

                count++;
                ReadOnlySpan<float> row = values.AsSpan(((b * length) + t) * features, features);
                for (int f = 0; f < features; f++)
                {
                    target[f] += row[f];
                }
            }

            float inverse = 1.0f / count;
            for (int f = 0; f < features; f++)
            {
                target[f] *= inverse;
            }
        }

        return pooled;
    }
}
