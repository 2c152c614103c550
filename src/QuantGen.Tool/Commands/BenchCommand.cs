using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using QuantGen.Kernels;
using QuantGen.Modules;

namespace QuantGen.Tool.Commands;

/// <summary><c>quantgen bench model.qgen --threads 1,2 --iterations N</c>: the int8 forward's latency per thread count.</summary>
internal static class BenchCommand
{
    // Square sizes tried, in this order, when the input's height and width are not in the file (a conv model): the
    // first the model runs on is used, and the output says so.
    private static readonly int[] ProbedSizes = [224, 32, 28, 64, 16, 8, 96, 128, 256, 299, 512, 4, 2, 1];

    public static Command Create(TextWriter output)
    {
        var file = new Argument<FileInfo>("model") { Description = "A .qgen file saved by M.Quantized.Save." };
        var threads = new Option<string?>("--threads") { Description = "Thread counts to time, comma-separated (default: 1 and every core)." };
        var iterations = new Option<int>("--iterations") { Description = "Timed calls per thread count; the median is reported.", DefaultValueFactory = _ => 50 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed calls before timing, per thread count.", DefaultValueFactory = _ => 5 };
        var shape = new Option<string?>("--shape") { Description = "The input's shape, e.g. 1,3,224,224 (default: from the first layer; a conv model's height and width are found by trying common sizes)." };
        Option<string?> assembly = AssemblyOption();
        var command = new Command("bench", "Times the int8 forward of a .qgen model on a random input, per thread count (median, fastest and 90th-percentile latency).")
        {
            file,
            threads,
            iterations,
            warmup,
            shape,
            assembly,
        };
        command.SetAction(parsed =>
        {
            string path = parsed.GetValue(file)!.FullName;
            int[] counts = ParseThreads(parsed.GetValue(threads));
            int timed = parsed.GetValue(iterations), untimed = parsed.GetValue(warmup);
            if (timed < 1 || untimed < 0)
            {
                throw new ToolInputException($"--iterations must be at least 1 (got {timed}) and --warmup at least 0 (got {untimed}).");
            }

            IQuantizedModel model = ModelLoading.Load(path, parsed.GetValue(assembly));
            (int[] inputShape, string how) = parsed.GetValue(shape) is string text ? (ParseShape(text), "given") : InferShape(model);
            Run(model, path, inputShape, how, counts, timed, untimed, output);
            return QuantGenTool.Success;
        });
        return command;
    }

    /// <summary>The <c>--assembly</c> option export and bench share.</summary>
    internal static Option<string?> AssemblyOption() => new(ModelLoading.AssemblyOption)
    {
        Description = "For a model of the generated form: the compiled assembly (.dll) of the project that defines the model's class (its graph is compiled there, not stored in the file).",
    };

    /// <summary>A shape written <c>1,3,224,224</c>.</summary>
    internal static int[] ParseShape(string text)
    {
        string[] parts = text.Split(',', StringSplitOptions.TrimEntries);
        var shape = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out shape[i]) || shape[i] < 1)
            {
                throw new ToolInputException($"--shape '{text}': each size must be a positive integer, comma-separated (e.g. 1,3,224,224).");
            }
        }

        return shape;
    }

    private static int[] ParseThreads(string? text)
    {
        if (text is null)
        {
            return Environment.ProcessorCount > 1 ? [1, Environment.ProcessorCount] : [1];
        }

        var counts = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int count) || count < 1)
            {
                throw new ToolInputException($"--threads '{text}': each thread count must be a positive integer, comma-separated (e.g. 1,2).");
            }

            counts.Add(count);
        }

        return counts.Distinct().ToArray();
    }

    /// <summary>The input shape from the first layer that reads the input: a linear's features, a conv's channels (height and width tried).</summary>
    private static (int[] Shape, string How) InferShape(IQuantizedModel model)
    {
        IQuantizedLayer? first = model.Layers.FirstOrDefault(l => l is QuantizedConv2d or QuantizedConvTranspose2d or QuantizedLinear or QuantizedBatchNorm2d);
        int channels = first switch
        {
            QuantizedLinear linear => linear.InFeatures,
            QuantizedConv2d conv => conv.Options.InChannels,
            QuantizedConvTranspose2d deconv => deconv.Options.InChannels,
            QuantizedBatchNorm2d norm => norm.Channels,
            _ => throw new ToolInputException($"{model.Graph.Model}: no conv, linear or batch-norm layer tells the input's shape; give --shape (e.g. 1,3,224,224)."),
        };
        if (first is QuantizedLinear && Runs(model, [1, channels]))
        {
            return ([1, channels], $"from {first.Layer}'s {channels} input features");
        }

        foreach (int size in ProbedSizes)
        {
            int[] shape = [1, channels, size, size];
            if (Runs(model, shape))
            {
                return (shape, $"{channels} channels from {first!.Layer}; {size}x{size} is the first square size it runs on — give --shape to choose");
            }
        }

        throw new ToolInputException($"{model.Graph.Model}: the input has {channels} channels ({first!.Layer}), but the model ran on none of the sizes {string.Join(", ", ProbedSizes)}; give --shape (e.g. 1,{channels},224,224).");
    }

    private static bool Runs(IQuantizedModel model, int[] shape)
    {
        try
        {
            model.forward(new float[Count(shape)], shape, out _);
            return true;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    private static void Run(IQuantizedModel model, string path, int[] shape, string how, int[] threadCounts, int iterations, int warmup, TextWriter output)
    {
        // Random values in [-1, 1) from a fixed seed: every run times the same input.
        var random = new Random(20_260_101);
        float[] input = new float[Count(shape)];
        for (int i = 0; i < input.Length; i++)
        {
            input[i] = (float)((random.NextDouble() * 2) - 1);
        }

        output.WriteLine($"{path}: model {model.Graph.Model} (graph {model.Graph.Hash}), input [{string.Join(", ", shape)}] ({how}).");
        output.WriteLine(Invariant($"{iterations} timed calls after {warmup} warm-up calls per thread count, float in and out (quantize, int8 layers, dequantize); {Environment.ProcessorCount} cores."));
        output.WriteLine();
        output.WriteLine("  threads   median ms   fastest ms    p90 ms");
        int saved = KernelThreads.MaxDegreeOfParallelism;
        try
        {
            foreach (int threads in threadCounts)
            {
                KernelThreads.MaxDegreeOfParallelism = threads;
                for (int i = 0; i < warmup; i++)
                {
                    model.forward(input, shape, out _);
                }

                var milliseconds = new double[iterations];
                for (int i = 0; i < iterations; i++)
                {
                    long start = Stopwatch.GetTimestamp();
                    model.forward(input, shape, out _);
                    milliseconds[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                }

                Array.Sort(milliseconds);
                double median = iterations % 2 == 1 ? milliseconds[iterations / 2] : (milliseconds[(iterations / 2) - 1] + milliseconds[iterations / 2]) / 2;
                double p90 = milliseconds[Math.Min(iterations - 1, (int)Math.Ceiling(0.9 * iterations) - 1)];
                output.WriteLine(Invariant($"  {threads,7}   {median,9:F3}   {milliseconds[0],10:F3}   {p90,7:F3}"));
            }
        }
        finally
        {
            KernelThreads.MaxDegreeOfParallelism = saved;
        }
    }

    private static int Count(int[] shape) => shape.Aggregate(1, (a, b) => checked(a * b));

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
