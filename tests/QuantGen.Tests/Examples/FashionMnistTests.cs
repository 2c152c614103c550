using System;
using System.IO;
using System.IO.Compression;
using System.Linq;
using FashionMnist;
using QuantGen.Observers;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantGen.Tests.Examples;

/// <summary>
/// A FashionCnn trained for a few steps on a slice of the real dataset, shared by the end-to-end tests (training it
/// once keeps them fast). Its weights go to a temporary cache directory that is deleted afterwards.
/// </summary>
public sealed class TinyFashionCnnFixture : IDisposable
{
    public TinyFashionCnnFixture()
    {
        CacheDirectory = Path.Combine(Path.GetTempPath(), "quantgen-fashion-tests-" + Guid.NewGuid().ToString("N"));
        Data = FashionMnistData.Load(trainLimit: 2000, testLimit: 600);
        Training = new FashionCnnTraining(Epochs: 1, TrainLimit: 1600, BatchSize: 100, MaxSteps: 16, CacheDirectory: CacheDirectory);
        Model = FashionCnn.CreateTrained(Training, Data);
    }

    public string CacheDirectory { get; }

    public FashionMnistData Data { get; }

    public FashionCnnTraining Training { get; }

    public FashionCnn Model { get; }

    public void Dispose()
    {
        Model.Dispose();
        if (Directory.Exists(CacheDirectory))
        {
            Directory.Delete(CacheDirectory, recursive: true);
        }
    }
}

/// <summary>
/// examples/FashionMnist's IDX reader against hand-made bytes and the missing-dataset error: no dataset needed, so these
/// run (and pass) on a machine without Debian's dataset-fashion-mnist package.
/// </summary>
public sealed class FashionMnistIdxTests
{
    private static byte[] IdxBytes(byte type, int[] shape, byte[] values)
    {
        using var stream = new MemoryStream();
        stream.Write([0, 0, type, (byte)shape.Length]);
        foreach (int d in shape)
        {
            stream.Write([(byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d]);
        }

        stream.Write(values);
        return stream.ToArray();
    }

    [Fact]
    public void IdxReaderReadsHandMadeBytesPlainAndGzipped()
    {
        byte[] values = Enumerable.Range(0, 12).Select(i => (byte)(i * 20)).ToArray();
        byte[] idx = IdxBytes(0x08, [2, 2, 3], values);
        (int[] shape, byte[] data) = Idx.Read(new MemoryStream(idx));
        Assert.Equal([2, 2, 3], shape);
        Assert.Equal(values, data);

        string path = Path.Combine(Path.GetTempPath(), $"quantgen-idx-{Guid.NewGuid():N}-idx3-ubyte.gz");
        try
        {
            using (var file = File.Create(path))
            using (var gzip = new GZipStream(file, CompressionLevel.Fastest))
            {
                gzip.Write(idx);
            }

            (int[] gzShape, byte[] gzData) = Idx.ReadFile(path);
            Assert.Equal([2, 2, 3], gzShape);
            Assert.Equal(values, gzData);
        }
        finally
        {
            File.Delete(path);
        }

        // A dimension of 300 needs its second byte: big-endian.
        (int[] wide, byte[] wideData) = Idx.Read(new MemoryStream(IdxBytes(0x08, [300], new byte[300])));
        Assert.Equal([300], wide);
        Assert.Equal(300, wideData.Length);
    }

    [Fact]
    public void IdxReaderRefusesOtherFormatsAndTruncatedData()
    {
        byte[] good = IdxBytes(0x08, [2, 3], new byte[6]);
        byte[] badMagic = (byte[])good.Clone();
        badMagic[0] = 0x1f;
        Assert.Contains("not an IDX file", Assert.Throws<InvalidDataException>(() => Idx.Read(new MemoryStream(badMagic), "x.idx")).Message);
        Assert.Contains("value type 0x0D", Assert.Throws<InvalidDataException>(() => Idx.Read(new MemoryStream(IdxBytes(0x0D, [1], new byte[4])))).Message);
        var truncated = Assert.Throws<InvalidDataException>(() => Idx.Read(new MemoryStream(good[..^2]), "x.idx"));
        Assert.Contains("x.idx: truncated", truncated.Message);
        Assert.Contains("6 values for shape [2, 3]", truncated.Message);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => Idx.Read(new MemoryStream(good[..6]))).Message);
    }

    [Fact]
    public void AMissingDatasetNamesTheDebianPackage()
    {
        string missing = Path.Combine(Path.GetTempPath(), "quantgen-no-such-dataset-" + Guid.NewGuid().ToString("N"));
        var error = Assert.Throws<FileNotFoundException>(() => FashionMnistData.Load(missing));
        Assert.Contains("dataset-fashion-mnist", error.Message);
        Assert.Contains("apt-get install dataset-fashion-mnist", error.Message);
        Assert.Contains(Path.Combine(missing, "train-images-idx3-ubyte.gz"), error.Message);
    }
}

