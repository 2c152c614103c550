using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using QuantGen.Modules;

namespace QuantGen.Reports;

/// <summary>
/// The per-op arithmetic of <see cref="QuantExplain"/>, written out from docs/numerics.md in float32 exactly as the
/// contract orders it (each operation its own float32 local, no fused multiply-add except where the contract
/// uses one). Deliberately independent of the kernels: an explanation that disagrees with the model shows up as
/// <see cref="Explanation.Agrees"/> = false.
/// </summary>
internal static class ExplainOps
{
    public static Explanation Conv2d(Context context, QuantizedConv2d conv, QTensor x)
    {
        Conv2dOptions o = conv.Options;
        int n = context.Index[0], oc = context.Index[1], oy = context.Index[2], ox = context.Index[3];
        int inPerGroup = o.InChannels / o.Groups, outPerGroup = o.OutChannels / o.Groups, group = oc / outPerGroup;
        (float sw, int zw) = WeightQParams(conv.Weight.QParams, oc);
        int zx = x.ZeroPoint, height = x.Dim(2), width = x.Dim(3);
        var terms = new List<ReceptiveTerm>();
        for (int ci = 0; ci < inPerGroup; ci++)
        {
            for (int ky = 0; ky < o.KernelHeight; ky++)
            {
                for (int kx = 0; kx < o.KernelWidth; kx++)
                {
                    int iy = (oy * o.StrideHeight) - o.PadHeight + (ky * o.DilationHeight);
                    int ix = (ox * o.StrideWidth) - o.PadWidth + (kx * o.DilationWidth);
                    int channel = (group * inPerGroup) + ci;
                    bool padding = iy < 0 || iy >= height || ix < 0 || ix >= width;
                    int qx = padding ? zx : x.IntAt(n, channel, iy, ix);
                    int qw = conv.Weight.IntAt(oc, ci, ky, kx);
                    terms.Add(new ReceptiveTerm([n, channel, iy, ix], qx, [oc, ci, ky, kx], qw, (qx - zx) * (qw - zw), padding));
                }
            }
        }

        float bias = conv.Bias is float[] b ? b[oc] : 0f;
        return Accumulate(context, conv.Backend, terms, x.QParams, oc, sw, zw, bias, conv.FusedRelu);
    }

    public static Explanation ConvTranspose2d(Context context, QuantizedConvTranspose2d convTranspose, QTensor x)
    {
        ConvTranspose2dOptions o = convTranspose.Options;
        int n = context.Index[0], oc = context.Index[1], oy = context.Index[2], ox = context.Index[3];
        int inPerGroup = o.InChannels / o.Groups, outPerGroup = o.OutChannels / o.Groups, group = oc / outPerGroup, column = oc % outPerGroup;
        QParams weightQParams = convTranspose.Weight.QParams;
        (float sw, int zw) = weightQParams.IsPerChannel ? (weightQParams.Scales[column], weightQParams.ZeroPoints[column]) : (weightQParams.Scale, weightQParams.ZeroPoint);
        int zx = x.ZeroPoint;

        // Output (oy, ox) receives input (iy, ix) through tap (kh, kw) when oy = iy·s − p + kh·d.
        static int Source(int output, int tap, int stride, int pad, int dilation, int size)
        {
            int numerator = output + pad - (tap * dilation);
            return numerator < 0 || numerator % stride != 0 || numerator / stride >= size ? -1 : numerator / stride;
        }

        var terms = new List<ReceptiveTerm>();
        for (int ci = 0; ci < inPerGroup; ci++)
        {
            int channel = (group * inPerGroup) + ci;
            for (int kh = 0; kh < o.KernelHeight; kh++)
            {
                int iy = Source(oy, kh, o.StrideHeight, o.PadHeight, o.DilationHeight, x.Dim(2));
                for (int kw = 0; kw < o.KernelWidth && iy >= 0; kw++)
                {
                    int ix = Source(ox, kw, o.StrideWidth, o.PadWidth, o.DilationWidth, x.Dim(3));
                    if (ix < 0)
                    {
                        continue;
                    }

                    int qx = x.IntAt(n, channel, iy, ix);
                    int qw = convTranspose.Weight.IntAt(channel, column, kh, kw);
                    terms.Add(new ReceptiveTerm([n, channel, iy, ix], qx, [channel, column, kh, kw], qw, (qx - zx) * (qw - zw), false));
                }
            }
        }

        float bias = convTranspose.Bias is float[] b ? b[oc] : 0f;
        return Accumulate(context, convTranspose.Backend, terms, x.QParams, oc, sw, zw, bias, convTranspose.FusedRelu);
    }

