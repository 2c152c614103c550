using System;
using System.Text;
using QuantGen.Kernels;
using QuantGen.Kernels.Packing;
using QuantGen.Modules;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Dynamic;

/// <summary>
/// PyTorch's float16 dynamic <c>Linear</c> / <c>LinearReLU</c> (<c>quantize_dynamic(model, {nn.Linear},
/// dtype=torch.float16)</c>, <c>float16_dynamic_qconfig</c>, <c>quantized::linear_dynamic_fp16</c>): the weight is stored
/// as float16 (<see cref="Float16Weights.Round"/>), the input is not quantized, and the arithmetic is float32:
/// <c>y = x·Wᵀ</c> by <see cref="Float32GemmKernel"/> (one fused multiply-add chain per output, as fbgemm's fp16 GEMM
/// widens the weights and accumulates in float32), then <c>+ b</c> with the float32 bias, then ReLU when fused
/// (docs/numerics.md §11).
/// </summary>
/// <remarks>
/// <para>
/// The layer keeps the float16 weights (what <see cref="Weight"/> returns and a <c>.qgen</c> file stores, 2 bytes each)
/// and, for the GEMM, a float32 copy of them packed once: .NET 10 exposes no F16C conversion intrinsics, so widening
/// inside the kernel would cost more than the multiply. In memory the layer therefore holds 6 bytes per weight.
/// </para>
/// <para>
/// <see cref="Forward(ReadOnlySpan{float}, int, Span{float})"/> may run on many threads at once and allocates nothing:
/// the layer holds nothing a call changes. NaN and infinite inputs pass through as in float arithmetic (nothing is
/// quantized, so nothing needs a finite range).
/// </para>
/// </remarks>
public sealed class Float16Linear : IRecurrentProjection
{
    private readonly Half[] _weight;
    private readonly float[]? _bias;
    private readonly PackedFloat32Weights _packed;
    private readonly string _name;

    /// <summary>A float16-weight linear over weights already rounded to float16.</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="weight">float16 weight, row-major <c>[outFeatures, inFeatures]</c>; finite.</param>
    /// <param name="bias">float32 bias per output feature, or null.</param>
    /// <param name="fusedRelu">LinearReLU: the output is clamped at 0.</param>
    /// <param name="vectorBits">The GEMM width to pack for (512, 256, 0 for the scalar reference); −1 (default) <see cref="Float32GemmKernel.DefaultVectorBits"/>.</param>
    /// <exception cref="ArgumentException">Sizes, a weight length, a non-finite weight or a bias that does not fit (the message names the layer).</exception>
    /// <exception cref="PlatformNotSupportedException"><paramref name="vectorBits"/> cannot run on this machine.</exception>
    public Float16Linear(string model, string layer, int inFeatures, int outFeatures, Half[] weight, float[]? bias, bool fusedRelu, int vectorBits = -1)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(weight);
        string name = $"{model}.{layer}";
        if (inFeatures < 1 || outFeatures < 1)
        {
            throw new ArgumentException($"{name}: in_features ({inFeatures}) and out_features ({outFeatures}) must be positive.");
        }

        if ((long)inFeatures * outFeatures != weight.Length)
        {
            throw new ArgumentException($"{name}: expected a float16 weight [{outFeatures}, {inFeatures}] ([out_features, in_features], {(long)outFeatures * inFeatures} values), got {weight.Length} values.", nameof(weight));
        }

