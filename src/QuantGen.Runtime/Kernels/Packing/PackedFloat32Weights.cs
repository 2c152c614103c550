using System;

namespace QuantGen.Kernels.Packing;

/// <summary>
/// float32 weights <c>[outFeatures, inFeatures]</c> of one GEMM, laid out once for the vector width
/// <see cref="Float32GemmKernel"/> runs: at width 0 (the scalar reference) as they are; at 256 or 512 bits in panels of
/// <see cref="PanelWidth"/> output features (two vectors), each panel <c>[K][PanelWidth]</c> so that one k step of a
/// panel is two contiguous vector loads. Features past <see cref="OutFeatures"/> in the last panel are zero weights,
/// computed and dropped.
/// </summary>
public sealed class PackedFloat32Weights
{
    internal PackedFloat32Weights(float[] values, int outFeatures, int inFeatures, int vectorBits)
    {
        Values = values;
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
        VectorBits = vectorBits;
        PanelWidth = vectorBits == 0 ? 1 : 2 * (vectorBits / 32);
        Panels = vectorBits == 0 ? outFeatures : (outFeatures + PanelWidth - 1) / PanelWidth;
    }

    /// <summary>Output features (N).</summary>
    public int OutFeatures { get; }

    /// <summary>Input features (K).</summary>
    public int InFeatures { get; }

    /// <summary>The vector width these panels are for: 512, 256, or 0 for the scalar reference's plain layout.</summary>
    public int VectorBits { get; }

    /// <summary>Output features per panel: two vectors (32 at 512 bits, 16 at 256), 1 for the plain layout.</summary>
    public int PanelWidth { get; }

    /// <summary>Number of panels.</summary>
    internal int Panels { get; }

    /// <summary>The packed values (plain <c>[N, K]</c> at width 0).</summary>
    internal float[] Values { get; }

    /// <summary>Packs <paramref name="weight"/> for <paramref name="vectorBits"/>.</summary>
    internal static PackedFloat32Weights Pack(ReadOnlySpan<float> weight, int outFeatures, int inFeatures, int vectorBits)
    {
        if (outFeatures < 1 || inFeatures < 1 || (long)outFeatures * inFeatures != weight.Length)
        {
            throw new ArgumentException($"Float32 GEMM: a weight [{outFeatures}, {inFeatures}] needs {(long)outFeatures * inFeatures} values, got {weight.Length}.", nameof(weight));
        }

        if (vectorBits == 0)
        {
            return new PackedFloat32Weights(weight.ToArray(), outFeatures, inFeatures, 0);
        }

        int panelWidth = 2 * (vectorBits / 32);
        int panels = (outFeatures + panelWidth - 1) / panelWidth;
        var values = new float[checked((long)panels * panelWidth * inFeatures)];
        for (int n = 0; n < outFeatures; n++)
        {
            long panelStart = (long)(n / panelWidth) * panelWidth * inFeatures;
            int lane = n % panelWidth;
            ReadOnlySpan<float> row = weight.Slice(n * inFeatures, inFeatures);
            for (int k = 0; k < inFeatures; k++)
            {
                values[panelStart + ((long)k * panelWidth) + lane] = row[k];
            }
        }

        return new PackedFloat32Weights(values, outFeatures, inFeatures, vectorBits);
    }
}
