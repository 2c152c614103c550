using System;
using System.Threading;
using QuantGen.Kernels;

namespace QuantGen.Modules;

/// <summary>
/// The requantization factors of one weighted layer (conv, linear, conv-transpose): computed once for the
/// calibrated input scale, and kept for the last other scale an input arrived with — PyTorch requantizes
/// with the actual input's scale, and recomputing the per-channel factors on every call would cost more
/// than a small layer's kernel. The factors carry the output zero point in the kernels' unsigned view
/// (<see cref="Kernels.Scalar.RequantizeToDType"/> handles X86 with qint8 outputs).
/// </summary>
/// <remarks>
/// <see cref="For"/> may be called from many threads at once: each cache entry is one immutable object
/// (the scale together with its factors) read and replaced as a single reference, so a caller never pairs
/// one scale with another's factors. <see cref="SetBias"/> is a configuration step, not for use while a
/// forward runs.
/// </remarks>
internal sealed class LayerRequantization
{
    private readonly string _name;
    private readonly QuantBackend _backend;
    private readonly float _calibratedInputScale;
    private readonly float[] _weightScales;
    private readonly QParams _output;
    private readonly bool _relu;
    private RequantizeParams _calibrated;
    private ScaleFactors? _other;

    /// <param name="name">"Model.layer", for messages.</param>
    /// <param name="backend">The bias/requantization arithmetic.</param>
    /// <param name="calibratedInputScale">The input scale seen at calibration.</param>
    /// <param name="weightScales">Weight scale per output channel.</param>
    /// <param name="output">The output qparams.</param>
    /// <param name="bias">Validated float bias per output channel, or null.</param>
    /// <param name="relu">A fused ReLU.</param>
    public LayerRequantization(string name, QuantBackend backend, float calibratedInputScale, float[] weightScales, QParams output, float[]? bias, bool relu)
    {
        _name = name;
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
        Volatile.Write(ref _calibrated, Create(_calibratedInputScale));
        Volatile.Write(ref _other, null);
    }

    /// <summary>The factors for an input of <paramref name="inputScale"/>.</summary>
    public RequantizeParams For(float inputScale)
    {
        if (inputScale.Equals(_calibratedInputScale))
        {
            return Volatile.Read(ref _calibrated);
        }

        ScaleFactors? other = Volatile.Read(ref _other);
        if (other is null || !inputScale.Equals(other.InputScale))
        {
            // Two threads with different scales may replace each other's entry; each still uses its own.
            RequantizeParams factors;
            try
            {
                factors = Create(inputScale);
            }
            catch (ArgumentException ex)
            {
                // An input scale no calibration produced (a forged file's upstream qparams, say) can make the
                // factors non-finite; the caller must learn which layer refused it.
                throw new ArgumentException($"{_name}: an input of scale {inputScale} cannot be requantized to the output scale {_output.Scale}: {ex.Message}", "input", ex);
            }

            other = new ScaleFactors(inputScale, factors);
            Volatile.Write(ref _other, other);
        }

        return other.Factors;
    }

    private RequantizeParams Create(float inputScale) =>
        RequantizeParams.Create(_backend, inputScale, _weightScales, _output.Scale, LayerChecks.ViewZeroPoint(_output), Bias, _relu);

    /// <summary>The factors for one input scale other than the calibrated one.</summary>
    private sealed class ScaleFactors(float inputScale, RequantizeParams factors)
    {
        public float InputScale { get; } = inputScale;

        public RequantizeParams Factors { get; } = factors;
    }
}
