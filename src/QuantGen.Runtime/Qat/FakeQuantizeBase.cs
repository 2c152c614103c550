using System;
using QuantGen.Observers;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Qat;

/// <summary>
/// A fake-quantize module for one quantization point (PyTorch's <c>FakeQuantizeBase</c>): an observer that records the
/// range, and a fake quantize in the forward, each with its own switch (<see cref="EnableObserver"/>,
/// <see cref="EnableFakeQuant"/>) for PyTorch's QAT schedule (observe, then freeze the qparams, keep training).
/// </summary>
public abstract class FakeQuantizeBase : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the module and its observer.</summary>
    /// <param name="spec">The recipe.</param>
    /// <param name="layer">The quantization point, "Model.member", named in errors.</param>
    protected FakeQuantizeBase(FakeQuantSpec spec, string layer)
        : base(spec?.Kind.ToString() ?? nameof(FakeQuantizeBase))
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        Spec = spec;
        Layer = layer;
        Observer = spec.Observer.Create(layer);
        GradientWatch = new GradientWatch(layer);
    }

    /// <summary>The recipe this module was made from.</summary>
    public FakeQuantSpec Spec { get; }

    /// <summary>The quantization point, "Model.member".</summary>
    public string Layer { get; }

    /// <summary>The observer recording the range (its qparams are the converted model's, except for learned ones).</summary>
    public Observer Observer { get; }

    /// <summary>
    /// Records a NaN gradient reaching this fake quantize in a backward pass; the next <c>forward</c> then throws,
    /// naming the layer (an exception cannot leave libtorch's backward safely).
    /// </summary>
    public GradientWatch GradientWatch { get; }

    /// <summary>The smallest quantized value (after reduce_range): the observer's.</summary>
    public int QuantMin => Observer.QuantMin;

    /// <summary>The largest quantized value (after reduce_range): the observer's.</summary>
    public int QuantMax => Observer.QuantMax;

    /// <summary>Whether the forward updates the observer and the qparams (PyTorch's <c>observer_enabled</c>).</summary>
    public bool ObserverEnabled { get; protected set; } = true;

    /// <summary>Whether the forward fake-quantizes; when off it returns its input (PyTorch's <c>fake_quant_enabled</c>).</summary>
    public bool FakeQuantEnabled { get; protected set; } = true;

    /// <summary>PyTorch's <c>enable_observer(enabled)</c>.</summary>
    /// <param name="enabled">True to update the range and qparams on every forward.</param>
    public void EnableObserver(bool enabled = true) => ObserverEnabled = enabled;

    /// <summary>PyTorch's <c>disable_observer()</c>: the qparams stay as they are (the second phase of QAT).</summary>
    public void DisableObserver() => EnableObserver(false);

    /// <summary>PyTorch's <c>enable_fake_quant(enabled)</c>.</summary>
    /// <param name="enabled">True to fake-quantize in the forward.</param>
    public void EnableFakeQuant(bool enabled = true) => FakeQuantEnabled = enabled;

    /// <summary>PyTorch's <c>disable_fake_quant()</c>: the forward passes its input through unchanged.</summary>
    public void DisableFakeQuant() => EnableFakeQuant(false);

    /// <summary>
    /// Fake-quantizes <paramref name="input"/> with this point's current qparams without recording it: for an op whose
    /// output shares its input's qparams but not its values (an average pool, a mean), as PyTorch FX's shared observer
    /// makes the QAT forward round where the int8 op rounds.
    /// </summary>
    /// <param name="input">A float32 tensor.</param>
    /// <returns>The fake-quantized tensor (or <paramref name="input"/> when fake quant is disabled).</returns>
    public Tensor ForwardShared(Tensor input)
    {
        bool observing = ObserverEnabled;
        ObserverEnabled = false;
        try
        {
            return forward(input);
        }
        finally
        {
            ObserverEnabled = observing;
        }
    }

    /// <summary>The qparams of the converted int8 model (PyTorch's <c>calculate_qparams</c>, which convert calls).</summary>
    /// <returns>Per-tensor or per-channel qparams.</returns>
    /// <exception cref="InvalidOperationException">Nothing was observed yet.</exception>
    public abstract QParams CalculateQParams();

    /// <inheritdoc/>
    public override string ToString() => $"{Spec} at {Layer}";
}
