using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using QuantGen.Modules;
using QuantGen.Serialization;
using QuantGen.Tests.Modules;
using Xunit.Abstractions;
using static QuantGen.Tests.Serialization.SerializationTestSupport;

namespace QuantGen.Tests.Serialization;

/// <summary>
/// A .qgen fuzzer: real files of small models (a conv/pool/linear chain; a decoder with ConvTranspose2d,
/// Add, Cat, BatchNorm, pools, upsampling), mutated at fixed seeds — bytes flipped, int32 fields set to
/// boundary values, truncated, records duplicated — re-sealed with a recomputed CRC, loaded, and whatever
/// loads run on a small input. The only outcomes allowed are a <see cref="QGenFormatException"/> at load,
/// or an <see cref="ArgumentException"/> at run whose message names the layer; never another exception
/// type, a hang, or an allocation beyond a bound. QUANTGEN_FUZZ_ITERATIONS raises the number of
/// mutations per model (docs/reliability.md).
/// </summary>
public sealed class QGenFuzzTests(ITestOutputHelper output)
{
    /// <summary>Mutations per model in CI (a few thousand in all, well under a minute).</summary>
    private const int DefaultIterations = 3000;

    /// <summary>A case that takes longer than this is a hang (a healthy case takes milliseconds).</summary>
    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Per case: load + run may allocate at most 64× the file plus this. The unmutated run needs a few KB; a
    /// forged geometry within LayerLimits may legitimately grow each layer's plane to 256×256 (a few MB per
    /// layer with its int32 accumulators), which the chain of a dozen layers must stay under.
    /// </summary>
    private const long AllocationAllowance = 64L << 20;

    private static readonly int[] BoundaryValues =
        [0, -1, 1, int.MaxValue, int.MinValue, 65535, 65536, 46341, 0x08000000, 16777216, 2, 3, -2, 0x7FFFFFFE];

    /// <summary>A model under fuzz: its layers (saved as a list), how they are wired, and an input.</summary>
    private sealed record FuzzModel(string Name, IQuantizedLayer[] Layers, (int Layer, int[] Inputs)[] Steps, int[] InputShape);

    /// <summary>quant → conv+relu → maxpool → flatten → linear (<see cref="SerializationTestSupport.SmallChain"/>).</summary>
    private static FuzzModel Chain()
    {
        LayerListModel chain = SmallChain(seed: 11);
        var steps = Enumerable.Range(1, chain.Layers.Count - 1).Select(i => (i, new[] { i - 1 })).ToArray();
        return new FuzzModel("chain", chain.Layers.ToArray(), steps, [1, 2, 4, 4]);
    }

    /// <summary>
    /// A small decoder: conv → ConvTranspose2d (stride 2) → strided conv back to the same size → Add with
    /// the first conv → Cat → BatchNorm → MaxPool → Upsample ×2 → AvgPool → ReLU6 → AdaptiveAvgPool →
    /// Reshape → Linear. Value i is the output of step i (value 0 the quantized input).
    /// </summary>
    private static FuzzModel Decoder()
    {
        var random = new Random(23);
        QParams qx = QParams.PerTensor(0.02f, 120, QuantDType.QUInt8);
        QParams qa = QParams.PerTensor(0.03f, 128, QuantDType.QUInt8);
        QParams qs = QParams.PerTensor(0.05f, 10, QuantDType.QUInt8);
        IQuantizedLayer[] layers =
        [
            new QuantizeInput(Model, "quant", qx),
            Conv(random, "enc", new Conv2dOptions(2, 4, 3, 3, PadHeight: 1, PadWidth: 1), perChannel: true, bias: true, qx, qa, relu: false, QuantBackend.X86),
            ConvTranspose(random, "up", new ConvTranspose2dOptions(4, 4, 2, 2, 2, 2, Groups: 2), perChannel: true, bias: true, qa, qa, relu: true, QuantBackend.X86),
            Conv(random, "down", new Conv2dOptions(4, 4, 3, 3, 2, 2, 1, 1, Groups: 1), perChannel: false, bias: false, qa, qa, relu: false, QuantBackend.Qnnpack),
            new QuantizedAdd(Model, "add", qa, relu: false),
            new QuantizedCat(Model, "cat", 1, qa),
            new QuantizedBatchNorm2d(Model, "bn", ContractReference.RandomFloats(random, 8, 0.5f, 1.5f), ContractReference.RandomFloats(random, 8, -0.5f, 0.5f), qs, relu: false),
            new QuantizedMaxPool2d(Model, "maxpool", Pool2dOptions.Square(3, 2, 1)),
            new QuantizedUpsampleNearest2d(Model, "upsample", null, null, 2.0, 2.0),
            new QuantizedAvgPool2d(Model, "avgpool", Pool2dOptions.Square(2)),
            new QuantizedHardtanh(Model, "relu6", 0f, 6f),
            new QuantizedAdaptiveAvgPool2d(Model, "gap", 2, 2),
            new QuantizedReshape(Model, "view", [1, -1]),
            Linear(random, "fc", 32, 5, perChannel: true, bias: true, qs, qa, relu: false, QuantBackend.X86),
        ];
        (int, int[])[] steps =
        [
            (1, [0]), (2, [1]), (3, [2]), (4, [1, 3]), (5, [4, 1]), (6, [5]), (7, [6]), (8, [7]), (9, [8]),
            (10, [9]), (11, [10]), (12, [11]), (13, [12]),
        ];
        return new FuzzModel("decoder", layers, steps, [1, 2, 6, 6]);
    }

