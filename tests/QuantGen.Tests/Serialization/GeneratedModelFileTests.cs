using System;
using System.IO;
using System.Linq;
using CenterNetHeadExample;
using QuantGen.Serialization;
using QuickStart;
using ResNet18Example;
using TorchSharp;
using Xunit.Abstractions;
using static QuantGen.Tests.Serialization.SerializationTestSupport;
using static TorchSharp.torch;

namespace QuantGen.Tests.Serialization;

/// <summary>
/// The generated <c>Save</c>/<c>Load</c> of the three example models: calibrated on random batches,
/// saved, loaded, and compared with the original — every layer's state, the graph, and the forward
/// output bit for bit. The QuickStart's tiny file also goes through every truncation and byte flip.
/// </summary>
public sealed class GeneratedModelFileTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("qgen-models-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static void Calibrate(Func<Tensor, Tensor> forward, long[] shape)
    {
        using (torch.no_grad())
        {
            for (int i = 0; i < 2; i++)
            {
                using Tensor batch = torch.randn(shape);
                forward(batch).Dispose();
            }
        }
    }

    private static M.Quantized QuickStartModel(QConfig qconfig, int seed)
    {
        torch.manual_seed(seed);
        using var model = new M();
        model.eval();
        using M.Observed observed = model.Prepare(qconfig);
        Calibrate(observed.forward, [1, 1, 2, 3]);
        return observed.Convert();
    }

    /// <summary>Same layers (all constructor state), same graph, bit-identical float and int8 forward.</summary>
    private static void AssertSameModel(IQuantizedModel expected, IQuantizedModel actual, int[] inputShape, int seed)
    {
        Assert.Equal(expected.Layers.Count, actual.Layers.Count);
        for (int i = 0; i < expected.Layers.Count; i++)
        {
            AssertSameLayer(expected.Layers[i], actual.Layers[i]);
        }

        Assert.Equal(expected.Graph.Model, actual.Graph.Model);
        Assert.Equal(expected.Graph.Hash, actual.Graph.Hash);
        Assert.Equal((expected.Graph.Input, expected.Graph.Output), (actual.Graph.Input, actual.Graph.Output));
        Assert.Equal(expected.Graph.Nodes, actual.Graph.Nodes);
        Assert.Same(actual.Input, actual.Layers[0]);

        float[] input = Modules.ContractReference.RandomFloats(new Random(seed), inputShape.Aggregate(1, (a, b) => a * b), -2.5f, 2.5f);
        float[] before = expected.forward(input, inputShape, out int[] beforeShape);
        float[] after = actual.forward(input, inputShape, out int[] afterShape);
        Assert.Equal(beforeShape, afterShape);
        Assert.Equal(Bits(before), Bits(after));

        QTensor quantized = expected.Input.Forward(input, inputShape);
        AssertSameTensor(expected.forward(quantized), actual.forward(quantized));
    }

    [Theory]
    [InlineData(QuantBackend.X86)]
    [InlineData(QuantBackend.Qnnpack)]
    public void QuickStartRoundTripsThroughAFile(QuantBackend backend)
    {
        M.Quantized int8 = QuickStartModel(QConfig.For(backend), seed: 3);
        string path = Path.Combine(_directory, "m.qgen");
        int8.Save(path);
        M.Quantized loaded = M.Quantized.Load(path);
        AssertSameModel(int8, loaded, [1, 1, 2, 3], seed: 4);

        QGenFileInfo info = QGenFile.ReadInfo(path);
        Assert.Equal("M", info.Model);
        Assert.Equal(M.Quantized.GraphHash, info.GraphHash);
        Assert.Equal(int8.Layers.Select(l => l.Layer), info.Layers.Select(l => l.Name));
    }

    [Fact]
    public void ResNet18RoundTripsThroughAStreamWithItsOptionalDownsamples()
    {
        const int Size = 32;
        torch.manual_seed(7);
        using var model = new ResNet18(numClasses: 10);
        Randomize.BatchNormStatistics(model, 7);
        model.eval();
        using ResNet18.Observed observed = model.Prepare(QConfig.X86);
        Calibrate(observed.forward, [1, 3, Size, Size]);
        ResNet18.Quantized int8 = observed.Convert();

        var stream = new MemoryStream();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int8.Save(stream);
        TimeSpan save = clock.Elapsed;
        stream.Position = 0;
        clock.Restart();
        ResNet18.Quantized loaded = ResNet18.Quantized.Load(stream);
        output.WriteLine($"ResNet-18: {stream.Length} bytes, saved in {save.TotalMilliseconds:F0} ms, loaded (checksum, decode, repack) in {clock.Elapsed.TotalMilliseconds:F0} ms.");
        Assert.Equal(stream.Length, stream.Position);
        AssertSameModel(int8, loaded, [1, 3, Size, Size], seed: 8);

        // layer2..4's first blocks have a downsample (an optional layer); layer1's do not.
        stream.Position = 0;
        string[] names = QGenFile.ReadInfo(stream).Layers.Select(l => l.Name).ToArray();
        Assert.Contains("layer2.0.downsample.0", names);
        Assert.DoesNotContain("layer1.0.downsample.0", names);
        Assert.True(stream.Length > 11_000_000, $"{stream.Length} bytes: ResNet-18 has 11.2M int8 weights");
    }

    [Fact]
    public void CenterNetHeadRoundTripsThroughAFile()
    {
        const int Size = 32;
        torch.manual_seed(9);
        using var model = new CenterNetHead();
        model.eval();
        using CenterNetHead.Observed observed = model.Prepare();
        Calibrate(observed.forward, [1, 3, Size, Size]);
        CenterNetHead.Quantized int8 = observed.Convert();

        string path = Path.Combine(_directory, "head.qgen");
        int8.Save(path);
        CenterNetHead.Quantized loaded = CenterNetHead.Quantized.Load(path);
        AssertSameModel(int8, loaded, [1, 3, Size, Size], seed: 10);

        // Another model's file is refused by name, before any layer is read.
        var ex = Assert.Throws<QGenFormatException>(() => M.Quantized.Load(path));
        Assert.Equal(QGenFormatError.ModelMismatch, ex.Error);
        Assert.Equal($"{path}: the file holds model CenterNetHead, not M.", ex.Message);
    }

    [Fact]
    public void AFileOfAnotherGraphVersionIsRefusedByTheGeneratedLoad()
    {
        // The same bytes with a different hash, re-sealed: what an older build of M would have written.
        byte[] file = SaveToBytes(QuickStartModel(QConfig.X86, seed: 5));
        int hashAt = FileLayout.BodyAt + 2 + 1 + 2; // after the model name "M"
        Assert.Equal(M.Quantized.GraphHash, System.Text.Encoding.UTF8.GetString(file, hashAt, M.Quantized.GraphHash.Length));
        file[hashAt] = (byte)(file[hashAt] == (byte)'0' ? '1' : '0');
        string oldHash = System.Text.Encoding.UTF8.GetString(file, hashAt, M.Quantized.GraphHash.Length);
        var ex = Assert.Throws<QGenFormatException>(() => M.Quantized.Load(new MemoryStream(FileLayout.Reseal(file))));
        Assert.Equal(QGenFormatError.GraphMismatch, ex.Error);
        Assert.Contains($"saved from a different version of model M (graph {oldHash}, this build is {M.Quantized.GraphHash}); re-export it", ex.Message);
    }

    [Fact]
    public void EveryTruncationAndEveryFlippedByteOfTheQuickStartFileIsRefused()
    {
        byte[] file = SaveToBytes(QuickStartModel(QConfig.X86, seed: 6));
        Assert.NotNull(M.Quantized.Load(new MemoryStream(file)));
        for (int length = 0; length < file.Length; length++)
        {
            var ex = Assert.Throws<QGenFormatException>(() => M.Quantized.Load(new MemoryStream(file[..length])));
            Assert.Equal(QGenFormatError.Truncated, ex.Error);
        }

        for (int i = 0; i < file.Length; i++)
        {
            byte[] damaged = (byte[])file.Clone();
            damaged[i] ^= 0x01;
            var ex = Assert.Throws<QGenFormatException>(() => M.Quantized.Load(new MemoryStream(damaged)));
            if (i >= FileLayout.BodyAt)
            {
                Assert.Equal(QGenFormatError.ChecksumMismatch, ex.Error);
            }
        }
    }
}
