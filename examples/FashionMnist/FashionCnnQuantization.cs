using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using QuantGen;
using QuantGen.Calibration;
using QuantGen.Observers;
using TorchSharp;
using static TorchSharp.torch;

namespace FashionMnist;

/// <summary>One calibration method of the accuracy table: a name and the activation observer it uses.</summary>
/// <param name="Name">As printed ("MinMax", "Entropy", ...).</param>
/// <param name="Activation">The activation observer recipe; weights keep the X86 preset's per-channel MinMax.</param>
public sealed record CalibrationMethod(string Name, ObserverSpec Activation)
{
    /// <summary>
    /// The six methods of the table, as activation observers of the X86 preset (quint8 affine, reduce_range as PyTorch's
    /// x86/fbgemm default; <paramref name="reduceRange"/> false gives the onednn form): PyTorch's MinMax,
    /// MovingAverageMinMax and Histogram, and QuantGen's Percentile (99.99), Entropy (KL) and MSE.
    /// </summary>
    public static IReadOnlyList<CalibrationMethod> All(bool reduceRange = true) =>
    [
        new("MinMax", ObserverSpec.MinMax(reduceRange: reduceRange)),
        new("MovingAverage", ObserverSpec.MovingAverageMinMax(reduceRange: reduceRange)),
        new("Histogram", ObserverSpec.Histogram(reduceRange: reduceRange)),
        new("Percentile", ObserverSpec.Percentile(99.99, reduceRange: reduceRange)),
        new("Entropy", ObserverSpec.Entropy(reduceRange: reduceRange)),
        new("MSE", ObserverSpec.Mse(reduceRange: reduceRange)),
    ];

    /// <summary>The X86 preset with this method's activation observer.</summary>
    public QConfig QConfig => QuantGen.QConfig.X86 with { Activation = Activation };
}

/// <summary>Quantizing and scoring a <see cref="FashionCnn"/>: calibration, bias correction, top-1 accuracy, sizes.</summary>
public static class FashionCnnQuantization
{
    /// <summary>Images per calibration / evaluation batch.</summary>
    public const int BatchSize = 250;

    /// <summary>The layers that can be kept in float by the sensitivity fallback (member paths).</summary>
    public static readonly string[] FallbackCandidates = ["conv1", "conv2", "conv3", "fc1", "fc2"];

    /// <summary>
    /// Prepares <paramref name="model"/> with <paramref name="mapping"/>, runs every image of <paramref name="calibration"/>
    /// through it, and converts: the int8 model, and (when <paramref name="biasCorrection"/>) a second one converted from
    /// the same observers whose conv/linear biases were then corrected on the same calibration images.
    /// </summary>
    public static (FashionCnn.Quantized Plain, FashionCnn.Quantized? Corrected) Quantize(FashionCnn model, QConfigMapping mapping, FashionMnistSplit calibration, bool biasCorrection, BiasCorrectionReference reference = BiasCorrectionReference.FloatModel)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(calibration);
        using FashionCnn.Observed observed = model.Prepare(mapping);
        List<Tensor> batches = Batches(calibration);
        try
        {
            observed.Calibrate(batches);
            FashionCnn.Quantized plain = observed.Convert();
            if (!biasCorrection)
            {
                return (plain, null);
            }

            // Both are converted before correcting: the correction runs the Observed forward, whose observers keep recording.
            FashionCnn.Quantized corrected = observed.Convert();
            BiasCorrection.Apply(corrected, observed.forward, batches, reference);
            return (plain, corrected);
        }
        finally
        {
            foreach (Tensor batch in batches)
            {
                batch.Dispose();
            }
        }
    }

    /// <summary>Top-1 accuracy (%) of a float model (or a QAT model in eval mode) on <paramref name="split"/>.</summary>
    public static double Accuracy(torch.nn.Module<Tensor, Tensor> model, FashionMnistSplit split)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(split);
        int correct = 0;
        using (torch.no_grad())
        {
            for (int start = 0; start < split.Count; start += BatchSize)
            {
                int n = Math.Min(BatchSize, split.Count - start);
                using var scope = torch.NewDisposeScope();
                Tensor predictions = model.forward(split.Images(start, n)).argmax(1);
                long[] predicted = predictions.data<long>().ToArray();
                correct += CountCorrect(predicted, split, start);
            }
        }

        return 100.0 * correct / split.Count;
    }

    /// <summary>Top-1 accuracy (%) of an int8 model on <paramref name="split"/> (the span forward: no TorchSharp involved).</summary>
    public static double Accuracy(FashionCnn.Quantized int8, FashionMnistSplit split)
    {
        ArgumentNullException.ThrowIfNull(int8);
        ArgumentNullException.ThrowIfNull(split);
        int correct = 0;
        for (int start = 0; start < split.Count; start += BatchSize)
        {
            int n = Math.Min(BatchSize, split.Count - start);
            float[] logits = int8.forward(split.NormalizedValues(start, n), [n, 1, FashionMnistSplit.Side, FashionMnistSplit.Side], out int[] shape);
            int classes = shape[1];
            var predicted = new long[n];
            for (int i = 0; i < n; i++)
            {
                int best = 0;
                for (int c = 1; c < classes; c++)
                {
                    if (logits[(i * classes) + c] > logits[(i * classes) + best])
                    {
                        best = c;
                    }
                }

                predicted[i] = best;
            }

            correct += CountCorrect(predicted, split, start);
        }

        return 100.0 * correct / split.Count;
    }

    /// <summary>Bytes of the float model's parameters and buffers (float32), what <c>model.save</c> stores apart from names.</summary>
    public static long FloatBytes(FashionCnn model)
    {
        ArgumentNullException.ThrowIfNull(model);
        long elements = model.parameters().Sum(p => p.numel()) + model.buffers().Where(b => b.dtype == ScalarType.Float32).Sum(b => b.numel());
        return elements * sizeof(float);
    }

    /// <summary>Bytes of the int8 model's <c>.qgen</c> file (int8 weights, float biases and qparams, graph description).</summary>
    public static long Int8Bytes(FashionCnn.Quantized int8)
    {
        ArgumentNullException.ThrowIfNull(int8);
        using var stream = new MemoryStream();
        int8.Save(stream);
        return stream.Length;
    }

    /// <summary>The calibration images as float tensors of <see cref="BatchSize"/> images.</summary>
    public static List<Tensor> Batches(FashionMnistSplit split)
    {
        ArgumentNullException.ThrowIfNull(split);
        var batches = new List<Tensor>();
        for (int start = 0; start < split.Count; start += BatchSize)
        {
            batches.Add(split.Images(start, Math.Min(BatchSize, split.Count - start)));
        }

        return batches;
    }

    private static int CountCorrect(long[] predicted, FashionMnistSplit split, int start)
    {
        int correct = 0;
        for (int i = 0; i < predicted.Length; i++)
        {
            correct += predicted[i] == split.LabelBytes[start + i] ? 1 : 0;
        }

        return correct;
    }
}

