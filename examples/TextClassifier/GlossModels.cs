using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace TextClassifier;

/// <summary>
/// Embedding → LSTM (one layer, batch_first) → mean of the outputs over the real tokens → Linear: an ordinary
/// TorchSharp text classifier. Input: token indices [batch, length] (int64, padding 0 after each text); output:
/// logits [batch, classes].
/// </summary>
/// <remarks>
/// The LSTM runs forward only, so padding after a text never changes the outputs at its real tokens, and the masked
/// mean makes the prediction independent of how much padding a batch needs. <c>[Quantize]</c> and <c>partial</c> are all
/// QuantGen asks: <c>Prepare(mapping)</c> binds the captured forward to the model, as PyTorch's quantize_dynamic does.
/// </remarks>
[QuantGen.Quantize]
public sealed partial class LstmClassifier : Module<Tensor, Tensor>
{
    private readonly Embedding embedding;
    private readonly LSTM lstm;
    private readonly Linear head;

    /// <summary>A classifier with TorchSharp's default (seeded by <c>torch.manual_seed</c>) initialisation.</summary>
    public LstmClassifier(GlossTraining settings, int vocabularySize, int classes)
        : base(nameof(LstmClassifier))
    {
        ArgumentNullException.ThrowIfNull(settings);
        embedding = Embedding(vocabularySize, settings.EmbeddingDim, padding_idx: Vocabulary.Padding);
        lstm = LSTM(settings.EmbeddingDim, settings.HiddenSize, numLayers: 1, batchFirst: true);
        head = Linear(settings.HiddenSize, classes);
        RegisterComponents();
    }

    /// <summary>The token embedding.</summary>
    public Embedding TokenEmbedding => embedding;

    /// <summary>The LSTM (batch_first).</summary>
    public LSTM Lstm => lstm;

    /// <summary>The classification layer.</summary>
    public Linear Head => head;

    /// <inheritdoc/>
    public override Tensor forward(Tensor tokens)
    {
        using var scope = torch.NewDisposeScope();
        Tensor x = embedding.forward(tokens);
        (Tensor output, _, _) = lstm.forward(x);

        // The masked mean has no int8 op and is meant to run in float (QG0023 says so otherwise).
#pragma warning disable QG0023
        return head.forward(GlossModels.MaskedMean(output, tokens)).MoveToOuterDisposeScope();
#pragma warning restore QG0023
    }
}

/// <summary>
/// A small Transformer encoder classifier: token embedding + learned position embedding → TorchSharp's
/// <c>TransformerEncoderLayer</c> × N (post-norm, ReLU) → mean over the real tokens → Linear. Input and output as
/// <see cref="LstmClassifier"/>; padding is masked out of attention with <c>src_key_padding_mask</c>. As the LSTM classifier,
/// <c>[Quantize]</c> and <c>partial</c> are all QuantGen asks: the encoder layers called with their padding mask in a loop
/// are bound at Prepare, and a dynamic qconfig gives them int8 projections.
/// </summary>
[QuantGen.Quantize]
public sealed partial class TransformerClassifier : Module<Tensor, Tensor>
{
    private readonly Embedding embedding;
    private readonly Embedding position;
    private readonly ModuleList<TransformerEncoderLayer> layers;
    private readonly Linear head;

    /// <summary>A classifier with TorchSharp's default (seeded by <c>torch.manual_seed</c>) initialisation.</summary>
    public TransformerClassifier(GlossTraining settings, int vocabularySize, int classes)
        : base(nameof(TransformerClassifier))
    {
        ArgumentNullException.ThrowIfNull(settings);
        embedding = Embedding(vocabularySize, settings.EmbeddingDim, padding_idx: Vocabulary.Padding);
        position = Embedding(settings.MaxLength, settings.EmbeddingDim);
        layers = new ModuleList<TransformerEncoderLayer>();
        for (int i = 0; i < settings.EncoderLayers; i++)
        {
            layers.Add(TransformerEncoderLayer(settings.EmbeddingDim, settings.Heads, settings.FeedForward, settings.Dropout));
        }

        head = Linear(settings.EmbeddingDim, classes);
        RegisterComponents();
    }

