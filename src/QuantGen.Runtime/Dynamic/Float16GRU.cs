using System;
using System.Collections.Generic;
using QuantGen.Kernels;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>
/// PyTorch's float16 dynamic <c>GRU</c> (<c>quantize_dynamic(model, {nn.GRU}, dtype=torch.float16)</c>,
/// <c>float16_dynamic_qconfig</c>): every weight stored as float16, the arithmetic float32. Per layer and direction the
/// whole <c>[seq_len · batch, input]</c> input is projected once and the <c>[batch, hidden_size]</c> hidden state once per
/// step, each by a <see cref="Float16Linear"/>, and the gates r, z, n run in float32 as in the int8
/// <see cref="DynamicQuantizedGRU"/>: <c>n = tanh(W_in·x + b_in + r·(W_hn·h + b_hn))</c>, <c>h' = (h − n)·z + n</c>
/// (docs/numerics.md §10–11).
/// </summary>
/// <remarks>
/// Every forward may run on many threads at once: the working memory is the calling thread's, grown once, so the span
/// overload allocates nothing in steady state and the tensor overload only its results. The layer holds a float32 copy
/// of the float16 weights for the GEMM (see <see cref="Float16Linear"/>). Nothing is quantized, so NaN and infinite
/// inputs pass through as in the float GRU.
/// </remarks>
public sealed class Float16GRU
{
    private readonly DynamicRecurrentCore<Float16Linear> _core;

    /// <summary>A float16-weight GRU over weights already rounded to float16.</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="shape">Sizes and options.</param>
    /// <param name="cells">One entry per (layer, direction), in PyTorch's order: l0, l0_reverse, l1, ... (3 gates per weight row block).</param>
    /// <param name="vectorBits">The GEMM width to pack for (512, 256, 0 for the scalar reference); −1 (default) <see cref="Float32GemmKernel.DefaultVectorBits"/>.</param>
    /// <exception cref="ArgumentException">Inconsistent sizes, weight lengths, non-finite weights or biases (the message names the layer and the cell).</exception>
    public Float16GRU(string model, string layer, RecurrentShape shape, IReadOnlyList<Float16RecurrentCellWeights> cells, int vectorBits = -1)
    {
        _core = DynamicRecurrentCore.Float16(RecurrentCellKind.Gru, model, layer, shape, cells, vectorBits);
        Model = model;
        Layer = layer;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Sizes and options.</summary>
    public RecurrentShape Shape => _core.Shape;

    /// <summary>The input projection (<c>weight_ih</c>, <c>bias_ih</c>) of cell <paramref name="cell"/> = layer · directions + direction.</summary>
    /// <param name="cell">0 .. <see cref="RecurrentShape.Cells"/> − 1.</param>
    public Float16Linear InputProjection(int cell) => _core.InputProjection(cell);

    /// <summary>The hidden projection (<c>weight_hh</c>, <c>bias_hh</c>) of cell <paramref name="cell"/> = layer · directions + direction.</summary>
    /// <param name="cell">0 .. <see cref="RecurrentShape.Cells"/> − 1.</param>
    public Float16Linear HiddenProjection(int cell) => _core.HiddenProjection(cell);

    /// <summary>
    /// A TorchSharp <c>GRU</c> as PyTorch's float16 dynamic <c>from_float</c> makes it: each weight saturated to ±65504
    /// and rounded to float16 (nearest, ties to even), the biases kept in float32. The module is only read (parameters by name).
    /// </summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="module">The float32 GRU.</param>
    /// <param name="batchFirst">The module's batch_first, which TorchSharp does not expose; null → found by running the module once on zeros.</param>
    /// <exception cref="NotSupportedException">A non-float32 module.</exception>
    /// <exception cref="ArgumentException">Missing or misshapen parameters, or non-finite weights (the message names the layer).</exception>
    public static Float16GRU FromGRU(string model, string layer, TorchSharp.Modules.GRU module, bool? batchFirst = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(module);
        string name = $"{model}.{layer}";
        (RecurrentShape shape, Dictionary<string, Tensor> parameters) = DynamicRecurrentCore.ReadShape(name, "GRU", 3, module, batchFirst, probe => module.forward(probe).Item2);
        return new Float16GRU(model, layer, shape, DynamicRecurrentCore.RoundParameters(name, "GRU", 3, shape, parameters));
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
    /// <exception cref="ArgumentException">A length that does not match, or no steps or no sequences (the message names the layer, what was expected and what came).</exception>
    public void Forward(ReadOnlySpan<float> input, int sequenceLength, int batch, ReadOnlySpan<float> h0, Span<float> output, Span<float> hN) =>
        _core.Forward(input, sequenceLength, batch, h0, default, output, hN, default);

    /// <summary>
    /// TorchSharp's <c>GRU.forward</c>: input <c>[seq_len, batch, input_size]</c> (<c>[batch, seq_len, input_size]</c> when
    /// batch_first, or unbatched <c>[seq_len, input_size]</c>) and optional h_0 <c>[num_layers · directions, batch, hidden_size]</c>
    /// to (output, h_n), new float32 tensors.
    /// </summary>
    /// <param name="input">The float input.</param>
    /// <param name="h0">Initial hidden states, or null for zeros.</param>
    /// <exception cref="ArgumentException">A wrong dtype, rank, feature count or state shape, or an empty sequence or batch.</exception>
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

    /// <summary>PyTorch's repr with the weights' dtype: <c>DynamicQuantizedGRU(3, 5, num_layers=2, bidirectional=True, dtype=torch.float16)</c>.</summary>
    public override string ToString() => Float16RecurrentText.Describe("DynamicQuantizedGRU", Shape, _core.HasBias);
}
