using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace QuantGen.Observers;

/// <summary>
/// Qparams brought from elsewhere, or the range they come from: what a fixed observer gives whatever calibration
/// shows it (PyTorch's <c>FixedQParamsObserver</c>, or an observer whose <c>min_val</c>/<c>max_val</c> were loaded
/// from a state_dict). One value per tensor, or one per channel. Compared by value, so a <see cref="QConfig"/>
/// holding one stays a value.
/// </summary>
/// <remarks>
/// A range is turned into scale and zero point by the observer it is given to, with that observer's dtype, scheme
/// and quant range (<see cref="QParamsMath.FromMinMax"/>), exactly as a calibrated range would be. Zero points are
/// checked against the dtype when the values meet an observer, since only the observer knows its dtype.
/// </remarks>
public sealed class FixedObserverValues : IEquatable<FixedObserverValues>
{
    private readonly float[] _first;
    private readonly float[] _second;
    private readonly int[] _zeroPoints;

    private FixedObserverValues(bool isRange, bool isPerChannel, float[] first, float[] second, int[] zeroPoints)
    {
        IsRange = isRange;
        IsPerChannel = isPerChannel;
        _first = first;
        _second = second;
        _zeroPoints = zeroPoints;
    }

    /// <summary>True for a range [min, max]; false for scale and zero point.</summary>
    public bool IsRange { get; }

    /// <summary>True for one value per channel.</summary>
    public bool IsPerChannel { get; }

    /// <summary>Number of channels (1 per tensor).</summary>
    public int Count => _first.Length;

    /// <summary>The scale(s); empty for a range.</summary>
    public IReadOnlyList<float> Scales => IsRange ? Array.Empty<float>() : _first;

    /// <summary>The zero point(s); empty for a range.</summary>
    public IReadOnlyList<int> ZeroPoints => _zeroPoints;

    /// <summary>The range's minimum(s); empty for qparams.</summary>
    public IReadOnlyList<float> Min => IsRange ? _first : Array.Empty<float>();

    /// <summary>The range's maximum(s); empty for qparams.</summary>
    public IReadOnlyList<float> Max => _second;

    /// <summary>One scale and zero point for the whole tensor.</summary>
    /// <exception cref="ArgumentException">A scale that is not positive and finite.</exception>
    public static FixedObserverValues FromQParams(float scale, int zeroPoint)
    {
        CheckScale(scale, -1);
        return new(false, false, [scale], [], [zeroPoint]);
    }

    /// <summary>One scale and zero point per channel (copied).</summary>
    /// <exception cref="ArgumentException">Empty or different-length arrays, or a scale that is not positive and finite.</exception>
    public static FixedObserverValues FromQParams(float[] scales, int[] zeroPoints)
    {
        ArgumentNullException.ThrowIfNull(scales);
        ArgumentNullException.ThrowIfNull(zeroPoints);
        if (scales.Length == 0 || scales.Length != zeroPoints.Length)
        {
            throw new ArgumentException($"Per-channel qparams need one scale and one zero point per channel, got {scales.Length} scales and {zeroPoints.Length} zero points.", nameof(scales));
        }

        for (int c = 0; c < scales.Length; c++)
        {
            CheckScale(scales[c], c);
        }

        return new(false, true, (float[])scales.Clone(), [], (int[])zeroPoints.Clone());
    }

    /// <summary>One range [min, max] for the whole tensor.</summary>
    /// <exception cref="ArgumentException">A bound that is not finite, or min &gt; max.</exception>
    public static FixedObserverValues FromRange(float min, float max)
    {
        CheckRange(min, max, -1);
        return new(true, false, [min], [max], []);
    }

    /// <summary>One range [min[c], max[c]] per channel (copied).</summary>
    /// <exception cref="ArgumentException">Empty or different-length arrays, a bound that is not finite, or min &gt; max.</exception>
    public static FixedObserverValues FromRange(float[] min, float[] max)
    {
        ArgumentNullException.ThrowIfNull(min);
        ArgumentNullException.ThrowIfNull(max);
        if (min.Length == 0 || min.Length != max.Length)
        {
            throw new ArgumentException($"A per-channel range needs one min and one max per channel, got {min.Length} and {max.Length}.", nameof(min));
        }

        for (int c = 0; c < min.Length; c++)
        {
            CheckRange(min[c], max[c], c);
        }

        return new(true, true, (float[])min.Clone(), (float[])max.Clone(), []);
    }

