using System;
using System.Text;
using QuantGen.Kernels;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// PyTorch's quantized mul of two tensors (<c>torch.ops.quantized.mul</c>, what FX makes of <c>a * b</c>), with
/// PyTorch's broadcasting — squeeze-excitation's <c>[N, C, 1, 1] × [N, C, H, W]</c>: the exact integer product of
/// the two zero-point-shifted inputs requantized to the output's own qparams — see <see cref="MulScalar"/> and
/// docs/numerics.md. quint8 or qint8 activations.
/// </summary>
public sealed class QuantizedMul : IQuantizedLayer
{
    private readonly string _name;

    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Op path (e.g. "se.mul"), for error messages.</param>
    /// <param name="outputQParams">Per-tensor output scale and zero point (its dtype is the inputs' and the output's).</param>
    /// <exception cref="ArgumentException">Per-channel or out-of-range output qparams.</exception>
    public QuantizedMul(string model, string layer, QParams outputQParams)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(outputQParams);
        LayerChecks.ActivationQParams($"{model}.{layer}", "output", outputQParams, nameof(outputQParams));
        Model = model;
        Layer = layer;
        _name = $"{model}.{layer}";
        OutputQParams = outputQParams;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Op path, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Output scale and zero point.</summary>
    public QParams OutputQParams { get; }

    /// <summary>a × b: shapes that broadcast, the same dtype (any per-tensor qparams).</summary>
    /// <exception cref="ArgumentException">The shapes do not broadcast, dtypes differ or are not the output's, or an input is per-channel.</exception>
    public QTensor Forward(QTensor a, QTensor b) => Forward(a, b, null);

