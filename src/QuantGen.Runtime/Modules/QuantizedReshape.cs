using System;

namespace QuantGen.Modules;

/// <summary>
/// flatten / view / reshape on a quantized tensor, in PyTorch's logical (NCHW) order whatever the
/// storage layout; the result is contiguous and the qparams pass through. The target shape may hold
/// one -1 (inferred from the element count).
/// </summary>
public sealed class QuantizedReshape : IQuantizedLayer
{
    private readonly int[] _shape;
    private readonly string _name;

    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member or op path, for error messages.</param>
    /// <param name="shape">Target shape: sizes ≥ 0 and at most one -1.</param>
    /// <exception cref="ArgumentException">A size below -1, or more than one -1.</exception>
    public QuantizedReshape(string model, string layer, int[] shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(shape);
        string name = $"{model}.{layer}";
        int inferred = 0;
        foreach (int size in shape)
        {
            if (size < -1)
            {
                throw new ArgumentException($"{name}: invalid shape dimension {size} in {TorchText.Shape(shape)}.", nameof(shape));
            }

            inferred += size == -1 ? 1 : 0;
        }

        if (inferred > 1)
        {
            throw new ArgumentException($"{name}: only one dimension can be inferred (-1), got {TorchText.Shape(shape)}.", nameof(shape));
        }

        Model = model;
        Layer = layer;
        _name = name;
        _shape = (int[])shape.Clone();
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member or op path, for error messages.</summary>
    public string Layer { get; }

    /// <summary>The target shape as given (a copy; may hold one -1).</summary>
    public int[] Shape => (int[])_shape.Clone();

    /// <summary>The shape an input of <paramref name="count"/> elements takes, with the -1 resolved (PyTorch's <c>infer_size</c>).</summary>
    /// <exception cref="ArgumentException">The sizes do not multiply to <paramref name="count"/>, or the -1 is ambiguous (other sizes multiply to 0).</exception>
    public int[] OutputShape(int count)
    {
        var result = new int[_shape.Length];
        OutputShape(count, result);
        return result;
    }

    /// <summary>The reshaped tensor: a new contiguous tensor in logical order, same qparams and dtype.</summary>
    /// <exception cref="ArgumentException">The shape does not fit the input's element count, or the input has per-channel qparams.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>
    /// As <see cref="Forward(QTensor)"/>, copying into <paramref name="output"/>'s buffer (a steady-state
    /// call then allocates nothing); null allocates a new tensor. Never a view of the input's storage.
    /// </summary>
    /// <exception cref="ArgumentException">The shape does not fit the input's element count, the input has per-channel qparams, or an output slot that holds the input.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        LayerChecks.PerTensorInput(_name, input, nameof(input));
        Span<int> outputShape = _shape.Length <= 8 ? stackalloc int[_shape.Length] : new int[_shape.Length];
        OutputShape(input.Count, outputShape);
        QTensor result = LayerChecks.Output(output, outputShape, input.QParams, MemoryFormat.Contiguous);
        LayerChecks.NotAliased(_name, result, input, nameof(output));
        input.CopyTo(result.StorageBytes, MemoryFormat.Contiguous, flipTopBit: false);
        return result;
    }

    private void OutputShape(int count, Span<int> result)
    {
        long known = 1;
        int inferredAt = -1;
        for (int d = 0; d < _shape.Length; d++)
        {
            if (_shape[d] == -1)
            {
                inferredAt = d;
            }
            else
            {
                known *= _shape[d];
            }
        }

        _shape.CopyTo(result);
        if (inferredAt >= 0)
        {
            if (known == 0 || count % known != 0)
            {
                throw new ArgumentException($"{Model}.{Layer}: shape '{TorchText.Shape(_shape)}' is invalid for input of size {count}.");
            }

            result[inferredAt] = (int)(count / known);
        }
        else if (known != count)
        {
            throw new ArgumentException($"{Model}.{Layer}: shape '{TorchText.Shape(_shape)}' is invalid for input of size {count}.");
        }
    }

    /// <summary>Like FX's printout of the op: <c>reshape([1, -1])</c>.</summary>
    public override string ToString() => $"reshape({TorchText.Shape(_shape)})";
}
