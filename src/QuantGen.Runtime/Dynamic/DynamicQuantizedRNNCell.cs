using System;
using System.Collections.Generic;
using QuantGen.Kernels;
using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>
/// PyTorch's dynamic <c>RNNCell</c> (<c>quantized_rnn_tanh_cell_dynamic</c> / <c>quantized_rnn_relu_cell_dynamic</c>):
/// <c>h' = act(W_ih·x + b_ih + W_hh·h + b_hh)</c> with act tanh or relu — the <c>[batch, input_size]</c> input and the <c>[batch, hidden_size]</c>
/// hidden state each quantized once per call (aten's cell params with reduce_range=True, honoured by the X86 preset
/// only), the gates in float32 (docs/numerics.md §10).
/// </summary>
/// <remarks>
/// A call may run on many threads at once; the span overload allocates nothing in steady state.
/// </remarks>
public sealed class DynamicQuantizedRNNCell
{
    private readonly DynamicRecurrentCore<DynamicQuantizedLinear> _core;

    /// <summary>A dynamic RNN cell over already quantized weights.</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="inputSize">Input features.</param>
    /// <param name="hiddenSize">Hidden features.</param>
    /// <param name="weights">The cell's <c>weight_ih</c> <c>[hidden_size, input_size]</c>, <c>weight_hh</c>, <c>bias_ih</c>, <c>bias_hh</c>.</param>
    /// <param name="nonlinearity">tanh or relu.</param>
    /// <param name="backend">The arithmetic preset.</param>
    /// <param name="kernelConfig">The kernel to pack for and run; null → <see cref="KernelDispatch.Config"/>.</param>
    /// <exception cref="ArgumentException">Inconsistent sizes, weight shapes, qparams or biases (the message names the layer).</exception>
    public DynamicQuantizedRNNCell(string model, string layer, int inputSize, int hiddenSize, RecurrentCellWeights weights, RecurrentNonlinearity nonlinearity, QuantBackend backend, GemmConfig? kernelConfig = null)
    {
        Nonlinearity = nonlinearity;
        _core = DynamicRecurrentCore.Int8(nonlinearity == RecurrentNonlinearity.Relu ? RecurrentCellKind.RnnRelu : RecurrentCellKind.RnnTanh, model, layer, new RecurrentShape(inputSize, hiddenSize), [weights], backend, kernelConfig);
        Model = model;
        Layer = layer;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>tanh or relu.</summary>
    public RecurrentNonlinearity Nonlinearity { get; }

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
    /// Quantizes a TorchSharp <c>RNNCell</c>'s weights as PyTorch's dynamic <c>from_float</c> does (each weight with
    /// its own observer, per-tensor symmetric qint8 or per-channel along the rows; float biases). The module is only
    /// read. TorchSharp does not expose the cell's nonlinearity: give it, or leave it null and it is found by running
    /// the float cell once on an input that drives one pre-activation far below zero (tanh gives about −1, relu 0).
    /// </summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="cell">The float32 cell.</param>
    /// <param name="backend">The arithmetic preset.</param>
    /// <param name="perChannel">One weight scale per row instead of one per weight.</param>
    /// <param name="nonlinearity">The cell's nonlinearity; null → probed.</param>
    /// <exception cref="NotSupportedException">A non-float32 module.</exception>
    /// <exception cref="ArgumentException">Missing or misshapen parameters, non-finite weights, or a nonlinearity that cannot be probed (an all-zero weight_ih).</exception>
    public static DynamicQuantizedRNNCell FromRNNCell(string model, string layer, TorchSharp.Modules.RNNCell cell, QuantBackend backend, bool perChannel = false, RecurrentNonlinearity? nonlinearity = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(cell);
        string name = $"{model}.{layer}";
        (RecurrentShape shape, RecurrentCellWeights weights) = DynamicRecurrentCore.ReadCell(name, "RNNCell", 1, cell, perChannel);
        RecurrentNonlinearity act = nonlinearity ?? ProbeNonlinearity(name, cell, shape);
        return new DynamicQuantizedRNNCell(model, layer, shape.InputSize, shape.HiddenSize, weights, act, backend);
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
    /// TorchSharp's <c>RNNCell.forward</c>: input <c>[batch, input_size]</c> (or unbatched <c>[input_size]</c>) and an
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

    /// <summary>PyTorch's repr: <c>DynamicQuantizedRNNCell(3, 5, nonlinearity=relu)</c>.</summary>
    public override string ToString() =>
        $"DynamicQuantizedRNNCell({InputSize}, {HiddenSize}{(_core.HasBias ? string.Empty : ", bias=False")}{(Nonlinearity == RecurrentNonlinearity.Relu ? ", nonlinearity=relu" : string.Empty)})";

    /// <summary>
    /// Runs the float cell once with h = 0 and x = −s·sign(w)·e_k for weight_ih's largest |w| (row r, column k), s
    /// large enough to put row r's pre-activation below −20 whatever the biases: tanh answers about −1, relu 0.
    /// </summary>
    private static RecurrentNonlinearity ProbeNonlinearity(string name, TorchSharp.Modules.RNNCell cell, RecurrentShape shape)
    {
        var parameters = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach ((string parameterName, TorchSharp.Modules.Parameter parameter) in cell.named_parameters())
        {
            parameters[parameterName] = parameter;
        }

        float[] weight = TensorInterop.ToArray(parameters["weight_ih"], out _);
        int largest = 0;
        for (int i = 1; i < weight.Length; i++)
        {
            if (MathF.Abs(weight[i]) > MathF.Abs(weight[largest]))
            {
                largest = i;
            }
        }

        float w = weight[largest];
        if (w == 0f)
        {
            throw new ArgumentException($"{name}: the RNNCell's weight_ih is all zeros, so its nonlinearity cannot be found by running it; pass nonlinearity.");
        }

        float bias = 0f;
        foreach (string what in new[] { "bias_ih", "bias_hh" })
        {
            if (parameters.TryGetValue(what, out Tensor? b))
            {
                bias += MathF.Abs(TensorInterop.ToArray(b, out _)[largest / shape.InputSize]);
            }
        }

        var x = new float[shape.InputSize];
        x[largest % shape.InputSize] = -MathF.Sign(w) * ((bias + 20f) / MathF.Abs(w));
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        float probed = cell.forward(torch.tensor(x).reshape(1, shape.InputSize), torch.zeros(1, shape.HiddenSize))[0, largest / shape.InputSize].item<float>();
        return probed < -0.5f ? RecurrentNonlinearity.Tanh : RecurrentNonlinearity.Relu;
    }
}
