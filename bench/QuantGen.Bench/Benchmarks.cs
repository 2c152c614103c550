using System;
using System.Collections.Generic;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using QuantGen.Kernels;
using ResNet18Example;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Bench;

/// <summary>
/// The BenchmarkDotNet job of every class here: BenchmarkDotNet's default job, or with
/// <c>QUANTGEN_BENCH_JOB=quick</c> a medium one (3 warm-up and 10 measured iterations, one launch), or with
/// <c>QUANTGEN_BENCH_JOB=dry</c> BenchmarkDotNet's Dry job (one cold call: a smoke test that a class runs, no
/// timing; <c>--job dry</c> on the command line would add it beside the class's job, not replace it). Read from
/// the environment rather than the command line so that the scalar class keeps its own job alone.
/// </summary>
public class BenchConfig : ManualConfig
{
    /// <summary>The environment variable choosing the job: <c>quick</c>, <c>dry</c> or unset.</summary>
    public const string JobVariable = "QUANTGEN_BENCH_JOB";

    /// <summary>Adds the job and the memory diagnoser.</summary>
    public BenchConfig()
    {
        AddJob(BaseJob().WithId(IsDry ? "Dry" : IsQuick ? "Quick" : "Default"));
        AddDiagnoser(BenchmarkDotNet.Diagnosers.MemoryDiagnoser.Default);
        AddColumn(BenchmarkDotNet.Columns.StatisticColumn.Median);
    }

    /// <summary>True with <c>QUANTGEN_BENCH_JOB=quick</c>.</summary>
    public static bool IsQuick => string.Equals(Environment.GetEnvironmentVariable(JobVariable), "quick", StringComparison.OrdinalIgnoreCase);

    /// <summary>True with <c>QUANTGEN_BENCH_JOB=dry</c>.</summary>
    public static bool IsDry => string.Equals(Environment.GetEnvironmentVariable(JobVariable), "dry", StringComparison.OrdinalIgnoreCase);

    /// <summary>The default job, the quick one or the dry one.</summary>
    protected static Job BaseJob() => IsDry ? Job.Dry
        : IsQuick ? Job.Default.WithWarmupCount(3).WithIterationCount(10).WithLaunchCount(1)
        : Job.Default;
}

/// <summary>
/// The scalar reference's job: the same, plus <c>QUANTGEN_ISA=scalar</c> in the benchmark process (the
/// dispatch is chosen once at start-up) and few iterations of one call each (a scalar ResNet-18 forward takes
/// seconds).
/// </summary>
public sealed class ScalarBenchConfig : ManualConfig
{
    /// <summary>Adds the job and the memory diagnoser.</summary>
    public ScalarBenchConfig()
    {
        AddJob(Job.Default
            .WithEnvironmentVariables(new EnvironmentVariable(KernelDispatch.OverrideVariable, "scalar"))
            .WithWarmupCount(2).WithIterationCount(10).WithLaunchCount(1)
            .WithInvocationCount(1).WithUnrollFactor(1)
            .WithId("Scalar"));
        AddDiagnoser(BenchmarkDotNet.Diagnosers.MemoryDiagnoser.Default);
        AddColumn(BenchmarkDotNet.Columns.StatisticColumn.Median);
    }
}

/// <summary>Batch-1 forward of one model: QuantGen int8 (both forms), ORT int8 and fp32, TorchSharp fp32.</summary>
[Config(typeof(BenchConfig))]
[MemoryDiagnoser]
public abstract class ModelForwardBenchmarks
{
    private PreparedModel? _prepared;
    private QuantGenRunner? _quantgen;
    private OrtRunner? _ortInt8;
    private OrtRunner? _ortFp32;
    private TorchRunner? _torch;

    /// <summary>Threads for every peer (QuantGen's degree of parallelism, ORT's intra-op threads, libtorch's threads).</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>Which model.</summary>
    protected abstract BenchModel Model { get; }

