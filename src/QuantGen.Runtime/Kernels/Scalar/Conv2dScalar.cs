using System;

namespace QuantGen.Kernels.Scalar;

/// <summary>
/// Scalar reference int8 convolution accumulation: <c>acc = Σ (qx - zx) * (qw - zw[oc])</c> in int32,
/// padding counting as the input zero point (so it adds nothing).
/// </summary>
public static class Conv2dScalar
{
    // TODO(helper B1)

    /// <param name="geometry">Shapes; validated.</param>
    /// <param name="inputNhwc">uint8 input, [N][H][W][C].</param>
    /// <param name="inputZeroPoint">zx.</param>
    /// <param name="weightsOhwi">int8 weights, [OutC][KH][KW][InC/groups].</param>
    /// <param name="weightZeroPoints">zw per output channel (zeros for symmetric weights).</param>
    /// <param name="accumulatorsNhwc">int32 output, [N][OH][OW][OutC].</param>
    public static void Accumulate(in Conv2dGeometry geometry, ReadOnlySpan<byte> inputNhwc, int inputZeroPoint, ReadOnlySpan<sbyte> weightsOhwi, ReadOnlySpan<int> weightZeroPoints, Span<int> accumulatorsNhwc) => throw new NotImplementedException();
}