    public static Explanation Linear(Context context, QuantizedLinear linear, QTensor x)
    {
        int feature = context.Index[^1];
        (float sw, int zw) = WeightQParams(linear.Weight.QParams, feature);
        int zx = x.ZeroPoint;
        var terms = new List<ReceptiveTerm>(linear.InFeatures);
        for (int i = 0; i < linear.InFeatures; i++)
        {
            int[] inputIndex = (int[])context.Index.Clone();
            inputIndex[^1] = i;
            int qx = x.IntAt(inputIndex);
            int qw = linear.Weight.IntAt(feature, i);
            terms.Add(new ReceptiveTerm(inputIndex, qx, [feature, i], qw, (qx - zx) * (qw - zw), false));
        }

        float bias = linear.Bias is float[] b ? b[feature] : 0f;
        return Accumulate(context, linear.Backend, terms, x.QParams, feature, sw, zw, bias, linear.FusedRelu);
    }

    public static Explanation Add(Context context, QuantizedAdd add, QTensor a, QTensor b)
    {
        int qa = a.IntAt(context.Index), qb = b.IntAt(context.Index);
        float sa = a.Scale, sb = b.Scale, sy = context.OutputQParams.Scale;
        int za = a.ZeroPoint, zb = b.ZeroPoint, zy = context.OutputQParams.ZeroPoint;
        float da = (float)(qa - za) * sa;
        float db = (float)(qb - zb) * sb;
        float sum = da + db;
        var steps = new List<ExplainStep>
        {
            new("input a", $"qa = {I(qa)}, sa = {F(sa)}, za = {I(za)}: da = (float)(qa − za)·sa = ({I(qa)} − {I(za)})·{F(sa)}", F(da)),
            new("input b", $"qb = {I(qb)}, sb = {F(sb)}, zb = {I(zb)}: db = ({I(qb)} − {I(zb)})·{F(sb)}", F(db)),
            new("sum", $"da + db = {F(da)} + {F(db)} (float32)", F(sum)),
        };
        if (add.Relu)
        {
            float before = sum;
            sum = sum > 0f ? sum : 0f;
            steps.Add(new ExplainStep("relu", $"max({F(before)}, 0)", F(sum)));
        }

        int result = QuantizeSteps(steps, sum, sy, zy, context.OutputQParams.DType);
        return Finish(context, steps, result);
    }

    public static Explanation Mul(Context context, QTensor a, QTensor b)
    {
        int[] ia = BroadcastSource(context.Index, a.Shape), ib = BroadcastSource(context.Index, b.Shape);
        int qa = a.IntAt(ia), qb = b.IntAt(ib);
        float sy = context.OutputQParams.Scale;
        int za = a.ZeroPoint, zb = b.ZeroPoint, zy = context.OutputQParams.ZeroPoint;
        QuantDType dtype = context.OutputQParams.DType;
        float inverse = 1.0f / sy;
        float multiplier = a.Scale * b.Scale * inverse;
        int product = (qa - za) * (qb - zb);
        float scaled = (float)product * multiplier;
        float rounded = MathF.Round(scaled, MidpointRounding.ToEven);
        int result = (int)Math.Clamp(rounded, dtype.Min() - zy, dtype.Max() - zy) + zy;
        var steps = new List<ExplainStep>
        {
            new("input a", $"a{ReportText.Index(ia)} = {I(qa)} (sa = {F(a.Scale)}, za = {I(za)})", string.Empty),
            new("input b", $"b{ReportText.Index(ib)} = {I(qb)} (sb = {F(b.Scale)}, zb = {I(zb)}){(ib.SequenceEqual(context.Index) && ia.SequenceEqual(context.Index) ? "" : " (broadcast: a size-1 dim reads index 0)")}", string.Empty),
            new("product", $"p = (qa − za)·(qb − zb) = ({I(qa)} − {I(za)})·({I(qb)} − {I(zb)}) (int32)", I(product)),
            new("multiplier", $"m = sa·sb·(1f/sy) = {F(a.Scale)}·{F(b.Scale)}·{F(inverse)} (float32, left to right)", F(multiplier)),
            new("value", $"(float)p·m = {I(product)}·{F(multiplier)}", F(scaled)),
            new("rounding", $"rne({F(scaled)}) (round half to even; zy added after)", F(rounded)),
            new("clamp", $"clamp({F(rounded)} + {I(zy)}, {I(dtype.Min())}, {I(dtype.Max())})", I(result)),
        };
        return Finish(context, steps, result);
    }

