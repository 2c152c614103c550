using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using QuantGen;
using QuantGen.Observers;
using QuantGen.Qat;
using TorchSharp;
using static TorchSharp.torch;

namespace FashionMnist;

/// <summary>
/// How <see cref="FashionCnnQat.FineTune"/> runs PyTorch's QAT schedule: a short fine-tune of the trained model with fake
/// quantization, observers frozen and BatchNorm statistics frozen part-way, as the PyTorch QAT tutorial does.
/// </summary>
/// <param name="Steps">Optimizer steps (batches).</param>
/// <param name="BatchSize">Images per step.</param>
/// <param name="LearningRate">Adam's learning rate (small: the weights are already trained).</param>
/// <param name="FreezeObserversAt">The fraction of the steps after which the qparams stop moving.</param>
/// <param name="FreezeBatchNormAt">The fraction of the steps after which the fused BatchNorms use their running statistics.</param>
/// <param name="Seed">Shuffling seed.</param>
public sealed record QatSchedule(int Steps = 200, int BatchSize = 128, double LearningRate = 1e-4, double FreezeObserversAt = 0.5, double FreezeBatchNormAt = 0.75, int Seed = 1);

/// <summary>Quantization-aware fine-tuning of a trained <see cref="FashionCnn"/> and its timing against float training.</summary>
public static class FashionCnnQat
{
    /// <summary>
    /// 4-bit activations (quint8 storage, quant range 0..15) and 4-bit weights (−8..7, per channel): a setting where
    /// post-training quantization clearly loses accuracy, as narrow bit widths do, and QAT has to earn its keep.
    /// </summary>
    public static QatQConfig FourBit { get; } = new(
        FakeQuantSpec.FusedMovingAverage(ObserverSpec.MovingAverageMinMax(0.01f, QuantDType.QUInt8, QScheme.PerTensorAffine, quantMin: 0, quantMax: 15)),
        FakeQuantSpec.FusedMovingAverage(ObserverSpec.MovingAveragePerChannelMinMax(0.01f, QuantDType.QInt8, QScheme.PerChannelSymmetric, quantMin: -8, quantMax: 7)));

    /// <summary>The post-training counterpart of <see cref="FourBit"/> with a histogram (or min/max) activation observer.</summary>
    public static QConfig FourBitPtq(bool histogram) => new(
        histogram
            ? ObserverSpec.Histogram(QuantDType.QUInt8, QScheme.PerTensorAffine, quantMin: 0, quantMax: 15)
            : ObserverSpec.MinMax(QuantDType.QUInt8, QScheme.PerTensorAffine, quantMin: 0, quantMax: 15),
        ObserverSpec.PerChannelMinMax(QuantDType.QInt8, QScheme.PerChannelSymmetric, quantMin: -8, quantMax: 7));

    /// <summary>A copy of <paramref name="model"/> (same weights and statistics), in eval mode: QAT trains its model in place.</summary>
    public static FashionCnn Copy(FashionCnn model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var copy = new FashionCnn();
        copy.load_state_dict(model.state_dict());
        copy.eval();
        return copy;
    }

    /// <summary>
    /// Fine-tunes a copy of <paramref name="trained"/> with QAT on <paramref name="train"/> and converts it: PrepareQat, Adam at a
    /// small learning rate, observers frozen and BatchNorm frozen part-way (<paramref name="schedule"/>), eval, Convert.
    /// </summary>
    /// <returns>The int8 model, the QAT model (in eval mode, for its own accuracy) and the seconds the training steps took.</returns>
    public static (FashionCnn.Quantized Int8, FashionCnn.Qat Qat, double Seconds) FineTune(FashionCnn trained, FashionMnistSplit train, QatQConfig qconfig, QatSchedule schedule, TextWriter? log = null)
    {
        ArgumentNullException.ThrowIfNull(trained);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(schedule);
        FashionCnn model = Copy(trained);
        FashionCnn.Qat qat = model.PrepareQat(qconfig);
        using var optimizer = torch.optim.Adam(qat.parameters(), schedule.LearningRate);
        double seconds = Steps(qat, optimizer, train, schedule, (step, total) =>
        {
            if (step == (int)(total * schedule.FreezeObserversAt))
            {
                qat.DisableObservers();
                log?.WriteLine($"  step {step}: observers frozen");
            }

            if (step == (int)(total * schedule.FreezeBatchNormAt))
            {
                qat.FreezeBatchNorm();
                log?.WriteLine($"  step {step}: BatchNorm statistics frozen");
            }
        });

        qat.eval();
        FashionCnn.Quantized int8 = qat.Convert();
        return (int8, qat, seconds);
    }

    /// <summary>Seconds for the same steps of float training on a copy of <paramref name="trained"/> (the QAT step ratio's denominator).</summary>
    public static double FloatTrainingSeconds(FashionCnn trained, FashionMnistSplit train, QatSchedule schedule)
    {
        using FashionCnn model = Copy(trained);
        model.train();
        using var optimizer = torch.optim.Adam(model.parameters(), schedule.LearningRate);
        return Steps(model, optimizer, train, schedule, (_, _) => { });
    }

    private static double Steps(torch.nn.Module<Tensor, Tensor> model, torch.optim.Optimizer optimizer, FashionMnistSplit train, QatSchedule schedule, Action<int, int> beforeStep)
    {
        var random = new Random(schedule.Seed);
        const int Pixels = FashionMnistSplit.Side * FashionMnistSplit.Side;
        var values = new float[schedule.BatchSize * Pixels];
        var labels = new long[schedule.BatchSize];
        var clock = new Stopwatch();
        for (int step = 0; step < schedule.Steps; step++)
        {
            beforeStep(step, schedule.Steps);
            for (int b = 0; b < schedule.BatchSize; b++)
            {
                int index = random.Next(train.Count);
                train.NormalizedValues(index, 1).CopyTo(values, b * Pixels);
                labels[b] = train.LabelBytes[index];
            }

            using var scope = torch.NewDisposeScope();
            Tensor images = torch.tensor(values, [schedule.BatchSize, 1, FashionMnistSplit.Side, FashionMnistSplit.Side], ScalarType.Float32);
            Tensor target = torch.tensor(labels, ScalarType.Int64);
            clock.Start();
            Tensor loss = torch.nn.functional.cross_entropy(model.forward(images), target);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            clock.Stop();
        }

        return clock.Elapsed.TotalSeconds;
    }

    /// <summary>"12.3 s".</summary>
    public static string Seconds(double seconds) => seconds.ToString("F1", CultureInfo.InvariantCulture) + " s";
}