    /// <summary>Loads (or prepares) the model and opens the sessions.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _prepared = BenchModels.Prepare(Model, reuseSaved: true);
        _quantgen = new QuantGenRunner(_prepared);
        int outputs = _quantgen.ForwardFloatSpan().Length;
        QuantGenRunner.SetThreads(Threads);
        TorchRunner.SetThreads(Threads);
        _ortInt8 = new OrtRunner(_prepared.QdqOnnxPath, Threads, _prepared.Input, _prepared.InputShape, outputs);
        _ortFp32 = new OrtRunner(_prepared.FloatOnnxPath, Threads, _prepared.Input, _prepared.InputShape, outputs);
        _torch = new TorchRunner(_prepared);
    }

    /// <summary>Closes the sessions.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _ortInt8?.Dispose();
        _ortFp32?.Dispose();
        _torch?.Dispose();
        _prepared?.Dispose();
    }

    /// <summary>QuantGen int8, float in / float out.</summary>
    [Benchmark(Baseline = true, Description = "QuantGen int8 (float span)")]
    public float[] QuantGenFloatSpan() => _quantgen!.ForwardFloatSpan();

    /// <summary>QuantGen int8, <c>forward(QTensor)</c> steady state.</summary>
    [Benchmark(Description = "QuantGen int8 (QTensor)")]
    public QTensor QuantGenQTensor() => _quantgen!.ForwardQTensor();

    /// <summary>ONNX Runtime on the QDQ export.</summary>
    [Benchmark(Description = "ORT int8 (QDQ)")]
    public void OrtInt8() => _ortInt8!.Run();

    /// <summary>ONNX Runtime on the float export.</summary>
    [Benchmark(Description = "ORT fp32")]
    public void OrtFp32() => _ortFp32!.Run();

    /// <summary>TorchSharp fp32.</summary>
    [Benchmark(Description = "TorchSharp fp32")]
    public void TorchSharpFp32() => _torch!.Run();
}

/// <summary>ResNet-18, 1×3×224×224.</summary>
public class ResNet18Forward : ModelForwardBenchmarks
{
    /// <inheritdoc/>
    protected override BenchModel Model => BenchModel.ResNet18;
}

/// <summary>FashionCnn, 1×1×28×28.</summary>
public class FashionCnnForward : ModelForwardBenchmarks
{
    /// <inheritdoc/>
    protected override BenchModel Model => BenchModel.FashionCnn;
}

/// <summary>QuantGen's scalar reference (own process with <c>QUANTGEN_ISA=scalar</c>).</summary>
[Config(typeof(ScalarBenchConfig))]
[MemoryDiagnoser]
public class ScalarForward
{
    private PreparedModel? _prepared;
    private QuantGenRunner? _quantgen;

    /// <summary>Which model.</summary>
    [Params(BenchModel.ResNet18, BenchModel.FashionCnn)]
    public BenchModel Model { get; set; }

    /// <summary>QuantGen's degree of parallelism (the scalar convolutions run on the calling thread either way).</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>Loads the saved model, packed now for the scalar reference.</summary>
    [GlobalSetup]
    public void Setup()
    {
        if (KernelDispatch.Isa != KernelIsa.Scalar)
        {
            throw new InvalidOperationException($"ScalarForward needs {KernelDispatch.OverrideVariable}=scalar; the kernels are {KernelDispatch.Isa}.");
        }

        _prepared = BenchModels.Prepare(Model, reuseSaved: true);
        _quantgen = new QuantGenRunner(_prepared);
        QuantGenRunner.SetThreads(Threads);
    }

    /// <summary>Releases the float model.</summary>
    [GlobalCleanup]
    public void Cleanup() => _prepared?.Dispose();

    /// <summary><c>forward(QTensor)</c> on the scalar kernels.</summary>
    [Benchmark(Description = "QuantGen scalar (QTensor)")]
    public QTensor QuantGenScalar() => _quantgen!.ForwardQTensor();
}

/// <summary>The dispatched int8 GEMM and convolution on ResNet-18's shapes, and the vpdpbusd peak loop.</summary>
[Config(typeof(BenchConfig))]
[MemoryDiagnoser]
public class GemmBenchmarks
{
    private GemmCase? _case;