    public static Explanation Mean(Context context, QuantizedMean mean, QTensor x)
    {
        int rank = x.Rank;
        bool[] reduced = new bool[rank];
        foreach (int dim in mean.Dims)
        {
            reduced[dim < 0 ? dim + rank : dim] = true;
        }

        // The input index the output index fixes (kept dims), then every combination of the reduced ones.
        int[] fixedIndex = new int[rank];
        for (int d = 0, o = 0; d < rank; d++)
        {
            if (!reduced[d])
            {
                fixedIndex[d] = context.Index[o++];
            }
            else if (mean.KeepDim)
            {
                o++;
            }
        }

        long sum = 0;
        int count = 0;
        int[] index = (int[])fixedIndex.Clone();
        while (true)
        {
            sum += x.IntAt(index);
            count++;
            int d = rank - 1;
            for (; d >= 0; d--)
            {
                if (!reduced[d])
                {
                    continue;
                }

                if (++index[d] < x.Dim(d))
                {
                    break;
                }

                index[d] = 0;
            }

            if (d < 0)
            {
                break;
            }
        }

        float value = (float)sum / (float)count;
        int result = (int)MathF.Round(value, MidpointRounding.ToEven);
        return Finish(context,
        [
            new("sum", $"Σ q over dims [{string.Join(", ", mean.Dims)}] at x{ReportText.Index(fixedIndex)}: {I(count)} stored integers (zero point included)", I(sum)),
            new("mean", $"(float)Σ / (float)n = {I(sum)}/{I(count)} (float32)", F(value)),
            new("rounding", $"rne({F(value)}) (round half to even; the input's qparams pass through)", I(result)),
        ], result);
    }

    /// <summary>The index of a broadcast input that an output index reads: right-aligned, 0 where the input's size is 1.</summary>
    private static int[] BroadcastSource(int[] outputIndex, int[] shape)
    {
        var source = new int[shape.Length];
        for (int d = 0; d < shape.Length; d++)
        {
            int o = d + outputIndex.Length - shape.Length;
            source[d] = shape[d] == 1 ? 0 : outputIndex[o];
        }

        return source;
    }

    public static Explanation MaxPool2d(Context context, QuantizedMaxPool2d pool, QTensor x)
    {
        Pool2dOptions o = pool.Options;
        int n = context.Index[0], c = context.Index[1], oy = context.Index[2], ox = context.Index[3];
        var taps = new List<string>();
        int best = context.OutputQParams.DType.Min();
        for (int kh = 0; kh < o.KernelHeight; kh++)
        {
            for (int kw = 0; kw < o.KernelWidth; kw++)
            {
                int iy = (oy * o.EffectiveStrideHeight) - o.PadHeight + (kh * o.DilationHeight);
                int ix = (ox * o.EffectiveStrideWidth) - o.PadWidth + (kw * o.DilationWidth);
                if (iy < 0 || iy >= x.Dim(2) || ix < 0 || ix >= x.Dim(3))
                {
                    continue; // padding never wins
                }

                int q = x.IntAt(n, c, iy, ix);
                taps.Add($"x{ReportText.Index([n, c, iy, ix])} = {I(q)}");
                best = Math.Max(best, q);
            }
        }

        var steps = new List<ExplainStep>
        {
            new("window", taps.Count == 0 ? "no tap inside the input: the dtype's lowest value" : string.Join(", ", taps), string.Empty),
            new("max", "the integer maximum of the taps inside the input (qparams pass through)", I(best)),
        };
        return Finish(context, steps, best);
    }

