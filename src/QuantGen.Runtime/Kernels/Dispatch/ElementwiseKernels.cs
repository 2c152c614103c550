using System;
using System.Runtime.Intrinsics;
using QuantGen.Kernels.Scalar;

namespace QuantGen.Kernels;

/// <summary>
/// Quantized add / add+ReLU vectorised, bit-identical to <see cref="AddScalar"/>: each lane does the
/// reference's float32 operations in its order — <c>(float)(q − z)</c> (exact), times the scale, one
/// add, <c>max(c, 0)</c>, times <c>1f / sy</c>, round half to even (<c>Vector*.Round</c>), clamp to
/// <c>[−zy, 255 − zy]</c> in float, convert (exact on integral values) and add zy. No FMA. The
/// one-instruction <c>*Native</c> min/max/convert differ from the portable ones only on NaN, the sign
/// of zero and out-of-range values, which cannot occur here (finite sums; −0 and +0 both give zy). Large
/// tensors are split into ranges run on <see cref="KernelThreads"/>' pool.
/// </summary>
public static unsafe class AddKernel
{
    private const int ElementsPerTask = 8 * 1024;

    [ThreadStatic]
    private static AddJob? t_job;

    /// <summary>As <see cref="AddScalar.Apply"/>; <paramref name="output"/> may alias an input element for element.</summary>
    /// <param name="a">First input (unsigned view).</param>
    /// <param name="scaleA">sa.</param>
    /// <param name="zeroPointA">za in the view (0..255).</param>
    /// <param name="b">Second input, same element order.</param>
    /// <param name="scaleB">sb.</param>
    /// <param name="zeroPointB">zb in the view.</param>
    /// <param name="output">Results in the view, same length.</param>
    /// <param name="outputScale">sy.</param>
    /// <param name="outputZeroPoint">zy in the view.</param>
    /// <param name="relu">add_relu.</param>
    /// <param name="vectorBits">256 or 128; 0 runs the scalar reference; −1 (default) the dispatched width.</param>
    public static void Apply(
        ReadOnlySpan<byte> a, float scaleA, int zeroPointA,
        ReadOnlySpan<byte> b, float scaleB, int zeroPointB,
        Span<byte> output, float outputScale, int outputZeroPoint, bool relu, int vectorBits = -1)
    {
        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        if (vectorBits == 0 || a.Length != b.Length || output.Length != a.Length)
        {
            // The reference (and its argument checks).
            AddScalar.Apply(a, scaleA, zeroPointA, b, scaleB, zeroPointB, output, outputScale, outputZeroPoint, relu);
            return;
        }

        QuantizeScalar.ValidateScale(scaleA, "Add input a");
        QuantizeScalar.ValidateScale(scaleB, "Add input b");
        QuantizeScalar.ValidateScale(outputScale, "Add output");
        QuantizeScalar.ValidateZeroPoint(zeroPointA, QuantDType.QUInt8, "Add input a");
        QuantizeScalar.ValidateZeroPoint(zeroPointB, QuantDType.QUInt8, "Add input b");
        QuantizeScalar.ValidateZeroPoint(outputZeroPoint, QuantDType.QUInt8, "Add output");
        fixed (byte* pa = a)
        fixed (byte* pb = b)
        fixed (byte* po = output)
        {
            var plan = new AddPlan
            {
                A = pa,
                B = pb,
                Output = po,
                Length = a.Length,
                ScaleA = scaleA,
                ScaleB = scaleB,
                ZeroPointA = zeroPointA,
                ZeroPointB = zeroPointB,
                InverseOutputScale = 1.0f / outputScale,
                OutputZeroPoint = outputZeroPoint,
                Relu = relu,
                VectorBits = vectorBits,
            };
            int tasks = (a.Length + ElementsPerTask - 1) / ElementsPerTask;
            int degree = KernelThreads.MaxDegreeOfParallelism;
            if (degree == 1 || tasks <= 1)
            {
                Range(plan, 0, a.Length);
                return;
            }

            AddJob job = t_job ??= new AddJob();
            job.Plan = plan;
            try
            {
                WorkerPool.Shared.Run(job, tasks, degree, ElementwiseWidth.CallerScratch);
            }
            finally
            {
                job.Plan = default;
            }
        }
    }

