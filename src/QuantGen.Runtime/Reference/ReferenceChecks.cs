using System;
using QuantGen.Modules;
using static TorchSharp.torch;

namespace QuantGen.Reference;

/// <summary>Checks shared by the reference layers; messages name the layer.</summary>
internal static class ReferenceChecks
{
    /// <summary>Activation qparams: per-tensor quint8 or qint8, positive finite scale, zero point in the dtype's range.</summary>
    public static void ActivationQParams(string name, string role, QParams qparams, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(qparams, parameterName);
        if (qparams.IsPerChannel)
        {
            throw new ArgumentException($"{name}: {role} qparams must be per tensor (activations have one scale and zero point), got {qparams}.", parameterName);
        }

        if (qparams.DType is not (QuantDType.QUInt8 or QuantDType.QInt8))
        {
            throw new ArgumentException($"{name}: {role} qparams must be {QuantDType.QUInt8.ToTorchString()} or {QuantDType.QInt8.ToTorchString()}, got {qparams}.", parameterName);
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

    /// <summary>The input's shape after checking it is a float32 tensor.</summary>
    public static int[] FloatInputShape(string name, Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        int[] shape = TensorInterop.ToIntShape(input.shape);
        if (input.dtype != ScalarType.Float32)
        {
            throw new ArgumentException($"{name}: expected a Float32 input, got {input.dtype} {TorchText.Shape(shape)}.", nameof(input));
        }

        return shape;
    }

    /// <summary>A float32 tensor that outlives the caller's dispose scope (held by a layer until it is disposed).</summary>
    public static Tensor Owned(float[] values, int[] shape) =>
        TensorInterop.FromArray(values, shape).DetachFromDisposeScope();
}
