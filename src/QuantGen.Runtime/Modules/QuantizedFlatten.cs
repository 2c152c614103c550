using System;

namespace QuantGen.Modules;

/// <summary>
/// Flatten on a quantized tensor (PyTorch's <c>nn.Flatten</c> / <c>torch.flatten</c>): dimensions
/// <see cref="StartDim"/>..<see cref="EndDim"/> merge into one, in PyTorch's logical (NCHW) order
/// whatever the storage layout; the result is contiguous and the qparams pass through.
/// </summary>
public sealed class QuantizedFlatten : IQuantizedLayer
{
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
        int rank = shape.Length;
        if (rank == 0)
        {
            return [1];
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

        var output = new int[rank - (end - start)];
        shape[..start].CopyTo(output);
        int merged = 1;
        for (int d = start; d <= end; d++)
        {
            merged = checked(merged * shape[d]);
        }

        output[start] = merged;
        shape[(end + 1)..].CopyTo(output.AsSpan(start + 1));
        return output;
    }

    /// <summary>The flattened tensor: a new contiguous tensor in logical order, same qparams.</summary>
    /// <exception cref="ArgumentException">A dimension is out of range, or the input has per-channel qparams.</exception>
    public QTensor Forward(QTensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.QParams.IsPerChannel)
        {
            // Flattening moves the channel axis; activations are per-tensor, so this is a wiring mistake.
            throw new ArgumentException($"{Model}.{Layer}: expected an input with per-tensor qparams, got {input.QParams}.", nameof(input));
        }

        int[] outputShape = OutputShape(input.Shape);
        QTensor rowMajor = input.WithFormat(MemoryFormat.Contiguous);

        // WithFormat returns the input itself when it is already contiguous; copy then, so the result
        // never aliases the caller's tensor.
        byte[] storage = ReferenceEquals(rowMajor, input) ? (byte[])input.Storage.Clone() : rowMajor.Storage;
        return new QTensor(outputShape, input.QParams, storage, MemoryFormat.Contiguous);
    }

    /// <summary>PyTorch's repr: <c>Flatten(start_dim=1, end_dim=-1)</c>.</summary>
    public override string ToString() => $"Flatten(start_dim={StartDim}, end_dim={EndDim})";
}
