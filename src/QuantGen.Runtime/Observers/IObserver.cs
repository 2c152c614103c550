using System;

namespace QuantGen.Observers;

/// <summary>
/// What a calibration observer does, for observers of your own: record the values that flow through one quantization
/// point, then turn them into scale and zero point. Plug one into a <see cref="QConfig"/> with
/// <see cref="ObserverSpec.Custom"/>; every built-in <see cref="Observer"/> implements it too, so a custom observer
/// may wrap one.
/// </summary>
/// <remarks>
/// <para>
/// QuantGen wraps your observer in a <see cref="CustomObserver"/>, which does the checks every observer gets: a batch
/// that is empty, holds NaN or infinity, or whose length does not match its shape is refused (naming the layer) before
/// <see cref="Observe"/> sees it, and what <see cref="CalculateQParams"/> returns is checked against the spec (dtype,
/// per tensor or per channel, scales positive and finite, zero points within the dtype's range).
/// </para>
/// <para>
/// Activations arrive after each calibration batch of the Observed model's forward; weights arrive once, at
/// <c>Convert()</c>, as the layer's float weight (BatchNorm already folded in) with its shape, e.g.
/// [out_channels, in_channels / groups, kH, kW] for a Conv2d. Values are float32 in logical row-major (NCHW) order;
/// the span is only valid during the call (copy what you keep).
/// </para>
/// </remarks>
public interface IObserver
{
    /// <summary>Records one batch (finite, non-empty; <paramref name="values"/>.Length is the product of <paramref name="shape"/>).</summary>
    /// <param name="values">The tensor's values in logical row-major order.</param>
    /// <param name="shape">The tensor's logical shape.</param>
    void Observe(ReadOnlySpan<float> values, ReadOnlySpan<int> shape);

    /// <summary>The quantization parameters for everything observed so far.</summary>
    /// <returns>Per-tensor qparams for activations (and per-tensor weights), per-channel along the weight's output-channel axis for per-channel weights.</returns>
    QParams CalculateQParams();
}