    /// <summary>The ResNet-18 layers.</summary>
    public static IEnumerable<GemmShape> Shapes => GemmShape.ResNet18;

    /// <summary>The shape.</summary>
    [ParamsSource(nameof(Shapes))]
    public GemmShape Shape { get; set; } = GemmShape.ResNet18[0];

    /// <summary>QuantGen's degree of parallelism.</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>Packs the weights.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _case = new GemmCase(Shape);
        QuantGenRunner.SetThreads(Threads);
    }

    /// <summary>GEMM on direct rows (GOPS = 2·M·N·K / time).</summary>
    [Benchmark(Description = "GEMM")]
    public void Gemm() => _case!.RunGemm();

    /// <summary>The convolution of the same shape.</summary>
    [Benchmark(Description = "Conv2d")]
    public void Conv() => _case!.RunConv();
}

/// <summary>
/// The AVX-VNNI GEMM and convolution on ResNet-18's shapes with the managed 256-bit micro-kernels and with the
/// 512-bit ones generated at run time (same panels, same results): <c>bash bench/run.sh --bdn --filter '*GeneratedGemm*'</c>.
/// Needs a CPU with AVX-VNNI and AVX-512 VNNI; elsewhere the setup says which kernel cannot run.
/// </summary>
[Config(typeof(BenchConfig))]
[MemoryDiagnoser]
public class GeneratedGemmBenchmarks
{
    private GemmCase? _case;

    /// <summary>The ResNet-18 layers.</summary>
    public static IEnumerable<GemmShape> Shapes => GemmShape.ResNet18;

    /// <summary>The shape.</summary>
    [ParamsSource(nameof(Shapes))]
    public GemmShape Shape { get; set; } = GemmShape.ResNet18[0];

    /// <summary>"managed" (GemmAvxVnni) or "generated" (GemmAvx512VnniGenerated).</summary>
    [Params("managed", "generated")]
    public string Kernel { get; set; } = "managed";

    /// <summary>QuantGen's degree of parallelism.</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>Packs the weights for the chosen kernel; refuses one that cannot run here.</summary>
    [GlobalSetup]
    public void Setup()
    {
        GemmConfig config = Kernel == "generated" ? GemmConfig.AvxVnniGenerated : GemmConfig.AvxVnni;
        if (!config.IsSupported)
        {
            throw new PlatformNotSupportedException($"{config.Name} does not run here: {QuantGen.Kernels.X86.Generated.GemmAvx512VnniGenerated.Status}; {KernelDispatch.KernelInfo}");
        }

        _case = new GemmCase(Shape, config);
        QuantGenRunner.SetThreads(Threads);
    }

    /// <summary>GEMM on direct rows (GOPS = 2·M·N·K / time).</summary>
    [Benchmark(Description = "GEMM")]
    public void Gemm() => _case!.RunGemm();

    /// <summary>The convolution of the same shape (per-tap pointers or kernel-row runs where they apply).</summary>
    [Benchmark(Description = "Conv2d")]
    public void Conv() => _case!.RunConv();
}

/// <summary>The register-only vpdpbusd loop: 12 × 10⁷ instructions per call (GOPS = 2·32·1.2·10⁸ / time).</summary>
[Config(typeof(BenchConfig))]
public class VnniPeakBenchmark
{
    /// <summary>Iterations of the 12-instruction loop per call.</summary>
    public const long Iterations = 10_000_000;

    /// <summary>One call.</summary>
    [Benchmark(Description = "vpdpbusd peak loop (1.2e8 instructions)")]
    public void Peak() => VnniPeak.Loop(Iterations);
}

/// <summary>Calibration speed: ResNet-18's observed forward (HistogramObserver, default X86 qconfig) vs the float forward.</summary>
[Config(typeof(BenchConfig))]
[MemoryDiagnoser]
public class CalibrationBenchmarks
{
    private ResNet18? _model;
    private ResNet18.Observed? _observed;
    private Tensor? _input;

