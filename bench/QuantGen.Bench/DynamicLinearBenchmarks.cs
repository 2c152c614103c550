using System;
using BenchmarkDotNet.Attributes;
using QuantGen.Dynamic;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Bench;

/// <summary>
/// PyTorch's dynamically quantized Linear (<c>quantize_dynamic</c>) at a transformer's sizes — 512→512 (an attention
/// projection) and 768→3072 (BERT-base's feed-forward) — at batch 1 and 16, every peer on 1 thread:
/// QuantGen's <see cref="DynamicQuantizedLinear"/> (span form, no allocation per call, X86 preset), TorchSharp's fp32
/// linear on the same weights, ONNX Runtime on the same layer converted by a bound model and exported
/// (DynamicQuantizeLinear + MatMulInteger, which ORT fuses into DynamicQuantizeMatMul) and ONNX Runtime fp32 (the
/// export's float form: Gemm on the dequantized weights).
/// <c>bash bench/run.sh --bdn --filter '*DynamicLinear*'</c>.
/// </summary>
[Config(typeof(BenchConfig))]
[MemoryDiagnoser]
public class DynamicLinearBenchmarks
{
    private BenchLinear? _model;
    private DynamicQuantizedLinear? _int8;
    private Tensor? _input;
    private float[] _inputValues = [];
    private float[] _output = [];
    private OrtRunner? _ortInt8;
    private OrtRunner? _ortFp32;

    /// <summary>in_features x out_features.</summary>
    [Params("512x512", "768x3072")]
    public string Size { get; set; } = "512x512";

    /// <summary>Rows per call.</summary>
    [Params(1, 16)]
    public int Batch { get; set; }

    /// <summary>Builds the Linear from a fixed seed, quantizes it (X86 preset) and exports it; 1 thread everywhere.</summary>
    [GlobalSetup]
    public void Setup()
    {
        string[] sizes = Size.Split('x');
        int inFeatures = int.Parse(sizes[0], System.Globalization.CultureInfo.InvariantCulture);
        int outFeatures = int.Parse(sizes[1], System.Globalization.CultureInfo.InvariantCulture);
        QuantGenRunner.SetThreads(1);
        TorchRunner.SetThreads(1);
        torch.manual_seed(16);
        _model = new BenchLinear(inFeatures, outFeatures);
        _model.eval();

        // The span-form layer and the exported one quantize the same module with the same qconfig (per-tensor X86).
        _int8 = DynamicQuantizedLinear.FromLinear("BenchLinear", "fc", _model.Layer, QuantBackend.X86);
        int[] shape = [Batch, inFeatures];
        _inputValues = BenchModels.NormalValues(shape, 17);
        _input = torch.tensor(_inputValues, new long[] { Batch, inFeatures });
        _output = new float[Batch * outFeatures];
        using BenchLinear.Observed observed = _model.Prepare(new QConfigMapping(null).SetModuleType("Linear", QConfig.Dynamic()));
        (string int8Path, string fp32Path) = DynamicExports.Export(observed.forward, observed.Convert, _input, $"dynamic-linear-{Size}-b{Batch}", shape);
        long[] outputShape = [Batch, outFeatures];
        _ortInt8 = new OrtRunner(int8Path, 1, _inputValues, shape, _output.Length, outputShape);
        _ortFp32 = new OrtRunner(fp32Path, 1, _inputValues, shape, _output.Length, outputShape);
    }

    /// <summary>Releases the module, the input and the sessions.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _ortInt8?.Dispose();
        _ortFp32?.Dispose();
        _input?.Dispose();
        _model?.Dispose();
    }

    /// <summary>QuantGen dynamic int8 Linear.</summary>
    [Benchmark(Baseline = true, Description = "QuantGen dynamic int8 Linear (float span)")]
    public void Int8Linear() => _int8!.Forward(_inputValues, Batch, _output);

    /// <summary>TorchSharp fp32 linear.</summary>
    [Benchmark(Description = "TorchSharp fp32 Linear")]
    public void FloatLinear()
    {
        using var noGrad = torch.no_grad();
        using Tensor output = _model!.Layer.forward(_input!);
    }

    /// <summary>ONNX Runtime on the dynamic int8 export.</summary>
    [Benchmark(Description = "ORT dynamic int8 (DynamicQuantizeLinear + MatMulInteger)")]
    public void OrtInt8() => _ortInt8!.Run();

    /// <summary>ONNX Runtime on the float export.</summary>
    [Benchmark(Description = "ORT fp32 (Gemm)")]
    public void OrtFp32() => _ortFp32!.Run();
}