    private static int Iterations()
    {
        string? value = Environment.GetEnvironmentVariable("QUANTGEN_FUZZ_ITERATIONS");
        return int.TryParse(value, out int n) && n > 0 ? n : DefaultIterations;
    }

    [Fact]
    public void TheUnmutatedFilesLoadAndRun()
    {
        // The fuzzer's baseline: if these failed, every mutation would be "refused" for the wrong reason.
        foreach (FuzzModel model in new[] { Chain(), Decoder() })
        {
            byte[] file = SaveToBytes(new LayerListModel(Model, Hash, model.Layers));
            IQuantizedLayer[] loaded = LoadLayers(file, new LayerListModel(Model, Hash, model.Layers));
            QTensor result = Run(model, loaded);
            Assert.True(result.Count > 0, model.Name);
        }
    }

    [Fact]
    public void MutatedFilesAreRefusedCleanlyOrRun()
    {
        int iterations = Iterations();
        var outcomes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var failures = new List<string>();
        var clock = Stopwatch.StartNew();
        int files = 0;
        long maxAllocated = 0;
        foreach (FuzzModel model in new[] { Chain(), Decoder() })
        {
            var like = new LayerListModel(Model, Hash, model.Layers);
            byte[] original = SaveToBytes(like);
            for (int seed = 0; seed < iterations; seed++)
            {
                (string mutation, byte[] mutated) = Mutate(original, new Random((model.Name.Length * 1_000_003) + seed));
                files++;
                string outcome = RunCase(model, like, mutated, out string? failure, out long allocated);
                outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
                maxAllocated = Math.Max(maxAllocated, allocated);
                if (failure is not null)
                {
                    failures.Add($"{model.Name} seed {seed} ({mutation}): {failure}");
                }
            }
        }

        output.WriteLine($"{files} mutated files in {clock.Elapsed.TotalSeconds:F1} s; the most one case allocated: {maxAllocated:N0} bytes");
        foreach ((string outcome, int count) in outcomes)
        {
            output.WriteLine($"  {outcome}: {count}");
        }

        foreach (string failure in failures.Take(50))
        {
            output.WriteLine(failure);
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {files} mutated files ended in a forbidden outcome; first: {failures.FirstOrDefault()}");

        // The mutations must reach every stage, or the fuzzer proves little: some refused at load for a bad
        // layer (past the checksum), and some loaded and ran.
        Assert.True(outcomes.GetValueOrDefault("load refused: InvalidLayer") > 0, "no mutation reached a layer constructor");
        Assert.True(outcomes.GetValueOrDefault("ran") > 0, "no mutated file loaded and ran");
    }

    [Fact]
    public void EveryOptionFieldSetToEveryBoundaryValueIsRefusedCleanlyOrRuns()
    {
        // The systematic half: every int32 slot in the first 80 bytes of every record's payload (the options
        // and the weight's shape) set to every boundary value, so a finding such as dilation 0x7FFFFFFE does
        // not depend on a random draw.
        var outcomes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var failures = new List<string>();
        int files = 0;
        foreach (FuzzModel model in new[] { Chain(), Decoder() })
        {
            var like = new LayerListModel(Model, Hash, model.Layers);
            byte[] original = SaveToBytes(like);
            foreach (var record in FileLayout.Records(original))
            {
                for (int offset = 0; offset + 4 <= Math.Min(record.PayloadLength, 80); offset += 4)
                {
                    foreach (int value in BoundaryValues)
                    {
                        byte[] file = (byte[])original.Clone();
                        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(record.PayloadAt + offset), value);
                        files++;
                        string outcome = RunCase(model, like, FileLayout.Reseal(file), out string? failure, out _);
                        outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
                        if (failure is not null)
                        {
                            failures.Add($"{model.Name} {record.Name} payload+{offset} = {value}: {failure}");
                        }
                    }
                }
            }
        }

        output.WriteLine($"{files} files with one option field set to a boundary value");
        foreach ((string outcome, int count) in outcomes)
        {
            output.WriteLine($"  {outcome}: {count}");
        }

        foreach (string failure in failures.Take(50))
        {
            output.WriteLine(failure);
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {files} files ended in a forbidden outcome; first: {failures.FirstOrDefault()}");
        Assert.True(outcomes.GetValueOrDefault("load refused: InvalidLayer") > 0, "no value reached a layer constructor");
    }

    /// <summary>Loads and runs one mutated file on a worker, time-boxed and allocation-measured; returns the outcome kind and any failure.</summary>
    private static string RunCase(FuzzModel model, LayerListModel like, byte[] file, out string? failure, out long allocated)
    {
        long bytes = 0;
        var task = Task.Run(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                return Classify(model, like, file);
            }
            finally
            {
                bytes = GC.GetAllocatedBytesForCurrentThread() - before;
            }
        });
        if (!task.Wait(CaseTimeout))
        {
            allocated = 0;
            failure = $"no result after {CaseTimeout.TotalSeconds} s (a hang)";
            return "hang";
        }

