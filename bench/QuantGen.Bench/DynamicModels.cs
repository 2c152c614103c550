using System;
using System.IO;
using QuantGen.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Bench;

/// <summary>
/// One Linear, as a model bound at Prepare: what the dynamic benchmarks convert and export to ONNX. The member is typed
/// <c>Module&lt;Tensor, Tensor&gt;</c>, which makes the class bound at Prepare (a class the generator traces whole at
/// compile time refuses a dynamic qconfig).
/// </summary>
[Quantize]
public sealed partial class BenchLinear : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> fc;

    /// <summary>A Linear of the given sizes (TorchSharp's initialisation, from the global seed).</summary>
    public BenchLinear(long inFeatures, long outFeatures)
        : base(nameof(BenchLinear))
    {
        fc = Linear(inFeatures, outFeatures);
        RegisterComponents();
    }

    /// <summary>The Linear module.</summary>
    public Linear Layer => (Linear)fc;

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => fc.forward(x);
}

/// <summary>An LSTM's output sequence, as a model bound at Prepare around a given module.</summary>
[Quantize]
public sealed partial class BenchLstm : Module<Tensor, Tensor>
{
    private readonly LSTM lstm;

    /// <summary>Wraps <paramref name="module"/> (the same weights the other peers run).</summary>
    public BenchLstm(LSTM module)
        : base(nameof(BenchLstm))
    {
        lstm = module;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var (output, _, _) = lstm.forward(x);
        return output;
    }
}

/// <summary>Exports a dynamically quantized bound model for ONNX Runtime, as a user would.</summary>
public static class DynamicExports
{
    /// <summary>
    /// Converts <paramref name="observed"/> after one calibration batch (a dynamic layer needs none, but the float outputs
    /// are observed) and writes its int8 export (DynamicQuantizeLinear + MatMulInteger, DynamicQuantizeLSTM) and its float
    /// export (the same layers on the dequantized weights) into <see cref="BenchModels.WorkDirectory"/>, the input's shape
    /// fixed as QuantGen's span form is called with.
    /// </summary>
    /// <returns>The two files.</returns>
    public static (string Int8, string Fp32) Export(Func<Tensor, Tensor> calibrate, Func<IQuantizedModel> convert, Tensor calibration, string stem, int[] inputShape)
    {
        using (torch.no_grad())
        {
            calibrate(calibration).Dispose();
        }

        IQuantizedModel int8 = convert();
        string int8Path = Path.Combine(BenchModels.WorkDirectory, stem + ".dynamic.onnx");
        string fp32Path = Path.Combine(BenchModels.WorkDirectory, stem + ".fp32.onnx");
        OnnxExporter.Export(int8, int8Path, new OnnxExportOptions { InputShape = inputShape, DynamicBatch = false });
        OnnxExporter.Export(int8, fp32Path, new OnnxExportOptions { InputShape = inputShape, DynamicBatch = false, Form = OnnxForm.Float });
        return (int8Path, fp32Path);
    }
}
