using System;
using System.Linq;

namespace QuantGen;

/// <summary>
/// Scale(s) and zero point(s) of a quantized tensor: one pair per tensor (<see cref="Axis"/> = -1),
/// or one pair per channel along <see cref="Axis"/>.
/// </summary>
public sealed class QParams
{
    private QParams(float[] scales, int[] zeroPoints, int axis, QuantDType dtype)
    {
        if (scales.Length != zeroPoints.Length)
        {
            throw new ArgumentException($"QParams: {scales.Length} scales but {zeroPoints.Length} zero points.");
        }

        Scales = scales;
        ZeroPoints = zeroPoints;
        Axis = axis;
        DType = dtype;
    }

    /// <summary>One scale per tensor, or one per channel.</summary>
    public float[] Scales { get; }

    /// <summary>One zero point per tensor, or one per channel.</summary>
    public int[] ZeroPoints { get; }

    /// <summary>The channel axis for per-channel parameters; -1 for per-tensor.</summary>
    public int Axis { get; }

    /// <summary>The quantized element type these parameters are for.</summary>
    public QuantDType DType { get; }

    /// <summary>True when there is one scale per channel.</summary>
    public bool IsPerChannel => Axis >= 0;

    /// <summary>The per-tensor scale (throws for per-channel parameters).</summary>
    public float Scale => IsPerChannel ? throw new InvalidOperationException("Per-channel QParams have no single scale; use Scales.") : Scales[0];

    /// <summary>The per-tensor zero point (throws for per-channel parameters).</summary>
    public int ZeroPoint => IsPerChannel ? throw new InvalidOperationException("Per-channel QParams have no single zero point; use ZeroPoints.") : ZeroPoints[0];

    /// <summary>Per-tensor parameters.</summary>
    public static QParams PerTensor(float scale, int zeroPoint, QuantDType dtype) =>
        new([scale], [zeroPoint], -1, dtype);

    /// <summary>Per-channel parameters along <paramref name="axis"/>.</summary>
    public static QParams PerChannel(float[] scales, int[] zeroPoints, int axis, QuantDType dtype)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(axis);
        return new(scales, zeroPoints, axis, dtype);
    }

    /// <inheritdoc/>
    public override string ToString() => IsPerChannel
        ? $"scales=[{string.Join(", ", Scales.Select(s => s.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}], zero_points=[{string.Join(", ", ZeroPoints)}], axis={Axis}, dtype={DType.ToTorchString()}"
        : $"scale={Scale.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}, zero_point={ZeroPoint}, dtype={DType.ToTorchString()}";
}
