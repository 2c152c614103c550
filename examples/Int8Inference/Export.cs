using System;
using System.Globalization;
using System.Linq;
using QuantGen.Kernels;
using ResNet18Example;
using TorchSharp;
using static TorchSharp.torch;

namespace Int8Inference;

/// <summary>
/// The companion step that makes the model file (JIT only: it needs TorchSharp and libtorch): builds
/// examples/ResNet18's model as that example does (same seed, same BatchNorm statistics), calibrates it,
/// converts it, saves it, and checks that the saved file loads back to the same int8 results.
/// </summary>
internal static class Export
{
    /// <summary>Writes the int8 ResNet-18 to <paramref name="path"/>; returns the process exit code.</summary>
    public static int Run(string path, int size, int seed)
    {
        Console.WriteLine($"Export: ResNet-18 (random seed {seed}), 4 calibration batches 1x3x{size}x{size}, to {path}");
        torch.manual_seed(seed);
        using var model = new ResNet18();
        Randomize.BatchNormStatistics(model, seed);
        model.eval();

        using ResNet18.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            for (int i = 0; i < 4; i++)
            {
                using Tensor batch = torch.rand(1, 3, size, size);
                observed.forward(batch).Dispose();
            }
        }

        ResNet18.Quantized int8 = observed.Convert();
        int8.Save(path);
        long bytes = new System.IO.FileInfo(path).Length;

        // The same input the inference mode uses; the file must reproduce the in-memory model exactly.
        float[] image = SyntheticImage.Create(size, seed);
        int[] shape = [1, 3, size, size];
        float[] logits = int8.forward(image, shape, out int[] outputShape);
        float[] loaded = ResNet18.Quantized.Load(path).forward(image, shape, out _);
        bool same = loaded.AsSpan().SequenceEqual(logits);

        using Tensor input = torch.tensor(image, new long[] { 1, 3, size, size });
        using Tensor floatLogits = model.forward(input);
        using Tensor int8Logits = torch.tensor(logits, new long[] { 1, logits.Length });
        float cosine = torch.nn.functional.cosine_similarity(floatLogits, int8Logits, dim: 1).item<float>();
        long floatTop = floatLogits.argmax(1).item<long>();

        Console.WriteLine(KernelDispatch.KernelInfo);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"saved {path}: {bytes / 1e6:F1} MB; reloaded file gives the same logits: {same}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"float vs int8 logits: cosine {cosine:F4}, float top-1 class {floatTop}"));
        Console.WriteLine(Result.Describe(logits, outputShape));
        return same ? 0 : 1;
    }
}