    public static Explanation AvgPool2d(Context context, QuantizedAvgPool2d pool, QTensor x)
    {
        Pool2dOptions o = pool.Options;
        int oy = context.Index[2], ox = context.Index[3];
        int hStart = (oy * o.EffectiveStrideHeight) - o.PadHeight, wStart = (ox * o.EffectiveStrideWidth) - o.PadWidth;
        int hEnd = Math.Min(hStart + o.KernelHeight, x.Dim(2) + o.PadHeight), wEnd = Math.Min(wStart + o.KernelWidth, x.Dim(3) + o.PadWidth);
        int poolSize = (hEnd - hStart) * (wEnd - wStart);
        hStart = Math.Max(hStart, 0);
        wStart = Math.Max(wStart, 0);
        hEnd = Math.Min(hEnd, x.Dim(2));
        wEnd = Math.Min(wEnd, x.Dim(3));
        int size = (hEnd - hStart) * (wEnd - wStart);
        int divisor = o.DivisorOverride ?? (o.CountIncludePad ? poolSize : size);
        string rule = o.DivisorOverride is not null ? "divisor_override" : o.CountIncludePad ? "count_include_pad: window size with padding" : "taps inside the input";
        return Average(context, x, hStart, hEnd, wStart, wEnd, divisor, rule);
    }

    public static Explanation AdaptiveAvgPool2d(Context context, QuantizedAdaptiveAvgPool2d pool, QTensor x)
    {
        int oy = context.Index[2], ox = context.Index[3], height = x.Dim(2), width = x.Dim(3);
        static int Start(int i, int output, int input) => (int)MathF.Floor((float)((long)i * input) / output);
        static int End(int i, int output, int input) => (int)MathF.Ceiling((float)((long)(i + 1) * input) / output);
        int hStart = Start(oy, pool.OutputHeight, height), hEnd = End(oy, pool.OutputHeight, height);
        int wStart = Start(ox, pool.OutputWidth, width), wEnd = End(ox, pool.OutputWidth, width);
        return Average(context, x, hStart, hEnd, wStart, wEnd, (hEnd - hStart) * (wEnd - wStart), "the cell's element count");
    }

    public static Explanation BatchNorm2d(Context context, QuantizedBatchNorm2d batchNorm, QTensor x)
    {
        int c = context.Index[1];
        int q = x.IntAt(context.Index), zx = x.ZeroPoint, zy = context.OutputQParams.ZeroPoint;
        float sx = x.Scale, sy = context.OutputQParams.Scale;
        float scale = batchNorm.ChannelScale[c], shift = batchNorm.ChannelShift[c];
        float alpha = (float)(scale * ((double)sx / sy));
        float beta = (float)(shift / (double)sy);
        float centered = q - zx;
        float y = MathF.FusedMultiplyAdd(alpha, centered, beta);
        float rounded = MathF.Round(y, MidpointRounding.ToEven);
        QuantDType dtype = context.OutputQParams.DType;
        int lower = batchNorm.Relu ? zy : dtype.Min();
        int result = (int)Math.Clamp(rounded, lower - zy, dtype.Max() - zy) + zy;
        var steps = new List<ExplainStep>
        {
            new("input", $"x{ReportText.Index(context.Index)} = {I(q)}, sx = {F(sx)}, zx = {I(zx)}", string.Empty),
            new("channel", $"scale_c = {F(scale)}, shift_c = {F(shift)} (batch norm folded: γ/√(var+eps), β − mean·γ/√(var+eps))", string.Empty),
            new("alpha", $"(float)(scale_c · ((double)sx / sy)) in double", F(alpha)),
            new("beta", $"(float)(shift_c / (double)sy)", F(beta)),
            new("value", $"fma(alpha, q − zx, beta) = fma({F(alpha)}, {F(centered)}, {F(beta)}) (PyTorch's fused multiply-add)", F(y)),
            new("rounding", $"rne({F(y)}) (round half to even)", F(rounded)),
            new("clamp", $"clamp({F(rounded)} + {I(zy)}, {I(lower)}, {I(dtype.Max())}){(batchNorm.Relu ? " (ReLU: lower bound zy)" : string.Empty)}", I(result)),
        };
        return Finish(context, steps, result);
    }

    public static Explanation Relu(Context context, QTensor x)
    {
        int q = x.IntAt(context.Index), zp = x.ZeroPoint;
        int result = Math.Max(q, zp);
        return Finish(context, [new("relu", $"max(q, zp) = max({I(q)}, {I(zp)}) (integers; qparams pass through)", I(result))], result);
    }

    public static Explanation Copy(Context context, QTensor x, int flat, string why)
    {
        int[] source = QuantExplain.Unflatten(flat, x.Shape);
        int q = x.IntAt(source);
        return Finish(context, [new("copy", $"{why}: x{ReportText.Index(source)}", I(q))], q);
    }

