using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using QuantGen.Observers;
using TorchSharp;

namespace QuantGen;

// Qparams brought from elsewhere: entries that fix one layer's output (or weight) qparams, by layer name.
public sealed partial class QConfigMapping
{
    private readonly List<KeyValuePair<string, FixedEntry>> _fixedActivations = [];
    private readonly List<KeyValuePair<string, FixedEntry>> _fixedWeights = [];

    /// <summary>
    /// The layers whose output qparams are fixed (<see cref="SetModuleQParams"/>, <see cref="SetModuleRange"/>), in the
    /// order they were first set.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, FixedObserverValues>> FixedActivations =>
        _fixedActivations.Select(e => new KeyValuePair<string, FixedObserverValues>(e.Key, e.Value.Values)).ToArray();

    /// <summary>The layers whose weight qparams are fixed (<see cref="SetModuleWeightQParams(string, float, int)"/> and friends).</summary>
    public IReadOnlyList<KeyValuePair<string, FixedObserverValues>> FixedWeights =>
        _fixedWeights.Select(e => new KeyValuePair<string, FixedObserverValues>(e.Key, e.Value.Values)).ToArray();

    /// <summary>
    /// Fixes the output qparams of one layer — what a PyTorch quantized module keeps as <c>scale</c> and
    /// <c>zero_point</c> (<c>conv1.scale</c>; <c>quant.scale</c> for the QuantStub) — so <c>Convert()</c> uses them
    /// whatever calibration shows (PyTorch's <c>FixedQParamsObserver</c>). The layer is named as in
    /// <c>observed.Observers</c> and the converted model's layers: a member path ("conv1", "layer1.0.conv2"), "quant" for
    /// a QuantStub, "input" for the model input of a model without one. Unlike <see cref="SetModuleName"/>, it applies to
    /// that layer only, not to the members below it; the dtype (and so the zero point's range) is the layer's qconfig's.
    /// </summary>
    /// <returns>This mapping, for chaining.</returns>
    /// <exception cref="ArgumentException">A bad layer name or a scale that is not positive and finite. A layer the model does not have, or a zero point outside the dtype's range, fails at <c>Prepare()</c> (naming the layer).</exception>
    public QConfigMapping SetModuleQParams(string layer, float scale, int zeroPoint)
    {
        CheckLayerName(layer);
        SetFixed(_fixedActivations, layer, new FixedEntry(FixedObserverValues.FromQParams(scale, zeroPoint), null));
        return this;
    }

    /// <summary>
    /// Fixes the observed range of one layer's output to [<paramref name="min"/>, <paramref name="max"/>]: its qparams are
    /// computed from that range with the layer's activation observer's dtype, scheme and quant range, as if calibration
    /// had seen exactly it (loading <c>min_val</c>/<c>max_val</c> into a PyTorch observer). Layers are named as for
    /// <see cref="SetModuleQParams"/>.
    /// </summary>
    /// <returns>This mapping, for chaining.</returns>
    /// <exception cref="ArgumentException">A bad layer name, a bound that is not finite, or min &gt; max.</exception>
    public QConfigMapping SetModuleRange(string layer, float min, float max)
    {
        CheckLayerName(layer);
        SetFixed(_fixedActivations, layer, new FixedEntry(FixedObserverValues.FromRange(min, max), null));
        return this;
    }

    /// <summary>Fixes the weight qparams of a conv, linear or conv-transpose layer to one scale and zero point (a per-tensor quantized weight's <c>q_scale()</c>, <c>q_zero_point()</c>).</summary>
    /// <returns>This mapping, for chaining.</returns>
    /// <exception cref="ArgumentException">A bad layer name or a scale that is not positive and finite.</exception>
    public QConfigMapping SetModuleWeightQParams(string layer, float scale, int zeroPoint)
    {
        CheckLayerName(layer);
        SetFixed(_fixedWeights, layer, new FixedEntry(FixedObserverValues.FromQParams(scale, zeroPoint), null));
        return this;
    }

