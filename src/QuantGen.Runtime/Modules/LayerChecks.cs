using System;
using QuantGen.Buffers;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>Checks shared by the int8 layers (messages name the layer), and the move in and out of the kernels' <see cref="UInt8View"/>.</summary>
internal static class LayerChecks
{
    /// <summary>
    /// A qint8 weight's scale and zero point for each output channel: per-channel along axis 0 as they
    /// are, per-tensor repeated (the requantization factors are per output channel either way).
    /// </summary>
    public static (float[] Scales, int[] ZeroPoints) WeightQParamsPerOutputChannel(string name, QTensor weight, int outChannels)
    {
        if (weight.DType != QuantDType.QInt8)
        {
            throw new ArgumentException($"{name}: expected a {QuantDType.QInt8.ToTorchString()} weight, got {weight.DType.ToTorchString()}.", nameof(weight));
        }

        QParams qparams = weight.QParams;
        float[] scales;
        int[] zeroPoints;
        if (qparams.IsPerChannel)
        {
            if (qparams.Axis != 0 || qparams.Scales.Length != outChannels)
            {
                throw new ArgumentException($"{name}: per-channel weight qparams must be along axis 0 with {outChannels} channels, got axis {qparams.Axis} with {qparams.Scales.Length}.", nameof(weight));
            }

            scales = (float[])qparams.Scales.Clone();
            zeroPoints = (int[])qparams.ZeroPoints.Clone();
        }
        else
        {
            scales = new float[outChannels];
            zeroPoints = new int[outChannels];
            Array.Fill(scales, qparams.Scale);
            Array.Fill(zeroPoints, qparams.ZeroPoint);
        }

        for (int c = 0; c < outChannels; c++)
        {
            if (!float.IsFinite(scales[c]) || scales[c] <= 0f)
            {
                throw new ArgumentException($"{name}: weight scale {scales[c]} (channel {c}) must be positive and finite.", nameof(weight));
            }

            if (zeroPoints[c] < QuantDType.QInt8.Min() || zeroPoints[c] > QuantDType.QInt8.Max())
            {
                throw new ArgumentException($"{name}: weight zero point {zeroPoints[c]} (channel {c}) is outside {QuantDType.QInt8.ToTorchString()}'s range.", nameof(weight));
            }
        }

        return (scales, zeroPoints);
    }

    /// <summary>A copy of the bias after checking it has one finite value per output channel.</summary>
    public static float[]? Bias(string name, float[]? bias, int outChannels)
    {
        if (bias is null)
        {
            return null;
        }

        if (bias.Length != outChannels)
        {
            throw new ArgumentException($"{name}: expected a bias of {outChannels} values (one per output channel), got {bias.Length}.", nameof(bias));
        }

        int bad = Array.FindIndex(bias, b => !float.IsFinite(b));
        if (bad >= 0)
        {
            throw new ArgumentException($"{name}: bias[{bad}] is {bias[bad]}; it must be finite.", nameof(bias));
        }

        return (float[])bias.Clone();
    }

    /// <summary>Activation qparams the int8 kernels take: per-tensor quint8 or qint8, positive finite scale, zero point in the dtype's range.</summary>
    public static void ActivationQParams(string name, string role, QParams qparams, string parameterName)
    {
        if (qparams.IsPerChannel || qparams.DType is not (QuantDType.QUInt8 or QuantDType.QInt8))
        {
            throw new ArgumentException($"{name}: {role} qparams must be per-tensor {QuantDType.QUInt8.ToTorchString()} or {QuantDType.QInt8.ToTorchString()}, got {qparams}.", parameterName);
        }

        if (!float.IsFinite(qparams.Scale) || qparams.Scale <= 0f)
        {
            throw new ArgumentException($"{name}: {role} scale {qparams.Scale} must be positive and finite.", parameterName);
        }

        if (qparams.ZeroPoint < qparams.DType.Min() || qparams.ZeroPoint > qparams.DType.Max())
        {
            throw new ArgumentException($"{name}: {role} zero point {qparams.ZeroPoint} is outside {qparams.DType.ToTorchString()}'s range {qparams.DType.Min()}..{qparams.DType.Max()}.", parameterName);
        }
    }

    /// <summary>Throws, naming the layer, unless <paramref name="input"/> has per-tensor qparams (activations always do; per-channel means a wiring mistake).</summary>
    public static void PerTensorInput(string name, QTensor input, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(input, parameterName);
        if (input.QParams.IsPerChannel)
        {
            throw new ArgumentException($"{name}: expected an input with per-tensor qparams, got {input.QParams}.", parameterName);
        }
    }

    /// <summary>
    /// <paramref name="tensor"/>'s elements in <paramref name="format"/> order in the kernels'
    /// <see cref="UInt8View"/>, without allocating in steady state: a quint8 tensor already in that format
    /// is read in place; otherwise the elements are converted into <paramref name="scratch"/> (grown when
    /// too small and kept by the caller for the next call).
    /// </summary>
    public static ReadOnlySpan<byte> InputView(QTensor tensor, MemoryFormat format, ref byte[] scratch)
    {
        bool flip = UInt8View.Offset(tensor.DType) != 0;
        if (!flip && (tensor.Format == format || tensor.Rank != 4))
        {
            return tensor.StorageBytes;
        }

        if (scratch.Length < tensor.Count)
        {
            scratch = new byte[tensor.Count];
        }

        Span<byte> view = scratch.AsSpan(0, tensor.Count);
        tensor.CopyTo(view, tensor.Rank == 4 ? format : tensor.Format, flip);
        return view;
    }

    /// <summary>The output tensor of a layer: a view over <paramref name="slot"/>'s buffer, or a new tensor when <paramref name="slot"/> is null.</summary>
    public static QTensor Output(BufferSlot? slot, ReadOnlySpan<int> shape, QParams qparams, MemoryFormat format) =>
        slot is null ? QTensor.Allocate(shape, qparams, format) : slot.Tensor(shape, qparams, format);

    /// <summary>
    /// Throws when a layer that reads its input while writing its output (not element for element) was
    /// given an output slot that holds the input — a buffer plan that reuses a slot too early.
    /// </summary>
    public static void NotAliased(string name, QTensor output, QTensor input, string parameterName)
    {
        if (ReferenceEquals(output.Storage, input.Storage) && output.Count != 0)
        {
            throw new ArgumentException($"{name}: the output slot holds the input tensor {TorchText.Shape(input.ShapeSpan)}; this op cannot write over its own input (the buffer plan must give the output another slot).", parameterName);
        }
    }

    /// <summary>Turns an output written in the <see cref="UInt8View"/> into its dtype's storage (flipping the top bit in place for qint8).</summary>
    public static void FinishOutput(QTensor output)
    {
        if (UInt8View.Offset(output.DType) != 0)
        {
            Span<byte> bytes = output.StorageBytes;
            UInt8View.Convert(bytes, bytes, QuantDType.QInt8);
        }
    }

    /// <summary>The zero point of per-tensor <paramref name="qparams"/> in the <see cref="UInt8View"/>.</summary>
    public static int ViewZeroPoint(QParams qparams) => qparams.ZeroPoint + UInt8View.Offset(qparams.DType);
}
