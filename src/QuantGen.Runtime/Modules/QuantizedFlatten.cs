using System;

namespace QuantGen.Modules;

/// <summary>
/// Flatten on a quantized tensor (PyTorch's <c>nn.Flatten</c> / <c>torch.flatten</c>): dimensions
/// <see cref="StartDim"/>..<see cref="EndDim"/> merge into one, in PyTorch's logical (NCHW) order
/// whatever the storage layout; the result is contiguous and the qparams pass through.
/// </summary>
public sealed class QuantizedFlatten : IQuantizedLayer
{
    private readonly string _name;

    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Member name, for error messages.</param>
    /// <param name="startDim">First dimension to flatten; negative counts from the end (as in PyTorch).</param>
    /// <param name="endDim">Last dimension to flatten; negative counts from the end.</param>
    public QuantizedFlatten(string model, string layer, int startDim = 1, int endDim = -1)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        Model = model;
        Layer = layer;
        _name = $"{model}.{layer}";
        StartDim = startDim;
        EndDim = endDim;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>First dimension flattened (may be negative).</summary>
    public int StartDim { get; }

    /// <summary>Last dimension flattened (may be negative).</summary>
    public int EndDim { get; }

    /// <summary>The flattened shape <paramref name="shape"/> becomes, with torch.flatten's rules (a 0-d input becomes [1]).</summary>
    /// <exception cref="ArgumentException">A dimension is out of range, or start comes after end.</exception>
    public int[] OutputShape(ReadOnlySpan<int> shape)
    {
        var output = new int[Math.Max(shape.Length, 1)];
        return output[..OutputShape(shape, output)];
    }

    /// <summary>Writes the flattened shape into <paramref name="output"/> (at least max(rank, 1) long); returns its rank.</summary>
    private int OutputShape(ReadOnlySpan<int> shape, Span<int> output)
    {
        int rank = shape.Length;
        if (rank == 0)
        {
            output[0] = 1;
            return 1;
        }

        int start = StartDim < 0 ? StartDim + rank : StartDim;
        int end = EndDim < 0 ? EndDim + rank : EndDim;
        if (start < 0 || start >= rank || end < 0 || end >= rank)
        {
            throw new ArgumentException($"{Model}.{Layer}: flatten dimensions start_dim={StartDim}, end_dim={EndDim} must lie in [{-rank}, {rank - 1}] for the rank-{rank} input {TorchText.Shape(shape)}.");
        }

        if (start > end)
        {
            throw new ArgumentException($"{Model}.{Layer}: flatten start_dim={StartDim} comes after end_dim={EndDim} for the rank-{rank} input {TorchText.Shape(shape)}.");
        }

        shape[..start].CopyTo(output);
        int merged = 1;
        for (int d = start; d <= end; d++)
        {
            merged = checked(merged * shape[d]);
        }

        output[start] = merged;
        shape[(end + 1)..].CopyTo(output[(start + 1)..]);
        return rank - (end - start);
    }

    /// <summary>The flattened tensor: a new contiguous tensor in logical order, same qparams.</summary>
    /// <exception cref="ArgumentException">A dimension is out of range, or the input has per-channel qparams.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>
    /// As <see cref="Forward(QTensor)"/>, copying into <paramref name="output"/>'s buffer (a steady-state
    /// call then allocates nothing); null allocates a new tensor. Never a view of the input's storage.
    /// </summary>
    /// <exception cref="ArgumentException">A dimension is out of range, the input has per-channel qparams, or an output slot that holds the input.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.QParams.IsPerChannel)
        {
            // Flattening moves the channel axis; activations are per-tensor, so this is a wiring mistake.
            throw new ArgumentException($"{Model}.{Layer}: expected an input with per-tensor qparams, got {input.QParams}.", nameof(input));
        }

        ReadOnlySpan<int> shape = input.ShapeSpan;
        Span<int> outputShape = shape.Length <= 8 ? stackalloc int[Math.Max(shape.Length, 1)] : new int[shape.Length];
        outputShape = outputShape[..OutputShape(shape, outputShape)];
        QTensor result = LayerChecks.Output(output, outputShape, input.QParams, MemoryFormat.Contiguous);
        LayerChecks.NotAliased(_name, result, input, nameof(output));
        input.CopyTo(result.StorageBytes, MemoryFormat.Contiguous, flipTopBit: false);
        return result;
    }

    /// <summary>PyTorch's repr: <c>Flatten(start_dim=1, end_dim=-1)</c>.</summary>
    public override string ToString() => $"Flatten(start_dim={StartDim}, end_dim={EndDim})";
}