    /// <summary>The token embedding.</summary>
    public Embedding TokenEmbedding => embedding;

    /// <summary>The position embedding (row i for the i-th token).</summary>
    public Embedding PositionEmbedding => position;

    /// <summary>The encoder layers (sequence-first, as TorchSharp's are).</summary>
    public ModuleList<TransformerEncoderLayer> Layers => layers;

    /// <summary>The classification layer.</summary>
    public Linear Head => head;

    /// <inheritdoc/>
    public override Tensor forward(Tensor tokens)
    {
        using var scope = torch.NewDisposeScope();
        long length = tokens.shape[1];

        // The positions, the padding mask, the transposes and the masked mean have no int8 op and are meant to run in
        // float (QG0023 says so otherwise).
#pragma warning disable QG0023
        Tensor x = embedding.forward(tokens) + position.forward(torch.arange(length, dtype: ScalarType.Int64));
        Tensor padding = tokens.eq(Vocabulary.Padding);
        x = x.transpose(0, 1);
        foreach (TransformerEncoderLayer layer in layers)
        {
            x = layer.call(x, null, padding);
        }

        return head.forward(GlossModels.MaskedMean(x.transpose(0, 1), tokens)).MoveToOuterDisposeScope();
#pragma warning restore QG0023
    }
}

/// <summary>Training, caching and evaluation shared by both classifiers.</summary>
public static class GlossModels
{
    /// <summary>The mean of <paramref name="values"/> [batch, length, features] over the positions whose token is not padding.</summary>
    public static Tensor MaskedMean(Tensor values, Tensor tokens)
    {
        Tensor mask = tokens.ne(Vocabulary.Padding).unsqueeze(-1).to_type(ScalarType.Float32);
        return (values * mask).sum(1) / mask.sum(1);
    }

    /// <summary>
    /// The trained model of <paramref name="kind"/>: loaded from the weight cache when a file for the same settings
    /// is there, else built (seeded), trained on <paramref name="train"/> and saved to the cache.
    /// </summary>
    public static Module<Tensor, Tensor> CreateTrained(GlossModelKind kind, GlossTraining settings, int vocabularySize, EncodedSplit train, TextWriter? log = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(train);
        string path = settings.CachePath(kind, vocabularySize, train.Count);
        torch.manual_seed(settings.Seed);
        Module<Tensor, Tensor> model = kind switch
        {
            GlossModelKind.Lstm => new LstmClassifier(settings, vocabularySize, WordNetGlosses.ClassCount),
            GlossModelKind.Transformer => new TransformerClassifier(settings, vocabularySize, WordNetGlosses.ClassCount),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "no such model"),
        };
        if (File.Exists(path))
        {
            model.load(path);
            model.eval();
            log?.WriteLine($"{kind}: loaded trained weights from {path}.");
            return model;
        }

