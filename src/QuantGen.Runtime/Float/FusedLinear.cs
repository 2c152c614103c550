using System;
using QuantGen.Observers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Modules;

/// <summary>
/// A float linear with an optional fused ReLU (PyTorch's LinearReLU): what the Observed model runs and
/// what <see cref="Convert"/> quantizes. Holds the parameters both as arrays and as tensors.
/// </summary>
public sealed class FusedLinear : IDisposable
{
    private readonly float[] _weight;
    private readonly float[]? _bias;
    private readonly Tensor _weightTensor;
    private readonly Tensor? _biasTensor;
    private bool _disposed;

    private FusedLinear(string model, string layer, int inFeatures, int outFeatures, float[] weight, float[]? bias, bool relu)
    {
        Model = model;
        Layer = layer;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Relu = relu;
        _weight = weight;
        _bias = bias;

        // Kept for the module's lifetime, so they must not belong to whatever dispose scope the caller has open.
        _weightTensor = torch.tensor(weight, [outFeatures, inFeatures], ScalarType.Float32).DetachFromDisposeScope();
        _biasTensor = bias is null ? null : torch.tensor(bias, [outFeatures], ScalarType.Float32).DetachFromDisposeScope();
    }

    /// <summary>Reads the weight, bias and sizes from the TorchSharp module (which is only read, never changed).</summary>
    /// <param name="model">Model name, for error messages.</param>
    /// <param name="layer">The linear's member name, for error messages.</param>
    /// <param name="linear">The float linear.</param>
    /// <param name="relu">True when a ReLU follows and is fused.</param>
    /// <exception cref="NotSupportedException">The module is not float32.</exception>
    public static FusedLinear Create(string model, string layer, Linear linear, bool relu)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(linear);
        string name = $"{model}.{layer}";
        int inFeatures = checked((int)linear.in_features);
        int outFeatures = checked((int)linear.out_features);
        float[] weight = FusedConv2d.ReadParameter(name, "weight", linear.weight)!;
        float[]? bias = FusedConv2d.ReadParameter(name, "bias", linear.bias);
        if (inFeatures < 1 || outFeatures < 1 || weight.Length != inFeatures * outFeatures || (bias is not null && bias.Length != outFeatures))
        {
            throw new ArgumentException($"{name}: the linear's weight ({weight.Length} values) or bias ({bias?.Length ?? 0}) does not match in_features={inFeatures}, out_features={outFeatures}.", nameof(linear));
        }

        return new FusedLinear(model, layer, inFeatures, outFeatures, weight, bias, relu);
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>The linear's member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Input features.</summary>
    public int InFeatures { get; }

    /// <summary>Output features.</summary>
    public int OutFeatures { get; }

    /// <summary>Float weights [OutFeatures, InFeatures] (a copy).</summary>
    public float[] Weight => (float[])_weight.Clone();

    /// <summary>Float bias (a copy), or null.</summary>
    public float[]? Bias => _bias is null ? null : (float[])_bias.Clone();

    /// <summary>True when a ReLU is fused.</summary>
    public bool Relu { get; }

    /// <summary>Float forward: linear, then ReLU if fused.</summary>
    /// <exception cref="ArgumentException">The input is not float32 or its last dimension is not <see cref="InFeatures"/>.</exception>
    public Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        string name = $"{Model}.{Layer}";
        int[] shape = TensorInterop.ToIntShape(input.shape);
        if (input.dtype != ScalarType.Float32)
        {
            throw new ArgumentException($"{name}: expected a Float32 input, got {input.dtype} {TorchText.Shape(shape)}.", nameof(input));
        }

        if (shape.Length < 1 || shape[^1] != InFeatures)
        {
            throw new ArgumentException($"{name}: expected input [N, {InFeatures}] (last dimension {InFeatures}), got {TorchText.Shape(shape)}.", nameof(input));
        }

        Tensor output = nn.functional.linear(input, _weightTensor, _biasTensor);

        // In place on the linear's fresh output: no second tensor to dispose.
        return Relu ? output.relu_() : output;
    }

    /// <summary>
    /// Observes the weights with a fresh <paramref name="weightSpec"/> observer (named
    /// "Model.layer.weight"), quantizes them to qint8 (per-channel along axis 0 or per-tensor; every value
    /// clamps to the full -128..127) and builds the int8 layer.
    /// </summary>
    /// <param name="input">The calibrated qparams of this layer's input.</param>
    /// <param name="output">The calibrated qparams of this layer's output (after the fused ReLU).</param>
    /// <param name="weightSpec">The weight observer recipe (QConfig.Weight).</param>
    /// <param name="backend">Bias/requantization arithmetic of the int8 layer.</param>
    /// <exception cref="ArgumentException">The weight observer is not qint8 or not along axis 0, or the qparams are not usable.</exception>
    public QuantizedLinear Convert(QParams input, QParams output, ObserverSpec weightSpec, QuantBackend backend)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        QTensor weight = FusedConv2d.QuantizeWeight($"{Model}.{Layer}", weightSpec, _weight, [OutFeatures, InFeatures]);
        return new QuantizedLinear(Model, Layer, InFeatures, OutFeatures, weight, _bias, input, output, Relu, backend);
    }

    /// <summary>Releases the parameter tensors.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _weightTensor.Dispose();
            _biasTensor?.Dispose();
        }
    }

    /// <summary>PyTorch-like repr: <c>LinearReLU(in_features=4, out_features=2, bias=True)</c>.</summary>
    public override string ToString() =>
        $"{(Relu ? "LinearReLU" : "Linear")}(in_features={InFeatures}, out_features={OutFeatures}, bias={(_bias is null ? "False" : "True")})";
}
