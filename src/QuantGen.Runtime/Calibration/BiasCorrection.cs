using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using QuantGen.Modules;
using QuantGen.Reports;
using TorchSharp;

namespace QuantGen.Calibration;

/// <summary>What the float side of bias correction compares each int8 layer with.</summary>
public enum BiasCorrectionReference
{
    /// <summary>
    /// The float model run on the same float batch: E[float output] − E[int8 output] then also removes the mean shift
    /// that errors of earlier layers carry into this one (a ReLU turns zero-mean noise into a positive shift). The
    /// default; the empirical bias correction of Qualcomm's AIMET.
    /// </summary>
    FloatModel,

    /// <summary>
    /// PyTorch's <c>torch.ao.quantization._correct_bias</c>: the float op is fed exactly the int8 model's (dequantized)
    /// input to that layer (its shadow module), so each layer corrects only its own error.
    /// </summary>
    LayerInput,
}

/// <summary>The correction applied to one layer.</summary>
/// <param name="Layer">Layer name ("layer1.0.conv1").</param>
/// <param name="BiasBefore">Its float bias before (zeros when it had none).</param>
/// <param name="BiasAfter">Its float bias after.</param>
/// <param name="FloatMean">E[float output] per output channel, over the calibration batches.</param>
/// <param name="Int8Mean">E[dequantized int8 output] per output channel, measured just before this layer was corrected.</param>
public sealed record BiasCorrectionLayer(string Layer, float[] BiasBefore, float[] BiasAfter, double[] FloatMean, double[] Int8Mean)
{
    /// <summary>The largest |bias change| over the channels.</summary>
    public double MaxAbsShift => BiasAfter.Zip(BiasBefore, (a, b) => Math.Abs((double)a - b)).DefaultIfEmpty(0).Max();
}

/// <summary>
/// Bias correction from calibration data (Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias
/// Correction", 2019, in its empirical form; PyTorch's <c>_correct_bias</c>): for every int8 conv and linear layer, in
/// forward order, <c>bias_c += E[float output_c] − E[dequantized int8 output_c]</c>, the expectation taken over the
/// calibration batches and every position except the channel axis (axis 1). Layers are corrected one after the other,
/// each measured with the layers before it already corrected. Works on any generated model: its <c>Quantized</c>
/// form and its <c>Observed</c> form's tapped forward.
/// </summary>
/// <remarks>
/// <para>
/// A layer with a fused ReLU is compared after the ReLU, as PyTorch does (the int8 layer has no pre-activation output).
/// The biases are changed in place (<see cref="QuantizedConv2d.SetBias"/>, <see cref="QuantizedLinear.SetBias"/>), and
/// the weights and qparams are not touched, so a corrected model saves and loads like any other.
/// </para>
/// <para>
/// The float side runs <c>Observed.forward(input, tap)</c>, whose observers go on recording: convert every model you
/// want from an Observed model before correcting with it.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// M.Quantized int8 = observed.Convert();
/// BiasCorrection.Apply(int8, observed.forward, calibrationBatches);
/// </code>
/// </example>
public static class BiasCorrection
{
    /// <summary>Corrects the biases of every int8 conv and linear layer of <paramref name="model"/>, in place.</summary>
    /// <param name="model">The converted model (a generated <c>M.Quantized</c>).</param>
    /// <param name="floatForward">The float model with a tap: the generated <c>observed.forward</c> (<c>M.Observed.forward(Tensor, IFloatTap?)</c>).</param>
    /// <param name="batches">Calibration batches (float32, the model's input shape); read several times.</param>
    /// <param name="reference">What each int8 layer is compared with.</param>
    /// <param name="layers">Names of the layers to correct; null for every conv and linear layer.</param>
    /// <returns>One entry per corrected layer, in forward order.</returns>
    /// <exception cref="ArgumentException">No batches, a layer name the model does not have or that is not a conv/linear layer, or a
    /// float output whose channel count differs from the int8 layer's (the message names the layer).</exception>
    public static IReadOnlyList<BiasCorrectionLayer> Apply(
        IQuantizedModel model,
        Func<torch.Tensor, IFloatTap?, torch.Tensor> floatForward,
        IEnumerable<torch.Tensor> batches,
        BiasCorrectionReference reference = BiasCorrectionReference.FloatModel,
        IEnumerable<string>? layers = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Apply(model.Layers, model.Input, model.forward, floatForward, batches, reference, layers);
    }