        Train(model, kind, train, settings, log);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temporary = path + ".tmp";
        model.save(temporary);
        File.Move(temporary, path, overwrite: true);
        log?.WriteLine($"{kind}: saved trained weights to {path}.");
        return model;
    }

    /// <summary>Trains <paramref name="model"/> in place with Adam and a one-cycle schedule on shuffled batches; leaves it in eval mode.</summary>
    public static void Train(Module<Tensor, Tensor> model, GlossModelKind kind, EncodedSplit train, GlossTraining settings, TextWriter? log = null)
    {
        var random = new Random(settings.Seed);
        int batchesPerEpoch = (train.Count + settings.BatchSize - 1) / settings.BatchSize;
        long totalSteps = settings.MaxSteps ?? ((long)batchesPerEpoch * settings.Epochs);
        model.train();
        using var optimizer = torch.optim.Adam(model.parameters(), settings.LearningRate);
        var schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.LearningRate, (int)totalSteps);
        long step = 0;
        var clock = Stopwatch.StartNew();
        for (int epoch = 0; epoch < settings.Epochs && step < totalSteps; epoch++)
        {
            int[][] batches = LengthBucketedBatches(train, settings.BatchSize, random);
            double lossSum = 0;
            int lossCount = 0;
            for (int b0 = 0; b0 < batches.Length && step < totalSteps; b0++, step++)
            {
                ReadOnlySpan<int> batch = batches[b0];
                int n = batch.Length;
                (long[] tokens, _, int longest) = train.Batch(batch);
                var labels = new long[n];
                for (int b = 0; b < n; b++)
                {
                    labels[b] = train.Labels[batch[b]];
                }

                using var scope = torch.NewDisposeScope();
                Tensor loss = functional.cross_entropy(model.forward(torch.tensor(tokens, [n, longest])), torch.tensor(labels));
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                schedule.step();
                lossSum += loss.item<float>();
                lossCount++;
                if (log is not null && (step + 1) % 200 == 0)
                {
                    log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    step {step + 1}/{totalSteps}: mean loss {lossSum / lossCount:F4} ({clock.Elapsed.TotalSeconds:F0} s)"));
                }
            }

            log?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {kind} epoch {epoch + 1}/{settings.Epochs}: mean loss {lossSum / Math.Max(1, lossCount):F4} ({clock.Elapsed.TotalSeconds:F0} s)"));
        }

        model.eval();
    }

    /// <summary>
    /// One epoch's batches: the texts shuffled, then sorted by length within windows of 32 batches so that a batch
    /// pads little (training time is spent on tokens, not padding), then the batches shuffled.
    /// </summary>
    public static int[][] LengthBucketedBatches(EncodedSplit split, int batchSize, Random random)
    {
        ArgumentNullException.ThrowIfNull(split);
        ArgumentNullException.ThrowIfNull(random);
        int[] order = new int[split.Count];
        for (int i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        random.Shuffle(order);
        int window = batchSize * 32;
        for (int start = 0; start < order.Length; start += window)
        {
            Array.Sort(order, start, Math.Min(window, order.Length - start), Comparer<int>.Create((a, b) => split.Sequences[a].Length.CompareTo(split.Sequences[b].Length)));
        }

        var batches = new int[(order.Length + batchSize - 1) / batchSize][];
        for (int b = 0; b < batches.Length; b++)
        {
            batches[b] = order.AsSpan(b * batchSize, Math.Min(batchSize, order.Length - (b * batchSize))).ToArray();
        }

        random.Shuffle(batches);
        return batches;
    }

    /// <summary>
    /// Predicted labels of every text of <paramref name="split"/>, in batches of <paramref name="batchSize"/> texts (in
    /// order, each padded to its longest): <paramref name="logits"/> maps (tokens, batch, longest) to [batch, classes].
    /// </summary>
    public static int[] Predict(EncodedSplit split, int batchSize, Func<long[], int, int, float[]> logits)
    {
        var predictions = new int[split.Count];
        int[] indices = new int[batchSize];
        for (int start = 0; start < split.Count; start += batchSize)
        {
            int n = Math.Min(batchSize, split.Count - start);
            for (int b = 0; b < n; b++)
            {
                indices[b] = start + b;
            }

            (long[] tokens, _, int longest) = split.Batch(indices.AsSpan(0, n));
            float[] values = logits(tokens, n, longest);
            int classes = values.Length / n;
            for (int b = 0; b < n; b++)
            {
                ReadOnlySpan<float> row = values.AsSpan(b * classes, classes);
                int best = 0;
                for (int c = 1; c < classes; c++)
                {
                    if (row[c] > row[best])
                    {
                        best = c;
                    }
                }

                predictions[start + b] = best;
            }
        }

        return predictions;
    }

    /// <summary>The float model's logits for one padded batch (no gradient).</summary>
    public static float[] FloatLogits(Module<Tensor, Tensor> model, long[] tokens, int batch, int longest)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        return model.forward(torch.tensor(tokens, [batch, longest])).data<float>().ToArray();
    }

    /// <summary>Bytes of a float model's parameters and buffers (float32, 4 bytes each).</summary>
    public static long FloatBytes(Module<Tensor, Tensor> model)
    {
        long bytes = 0;
        foreach (Parameter parameter in model.parameters())
        {
            bytes += parameter.numel() * parameter.element_size();
        }

        foreach (Tensor buffer in model.buffers())
        {
            bytes += buffer.numel() * buffer.element_size();
        }

        return bytes;
    }
}