/// <summary>
/// The FashionCnn tests run alone: the model's initial weights come from libtorch's process-wide generator, which tests
/// running in parallel would also draw from.
/// </summary>
[CollectionDefinition(nameof(FashionMnistCollection), DisableParallelization = true)]
public sealed class FashionMnistCollection
{
}

/// <summary>
/// examples/FashionMnist on the real data (Debian's dataset-fashion-mnist must be installed): the files as read, the
/// weight cache, a small end-to-end quantization on a subset, and the sensitivity fallback.
/// </summary>
[Collection(nameof(FashionMnistCollection))]
public sealed class FashionMnistTests(TinyFashionCnnFixture fixture, ITestOutputHelper output) : IClassFixture<TinyFashionCnnFixture>
{
    [Fact]
    public void TheRealFilesReadAsTheirRawBytesSay()
    {
        FashionMnistData data = fixture.Data;
        Assert.Equal(2000, data.Train.Count);
        Assert.Equal(600, data.Test.Count);

        // Independently: gunzip the label file and read past its 8-byte header.
        using var gzip = new GZipStream(File.OpenRead(Path.Combine(data.Directory, "t10k-labels-idx1-ubyte.gz")), CompressionMode.Decompress);
        using var raw = new MemoryStream();
        gzip.CopyTo(raw);
        byte[] bytes = raw.ToArray();
        Assert.Equal(10_000 + 8, bytes.Length);
        Assert.Equal(bytes[8..(8 + 600)], data.Test.LabelBytes);
        Assert.All(data.Train.LabelBytes, l => Assert.InRange(l, (byte)0, (byte)9));

        // Normalisation is (x / 255 - mean) / std on the pixel bytes.
        float[] image = data.Test.NormalizedValues(3, 1);
        for (int i = 0; i < image.Length; i += 97)
        {
            Assert.Equal(((data.Test.Pixels[(3 * 784) + i] / 255f) - FashionMnistSplit.PixelMean) / FashionMnistSplit.PixelStd, image[i]);
        }
    }

    [Fact]
    public void CreateTrainedReusesTheCachedWeights()
    {
        Assert.True(File.Exists(fixture.Training.CachePath()));
        using var again = FashionCnn.CreateTrained(fixture.Training, data: null);
        using Tensor images = fixture.Data.Test.Images(0, 8);
        using (torch.no_grad())
        {
            using Tensor first = fixture.Model.forward(images);
            using Tensor second = again.forward(images);
            Assert.Equal(first.data<float>().ToArray(), second.data<float>().ToArray());
        }
    }

    [Theory]
    [InlineData("Histogram", false)]
    [InlineData("Entropy", true)]
    [InlineData("MSE", false)]
    public void Int8AccuracyOnASubsetIsCloseToFloat(string methodName, bool biasCorrection)
    {
        FashionMnistSplit calibration = fixture.Data.Train.Slice(0, 200);
        FashionMnistSplit test = fixture.Data.Test.Slice(0, 500);
        CalibrationMethod method = CalibrationMethod.All().Single(m => m.Name == methodName);
        (FashionCnn.Quantized plain, FashionCnn.Quantized? corrected) = FashionCnnQuantization.Quantize(fixture.Model, new QConfigMapping(method.QConfig), calibration, biasCorrection);
        FashionCnn.Quantized int8 = corrected ?? plain;
        double floatAccuracy = FashionCnnQuantization.Accuracy(fixture.Model, test);
        double int8Accuracy = FashionCnnQuantization.Accuracy(int8, test);
        output.WriteLine($"{methodName}{(biasCorrection ? " + bias correction" : string.Empty)}: fp32 {floatAccuracy:F1}%, int8 {int8Accuracy:F1}% on {test.Count} test images");

        // The model learned something (10% is chance) ...
        Assert.True(floatAccuracy > 50, $"fp32 accuracy {floatAccuracy:F1}% after {fixture.Training.MaxSteps} steps");

        // ... and int8 keeps it: 8-bit noise only flips images whose two best logits are nearly tied. On 500 images one
        // image is 0.2 points; this barely trained model has many near-ties, so up to 10 images (2 points) may flip net.
        Assert.InRange(int8Accuracy, floatAccuracy - 2.0, floatAccuracy + 2.0);
    }

