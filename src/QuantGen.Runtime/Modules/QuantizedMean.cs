using System;
using System.Globalization;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// PyTorch's quantized <c>mean(dims, keepdim)</c>: the output keeps the input's qparams (as aten's quantized mean
/// does, so no observer), each value the float32 mean of the stored integers rounded half to even — see
/// <see cref="MeanScalar"/> and docs/numerics.md. The mean over H and W of a channels-last image (squeeze-excitation's
/// <c>x.mean([2, 3], keepdim: true)</c>) sums each pixel's channel row; other dims go through the reference loops.
/// </summary>
public sealed class QuantizedMean : IQuantizedLayer
{
    private readonly int[] _dims;

    /// <summary>Creates the op.</summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Op path, for error messages.</param>
    /// <param name="dims">The dims to average over (negative counts from the end), at least one.</param>
    /// <param name="keepDim">Keep the reduced dims as size 1.</param>
    /// <exception cref="ArgumentException">No dims, or a dim given twice.</exception>
    public QuantizedMean(string model, string layer, int[] dims, bool keepDim)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(dims);
        if (dims.Length == 0 || dims.Length > 8)
        {
            throw new ArgumentException($"{model}.{layer}: mean takes 1 to 8 dims, got {dims.Length}.", nameof(dims));
        }

        Model = model;
        Layer = layer;
        _dims = (int[])dims.Clone();
        KeepDim = keepDim;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Op path, for error messages.</summary>
    public string Layer { get; }

    /// <summary>The dims averaged over, as given.</summary>
    public int[] Dims => (int[])_dims.Clone();

    /// <summary>True when the reduced dims stay as size 1.</summary>
    public bool KeepDim { get; }

    /// <summary>The mean of <paramref name="input"/> (quint8 or qint8, per tensor) over <see cref="Dims"/>.</summary>
    /// <exception cref="ArgumentException">A dim is out of range for the input, a reduced dim is empty, or the input is per-channel.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>As <see cref="Forward(QTensor)"/>, writing into <paramref name="output"/> (null allocates); the slot must not hold the input.</summary>
    /// <exception cref="ArgumentException">A dim is out of range for the input, a reduced dim is empty, or the input is per-channel.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        string name = $"{Model}.{Layer}";
        LayerChecks.PerTensorInput(name, input, nameof(input));
        (int[] shape, bool[] reduced) = MeanScalar.OutputShape(input.ShapeSpan, _dims, KeepDim, out string? problem)
            ?? throw new ArgumentException($"{name}: cannot take the mean of a {TorchText.Shape(input.ShapeSpan)} tensor over dims [{string.Join(", ", _dims)}]: {problem}.", nameof(input));
        int count = 1;
        for (int d = 0; d < reduced.Length; d++)
        {
            count *= reduced[d] ? input.ShapeSpan[d] : 1;
        }

        if (count == 0)
        {
            throw new ArgumentException($"{name}: cannot take the mean of a {TorchText.Shape(input.ShapeSpan)} tensor over dims [{string.Join(", ", _dims)}]: a reduced dim is empty.", nameof(input));
        }

        int offset = UInt8View.Offset(input.DType);
        LayerScratch scratch = LayerScratch.Current;
        bool spatial = input.Rank == 4 && !reduced[0] && !reduced[1] && reduced[2] && reduced[3];
        if (spatial && input.Format == MemoryFormat.ChannelsLast)
        {
            // [N, C, 1, 1] (or [N, C]) is stored n·C + c in either layout.
            QTensor pooled = LayerChecks.Output(output, shape, input.QParams, shape.Length == 4 ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous);
            if (output is not null)
            {
                LayerChecks.NotAliased(name, pooled, input, nameof(output));
            }

            ReadOnlySpan<byte> view = scratch.InputView(0, input, MemoryFormat.ChannelsLast);
            Span<byte> result = pooled.StorageBytes;
            int batch = input.ShapeSpan[0], channels = input.ShapeSpan[1];
            Span<int> sums = scratch.Accumulators(channels);
            for (int n = 0; n < batch; n++)
            {
                sums.Clear();
                ReadOnlySpan<byte> image = view.Slice(n * count * channels, count * channels);
                for (int p = 0; p < count; p++)
                {
                    ReadOnlySpan<byte> pixel = image.Slice(p * channels, channels);
                    for (int c = 0; c < channels; c++)
                    {
                        sums[c] += pixel[c];
                    }
                }

                for (int c = 0; c < channels; c++)
                {
                    result[n * channels + c] = MeanScalar.Value(sums[c], count, offset);
                }
            }

            LayerChecks.FinishOutput(pooled);
            return pooled;
        }

        // Any other dims: the reference loops on the logical order.
        QTensor mean = LayerChecks.Output(output, shape, input.QParams, MemoryFormat.Contiguous);
        if (output is not null)
        {
            LayerChecks.NotAliased(name, mean, input, nameof(output));
        }

        ReadOnlySpan<byte> logical = scratch.InputView(0, input, MemoryFormat.Contiguous);
        MeanScalar.Apply(logical, input.ShapeSpan, _dims, offset, mean.StorageBytes);
        LayerChecks.FinishOutput(mean);
        return mean;
    }

    /// <summary>Like a PyTorch call: <c>mean(dim=[2, 3], keepdim=True)</c>.</summary>
    public override string ToString() =>
        $"mean(dim=[{string.Join(", ", Array.ConvertAll(_dims, d => d.ToString(CultureInfo.InvariantCulture)))}], keepdim={(KeepDim ? "True" : "False")})";
}
