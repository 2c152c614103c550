using System;

namespace QuantGen.Modules;

// TODO(helper B2): implement; split into one file per class.

/// <summary>PyTorch's <c>Quantize</c> (a converted QuantStub, or the model entry): float → quint8.</summary>
public sealed class QuantizeInput
{
    public QuantizeInput(string model, string layer, QParams qparams) => throw new NotImplementedException();

    public QParams QParams => throw new NotImplementedException();

    public float Scale => QParams.Scale;

    public int ZeroPoint => QParams.ZeroPoint;

    /// <summary>Quantizes values in logical row-major order (NCHW); 4-D results are channels-last.</summary>
    public QTensor Forward(ReadOnlySpan<float> values, int[] shape) => throw new NotImplementedException();
}

/// <summary>PyTorch's <c>QuantizedConv2d</c> / <c>QuantizedConvReLU2d</c>.</summary>
public sealed class QuantizedConv2d
{
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="options">Hyper-parameters.</param>
    /// <param name="weight">qint8 weight, logical [OutC, InC/groups, KH, KW], per-channel (axis 0) or per-tensor.</param>
    /// <param name="bias">Float bias per output channel, or null.</param>
    /// <param name="inputQParams">The input's qparams seen at calibration (factors are precomputed for them).</param>
    /// <param name="outputQParams">Output scale and zero point.</param>
    /// <param name="fusedRelu">ConvReLU2d.</param>
    /// <param name="backend">Bias/requantization arithmetic.</param>
    public QuantizedConv2d(string model, string layer, Conv2dOptions options, QTensor weight, float[]? bias, QParams inputQParams, QParams outputQParams, bool fusedRelu, QuantBackend backend) => throw new NotImplementedException();

    public Conv2dOptions Options => throw new NotImplementedException();

    public QTensor Weight => throw new NotImplementedException();

    public float[]? Bias => throw new NotImplementedException();

    public QParams OutputQParams => throw new NotImplementedException();

    public float Scale => OutputQParams.Scale;

    public int ZeroPoint => OutputQParams.ZeroPoint;

    public bool FusedRelu => throw new NotImplementedException();

    /// <summary>x: quint8 [N, InC, H, W] (any layout); returns quint8 channels-last [N, OutC, OH, OW].</summary>
    public QTensor Forward(QTensor input) => throw new NotImplementedException();
}

/// <summary>PyTorch's <c>QuantizedLinear</c> / <c>QuantizedLinearReLU</c>.</summary>
public sealed class QuantizedLinear
{
    public QuantizedLinear(string model, string layer, int inFeatures, int outFeatures, QTensor weight, float[]? bias, QParams inputQParams, QParams outputQParams, bool fusedRelu, QuantBackend backend) => throw new NotImplementedException();

    public int InFeatures => throw new NotImplementedException();

    public int OutFeatures => throw new NotImplementedException();

    public QTensor Weight => throw new NotImplementedException();

    public float[]? Bias => throw new NotImplementedException();

    public QParams OutputQParams => throw new NotImplementedException();

    public float Scale => OutputQParams.Scale;

    public int ZeroPoint => OutputQParams.ZeroPoint;

    /// <summary>x: quint8 [N, InFeatures]; returns quint8 [N, OutFeatures].</summary>
    public QTensor Forward(QTensor input) => throw new NotImplementedException();
}

/// <summary>ReLU on a quantized tensor: <c>max(q, zp)</c>, qparams pass through.</summary>
public sealed class QuantizedReLU
{
    public QuantizedReLU(string model, string layer) => throw new NotImplementedException();

    public QTensor Forward(QTensor input) => throw new NotImplementedException();
}

/// <summary>Flatten on a quantized tensor, in PyTorch's logical (NCHW) order; qparams pass through.</summary>
public sealed class QuantizedFlatten
{
    public QuantizedFlatten(string model, string layer, int startDim = 1, int endDim = -1) => throw new NotImplementedException();

    public QTensor Forward(QTensor input) => throw new NotImplementedException();
}