    public static Explanation Upsample(Context context, QuantizedUpsampleNearest2d upsample, QTensor x)
    {
        int height = x.Dim(2), width = x.Dim(3), outHeight = context.OutputShape[2], outWidth = context.OutputShape[3];
        int iy, ix;
        string rule;
        if (height == outHeight && width == outWidth)
        {
            (iy, ix) = (context.Index[2], context.Index[3]);
            rule = "an output of the input's size is a plain copy";
        }
        else
        {
            float scaleHeight = upsample.ScaleHeight is double fh && fh > 0 ? (float)(1.0 / fh) : (float)height / outHeight;
            float scaleWidth = upsample.ScaleWidth is double fw && fw > 0 ? (float)(1.0 / fw) : (float)width / outWidth;
            iy = (int)Math.Min((long)MathF.Floor((float)context.Index[2] * scaleHeight), height - 1);
            ix = (int)Math.Min((long)MathF.Floor((float)context.Index[3] * scaleWidth), width - 1);
            rule = $"nearest: src = min(floor(d·scale), in − 1) with scales {F(scaleHeight)}, {F(scaleWidth)}";
        }

        int[] source = [context.Index[0], context.Index[1], iy, ix];
        int q = x.IntAt(source);
        return Finish(context, [new("copy", $"{rule}: x{ReportText.Index(source)}", I(q))], q);
    }

    public static Explanation Cat(Context context, QuantizedCat cat, QTensor[] inputs)
    {
        int rank = context.OutputShape.Length;
        int dim = cat.Dim < 0 ? cat.Dim + rank : cat.Dim;
        int offset = context.Index[dim], which = 0;
        while (offset >= inputs[which].Dim(dim))
        {
            offset -= inputs[which].Dim(dim);
            which++;
        }

        int[] source = (int[])context.Index.Clone();
        source[dim] = offset;
        QTensor x = inputs[which];
        int q = x.IntAt(source);
        float s = x.Scale, sy = context.OutputQParams.Scale;
        int z = x.ZeroPoint, zy = context.OutputQParams.ZeroPoint;
        float value = (float)(q - z) * s;
        var steps = new List<ExplainStep>
        {
            new("source", $"input {I(which)} at x{ReportText.Index(source)} = {I(q)} (scale {F(s)}, zero point {I(z)})", string.Empty),
            new("dequantize", $"(float)(q − z)·s = ({I(q)} − {I(z)})·{F(s)}", F(value)),
        };
        int result = QuantizeSteps(steps, value, sy, zy, context.OutputQParams.DType);
        return Finish(context, steps, result);
    }

    public static Explanation Quantize(Context context, QuantizeInput quantize, float? value)
    {
        if (value is not float x)
        {
            return Reported(context, "the model's input, quantized before the int8 forward (pass the float input to see the arithmetic)");
        }

        if (!quantize.IsObserved)
        {
            return Reported(context, "the model's input, never observed (converted without calibration): no int8 op reads it, so it stays float");
        }

        var steps = new List<ExplainStep> { new("float input", $"x{ReportText.Index(context.Index)}", F(x)) };
        int result = QuantizeSteps(steps, x, quantize.Scale, quantize.ZeroPoint, quantize.QParams.DType);
        return Finish(context, steps, result);
    }

    public static Explanation Reported(Context context, string what) =>
        Finish(context, [new("reported", what, I(context.ModelOutput))], context.ModelOutput);