    /// <summary>
    /// As <see cref="Forward(QTensor, QTensor)"/>, writing into <paramref name="output"/>'s buffer (null allocates).
    /// The slot may hold an input of the result's shape and layout (the product is element for element).
    /// </summary>
    /// <exception cref="ArgumentException">The shapes do not broadcast, dtypes differ or are not the output's, or an input is per-channel.</exception>
    public unsafe QTensor Forward(QTensor a, QTensor b, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        string name = _name;
        LayerChecks.PerTensorInput(name, a, nameof(a));
        LayerChecks.PerTensorInput(name, b, nameof(b));
        int[] shape = MulScalar.BroadcastShape(a.ShapeSpan, b.ShapeSpan)
            ?? throw new ArgumentException($"{name}: cannot multiply a {TorchText.Shape(a.ShapeSpan)} tensor by a {TorchText.Shape(b.ShapeSpan)} tensor: the shapes do not broadcast (aligned at the last dimension, each pair of sizes must be equal or one of them 1).");
        if (a.DType != b.DType)
        {
            throw new ArgumentException($"{name}: inputs differ in dtype: {a.DType.ToTorchString()} vs {b.DType.ToTorchString()}.");
        }

        if (a.DType != OutputQParams.DType)
        {
            throw new ArgumentException($"{name}: expected {OutputQParams.DType.ToTorchString()} inputs (the output's dtype), got {a.DType.ToTorchString()} {TorchText.Shape(a.ShapeSpan)}.");
        }

        // The result takes the layout of the input that has its shape (a's first), as aten's suggest_memory_format;
        // both inputs are read in that layout, so a channel row of the per-channel factor lines up with each pixel's.
        MemoryFormat format = shape.Length != 4 ? MemoryFormat.Contiguous
            : a.ShapeSpan.SequenceEqual(shape) ? a.Format
            : b.ShapeSpan.SequenceEqual(shape) ? b.Format
            : MemoryFormat.ChannelsLast;
        LayerScratch scratch = LayerScratch.Current;
        ReadOnlySpan<byte> viewA = scratch.InputView(0, a, format);
        ReadOnlySpan<byte> viewB = scratch.InputView(1, b, format);
        QTensor result = LayerChecks.Output(output, shape, OutputQParams, format);
        float multiplier = MulScalar.Multiplier(a.Scale, b.Scale, OutputQParams.Scale);
        int za = LayerChecks.ViewZeroPoint(a.QParams), zb = LayerChecks.ViewZeroPoint(b.QParams), zy = LayerChecks.ViewZeroPoint(OutputQParams);

        // Walk the result in its storage order: physical dims outermost first, the last one a row for the kernel.
        int rank = shape.Length;
        int[] order = format == MemoryFormat.ChannelsLast ? new[] { 0, 2, 3, 1 } : Identity(rank);
        int[] stridesA = Strides(a.ShapeSpan, a.Rank == 4 ? format : MemoryFormat.Contiguous, rank);
        int[] stridesB = Strides(b.ShapeSpan, b.Rank == 4 ? format : MemoryFormat.Contiguous, rank);
        Span<byte> bytes = result.StorageBytes;
        fixed (byte* pa = viewA)
        fixed (byte* pb = viewB)
        fixed (byte* po = bytes)
        {
            if (rank == 0 || bytes.Length == 0)
            {
                if (bytes.Length == 1)
                {
                    *po = MulScalar.Value(*pa, za, *pb, zb, multiplier, zy);
                }
            }
            else if (a.ShapeSpan.SequenceEqual(shape) && b.ShapeSpan.SequenceEqual(shape))
            {
                // Same shapes, same layout: one long row.
                MulKernel.Row(pa, 1, za, pb, 1, zb, po, bytes.Length, multiplier, zy);
            }
            else
            {
                int inner = order[rank - 1];
                int rowLength = shape[inner];
                var index = new int[rank - 1];
                int rows = bytes.Length / rowLength;
                for (int row = 0; row < rows; row++)
                {
                    int offsetA = 0, offsetB = 0;
                    for (int k = 0; k < rank - 1; k++)
                    {
                        offsetA += index[k] * stridesA[order[k]];
                        offsetB += index[k] * stridesB[order[k]];
                    }

                    MulKernel.Row(pa + offsetA, stridesA[inner], za, pb + offsetB, stridesB[inner], zb, po + row * rowLength, rowLength, multiplier, zy);
                    for (int k = rank - 2; k >= 0; k--)
                    {
                        if (++index[k] < shape[order[k]])
                        {
                            break;
                        }

                        index[k] = 0;
                    }
                }
            }
        }

        LayerChecks.FinishOutput(result);
        return result;
    }

    private static int[] Identity(int rank)
    {
        var order = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            order[i] = i;
        }

        return order;
    }

    /// <summary>
    /// The storage stride of each logical dim of an input right-aligned to <paramref name="rank"/> dims (0 where the
    /// input is broadcast), for an input stored in <paramref name="format"/> (channels-last only at rank 4).
    /// </summary>
    private static int[] Strides(ReadOnlySpan<int> shape, MemoryFormat format, int rank)
    {
        var own = new int[shape.Length];
        int[] physical = format == MemoryFormat.ChannelsLast && shape.Length == 4 ? new[] { 0, 2, 3, 1 } : Identity(shape.Length);
        int stride = 1;
        for (int k = physical.Length - 1; k >= 0; k--)
        {
            own[physical[k]] = stride;
            stride *= shape[physical[k]];
        }

        var strides = new int[rank];
        for (int d = 0; d < shape.Length; d++)
        {
            strides[d + rank - shape.Length] = shape[d] == 1 ? 0 : own[d];
        }

        return strides;
    }

    /// <summary>Like FX's printout of the op: <c>quantized.mul(scale=0.1, zero_point=3)</c>.</summary>
    public override string ToString() =>
        new StringBuilder("quantized.mul(")
            .Append("scale=").Append(TorchText.PythonFloat(OutputQParams.Scale))
            .Append(", zero_point=").Append(OutputQParams.ZeroPoint)
            .Append(')').ToString();
}
