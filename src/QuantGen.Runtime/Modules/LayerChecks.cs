using System;
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
    /// <paramref name="tensor"/>'s values in <paramref name="format"/> order, in the kernels'
    /// <see cref="UInt8View"/> (qint8 shifted by 128). Read-only: for a quint8 tensor already in that
    /// format this is its own storage.
    /// </summary>
    public static byte[] ViewOf(QTensor tensor, MemoryFormat format)
    {
        QTensor laidOut = tensor.WithFormat(format);
        return UInt8View.Of(laidOut.Storage, tensor.DType);
    }

    /// <summary>The zero point of per-tensor <paramref name="qparams"/> in the <see cref="UInt8View"/>.</summary>
    public static int ViewZeroPoint(QParams qparams) => qparams.ZeroPoint + UInt8View.Offset(qparams.DType);

    /// <summary>Wraps a kernel's output, given in the <see cref="UInt8View"/>, as a tensor of <paramref name="qparams"/>' dtype (flipping <paramref name="view"/> in place for qint8).</summary>
    public static QTensor FromView(int[] shape, QParams qparams, byte[] view, MemoryFormat format)
    {
        UInt8View.Convert(view, view, qparams.DType);
        return new QTensor(shape, qparams, view, format);
    }
}