    internal static void Range(in AddPlan p, int start, int end)
    {
        int i = start;
        if (p.VectorBits == 256)
        {
            Vector256<int> za = Vector256.Create(p.ZeroPointA), zb = Vector256.Create(p.ZeroPointB), zy = Vector256.Create(p.OutputZeroPoint);
            Vector256<float> sa = Vector256.Create(p.ScaleA), sb = Vector256.Create(p.ScaleB), inverse = Vector256.Create(p.InverseOutputScale);
            Vector256<float> lower = Vector256.Create((float)-p.OutputZeroPoint), upper = Vector256.Create((float)(255 - p.OutputZeroPoint));
            for (; i + 8 <= end; i += 8)
            {
                Vector256<float> da = Vector256.ConvertToSingle(VectorBytes.Load8(p.A + i) - za) * sa;
                Vector256<float> db = Vector256.ConvertToSingle(VectorBytes.Load8(p.B + i) - zb) * sb;
                Vector256<float> sum = da + db;
                if (p.Relu)
                {
                    sum = Vector256.MaxNative(sum, Vector256<float>.Zero);
                }

                Vector256<float> clamped = Vector256.MinNative(Vector256.MaxNative(sum * inverse, lower), upper);
                VectorBytes.Store8(VectorBytes.RoundClampedToInt32(clamped) + zy, p.Output + i);
            }
        }
        else if (p.VectorBits == 128)
        {
            Vector128<int> za = Vector128.Create(p.ZeroPointA), zb = Vector128.Create(p.ZeroPointB), zy = Vector128.Create(p.OutputZeroPoint);
            Vector128<float> sa = Vector128.Create(p.ScaleA), sb = Vector128.Create(p.ScaleB), inverse = Vector128.Create(p.InverseOutputScale);
            Vector128<float> lower = Vector128.Create((float)-p.OutputZeroPoint), upper = Vector128.Create((float)(255 - p.OutputZeroPoint));
            for (; i + 4 <= end; i += 4)
            {
                Vector128<float> da = Vector128.ConvertToSingle(VectorBytes.Load4(p.A + i) - za) * sa;
                Vector128<float> db = Vector128.ConvertToSingle(VectorBytes.Load4(p.B + i) - zb) * sb;
                Vector128<float> sum = da + db;
                if (p.Relu)
                {
                    sum = Vector128.MaxNative(sum, Vector128<float>.Zero);
                }

                Vector128<float> rounded = Vector128.Round(sum * inverse);
                Vector128<float> clamped = Vector128.MinNative(Vector128.MaxNative(rounded, lower), upper);
                VectorBytes.Store4(Vector128.ConvertToInt32Native(clamped) + zy, p.Output + i);
            }
        }

        for (; i < end; i++)
        {
            float da = QuantizeScalar.DequantizeValue(p.A[i], p.ScaleA, p.ZeroPointA);
            float db = QuantizeScalar.DequantizeValue(p.B[i], p.ScaleB, p.ZeroPointB);
            float sum = da + db;
            if (p.Relu)
            {
                sum = sum > 0f ? sum : 0f;
            }

            p.Output[i] = (byte)QuantizeScalar.QuantizeValue(sum, p.InverseOutputScale, p.OutputZeroPoint, 0, 255);
        }
    }

    internal struct AddPlan
    {
        public byte* A;
        public byte* B;
        public byte* Output;
        public int Length;
        public float ScaleA;
        public float ScaleB;
        public int ZeroPointA;
        public int ZeroPointB;
        public float InverseOutputScale;
        public int OutputZeroPoint;
        public bool Relu;
        public int VectorBits;
    }

    private sealed class AddJob : IParallelWork
    {
        public AddPlan Plan;

        public void Run(int task, int worker, KernelScratch scratch)
        {
            int start = task * ElementsPerTask;
            Range(Plan, start, Math.Min(Plan.Length, start + ElementsPerTask));
        }

        public void Reserve(KernelScratch scratch)
        {
        }
    }
}

