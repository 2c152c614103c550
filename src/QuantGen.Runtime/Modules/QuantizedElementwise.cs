using System;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Modules;

/// <summary>
/// A unary elementwise op on int8 data (LeakyReLU, Hardswish, Hardsigmoid, SiLU, Sigmoid, Tanh, ELU, GELU, ...) by a
/// 256-entry table: for each input integer q the table holds <c>quantize_out(f(dequantize_in(q)))</c>, so the op is
/// exactly its QDQ reference (dequantize → the float op → quantize) for every input, whatever f is. The table is
/// computed once, at Convert, from the float op itself; the input's qparams are fixed by calibration.
/// </summary>
public sealed class QuantizedElementwise : IQuantizedLayer
{
    private readonly byte[] _table;

    /// <summary>Creates the op.</summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">Layer name.</param>
    /// <param name="function">The float op's name as PyTorch prints it ("LeakyReLU(negative_slope=0.1)").</param>
    /// <param name="inputQParams">The per-tensor qparams the table was made for.</param>
    /// <param name="outputQParams">The per-tensor qparams of the result.</param>
    /// <param name="table">256 output integers (in the output dtype), one per input integer from the dtype's minimum up.</param>
    /// <exception cref="ArgumentException">Per-channel qparams, a table of another length, or an entry outside the output dtype.</exception>
    public QuantizedElementwise(string model, string layer, string function, QParams inputQParams, QParams outputQParams, int[] table)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(table);
        string name = $"{model}.{layer}";
        LayerChecks.ActivationQParams(name, "input", inputQParams, nameof(inputQParams));
        LayerChecks.ActivationQParams(name, "output", outputQParams, nameof(outputQParams));
        if (table.Length != 256)
        {
            throw new ArgumentException($"{name}: an elementwise table has 256 entries, one per input integer; got {table.Length}.", nameof(table));
        }

        (int min, int max) = outputQParams.DType == QuantDType.QInt8 ? (-128, 127) : (0, 255);
        int outputOffset = UInt8View.Offset(outputQParams.DType);
        _table = new byte[256];
        for (int i = 0; i < 256; i++)
        {
            if (table[i] < min || table[i] > max)
            {
                throw new ArgumentException($"{name}: table entry {i} is {table[i]}, outside {outputQParams.DType.ToTorchString()} ({min}..{max}).", nameof(table));
            }

            _table[i] = (byte)(table[i] + outputOffset);
        }

        Model = model;
        Layer = layer;
        Function = function;
        InputQParams = inputQParams;
        OutputQParams = outputQParams;
    }

    /// <inheritdoc/>
    public string Model { get; }

    /// <inheritdoc/>
    public string Layer { get; }

    /// <summary>The float op, as PyTorch prints it.</summary>
    public string Function { get; }

    /// <summary>The input qparams the table was made for.</summary>
    public QParams InputQParams { get; }

    /// <summary>The result's qparams.</summary>
    public QParams OutputQParams { get; }

    /// <summary>The output integer for each input integer, from the input dtype's minimum up (a copy).</summary>
    public int[] Table
    {
        get
        {
            int offset = UInt8View.Offset(OutputQParams.DType);
            return Array.ConvertAll(_table, b => b - offset);
        }
    }

    /// <summary>A new tensor: every element mapped through the table.</summary>
    /// <exception cref="ArgumentException">The input's qparams are not the ones the table was made for.</exception>
    public QTensor Forward(QTensor input) => Forward(input, null);

    /// <summary>As <see cref="Forward(QTensor)"/>, writing into <paramref name="output"/> (which may hold the input); null allocates.</summary>
    /// <exception cref="ArgumentException">The input's qparams are not the ones the table was made for.</exception>
    public QTensor Forward(QTensor input, Buffers.BufferSlot? output)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.QParams.IsPerChannel || input.DType != InputQParams.DType || input.Scale != InputQParams.Scale || input.ZeroPoint != InputQParams.ZeroPoint)
        {
            throw new ArgumentException($"{Model}.{Layer}: {Function} was tabulated for input {InputQParams}; got {input.DType.ToTorchString()} {TorchText.Shape(input.ShapeSpan)} ({input.QParams}).", nameof(input));
        }

        ReadOnlySpan<byte> view = LayerScratch.Current.InputView(0, input, input.Format);
        QTensor result = LayerChecks.Output(output, input.ShapeSpan, OutputQParams, input.Format);
        LookupScalar.Apply(view, result.StorageBytes, _table);
        LayerChecks.FinishOutput(result);
        return result;
    }

    /// <summary>The float op's repr, with the output qparams as PyTorch prints quantized modules.</summary>
    public override string ToString() => $"Quantized{Function}(scale={TorchText.PythonFloat(OutputQParams.Scale)}, zero_point={OutputQParams.ZeroPoint})";
}
