using System;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>Which constant op a <see cref="QuantizedConstantOp"/> is.</summary>
public enum ConstantOperator
{
    /// <summary><c>x * c</c> (aten's <c>quantized::mul_scalar</c>).</summary>
    Mul,

    /// <summary><c>x + c</c> (aten's <c>quantized::add_scalar</c>).</summary>
    Add,
}

/// <summary>
/// A quantized tensor multiplied by or added to a constant, as PyTorch's quantized kernels do it: the output's
/// qparams follow from the input's and the constant (no observer), and the integers are copied, mirrored or
/// requantized — see <see cref="ConstantArithmeticScalar"/> and docs/numerics.md.
/// </summary>
public sealed class QuantizedConstantOp : IQuantizedLayer
{
    /// <summary>Creates the op.</summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Op path, for error messages.</param>
    /// <param name="op">Mul or add.</param>
    /// <param name="constant">The constant.</param>
    /// <exception cref="ArgumentException">The constant is not finite.</exception>
    public QuantizedConstantOp(string model, string layer, ConstantOperator op, double constant)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        if (!double.IsFinite(constant))
        {
            throw new ArgumentException($"{model}.{layer}: {(op == ConstantOperator.Mul ? "mul" : "add")} by a constant needs a finite constant, got {constant}.", nameof(constant));
        }

        if (op is not (ConstantOperator.Mul or ConstantOperator.Add))
        {
            throw new ArgumentException($"{model}.{layer}: unknown constant op {(int)op}.", nameof(op));
        }

        Model = model;
        Layer = layer;
        Operator = op;
        Constant = constant;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Op path, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Mul or add.</summary>
    public ConstantOperator Operator { get; }

    /// <summary>The constant.</summary>
    public double Constant { get; }

    /// <summary>The qparams the result of an input with <paramref name="input"/> qparams has (aten's rules).</summary>
    /// <param name="input">The input's per-tensor qparams.</param>
    /// <returns>The output's qparams.</returns>
    public QParams OutputQParams(QParams input) =>
        Operator == ConstantOperator.Mul ? ConstantArithmeticScalar.Mul(input, Constant).Output : ConstantArithmeticScalar.Add(input, Constant).Output;

    /// <summary>The op on a per-tensor quint8 or qint8 tensor; the result has the input's shape and layout.</summary>
    /// <exception cref="ArgumentException">The input is per-channel.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>As <see cref="Forward(QTensor)"/>, writing into <paramref name="output"/> (which may hold the input); null allocates.</summary>
    /// <exception cref="ArgumentException">The input is per-channel.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        LayerChecks.PerTensorInput($"{Model}.{Layer}", input, nameof(input));
        QParams qparams;
        ConstantIntegerRule rule;
        int steps = 0;
        try
        {
            if (Operator == ConstantOperator.Mul)
            {
                (qparams, rule) = ConstantArithmeticScalar.Mul(input.QParams, Constant);
            }
            else
            {
                (qparams, rule, steps) = ConstantArithmeticScalar.Add(input.QParams, Constant);
            }
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{Model}.{Layer}: {e.Message}", nameof(input), e);
        }

        ReadOnlySpan<byte> view = LayerScratch.Current.InputView(0, input, input.Format);
        QTensor result = LayerChecks.Output(output, input.ShapeSpan, qparams, input.Format);
        ConstantArithmeticScalar.Apply(view, input.QParams, result.StorageBytes, qparams, rule, steps);
        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>Like PyTorch's op name: <c>quantized.mul_scalar(other=0.5)</c> / <c>quantized.add_scalar(other=3.0)</c>.</summary>
    public override string ToString() =>
        $"quantized.{(Operator == ConstantOperator.Mul ? "mul" : "add")}_scalar(other={TorchText.PythonFloat(Constant)})";
}