/// <summary>Quantized ReLU vectorised: <c>max(q, zp)</c> on bytes, as <see cref="ReluScalar"/>.</summary>
public static unsafe class ReluKernel
{
    /// <summary>As <see cref="ReluScalar.Apply"/>; <paramref name="output"/> may be <paramref name="input"/>.</summary>
    /// <param name="input">Values in the unsigned view.</param>
    /// <param name="output">Results, same length.</param>
    /// <param name="zeroPoint">zp in the view.</param>
    /// <param name="vectorBits">256 or 128; 0 runs the scalar reference; −1 (default) the dispatched width.</param>
    public static void Apply(ReadOnlySpan<byte> input, Span<byte> output, int zeroPoint, int vectorBits = -1)
    {
        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        if (vectorBits == 0 || input.Length != output.Length)
        {
            ReluScalar.Apply(input, output, zeroPoint);
            return;
        }

        QuantizeScalar.ValidateZeroPoint(zeroPoint, QuantDType.QUInt8, "ReLU");
        byte floor = (byte)zeroPoint;
        int length = input.Length;
        fixed (byte* source = input)
        fixed (byte* destination = output)
        {
            int i = 0;
            if (vectorBits == 256)
            {
                Vector256<byte> floors = Vector256.Create(floor);
                for (; i + 32 <= length; i += 32)
                {
                    Vector256.Max(Vector256.Load(source + i), floors).Store(destination + i);
                }
            }

            Vector128<byte> floors128 = Vector128.Create(floor);
            for (; i + 16 <= length; i += 16)
            {
                Vector128.Max(Vector128.Load(source + i), floors128).Store(destination + i);
            }

            for (; i < length; i++)
            {
                byte q = source[i];
                destination[i] = q < floor ? floor : q;
            }
        }
    }
}

/// <summary>
/// Quantized max pool on NHWC vectorised across channels, as <see cref="MaxPool2dScalar"/>: the byte
/// maximum of the window's taps inside the input, starting from 0 (the view's lowest value). Output
/// rows are split over <see cref="KernelThreads"/>' pool.
/// </summary>
public static unsafe class MaxPool2dKernel
{
    [ThreadStatic]
    private static MaxPoolJob? t_job;

    /// <summary>Pools every window, as <see cref="MaxPool2dScalar.Apply"/>.</summary>
    /// <param name="geometry">Shapes, stride, padding, dilation, ceil_mode.</param>
    /// <param name="inputNhwc">Input in the view, [N][H][W][C].</param>
    /// <param name="outputNhwc">Output in the view, [N][OH][OW][C]; must not overlap the input.</param>
    /// <param name="vectorBits">256 or 128; 0 runs the scalar reference; −1 (default) the dispatched width.</param>
    public static void Apply(in Pool2dGeometry geometry, ReadOnlySpan<byte> inputNhwc, Span<byte> outputNhwc, int vectorBits = -1)
    {
        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        if (vectorBits == 0)
        {
            MaxPool2dScalar.Apply(geometry, inputNhwc, outputNhwc);
            return;
        }

        geometry.Validate();
        geometry.CheckLengths(inputNhwc.Length, outputNhwc.Length);
        fixed (byte* input = inputNhwc)
        fixed (byte* output = outputNhwc)
        {
            var plan = new MaxPoolPlan { Geometry = geometry, Input = input, Output = output, VectorBits = vectorBits };
            int rows = geometry.Batch * geometry.OutHeight;
            int degree = KernelThreads.MaxDegreeOfParallelism;
            long work = (long)rows * geometry.OutWidth * geometry.Channels;
            if (degree == 1 || rows <= 1 || work < 32 * 1024)
            {
                Rows(plan, 0, rows);
                return;
            }

            MaxPoolJob job = t_job ??= new MaxPoolJob();
            job.Plan = plan;
            try
            {
                WorkerPool.Shared.Run(job, rows, degree, ElementwiseWidth.CallerScratch);
            }
            finally
            {
                job.Plan = default;
            }
        }
    }

