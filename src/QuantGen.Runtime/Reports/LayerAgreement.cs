using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using QuantGen.Kernels.Scalar;
using QuantGen.Modules;
using TorchSharp;

namespace QuantGen.Reports;

/// <summary>How one layer's int8 output compares with its QDQ reference op given the same input.</summary>
/// <param name="Layer">Op path ("layer1.0.conv1").</param>
/// <param name="Elements">Number of output elements.</param>
/// <param name="Exact">Elements where int8 and reference agree exactly.</param>
/// <param name="OffByOne">Elements one quantization step apart.</param>
/// <param name="MaxSteps">Largest difference, in quantization steps.</param>
public sealed record LayerAgreementRow(string Layer, int Elements, int Exact, int OffByOne, int MaxSteps)
{
    /// <summary>Share of exactly equal elements.</summary>
    public double ExactShare => Elements == 0 ? 1.0 : (double)Exact / Elements;

    /// <summary>
    /// The exact share as a percentage with two decimals, rounded down, so that one mismatch among 100,000
    /// elements reads 99.99, never 100.00 (which only every element agreeing shows).
    /// </summary>
    public string ExactPercent =>
        Elements == 0 ? "100.00" : (Exact * 10000L / Elements / 100.0).ToString("F2", CultureInfo.InvariantCulture);
}

/// <summary>
/// Per-op agreement between a generated Quantized form and its Reference (QDQ) form: runs the int8 model
/// recording every layer's output, then the reference model with every op fed the int8 model's input
/// (the reference tap substitutes the dequantized int8 output for each layer's result), so each row
/// measures one op, not the drift accumulated before it.
/// </summary>
public sealed class LayerAgreement
{
    private readonly Dictionary<string, QTensor> _int8 = new(StringComparer.Ordinal);
    private readonly List<LayerAgreementRow> _rows = [];

    private LayerAgreement()
    {
    }

    /// <summary>One row per layer, in forward order.</summary>
    public IReadOnlyList<LayerAgreementRow> Rows => _rows;

    /// <summary>Compares every layer that both forms report.</summary>
    /// <param name="runInt8">Runs the Quantized forward with the given tap.</param>
    /// <param name="runReference">Runs the Reference forward with the given tap.</param>
    public static LayerAgreement Measure(Action<IQuantizedTap> runInt8, Action<IReferenceTap> runReference)
    {
        ArgumentNullException.ThrowIfNull(runInt8);
        ArgumentNullException.ThrowIfNull(runReference);
        var agreement = new LayerAgreement();
        runInt8(new Recorder(agreement));
        using (torch.NewDisposeScope())
        {
            runReference(new Comparer(agreement));
        }

        return agreement;
    }

    /// <summary>A fixed-width table: layer, elements, exact share, off-by-one count, max steps.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        int width = 5;
        foreach (LayerAgreementRow row in _rows)
        {
            width = Math.Max(width, row.Layer.Length);
        }

        text.Append("layer".PadRight(width)).AppendLine("  elements    exact  off-by-1  max steps");
        foreach (LayerAgreementRow row in _rows)
        {
            text.Append(row.Layer.PadRight(width))
                .Append(row.Elements.ToString(CultureInfo.InvariantCulture).PadLeft(10))
                .Append(row.ExactPercent.PadLeft(8)).Append('%')
                .Append(row.OffByOne.ToString(CultureInfo.InvariantCulture).PadLeft(10))
                .Append(row.MaxSteps.ToString(CultureInfo.InvariantCulture).PadLeft(11))
                .AppendLine();
        }

        return text.ToString();
    }

    private sealed class Recorder(LayerAgreement owner) : IQuantizedTap
    {
        public void OnLayer(string layer, QTensor output) => owner._int8[layer] = output;
    }

    private sealed class Comparer(LayerAgreement owner) : IReferenceTap
    {
        public torch.Tensor? OnLayer(string layer, torch.Tensor output, QParams qparams)
        {
            if (!owner._int8.TryGetValue(layer, out QTensor? int8))
            {
                return null;
            }

            float[] reference = TensorInterop.ToArray(output, out _);
            int[] actual = int8.IntRepr();
            if (reference.Length != actual.Length)
            {
                throw new InvalidOperationException($"{layer}: the reference output has {reference.Length} elements, the int8 output {actual.Length}.");
            }

            // The reference values are exactly representable (fake-quantized), so re-quantizing recovers
            // the integers the reference op stands for.
            float inverseScale = 1.0f / qparams.Scale;
            int exact = 0, offByOne = 0, maxSteps = 0;
            for (int i = 0; i < reference.Length; i++)
            {
                int expected = QuantizeScalar.QuantizeValue(reference[i], inverseScale, qparams.ZeroPoint, qparams.DType.Min(), qparams.DType.Max());
                int steps = Math.Abs(expected - actual[i]);
                exact += steps == 0 ? 1 : 0;
                offByOne += steps == 1 ? 1 : 0;
                maxSteps = Math.Max(maxSteps, steps);
            }

            owner._rows.Add(new LayerAgreementRow(layer, reference.Length, exact, offByOne, maxSteps));

            // Go on from the int8 model's value, so the next op is compared on identical input.
            return torch.tensor(int8.Dequantize(), Array.ConvertAll(int8.Shape, d => (long)d));
        }
    }
}