    [Fact]
    public void SensitivityFallbackKeepsTheMostSensitiveLayersInFloatUntilTheDropIsMet()
    {
        FashionMnistSplit calibration = fixture.Data.Train.Slice(0, 100);
        FashionMnistSplit validation = fixture.Data.Train.Slice(1700, 300);
        double floatAccuracy = FashionCnnQuantization.Accuracy(fixture.Model, validation);
        QConfig qconfig = QConfig.X86 with { Activation = ObserverSpec.MinMax(reduceRange: true) };

        // An unreachable target (int8 100 points above float): every candidate ends in float, most sensitive first.
        FallbackResult all = SensitivityFallback.Run(fixture.Model, qconfig, calibration, validation, floatAccuracy, maxDrop: -100, biasCorrection: false);
        output.WriteLine($"fp32 {floatAccuracy:F2}%, all int8 {all.AllInt8Accuracy:F2}%; " + string.Join(", ", all.Sensitivity.Select(s => $"{s.Layer} {s.Accuracy:F2}%")));
        Assert.Equal(FashionCnnQuantization.FallbackCandidates.OrderBy(n => n), all.Sensitivity.Select(s => s.Layer).OrderBy(n => n));
        Assert.Equal(all.Sensitivity.Select(s => s.Accuracy).OrderByDescending(a => a), all.Sensitivity.Select(s => s.Accuracy));
        Assert.Equal(all.Sensitivity.Select(s => s.Layer), all.FloatLayers);

        // A generous target is met by the all-int8 model: nothing stays in float.
        FallbackResult none = SensitivityFallback.Run(fixture.Model, qconfig, calibration, validation, floatAccuracy, maxDrop: 100, biasCorrection: false);
        Assert.Empty(none.FloatLayers);
        Assert.Equal(none.AllInt8Accuracy, none.ValidationAccuracy);

        // Keeping a layer in float really runs it in float inside the int8 model; the others stay int8.
        Assert.IsType<QuantGen.Modules.FloatFallback>(all.Model.Layers.Single(l => l.Layer == all.FloatLayers[0]));
        Assert.IsType<QuantGen.Modules.QuantizedConv2d>(none.Model.Layers.Single(l => l.Layer == "conv1"));
    }
    [Fact]
    public void QatFineTuningOnRealDataConvertsToAnInt8ModelThatScoresAsTheQatModelDoes()
    {
        // A short QAT fine-tune of the tiny trained CNN on real images; the float model itself is left untouched.
        using Tensor probe = fixture.Data.Test.Images(0, 4);
        float[] before;
        using (torch.no_grad())
        using (Tensor y = fixture.Model.forward(probe))
        {
            before = y.data<float>().ToArray();
        }

        var schedule = new QatSchedule(Steps: 12, BatchSize: 64, LearningRate: 1e-3);
        (FashionCnn.Quantized int8, FashionCnn.Qat qat, double seconds) = FashionCnnQat.FineTune(fixture.Model, fixture.Data.Train, QuantGen.QConfig.QatX86, schedule);
        Assert.False(qat.training);
        Assert.True(qat.IsBatchNormFrozen);

        double qatAccuracy = FashionCnnQuantization.Accuracy(qat, fixture.Data.Test);
        double int8Accuracy = FashionCnnQuantization.Accuracy(int8, fixture.Data.Test);
        output.WriteLine($"QAT model (eval) {qatAccuracy:F2}%, converted int8 {int8Accuracy:F2}%, {seconds:F1} s of steps");
        Assert.InRange(Math.Abs(qatAccuracy - int8Accuracy), 0, 1.0);
        Assert.True(int8Accuracy > 50, $"int8 accuracy {int8Accuracy:F2}% after QAT: the tiny model scores well above chance (10%)");

        using (torch.no_grad())
        using (Tensor y = fixture.Model.forward(probe))
        {
            Assert.Equal(before, y.data<float>().ToArray());
        }

        qat.Dispose();
    }
}