    /// <summary>Output rows [<paramref name="first"/>, <paramref name="end"/>) of all (n, oh).</summary>
    internal static void Rows(in MaxPoolPlan p, int first, int end)
    {
        Pool2dGeometry g = p.Geometry;
        int channels = g.Channels, inHeight = g.InHeight, inWidth = g.InWidth, outHeight = g.OutHeight, outWidth = g.OutWidth;
        for (int row = first; row < end; row++)
        {
            int n = row / outHeight, oh = row % outHeight;
            for (int ow = 0; ow < outWidth; ow++)
            {
                byte* destination = p.Output + ((((nint)row * outWidth) + ow) * channels);
                int c = 0;
                if (p.VectorBits == 256)
                {
                    for (; c + 32 <= channels; c += 32)
                    {
                        Vector256<byte> max = Vector256<byte>.Zero;
                        for (int kh = 0; kh < g.KernelHeight; kh++)
                        {
                            int ih = (oh * g.StrideHeight) - g.PadHeight + (kh * g.DilationHeight);
                            if ((uint)ih >= (uint)inHeight)
                            {
                                continue;
                            }

                            byte* inputRow = p.Input + ((((nint)n * inHeight) + ih) * inWidth * channels) + c;
                            for (int kw = 0; kw < g.KernelWidth; kw++)
                            {
                                int iw = (ow * g.StrideWidth) - g.PadWidth + (kw * g.DilationWidth);
                                if ((uint)iw < (uint)inWidth)
                                {
                                    max = Vector256.Max(max, Vector256.Load(inputRow + ((nint)iw * channels)));
                                }
                            }
                        }

                        max.Store(destination + c);
                    }
                }

                for (; c + 16 <= channels; c += 16)
                {
                    Vector128<byte> max = Vector128<byte>.Zero;
                    for (int kh = 0; kh < g.KernelHeight; kh++)
                    {
                        int ih = (oh * g.StrideHeight) - g.PadHeight + (kh * g.DilationHeight);
                        if ((uint)ih >= (uint)inHeight)
                        {
                            continue;
                        }

                        byte* inputRow = p.Input + ((((nint)n * inHeight) + ih) * inWidth * channels) + c;
                        for (int kw = 0; kw < g.KernelWidth; kw++)
                        {
                            int iw = (ow * g.StrideWidth) - g.PadWidth + (kw * g.DilationWidth);
                            if ((uint)iw < (uint)inWidth)
                            {
                                max = Vector128.Max(max, Vector128.Load(inputRow + ((nint)iw * channels)));
                            }
                        }
                    }

                    max.Store(destination + c);
                }

                for (; c < channels; c++)
                {
                    int max = 0;
                    for (int kh = 0; kh < g.KernelHeight; kh++)
                    {
                        int ih = (oh * g.StrideHeight) - g.PadHeight + (kh * g.DilationHeight);
                        if ((uint)ih >= (uint)inHeight)
                        {
                            continue;
                        }

                        byte* inputRow = p.Input + ((((nint)n * inHeight) + ih) * inWidth * channels) + c;
                        for (int kw = 0; kw < g.KernelWidth; kw++)
                        {
                            int iw = (ow * g.StrideWidth) - g.PadWidth + (kw * g.DilationWidth);
                            if ((uint)iw < (uint)inWidth)
                            {
                                int value = inputRow[(nint)iw * channels];
                                max = value > max ? value : max;
                            }
                        }
                    }

                    destination[c] = (byte)max;
                }
            }
        }
    }

    internal struct MaxPoolPlan
    {
        public Pool2dGeometry Geometry;
        public byte* Input;
        public byte* Output;
        public int VectorBits;
    }

    private sealed class MaxPoolJob : IParallelWork
    {
        public MaxPoolPlan Plan;

        public void Run(int task, int worker, KernelScratch scratch) => Rows(Plan, task, task + 1);

        public void Reserve(KernelScratch scratch)
        {
        }
    }
}

