using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>Scalar reference quantized ReLU: <c>q = max(q, zp)</c>; scale and zero point pass through.</summary>
public static class ReluScalar
{
    // TODO(helper B1)
    public static void Apply(ReadOnlySpan<byte> input, Span<byte> output, int zeroPoint) => throw new NotImplementedException();
}
