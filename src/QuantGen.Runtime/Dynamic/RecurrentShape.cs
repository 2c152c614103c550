using System;

namespace QuantGen.Dynamic;

/// <summary>
/// The sizes and options of a multi-layer recurrent module (PyTorch's <c>input_size</c>, <c>hidden_size</c>,
/// <c>num_layers</c>, <c>bidirectional</c>, <c>batch_first</c>).
/// </summary>
/// <param name="InputSize">Features of each input step.</param>
/// <param name="HiddenSize">Features of the hidden (and, for an LSTM, cell) state.</param>
/// <param name="NumLayers">Stacked layers; layer k &gt; 0 reads layer k − 1's output.</param>
/// <param name="Bidirectional">A second direction per layer runs from the last step to the first; the output concatenates both.</param>
/// <param name="BatchFirst">Input and output are <c>[batch, seq, feature]</c> instead of <c>[seq, batch, feature]</c> (the states are not affected).</param>
public sealed record RecurrentShape(int InputSize, int HiddenSize, int NumLayers = 1, bool Bidirectional = false, bool BatchFirst = false)
{
    /// <summary>1 or 2.</summary>
    public int Directions => Bidirectional ? 2 : 1;

    /// <summary>Features of each output step: <c>Directions · HiddenSize</c>.</summary>
    public int OutputSize => Directions * HiddenSize;

    /// <summary>The number of (layer, direction) cells: <c>NumLayers · Directions</c>, the first dimension of h_0 and h_n.</summary>
    public int Cells => NumLayers * Directions;

    /// <summary>Input features of layer <paramref name="layer"/>'s cells.</summary>
    /// <param name="layer">0 .. NumLayers − 1.</param>
    public int LayerInputSize(int layer) => layer == 0 ? InputSize : OutputSize;

    /// <summary>PyTorch's parameter suffix of a cell: <c>l0</c>, <c>l0_reverse</c>, <c>l1</c>...</summary>
    /// <param name="cell">layer · Directions + direction.</param>
    public string CellSuffix(int cell) => $"l{cell / Directions}{(cell % Directions == 1 ? "_reverse" : string.Empty)}";

    /// <summary>Throws an <see cref="ArgumentException"/> naming <paramref name="name"/> when a size is not positive.</summary>
    internal void Validate(string name)
    {
        if (InputSize < 1 || HiddenSize < 1 || NumLayers < 1)
        {
            throw new ArgumentException($"{name}: input_size ({InputSize}), hidden_size ({HiddenSize}) and num_layers ({NumLayers}) must be positive.");
        }

        // Every buffer size below is computed in int; refuse shapes whose per-step sizes already overflow.
        _ = checked(4 * OutputSize * Math.Max(InputSize, OutputSize));
    }

    /// <summary>The shape as text for errors: <c>input_size=3, hidden_size=5, num_layers=2, bidirectional=True</c>.</summary>
    internal string Describe() =>
        $"input_size={InputSize}, hidden_size={HiddenSize}, num_layers={NumLayers}, bidirectional={Python(Bidirectional)}, batch_first={Python(BatchFirst)}";

    private static string Python(bool value) => value ? "True" : "False";
}

/// <summary>
/// One (layer, direction) cell's parameters, as PyTorch names them (<c>weight_ih_l0</c>, <c>weight_hh_l0</c>,
/// <c>bias_ih_l0</c>, <c>bias_hh_l0</c>, and <c>_reverse</c> for the second direction).
/// </summary>
/// <param name="WeightIh">qint8 <c>[gates · hidden_size, layer input size]</c>, per-tensor or per-channel along axis 0.</param>
/// <param name="WeightHh">qint8 <c>[gates · hidden_size, hidden_size]</c>, per-tensor or per-channel along axis 0.</param>
/// <param name="BiasIh">Float <c>[gates · hidden_size]</c>, or null (bias=False).</param>
/// <param name="BiasHh">Float <c>[gates · hidden_size]</c>, or null (bias=False).</param>
public sealed record RecurrentCellWeights(QTensor WeightIh, QTensor WeightHh, float[]? BiasIh, float[]? BiasHh);

/// <summary>
/// One (layer, direction) cell's parameters for <see cref="Float16LSTM"/> / <see cref="Float16GRU"/>, as PyTorch names them:
/// the weights rounded to float16, the biases float32.
/// </summary>
/// <param name="WeightIh">float16 <c>[gates · hidden_size, layer input size]</c>, row-major.</param>
/// <param name="WeightHh">float16 <c>[gates · hidden_size, hidden_size]</c>, row-major.</param>
/// <param name="BiasIh">float32 <c>[gates · hidden_size]</c>, or null (bias=False).</param>
/// <param name="BiasHh">float32 <c>[gates · hidden_size]</c>, or null (bias=False).</param>
public sealed record Float16RecurrentCellWeights(Half[] WeightIh, Half[] WeightHh, float[]? BiasIh, float[]? BiasHh);

/// <summary>An Elman cell's (<c>RNNCell</c>'s) nonlinearity.</summary>
public enum RecurrentNonlinearity
{
    /// <summary><c>tanh</c>, PyTorch's default.</summary>
    Tanh,

    /// <summary><c>relu</c>.</summary>
    Relu,
}
