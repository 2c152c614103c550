using System;
using System.IO;
using FashionMnist;
using QuantGen.Onnx;
using ResNet18Example;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Bench;

/// <summary>The models of the side-by-side table.</summary>
public enum BenchModel
{
    /// <summary>torchvision's ResNet-18 (examples/ResNet18), input 1×3×224×224.</summary>
    ResNet18,

    /// <summary>The Fashion-MNIST CNN (examples/FashionMnist), input 1×1×28×28.</summary>
    FashionCnn,

    /// <summary>MobileNetV2 (examples/RealModels: depthwise convs, ReLU6), input 1×3×224×224.</summary>
    MobileNetV2,

    /// <summary>ResNet-50 (examples/RealModels: bottlenecks, 1×1-heavy), input 1×3×224×224.</summary>
    ResNet50,

    /// <summary>
    /// A UNet as users write it (examples/RealModels: milesial's layout, base width 16, ConvTranspose2d up-sampling, skip
    /// connections through a two-tensor Up module), input 1×3×128×128.
    /// </summary>
    UNet,

    /// <summary>The CenterNet head (examples/CenterNetHead: strided backbone, three ConvTranspose2d up-samplers, three heads), input 1×3×128×128.</summary>
    CenterNetHead,
}

/// <summary>
/// One model ready for every peer: the TorchSharp float module (eval), the converted int8 model, its ONNX exports
/// (QDQ with the int8 model's own qparams, and the float form) and one fixed input. The .qgen and .onnx files live
/// in <see cref="BenchModels.WorkDirectory"/>, so a second process (the scalar reference, BenchmarkDotNet's
/// benchmark processes) loads exactly the same int8 model instead of calibrating again.
/// </summary>
public sealed class PreparedModel : IDisposable
{
    internal PreparedModel(BenchModel model, nn.Module<Tensor, Tensor> floatModel, IQuantizedModel int8, int[] inputShape, float[] input, string qgenPath, string qdqOnnxPath, string floatOnnxPath)
    {
        Model = model;
        FloatModel = floatModel;
        Int8 = int8;
        InputShape = inputShape;
        Input = input;
        QGenPath = qgenPath;
        QdqOnnxPath = qdqOnnxPath;
        FloatOnnxPath = floatOnnxPath;
    }

    /// <summary>Which model.</summary>
    public BenchModel Model { get; }

    /// <summary>The TorchSharp float model, in eval mode.</summary>
    public nn.Module<Tensor, Tensor> FloatModel { get; }

    /// <summary>The converted int8 model (packed for the kernels this process dispatches to).</summary>
    public IQuantizedModel Int8 { get; }

    /// <summary>Logical NCHW input shape, batch 1.</summary>
    public int[] InputShape { get; }

    /// <summary>The input every peer is given (standard normal values, fixed seed).</summary>
    public float[] Input { get; }

    /// <summary>The saved int8 model.</summary>
    public string QGenPath { get; }

    /// <summary>The QDQ ONNX export (same qparams as <see cref="Int8"/>).</summary>
    public string QdqOnnxPath { get; }

    /// <summary>The float ONNX export (dequantized weights, no Q/DQ).</summary>
    public string FloatOnnxPath { get; }

    /// <summary>Display name.</summary>
    public string Name => $"{BenchModels.DisplayName(Model)} {string.Join('×', InputShape)}";

    /// <inheritdoc/>
    public void Dispose() => FloatModel.Dispose();
}

/// <summary>Builds (or reloads) the benchmark models with fixed seeds.</summary>
public static class BenchModels
{
    /// <summary>The environment variable naming the folder for .qgen/.onnx files (default: a folder under the temp directory).</summary>
    public const string WorkDirectoryVariable = "QUANTGEN_BENCH_DIR";

    private const int Seed = 0;

    /// <summary>Where the saved models are kept (created on demand).</summary>
    public static string WorkDirectory
    {
        get
        {
            string? configured = Environment.GetEnvironmentVariable(WorkDirectoryVariable);
            string directory = string.IsNullOrEmpty(configured) ? Path.Combine(Path.GetTempPath(), "quantgen-bench") : configured;
            Directory.CreateDirectory(directory);
            return directory;
        }
    }

    /// <summary>The input shape of a model (batch 1).</summary>
    public static int[] InputShape(BenchModel model) => model switch
    {
        BenchModel.FashionCnn => [1, 1, 28, 28],
        BenchModel.UNet or BenchModel.CenterNetHead => [1, 3, 128, 128],
        _ => [1, 3, 224, 224],
    };

