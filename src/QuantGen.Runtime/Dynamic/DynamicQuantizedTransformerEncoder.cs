using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>
/// TorchSharp's <see cref="TransformerEncoder"/> (libtorch's: <c>num_layers</c> copies of one encoder layer, no final
/// norm) as a stack of <see cref="DynamicQuantizedTransformerEncoderLayer"/>s, each given the same masks
/// (docs/numerics.md §12). Safe to call from many threads.
/// </summary>
public sealed class DynamicQuantizedTransformerEncoder
{
    private readonly DynamicQuantizedTransformerEncoderLayer[] _layers;

    /// <summary>Creates the stack from its layers (a file's, or <see cref="FromModule"/>'s).</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Layer name for errors.</param>
    /// <param name="layers">The layers in order, all of one d_model.</param>
    /// <exception cref="ArgumentException">No layer, or layers of different sizes (the message names the module).</exception>
    public DynamicQuantizedTransformerEncoder(string model, string layer, IReadOnlyList<DynamicQuantizedTransformerEncoderLayer> layers)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0 || layers.Any(l => l is null || l.ModelDim != layers[0].ModelDim))
        {
            throw new ArgumentException($"{model}.{layer}: an encoder needs at least one layer, all of one d_model.", nameof(layers));
        }

        Model = model;
        Layer = layer;
        _layers = layers.ToArray();
    }

    /// <summary>Model name for errors.</summary>
    public string Model { get; }

    /// <summary>Layer name for errors.</summary>
    public string Layer { get; }

    /// <summary>The layers in order.</summary>
    public IReadOnlyList<DynamicQuantizedTransformerEncoderLayer> Layers => _layers;

    /// <summary>
    /// Quantizes a TorchSharp <see cref="TransformerEncoder"/> (only read; in eval mode): its layers' parameters
    /// (<c>layers.{i}.self_attn.in_proj_weight</c>, ...), with the head count and activation they share identified from
    /// the encoder's output on a probe input, as <see cref="DynamicQuantizedTransformerEncoderLayer.FromModule"/> does for one layer.
    /// </summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Layer name for errors.</param>
    /// <param name="module">The float encoder.</param>
    /// <param name="backend">The arithmetic preset of the projections.</param>
    /// <param name="perChannel">Per-output-feature weight scales.</param>
    /// <exception cref="NotSupportedException">The configuration could not be identified (the message says why).</exception>
    public static DynamicQuantizedTransformerEncoder FromModule(string model, string layer, TransformerEncoder module, QuantBackend backend, bool perChannel = false)
    {
        (int heads, EncoderActivation activation, EncoderLayerParameters[] layers) = Identify($"{model}.{layer}", module);
        return FromIdentified(model, layer, layers, heads, activation, backend, perChannel);
    }

    /// <summary>The encoder's layers' parameters with their shared head count and activation.</summary>
    internal static (int Heads, EncoderActivation Activation, EncoderLayerParameters[] Layers) Identify(string name, TransformerEncoder module)
    {
        ArgumentNullException.ThrowIfNull(module);
        Dictionary<string, Tensor> parameters = EncoderLayerParameters.Parameters(module);
        int count = 0;
        while (parameters.ContainsKey($"layers.{count}.self_attn.in_proj_weight"))
        {
            count++;
        }

        if (count == 0)
        {
            throw new NotSupportedException($"{name}: the TransformerEncoder has no 'layers.0.self_attn.in_proj_weight' parameter, so its layers cannot be read.");
        }

        EncoderLayerParameters[] layers = Enumerable.Range(0, count).Select(i => EncoderLayerParameters.Read(name, parameters, $"layers.{i}.")).ToArray();
        (int heads, EncoderActivation activation) = DynamicQuantizedTransformerEncoderLayer.Identify(name, module, x => module.call(x), layers);
        return (heads, activation, layers);
    }

    /// <summary>As <see cref="FromModule"/>, with the head count and activation identified at Prepare.</summary>
    internal static DynamicQuantizedTransformerEncoder FromIdentified(string model, string layer, TransformerEncoder module, int heads, EncoderActivation activation, QuantBackend backend, bool perChannel)
    {
        Dictionary<string, Tensor> parameters = EncoderLayerParameters.Parameters(module);
        int count = 0;
        while (parameters.ContainsKey($"layers.{count}.self_attn.in_proj_weight"))
        {
            count++;
        }

        EncoderLayerParameters[] layers = Enumerable.Range(0, count).Select(i => EncoderLayerParameters.Read($"{model}.{layer}", parameters, $"layers.{i}.")).ToArray();
        return FromIdentified(model, layer, layers, heads, activation, backend, perChannel);
    }

    private static DynamicQuantizedTransformerEncoder FromIdentified(string model, string layer, EncoderLayerParameters[] layers, int heads, EncoderActivation activation, QuantBackend backend, bool perChannel) =>
        new(model, layer, layers.Select((p, i) => DynamicQuantizedTransformerEncoderLayer.FromParameters(model, $"{layer}.layers.{i}", p, heads, activation, backend, perChannel)).ToArray());

    /// <summary>Each layer in turn on a sequence-first float32 input, all given the same masks (see <see cref="DynamicQuantizedTransformerEncoderLayer.Forward(Tensor, Tensor?, Tensor?)"/>).</summary>
    /// <param name="src">[length, batch, d_model].</param>
    /// <param name="srcMask">null, or the attention mask [length, length].</param>
    /// <param name="keyPaddingMask">null, or the key padding mask [batch, length].</param>
    /// <returns>A new float32 tensor [length, batch, d_model].</returns>
    public Tensor Forward(Tensor src, Tensor? srcMask = null, Tensor? keyPaddingMask = null)
    {
        ArgumentNullException.ThrowIfNull(src);
        using var scope = NewDisposeScope();
        Tensor x = src;
        foreach (DynamicQuantizedTransformerEncoderLayer layer in _layers)
        {
            x = layer.Forward(x, srcMask, keyPaddingMask);
        }

        return x.MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public override string ToString() => $"DynamicQuantizedTransformerEncoder(num_layers={_layers.Length}, {_layers[0]})";
}
