using System;
using System.CommandLine;
using System.IO;
using System.Linq;
using QuantGen.Onnx;

namespace QuantGen.Tool.Commands;

/// <summary><c>quantgen export model.qgen --onnx out.onnx</c>: the int8 model as ONNX (QDQ by default) through QuantGen.Onnx.</summary>
internal static class ExportCommand
{
    public static Command Create(TextWriter output)
    {
        var file = new Argument<FileInfo>("model") { Description = "A .qgen file saved by M.Quantized.Save." };
        var onnx = new Option<FileInfo>("--onnx") { Description = "The ONNX file to write.", Required = true };
        var form = new Option<OnnxForm>("--form") { Description = "Qdq (QuantizeLinear/DequantizeLinear around each op; ONNX Runtime and TensorRT fuse them) or QOperator (QLinearConv, QGemm ... written directly).", DefaultValueFactory = _ => OnnxForm.Qdq };
        var opset = new Option<int>("--opset") { Description = $"ONNX opset, {OnnxExportOptions.MinOpset} to {OnnxExportOptions.MaxOpset}.", DefaultValueFactory = _ => OnnxExportOptions.MaxOpset };
        var shape = new Option<string?>("--shape") { Description = "The input's shape, e.g. 1,3,224,224 (default: symbolic except the channels)." };
        Option<string?> assembly = BenchCommand.AssemblyOption();
        var command = new Command("export", "Writes a .qgen model as an ONNX file (QDQ form by default).")
        {
            file,
            onnx,
            form,
            opset,
            shape,
            assembly,
        };
        command.SetAction(parsed =>
        {
            string path = parsed.GetValue(file)!.FullName;
            IQuantizedModel model = ModelLoading.Load(path, parsed.GetValue(assembly));
            string target = parsed.GetValue(onnx)!.FullName;
            var options = new OnnxExportOptions
            {
                Form = parsed.GetValue(form),
                Opset = parsed.GetValue(opset),
                InputShape = parsed.GetValue(shape) is string text ? BenchCommand.ParseShape(text) : null,
            };
            OnnxExporter.Export(model, target, options);
            output.WriteLine($"Wrote {target}: model {model.Graph.Model}, {options.Form} form, opset {options.Opset}, {model.Layers.Count} int8 layers, {new FileInfo(target).Length:N0} bytes.");
            return QuantGenTool.Success;
        });
        return command;
    }
}