    /// <summary>The model's name in tables.</summary>
    public static string DisplayName(BenchModel model) => model switch
    {
        BenchModel.ResNet18 => "ResNet-18",
        BenchModel.ResNet50 => "ResNet-50",
        BenchModel.CenterNetHead => "CenterNet head",
        _ => model.ToString(),
    };

    /// <summary>True for the image models whose calls take milliseconds (measured with fewer calls).</summary>
    public static bool IsLarge(BenchModel model) => model != BenchModel.FashionCnn;

    /// <summary>
    /// The model with the fixed seed's weights. With <paramref name="reuseSaved"/>, an int8 model and ONNX files
    /// already in <see cref="WorkDirectory"/> for the same graph are loaded instead of calibrating again.
    /// </summary>
    public static PreparedModel Prepare(BenchModel model, bool reuseSaved, TextWriter? log = null)
    {
        TorchRunner.DisableNnpack();
        torch.manual_seed(Seed);
        int[] shape = InputShape(model);
        float[] input = NormalValues(shape, Seed + 1);
        string directory = WorkDirectory;
        string stem = model switch
        {
            BenchModel.ResNet18 => $"resnet18-{ResNet18.Quantized.GraphHash}",
            // Bound at Prepare (no compile-time graph hash); Load checks a file against the running model anyway.
            BenchModel.MobileNetV2 => "mobilenetv2",
            BenchModel.ResNet50 => "resnet50",
            BenchModel.UNet => "unet",
            BenchModel.CenterNetHead => "centernethead",
            _ => $"fashioncnn-{FashionCnn.Quantized.GraphHash}",
        };
        string qgen = Path.Combine(directory, stem + ".qgen");
        string qdq = Path.Combine(directory, stem + ".qdq.onnx");
        string fp32 = Path.Combine(directory, stem + ".fp32.onnx");

        if (model is BenchModel.MobileNetV2 or BenchModel.ResNet50 or BenchModel.UNet or BenchModel.CenterNetHead)
        {
            // Random weights (timing does not depend on them) with randomised BatchNorm statistics, calibrated on
            // 4 batches of normal inputs like ResNet-18.
            nn.Module<Tensor, Tensor> floatModel = model switch
            {
                BenchModel.MobileNetV2 => new RealModels.MobileNetV2(),
                BenchModel.ResNet50 => new RealModels.ResNet50(),
                BenchModel.UNet => new RealModels.UNet(),
                _ => new CenterNetHeadExample.CenterNetHead(),
            };
            Randomize.BatchNormStatistics(floatModel, Seed);
            floatModel.eval();
            IQuantizedModel int8 = reuseSaved && AllExist(qgen, qdq, fp32)
                ? model switch
                {
                    BenchModel.MobileNetV2 => RealModels.MobileNetV2.Quantized.Load(qgen),
                    BenchModel.ResNet50 => RealModels.ResNet50.Quantized.Load(qgen),
                    BenchModel.UNet => RealModels.UNet.Quantized.Load(qgen),
                    _ => CenterNetHeadExample.CenterNetHead.Quantized.Load(qgen),
                }
                : Calibrate(floatModel, shape, batches: 4, log);
            Finish(int8, shape, qgen, qdq, fp32, reuseSaved);
            return new PreparedModel(model, floatModel, int8, shape, input, qgen, qdq, fp32);
        }

        if (model == BenchModel.ResNet18)
        {
            var floatModel = new ResNet18();
            Randomize.BatchNormStatistics(floatModel, Seed);
            floatModel.eval();
            IQuantizedModel int8 = reuseSaved && AllExist(qgen, qdq, fp32)
                ? ResNet18.Quantized.Load(qgen)
                : Calibrate(floatModel, shape, batches: 4, log);
            Finish(int8, shape, qgen, qdq, fp32, reuseSaved);
            return new PreparedModel(model, floatModel, int8, shape, input, qgen, qdq, fp32);
        }
        else
        {
            // Untrained weights (the timing does not depend on them); BatchNorm statistics randomised as for
            // ResNet-18 so the folded weights are not trivial; calibrated on batches of the same normal inputs.
            var floatModel = new FashionCnn();
            Randomize.BatchNormStatistics(floatModel, Seed);
            floatModel.eval();
            IQuantizedModel int8 = reuseSaved && AllExist(qgen, qdq, fp32)
                ? FashionCnn.Quantized.Load(qgen)
                : Calibrate(floatModel, [16, 1, 28, 28], batches: 8, log);
            Finish(int8, shape, qgen, qdq, fp32, reuseSaved);
            return new PreparedModel(model, floatModel, int8, shape, input, qgen, qdq, fp32);
        }
    }

