using System;
using Microsoft.ML.OnnxRuntime;
using QuantGen.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Bench;

/// <summary>QuantGen's int8 forward in its two public forms, on one prepared model.</summary>
public sealed class QuantGenRunner
{
    private readonly IQuantizedModel _model;
    private readonly float[] _input;
    private readonly int[] _shape;
    private readonly QTensor _quantizedInput;

    /// <summary>Quantizes the model's input once for the QTensor form.</summary>
    public QuantGenRunner(PreparedModel prepared)
    {
        _model = prepared.Int8;
        _input = prepared.Input;
        _shape = prepared.InputShape;
        _quantizedInput = _model.Input.Forward(_input, _shape);
    }

    /// <summary>Sets <see cref="KernelThreads.MaxDegreeOfParallelism"/>.</summary>
    public static void SetThreads(int threads) => KernelThreads.MaxDegreeOfParallelism = threads;

    /// <summary>The int8 region only: <c>forward(QTensor)</c> on an input quantized beforehand (steady state).</summary>
    public QTensor ForwardQTensor() => _model.forward(_quantizedInput);

    /// <summary>Float in, float out (<c>forward(ReadOnlySpan&lt;float&gt;, shape, out shape)</c>): quantize, int8 region, dequantize.</summary>
    public float[] ForwardFloatSpan() => _model.forward(_input, _shape, out _);
}

/// <summary>An ONNX Runtime session on one exported model with preallocated input and output tensors.</summary>
public sealed class OrtRunner : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly OrtValue _input;
    private readonly OrtValue _output;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private readonly OrtValue[] _inputs;
    private readonly OrtValue[] _outputs;

    /// <summary>
    /// Opens <paramref name="path"/> with <c>IntraOpNumThreads = threads</c>, one inter-op thread, sequential
    /// execution and every graph optimisation (for a QDQ model: QLinearConv, QLinearAdd, QGemm ...).
    /// </summary>
    /// <param name="path">The ONNX file.</param>
    /// <param name="threads">ORT's intra-op threads.</param>
    /// <param name="input">The input values, row-major.</param>
    /// <param name="inputShape">The input's shape.</param>
    /// <param name="outputCount">The output's element count.</param>
    /// <param name="outputShape">The output's shape; null takes it from the session (symbolic dimensions as 1).</param>
    public OrtRunner(string path, int threads, float[] input, int[] inputShape, int outputCount, long[]? outputShape = null)
    {
        using var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        _session = new InferenceSession(path, options);
        _inputNames = [.. _session.InputMetadata.Keys];
        _outputNames = [.. _session.OutputMetadata.Keys];
        outputShape ??= Array.ConvertAll(_session.OutputMetadata[_outputNames[0]].Dimensions, d => d < 0 ? 1L : d);
        Output = new float[outputCount];
        _input = OrtValue.CreateTensorValueFromMemory(input, Array.ConvertAll(inputShape, d => (long)d));
        _output = OrtValue.CreateTensorValueFromMemory(Output, outputShape);
        _inputs = [_input];
        _outputs = [_output];
    }

    /// <summary>The output of the last <see cref="Run"/>.</summary>
    public float[] Output { get; }

    /// <summary>ONNX Runtime's version string.</summary>
    public static string Version => OrtEnv.Instance().GetVersionString();

    /// <summary>One inference into the preallocated output.</summary>
    public void Run() => _session.Run(_runOptions, _inputNames, _inputs, _outputNames, _outputs);

    /// <inheritdoc/>
    public void Dispose()
    {
        _input.Dispose();
        _output.Dispose();
        _runOptions.Dispose();
        _session.Dispose();
    }
}

/// <summary>TorchSharp fp32: the float module in eval mode under no_grad.</summary>
public sealed class TorchRunner : IDisposable
{
    private readonly nn.Module<Tensor, Tensor> _model;
    private readonly Tensor _input;

    /// <summary>Wraps the prepared model's float module and input.</summary>
    public TorchRunner(PreparedModel prepared)
    {
        DisableNnpack();
        _model = prepared.FloatModel;
        _model.eval();
        _input = torch.tensor(prepared.Input, Array.ConvertAll(prepared.InputShape, d => (long)d));
    }

    /// <summary>
    /// PyTorch's <c>torch.backends.nnpack.set_flags(False)</c>, which TorchSharp does not expose: NNPACK does not
    /// support this CPU, and libtorch 2.10 tries to initialise it again on every convolution, printing
    /// "Could not initialize NNPACK! Reason: Unsupported hardware." each time (thousands of lines, and the
    /// printing itself distorted the small model's timings). Calls at::globalContext().setUserEnabledNNPACK(false)
    /// in libtorch_cpu; does nothing where the symbols are missing.
    /// </summary>
    public static void DisableNnpack()
    {
        if (s_nnpackDisabled)
        {
            return;
        }

        s_nnpackDisabled = true;
        try
        {
            using var touch = torch.zeros(1); // loads libtorch
            SetUserEnabledNnpack(GlobalContext(), false);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Another libtorch build: keep its default.
        }
    }

    private static bool s_nnpackDisabled;

    [System.Runtime.InteropServices.DllImport("libtorch_cpu", EntryPoint = "_ZN2at13globalContextEv")]
    private static extern IntPtr GlobalContext();

    [System.Runtime.InteropServices.DllImport("libtorch_cpu", EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
    private static extern void SetUserEnabledNnpack(IntPtr context, [System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.U1)] bool enabled);

    /// <summary>Sets libtorch's intra-op threads.</summary>
    public static void SetThreads(int threads) => torch.set_num_threads(threads);

    /// <summary>One forward; the output is disposed.</summary>
    public void Run()
    {
        using var noGrad = torch.no_grad();
        using Tensor output = _model.forward(_input);
    }

    /// <inheritdoc/>
    public void Dispose() => _input.Dispose();
}
