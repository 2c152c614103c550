using BenchmarkDotNet.Attributes;
using QuantGen.Dynamic;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Bench;

/// <summary>
/// A text-model-sized LSTM and GRU (128 inputs, 256 hidden, one layer, 32 steps) at batch 1 and 16: QuantGen's
/// dynamic int8 layer (span form, no allocation per call) beside TorchSharp's fp32 module on the same weights.
/// Per step the int8 layer runs one hidden-state GEMM of <c>batch</c> rows (the one-row micro-kernel at batch 1):
/// <c>bash bench/run.sh --bdn --filter '*DynamicRecurrent*'</c>.
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

    /// <summary>Sequences per call.</summary>
    [Params(1, 16)]
    public int Batch { get; set; }

    /// <summary>Builds both modules from one seed and quantizes them (X86 preset).</summary>
    [GlobalSetup]
    public void Setup()
    {
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
    }

    /// <summary>Releases the float modules.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
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
