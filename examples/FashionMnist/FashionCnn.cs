using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using QuantGen;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FashionMnist;

/// <summary>
/// A small CNN for Fashion-MNIST written as an ordinary TorchSharp module, quantized in graph mode (no stubs, no
/// hand-listed fusions): two conv-bn-relu blocks, a conv-bn with a residual add and ReLU, two max pools and two
/// linear layers. About 115 k parameters (16, 32 and 32 channels, 64 hidden units); input [N, 1, 28, 28] normalised as <see cref="FashionMnistSplit.Images"/> does.
/// </summary>
/// <remarks>
/// Layer names (for <c>QConfigMapping.SetModuleName</c> and the taps): conv1, conv2, conv3 (each with its BatchNorm
/// folded in), add (the residual add with its ReLU), pool1, pool2, fc1, fc2.
/// </remarks>
[Quantize]
public partial class FashionCnn : Module<Tensor, Tensor>
{
    /// <summary>Bumped whenever the architecture or the training recipe changes, so cached weights of an older one are not loaded.</summary>
    public const int ArchitectureVersion = 2;

    private readonly Conv2d conv1 = Conv2d(1, 16, 3, padding: 1, bias: false);
    private readonly BatchNorm2d bn1 = BatchNorm2d(16);
    private readonly ReLU relu1 = ReLU();
    private readonly MaxPool2d pool1 = MaxPool2d(2);
    private readonly Conv2d conv2 = Conv2d(16, 32, 3, padding: 1, bias: false);
    private readonly BatchNorm2d bn2 = BatchNorm2d(32);
    private readonly ReLU relu2 = ReLU();
    private readonly Conv2d conv3 = Conv2d(32, 32, 3, padding: 1, bias: false);
    private readonly BatchNorm2d bn3 = BatchNorm2d(32);
    private readonly ReLU relu3 = ReLU();
    private readonly MaxPool2d pool2 = MaxPool2d(2);
    private readonly Linear fc1 = Linear(32 * 7 * 7, 64);
    private readonly ReLU relu4 = ReLU();
    private readonly Linear fc2 = Linear(64, 10);

    /// <summary>Creates the model with TorchSharp's default (seeded by <c>torch.manual_seed</c>) initialisation.</summary>
    public FashionCnn()
        : base(nameof(FashionCnn)) => RegisterComponents();

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        x = conv1.forward(x);
        x = bn1.forward(x);
        x = relu1.forward(x);
        x = pool1.forward(x);
        x = conv2.forward(x);
        x = bn2.forward(x);
        x = relu2.forward(x);
        Tensor identity = x;
        x = conv3.forward(x);
        x = bn3.forward(x);
        x = x + identity;
        x = relu3.forward(x);
        x = pool2.forward(x);
        x = torch.flatten(x, 1);
        x = fc1.forward(x);
        x = relu4.forward(x);
        x = fc2.forward(x);
        return x;
    }

    /// <summary>
    /// A trained FashionCnn in eval mode: loaded from the weight cache when a file for the same
    /// <paramref name="training"/> settings (and <see cref="ArchitectureVersion"/>) is there, else trained on
    /// <paramref name="data"/>'s training split and saved to the cache. The reuse point for benchmarks and the other
    /// examples: <c>using var model = FashionCnn.CreateTrained();</c> gives the README's model.
    /// </summary>
    /// <param name="training">Training settings; null for <see cref="FashionCnnTraining.Default"/> (2 epochs, all but the last 5 000 training images).</param>
    /// <param name="data">The dataset; null to read it from <see cref="FashionMnistData.ResolveDirectory"/> when training is needed.</param>
    /// <param name="log">Progress lines (training loss, where the weights were saved); null for none.</param>
    /// <returns>The trained model, in eval mode.</returns>
    /// <exception cref="FileNotFoundException">Training is needed and the dataset is missing (the message names the Debian package).</exception>
    public static FashionCnn CreateTrained(FashionCnnTraining? training = null, FashionMnistData? data = null, TextWriter? log = null)
    {
        training ??= FashionCnnTraining.Default;
        string path = training.CachePath();

        // The initial weights come from libtorch's global generator: seed it first, so the same settings always
        // train the same model (and the cache file stands for exactly those weights).
        torch.manual_seed(training.Seed);
        var model = new FashionCnn();
        if (File.Exists(path))
        {
            model.load(path);
            model.eval();
            log?.WriteLine($"Loaded trained weights from {path}.");
            return model;
        }

        data ??= FashionMnistData.Load(training.DataDirectory);
        model.Train(data.Train, training, log);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temporary = path + ".tmp";
        model.save(temporary);
        File.Move(temporary, path, overwrite: true);
        log?.WriteLine($"Saved trained weights to {path}.");
        return model;
    }

    /// <summary>
    /// Trains this model in place with Adam and a one-cycle learning rate on the first
    /// <see cref="FashionCnnTraining.TrainCount"/> images of <paramref name="train"/>, shuffled with a fixed seed, and
    /// leaves it in eval mode. The initial weights are the model's own (seed <c>torch.manual_seed</c> before creating it,
    /// as <see cref="CreateTrained"/> does).
    /// </summary>
    /// <param name="train">The training split.</param>
    /// <param name="training">Epochs, batch size, learning rate, seed, how many images.</param>
    /// <param name="log">One line per epoch; null for none.</param>
    public void Train(FashionMnistSplit train, FashionCnnTraining training, TextWriter? log = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(training);
        int count = Math.Min(training.TrainCount(train.Count), train.Count);
        if (count < 1)
        {
            throw new ArgumentException($"FashionCnn: no training images (train split has {train.Count}, settings keep {count}).", nameof(training));
        }

        var random = new Random(training.Seed);
        this.train();
        int batchesPerEpoch = (count + training.BatchSize - 1) / training.BatchSize;
        long totalSteps = training.MaxSteps ?? ((long)batchesPerEpoch * training.Epochs);
        using var optimizer = torch.optim.Adam(parameters(), training.LearningRate);
        var schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, training.LearningRate, (int)totalSteps);
        int[] order = new int[count];
        for (int i = 0; i < count; i++)
        {
            order[i] = i;
        }

        const int Pixels = FashionMnistSplit.Side * FashionMnistSplit.Side;
        long step = 0;
        var clock = Stopwatch.StartNew();
        TimeSpan cpuAtStart = Process.GetCurrentProcess().TotalProcessorTime;
        for (int epoch = 0; epoch < training.Epochs && step < totalSteps; epoch++)
        {
            random.Shuffle(order);
            double lossSum = 0;
            int lossCount = 0;
            for (int start = 0; start < count && step < totalSteps; start += training.BatchSize, step++)
            {
                int n = Math.Min(training.BatchSize, count - start);
                var values = new float[n * Pixels];
                var labels = new long[n];
                for (int b = 0; b < n; b++)
                {
                    int index = order[start + b];
                    train.NormalizedValues(index, 1).CopyTo(values, b * Pixels);
                    labels[b] = train.LabelBytes[index];
                }

                using var scope = torch.NewDisposeScope();
                Tensor images = torch.tensor(values, [n, 1, FashionMnistSplit.Side, FashionMnistSplit.Side], ScalarType.Float32);
                Tensor target = torch.tensor(labels, ScalarType.Int64);
                Tensor loss = functional.cross_entropy(forward(images), target);
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                schedule.step();
                lossSum += loss.item<float>();
                lossCount++;
            }

            double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuAtStart).TotalSeconds;
            log?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  epoch {epoch + 1}/{training.Epochs}: mean loss {lossSum / Math.Max(1, lossCount):F4} ({clock.Elapsed.TotalSeconds:F0} s, {cpu:F0} s of CPU time)"));
        }

        eval();
    }
}

