using System;
using System.Collections.Generic;
using QuantGen.Kernels;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>
/// PyTorch's dynamic <c>GRUCell</c> (<c>quantized_gru_cell_dynamic</c>): one step of
/// <see cref="DynamicQuantizedGRU"/> — the <c>[batch, input_size]</c> input and the <c>[batch, hidden_size]</c>
/// hidden state each quantized once per call (aten's cell params with reduce_range=True, honoured by the X86 preset
/// only), the gates in float32 (docs/numerics.md §10).
/// </summary>
/// <remarks>
/// A call may run on many threads at once; the span overload allocates nothing in steady state.
/// </remarks>
public sealed class DynamicQuantizedGRUCell
{
    private readonly DynamicRecurrentCore<DynamicQuantizedLinear> _core;

    /// <summary>A dynamic GRU cell over already quantized weights.</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="inputSize">Input features.</param>
    /// <param name="hiddenSize">Hidden features.</param>
    /// <param name="weights">The cell's <c>weight_ih</c>, <c>weight_hh</c>, <c>bias_ih</c>, <c>bias_hh</c> (3 gates per row block).</param>
    /// <param name="backend">The arithmetic preset.</param>
    /// <param name="kernelConfig">The kernel to pack for and run; null → <see cref="KernelDispatch.Config"/>.</param>
    /// <exception cref="ArgumentException">Inconsistent sizes, weight shapes, qparams or biases (the message names the layer).</exception>
    public DynamicQuantizedGRUCell(string model, string layer, int inputSize, int hiddenSize, RecurrentCellWeights weights, QuantBackend backend, GemmConfig? kernelConfig = null)
    {
        _core = DynamicRecurrentCore.Int8(RecurrentCellKind.Gru, model, layer, new RecurrentShape(inputSize, hiddenSize), [weights], backend, kernelConfig);
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
    /// Quantizes a TorchSharp <c>GRUCell</c>'s weights as PyTorch's dynamic <c>from_float</c> does (each weight with
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
    public static DynamicQuantizedGRUCell FromGRUCell(string model, string layer, TorchSharp.Modules.GRUCell cell, QuantBackend backend, bool perChannel = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(cell);
        (RecurrentShape shape, RecurrentCellWeights weights) = DynamicRecurrentCore.ReadCell($"{model}.{layer}", "GRUCell", 3, cell, perChannel);
        return new DynamicQuantizedGRUCell(model, layer, shape.InputSize, shape.HiddenSize, weights, backend);
    }

    /// <summary>
    /// One step for <paramref name="batch"/> rows: input <c>[batch, input_size]</c>, hidden state <c>[batch, hidden_size]</c>
    /// (empty means zeros), the new hidden state written to <paramref name="hOut"/> (which may not overlap the inputs).
    /// </summary>
    /// <param name="input">The float input.</param>
    /// <param name="batch">Rows, at least 1.</param>
    /// <param name="h">Hidden state, or empty for zeros.</param>
    /// <param name="hOut">The new hidden state.</param>
    /// <exception cref="ArgumentException">A length that does not match, no rows, or a non-finite value (the message names the layer).</exception>
    public void Forward(ReadOnlySpan<float> input, int batch, ReadOnlySpan<float> h, Span<float> hOut) =>
        _core.Forward(input, 1, batch, h, default, hOut, hOut, default);

    /// <summary>
    /// TorchSharp's <c>GRUCell.forward</c>: input <c>[batch, input_size]</c> (or unbatched <c>[input_size]</c>) and an
    /// optional hidden state <c>[batch, hidden_size]</c> to the new hidden state, a new float32 tensor.
    /// </summary>
    /// <param name="input">The float input.</param>
    /// <param name="h">Hidden state, or null for zeros.</param>
    /// <exception cref="ArgumentException">A wrong dtype, rank, feature count or state shape, an empty batch, or a non-finite value.</exception>
    public Tensor Forward(Tensor input, Tensor? h = null)
    {
        (int batch, bool batched) = _core.CheckCellInput(input);
        float[] state = _core.CellStateValues(h, "h", batch, batched);
        float[] values = TensorInterop.ToArray(input, out _);
        var hOut = new float[batch * HiddenSize];
        _core.Forward(values, 1, batch, state, default, hOut, hOut, default);
        return TensorInterop.FromArray(hOut, batched ? [batch, HiddenSize] : [HiddenSize]);
    }

    /// <summary>PyTorch's repr: <c>DynamicQuantizedGRUCell(3, 5)</c>.</summary>
    public override string ToString() => $"DynamicQuantizedGRUCell({InputSize}, {HiddenSize}{(_core.HasBias ? string.Empty : ", bias=False")})";
}
