using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Reports;
using QuantGen.Tests.Generator.Models.Detection;
using QuantGen.Tests.Generator.Models.Fashion;
using QuantGen.Tests.Generator.Models.ResNet;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Reports;

/// <summary>Calibrated graph-mode test models (compiled by the real generator) for the report, explain and drawing tests.</summary>
internal static class ReportModels
{
    /// <summary>SmallResNet (X86): conv-bn-relu, max pool, residual adds, adaptive average pool, flatten, linear.</summary>
    public static Calibrated<SmallResNet, SmallResNet.Observed, SmallResNet.Quantized> ResNet()
    {
        var model = new SmallResNet();
        Randomize(model, seed: 11);
        model.eval();
        SmallResNet.Observed observed = model.Prepare();
        Calibrate(b => observed.forward(b), [2, 3, 32, 32]);
        return new(model, observed, observed.Convert(), observed.forward);
    }

    /// <summary>FashionCnn (Qnnpack): conv+relu, max pools, view, linear+relu, linear.</summary>
    public static Calibrated<FashionCnn, FashionCnn.Observed, FashionCnn.Quantized> Fashion()
    {
        var model = new FashionCnn();
        Randomize(model, seed: 12);
        model.eval();
        FashionCnn.Observed observed = model.Prepare();
        Calibrate(b => observed.forward(b), [2, 1, 28, 28]);
        return new(model, observed, observed.Convert(), observed.forward);
    }

    /// <summary>CenterNetHead (X86): conv-transposes with batch norm, three heads concatenated.</summary>
    public static Calibrated<CenterNetHead, CenterNetHead.Observed, CenterNetHead.Quantized> CenterNet()
    {
        var model = new CenterNetHead();
        Randomize(model, seed: 13);
        model.eval();
        CenterNetHead.Observed observed = model.Prepare();
        Calibrate(b => observed.forward(b), [1, 3, 16, 16]);
        return new(model, observed, observed.Convert(), observed.forward);
    }

    /// <summary>Float batches from a fixed seed; <paramref name="spread"/> above 1 makes some values fall outside the calibrated ranges.</summary>
    /// <remarks>A generator of their own: tests run in parallel and would race on torch's global one.</remarks>
    public static Tensor[] Batches(int count, long[] shape, int seed, float spread = 1f)
    {
        using var generator = new torch.Generator((ulong)seed);
        return Enumerable.Range(0, count).Select(_ => torch.randn(shape, generator: generator) * spread).ToArray();
    }

    private static void Calibrate(Func<Tensor, Tensor> forward, long[] shape)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach (Tensor batch in Batches(3, shape, seed: 5))
        {
            forward(batch);
        }
    }

    /// <summary>
    /// Every parameter uniform in ±1/√fan_in (±0.1 for biases), batch norms' statistics and affine parameters
    /// random, from a generator of the model's own (the global one would race with tests running in parallel).
    /// </summary>
    private static void Randomize(nn.Module model, int seed)
    {
        using var generator = new torch.Generator((ulong)seed);
        using var noGrad = torch.no_grad();
        foreach ((string _, TorchSharp.Modules.Parameter parameter) in model.named_parameters())
        {
            long fanIn = parameter.dim() > 1 ? parameter.numel() / parameter.shape[0] : 100;
            float bound = 1f / MathF.Sqrt(fanIn);
            using Tensor values = (torch.rand(parameter.shape, generator: generator) * 2 - 1) * bound;
            parameter.copy_(values);
        }

        foreach (nn.Module module in model.modules())
        {
            if (module is TorchSharp.Modules.BatchNorm2d bn)
            {
                long channels = bn.running_mean!.shape[0];
                bn.running_mean.copy_(torch.randn(channels, generator: generator) * 0.1f);
                bn.running_var!.copy_(torch.rand(channels, generator: generator) + 0.5f);
                bn.weight!.copy_(torch.rand(channels, generator: generator) + 0.5f);
                bn.bias!.copy_(torch.randn(channels, generator: generator) * 0.1f);
            }
        }
    }
}

/// <summary>A float model, its observed (fused, calibrated) form and the int8 model.</summary>
internal sealed record Calibrated<TModel, TObserved, TQuantized>(TModel Model, TObserved Observed, TQuantized Int8, Func<Tensor, IFloatTap?, Tensor> Forward) : IDisposable
    where TModel : nn.Module
    where TObserved : IDisposable
    where TQuantized : IQuantizedModel
{
    /// <summary>The float side for reports, re-deriving the fused weights from the float model.</summary>
    public IFloatModel FloatSide => FloatModel.FromModule(Model, Int8.Graph, Forward);

    /// <summary>Every layer's float output for one batch, by the test's own tap.</summary>
    public Dictionary<string, (float[] Values, long[] Shape)> FloatOutputs(Tensor input)
    {
        var tap = new RecordingFloatTap();
        using (torch.NewDisposeScope())
        using (torch.no_grad())
        {
            Forward(input, tap);
        }

        return tap.Outputs;
    }

    /// <summary>Every layer's int8 output for one batch.</summary>
    public Dictionary<string, QTensor> Int8Outputs(Tensor input)
    {
        var tap = new RecordingInt8Tap();
        float[] values = input.data<float>().ToArray();
        Int8.forward(Int8.Input.Forward(values, Array.ConvertAll(input.shape, d => (int)d)), tap);
        return tap.Outputs;
    }

    public void Dispose()
    {
        Observed.Dispose();
        Model.Dispose();
    }

    private sealed class RecordingFloatTap : IFloatTap
    {
        public Dictionary<string, (float[] Values, long[] Shape)> Outputs { get; } = new();

        public Tensor? OnLayer(string layer, Tensor output)
        {
            using Tensor copy = output.detach().contiguous();
            Outputs[layer] = (copy.data<float>().ToArray(), copy.shape);
            return null;
        }
    }

    private sealed class RecordingInt8Tap : IQuantizedTap
    {
        public Dictionary<string, QTensor> Outputs { get; } = new();

        public void OnLayer(string layer, QTensor output) =>
            Outputs[layer] = new QTensor(output.Shape, output.QParams, output.StorageBytes.ToArray(), output.Format);
    }
}