    /// <summary>The conv/linear requantization of the chosen backend, then the usual hand calculations.</summary>
    private static AccumulatorExplanation Accumulate(Context context, QuantBackend backend, List<ReceptiveTerm> terms, QParams input, int channel, float sw, int zw, float bias, bool relu)
    {
        float sx = input.Scale, sy = context.OutputQParams.Scale;
        int zx = input.ZeroPoint, zy = context.OutputQParams.ZeroPoint;
        QuantDType dtype = context.OutputQParams.DType;
        int accumulator = 0;
        foreach (ReceptiveTerm term in terms)
        {
            accumulator = unchecked(accumulator + term.Product);
        }

        var steps = new List<ExplainStep>
        {
            new("accumulator", $"acc = Σ (qx − zx)·(qw − zw) over {I(terms.Count)} terms (int32, exact; padding adds 0)", I(accumulator)),
        };
        float? biasScale = null, biasTerm = null;
        int? quantizedBias = null;
        float multiplier, valueBeforeRounding, rounded;
        int clampMin, clampMax = dtype.Max(), result;
        if (backend == QuantBackend.Qnnpack)
        {
            float productScale = sx * sw;
            float inverseProductScale = 1.0f / productScale;
            float scaledBias = bias * inverseProductScale;
            float roundedBias = MathF.Round(scaledBias, MidpointRounding.ToEven);
            int bq = roundedBias >= 2147483648f ? int.MaxValue : roundedBias <= -2147483648f ? int.MinValue : (int)roundedBias;
            quantizedBias = bq;
            float weightInput = sw * sx;
            float inverseOutput = 1.0f / sy;
            multiplier = weightInput * inverseOutput;
            int biased = unchecked(accumulator + bq);
            float biasedAsFloat = biased;
            valueBeforeRounding = biasedAsFloat * multiplier;
            rounded = MathF.Round(valueBeforeRounding, MidpointRounding.ToEven);
            clampMin = relu ? zy : dtype.Min();
            result = (int)Math.Clamp(rounded, clampMin - zy, clampMax - zy) + zy;
            steps.Add(new("bias", $"bias = {F(bias)} (float) quantized to int32: bq = rne(bias·(1f/(sx·sw))) = rne({F(bias)}·{F(inverseProductScale)}) = rne({F(scaledBias)})", I(bq)));
            steps.Add(new("multiplier", $"M = (sw·sx)·(1f/sy) = {F(weightInput)}·{F(inverseOutput)} (float32)", F(multiplier)));
            steps.Add(new("value", $"(float)(acc + bq)·M = {I(biased)}·{F(multiplier)}", F(valueBeforeRounding)));
            steps.Add(new("rounding", $"rne({F(valueBeforeRounding)}) (round half to even; zy is added after rounding)", F(rounded)));
            steps.Add(new("clamp", $"clamp({F(rounded)} + {I(zy)}, {I(clampMin)}, {I(clampMax)}){(relu ? " (fused ReLU: lower bound zy)" : string.Empty)}", I(result)));
        }
        else
        {
            float inverseInput = 1.0f / sx;
            float inverseWeight = 1.0f / sw;
            float bs = inverseInput * inverseWeight;
            float inverseOutput = 1.0f / sy;
            multiplier = inverseOutput / bs;
            float term = bias * bs;
            float accumulatorAsFloat = accumulator;
            float sum = accumulatorAsFloat + term;
            float value = sum * multiplier;
            biasScale = bs;
            biasTerm = term;
            steps.Add(new("bias", $"bias = {F(bias)} stays float: bs = (1f/sx)·(1f/sw) = {F(inverseInput)}·{F(inverseWeight)} = {F(bs)}; bias·bs", F(term)));
            steps.Add(new("multiplier", $"M = (1f/sy)/bs = {F(inverseOutput)}/{F(bs)} (float32)", F(multiplier)));
            steps.Add(new("value", $"v = ((float)acc + bias·bs)·M = ({I(accumulator)} + {F(term)})·{F(multiplier)} = {F(sum)}·{F(multiplier)}", F(value)));
            if (relu)
            {
                float before = value;
                value = value > 0f ? value : 0f;
                steps.Add(new("relu", $"max({F(before)}, 0) (fused ReLU)", F(value)));
            }

            valueBeforeRounding = value + zy;
            rounded = MathF.Round(valueBeforeRounding, MidpointRounding.ToEven);
            clampMin = dtype.Min();
            result = (int)Math.Clamp(rounded, clampMin, clampMax);
            steps.Add(new("rounding", $"rne(v + zy) = rne({F(value)} + {I(zy)}) = rne({F(valueBeforeRounding)}) (round half to even; zy is added before rounding)", F(rounded)));
            steps.Add(new("clamp", $"clamp({F(rounded)}, {I(clampMin)}, {I(clampMax)})", I(result)));
        }

        return new AccumulatorExplanation
        {
            Model = context.Model,
            Layer = context.Layer,
            Op = context.Op,
            OutputIndex = context.Index,
            OutputShape = context.OutputShape,
            OutputQParams = context.OutputQParams,
            ModelOutput = context.ModelOutput,
            FloatValue = context.FloatValue,
            Steps = steps,
            Result = result,
            Backend = backend,
            Terms = terms,
            InputScale = sx,
            InputZeroPoint = zx,
            Channel = channel,
            WeightScale = sw,
            WeightZeroPoint = zw,
            Accumulator = accumulator,
            Bias = bias,
            BiasScale = biasScale,
            BiasTerm = biasTerm,
            QuantizedBias = quantizedBias,
            Multiplier = multiplier,
            ValueBeforeRounding = valueBeforeRounding,
            Rounded = rounded,
            ClampMin = clampMin,
            ClampMax = clampMax,
            Relu = relu,
            HandCalculations = HandCalculations(backend, accumulator, bias, sx, sw, sy, zy, relu, dtype, context.ModelOutput, biasTerm, quantizedBias),
        };
    }