/// <summary>Which classifier.</summary>
public enum GlossModelKind
{
    /// <summary><see cref="LstmClassifier"/>.</summary>
    Lstm,

    /// <summary><see cref="TransformerClassifier"/>.</summary>
    Transformer,
}

/// <summary>Every setting that changes the trained weights (all of them are in the cache file's name).</summary>
/// <param name="VocabularyWords">Known words (the vocabulary has two more indices: padding and unknown).</param>
/// <param name="MaxLength">Tokens kept per definition (the rest is cut).</param>
/// <param name="EmbeddingDim">Embedding width (the Transformer's d_model).</param>
/// <param name="HiddenSize">LSTM hidden size.</param>
/// <param name="Heads">Attention heads per encoder layer.</param>
/// <param name="FeedForward">Encoder layers' feed-forward width.</param>
/// <param name="EncoderLayers">Encoder layers.</param>
/// <param name="Dropout">Encoder layers' dropout (training only).</param>
/// <param name="Epochs">Passes over the training texts.</param>
/// <param name="BatchSize">Texts per step.</param>
/// <param name="LearningRate">Peak learning rate of the one-cycle schedule (Adam).</param>
/// <param name="Seed">Seeds the initialisation and the shuffling.</param>
/// <param name="MaxSteps">Stop after this many steps (tests use a handful); null for all epochs.</param>
/// <param name="CacheDirectory">Where trained weights are kept; null for <see cref="DefaultCacheDirectory"/>.</param>
public sealed record GlossTraining(
    int VocabularyWords = 8000,
    int MaxLength = 32,
    int EmbeddingDim = 64,
    int HiddenSize = 128,
    int Heads = 4,
    int FeedForward = 128,
    int EncoderLayers = 2,
    double Dropout = 0.1,
    int Epochs = 3,
    int BatchSize = 128,
    double LearningRate = 0.004,
    int Seed = 0,
    long? MaxSteps = null,
    string? CacheDirectory = null)
{
    /// <summary>Bumped whenever an architecture, the tokenizer or the training recipe changes, so older cached weights are not loaded.</summary>
    public const int Version = 2;

    /// <summary>The README's settings.</summary>
    public static GlossTraining Default { get; } = new();

    /// <summary>
    /// <c>$QUANTGEN_CACHE/wordnet-glosses</c>, else <c>$XDG_CACHE_HOME/quantgen/wordnet-glosses</c>, else
    /// <c>~/.cache/quantgen/wordnet-glosses</c>: outside the repository, so trained weights are never committed.
    /// </summary>
    public static string DefaultCacheDirectory
    {
        get
        {
            string? quantgen = Environment.GetEnvironmentVariable("QUANTGEN_CACHE");
            if (!string.IsNullOrEmpty(quantgen))
            {
                return Path.Combine(quantgen, "wordnet-glosses");
            }

            string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            string root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "quantgen", "wordnet-glosses");
        }
    }

    /// <summary>The cache file of <paramref name="kind"/> for these settings, a vocabulary and a training set size.</summary>
    public string CachePath(GlossModelKind kind, int vocabularySize, int trainCount)
    {
        string architecture = kind == GlossModelKind.Lstm
            ? string.Create(CultureInfo.InvariantCulture, $"lstm-e{EmbeddingDim}-h{HiddenSize}")
            : string.Create(CultureInfo.InvariantCulture, $"transformer-d{EmbeddingDim}-heads{Heads}-ff{FeedForward}-l{EncoderLayers}-drop{Dropout:R}");
        string steps = MaxSteps is long s ? string.Create(CultureInfo.InvariantCulture, $"-steps{s}") : string.Empty;
        string name = string.Create(
            CultureInfo.InvariantCulture,
            $"{architecture}-v{Version}-vocab{vocabularySize}-len{MaxLength}-n{trainCount}-ep{Epochs}-b{BatchSize}-lr{LearningRate:R}-seed{Seed}{steps}.dat");
        return Path.Combine(CacheDirectory ?? DefaultCacheDirectory, name);
    }
}