        (string outcome, failure) = task.Result;
        allocated = bytes;
        long bound = (64L * file.Length) + AllocationAllowance;
        if (failure is null && allocated > bound)
        {
            failure = $"allocated {allocated:N0} bytes, over the bound {bound:N0} ({outcome})";
            return "over-allocation";
        }

        return outcome;
    }

    private static (string Outcome, string? Failure) Classify(FuzzModel model, LayerListModel like, byte[] file)
    {
        IQuantizedLayer[] loaded;
        try
        {
            loaded = LoadLayers(file, like);
        }
        catch (QGenFormatException ex)
        {
            return ($"load refused: {ex.Error}", null);
        }
        catch (Exception ex)
        {
            return ($"load threw {ex.GetType().Name}", $"load threw {ex.GetType().FullName}: {ex.Message}");
        }

        try
        {
            Run(model, loaded);
            return ("ran", null);
        }
        catch (LayerRunException ex) when (ex.InnerException is ArgumentException inner)
        {
            // QuantGen's own refusal: it must say which layer refused.
            string expectedName = $"{ex.Layer.Model}.{ex.Layer.Layer}";
            return inner.Message.Contains(expectedName, StringComparison.Ordinal)
                ? ("run refused: ArgumentException", null)
                : ("run threw ArgumentException without the layer", $"{ex.Layer.Layer}: {inner.GetType().Name} does not name '{expectedName}': {inner.Message}");
        }
        catch (LayerRunException ex)
        {
            Exception inner = ex.InnerException!;
            return ($"run threw {inner.GetType().Name}", $"{ex.Layer.Layer}: {inner.GetType().FullName}: {inner.Message}");
        }
    }

    /// <summary>Thrown by <see cref="Run"/> to say which layer a run-time exception came from.</summary>
    private sealed class LayerRunException(IQuantizedLayer layer, Exception inner) : Exception(inner.Message, inner)
    {
        public IQuantizedLayer Layer { get; } = layer;
    }

    /// <summary>Runs the loaded layers as the model wires them; a layer's exception is wrapped with the layer.</summary>
    private static QTensor Run(FuzzModel model, IQuantizedLayer[] layers)
    {
        int count = model.InputShape.Aggregate(1, (a, b) => a * b);
        float[] input = ContractReference.RandomFloats(new Random(7), count, -2f, 2f);
        var values = new List<QTensor>();
        var quant = (QuantizeInput)layers[0];
        values.Add(Guard(quant, () => quant.Forward(input, model.InputShape)));
        foreach ((int index, int[] inputs) in model.Steps)
        {
            IQuantizedLayer layer = layers[index];
            QTensor[] x = inputs.Select(i => values[i]).ToArray();
            values.Add(Guard(layer, () => layer switch
            {
                QuantizedAdd add => add.Forward(x[0], x[1]),
                QuantizedCat cat => cat.Forward(x),
                QuantizedHardtanh hardtanh => hardtanh.Forward(x[0]),
                _ => ForwardOne(layer, x[0]),
            }));
        }

        QTensor result = values[^1];
        Guard(layers[^1], () => result.Dequantize());
        return result;
    }

    private static T Guard<T>(IQuantizedLayer layer, Func<T> run)
    {
        try
        {
            return run();
        }
        catch (Exception ex)
        {
            throw new LayerRunException(layer, ex);
        }
    }

    /// <summary>One mutation of <paramref name="original"/>, re-sealed so it reaches the checks after the checksum.</summary>
    private static (string Mutation, byte[] File) Mutate(byte[] original, Random random)
    {
        var records = FileLayout.Records(original);
        int bodyEnd = original.Length - 4;
        byte[] file = (byte[])original.Clone();
        switch (random.Next(7))
        {
            case 0:
            {
                // A field of a record's payload: the options and the tensor shapes sit in the first bytes.
                var record = records[random.Next(records.Count)];
                if (record.PayloadLength < 4)
                {
                    goto case 1;
                }

                int span = Math.Min(record.PayloadLength - 4, 80);
                int at = record.PayloadAt + (4 * random.Next((span / 4) + 1));
                int value = BoundaryValues[random.Next(BoundaryValues.Length)];
                BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(at), value);
                return ($"{record.Name} payload+{at - record.PayloadAt} = {value}", FileLayout.Reseal(file));
            }

            case 1:
            {
                // An int32 anywhere in the body, at any alignment.
                int at = random.Next(FileLayout.BodyAt, bodyEnd - 3);
                int value = BoundaryValues[random.Next(BoundaryValues.Length)];
                BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(at), value);
                return ($"body[{at}] = {value}", FileLayout.Reseal(file));
            }

            case 2:
            {
                // A few bytes flipped anywhere in the body.
                int flips = 1 + random.Next(4);
                var where = new List<int>();
                for (int i = 0; i < flips; i++)
                {
                    int at = random.Next(FileLayout.BodyAt, bodyEnd);
                    file[at] ^= (byte)(1 + random.Next(255));
                    where.Add(at);
                }

                return ($"flipped bytes {string.Join(",", where)}", FileLayout.Reseal(file));
            }

            case 3:
            {
                // A byte of a payload's options set to a small value (stride, padding, dilation 0..255 and the like).
                var record = records[random.Next(records.Count)];
                if (record.PayloadLength < 1)
                {
                    goto case 1;
                }

                int at = record.PayloadAt + random.Next(Math.Min(record.PayloadLength, 80));
                file[at] = (byte)random.Next(256);
                return ($"{record.Name} payload+{at - record.PayloadAt} byte = {file[at]}", FileLayout.Reseal(file));
            }

            case 4:
            {
                // Truncated inside the body, with the preamble's length made to agree.
                int length = random.Next(FileLayout.BodyAt, bodyEnd);
                byte[] cut = new byte[length + 4];
                original.AsSpan(0, length).CopyTo(cut);
                BinaryPrimitives.WriteUInt64LittleEndian(cut.AsSpan(FileLayout.BodyLengthAt), (ulong)(length - FileLayout.BodyAt));
                return ($"body cut at {length}", FileLayout.Reseal(cut));
            }

            case 5:
            {
                // A record duplicated in place, with the layer count (and the body length) made to agree or not.
                var record = records[random.Next(records.Count)];
                int start = record.KindAt, end = record.PayloadAt + record.PayloadLength;
                byte[] longer = new byte[original.Length + (end - start)];
                original.AsSpan(0, end).CopyTo(longer);
                original.AsSpan(start, end - start).CopyTo(longer.AsSpan(end));
                original.AsSpan(end).CopyTo(longer.AsSpan(end + (end - start)));
                BinaryPrimitives.WriteUInt64LittleEndian(longer.AsSpan(FileLayout.BodyLengthAt), (ulong)(longer.Length - 24));
                bool bumpCount = random.Next(2) == 0;
                if (bumpCount)
                {
                    int countAt = FileLayout.LayerCountAt(longer);
                    BinaryPrimitives.WriteInt32LittleEndian(longer.AsSpan(countAt), records.Count + 1);
                }

                return ($"{record.Name} duplicated{(bumpCount ? ", count bumped" : "")}", FileLayout.Reseal(longer));
            }

            default:
            {
                // A record's payload length or the layer count set to a boundary value.
                var record = records[random.Next(records.Count)];
                int at = random.Next(2) == 0 ? record.LengthAt : FileLayout.LayerCountAt(file);
                int value = BoundaryValues[random.Next(BoundaryValues.Length)];
                BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(at), value);
                return ($"count/length at {at} = {value}", FileLayout.Reseal(file));
            }
        }
    }
}
