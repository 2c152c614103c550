using System;
using System.Collections.Generic;
using System.Text;
using QuantGen.Kernels;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>
/// PyTorch's dynamic <c>GRU</c> (<c>quantize_dynamic(model, {nn.GRU})</c>, <c>torch.ao.nn.quantized.dynamic.GRU</c>):
/// float in, float out, qint8 weights packed once, gates r, z, n; <c>n = tanh(W_in·x + b_in + r·(W_hn·h + b_hn))</c>, <c>h' = (h − n)·z + n</c>, in float32. As aten's CPU path does, each layer
/// and direction quantizes its whole <c>[seq_len · batch, input]</c> input once (one dynamic linear over the sequence)
/// and the <c>[batch, hidden_size]</c> hidden state once per step; docs/numerics.md §10 writes out the arithmetic.
/// </summary>
/// <remarks>
/// Every forward may run on many threads at once: the working memory is the calling thread's, grown once, so the
/// span overload allocates nothing in steady state and the tensor overload only its results.
/// </remarks>
public sealed class DynamicQuantizedGRU
{
    private readonly DynamicRecurrentCore<DynamicQuantizedLinear> _core;

    /// <summary>A dynamic GRU over already quantized weights.</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="shape">Sizes and options.</param>
    /// <param name="cells">One entry per (layer, direction), in PyTorch's order: l0, l0_reverse, l1, ... (3 gates per weight row block).</param>
    /// <param name="backend">The arithmetic preset of the dynamic linears (docs/numerics.md §8).</param>
    /// <param name="kernelConfig">The kernel to pack for and run; null → <see cref="KernelDispatch.Config"/>.</param>
    /// <exception cref="ArgumentException">Inconsistent sizes, weight shapes, qparams or biases (the message names the layer and the cell).</exception>
    public DynamicQuantizedGRU(string model, string layer, RecurrentShape shape, IReadOnlyList<RecurrentCellWeights> cells, QuantBackend backend, GemmConfig? kernelConfig = null)
    {
        _core = DynamicRecurrentCore.Int8(RecurrentCellKind.Gru, model, layer, shape, cells, backend, kernelConfig);
        Model = model;
        Layer = layer;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Sizes and options.</summary>
    public RecurrentShape Shape => _core.Shape;

    /// <summary>The arithmetic preset.</summary>
    public QuantBackend Backend => _core.InputProjection(0).Backend;

    /// <summary>The kernel the weights are packed for.</summary>
    public GemmConfig KernelConfig => _core.InputProjection(0).KernelConfig;

    /// <summary>The input projection (<c>weight_ih</c>, <c>bias_ih</c>) of cell <paramref name="cell"/> = layer · directions + direction.</summary>
    /// <param name="cell">0 .. <see cref="RecurrentShape.Cells"/> − 1.</param>
    public DynamicQuantizedLinear InputProjection(int cell) => _core.InputProjection(cell);

    /// <summary>The hidden projection (<c>weight_hh</c>, <c>bias_hh</c>) of cell <paramref name="cell"/> = layer · directions + direction.</summary>
    /// <param name="cell">0 .. <see cref="RecurrentShape.Cells"/> − 1.</param>
    public DynamicQuantizedLinear HiddenProjection(int cell) => _core.HiddenProjection(cell);

    /// <summary>
    /// Quantizes a TorchSharp <c>GRU</c>'s weights as PyTorch's dynamic <c>from_float</c> does: each weight with its own
    /// observer, per-tensor symmetric qint8 (<c>default_dynamic_qconfig</c>) or, with <paramref name="perChannel"/>,
    /// per-channel along the gate rows; the biases stay float. The module is only read (parameters by name).
    /// </summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="module">The float32 GRU.</param>
    /// <param name="backend">The arithmetic preset.</param>
    /// <param name="perChannel">One weight scale per gate row instead of one per weight.</param>
    /// <param name="batchFirst">The module's batch_first, which TorchSharp does not expose; null → found by running the module once on zeros.</param>
    /// <exception cref="NotSupportedException">A non-float32 module, or an LSTM with projections.</exception>
    /// <exception cref="ArgumentException">Missing or misshapen parameters, or non-finite weights (the message names the layer).</exception>
    public static DynamicQuantizedGRU FromGRU(string model, string layer, TorchSharp.Modules.GRU module, QuantBackend backend, bool perChannel = false, bool? batchFirst = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(module);
        string name = $"{model}.{layer}";
        (RecurrentShape shape, Dictionary<string, Tensor> parameters) = DynamicRecurrentCore.ReadShape(name, "GRU", 3, module, batchFirst, probe => module.forward(probe).Item2);
        RecurrentCellWeights[] cells = DynamicRecurrentCore.QuantizeParameters(name, "GRU", 3, shape, parameters, perChannel);
        return new DynamicQuantizedGRU(model, layer, shape, cells, backend);
    }

    /// <summary>
    /// Runs the GRU over <paramref name="input"/> (<c>[seq_len, batch, input_size]</c>, or <c>[batch, seq_len, input_size]</c>
    /// when batch_first), writing <paramref name="output"/> (same layout, directions · hidden_size features) and the
    /// final hidden states <c>[num_layers · directions, batch, hidden_size]</c>. An empty <paramref name="h0"/> means zeros.
    /// Allocates nothing once the calling thread's scratch has grown to the size.
    /// </summary>
    /// <param name="input">The float input, row-major in the layout above.</param>
    /// <param name="sequenceLength">Steps, at least 1.</param>
    /// <param name="batch">Sequences, at least 1.</param>
    /// <param name="h0">Initial hidden states, or empty for zeros.</param>
    /// <param name="output">The last layer's hidden state at every step.</param>
    /// <param name="hN">Every cell's final hidden state.</param>
    /// <exception cref="ArgumentException">A length that does not match, no steps or no sequences, or a non-finite value (the message names the layer, what was expected and what came).</exception>
    public void Forward(ReadOnlySpan<float> input, int sequenceLength, int batch, ReadOnlySpan<float> h0, Span<float> output, Span<float> hN) =>
        _core.Forward(input, sequenceLength, batch, h0, default, output, hN, default);

    /// <summary>
    /// TorchSharp's <c>GRU.forward</c>: input <c>[seq_len, batch, input_size]</c> (<c>[batch, seq_len, input_size]</c> when
    /// batch_first, or unbatched <c>[seq_len, input_size]</c>) and optional h_0 <c>[num_layers · directions, batch, hidden_size]</c>
    /// to (output, h_n), new float32 tensors.
    /// </summary>
    /// <param name="input">The float input.</param>
    /// <param name="h0">Initial hidden states, or null for zeros.</param>
    /// <exception cref="ArgumentException">A wrong dtype, rank, feature count or state shape, an empty sequence or batch, or a non-finite value.</exception>
    public (Tensor Output, Tensor HN) Forward(Tensor input, Tensor? h0 = null)
    {
        (int sequenceLength, int batch, bool batched) = _core.CheckTensorInput(input);
        float[] initial = _core.StateValues(h0, "h_0", batch, batched);
        float[] values = TensorInterop.ToArray(input, out int[] shape);
        RecurrentShape s = Shape;
        var output = new float[sequenceLength * batch * s.OutputSize];
        var hN = new float[s.Cells * batch * s.HiddenSize];
        _core.Forward(values, sequenceLength, batch, initial, default, output, hN, default);
        shape[^1] = s.OutputSize;
        int[] stateShape = batched ? [s.Cells, batch, s.HiddenSize] : [s.Cells, s.HiddenSize];
        return (TensorInterop.FromArray(output, shape), TensorInterop.FromArray(hN, stateShape));
    }

    /// <summary>PyTorch's repr: <c>DynamicGRU(3, 5, num_layers=2, bidirectional=True)</c>.</summary>
    public override string ToString()
    {
        RecurrentShape s = Shape;
        var text = new StringBuilder("DynamicQuantizedGRU(").Append(s.InputSize).Append(", ").Append(s.HiddenSize);
        if (s.NumLayers != 1)
        {
            text.Append(", num_layers=").Append(s.NumLayers);
        }

        if (!_core.HasBias)
        {
            text.Append(", bias=False");
        }

        if (s.BatchFirst)
        {
            text.Append(", batch_first=True");
        }

        if (s.Bidirectional)
        {
            text.Append(", bidirectional=True");
        }

        return text.Append(')').ToString();
    }
}