    /// <summary>Standard normal values (Box–Muller on a seeded <see cref="Random"/>).</summary>
    public static float[] NormalValues(int[] shape, int seed)
    {
        int count = 1;
        foreach (int d in shape)
        {
            count *= d;
        }

        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i += 2)
        {
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            values[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < count)
            {
                values[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
            }
        }

        return values;
    }

    private static IQuantizedModel Calibrate(ResNet18 model, int[] shape, int batches, TextWriter? log)
    {
        using ResNet18.Observed observed = model.Prepare();
        RunCalibration(observed.forward, shape, batches);
        log?.WriteLine($"  ResNet-18 calibrated on {batches} batches of {string.Join('x', shape)} (default X86 qconfig, HistogramObserver).");
        return observed.Convert();
    }

    private static IQuantizedModel Calibrate(FashionCnn model, int[] shape, int batches, TextWriter? log)
    {
        using FashionCnn.Observed observed = model.Prepare();
        RunCalibration(observed.forward, shape, batches);
        log?.WriteLine($"  FashionCnn calibrated on {batches} batches of {string.Join('x', shape)} (default X86 qconfig, HistogramObserver).");
        return observed.Convert();
    }

    private static IQuantizedModel Calibrate(nn.Module<Tensor, Tensor> model, int[] shape, int batches, TextWriter? log)
    {
        int[] calibrationShape = [4, .. shape[1..]];
        IQuantizedModel int8;
        switch (model)
        {
            case RealModels.MobileNetV2 mobileNet:
            {
                using RealModels.MobileNetV2.Observed observed = mobileNet.Prepare();
                RunCalibration(observed.forward, calibrationShape, batches);
                int8 = observed.Convert();
                break;
            }

            case RealModels.ResNet50 resNet:
            {
                using RealModels.ResNet50.Observed observed = resNet.Prepare();
                RunCalibration(observed.forward, calibrationShape, batches);
                int8 = observed.Convert();
                break;
            }

            case RealModels.UNet unet:
            {
                using RealModels.UNet.Observed observed = unet.Prepare();
                RunCalibration(observed.forward, calibrationShape, batches);
                int8 = observed.Convert();
                break;
            }

            case CenterNetHeadExample.CenterNetHead centerNet:
            {
                // The example's own qconfig: its [QConfig] attributes (symmetric qint8 activations, per-channel
                // ConvTranspose2d weights on axis 1).
                using CenterNetHeadExample.CenterNetHead.Observed observed = centerNet.Prepare(CenterNetHeadExample.CenterNetHead.DefaultQConfigMapping());
                RunCalibration(observed.forward, calibrationShape, batches);
                int8 = observed.Convert();
                break;
            }

            default:
                throw new InvalidOperationException($"Unknown model type {model.GetType()}.");
        }

        log?.WriteLine($"  {model.GetType().Name} calibrated on {batches} batches of {string.Join('x', calibrationShape)} (default X86 qconfig, HistogramObserver).");
        return int8;
    }

    private static void RunCalibration(Func<Tensor, Tensor> forward, int[] shape, int batches)
    {
        long[] dims = Array.ConvertAll(shape, d => (long)d);
        using var noGrad = torch.no_grad();
        for (int i = 0; i < batches; i++)
        {
            using Tensor batch = torch.randn(dims);
            forward(batch).Dispose();
        }
    }

    private static void Finish(IQuantizedModel int8, int[] shape, string qgen, string qdq, string fp32, bool reuseSaved)
    {
        if (reuseSaved && AllExist(qgen, qdq, fp32))
        {
            return;
        }

        // Fixed batch 1 in both exports: ORT may specialise on it, as QuantGen's buffers do.
        OnnxExporter.Export(int8, qdq, new OnnxExportOptions { InputShape = shape, DynamicBatch = false });
        OnnxExporter.Export(int8, fp32, new OnnxExportOptions { InputShape = shape, DynamicBatch = false, Form = OnnxForm.Float });
        switch (int8)
        {
            case ResNet18.Quantized resnet:
                resnet.Save(qgen);
                break;
            case FashionCnn.Quantized fashion:
                fashion.Save(qgen);
                break;
            case RealModels.MobileNetV2.Quantized mobileNet:
                mobileNet.Save(qgen);
                break;
            case RealModels.ResNet50.Quantized resNet:
                resNet.Save(qgen);
                break;
            case RealModels.UNet.Quantized unet:
                unet.Save(qgen);
                break;
            case CenterNetHeadExample.CenterNetHead.Quantized centerNet:
                centerNet.Save(qgen);
                break;
            default:
                throw new InvalidOperationException($"Unknown model type {int8.GetType()}.");
        }
    }

    private static bool AllExist(params string[] paths) => Array.TrueForAll(paths, File.Exists);
}