    /// <summary>
    /// The hand calculations people post next to "PyTorch gives a different number" (seed 003, the PyTorch forum's
    /// formula), re-done in float64 as Python does with these integers, each checked against the model.
    /// </summary>
    private static List<HandCalculation> HandCalculations(QuantBackend backend, int accumulator, float bias, float sx, float sw, float sy, int zy, bool relu, QuantDType dtype, int actual, float? biasTerm, int? quantizedBias)
    {
        int lower = relu ? zy : dtype.Min(), upper = dtype.Max();
        int Final(double z) => (int)Math.Clamp(Math.Round(z, MidpointRounding.ToEven), lower, upper);
        string Rule() => backend == QuantBackend.X86
            ? $"this backend (X86) does not quantize the bias: it adds bias·bs = {F(biasTerm ?? 0)} in float32 to the accumulator and rounds v + zy"
            : $"this backend computes in float32 (bq = {I(quantizedBias ?? 0)}, M a float32 product), not in float64";

        var hands = new List<HandCalculation>();

        // 1. The forum formula with exact scales: int32 bias, then (acc + bq)·sx·sw/sy + zy, rounded.
        double bqExact = Math.Round(bias / ((double)sx * sw), MidpointRounding.ToEven);
        double zExact = ((accumulator + bqExact) * sx * sw / sy) + zy;
        int exact = Final(zExact);
        hands.Add(new HandCalculation(
            "int32 bias, exact scales",
            $"({I(accumulator)} + round({F(bias)}/({F(sx)}·{F(sw)})) = {D(bqExact)})·{F(sx)}·{F(sw)}/{F(sy)} + {I(zy)}",
            zExact, exact, exact != actual,
            exact != actual ? Rule() : "agrees here with the int8 model"));

        // 2. The same with the scales as torch prints them (4 decimals): seed 003's 31.
        double px = Printed(sx), pw = Printed(sw), py = Printed(sy);
        double bqPrinted = Math.Round(bias / (px * pw), MidpointRounding.ToEven);
        double zPrinted = ((accumulator + bqPrinted) * px * pw / py) + zy;
        int printed = Final(zPrinted);
        hands.Add(new HandCalculation(
            "int32 bias, scales as printed",
            $"({I(accumulator)} + round({F(bias)}/({D(px)}·{D(pw)})) = {D(bqPrinted)})·{D(px)}·{D(pw)}/{D(py)} + {I(zy)}",
            zPrinted, printed, printed != actual,
            printed != actual
                ? $"torch prints scales with 4 decimals; the model uses sx = {F(sx)}, sw = {F(sw)}, sy = {F(sy)} (with them this formula gives {I(exact)})"
                : "agrees here with the int8 model"));

        // 3. Seed 000's float formula: y = acc·sw·sx + bias, then round(y / sy) + zy.
        double y = ((double)accumulator * sw * sx) + bias;
        double yRelu = relu ? Math.Max(y, 0) : y;
        double zFloat = (yRelu / sy) + zy;
        int floatFormula = Final(zFloat);
        hands.Add(new HandCalculation(
            "float bias, float64",
            $"({I(accumulator)}·{F(sw)}·{F(sx)} + {F(bias)}){(relu ? " (ReLU)" : string.Empty)}/{F(sy)} + {I(zy)}",
            zFloat, floatFormula, floatFormula != actual,
            floatFormula != actual ? $"the int8 model computes in float32 ({(backend == QuantBackend.X86 ? "v = ((float)acc + bias·bs)·M" : "int32 bias")}), not float64" : "agrees here with the int8 model"));
        return hands;
    }