    /// <summary>libtorch's threads.</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>Builds the model and prepares it.</summary>
    [GlobalSetup]
    public void Setup()
    {
        TorchRunner.DisableNnpack();
        torch.manual_seed(0);
        _model = new ResNet18();
        Randomize.BatchNormStatistics(_model, 0);
        _model.eval();
        _observed = _model.Prepare();
        _input = torch.tensor(BenchModels.NormalValues([1, 3, 224, 224], 1), [1, 3, 224, 224]);
        TorchRunner.SetThreads(Threads);
    }

    /// <summary>Releases the model.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _observed?.Dispose();
        _model?.Dispose();
        _input?.Dispose();
    }

    /// <summary>The float model.</summary>
    [Benchmark(Baseline = true, Description = "float forward")]
    public void Float()
    {
        using var noGrad = torch.no_grad();
        _model!.forward(_input!).Dispose();
    }

    /// <summary>The observed model (every activation into a HistogramObserver).</summary>
    [Benchmark(Description = "Observed.forward (HistogramObserver)")]
    public void Observed()
    {
        using var noGrad = torch.no_grad();
        _observed!.forward(_input!).Dispose();
    }
}

/// <summary>
/// One training step (forward, cross-entropy, backward, Adam step) of FashionCnn at batch 128: the float model against its
/// QAT form (<c>PrepareQat()</c>, PyTorch's x86 QAT qconfig: fake quant on every activation and weight, conv-bn trained
/// as ConvBn2d). Issue 14's goal: at most 1.5× the float step.
/// </summary>
[Config(typeof(BenchConfig))]
[MemoryDiagnoser]
public class QatTrainingStepBenchmarks
{
    private const int Batch = 128;
    private FashionMnist.FashionCnn? _floatModel;
    private FashionMnist.FashionCnn? _qatModel;
    private FashionMnist.FashionCnn.Qat? _qat;
    private torch.optim.Optimizer? _floatOptimizer;
    private torch.optim.Optimizer? _qatOptimizer;
    private Tensor? _images;
    private Tensor? _labels;

    /// <summary>libtorch's threads.</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>Two models with the same initial weights, one prepared for QAT, and a fixed batch.</summary>
    [GlobalSetup]
    public void Setup()
    {
        TorchRunner.DisableNnpack();
        TorchRunner.SetThreads(Threads);
        torch.manual_seed(0);
        _floatModel = new FashionMnist.FashionCnn();
        _floatModel.train();
        torch.manual_seed(0);
        _qatModel = new FashionMnist.FashionCnn();
        _qat = _qatModel.PrepareQat();
        _floatOptimizer = torch.optim.Adam(_floatModel.parameters(), 1e-4);
        _qatOptimizer = torch.optim.Adam(_qat.parameters(), 1e-4);
        _images = torch.tensor(BenchModels.NormalValues([Batch, 1, 28, 28], 3), [Batch, 1, 28, 28]);
        _labels = torch.randint(0, 10, [Batch], ScalarType.Int64);
    }

    /// <summary>Releases the models.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _floatOptimizer?.Dispose();
        _qatOptimizer?.Dispose();
        _qat?.Dispose();
        _qatModel?.Dispose();
        _floatModel?.Dispose();
        _images?.Dispose();
        _labels?.Dispose();
    }

    /// <summary>A float training step.</summary>
    [Benchmark(Baseline = true, Description = "float training step")]
    public void Float() => Step(_floatModel!, _floatOptimizer!);

    /// <summary>A QAT training step.</summary>
    [Benchmark(Description = "QAT training step")]
    public void Qat() => Step(_qat!, _qatOptimizer!);

    private void Step(torch.nn.Module<Tensor, Tensor> model, torch.optim.Optimizer optimizer)
    {
        using var scope = torch.NewDisposeScope();
        Tensor loss = torch.nn.functional.cross_entropy(model.forward(_images!), _labels!);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
    }
}
