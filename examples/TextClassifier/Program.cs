// WordNet gloss classifier: fp32 (TorchSharp) vs dynamic int8 (QuantGen). Reads WordNet 3.0's synsets from Debian's
// wordnet-base package (/usr/share/wordnet), labels each definition with its lexicographer file (45 classes:
// noun.animal, verb.motion, adj.all...), trains an LSTM and a small Transformer encoder with TorchSharp (or loads their
// cached weights), converts both to dynamic int8 with QuantGen's layers, and prints accuracy on the held-out synsets,
// model size and time per text at batch 1 and 16 (one thread for both).
// Run: dotnet run -c Release --project examples/TextClassifier [-- --epochs 3 --vocab 8000 --batch-size 128 --max-steps N
//      --training-threads 1 --models lstm,transformer --runs 7 --data DIR --cache DIR --qnnpack]
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using QuantGen;
using QuantGen.Kernels;
using TextClassifier;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
var settings = GlossTraining.Default with
{
    Epochs = IntOption("--epochs", GlossTraining.Default.Epochs),
    VocabularyWords = IntOption("--vocab", GlossTraining.Default.VocabularyWords),
    BatchSize = IntOption("--batch-size", GlossTraining.Default.BatchSize),
    MaxSteps = args.Contains("--max-steps") ? IntOption("--max-steps", 0) : null,
    CacheDirectory = StringOption("--cache", null),
};
string[] kinds = (StringOption("--models", "lstm,transformer") ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
int runs = IntOption("--runs", 7);
// Training on one thread by default: libtorch's intra-op threads wait for each other at every op, which on a 2-core
// machine shared with other work made a step several times slower than on one thread.
int trainingThreads = IntOption("--training-threads", 1);
QuantBackend backend = args.Contains("--qnnpack") ? QuantBackend.Qnnpack : QuantBackend.X86;
const int EvaluationBatch = 64;

var total = Stopwatch.StartNew();
WordNetGlosses glosses;
try
{
    glosses = WordNetGlosses.Load(StringOption("--data", null));
}
catch (FileNotFoundException missing)
{
    Console.Error.WriteLine(missing.Message);
    return 2;
}

var vocabulary = Vocabulary.Build(glosses.Train.Select(s => s.Definition), settings.VocabularyWords);
EncodedSplit train = EncodedSplit.FromSynsets(glosses.Train, vocabulary, settings.MaxLength);
EncodedSplit test = EncodedSplit.FromSynsets(glosses.Test, vocabulary, settings.MaxLength);
int majority = test.Labels.GroupBy(l => l).Max(g => g.Count());
Console.WriteLine($"WordNet glosses from {glosses.Directory}: {train.Count} training and {test.Count} held-out definitions (every {WordNetGlosses.TestEvery}th synset),");
Console.WriteLine($"{WordNetGlosses.ClassCount} labels (lexicographer files; the most common one is {100.0 * majority / test.Count:F1}% of the held-out set), vocabulary {vocabulary.Size} (incl. padding and unknown),");
Console.WriteLine($"definitions cut to {settings.MaxLength} tokens (mean {test.Sequences.Average(s => s.Length):F1} held out). Int8: dynamic, {backend} arithmetic; {KernelDispatch.KernelInfo}.");
Console.WriteLine();

var rows = new List<string>();
foreach (string kindName in kinds)
{
    GlossModelKind kind = Enum.Parse<GlossModelKind>(kindName, ignoreCase: true);
    var clock = Stopwatch.StartNew();
    torch.set_num_threads(trainingThreads);
    using Module<Tensor, Tensor> model = GlossModels.CreateTrained(kind, settings, vocabulary.Size, train, Console.Out);
    Console.WriteLine($"{kind}: ready in {clock.Elapsed.TotalSeconds:F0} s.");
    IInt8Classifier int8;
    if (kind == GlossModelKind.Lstm)
    {
        // The PyTorch flow: Prepare with a QConfigMapping, then Convert (quantize_dynamic needs no calibration data). The
        // hand-built form of the same layers checks it: both must give the same logits, bit for bit.
        var byHand = new Int8LstmClassifier((LstmClassifier)model, backend);
        var converted = new ConvertedLstmClassifier((LstmClassifier)model, backend);
        Console.WriteLine(converted.Summary);
        int compared = Math.Min(256, test.Count), same = 0;
        GlossModels.Predict(test with { Sequences = test.Sequences[..compared], Labels = test.Labels[..compared] }, 16, (tokens, batch, length) =>
        {
            float[] a = converted.Forward(tokens, batch, length), b = byHand.ForwardOnTensors(tokens, batch, length);
            same += a.AsSpan().SequenceEqual(b) ? batch : 0;
            return a;
        });
        Console.WriteLine($"{kind}: Prepare → Convert and the hand-built dynamic layers give bit-identical logits on {same} of {compared} held-out texts.");
        int8 = converted;
    }
    else
    {
        // The same flow for the encoder; the hand-built layers (another row layout, their own masked mean) check it.
        var byHand = new Int8TransformerClassifier((TransformerClassifier)model, settings, backend);
        var converted = new ConvertedTransformerClassifier((TransformerClassifier)model, backend);
        Console.WriteLine(converted.Summary);
        int compared = Math.Min(256, test.Count), same = 0, sameClass = 0;
        float largest = 0f;
        GlossModels.Predict(test with { Sequences = test.Sequences[..compared], Labels = test.Labels[..compared] }, 16, (tokens, batch, length) =>
        {
            float[] a = converted.Forward(tokens, batch, length), b = byHand.Forward(tokens, batch, length);
            int classes = a.Length / batch;
            for (int t = 0; t < batch; t++)
            {
                ReadOnlySpan<float> x = a.AsSpan(t * classes, classes), y = b.AsSpan(t * classes, classes);
                same += x.SequenceEqual(y) ? 1 : 0;
                sameClass += x.IndexOf(MaxOf(x)) == y.IndexOf(MaxOf(y)) ? 1 : 0;
                for (int c = 0; c < classes; c++)
                {
                    largest = MathF.Max(largest, MathF.Abs(x[c] - y[c]));
                }
            }

            return a;
        });
        Console.WriteLine($"{kind}: Prepare → Convert and the hand-built dynamic layers give the same class on {sameClass} of {compared} held-out texts (bit-identical logits on {same}, largest difference {largest:G3}).");
        int8 = converted;
    }

    rows.Add(MeasureRow(kind.ToString(), model, int8));

    // The same model with 4-bit embedding rows (PyTorch's float_qparams_weight_only_qconfig_4bit): the table is most of a
    // text model's weights, so this is where the file shrinks further.
    IInt8Classifier fourBit = kind == GlossModelKind.Lstm
        ? new ConvertedLstmClassifier((LstmClassifier)model, backend, embeddingBits: 4)
        : new ConvertedTransformerClassifier((TransformerClassifier)model, backend, embeddingBits: 4);
    rows.Add(MeasureRow($"{kind}, 4-bit embedding", model, fourBit));
}

Console.WriteLine("| model | fp32 acc. (%) | int8 acc. (%) | drop (points) | agreement (%) | fp32 size (KiB) | int8 size (KiB) | batch 1 fp32 (µs/text) | batch 1 int8 (µs/text) | batch 16 fp32 (µs/text) | batch 16 int8 (µs/text) |");
Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
foreach (string row in rows)
{
    Console.WriteLine(row);
}

Console.WriteLine();
Console.WriteLine($"Latency: median of {runs} passes over the first held-out texts (200 at batch 1, 640 at batch 16, each batch padded to its longest),");
Console.WriteLine("token indices in, logits out, 1 thread for TorchSharp (torch.set_num_threads) and QuantGen (KernelThreads). fp32 size: parameters and");
Console.WriteLine("buffers (float32); int8 size: the converted model's saved .qgen file — int8 weights with their scales and zero points, float biases,");
Console.WriteLine("embedding rows of 8 bits (float32 scale and bias per row, PyTorch's layout) or 4 bits (float16 scale and bias), float LayerNorm/position tables.");
Console.WriteLine($"Done in {total.Elapsed.TotalSeconds:F0} s.");
return 0;

// Accuracy, agreement, sizes and latency of one int8 form against the float model: one row of the table.
string MeasureRow(string label, Module<Tensor, Tensor> model, IInt8Classifier int8)
{
    torch.set_num_threads(trainingThreads);
    int[] floatPredictions = GlossModels.Predict(test, EvaluationBatch, (tokens, batch, length) => GlossModels.FloatLogits(model, tokens, batch, length));
    int[] int8Predictions = GlossModels.Predict(test, EvaluationBatch, (tokens, batch, length) => int8.Forward(tokens, batch, length));
    double floatAccuracy = Accuracy(floatPredictions, test.Labels);
    double int8Accuracy = Accuracy(int8Predictions, test.Labels);
    double agreement = Accuracy(int8Predictions, floatPredictions);
    long floatBytes = GlossModels.FloatBytes(model);
    long int8Bytes = int8.Bytes;

    // One thread for both: TorchSharp's intra-op pool and QuantGen's kernel threads.
    torch.set_num_threads(1);
    KernelThreads.MaxDegreeOfParallelism = 1;
    var latencies = new List<(double Float, double Int8)>();
    foreach (int batch in new[] { 1, 16 })
    {
        int texts = batch == 1 ? Math.Min(200, test.Count) : Math.Min(640, test.Count);
        double floatMicros = MedianMicrosPerText(test, batch, texts, runs, (tokens, n, length) => GlossModels.FloatLogits(model, tokens, n, length));
        double int8Micros = MedianMicrosPerText(test, batch, texts, runs, (tokens, n, length) => int8.Forward(tokens, n, length));
        latencies.Add((floatMicros, int8Micros));
    }

    Console.WriteLine($"{label}: fp32 {floatAccuracy:F2}%, int8 {int8Accuracy:F2}%, predictions agree on {agreement:F2}%.");
    Console.WriteLine();
    return $"| {label} | {floatAccuracy:F2} | {int8Accuracy:F2} | {floatAccuracy - int8Accuracy:F2} | {agreement:F1} | " +
        $"{floatBytes / 1024.0:F0} | {int8Bytes / 1024.0:F0} ({(double)floatBytes / int8Bytes:F2}x) | " +
        $"{latencies[0].Float:F0} | {latencies[0].Int8:F0} ({latencies[0].Float / latencies[0].Int8:F2}x) | " +
        $"{latencies[1].Float:F0} | {latencies[1].Int8:F0} ({latencies[1].Float / latencies[1].Int8:F2}x) |";
}

static float MaxOf(ReadOnlySpan<float> values)
{
    float max = float.NegativeInfinity;
    foreach (float v in values)
    {
        max = MathF.Max(max, v);
    }

    return max;
}

static double Accuracy(int[] predictions, int[] labels) =>
    100.0 * predictions.Zip(labels).Count(p => p.First == p.Second) / Math.Max(1, labels.Length);

// The median over passes of the time per text: on a shared machine single passes are disturbed by other processes.
static double MedianMicrosPerText(EncodedSplit split, int batch, int texts, int runs, Func<long[], int, int, float[]> forward)
{
    var batches = new List<(long[] Tokens, int Length)>();
    for (int start = 0; start + batch <= texts; start += batch)
    {
        int[] indices = Enumerable.Range(start, batch).ToArray();
        (long[] tokens, _, int length) = split.Batch(indices);
        batches.Add((tokens, length));
    }

    foreach ((long[] tokens, int length) in batches)
    {
        forward(tokens, batch, length); // warm-up: JIT, first-call allocations, per-thread scratch
    }

    var times = new double[runs];
    for (int run = 0; run < runs; run++)
    {
        var clock = Stopwatch.StartNew();
        foreach ((long[] tokens, int length) in batches)
        {
            forward(tokens, batch, length);
        }

        times[run] = clock.Elapsed.TotalMilliseconds * 1000.0 / (batches.Count * batch);
    }

    Array.Sort(times);
    return times[runs / 2];
}

int IntOption(string name, int fallback) => int.Parse(StringOption(name, fallback.ToString(CultureInfo.InvariantCulture))!, CultureInfo.InvariantCulture);

string? StringOption(string name, string? fallback)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length && !args[at + 1].StartsWith("--", StringComparison.Ordinal) ? args[at + 1] : fallback;
}
