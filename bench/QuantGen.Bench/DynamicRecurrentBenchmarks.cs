using BenchmarkDotNet.Attributes;
using QuantGen.Dynamic;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Bench;

/// <summary>
/// A text-model-sized LSTM and GRU (128 inputs, 256 hidden, one layer, 32 steps) at batch 1 and 16, every peer on
/// 1 thread: QuantGen's dynamic int8 layer (span form, no allocation per call) beside TorchSharp's fp32 module on the
/// same weights, and for the LSTM ONNX Runtime on the same layer converted by a bound model and exported —
/// com.microsoft DynamicQuantizeLSTM (int8) and ONNX's LSTM on the dequantized weights (fp32, the export's float
/// form). ORT has no dynamic int8 GRU. Per step the int8 layer runs one hidden-state GEMM of <c>batch</c> rows (the
/// one-row micro-kernel at batch 1): <c>bash bench/run.sh --bdn --filter '*DynamicRecurrent*'</c>.
/// </summary>
[Config(typeof(BenchConfig))]
[MemoryDiagnoser]
public class DynamicRecurrentBenchmarks
{
    private const int InputSize = 128, HiddenSize = 256, SequenceLength = 32;

    private TorchSharp.Modules.LSTM? _floatLstm;
    private TorchSharp.Modules.GRU? _floatGru;
    private DynamicQuantizedLSTM? _lstm;
    private DynamicQuantizedGRU? _gru;
    private Tensor? _input;
    private float[] _inputValues = [];
    private float[] _output = [];
    private float[] _hN = [];
    private float[] _cN = [];
    private BenchLstm? _wrapper;
    private OrtRunner? _ortInt8Lstm;
    private OrtRunner? _ortFp32Lstm;

    /// <summary>Sequences per call.</summary>
    [Params(1, 16)]
    public int Batch { get; set; }

    /// <summary>Builds both modules from one seed, quantizes them (X86 preset) and exports the LSTM; 1 thread everywhere.</summary>
    [GlobalSetup]
    public void Setup()
    {
        QuantGenRunner.SetThreads(1);
        TorchRunner.SetThreads(1);
        torch.manual_seed(15);
        _floatLstm = nn.LSTM(InputSize, HiddenSize);
        _floatGru = nn.GRU(InputSize, HiddenSize);
        _floatLstm.eval();
        _floatGru.eval();
        _lstm = DynamicQuantizedLSTM.FromLSTM("Bench", "lstm", _floatLstm, QuantBackend.X86, batchFirst: false);
        _gru = DynamicQuantizedGRU.FromGRU("Bench", "gru", _floatGru, QuantBackend.X86, batchFirst: false);
        _input = torch.randn(SequenceLength, Batch, InputSize);
        _inputValues = _input.data<float>().ToArray();
        _output = new float[SequenceLength * Batch * HiddenSize];
        _hN = new float[Batch * HiddenSize];
        _cN = new float[Batch * HiddenSize];

        // The ORT peers: the same module in a bound model, converted with the same qconfig (per-tensor X86) and exported.
        int[] shape = [SequenceLength, Batch, InputSize];
        // (The wrapper holds _floatLstm as its member: it is kept, not disposed, so the module stays alive.)
        _wrapper = new BenchLstm(_floatLstm);
        _wrapper.eval();
        using BenchLstm.Observed observed = _wrapper.Prepare(new QConfigMapping(null).SetModuleType("LSTM", QConfig.Dynamic()));
        (string int8Path, string fp32Path) = DynamicExports.Export(observed.forward, observed.Convert, _input, $"dynamic-lstm-b{Batch}", shape);
        long[] outputShape = [SequenceLength, Batch, HiddenSize];
        _ortInt8Lstm = new OrtRunner(int8Path, 1, _inputValues, shape, _output.Length, outputShape);
        _ortFp32Lstm = new OrtRunner(fp32Path, 1, _inputValues, shape, _output.Length, outputShape);
    }

    /// <summary>Releases the float modules.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _ortInt8Lstm?.Dispose();
        _ortFp32Lstm?.Dispose();
        _floatLstm?.Dispose();
        _floatGru?.Dispose();
        _input?.Dispose();
    }

    /// <summary>QuantGen dynamic int8 LSTM.</summary>
    [Benchmark(Baseline = true, Description = "QuantGen dynamic int8 LSTM (float span)")]
    public void Int8Lstm() => _lstm!.Forward(_inputValues, SequenceLength, Batch, default, default, _output, _hN, _cN);

    /// <summary>TorchSharp fp32 LSTM.</summary>
    [Benchmark(Description = "TorchSharp fp32 LSTM")]
    public void FloatLstm()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        _ = _floatLstm!.forward(_input!);
    }

    /// <summary>ONNX Runtime on the dynamic int8 export.</summary>
    [Benchmark(Description = "ORT dynamic int8 LSTM (DynamicQuantizeLSTM)")]
    public void OrtInt8Lstm() => _ortInt8Lstm!.Run();

    /// <summary>ONNX Runtime on the float export.</summary>
    [Benchmark(Description = "ORT fp32 LSTM")]
    public void OrtFp32Lstm() => _ortFp32Lstm!.Run();

    /// <summary>QuantGen dynamic int8 GRU.</summary>
    [Benchmark(Description = "QuantGen dynamic int8 GRU (float span)")]
    public void Int8Gru() => _gru!.Forward(_inputValues, SequenceLength, Batch, default, _output, _hN);

    /// <summary>TorchSharp fp32 GRU.</summary>
    [Benchmark(Description = "TorchSharp fp32 GRU")]
    public void FloatGru()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        _ = _floatGru!.forward(_input!);
    }
}
