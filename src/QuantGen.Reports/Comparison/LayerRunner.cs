using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;

namespace QuantGen.Reports;

/// <summary>Runs one int8 layer by itself on the float model's values at its inputs (the "layer error" of seed 002).</summary>
internal static class LayerRunner
{
    /// <summary>
    /// The layer's own <c>Forward</c> on the float model's input values quantized with the int8 model's qparams
    /// (and layout) at those points; null for a layer type it does not know.
    /// </summary>
    /// <remarks>
    /// The model's entry quantizes the float input itself; a float island's layer is the quantizer of its float
    /// result (or the float op that holds it), so it is fed the float model's value there: all it adds is that quantization.
    /// </remarks>
    public static QTensor? RunAlone(
        GraphNode node, IQuantizedLayer layer,
        IReadOnlyDictionary<string, (float[] Values, int[] Shape)> floatValues, IReadOnlyDictionary<string, QTensor> int8Values)
    {
        QTensor Input(int i)
        {
            string value = node.Inputs[i];
            (float[] values, int[] shape) = floatValues[value];
            QTensor atThatPoint = int8Values[value];
            return QTensor.Quantize(values, shape, atThatPoint.QParams, atThatPoint.Format);
        }

        switch (layer)
        {
            case QuantizeInput quantize:
                (float[] values, int[] shape) = node.Op == GraphOp.Quantize ? floatValues[node.Inputs[0]] : floatValues[node.Output];
                return quantize.Forward(values, shape);
            case FloatOp floatOp:
                // As a float island: the float model's value there, quantized as the int8 model hands it on.
                (float[] floatResult, int[] resultShape) = floatValues[node.Output];
                return floatOp.Output.Forward(floatResult, resultShape);
            case QuantizedConv2d conv: return conv.Forward(Input(0));
            case QuantizedLinear linear: return linear.Forward(Input(0));
            case QuantizedConvTranspose2d convTranspose: return convTranspose.Forward(Input(0));
            case QuantizedBatchNorm2d batchNorm: return batchNorm.Forward(Input(0));
            case QuantizedReLU relu: return relu.Forward(Input(0));
            case QuantizedHardtanh hardtanh: return hardtanh.Forward(Input(0));
            case QuantizedElementwise elementwise: return elementwise.Forward(Input(0));
            case QuantizedMaxPool2d maxPool: return maxPool.Forward(Input(0));
            case QuantizedAvgPool2d avgPool: return avgPool.Forward(Input(0));
            case QuantizedAdaptiveAvgPool2d adaptive: return adaptive.Forward(Input(0));
            case QuantizedUpsampleNearest2d upsample: return upsample.Forward(Input(0));
            case QuantizedFlatten flatten: return flatten.Forward(Input(0));
            case QuantizedReshape reshape: return reshape.Forward(Input(0));
            case QuantizedAdd add: return add.Forward(Input(0), Input(1));
            case QuantizedMul mul: return mul.Forward(Input(0), Input(1));
            case QuantizedConstantOp constantOp: return constantOp.Forward(Input(0));
            case QuantizedMean mean: return mean.Forward(Input(0));
            case QuantizedCat cat: return cat.Forward(Enumerable.Range(0, node.Inputs.Count).Select(Input).ToArray());
            default: return null;
        }
    }
}