    /// <summary>
    /// As the other overload, for a model given by its parts: its layers in forward order, the layer quantizing its input,
    /// and its int8 forward with a tap.
    /// </summary>
    /// <param name="modelLayers">The model's layers in forward order; the conv and linear ones among them are corrected.</param>
    /// <param name="input">The layer that quantizes the float input.</param>
    /// <param name="int8Forward">The int8 forward with a tap (<c>int8.forward(QTensor, IQuantizedTap?)</c>).</param>
    /// <param name="floatForward">The float model with a tap (<c>observed.forward(Tensor, IFloatTap?)</c>).</param>
    /// <param name="batches">Calibration batches; read several times.</param>
    /// <param name="reference">What each int8 layer is compared with.</param>
    /// <param name="layers">Names of the layers to correct; null for every conv and linear layer.</param>
    /// <returns>One entry per corrected layer, in forward order.</returns>
    /// <exception cref="ArgumentException">As the other overload.</exception>
    public static IReadOnlyList<BiasCorrectionLayer> Apply(
        IEnumerable<IQuantizedLayer> modelLayers,
        QuantizeInput input,
        Func<QTensor, IQuantizedTap?, QTensor> int8Forward,
        Func<torch.Tensor, IFloatTap?, torch.Tensor> floatForward,
        IEnumerable<torch.Tensor> batches,
        BiasCorrectionReference reference = BiasCorrectionReference.FloatModel,
        IEnumerable<string>? layers = null)
    {
        ArgumentNullException.ThrowIfNull(modelLayers);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(int8Forward);
        ArgumentNullException.ThrowIfNull(floatForward);
        ArgumentNullException.ThrowIfNull(batches);
        List<IQuantizedLayer> all = modelLayers.ToList();
        string model = input.Model;
        List<torch.Tensor> data = batches.ToList();
        if (data.Count == 0)
        {
            throw new ArgumentException($"{model}: bias correction needs at least one calibration batch, got none.", nameof(batches));
        }

        List<IQuantizedLayer> targets = SelectTargets(model, all, layers);
        var corrections = new List<BiasCorrectionLayer>(targets.Count);
        Dictionary<string, ChannelMeans>? floatMeans = reference == BiasCorrectionReference.FloatModel
            ? FloatModelMeans(targets, floatForward, data)
            : null;

        foreach (IQuantizedLayer layer in targets)
        {
            int channels = OutputChannels(layer);
            ChannelMeans int8Mean;
            ChannelMeans floatMean;
            if (floatMeans is not null)
            {
                floatMean = floatMeans[layer.Layer];
                int8Mean = Int8Means(layer, input, int8Forward, data, channels);
            }
            else
            {
                (floatMean, int8Mean) = ShadowMeans(layer, input, int8Forward, floatForward, data, channels);
            }

            if (floatMean.Count == 0)
            {
                throw new ArgumentException($"{model}.{layer.Layer}: the float forward never reported this layer to its tap; pass the Observed model's forward(Tensor, IFloatTap?) of the same model.", nameof(floatForward));
            }

            floatMean.CheckChannels(model, layer.Layer, channels, "float");
            double[] f = floatMean.Means();
            double[] q = int8Mean.Means();
            float[] before = BiasOf(layer) ?? new float[channels];
            var after = new float[channels];
            for (int c = 0; c < channels; c++)
            {
                after[c] = (float)(before[c] + (f[c] - q[c]));
            }

            SetBias(layer, after);
            corrections.Add(new BiasCorrectionLayer(layer.Layer, before, after, f, q));
        }

        return corrections;
    }