        Float16Weights.CheckFinite(name, "weight", weight, inFeatures);
        _bias = LayerChecks.Bias(name, bias, outFeatures);
        _weight = (Half[])weight.Clone();
        _packed = Float32GemmKernel.Pack(Float16Weights.Widen(_weight), outFeatures, inFeatures, vectorBits);
        _name = name;
        Model = model;
        Layer = layer;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        FusedRelu = fusedRelu;
    }

    /// <summary>Model name, for error messages.</summary>
    public string Model { get; }

    /// <summary>Member name, for error messages.</summary>
    public string Layer { get; }

    /// <summary>Input features.</summary>
    public int InFeatures { get; }

    /// <summary>Output features.</summary>
    public int OutFeatures { get; }

    /// <summary>The float16 weight <c>[OutFeatures, InFeatures]</c> (a copy).</summary>
    public Half[] Weight => (Half[])_weight.Clone();

    /// <summary>float32 bias per output feature (a copy), or null.</summary>
    public float[]? Bias => (float[]?)_bias?.Clone();

    /// <summary>True for LinearReLU.</summary>
    public bool FusedRelu { get; }

    /// <summary>The GEMM width the weights are packed for (512, 256, or 0 for the scalar reference).</summary>
    public int VectorBits => _packed.VectorBits;

    bool IRecurrentProjection.HasBias => _bias is not null;

    /// <summary>
    /// A float <see cref="Linear"/> as PyTorch's float16 dynamic Linear makes it (<c>from_float</c> with
    /// <c>float16_dynamic_qconfig</c>): the weight saturated to ±65504 and rounded to float16, the bias kept in float32.
    /// The module is only read.
    /// </summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="linear">The float32 linear.</param>
    /// <param name="fusedRelu">A ReLU follows and is fused.</param>
    /// <exception cref="NotSupportedException">A non-float32 module.</exception>
    /// <exception cref="ArgumentException">A non-finite weight or bias (the message names the layer).</exception>
    public static Float16Linear FromLinear(string model, string layer, Linear linear, bool fusedRelu = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(layer);
        ArgumentNullException.ThrowIfNull(linear);
        string name = $"{model}.{layer}";
        float[] weight = FusedConv2d.ReadParameter(name, "weight", linear.weight)!;
        float[]? bias = FusedConv2d.ReadParameter(name, "bias", linear.bias);
        return FromValues(model, layer, checked((int)linear.in_features), checked((int)linear.out_features), weight, bias, fusedRelu);
    }

    /// <summary>As <see cref="FromLinear"/>, from float32 values: the weight rounded to float16, the bias kept.</summary>
    /// <param name="model">Model name for errors.</param>
    /// <param name="layer">Member name for errors.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="weight">float32 weight <c>[outFeatures, inFeatures]</c>.</param>
    /// <param name="bias">float32 bias, or null.</param>
    /// <param name="fusedRelu">A fused ReLU.</param>
    /// <exception cref="ArgumentException">Sizes that do not match, or a non-finite value.</exception>
    public static Float16Linear FromValues(string model, string layer, int inFeatures, int outFeatures, float[] weight, float[]? bias, bool fusedRelu = false)
    {
        ArgumentNullException.ThrowIfNull(weight);
        return new Float16Linear(model, layer, inFeatures, outFeatures, Float16Weights.Round($"{model}.{layer}", "weight", weight), bias, fusedRelu);
    }

    /// <summary>
    /// <c>y = x·Wᵀ + b</c> (then ReLU when fused) for <paramref name="rows"/> rows of <see cref="InFeatures"/> floats,
    /// written to <paramref name="output"/> (<paramref name="rows"/> × <see cref="OutFeatures"/>); allocates nothing.
    /// </summary>
    /// <param name="input">Row-major <c>[rows, InFeatures]</c>.</param>
    /// <param name="rows">Rows (the product of all but the last dimension), 0 or more.</param>
    /// <param name="output">Row-major <c>[rows, OutFeatures]</c>.</param>
    /// <exception cref="ArgumentException">Lengths that do not match (the message names the layer).</exception>
    public void Forward(ReadOnlySpan<float> input, int rows, Span<float> output)
    {
        int outputCount = CheckRows(input.Length, rows);
        if (output.Length != outputCount)
        {
            throw new ArgumentException($"{_name}: expected an output of [{rows}, {OutFeatures}] ({outputCount} values), got {output.Length}.", nameof(output));
        }

        Float32GemmKernel.Multiply(input, rows, _packed, _bias, FusedRelu, output);
    }

    /// <summary>As <see cref="Forward(ReadOnlySpan{float}, int, Span{float})"/>, returning a new array.</summary>
    /// <param name="input">Row-major <c>[rows, InFeatures]</c>.</param>
    /// <param name="rows">Rows, 0 or more.</param>
    /// <exception cref="ArgumentException">Lengths that do not match.</exception>
    public float[] Forward(ReadOnlySpan<float> input, int rows)
    {
        var output = new float[CheckRows(input.Length, rows)];
        Forward(input, rows, output);
        return output;
    }

    /// <summary>A float32 tensor <c>[..., InFeatures]</c> (rank 2 or more, as PyTorch's dynamic linear requires) to a new float32 tensor <c>[..., OutFeatures]</c>.</summary>
    /// <param name="input">The float input.</param>
    /// <exception cref="ArgumentException">A wrong dtype, rank or feature count (the message names the layer).</exception>
    public Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dtype != ScalarType.Float32)
        {
            throw new ArgumentException($"{_name}: expected a Float32 input, got {input.dtype} [{string.Join(", ", input.shape)}].", nameof(input));
        }

        long[] shape = input.shape;
        if (shape.Length < 2 || shape[^1] != InFeatures)
        {
            throw new ArgumentException($"{_name}: expected input [N, {InFeatures}] (rank 2 or more, last dimension in_features={InFeatures}), got [{string.Join(", ", shape)}].", nameof(input));
        }

        float[] values = TensorInterop.ToArray(input, out int[] intShape);
        float[] result = Forward(values, values.Length / InFeatures);
        intShape[^1] = OutFeatures;
        return TensorInterop.FromArray(result, intShape);
    }

    /// <summary>PyTorch's repr: <c>DynamicQuantizedLinear(in_features=4, out_features=2, dtype=torch.float16)</c>.</summary>
    public override string ToString() =>
        new StringBuilder(FusedRelu ? "DynamicQuantizedLinearReLU(" : "DynamicQuantizedLinear(")
            .Append("in_features=").Append(InFeatures)
            .Append(", out_features=").Append(OutFeatures)
            .Append(", dtype=torch.float16)")
            .ToString();

    private int CheckRows(int inputLength, int rows)
    {
        if (rows < 0 || (long)rows * InFeatures != inputLength)
        {
            throw new ArgumentException($"{_name}: expected input [{rows}, {InFeatures}] ({(long)rows * InFeatures} values, in_features={InFeatures}), got {inputLength} values.", "input");
        }

        long outputCount = (long)rows * OutFeatures;
        if (outputCount > int.MaxValue)
        {
            throw new ArgumentException($"{_name}: {rows} rows would give an output of more than {int.MaxValue} elements (out_features={OutFeatures}).", nameof(rows));
        }

        return (int)outputCount;
    }
}