    /// <summary>Fixes <paramref name="observer"/> to these values (<see cref="Observer.SetRange(float, float)"/> or <see cref="Observer.SetQParams(float, int)"/> and their per-channel forms).</summary>
    /// <exception cref="ArgumentException">The values do not suit the observer (the message names its layer).</exception>
    public void ApplyTo(Observer observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        switch (IsRange, IsPerChannel)
        {
            case (true, false): observer.SetRange(_first[0], _second[0]); break;
            case (true, true): observer.SetRange(_first, _second); break;
            case (false, false): observer.SetQParams(_first[0], _zeroPoints[0]); break;
            default: observer.SetQParams(_first, _zeroPoints); break;
        }
    }

    /// <inheritdoc/>
    public bool Equals(FixedObserverValues? other) =>
        other is not null && IsRange == other.IsRange && IsPerChannel == other.IsPerChannel
        && _first.AsSpan().SequenceEqual(other._first) && _second.AsSpan().SequenceEqual(other._second)
        && _zeroPoints.AsSpan().SequenceEqual(other._zeroPoints);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as FixedObserverValues);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(IsRange);
        hash.Add(IsPerChannel);
        foreach (float value in _first)
        {
            hash.Add(value);
        }

        foreach (float value in _second)
        {
            hash.Add(value);
        }

        foreach (int value in _zeroPoints)
        {
            hash.Add(value);
        }

        return hash.ToHashCode();
    }

    /// <summary>PyTorch-like text: <c>scale=0.05, zero_point=3</c>, <c>min_val=-1, max_val=2</c>, or their per-channel lists.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        if (IsRange)
        {
            text.Append("min_val=").Append(Format(_first)).Append(", max_val=").Append(Format(_second));
        }
        else
        {
            text.Append(IsPerChannel ? "scales=" : "scale=").Append(Format(_first))
                .Append(IsPerChannel ? ", zero_points=" : ", zero_point=").Append(Format(_zeroPoints));
        }

        return text.ToString();
    }

    /// <summary>The check every fixed scale gets, here and in <see cref="Observer.SetQParams(float, int)"/>.</summary>
    internal static void CheckScale(float scale, int channel, string owner = "")
    {
        if (!float.IsFinite(scale) || scale <= 0f)
        {
            string where = channel >= 0 ? $" (channel {channel})" : string.Empty;
            throw new ArgumentException($"{owner}{(owner.Length > 0 ? ": " : string.Empty)}scale {scale.ToString("R", CultureInfo.InvariantCulture)}{where} must be positive and finite.", nameof(scale));
        }
    }

    /// <summary>The check every fixed range gets, here and in <see cref="Observer.SetRange(float, float)"/>.</summary>
    internal static void CheckRange(float min, float max, int channel, string owner = "")
    {
        string where = channel >= 0 ? $" (channel {channel})" : string.Empty;
        string prefix = owner.Length > 0 ? owner + ": " : string.Empty;
        if (!float.IsFinite(min) || !float.IsFinite(max))
        {
            throw new ArgumentException($"{prefix}range [{min.ToString("R", CultureInfo.InvariantCulture)}, {max.ToString("R", CultureInfo.InvariantCulture)}]{where} must be finite.", nameof(min));
        }

        if (min > max)
        {
            throw new ArgumentException($"{prefix}range min {min.ToString("R", CultureInfo.InvariantCulture)} is greater than max {max.ToString("R", CultureInfo.InvariantCulture)}{where}.", nameof(min));
        }
    }

    private string Format(float[] values) => IsPerChannel
        ? List(values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)), values.Length)
        : values[0].ToString("R", CultureInfo.InvariantCulture);

    private string Format(int[] values) => IsPerChannel
        ? List(values.Select(v => v.ToString(CultureInfo.InvariantCulture)), values.Length)
        : values[0].ToString(CultureInfo.InvariantCulture);

    private static string List(IEnumerable<string> items, int count)
    {
        // Long per-channel lists print their first values and the count, so a model's printout stays readable.
        const int shown = 8;
        string head = string.Join(", ", items.Take(shown));
        return count > shown ? $"[{head}, ... ({count} channels)]" : $"[{head}]";
    }
}
