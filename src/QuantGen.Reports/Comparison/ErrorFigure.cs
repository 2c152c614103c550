using System;

namespace QuantGen.Reports;

/// <summary>
/// How close a quantized tensor is to its float reference: cosine similarity and signal-to-quantization-noise
/// ratio, both over every element compared (all batches together).
/// </summary>
/// <param name="Cosine">
/// <c>Σ r·q / sqrt(Σ r² · Σ q²)</c> in double (r the float reference, q the dequantized int8 values): 1 is
/// the same direction. Two all-zero tensors count as 1 (identical), one all-zero tensor against a non-zero
/// one as 0.
/// </param>
/// <param name="SqnrDb">
/// <c>10·log10(Σ r² / Σ (r − q)²)</c> in dB, double: higher is better; +∞ when the two are identical, and
/// −∞ when the reference is all zeros but the int8 values are not. Each int8 bit is worth about 6 dB.
/// </param>
/// <param name="Elements">How many elements were compared.</param>
public readonly record struct ErrorFigure(double Cosine, double SqnrDb, long Elements)
{
    /// <summary>The figure of two tensors given as float32 values in the same (logical) order.</summary>
    /// <param name="reference">The float reference values.</param>
    /// <param name="quantized">The dequantized int8 values.</param>
    /// <returns>Cosine similarity and SQNR.</returns>
    /// <exception cref="ArgumentException">The two differ in length.</exception>
    public static ErrorFigure Of(ReadOnlySpan<float> reference, ReadOnlySpan<float> quantized)
    {
        var sums = new ErrorSums();
        sums.Add(reference, quantized);
        return sums.Figure;
    }
}

/// <summary>Running double-precision sums behind an <see cref="ErrorFigure"/>, so batches can be added one at a time.</summary>
public sealed class ErrorSums
{
    private double _dot;
    private double _referenceSquares;
    private double _quantizedSquares;
    private double _noiseSquares;
    private long _elements;

    /// <summary>Adds equally long reference and dequantized values.</summary>
    /// <param name="reference">Float reference values.</param>
    /// <param name="quantized">Dequantized int8 values in the same order.</param>
    /// <exception cref="ArgumentException">The two differ in length.</exception>
    public void Add(ReadOnlySpan<float> reference, ReadOnlySpan<float> quantized)
    {
        if (reference.Length != quantized.Length)
        {
            throw new ArgumentException($"ErrorSums: {reference.Length} reference values but {quantized.Length} quantized ones.");
        }

        for (int i = 0; i < reference.Length; i++)
        {
            double r = reference[i], q = quantized[i], noise = r - q;
            _dot += r * q;
            _referenceSquares += r * r;
            _quantizedSquares += q * q;
            _noiseSquares += noise * noise;
        }

        _elements += reference.Length;
    }

    /// <summary>The figure over everything added so far.</summary>
    public ErrorFigure Figure
    {
        get
        {
            double cosine = _referenceSquares == 0 && _quantizedSquares == 0 ? 1.0
                : _referenceSquares == 0 || _quantizedSquares == 0 ? 0.0
                : _dot / Math.Sqrt(_referenceSquares * _quantizedSquares);
            double sqnr = _noiseSquares == 0 ? double.PositiveInfinity
                : _referenceSquares == 0 ? double.NegativeInfinity
                : 10.0 * Math.Log10(_referenceSquares / _noiseSquares);
            return new ErrorFigure(cosine, sqnr, _elements);
        }
    }
}