    /// <summary>
    /// Fixes the weight qparams of a conv, linear or conv-transpose layer to one scale and zero point per output channel
    /// (a per-channel quantized weight's <c>q_per_channel_scales()</c>, <c>q_per_channel_zero_points()</c>,
    /// <c>q_per_channel_axis()</c>). The channel count is checked against the layer at <c>Prepare()</c>.
    /// </summary>
    /// <param name="layer">The layer ("conv1").</param>
    /// <param name="scales">One scale per output channel.</param>
    /// <param name="zeroPoints">One zero point per output channel (0 for symmetric weights).</param>
    /// <param name="channelAxis">The weight's output-channel axis: 0 for Conv2d and Linear, 1 for ConvTranspose2d.</param>
    /// <returns>This mapping, for chaining.</returns>
    /// <exception cref="ArgumentException">A bad layer name, arrays of different or zero length, or a scale that is not positive and finite.</exception>
    public QConfigMapping SetModuleWeightQParams(string layer, float[] scales, int[] zeroPoints, int channelAxis = 0)
    {
        CheckLayerName(layer);
        SetFixed(_fixedWeights, layer, new FixedEntry(FixedObserverValues.FromQParams(scales, zeroPoints), channelAxis));
        return this;
    }

    /// <summary>Fixes the range a layer's weight qparams are computed from (one range for the whole weight), with the layer's weight observer's dtype and scheme.</summary>
    /// <returns>This mapping, for chaining.</returns>
    /// <exception cref="ArgumentException">A bad layer name, a bound that is not finite, or min &gt; max.</exception>
    public QConfigMapping SetModuleWeightRange(string layer, float min, float max)
    {
        CheckLayerName(layer);
        SetFixed(_fixedWeights, layer, new FixedEntry(FixedObserverValues.FromRange(min, max), null));
        return this;
    }

    /// <summary>Fixes one range per output channel for a layer's weight (a loaded per-channel <c>min_val</c>/<c>max_val</c>).</summary>
    /// <returns>This mapping, for chaining.</returns>
    /// <exception cref="ArgumentException">A bad layer name, arrays of different or zero length, a bound that is not finite, or min &gt; max.</exception>
    public QConfigMapping SetModuleWeightRange(string layer, float[] min, float[] max, int channelAxis = 0)
    {
        CheckLayerName(layer);
        SetFixed(_fixedWeights, layer, new FixedEntry(FixedObserverValues.FromRange(min, max), channelAxis));
        return this;
    }

