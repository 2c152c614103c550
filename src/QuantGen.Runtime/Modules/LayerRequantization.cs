using QuantGen.Kernels;

namespace QuantGen.Modules;

/// <summary>
/// The requantization factors of one weighted layer (conv, linear, conv-transpose): computed once for the
/// calibrated input scale, and kept for the last other scale an input arrived with — PyTorch requantizes
/// with the actual input's scale, and recomputing the per-channel factors on every call would cost more
/// than a small layer's kernel. The factors carry the output zero point in the kernels' unsigned view
/// (<see cref="Kernels.Scalar.RequantizeToDType"/> handles X86 with qint8 outputs).
/// </summary>
internal sealed class LayerRequantization
{
    private readonly QuantBackend _backend;
    private readonly float _calibratedInputScale;
    private readonly float[] _weightScales;
    private readonly QParams _output;
    private readonly bool _relu;
    private RequantizeParams _calibrated;
    private float _otherInputScale = float.NaN;
    private RequantizeParams? _other;

    /// <param name="backend">The bias/requantization arithmetic.</param>
    /// <param name="calibratedInputScale">The input scale seen at calibration.</param>
    /// <param name="weightScales">Weight scale per output channel.</param>
    /// <param name="output">The output qparams.</param>
    /// <param name="bias">Validated float bias per output channel, or null.</param>
    /// <param name="relu">A fused ReLU.</param>
    public LayerRequantization(QuantBackend backend, float calibratedInputScale, float[] weightScales, QParams output, float[]? bias, bool relu)
    {
        _backend = backend;
        _calibratedInputScale = calibratedInputScale;
        _weightScales = weightScales;
        _output = output;
        _relu = relu;
        Bias = bias;
        _calibrated = Create(calibratedInputScale);
    }

    /// <summary>The float bias the factors hold (not a copy), or null.</summary>
    public float[]? Bias { get; private set; }

    /// <summary>Replaces the (validated) bias and recomputes the factors that hold it.</summary>
    public void SetBias(float[]? bias)
    {
        Bias = bias;
        _calibrated = Create(_calibratedInputScale);
        _other = null;
        _otherInputScale = float.NaN;
    }

    /// <summary>The factors for an input of <paramref name="inputScale"/>.</summary>
    public RequantizeParams For(float inputScale)
    {
        if (inputScale.Equals(_calibratedInputScale))
        {
            return _calibrated;
        }

        if (_other is null || !inputScale.Equals(_otherInputScale))
        {
            _other = Create(inputScale);
            _otherInputScale = inputScale;
        }

        return _other;
    }

    private RequantizeParams Create(float inputScale) =>
        RequantizeParams.Create(_backend, inputScale, _weightScales, _output.Scale, LayerChecks.ViewZeroPoint(_output), Bias, _relu);
}
