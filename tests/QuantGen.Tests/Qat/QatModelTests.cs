using System;
using System.IO;
using System.Linq;
using QuantGen.Qat;
using QuantGen.Tests.Binding;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Tests.Qat;

/// <summary>
/// <c>PrepareQat</c> → train → <c>Convert</c> on models written as TorchSharp users write them: the QAT forward against an
/// independent re-computation, training with TorchSharp's optimizer, PyTorch's schedule switches, and the converted int8
/// model against the QAT model's eval-mode output.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class QatModelTests
{
    [Fact]
    public void The_qat_form_shares_the_models_parameters_and_has_fake_quant_where_the_int8_model_quantizes()
    {
        torch.manual_seed(1);
        using var model = new QatNet();
        using QatNet.Qat qat = model.PrepareQat();

        Assert.True(qat.training);
        Assert.True(model.training);
        var modelParameters = model.parameters().Select(p => p.Handle).ToHashSet();
        var qatParameters = qat.parameters().Select(p => p.Handle).ToArray();
        Assert.Equal(modelParameters.Count, qatParameters.Length);
        Assert.All(qatParameters, p => Assert.Contains(p, modelParameters));

        string text = qat.ToString();
        Assert.Contains("(stem.0): Conv2d+BatchNorm2d+ReLU", text);
        Assert.Contains("weight_fake_quant", text);
        Assert.Contains("FusedMovingAvgObsFakeQuantize", text);

        // Three weighted layers (stem conv, block conv, fc1, fc2) and the input, stem, add, fc1, fc2 outputs.
        Assert.Equal(4, qat.FakeQuantizes.Count(f => f.Layer.EndsWith(".weight", StringComparison.Ordinal)));
        Assert.Contains(qat.FakeQuantizes, f => f.Layer == "QatNet.input");
        Assert.Contains(qat.FakeQuantizes, f => f.Layer == "QatNet.fc2");
    }

    [Fact]
    public void Disposing_the_qat_form_leaves_the_model_it_borrowed_usable()
    {
        torch.manual_seed(12);
        using var model = new QatNet();
        using Tensor x = torch.randn(2, 1, 8, 8);
        model.PrepareQat().Dispose();

        model.eval();
        using (torch.no_grad())
        using (Tensor y = model.forward(x))
        {
            Assert.Equal(new long[] { 2, 4 }, y.shape);
        }

        Assert.All(model.parameters(), p => Assert.False(p.IsInvalid));
    }

    [Fact]
    public void Conv_bn_relu_in_training_is_pytorchs_approximate_fused_forward()
    {
        torch.manual_seed(2);
        using var model = new QatConvBnNet();
        using (torch.no_grad())
        {
            model.Norm.running_mean!.uniform_(-0.3, 0.3);
            model.Norm.running_var!.uniform_(0.5, 2.0);
            model.Norm.weight!.uniform_(0.5, 1.5);
            model.Norm.bias!.uniform_(-0.2, 0.2);
        }

        using QatConvBnNet.Qat qat = model.PrepareQat();
        foreach (FakeQuantizeBase activation in qat.FakeQuantizes.Where(f => !f.Layer.EndsWith(".weight", StringComparison.Ordinal)))
        {
            activation.DisableFakeQuant();   // compare the conv-bn-relu itself
        }

        using Tensor x = torch.randn(4, 3, 6, 7);
        float[] runningVar = model.Norm.running_var!.data<float>().ToArray();
        float[] gamma = model.Norm.weight!.data<float>().ToArray();
        float[] beta = model.Norm.bias!.data<float>().ToArray();
        float[] convBias = model.Conv.bias!.data<float>().ToArray();
        float[] weight = model.Conv.weight!.data<float>().ToArray();
        float eps = (float)model.Norm.eps;

        using Tensor y = qat.forward(x);

        // By hand: the weight scaled by gamma / sqrt(running_var + eps), fake-quantized per channel with the qparams the
        // weight's fake quantize used, a conv without bias, divided back, the conv bias, batch statistics, ReLU.
        var weightFq = (FakeQuantize)qat.FakeQuantizes.Single(f => f.Layer == "QatConvBnNet.conv.weight");
        QParams wq = weightFq.TrainingQParams!;
        int perChannel = weight.Length / 5;
        var factor = new float[5];
        var fakeWeight = new float[weight.Length];
        for (int c = 0; c < 5; c++)
        {
            factor[c] = gamma[c] / MathF.Sqrt(runningVar[c] + eps);
            for (int i = c * perChannel; i < (c + 1) * perChannel; i++)
            {
                fakeWeight[i] = FakeQuantReference.Forward(weight[i] * factor[c], wq.Scales[c], wq.ZeroPoints[c], weightFq.QuantMin, weightFq.QuantMax);
            }
        }

        using Tensor w = torch.tensor(fakeWeight, new long[] { 5, 3, 3, 3 });
        using Tensor conv = torch.nn.functional.conv2d(x, w, padding: new long[] { 1, 1 });
        float[] convolved = conv.data<float>().ToArray();
        int plane = 6 * 7;
        var expected = new float[convolved.Length];
        for (int c = 0; c < 5; c++)
        {
            double sum = 0;
            double squares = 0;
            int count = 4 * plane;
            for (int n = 0; n < 4; n++)
            {
                for (int i = 0; i < plane; i++)
                {
                    int at = (((n * 5) + c) * plane) + i;
                    convolved[at] = (convolved[at] / factor[c]) + convBias[c];
                    sum += convolved[at];
                }
            }

            double mean = sum / count;
            for (int n = 0; n < 4; n++)
            {
                for (int i = 0; i < plane; i++)
                {
                    double d = convolved[(((n * 5) + c) * plane) + i] - mean;
                    squares += d * d;
                }
            }

            double variance = squares / count;   // biased, as batch norm normalises in training
            for (int n = 0; n < 4; n++)
            {
                for (int i = 0; i < plane; i++)
                {
                    int at = (((n * 5) + c) * plane) + i;
                    double normalised = ((convolved[at] - mean) / Math.Sqrt(variance + eps) * gamma[c]) + beta[c];
                    expected[at] = (float)Math.Max(0.0, normalised);
                }
            }
        }

        float[] actual = y.data<float>().ToArray();
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-4f, $"element {i}: QAT {actual[i]}, by hand {expected[i]}");
        }

        // Training mode updated the running statistics, as BatchNorm does.
        Assert.NotEqual(runningVar, model.Norm.running_var!.data<float>().ToArray());
    }

    [Fact]
    public void Training_with_a_torchsharp_optimizer_lowers_the_loss_and_freeze_batch_norm_keeps_the_statistics()
    {
        torch.manual_seed(3);
        using var model = new QatNet();
        using QatNet.Qat qat = model.PrepareQat();
        (Tensor images, Tensor labels) = TeacherTask(64, seed: 3);
        using var optimizer = torch.optim.Adam(qat.parameters(), 0.01);
        float first = 0;
        float last = 0;
        for (int step = 0; step < 40; step++)
        {
            using var scope = torch.NewDisposeScope();
            Tensor loss = torch.nn.functional.cross_entropy(qat.forward(images), labels);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            if (step == 0)
            {
                first = loss.item<float>();
            }

            last = loss.item<float>();
        }

        Assert.True(last < first * 0.9f, $"loss {first} → {last}");

        // PyTorch's schedule: freeze the qparams and the fused BatchNorms' statistics, keep training the weights.
        qat.DisableObservers();
        qat.FreezeBatchNorm();
        qat.train();
        QParams before = qat.FakeQuantizes.Single(f => f.Layer == "QatNet.fc1").CalculateQParams();
        var stemNorm = (BatchNorm2d)((Sequential)model.named_modules().Single(m => m.name == "stem").module)[1];
        float[] mean = stemNorm.running_mean!.data<float>().ToArray();
        using (var scope = torch.NewDisposeScope())
        {
            Tensor loss = torch.nn.functional.cross_entropy(qat.forward(images), labels);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }

        Assert.Equal(mean, stemNorm.running_mean!.data<float>().ToArray());
        Assert.False(stemNorm.training);
        QParams after = qat.FakeQuantizes.Single(f => f.Layer == "QatNet.fc1").CalculateQParams();
        Assert.Equal(before.Scale, after.Scale);
        Assert.Equal(before.ZeroPoint, after.ZeroPoint);
        images.Dispose();
        labels.Dispose();
    }

    [Fact]
    public void A_converted_conv_bn_relu_is_within_one_output_step_of_the_qat_layers_eval_output()
    {
        torch.manual_seed(4);
        using var model = new QatConvBnNet();
        using QatConvBnNet.Qat qat = model.PrepareQat();
        using (var optimizer = torch.optim.Adam(qat.parameters(), 0.01))
        {
            for (int iteration = 0; iteration < 10; iteration++)
            {
                using var scope = torch.NewDisposeScope();
                Tensor loss = (qat.forward(torch.randn(8, 3, 6, 6)) - 0.5f).pow(2).mean();
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
            }
        }

        qat.eval();
        using Tensor x = torch.randn(16, 3, 6, 6);
        using Tensor expected = qat.forward(x);
        QatConvBnNet.Quantized int8 = qat.Convert();
        using Tensor actual = int8.forward(x);

        // One layer: the int8 conv (BatchNorm folded with the trained statistics, weights on the grid training used in
        // eval) and the QAT layer's fake-quantized output can only differ where a value sits on a rounding tie.
        float step = qat.FakeQuantizes.Single(f => f.Layer == "QatConvBnNet.conv").CalculateQParams().Scale;
        using Tensor difference = (actual - expected).abs();
        float worst = difference.max().item<float>();
        Assert.True(worst <= step * 1.0001f, $"worst difference {worst} is more than one output step {step}");
    }

    [Fact]
    public void A_converted_deeper_model_agrees_with_the_qat_models_eval_output_to_the_step_almost_everywhere()
    {
        torch.manual_seed(4);
        using var model = new QatNet();
        using QatNet.Qat qat = model.PrepareQat();
        Train(qat, 30, seed: 4);

        qat.eval();
        using Tensor x = torch.randn(64, 1, 8, 8);
        using Tensor expected = qat.forward(x);
        QatNet.Quantized int8 = qat.Convert();
        using Tensor actual = int8.forward(x);

        // Five quantized layers deep, a value that lands on a rounding tie in float but not in the integers (or the
        // other way) moves one intermediate step, which the layers after it carry to several outputs. Most outputs are
        // exact; none may be far off.
        float step = qat.FakeQuantizes.Single(f => f.Layer == "QatNet.fc2").CalculateQParams().Scale;
        using Tensor difference = (actual - expected).abs();
        float[] steps = difference.data<float>().ToArray().Select(d => d / step).ToArray();
        double withinOne = steps.Count(s => s <= 1.0001f) / (double)steps.Length;
        Assert.True(withinOne >= 0.9, $"only {withinOne:P1} of the outputs are within one step");
        Assert.True(steps.Max() <= 4.0001f, $"an output is {steps.Max()} steps off");
        using (var predictedQat = expected.argmax(1))
        using (var predictedInt8 = actual.argmax(1))
        using (var same = predictedQat.eq(predictedInt8))
        {
            Assert.True(same.to_type(ScalarType.Float32).mean().item<float>() >= 0.95f);
        }

        // The int8 model is the PTQ one: it saves and loads as any other.
        using var stream = new MemoryStream();
        int8.Save(stream);
        stream.Position = 0;
        QatNet.Quantized loaded = QatNet.Quantized.Load(stream);
        using Tensor again = loaded.forward(x);
        Assert.Equal(actual.data<float>().ToArray(), again.data<float>().ToArray());
    }

    [Fact]
    public void A_generated_form_model_converts_through_its_own_prepare_with_the_same_layer_names()
    {
        torch.manual_seed(5);
        using var model = new QatGeneratedFormNet();
        using QatGeneratedFormNet.Qat qat = model.PrepareQat(QConfig.QatQnnpack);
        Train(qat, 10, seed: 5, classes: 3);
        qat.eval();
        using Tensor x = torch.randn(8, 1, 8, 8);
        using Tensor expected = qat.forward(x);
        QatGeneratedFormNet.Quantized int8 = qat.Convert();
        using Tensor actual = int8.forward(x);
        float step = qat.FakeQuantizes.Single(f => f.Layer == "QatGeneratedFormNet.fc").CalculateQParams().Scale;
        using Tensor difference = (actual - expected).abs();
        float worst = difference.max().item<float>();
        Assert.True(worst <= step * 1.0001f, $"worst difference {worst} is more than one output step {step}");
    }

    [Fact]
    public void An_eager_mode_model_with_stubs_and_fuse_trains_and_converts_to_its_generated_form()
    {
        torch.manual_seed(11);
        using var model = new QatStubNet();
        using QatStubNet.Qat qat = model.PrepareQat();
        Assert.Contains(qat.FakeQuantizes, f => f.Layer == "QatStubNet.conv1.weight");
        using (var optimizer = torch.optim.SGD(qat.parameters(), 0.01))
        {
            for (int iteration = 0; iteration < 5; iteration++)
            {
                using var scope = torch.NewDisposeScope();
                Tensor loss = qat.forward(torch.randn(4, 1, 9, 9)).pow(2).mean();
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
            }
        }

        qat.eval();
        using Tensor x = torch.randn(3, 1, 9, 9);
        using Tensor expected = qat.forward(x);
        QatStubNet.Quantized int8 = qat.Convert();
        using Tensor actual = int8.forward(x);
        float step = qat.FakeQuantizes.Single(f => f.Layer == "QatStubNet.conv2").CalculateQParams().Scale;
        using Tensor difference = (actual - expected).abs();
        Assert.True(difference.max().item<float>() <= 1.0001f * step, $"worst difference {difference.max().item<float>()}, output step {step}");
    }

    [Fact]
    public void Sigmoid_gets_pytorchs_fixed_qparams_and_a_transposed_conv_with_batch_norm_trains_and_converts()
    {
        torch.manual_seed(6);
        using var model = new QatGateNet();
        using QatGateNet.Qat qat = model.PrepareQat();
        FakeQuantizeBase gate = qat.FakeQuantizes.Single(f => f.Layer == "QatGateNet.gate");
        Assert.True(gate.Observer.IsFixed);
        Assert.Equal(1f / 256f, gate.Observer.FixedQParams!.Scale);
        Assert.Equal(0, gate.Observer.FixedQParams!.ZeroPoint);
        FakeQuantizeBase upWeight = qat.FakeQuantizes.Single(f => f.Layer == "QatGateNet.up.weight");
        Assert.Equal(1, upWeight.Spec.Observer.ChannelAxis);

        using var optimizer = torch.optim.SGD(qat.parameters(), 0.05);
        for (int step = 0; step < 5; step++)
        {
            using var scope = torch.NewDisposeScope();
            Tensor x = torch.randn(4, 2, 5, 5);
            Tensor loss = qat.forward(x).pow(2).mean();
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }

        qat.eval();
        using Tensor input = torch.randn(2, 2, 5, 5);
        using Tensor expected = qat.forward(input);
        QatGateNet.Quantized int8 = qat.Convert();
        using Tensor actual = int8.forward(input);
        float stepSize = qat.FakeQuantizes.Single(f => f.Layer == "QatGateNet.up").CalculateQParams().Scale;
        using Tensor difference = (actual - expected).abs();
        float worst = difference.max().item<float>();
        Assert.True(worst <= stepSize * 1.0001f, $"worst difference {worst} is more than one output step {stepSize}");
    }

    [Fact]
    public void Convert_in_training_mode_and_training_after_convert_are_refused_naming_the_model()
    {
        torch.manual_seed(7);
        using var model = new QatNet();
        using QatNet.Qat qat = model.PrepareQat();
        Train(qat, 2, seed: 7);

        var inTraining = Assert.Throws<InvalidOperationException>(() => qat.Convert());
        Assert.Contains("QatNet.Qat", inTraining.Message);
        Assert.Contains("eval", inTraining.Message);

        qat.eval();
        _ = qat.Convert();
        using Tensor x = torch.randn(2, 1, 8, 8);
        using (qat.forward(x))
        {
            // eval-mode forwards after Convert are fine
        }

        qat.train();
        var afterConvert = Assert.Throws<InvalidOperationException>(() => qat.forward(x));
        Assert.Contains("training after Convert()", afterConvert.Message);
    }

    [Fact]
    public void Convert_before_any_training_batch_names_the_fake_quantize()
    {
        torch.manual_seed(8);
        using var model = new QatNet();
        using QatNet.Qat qat = model.PrepareQat();
        qat.eval();
        var error = Assert.Throws<InvalidOperationException>(() => qat.Convert());
        Assert.Contains("QatNet.input", error.Message);
        Assert.Contains("no qparams", error.Message);
    }

    [Fact]
    public void A_nan_gradient_reaching_a_fake_quantize_stops_the_next_forward_naming_the_layer()
    {
        torch.manual_seed(9);
        using var model = new QatNet();
        using QatNet.Qat qat = model.PrepareQat();
        using Tensor x = torch.randn(4, 1, 8, 8);
        using (var scope = torch.NewDisposeScope())
        {
            Tensor loss = qat.forward(x).sum() * float.NaN;
            loss.backward();
        }

        var error = Assert.Throws<InvalidOperationException>(() => qat.forward(x));
        Assert.Contains("NaN gradient", error.Message);
        Assert.Contains("QatNet.", error.Message);
    }

    [Fact]
    public void Learned_qparams_are_trainable_parameters_and_a_scale_driven_below_zero_is_an_error()
    {
        torch.manual_seed(10);
        using var model = new QatNet();
        QatQConfig learned = QConfig.QatX86 with { Activation = FakeQuantSpec.Learnable(QConfig.QatX86.Activation.Observer, useGradScaling: true) };
        using QatNet.Qat qat = model.PrepareQat(learned);
        int modelCount = model.parameters().Count();
        int activationPoints = qat.FakeQuantizes.Count(f => f is LearnableFakeQuantize);
        Assert.True(activationPoints >= 5);
        Assert.Equal(modelCount + (2 * activationPoints), qat.parameters().Count());

        Train(qat, 3, seed: 10);
        var fc1 = (LearnableFakeQuantize)qat.FakeQuantizes.Single(f => f.Layer == "QatNet.fc1");
        fc1.DisableObserver();
        using (torch.no_grad())
        {
            fc1.Scale.fill_(-0.5f);
        }

        using Tensor x = torch.randn(2, 1, 8, 8);
        var error = Assert.Throws<InvalidOperationException>(() => qat.forward(x));
        Assert.Contains("QatNet.fc1", error.Message);
        Assert.Contains("learned scale", error.Message);
    }

    private static void Train(torch.nn.Module<Tensor, Tensor> qat, int steps, int seed, int classes = 4)
    {
        (Tensor images, Tensor labels) = TeacherTask(64, seed, classes);
        using var optimizer = torch.optim.Adam(qat.parameters(), 0.01);
        for (int step = 0; step < steps; step++)
        {
            using var scope = torch.NewDisposeScope();
            Tensor loss = torch.nn.functional.cross_entropy(qat.forward(images), labels);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }

        images.Dispose();
        labels.Dispose();
    }

    /// <summary>Images whose label is the quadrant with the largest mean: learnable in a few steps, not trivially.</summary>
    private static (Tensor Images, Tensor Labels) TeacherTask(int count, int seed, int classes = 4)
    {
        torch.manual_seed(seed);
        Tensor images = torch.randn(count, 1, 8, 8);
        using Tensor quadrants = torch.nn.functional.avg_pool2d(images, 4).flatten(1);
        using Tensor best = quadrants.argmax(1);
        Tensor labels = best.remainder(classes);
        return (images, labels);
    }
}
