using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>Scalar reference int8 fully-connected accumulation: <c>acc[n, o] = Σ_i (qx[n, i] - zx) * (qw[o, i] - zw[o])</c>.</summary>
public static class LinearScalar
{
    // TODO(helper B1)
    public static void Accumulate(int batch, int inFeatures, int outFeatures, ReadOnlySpan<byte> input, int inputZeroPoint, ReadOnlySpan<sbyte> weights, ReadOnlySpan<int> weightZeroPoints, Span<int> accumulators) => throw new NotImplementedException();
}