    /// <summary>A table of the corrections: layer, channels, mean and max |bias change|.</summary>
    /// <param name="corrections">What <see cref="Apply(IQuantizedModel, Func{torch.Tensor, IFloatTap, torch.Tensor}, IEnumerable{torch.Tensor}, BiasCorrectionReference, IEnumerable{string})"/> returned.</param>
    public static string Describe(IReadOnlyList<BiasCorrectionLayer> corrections)
    {
        ArgumentNullException.ThrowIfNull(corrections);
        int width = Math.Max(5, corrections.Select(c => c.Layer.Length).DefaultIfEmpty(0).Max());
        var text = new StringBuilder();
        text.Append("layer".PadRight(width)).AppendLine("  channels  mean |shift|   max |shift|");
        foreach (BiasCorrectionLayer c in corrections)
        {
            double mean = c.BiasAfter.Zip(c.BiasBefore, (a, b) => Math.Abs((double)a - b)).DefaultIfEmpty(0).Average();
            text.Append(c.Layer.PadRight(width))
                .Append(c.BiasAfter.Length.ToString(CultureInfo.InvariantCulture).PadLeft(10))
                .Append(mean.ToString("E3", CultureInfo.InvariantCulture).PadLeft(14))
                .Append(c.MaxAbsShift.ToString("E3", CultureInfo.InvariantCulture).PadLeft(14))
                .AppendLine();
        }

        return text.ToString();
    }

    private static List<IQuantizedLayer> SelectTargets(string model, List<IQuantizedLayer> all, IEnumerable<string>? names)
    {
        static bool Correctable(IQuantizedLayer layer) => layer is QuantizedConv2d or QuantizedLinear;
        if (names is null)
        {
            return all.Where(Correctable).ToList();
        }

        var wanted = new HashSet<string>(names, StringComparer.Ordinal);
        foreach (string name in wanted)
        {
            IQuantizedLayer? layer = all.FirstOrDefault(l => l.Layer == name);
            if (layer is null)
            {
                throw new ArgumentException($"{model}: bias correction was asked for layer '{name}', which the model does not have. Its layers: {string.Join(", ", all.Select(l => l.Layer))}.", nameof(names));
            }

            if (!Correctable(layer))
            {
                throw new ArgumentException($"{model}.{name}: bias correction applies to conv and linear layers; this one is a {layer.GetType().Name}.", nameof(names));
            }
        }

        return all.Where(l => wanted.Contains(l.Layer)).ToList();
    }

    private static int OutputChannels(IQuantizedLayer layer) => layer switch
    {
        QuantizedConv2d conv => conv.Options.OutChannels,
        QuantizedLinear linear => linear.OutFeatures,
        _ => throw new InvalidOperationException($"{layer.Model}.{layer.Layer} is not a conv or linear layer."),
    };

    private static float[]? BiasOf(IQuantizedLayer layer) => layer switch
    {
        QuantizedConv2d conv => conv.Bias,
        QuantizedLinear linear => linear.Bias,
        _ => null,
    };

    private static void SetBias(IQuantizedLayer layer, float[] bias)
    {
        switch (layer)
        {
            case QuantizedConv2d conv:
                conv.SetBias(bias);
                break;
            case QuantizedLinear linear:
                linear.SetBias(bias);
                break;
        }
    }

    /// <summary>One float pass: per-channel output means of every target layer.</summary>
    private static Dictionary<string, ChannelMeans> FloatModelMeans(List<IQuantizedLayer> targets, Func<torch.Tensor, IFloatTap?, torch.Tensor> floatForward, List<torch.Tensor> data)
    {
        var means = targets.ToDictionary(t => t.Layer, t => new ChannelMeans(OutputChannels(t), t is QuantizedLinear), StringComparer.Ordinal);
        var tap = new FloatRecorder(means);
        using (torch.no_grad())
        {
            foreach (torch.Tensor batch in data)
            {
                floatForward(batch, tap).Dispose();
            }
        }

        return means;
    }

    /// <summary>One int8 pass: the per-channel mean of <paramref name="layer"/>'s dequantized output.</summary>
    private static ChannelMeans Int8Means(IQuantizedLayer layer, QuantizeInput input, Func<QTensor, IQuantizedTap?, QTensor> int8Forward, List<torch.Tensor> data, int channels)
    {
        var means = new ChannelMeans(channels, layer is QuantizedLinear);
        var tap = new Int8Recorder(layer.Layer, means);
        foreach (torch.Tensor batch in data)
        {
            int8Forward(Quantize(input, batch), tap);
        }

        means.CheckChannels(input.Model, layer.Layer, channels, "int8");
        return means;
    }