/// <summary>
/// Quantize float32 values to bytes in the unsigned view, vectorised and bit-identical to
/// <see cref="QuantizeScalar.QuantizeValue"/>: <c>x · (1f / s)</c>, round half to even, clamp to
/// <c>[qmin − zp, qmax − zp]</c> in float, convert and add zp; NaN → zp.
/// </summary>
public static unsafe class QuantizeKernel
{
    /// <summary>
    /// <c>destination[i] = clamp(rne(values[i] · inverseScale) + zp, 0, 255)</c> in the unsigned view
    /// (for qint8 pass the view's zero point <c>zp + 128</c>: the result is the qint8 value + 128).
    /// </summary>
    /// <param name="values">Float inputs.</param>
    /// <param name="destination">Bytes, same length.</param>
    /// <param name="inverseScale"><c>1f / scale</c>.</param>
    /// <param name="zeroPoint">Zero point in the view, 0..255.</param>
    /// <param name="vectorBits">256 or 128; 0 scalar; −1 (default) the dispatched width.</param>
    public static void ToView(ReadOnlySpan<float> values, Span<byte> destination, float inverseScale, int zeroPoint, int vectorBits = -1)
    {
        if (values.Length != destination.Length)
        {
            throw new ArgumentException($"Quantize: {values.Length} values but {destination.Length} destination bytes.");
        }

        QuantizeScalar.ValidateZeroPoint(zeroPoint, QuantDType.QUInt8, "Quantize");
        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        int length = values.Length;
        fixed (float* source = values)
        fixed (byte* output = destination)
        {
            int i = 0;
            if (vectorBits == 256)
            {
                Vector256<float> inverse = Vector256.Create(inverseScale);
                Vector256<float> lower = Vector256.Create((float)-zeroPoint), upper = Vector256.Create((float)(255 - zeroPoint));
                Vector256<int> zy = Vector256.Create(zeroPoint);
                for (; i + 8 <= length; i += 8)
                {
                    Vector256<float> rounded = Vector256.Round(Vector256.Load(source + i) * inverse);
                    Vector256<float> clamped = Vector256.MinNative(Vector256.MaxNative(rounded, lower), upper);
                    Vector256<float> finite = Vector256.ConditionalSelect(Vector256.Equals(rounded, rounded), clamped, Vector256<float>.Zero);
                    VectorBytes.Store8(Vector256.ConvertToInt32Native(finite) + zy, output + i);
                }
            }
            else if (vectorBits == 128)
            {
                Vector128<float> inverse = Vector128.Create(inverseScale);
                Vector128<float> lower = Vector128.Create((float)-zeroPoint), upper = Vector128.Create((float)(255 - zeroPoint));
                Vector128<int> zy = Vector128.Create(zeroPoint);
                for (; i + 4 <= length; i += 4)
                {
                    Vector128<float> rounded = Vector128.Round(Vector128.Load(source + i) * inverse);
                    Vector128<float> clamped = Vector128.MinNative(Vector128.MaxNative(rounded, lower), upper);
                    Vector128<float> finite = Vector128.ConditionalSelect(Vector128.Equals(rounded, rounded), clamped, Vector128<float>.Zero);
                    VectorBytes.Store4(Vector128.ConvertToInt32Native(finite) + zy, output + i);
                }
            }

            for (; i < length; i++)
            {
                output[i] = (byte)QuantizeScalar.QuantizeValue(source[i], inverseScale, zeroPoint, 0, 255);
            }
        }
    }
}

/// <summary>Vector-width resolution and the caller scratch of the element-wise kernels' parallel regions.</summary>
internal static class ElementwiseWidth
{
    [ThreadStatic]
    private static KernelScratch? t_scratch;

    /// <summary>The element-wise kernels keep no per-call scratch; the pool needs one for the caller slot.</summary>
    public static KernelScratch CallerScratch => t_scratch ??= new KernelScratch();

    public static int Resolve(int vectorBits) => vectorBits switch
    {
        -1 => VectorBytes.DefaultBits,
        0 or 128 or 256 => vectorBits,
        _ => throw new ArgumentOutOfRangeException(nameof(vectorBits), vectorBits, "Vector width must be 0 (scalar), 128 or 256 (or -1 for the dispatched width)."),
    };
}

/// <summary>Quantized clamp vectorised: <c>min(max(q, low), high)</c> on bytes, as <see cref="ClampScalar"/>.</summary>
public static unsafe class ClampKernel
{
    /// <summary>As <see cref="ClampScalar.Apply"/>; <paramref name="output"/> may be <paramref name="input"/>.</summary>
    /// <param name="input">Values in the unsigned view.</param>
    /// <param name="output">Results, same length.</param>
    /// <param name="low">Lower bound in the view.</param>
    /// <param name="high">Upper bound in the view.</param>
    /// <param name="vectorBits">256 or 128; 0 runs the scalar reference; −1 (default) the dispatched width.</param>
    public static void Apply(ReadOnlySpan<byte> input, Span<byte> output, byte low, byte high, int vectorBits = -1)
    {
        vectorBits = ElementwiseWidth.Resolve(vectorBits);
        if (vectorBits == 0 || input.Length != output.Length || low > high)
        {
            ClampScalar.Apply(input, output, low, high);
            return;
        }

        int length = input.Length;
        fixed (byte* source = input)
        fixed (byte* destination = output)
        {
            int i = 0;
            if (vectorBits == 256)
            {
                Vector256<byte> lows = Vector256.Create(low), highs = Vector256.Create(high);
                for (; i + 32 <= length; i += 32)
                {
                    Vector256.Min(Vector256.Max(Vector256.Load(source + i), lows), highs).Store(destination + i);
                }
            }

            Vector128<byte> lows128 = Vector128.Create(low), highs128 = Vector128.Create(high);
            for (; i + 16 <= length; i += 16)
            {
                Vector128.Min(Vector128.Max(Vector128.Load(source + i), lows128), highs128).Store(destination + i);
            }

            for (; i < length; i++)
            {
                byte q = source[i];
                destination[i] = q < low ? low : q > high ? high : q;
            }
        }
    }
}