    /// <summary>
    /// Fixes every layer's qparams found in a PyTorch quantized model's state_dict, by PyTorch's own names:
    /// <list type="bullet">
    /// <item><description><c>&lt;layer&gt;.scale</c> and <c>&lt;layer&gt;.zero_point</c> — a quantized module's output qparams
    /// (Conv2d, Linear, ConvReLU2d, BatchNorm2d ... save them in <c>_save_to_state_dict</c>; the QuantStub's converted
    /// <c>Quantize</c> keeps them as buffers, <c>quant.scale</c>): <see cref="SetModuleQParams"/>;</description></item>
    /// <item><description><c>&lt;layer&gt;.weight.q_scale</c> and <c>.weight.q_zero_point</c>, or
    /// <c>.weight.q_per_channel_scales</c>, <c>.weight.q_per_channel_zero_points</c> (and optionally
    /// <c>.weight.q_per_channel_axis</c>) — the quantized weight's qparams, named after the tensor methods that give
    /// them (a quantized weight itself cannot be read outside PyTorch): <see cref="SetModuleWeightQParams(string, float[], int[], int)"/>.</description></item>
    /// </list>
    /// Every other key (float weights, biases, packed params) is ignored, so the whole dictionary may be passed.
    /// Values are TorchSharp tensors (what <c>TorchSharp.PyBridge</c>'s <c>PyTorchUnpickler.UnpickleStateDict</c> and
    /// <c>Safetensors.LoadStateDict</c> return) or plain numbers and arrays of numbers; scales are taken as float32,
    /// which is how PyTorch's observers compute them.
    /// </summary>
    /// <param name="stateDict">Keys are strings; a <c>Hashtable</c> or <c>Dictionary&lt;string, Tensor&gt;</c> works.</param>
    /// <returns>This mapping, for chaining.</returns>
    /// <exception cref="ArgumentException">A key without its partner (a <c>scale</c> without its <c>zero_point</c>), a value that is not a number, several values where one is expected, or a bad scale (the message names the key).</exception>
    public QConfigMapping SetQParamsFromStateDict(IDictionary stateDict)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        var entries = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in stateDict)
        {
            if (entry.Key is not string key)
            {
                throw new ArgumentException($"QConfigMapping: state_dict keys must be strings, got a {entry.Key?.GetType().Name ?? "null"} key.");
            }

            entries[key] = entry.Value;
        }

        foreach (string key in entries.Keys.OrderBy(k => k, StringComparer.Ordinal))
        {
            if (TryLayer(key, StateDictKeys.Scale, out string layer))
            {
                double scale = Single(key, Numbers(key, entries[key]));
                string zeroKey = layer + StateDictKeys.ZeroPoint;
                int zeroPoint = ZeroPoint(zeroKey, Single(zeroKey, Numbers(zeroKey, Partner(entries, key, zeroKey))));
                SetModuleQParams(layer, Scale(key, scale), zeroPoint);
            }
            else if (TryLayer(key, StateDictKeys.ZeroPoint, out layer))
            {
                Partner(entries, key, layer + StateDictKeys.Scale);
            }
            else if (TryLayer(key, StateDictKeys.WeightScale, out layer))
            {
                double scale = Single(key, Numbers(key, entries[key]));
                string zeroKey = layer + StateDictKeys.WeightZeroPoint;
                int zeroPoint = ZeroPoint(zeroKey, Single(zeroKey, Numbers(zeroKey, Partner(entries, key, zeroKey))));
                SetModuleWeightQParams(layer, Scale(key, scale), zeroPoint);
            }
            else if (TryLayer(key, StateDictKeys.WeightZeroPoint, out layer))
            {
                Partner(entries, key, layer + StateDictKeys.WeightScale);
            }
            else if (TryLayer(key, StateDictKeys.WeightScales, out layer))
            {
                double[] scales = Numbers(key, entries[key]);
                string zeroKey = layer + StateDictKeys.WeightZeroPoints;
                double[] zeroPoints = Numbers(zeroKey, Partner(entries, key, zeroKey));
                string axisKey = layer + StateDictKeys.WeightAxis;
                int axis = entries.TryGetValue(axisKey, out object? axisValue) ? ZeroPoint(axisKey, Single(axisKey, Numbers(axisKey, axisValue))) : 0;
                SetModuleWeightQParams(layer, scales.Select(s => Scale(key, s)).ToArray(), zeroPoints.Select(z => ZeroPoint(zeroKey, z)).ToArray(), axis);
            }
            else if (TryLayer(key, StateDictKeys.WeightZeroPoints, out layer))
            {
                Partner(entries, key, layer + StateDictKeys.WeightScales);
            }
        }

        return this;
    }

    /// <summary>
    /// The activation observer spec of the quantization point <paramref name="layer"/>: <paramref name="resolved"/> (its
    /// qconfig's), or that spec with the qparams or range this mapping fixes for the layer. Prepare calls it for every
    /// quantization point, generated and bound models alike.
    /// </summary>
    /// <param name="model">The model's name, for the message.</param>
    /// <param name="layer">The quantization point ("conv1", "quant", "input").</param>
    /// <param name="resolved">The activation spec of the layer's qconfig.</param>
    /// <exception cref="ArgumentException">The fixed values do not suit the spec (a zero point outside its dtype's range); the message names the layer.</exception>
    public ObserverSpec ActivationObserverSpec(string model, string layer, ObserverSpec resolved)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        return TryGetFixed(_fixedActivations, layer, out FixedEntry? entry)
            ? Apply(model, layer, "output", resolved, entry)
            : resolved;
    }

    /// <summary>The weight observer spec of the conv, linear or conv-transpose layer <paramref name="layer"/>: <paramref name="resolved"/>, or that spec with the weight qparams this mapping fixes for it.</summary>
    /// <param name="model">The model's name, for the message.</param>
    /// <param name="layer">The layer ("conv1").</param>
    /// <param name="resolved">The weight spec of the layer's qconfig.</param>
    /// <exception cref="ArgumentException">The fixed values do not suit the spec; the message names the layer.</exception>
    public ObserverSpec WeightObserverSpec(string model, string layer, ObserverSpec resolved)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        return TryGetFixed(_fixedWeights, layer, out FixedEntry? entry)
            ? Apply(model, layer, "weight", resolved, entry)
            : resolved;
    }

    /// <summary>
    /// Throws naming <paramref name="model"/> and the layer when an entry fixing qparams names no quantization point of
    /// the model (a typo, a member fused into the op before it, an op that shares its input's qparams), or a weight
    /// entry names no layer with weights. Prepare calls it, generated and bound models alike.
    /// </summary>
    /// <param name="model">The model's name, for the message.</param>
    /// <param name="observedLayers">The layers with output qparams of their own (the names of <c>observed.Observers</c> without the model's).</param>
    /// <param name="weightedLayers">The conv, linear and conv-transpose layers.</param>
    /// <param name="knownPaths">Every module path of the model, to tell a typo from a module without qparams of its own.</param>
    /// <exception cref="ArgumentException">An entry naming no such layer (with a "did you mean" when one is close).</exception>
    public void ValidateFixedQParams(string model, IReadOnlyCollection<string> observedLayers, IReadOnlyCollection<string> weightedLayers, IReadOnlyCollection<string> knownPaths)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentNullException.ThrowIfNull(observedLayers);
        ArgumentNullException.ThrowIfNull(weightedLayers);
        ArgumentNullException.ThrowIfNull(knownPaths);
        var observed = new HashSet<string>(observedLayers, StringComparer.Ordinal);
        var weighted = new HashSet<string>(weightedLayers, StringComparer.Ordinal);
        var paths = new HashSet<string>(knownPaths, StringComparer.Ordinal);
        string points = $"Layers with output qparams of their own: {Listing(observed)}.";
        foreach ((string layer, _) in _fixedActivations)
        {
            if (observed.Contains(layer) || FixedPointsMayBeAbsent)
            {
                continue;
            }

            throw new ArgumentException(paths.Contains(layer)
                ? $"{model}: the QConfigMapping fixes the output qparams of '{layer}', but {model}.{layer} has none of its own: it is fused into the op before it " +
                  "(a ReLU after a conv, linear or add; a BatchNorm folded into its conv) or shares its input's qparams (ReLU, pools, flatten, reshape), as in PyTorch's " +
                  $"converted model, which keeps no scale/zero_point for it. Fix the qparams of the op whose output it is. {points}"
                : $"{model}: the QConfigMapping fixes the output qparams of '{layer}', but {model} has no layer of that name.{DidYouMean(layer, observed)} {points}");
        }

        foreach ((string layer, _) in _fixedWeights)
        {
            if (!weighted.Contains(layer))
            {
                // A module the model has is either not weighted or kept in float: say which, not "no such layer".
                throw new ArgumentException(paths.Contains(layer)
                    ? $"{model}: the QConfigMapping fixes the weight qparams of '{layer}', but {model}.{layer} has no int8 weights: it is not a conv, linear or " +
                      $"conv-transpose, or it runs in float (a qconfig of None, [NoQuantize]). Layers with int8 weights: {Listing(weighted)}."
                    : $"{model}: the QConfigMapping fixes the weight qparams of '{layer}', but {model} has no conv, linear or conv-transpose layer of that name.{DidYouMean(layer, weighted)} " +
                      $"Layers with weights: {Listing(weighted)}.");
            }
        }
    }

    /// <summary>
    /// Set by a QAT model's <c>Convert()</c>: it fixes the qparams of every point its bound graph observes, and a form that
    /// observes fewer (the generated form of a model with a QuantStub has no "input" point) skips the others. Any point
    /// of the form left unfixed still fails Convert, as one without calibration data.
    /// </summary>
    internal bool FixedPointsMayBeAbsent { get; set; }

    private static ObserverSpec Apply(string model, string layer, string role, ObserverSpec resolved, FixedEntry entry)
    {
        FixedObserverValues values = entry.Values;
        try
        {
            return (values.IsRange, values.IsPerChannel) switch
            {
                (true, false) => resolved.WithRange(values.Min[0], values.Max[0]),
                (true, true) => resolved.WithRange(values.Min.ToArray(), values.Max.ToArray(), entry.ChannelAxis),
                (false, false) => resolved.WithQParams(values.Scales[0], values.ZeroPoints[0]),
                _ => resolved.WithQParams(values.Scales.ToArray(), values.ZeroPoints.ToArray(), entry.ChannelAxis),
            };
        }
        catch (ArgumentException error)
        {
            throw new ArgumentException($"{model}.{layer}: the QConfigMapping's fixed {role} qparams ({values}) do not fit the layer's {role} observer: {error.Message}", error);
        }
    }

    private void AppendFixedEntries(StringBuilder text)
    {
        // Only when there are any, so a mapping without them prints exactly as PyTorch's does.
        foreach ((string title, List<KeyValuePair<string, FixedEntry>> entries) in new[] { ("fixed_output_qparams", _fixedActivations), ("fixed_weight_qparams", _fixedWeights) })
        {
            if (entries.Count == 0)
            {
                continue;
            }

            text.Append("\n ").Append(title);
            foreach ((string layer, FixedEntry entry) in entries)
            {
                text.Append("\n  ").Append(layer).Append(": ").Append(entry.Values);
                if (entry.ChannelAxis is int axis)
                {
                    text.Append(", ch_axis=").Append(axis);
                }
            }
        }
    }

    private static void CheckLayerName(string layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        if (layer.Length == 0 || layer.Split('.').Any(segment => segment.Length == 0 || segment.Trim().Length != segment.Length))
        {
            throw new ArgumentException($"QConfigMapping: layer name '{layer}' is empty or has an empty segment or surrounding spaces; write member names separated by single dots, e.g. \"layer1.0.conv1\" (\"quant\" for a QuantStub, \"input\" for the model input).");
        }
    }

    private static void SetFixed(List<KeyValuePair<string, FixedEntry>> entries, string layer, FixedEntry entry)
    {
        int index = entries.FindIndex(e => e.Key == layer);
        if (index >= 0)
        {
            entries[index] = new(layer, entry);
        }
        else
        {
            entries.Add(new(layer, entry));
        }
    }

    private static bool TryGetFixed(List<KeyValuePair<string, FixedEntry>> entries, string layer, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out FixedEntry? entry)
    {
        foreach ((string key, FixedEntry value) in entries)
        {
            if (key == layer)
            {
                entry = value;
                return true;
            }
        }

        entry = null;
        return false;
    }

    private static bool TryLayer(string key, string suffix, out string layer)
    {
        layer = key.EndsWith(suffix, StringComparison.Ordinal) ? key[..^suffix.Length] : string.Empty;
        return layer.Length > 0;
    }

    private static object? Partner(Dictionary<string, object?> entries, string key, string partner) =>
        entries.TryGetValue(partner, out object? value)
            ? value
            : throw new ArgumentException($"QConfigMapping: the state_dict has '{key}' but not '{partner}'; PyTorch saves them together, so both are needed.");

    private static double Single(string key, double[] values) =>
        values.Length == 1
            ? values[0]
            : throw new ArgumentException($"QConfigMapping: state_dict entry '{key}' holds {values.Length} values where one is expected (activations are quantized per tensor; per-channel weights go under '.weight.q_per_channel_scales').");

    private static float Scale(string key, double value)
    {
        float scale = (float)value;
        if (!float.IsFinite(scale) || scale <= 0f)
        {
            throw new ArgumentException($"QConfigMapping: state_dict entry '{key}' is {value.ToString("R", CultureInfo.InvariantCulture)}; a scale must be positive and finite.");
        }

        return scale;
    }

    private static int ZeroPoint(string key, double value) =>
        value == Math.Floor(value) && value >= int.MinValue && value <= int.MaxValue
            ? (int)value
            : throw new ArgumentException($"QConfigMapping: state_dict entry '{key}' is {value.ToString("R", CultureInfo.InvariantCulture)}; it must be a whole number.");

    /// <summary>The numbers a state_dict value holds: a tensor's elements (any shape), a number, or a list of numbers.</summary>
    private static double[] Numbers(string key, object? value)
    {
        switch (value)
        {
            case torch.Tensor tensor:
                if (tensor.is_quantized())
                {
                    throw new ArgumentException($"QConfigMapping: state_dict entry '{key}' is a quantized tensor; save its q_scale()/q_zero_point() (or q_per_channel_scales()/q_per_channel_zero_points()) as plain tensors instead.");
                }

                using (torch.Tensor values = tensor.detach().cpu().to_type(torch.ScalarType.Float64).contiguous())
                {
                    return values.data<double>().ToArray();
                }

            case double d: return [d];
            case float f: return [f];
            case long l: return [l];
            case int i: return [i];
            case IEnumerable list and not string:
                return list.Cast<object?>().Select(item => item switch
                {
                    double d => d,
                    float f => f,
                    long l => l,
                    int i => (double)i,
                    _ => throw new ArgumentException($"QConfigMapping: state_dict entry '{key}' holds a {item?.GetType().Name ?? "null"}; expected numbers."),
                }).ToArray();
            default:
                throw new ArgumentException($"QConfigMapping: state_dict entry '{key}' is a {value?.GetType().Name ?? "null"}; expected a tensor, a number or a list of numbers.");
        }
    }

    /// <summary>One fixed entry: the values, and the channel axis of per-channel weights (null: the qconfig's).</summary>
    private sealed record FixedEntry(FixedObserverValues Values, int? ChannelAxis);

    /// <summary>The key suffixes PyTorch's quantized modules (and the tensor methods of a quantized weight) use.</summary>
    private static class StateDictKeys
    {
        public const string Scale = ".scale";
        public const string ZeroPoint = ".zero_point";
        public const string WeightScale = ".weight.q_scale";
        public const string WeightZeroPoint = ".weight.q_zero_point";
        public const string WeightScales = ".weight.q_per_channel_scales";
        public const string WeightZeroPoints = ".weight.q_per_channel_zero_points";
        public const string WeightAxis = ".weight.q_per_channel_axis";
    }
}