    /// <summary>
    /// PyTorch's shadow comparison: per batch, the int8 forward records every layer's output; the float forward then
    /// has each of its layers' outputs replaced by the int8 one, so the float op at <paramref name="layer"/> sees
    /// exactly the int8 model's input, and its output (before replacement) is recorded.
    /// </summary>
    private static (ChannelMeans Float, ChannelMeans Int8) ShadowMeans(IQuantizedLayer layer, QuantizeInput input, Func<QTensor, IQuantizedTap?, QTensor> int8Forward, Func<torch.Tensor, IFloatTap?, torch.Tensor> floatForward, List<torch.Tensor> data, int channels)
    {
        var floatMeans = new ChannelMeans(channels, layer is QuantizedLinear);
        var int8Means = new ChannelMeans(channels, layer is QuantizedLinear);
        foreach (torch.Tensor batch in data)
        {
            var outputs = new Dictionary<string, QTensor>(StringComparer.Ordinal);
            int8Forward(Quantize(input, batch), new AllRecorder(outputs));
            if (outputs.TryGetValue(layer.Layer, out QTensor? int8Output))
            {
                int8Means.Add(int8Output.Dequantize(), int8Output.Shape);
            }

            using (torch.no_grad())
            using (torch.NewDisposeScope())
            {
                floatForward(batch, new ShadowTap(layer.Layer, floatMeans, outputs)).Dispose();
            }
        }

        int8Means.CheckChannels(input.Model, layer.Layer, channels, "int8");
        return (floatMeans, int8Means);
    }

    private static QTensor Quantize(QuantizeInput input, torch.Tensor batch)
    {
        float[] values = TensorInterop.ToArray(batch, out int[] shape);
        return input.Forward(values, shape);
    }

    /// <summary>Per-channel sums in double; the channel axis is 1 for a conv's NCHW output, the last axis for a linear's [..., out].</summary>
    private sealed class ChannelMeans(int channels, bool lastAxis)
    {
        private readonly double[] _sums = new double[channels];
        private int _reportedChannels = -1;

        public long Count { get; private set; }

        public void Add(ReadOnlySpan<float> values, int[] shape)
        {
            int axis = lastAxis ? shape.Length - 1 : 1;
            int c = axis >= 0 && axis < shape.Length ? shape[axis] : 1;
            _reportedChannels = c;
            if (c != _sums.Length)
            {
                return;
            }

            int inner = 1;
            for (int d = axis + 1; d < shape.Length; d++)
            {
                inner *= shape[d];
            }

            for (int i = 0; i < values.Length; i++)
            {
                _sums[(i / inner) % c] += values[i];
            }

            Count += values.Length / c;
        }

        public void CheckChannels(string model, string layer, int expected, string side)
        {
            if (_reportedChannels >= 0 && _reportedChannels != expected)
            {
                throw new ArgumentException($"{model}.{layer}: the {side} output has {_reportedChannels} channels on its channel axis, the int8 layer {expected}; the float forward must be the same model's.");
            }
        }

        public double[] Means() => Array.ConvertAll(_sums, s => Count == 0 ? 0.0 : s / Count);
    }

    private sealed class FloatRecorder(Dictionary<string, ChannelMeans> means) : IFloatTap
    {
        public torch.Tensor? OnLayer(string layer, torch.Tensor output)
        {
            if (means.TryGetValue(layer, out ChannelMeans? channelMeans))
            {
                AddFloat(channelMeans, output);
            }

            return null;
        }
    }

    private sealed class Int8Recorder(string layer, ChannelMeans means) : IQuantizedTap
    {
        public void OnLayer(string name, QTensor output)
        {
            if (name == layer)
            {
                means.Add(output.Dequantize(), output.Shape);
            }
        }
    }

    private sealed class AllRecorder(Dictionary<string, QTensor> outputs) : IQuantizedTap
    {
        public void OnLayer(string name, QTensor output) => outputs[name] = output;
    }

    private sealed class ShadowTap(string layer, ChannelMeans means, Dictionary<string, QTensor> int8Outputs) : IFloatTap
    {
        public torch.Tensor? OnLayer(string name, torch.Tensor output)
        {
            if (name == layer)
            {
                AddFloat(means, output);
            }

            if (!int8Outputs.TryGetValue(name, out QTensor? int8Output))
            {
                return null;
            }

            // Feed the float ops downstream exactly what the int8 model computed here.
            return TensorInterop.FromArray(int8Output.Dequantize(), int8Output.Shape);
        }
    }

    private static void AddFloat(ChannelMeans means, torch.Tensor output)
    {
        float[] values = TensorInterop.ToArray(output, out int[] shape);
        means.Add(values, shape);
    }
}
