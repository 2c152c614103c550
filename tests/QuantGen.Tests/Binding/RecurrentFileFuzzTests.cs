using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using QuantGen.Serialization;
using QuantGen.Tests.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// The new float-op records (a dynamic GRU's elements, a weight-only Embedding) under mutation with the checksum
/// recomputed: a file is refused at load with <see cref="QGenFormatException"/>, or loads and runs, or its run is
/// refused with an <see cref="ArgumentException"/> naming the model — never another exception, never a crash.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class RecurrentFileFuzzTests
{
    private static readonly int[] BoundaryValues = [0, -1, 1, int.MaxValue, int.MinValue, 65535, 65536, 0x43960000 /* 300f */, 0x7FC00000 /* NaN */, 2, 3, -2];

    private static byte[] Saved(Action<Stream> save)
    {
        var stream = new MemoryStream();
        save(stream);
        return stream.ToArray();
    }

    private static byte[] Mutated(byte[] original, string[] records, Random random, out string what)
    {
        byte[] file = (byte[])original.Clone();
        var targets = FileLayout.Records(original).Where(r => records.Contains(r.Name) && r.PayloadLength > 8).ToList();
        var record = targets[random.Next(targets.Count)];
        if (random.Next(3) == 0)
        {
            int at = record.PayloadAt + random.Next(record.PayloadLength);
            file[at] ^= (byte)(1 + random.Next(255));
            what = $"{record.Name} byte +{at - record.PayloadAt} flipped";
        }
        else
        {
            // Early bytes hold the kind, text, constants and shapes; values further in are weights and scales.
            int span = random.Next(2) == 0 ? Math.Min(record.PayloadLength - 4, 160) : record.PayloadLength - 4;
            int at = record.PayloadAt + random.Next(span);
            int value = BoundaryValues[random.Next(BoundaryValues.Length)];
            BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(at), value);
            what = $"{record.Name} +{at - record.PayloadAt} = {value}";
        }

        return FileLayout.Reseal(file);
    }

    private static string? Outcome(Func<Func<Tensor>> loadThenRun)
    {
        Func<Tensor> run;
        try
        {
            run = loadThenRun();
        }
        catch (QGenFormatException)
        {
            return null;
        }
        catch (Exception e)
        {
            return $"load threw {e.GetType().Name}: {e.Message}";
        }

        try
        {
            using var scope = torch.NewDisposeScope();
            run();
            return null;
        }
        catch (ArgumentException e) when (e.Message.Contains("Gru", StringComparison.Ordinal) || e.Message.Contains("Lstm", StringComparison.Ordinal))
        {
            return null;
        }
        catch (Exception e)
        {
            return $"run threw {e.GetType().Name}: {e.Message}";
        }
    }

    [Fact]
    public void Mutated_dynamic_gru_and_weight_only_embedding_records_are_refused_cleanly_or_run()
    {
        torch.manual_seed(174);
        using var gruModel = new GruLastState(5, 7, 3);
        gruModel.eval();
        GruLastState.Observed gruObserved = gruModel.Prepare(new QConfigMapping(QConfig.X86).SetModuleType("GRU", QConfig.Dynamic(perChannel: true)));
        using (torch.no_grad())
        {
            gruObserved.forward(torch.randn(4, 2, 5)).Dispose();
        }

        byte[] gruFile = Saved(gruObserved.Convert().Save);

        using var textModel = new LstmTextClassifier(20, 4, 5, 2);
        textModel.eval();
        LstmTextClassifier.Observed textObserved = textModel.Prepare(new QConfigMapping(null)
            .SetModuleType("Embedding", QConfig.FloatQParamsWeightOnly)
            .SetModuleType("LSTM", QConfig.Dynamic()));
        using (torch.no_grad())
        {
            textObserved.forward(torch.tensor(new long[] { 1, 2, 3, 4, 5, 6 }, new long[] { 2, 3 })).Dispose();
        }

        byte[] textFile = Saved(textObserved.Convert().Save);
        using Tensor features = torch.randn(3, 2, 5);
        using Tensor tokens = torch.tensor(new long[] { 0, 7, 19, 3 }, new long[] { 2, 2 });

        var failures = new List<string>();
        for (int seed = 0; seed < 300; seed++)
        {
            var random = new Random(seed);
            byte[] gru = Mutated(gruFile, ["gru.h_n"], random, out string gruWhat);
            string? gruFailure = Outcome(() =>
            {
                GruLastState.Quantized loaded = GruLastState.Quantized.Load(new MemoryStream(gru));
                return () => loaded.forward(features);
            });
            byte[] text = Mutated(textFile, ["embedding", "lstm"], random, out string textWhat);
            string? textFailure = Outcome(() =>
            {
                LstmTextClassifier.Quantized loaded = LstmTextClassifier.Quantized.Load(new MemoryStream(text));
                return () => loaded.forward(tokens);
            });
            if (gruFailure is not null)
            {
                failures.Add($"seed {seed} ({gruWhat}): {gruFailure}");
            }

            if (textFailure is not null)
            {
                failures.Add($"seed {seed} ({textWhat}): {textFailure}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(10)));
    }
}