/// <summary>How <see cref="FashionCnn.CreateTrained"/> trains (and so which cached weights it may reuse).</summary>
/// <param name="Epochs">Passes over the training images.</param>
/// <param name="TrainLimit">Train on at most this many images (from the start of the training split); null for all
/// but the last <see cref="ValidationCount"/>.</param>
/// <param name="Seed">Seeds the initialisation (<c>torch.manual_seed</c>) and the shuffling.</param>
/// <param name="BatchSize">Images per step.</param>
/// <param name="LearningRate">Peak learning rate of the one-cycle schedule (Adam).</param>
/// <param name="MaxSteps">Stop after this many steps (tests use a handful); null for all epochs.</param>
/// <param name="CacheDirectory">Where trained weights are kept; null for <see cref="DefaultCacheDirectory"/>.</param>
/// <param name="DataDirectory">Where the dataset is read from when training is needed; null for <see cref="FashionMnistData.ResolveDirectory"/>.</param>
public sealed record FashionCnnTraining(
    int Epochs = 2,
    int? TrainLimit = null,
    int Seed = 0,
    int BatchSize = 256,
    double LearningRate = 0.003,
    long? MaxSteps = null,
    string? CacheDirectory = null,
    string? DataDirectory = null)
{
    /// <summary>
    /// Images at the end of the training split never trained on (with the default <see cref="TrainLimit"/>), kept for
    /// choices made on data the model has not seen: which layers to keep in float.
    /// </summary>
    public const int ValidationCount = 5000;

    /// <summary>The README's settings: 2 epochs on 55 000 images in batches of 256, seed 0.</summary>
    public static FashionCnnTraining Default { get; } = new();

    /// <summary>
    /// <c>$QUANTGEN_CACHE/fashion-mnist</c>, else <c>$XDG_CACHE_HOME/quantgen/fashion-mnist</c>, else
    /// <c>~/.cache/quantgen/fashion-mnist</c>: outside the repository, so trained weights are never committed.
    /// </summary>
    public static string DefaultCacheDirectory
    {
        get
        {
            string? quantgen = Environment.GetEnvironmentVariable("QUANTGEN_CACHE");
            if (!string.IsNullOrEmpty(quantgen))
            {
                return Path.Combine(quantgen, "fashion-mnist");
            }

            string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            string root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "quantgen", "fashion-mnist");
        }
    }

    /// <summary>How many training images are used for a split of <paramref name="available"/>.</summary>
    public int TrainCount(int available) => TrainLimit ?? Math.Max(0, available - ValidationCount);

    /// <summary>The cache file for these settings (everything that changes the weights is in its name).</summary>
    public string CachePath()
    {
        string limit = TrainLimit?.ToString(CultureInfo.InvariantCulture) ?? "default";
        string steps = MaxSteps is long s ? string.Create(CultureInfo.InvariantCulture, $"-steps{s}") : string.Empty;
        string name = string.Create(CultureInfo.InvariantCulture, $"fashion-cnn-v{FashionCnn.ArchitectureVersion}-e{Epochs}-n{limit}-b{BatchSize}-lr{LearningRate:R}-seed{Seed}{steps}.dat");
        return Path.Combine(CacheDirectory ?? DefaultCacheDirectory, name);
    }
}
