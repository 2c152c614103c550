using System;
using System.Collections.Generic;
using QuantGen.Kernels;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>
/// PyTorch's dynamic <c>LSTMCell</c> (<c>quantized_lstm_cell_dynamic</c>): one step of
/// <see cref="DynamicQuantizedLSTM"/> — the <c>[batch, input_size]</c> input and the <c>[batch, hidden_size]</c>
/// hidden state each quantized once per call (aten's cell params with reduce_range=True, honoured by the X86 preset
/// only), the gates in float32 (docs/numerics.md §10).
/// </summary>
/// <remarks>
/// A call may run on many threads at once; the span overload allocates nothing in steady state.
/// </remarks>
public sealed class DynamicQuantizedLSTMCell
{
    private readonly DynamicRecurrentCore<DynamicQuantizedLinear> _core;

    /// <summary>A dynamic LSTM cell over already quantized weights.</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="inputSize">Input features.</param>
    /// <param name="hiddenSize">Hidden features.</param>
    /// <param name="weights">The cell's <c>weight_ih</c>, <c>weight_hh</c>, <c>bias_ih</c>, <c>bias_hh</c> (4 gates per row block).</param>
    /// <param name="backend">The arithmetic preset.</param>
    /// <param name="kernelConfig">The kernel to pack for and run; null → <see cref="KernelDispatch.Config"/>.</param>
    /// <exception cref="ArgumentException">Inconsistent sizes, weight shapes, qparams or biases (the message names the layer).</exception>
    public DynamicQuantizedLSTMCell(string model, string layer, int inputSize, int hiddenSize, RecurrentCellWeights weights, QuantBackend backend, GemmConfig? kernelConfig = null)
    {
        _core = DynamicRecurrentCore.Int8(RecurrentCellKind.Lstm, model, layer, new RecurrentShape(inputSize, hiddenSize), [weights], backend, kernelConfig);
        Model = model;
        Layer = layer;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Input features.</summary>
    public int InputSize => _core.Shape.InputSize;

    /// <summary>Hidden features.</summary>
    public int HiddenSize => _core.Shape.HiddenSize;

    /// <summary>The arithmetic preset.</summary>
    public QuantBackend Backend => _core.InputProjection(0).Backend;

    /// <summary>The input projection (<c>weight_ih</c>, <c>bias_ih</c>).</summary>
    public DynamicQuantizedLinear InputProjection => _core.InputProjection(0);

    /// <summary>The hidden projection (<c>weight_hh</c>, <c>bias_hh</c>).</summary>
    public DynamicQuantizedLinear HiddenProjection => _core.HiddenProjection(0);

    /// <summary>
    /// Quantizes a TorchSharp <c>LSTMCell</c>'s weights as PyTorch's dynamic <c>from_float</c> does (each weight with
    /// its own observer, per-tensor symmetric qint8 or per-channel along the gate rows; float biases). The module is
    /// only read.
    /// </summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="cell">The float32 cell.</param>
    /// <param name="backend">The arithmetic preset.</param>
    /// <param name="perChannel">One weight scale per gate row instead of one per weight.</param>
    /// <exception cref="NotSupportedException">A non-float32 module.</exception>
    /// <exception cref="ArgumentException">Missing or misshapen parameters, or non-finite weights (the message names the layer).</exception>
    public static DynamicQuantizedLSTMCell FromLSTMCell(string model, string layer, TorchSharp.Modules.LSTMCell cell, QuantBackend backend, bool perChannel = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(cell);
        (RecurrentShape shape, RecurrentCellWeights weights) = DynamicRecurrentCore.ReadCell($"{model}.{layer}", "LSTMCell", 4, cell, perChannel);
        return new DynamicQuantizedLSTMCell(model, layer, shape.InputSize, shape.HiddenSize, weights, backend);
    }

    /// <summary>
    /// One step for <paramref name="batch"/> rows: input <c>[batch, input_size]</c>, states <c>[batch, hidden_size]</c>
    /// (empty <paramref name="h"/> and <paramref name="c"/> mean zeros), new states written to <paramref name="hOut"/>
    /// and <paramref name="cOut"/> (which may not overlap the inputs).
    /// </summary>
    /// <param name="input">The float input.</param>
    /// <param name="batch">Rows, at least 1.</param>
    /// <param name="h">Hidden state, or empty for zeros.</param>
    /// <param name="c">Cell state, or empty for zeros (given exactly when <paramref name="h"/> is).</param>
    /// <param name="hOut">The new hidden state.</param>
    /// <param name="cOut">The new cell state.</param>
    /// <exception cref="ArgumentException">A length that does not match, no rows, or a non-finite value (the message names the layer).</exception>
    public void Forward(ReadOnlySpan<float> input, int batch, ReadOnlySpan<float> h, ReadOnlySpan<float> c, Span<float> hOut, Span<float> cOut) =>
        _core.Forward(input, 1, batch, h, c, hOut, hOut, cOut);

    /// <summary>
    /// TorchSharp's <c>LSTMCell.forward</c>: input <c>[batch, input_size]</c> (or unbatched <c>[input_size]</c>) and optional
    /// (h, c) <c>[batch, hidden_size]</c> to the new (h, c), new float32 tensors.
    /// </summary>
    /// <param name="input">The float input.</param>
    /// <param name="hc">Hidden and cell state, or null for zeros.</param>
    /// <exception cref="ArgumentException">A wrong dtype, rank, feature count or state shape, an empty batch, or a non-finite value.</exception>
    public (Tensor H, Tensor C) Forward(Tensor input, (Tensor H, Tensor C)? hc = null)
    {
        (int batch, bool batched) = _core.CheckCellInput(input);
        float[] h = _core.CellStateValues(hc?.H, "h", batch, batched);
        float[] c = _core.CellStateValues(hc?.C, "c", batch, batched);
        float[] values = TensorInterop.ToArray(input, out _);
        var hOut = new float[batch * HiddenSize];
        var cOut = new float[hOut.Length];
        _core.Forward(values, 1, batch, h, c, hOut, hOut, cOut);
        int[] shape = batched ? [batch, HiddenSize] : [HiddenSize];
        return (TensorInterop.FromArray(hOut, shape), TensorInterop.FromArray(cOut, shape));
    }

    /// <summary>PyTorch's repr: <c>DynamicQuantizedLSTMCell(3, 5)</c>.</summary>
    public override string ToString() => $"DynamicQuantizedLSTMCell({InputSize}, {HiddenSize}{(_core.HasBias ? string.Empty : ", bias=False")})";
}
