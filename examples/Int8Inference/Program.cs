// Int8Inference: examples/ResNet18's model in int8, loaded from a .qgen file and run through the
// float[] forward. Loading and running touch no TorchSharp type and no libtorch, so the app publishes
// with NativeAOT and runs with the torch native libraries deleted (build/aot-demo.sh shows it).
//
//   dotnet run --project examples/Int8Inference -c Release -- --export resnet18.qgen   (JIT: calibrate, convert, save)
//   dotnet run --project examples/Int8Inference -c Release -- resnet18.qgen            (JIT: load, run)
//   bash build/aot-demo.sh                                                             (AOT: publish, delete libtorch, run)
//
// Options: --size N (input N×N, default 224), --seed N (default 0), --runs N (timed forwards after the first).
using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Int8Inference;
using QuantGen.Kernels;
using ResNet18Example;

long started = Stopwatch.GetTimestamp();
int size = Options.Int(args, "--size", 224), seed = Options.Int(args, "--seed", 0), runs = Options.Int(args, "--runs", 0);
// A NativeAOT binary has compiled everything ahead of time; under the JIT, Main itself was just compiled.
// (Not RuntimeFeature.IsDynamicCodeSupported: PublishAot sets it false for the JIT build as well.)
string mode = System.Runtime.JitInfo.GetCompiledMethodCount() > 0 ? "JIT (CoreCLR)" : "NativeAOT";

if (args.Length >= 2 && args[0] == "--export")
{
    // A feature switch that is constant false in the published binary, so the AOT compiler drops Export and,
    // with it, every TorchSharp call.
    if (!Features.CanExport)
    {
        Console.Error.WriteLine("--export calibrates with TorchSharp and libtorch: run it from the JIT build (dotnet run), not the AOT binary.");
        return 2;
    }

    return Export.Run(args[1], size, seed);
}

string path = Options.Positional(args) ?? "resnet18.qgen";
if (!File.Exists(path))
{
    Console.Error.WriteLine($"{path}: no such file. Make it with: dotnet run --project examples/Int8Inference -c Release -- --export {path}");
    return 2;
}

Console.WriteLine($"Int8Inference ({mode}): ResNet-18 int8 from {path}, input 1x3x{size}x{size}, random seed {seed}");
Console.WriteLine(KernelDispatch.KernelInfo);

long loadStart = Stopwatch.GetTimestamp();
ResNet18.Quantized model = ResNet18.Quantized.Load(path);
TimeSpan load = Stopwatch.GetElapsedTime(loadStart);

float[] image = SyntheticImage.Create(size, seed);
int[] shape = [1, 3, size, size];
long forwardStart = Stopwatch.GetTimestamp();
float[] logits = model.forward(image, shape, out int[] outputShape);
TimeSpan firstForward = Stopwatch.GetElapsedTime(forwardStart);
TimeSpan sinceMain = Stopwatch.GetElapsedTime(started);

Console.WriteLine(Result.Describe(logits, outputShape));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"load {load.TotalMilliseconds:F1} ms, first forward {firstForward.TotalMilliseconds:F1} ms, first result {sinceMain.TotalMilliseconds:F1} ms after Main started"));

if (runs > 0)
{
    double[] times = new double[runs];
    for (int i = 0; i < runs; i++)
    {
        long t = Stopwatch.GetTimestamp();
        float[] again = model.forward(image, shape, out _);
        times[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
        if (!again.AsSpan().SequenceEqual(logits))
        {
            Console.Error.WriteLine($"forward {i + 2} differs from the first: the int8 forward must be deterministic.");
            return 1;
        }
    }

    Array.Sort(times);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"steady state: median {times[runs / 2]:F1} ms per forward over {runs} runs (min {times[0]:F1} ms)"));
}

return 0;

namespace Int8Inference
{
    /// <summary>What this build of the app can do.</summary>
    internal static class Features
    {
        /// <summary>
        /// False in a published app (Int8Inference.csproj sets the switch when publishing), true otherwise. Not
        /// <see cref="RuntimeFeature.IsDynamicCodeSupported"/>: PublishAot makes that false in the JIT build too.
        /// </summary>
        [FeatureSwitchDefinition("Int8Inference.CanExport")]
        public static bool CanExport => !AppContext.TryGetSwitch("Int8Inference.CanExport", out bool enabled) || enabled;
    }

    /// <summary>The input every mode uses: the same numbers in JIT and AOT, without TorchSharp.</summary>
    internal static class SyntheticImage
    {
        /// <summary>1×3×size×size values uniform in [0, 1), from a seeded <see cref="Random"/> (its algorithm is fixed for a given seed).</summary>
        public static float[] Create(int size, int seed)
        {
            var random = new Random(seed);
            float[] values = new float[3 * size * size];
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = random.NextSingle();
            }

            return values;
        }
    }

    /// <summary>One line that identifies a result exactly, so two runs (JIT, AOT, export) can be compared as text.</summary>
    internal static class Result
    {
        /// <summary>Shape, top-5 classes and an FNV-1a hash of the logits' bits.</summary>
        public static string Describe(float[] logits, int[] shape)
        {
            int[] top = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ThenBy(i => i).Take(5).ToArray();
            ulong hash = 14695981039346656037UL;
            foreach (float v in logits)
            {
                hash = (hash ^ BitConverter.SingleToUInt32Bits(v)) * 1099511628211UL;
            }

            return string.Create(CultureInfo.InvariantCulture,
                $"result: shape [{string.Join(", ", shape)}], top-5 classes [{string.Join(", ", top)}], logits[top-1] {logits[top[0]]:R}, fnv1a {hash:x16}");
        }
    }

    /// <summary>Command-line options.</summary>
    internal static class Options
    {
        /// <summary>The integer after <paramref name="name"/>, or <paramref name="fallback"/>.</summary>
        public static int Int(string[] args, string name, int fallback)
        {
            int at = Array.IndexOf(args, name);
            return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
        }

        /// <summary>The first argument that is neither an option (every option here takes a value) nor an option's value.</summary>
        public static string? Positional(string[] args)
        {
            for (int i = 0; i < args.Length; i++)
            {
                if (args[i].StartsWith("--", StringComparison.Ordinal))
                {
                    i++;
                    continue;
                }

                return args[i];
            }

            return null;
        }
    }
}