    private static Explanation Average(Context context, QTensor x, int hStart, int hEnd, int wStart, int wEnd, int divisor, string divisorRule)
    {
        int n = context.Index[0], c = context.Index[1];
        int zx = x.ZeroPoint, zy = context.OutputQParams.ZeroPoint;
        float sx = x.Scale, sy = context.OutputQParams.Scale;
        int accumulator = 0;
        var taps = new List<string>();
        for (int iy = hStart; iy < hEnd; iy++)
        {
            for (int ix = wStart; ix < wEnd; ix++)
            {
                int q = x.IntAt(n, c, iy, ix);
                accumulator += q - zx;
                taps.Add(I(q));
            }
        }

        float scaleRatio = sx / sy;
        float multiplier = scaleRatio / divisor;
        float quantizeScale = 1.0f / multiplier;
        float inverse = 1.0f / quantizeScale;
        float accumulatorAsFloat = accumulator;
        float scaled = accumulatorAsFloat * inverse;
        float rounded = MathF.Round(scaled, MidpointRounding.ToEven);
        QuantDType dtype = context.OutputQParams.DType;
        int result = (int)Math.Clamp(rounded, dtype.Min() - zy, dtype.Max() - zy) + zy;
        var steps = new List<ExplainStep>
        {
            new("window", $"rows {I(hStart)}..{I(hEnd - 1)}, columns {I(wStart)}..{I(wEnd - 1)} of channel {I(c)}: {string.Join(", ", taps)}", string.Empty),
            new("accumulator", $"acc = Σ (q − zx) with zx = {I(zx)} (int32)", I(accumulator)),
            new("divisor", divisorRule, I(divisor)),
            new("multiplier", $"sx/sy/divisor = {F(sx)}/{F(sy)}/{I(divisor)} (float32, left to right)", F(multiplier)),
            new("value", $"(float)acc·(1f/(1f/multiplier)) = {I(accumulator)}·{F(inverse)} (PyTorch's double reciprocal)", F(scaled)),
            new("rounding", $"rne({F(scaled)}) (round half to even; zy added after)", F(rounded)),
            new("clamp", $"clamp({F(rounded)} + {I(zy)}, {I(dtype.Min())}, {I(dtype.Max())})", I(result)),
        };
        return Finish(context, steps, result);
    }

    /// <summary>docs/numerics.md §2: <c>clamp(rne(x·(1f/s)) + zp, min, max)</c>, appended as steps.</summary>
    private static int QuantizeSteps(List<ExplainStep> steps, float value, float scale, int zeroPoint, QuantDType dtype)
    {
        float inverse = 1.0f / scale;
        float scaled = value * inverse;
        float rounded = MathF.Round(scaled, MidpointRounding.ToEven);
        int result = (int)Math.Clamp(rounded, dtype.Min() - zeroPoint, dtype.Max() - zeroPoint) + zeroPoint;
        steps.Add(new ExplainStep("scale", $"x·(1f/sy) = {F(value)}·{F(inverse)} (the float32 reciprocal of sy = {F(scale)})", F(scaled)));
        steps.Add(new ExplainStep("rounding", $"rne({F(scaled)}) (round half to even; zp added after)", F(rounded)));
        steps.Add(new ExplainStep("clamp", $"clamp({F(rounded)} + {I(zeroPoint)}, {I(dtype.Min())}, {I(dtype.Max())})", I(result)));
        return result;
    }

    private static Explanation Finish(Context context, IReadOnlyList<ExplainStep> steps, int result) => new()
    {
        Model = context.Model,
        Layer = context.Layer,
        Op = context.Op,
        OutputIndex = context.Index,
        OutputShape = context.OutputShape,
        OutputQParams = context.OutputQParams,
        ModelOutput = context.ModelOutput,
        FloatValue = context.FloatValue,
        Steps = steps,
        Result = result,
    };

    private static (float Scale, int ZeroPoint) WeightQParams(QParams qparams, int channel) =>
        qparams.IsPerChannel ? (qparams.Scales[channel], qparams.ZeroPoints[channel]) : (qparams.Scale, qparams.ZeroPoint);

    private static double Printed(float scale) => Math.Round((double)scale, 4, MidpointRounding.ToEven);

    private static string F(float value) => ReportText.Exact(value);

    private static string D(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string I(long value) => ReportText.Int(value);
}