/// <summary>What <see cref="SensitivityFallback.Run"/> found.</summary>
/// <param name="AllInt8Accuracy">Validation top-1 (%) with every layer int8.</param>
/// <param name="Sensitivity">Per candidate layer, the validation top-1 (%) with only that layer kept in float; most sensitive first.</param>
/// <param name="FloatLayers">The layers kept in float, in the order they were added (empty when the drop was met without).</param>
/// <param name="ValidationAccuracy">Validation top-1 (%) of <see cref="Model"/>.</param>
/// <param name="Model">The int8 model with <see cref="FloatLayers"/> in float.</param>
public sealed record FallbackResult(double AllInt8Accuracy, IReadOnlyList<(string Layer, double Accuracy)> Sensitivity, IReadOnlyList<string> FloatLayers, double ValidationAccuracy, FashionCnn.Quantized Model);

/// <summary>
/// Sensitivity-driven float fallback: ranks the layers by how much validation accuracy comes back when only that layer
/// stays in float (<c>QConfigMapping.SetModuleName(layer, null)</c>), then keeps the most sensitive in float, one more at a
/// time, until the int8 model is within the allowed drop of the float model.
/// </summary>
public static class SensitivityFallback
{
    /// <summary>Runs the ranking and the greedy fallback.</summary>
    /// <param name="model">The float model.</param>
    /// <param name="qconfig">The qconfig of every quantized layer.</param>
    /// <param name="calibration">Calibration images.</param>
    /// <param name="validation">Images the choices are made on (not the test split).</param>
    /// <param name="floatAccuracy">The float model's top-1 (%) on <paramref name="validation"/>.</param>
    /// <param name="maxDrop">Largest allowed drop, in points.</param>
    /// <param name="biasCorrection">Correct biases after each conversion.</param>
    /// <param name="candidates">Layers that may stay in float; null for <see cref="FashionCnnQuantization.FallbackCandidates"/>.</param>
    public static FallbackResult Run(FashionCnn model, QConfig qconfig, FashionMnistSplit calibration, FashionMnistSplit validation, double floatAccuracy, double maxDrop, bool biasCorrection, IReadOnlyList<string>? candidates = null)
    {
        candidates ??= FashionCnnQuantization.FallbackCandidates;
        (FashionCnn.Quantized current, double accuracy) = Build(model, qconfig, [], calibration, validation, biasCorrection);
        double allInt8 = accuracy;
        var sensitivity = new List<(string Layer, double Accuracy)>();
        foreach (string layer in candidates)
        {
            sensitivity.Add((layer, Build(model, qconfig, [layer], calibration, validation, biasCorrection).Accuracy));
        }

        sensitivity.Sort((a, b) => b.Accuracy.CompareTo(a.Accuracy));
        var floatLayers = new List<string>();
        foreach ((string layer, _) in sensitivity)
        {
            if (floatAccuracy - accuracy <= maxDrop)
            {
                break;
            }

            floatLayers.Add(layer);
            (current, accuracy) = Build(model, qconfig, floatLayers, calibration, validation, biasCorrection);
        }

        return new FallbackResult(allInt8, sensitivity, floatLayers, accuracy, current);
    }

    /// <summary>The mapping: <paramref name="qconfig"/> everywhere except <paramref name="floatLayers"/>, kept in float.</summary>
    public static QConfigMapping Mapping(QConfig qconfig, IEnumerable<string> floatLayers)
    {
        var mapping = new QConfigMapping(qconfig);
        foreach (string layer in floatLayers)
        {
            mapping.SetModuleName(layer, null);
        }

        return mapping;
    }

    private static (FashionCnn.Quantized Model, double Accuracy) Build(FashionCnn model, QConfig qconfig, IReadOnlyList<string> floatLayers, FashionMnistSplit calibration, FashionMnistSplit validation, bool biasCorrection)
    {
        (FashionCnn.Quantized plain, FashionCnn.Quantized? corrected) = FashionCnnQuantization.Quantize(model, Mapping(qconfig, floatLayers), calibration, biasCorrection);
        FashionCnn.Quantized chosen = corrected ?? plain;
        return (chosen, FashionCnnQuantization.Accuracy(chosen, validation));
    }
}
