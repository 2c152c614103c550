using System;
using System.IO;
using System.Reflection;
using Google.Protobuf;
using QuantGen.Onnx.Protobuf;
using QuantGen.Onnx.Writing;

namespace QuantGen.Onnx;

/// <summary>
/// Exports a converted QuantGen model (any generated <c>M.Quantized</c>) to ONNX, in QDQ form by default:
/// QuantizeLinear on the float input, then for each int8 op DequantizeLinear → float op → QuantizeLinear
/// with the layer's qparams, int8 weights (per-channel where the layer has them) and int32 biases — the
/// form ONNX Runtime fuses into QLinearConv, QGemm, QLinearAdd, QLinearConcat, QLinearAveragePool ...
/// and TensorRT consumes — or, with <see cref="OnnxForm.QOperator"/>, those quantized operators written
/// directly. See docs/onnx-export.md.
/// </summary>
/// <example>
/// <code>
/// M.Quantized int8 = observed.Convert();
/// OnnxExporter.Export(int8, "m.onnx");                                             // QDQ, opset 21
/// OnnxExporter.Export(int8, "m.qop.onnx", new OnnxExportOptions { Form = OnnxForm.QOperator });
/// </code>
/// </example>
public static class OnnxExporter
{
    /// <summary>The producer name written into every model.</summary>
    public const string ProducerName = "QuantGen";

    /// <summary>Writes <paramref name="model"/> as an ONNX file.</summary>
    /// <param name="model">A converted model.</param>
    /// <param name="path">The file to create or overwrite.</param>
    /// <param name="options">Opset, form, input shape; null for the defaults.</param>
    /// <exception cref="NotSupportedException">The model has a float island, or an op or option ONNX cannot express; the message names model and layer.</exception>
    /// <exception cref="InvalidOperationException">The model's graph and layers disagree.</exception>
    public static void Export(IQuantizedModel model, string path, OnnxExportOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ModelProto proto = ToModelProto(model, options);
        using FileStream file = File.Create(path);
        proto.WriteTo(file);
    }

    /// <summary>The ONNX model's bytes.</summary>
    /// <param name="model">A converted model.</param>
    /// <param name="options">Opset, form, input shape; null for the defaults.</param>
    /// <returns>A serialized <c>onnx.ModelProto</c>.</returns>
    /// <exception cref="NotSupportedException">The model has a float island, or an op or option ONNX cannot express; the message names model and layer.</exception>
    /// <exception cref="InvalidOperationException">The model's graph and layers disagree.</exception>
    public static byte[] Export(IQuantizedModel model, OnnxExportOptions? options = null) =>
        ToModelProto(model, options).ToByteArray();

    /// <summary>The ONNX model as protobuf messages, for callers that post-process it before writing.</summary>
    /// <param name="model">A converted model.</param>
    /// <param name="options">Opset, form, input shape; null for the defaults.</param>
    /// <returns>The model.</returns>
    /// <exception cref="NotSupportedException">The model has a float island, or an op or option ONNX cannot express; the message names model and layer.</exception>
    /// <exception cref="InvalidOperationException">The model's graph and layers disagree.</exception>
    public static ModelProto ToModelProto(IQuantizedModel model, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new OnnxExportOptions();
        options.Validate();
        var graph = model.Graph ?? throw new ArgumentException("The model has no graph.", nameof(model));
        // A model bound at Prepare gives its float ops the float input itself (its forward(Tensor)); the export does the same.
        var writer = new ModelWriter(graph, model.Layers, model.Input, options, floatOpsReadTheFloatInput: model is QuantGen.Binding.BoundQuantizedModel);
        GraphProto graphProto = writer.Write();

        var proto = new ModelProto
        {
            IrVersion = IrVersion(options.Opset),
            ProducerName = ProducerName,
            ProducerVersion = typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0",
            DocString = $"{graph.Model} exported by QuantGen ({options.Form} form).",
            Graph = graphProto,
        };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = options.Opset });
        foreach (string domain in writer.Domains)
        {
            // com.microsoft (QGemm, QLinearAdd, QLinearConcat, QLinearAveragePool ...): ORT's contrib ops are version 1.
            proto.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = 1 });
        }

        proto.MetadataProps.Add(new StringStringEntryProto { Key = "quantgen.model", Value = graph.Model });
        proto.MetadataProps.Add(new StringStringEntryProto { Key = "quantgen.graph_hash", Value = graph.Hash });
        proto.MetadataProps.Add(new StringStringEntryProto { Key = "quantgen.form", Value = options.Form.ToString() });
        return proto;
    }

    /// <summary>The IR version that goes with an opset (ONNX's versioning table): 13 → 7, 14–18 → 8, 19–20 → 9, 21 → 10.</summary>
    /// <param name="opset">An ai.onnx opset.</param>
    /// <returns>The IR version to write.</returns>
    public static long IrVersion(int opset) => opset switch
    {
        <= 13 => 7,
        <= 18 => 8,
        <= 20 => 9,
        _ => 10,
    };
}
