using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace RealModels;

/// <summary>
/// How close int8 logits are to the float model's: SQNR, cosine similarity and top-1 agreement. Used by
/// Program.cs and meant to be reused by the tests (they reference this project).
/// </summary>
public static class Comparison
{
    /// <summary>The pass mark of this example and of the tests that reuse it.</summary>
    public const double MinSqnrDb = 25.0;

    /// <summary>
    /// A top-1 disagreement counts as a near tie when, in the float logits, the class int8 picked is within this
    /// many RMS errors (of that row, int8 vs float) of the float top-1 class: quantization noise of the measured
    /// size explains it. Random-weight models often have such ties (top-1 and top-2 logits a few % apart).
    /// </summary>
    public const double NearTieErrors = 3.0;

    /// <summary>One comparison of a batch of logits [N, classes].</summary>
    /// <param name="SqnrDb">10·log10(Σf² / Σ(f−q)²); +∞ when the two are identical, NaN if q has NaN/∞.</param>
    /// <param name="Cosine">Cosine similarity of the two flattened batches.</param>
    /// <param name="Top1Agree">Rows whose argmax is the same in both.</param>
    /// <param name="Rows">Rows compared (the batch size).</param>
    /// <param name="NearTies">Disagreeing rows that are near ties (see <see cref="NearTieErrors"/>).</param>
    /// <param name="FloatTop1">argmax per row of the float logits.</param>
    /// <param name="Int8Top1">argmax per row of the int8 logits.</param>
    /// <param name="FloatMargins">Per row: float (top-1 − top-2) logit gap divided by the row's RMS int8 error
    /// (+∞ when the row has no error); below ~3 the top-1 class may flip by quantization noise alone.</param>
    public sealed record Result(
        double SqnrDb, double Cosine, int Top1Agree, int Rows, int NearTies,
        long[] FloatTop1, long[] Int8Top1, double[] FloatMargins)
    {
        /// <summary>Rows where the top-1 classes differ.</summary>
        public int Top1Disagree => Rows - Top1Agree;

        /// <summary>
        /// SQNR at least <paramref name="minSqnrDb"/> and every row's top-1 class the same (with
        /// <paramref name="allowNearTies"/>, disagreements that are near ties are accepted).
        /// </summary>
        public bool Passes(double minSqnrDb = MinSqnrDb, bool allowNearTies = false) =>
            Failure(minSqnrDb, allowNearTies) is null;

        /// <summary>Why <see cref="Passes"/> is false, or null when it is true.</summary>
        public string? Failure(double minSqnrDb = MinSqnrDb, bool allowNearTies = false)
        {
            if (double.IsNaN(SqnrDb)) return "the int8 output has NaN or infinite values";
            if (SqnrDb < minSqnrDb) return $"SQNR {SqnrDb:F1} dB is below {minSqnrDb:F0} dB";
            int counted = allowNearTies ? Top1Disagree - NearTies : Top1Disagree;
            if (counted > 0)
            {
                string ties = NearTies == 0 ? "none of them a near tie"
                    : NearTies == Top1Disagree ? (Top1Disagree == 1 ? "a near tie" : "all near ties")
                    : $"{NearTies} of them near ties";
                return $"top-1 class differs in {Top1Disagree} of {Rows} rows ({ties}: float top-1 within {NearTieErrors:F0} RMS errors of int8's pick)";
            }

            return null;
        }

        public override string ToString() =>
            $"SQNR {SqnrDb:F1} dB, cosine {Cosine:F5}, top-1 agreement {Top1Agree}/{Rows}" +
            (Top1Disagree > 0 ? $" ({NearTies} near ties)" : "");
    }

    /// <summary>Compares <paramref name="reference"/> (float) with <paramref name="test"/> (int8), both [N, classes].</summary>
    public static Result Compare(Tensor reference, Tensor test)
    {
        if (reference.dim() != 2 || !reference.shape.SequenceEqual(test.shape))
        {
            throw new ArgumentException(
                $"Expected two [N, classes] tensors of one shape, got [{string.Join(", ", reference.shape)}] and [{string.Join(", ", test.shape)}].");
        }

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        Tensor f = reference.detach().to_type(ScalarType.Float64);
        Tensor q = test.detach().to_type(ScalarType.Float64);
        long[] floatTop = f.argmax(1).data<long>().ToArray();
        long[] int8Top = q.argmax(1).data<long>().ToArray();
        double[] rowError = (f - q).square().mean(new long[] { 1 }).sqrt().data<double>().ToArray();
        double[,] fv = ToArray2(f);

        int rows = floatTop.Length, agree = 0, nearTies = 0;
        var margins = new double[rows];
        for (int i = 0; i < rows; i++)
        {
            double top1 = fv[i, floatTop[i]], top2 = double.NegativeInfinity;
            for (int j = 0; j < fv.GetLength(1); j++)
            {
                if (j != floatTop[i]) top2 = Math.Max(top2, fv[i, j]);
            }

            margins[i] = rowError[i] > 0 ? (top1 - top2) / rowError[i] : double.PositiveInfinity;
            if (floatTop[i] == int8Top[i]) agree++;
            else if (top1 - fv[i, int8Top[i]] <= NearTieErrors * rowError[i]) nearTies++;
        }

        return new Result(SqnrDb(reference, test), Cosine(reference, test), agree, rows, nearTies, floatTop, int8Top, margins);
    }

    /// <summary>Signal-to-quantization-noise ratio in dB: 10·log10(Σf² / Σ(f−q)²), summed in double.</summary>
    public static double SqnrDb(Tensor reference, Tensor test)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        Tensor f = reference.detach().to_type(ScalarType.Float64);
        Tensor q = test.detach().to_type(ScalarType.Float64);
        double signal = f.square().sum().item<double>();
        double noise = (f - q).square().sum().item<double>();
        if (double.IsNaN(noise) || double.IsInfinity(noise)) return double.NaN;
        if (noise == 0) return double.PositiveInfinity;
        return 10 * Math.Log10(signal / noise);
    }

    /// <summary>Cosine similarity of the two tensors taken as single flat vectors.</summary>
    public static double Cosine(Tensor reference, Tensor test)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        Tensor f = reference.detach().to_type(ScalarType.Float64).flatten();
        Tensor q = test.detach().to_type(ScalarType.Float64).flatten();
        double dot = (f * q).sum().item<double>();
        double norms = Math.Sqrt(f.square().sum().item<double>() * q.square().sum().item<double>());
        return norms == 0 ? double.NaN : dot / norms;
    }

    /// <summary>How many rows of [N, classes] logits have the same argmax.</summary>
    public static int Top1Agreement(Tensor reference, Tensor test)
    {
        using var scope = torch.NewDisposeScope();
        return (int)reference.argmax(1).eq(test.argmax(1)).sum().item<long>();
    }

    private static double[,] ToArray2(Tensor t)
    {
        long rows = t.shape[0], cols = t.shape[1];
        double[] flat = t.contiguous().data<double>().ToArray();
        var result = new double[rows, cols];
        for (long i = 0; i < rows; i++)
        {
            for (long j = 0; j < cols; j++)
            {
                result[i, j] = flat[i * cols + j];
            }
        }

        return result;
    }
}
