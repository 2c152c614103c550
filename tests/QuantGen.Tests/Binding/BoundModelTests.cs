using System;
using System.Linq;
using System.Threading.Tasks;
using QuantGen.Binding;
using QuantGen.Graphs;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// Models written as TorchSharp users write them quantize with only [Quantize] + partial: the forward captured at
/// compile time is bound at Prepare (containers unrolled, user modules inlined, float fallback), and the int8
/// model agrees with the float model it came from (TorchSharp, an independent computation).
/// </summary>
[Collection(QuantGen.Tests.Binding.SeededTorchCollection.Name)]
public sealed class BoundModelTests
{
    internal static void RandomizeBatchNorm(nn.Module model, int seed)
    {
        using var generator = new torch.Generator((ulong)seed + 7);
        using var noGrad = torch.no_grad();
        foreach ((string _, nn.Module module) in model.named_modules())
        {
            if (module is BatchNorm2d bn)
            {
                long c = bn.running_mean!.shape[0];
                bn.running_mean.copy_(torch.randn(c, generator: generator) * 0.1f);
                bn.running_var!.copy_(torch.rand(c, generator: generator) * 0.5f + 0.75f);
                bn.weight!.copy_(torch.rand(c, generator: generator) * 0.5f + 0.75f);
                bn.bias!.copy_(torch.randn(c, generator: generator) * 0.1f);
            }
        }
    }

    internal static double SqnrDb(Tensor reference, Tensor actual)
    {
        double signal = (reference * reference).sum().item<float>();
        Tensor diff = reference - actual;
        double noise = (diff * diff).sum().item<float>();
        return 10 * Math.Log10(signal / Math.Max(noise, 1e-30));
    }

    private static (IdiomNet Model, IdiomNet.Observed Observed) CalibratedIdiomNet()
    {
        torch.manual_seed(11);
        var model = new IdiomNet();
        RandomizeBatchNorm(model, 11);
        model.eval();
        IdiomNet.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            for (int i = 0; i < 4; i++)
            {
                using Tensor batch = torch.randn(2, 3, 16, 16);
                observed.forward(batch).Dispose();
            }
        }

        return (model, observed);
    }

    [Fact]
    public void Every_idiom_binds_and_the_int8_model_tracks_the_float_model()
    {
        (IdiomNet model, IdiomNet.Observed observed) = CalibratedIdiomNet();
        using (observed)
        {
            IdiomNet.Quantized int8 = observed.Convert();
            using var noGrad = torch.no_grad();
            using Tensor x = torch.randn(4, 3, 16, 16);
            using Tensor expected = model.forward(x);
            using Tensor fused = observed.forward(x);
            using Tensor actual = int8.forward(x);
            Assert.Equal(expected.shape, actual.shape);

            // The observed form is the float model with BN folded: equal up to float rounding.
            Assert.True(SqnrDb(expected, fused) > 80, $"fused float vs float: {SqnrDb(expected, fused):F1} dB");
            double sqnr = SqnrDb(expected, actual);
            Assert.True(sqnr >= 25, $"int8 vs float SQNR {sqnr:F1} dB");
        }
    }

    [Fact]
    public void Containers_are_unrolled_from_the_instance_with_PyTorch_paths_and_fusions()
    {
        (IdiomNet _, IdiomNet.Observed observed) = CalibratedIdiomNet();
        using (observed)
        {
            BoundOp[] ops = observed.Graph.Ops.ToArray();
            string[] names = ops.Select(o => o.Name).ToArray();

            // Sequential children with non-identifier names, a helper-built Sequential of a captured user module,
            // and a ModuleList looped over in forward, each under its registered name.
            Assert.Contains("stem.conv-1", names);
            Assert.Contains("blocks.block0.conv1", names);
            Assert.Contains("blocks.block1.shortcut.0", names);
            Assert.Contains("heads.0.0", names);
            Assert.Contains("heads.1.0", names);

            BoundOp stem = ops.Single(o => o.Name == "stem.conv-1");
            Assert.Equal(BoundKind.Conv2d, stem.Kind);
            Assert.Equal("stem.bn-1", stem.FusedBatchNorm?.Path);
            Assert.Equal("stem.relu", stem.FusedRelu);

            // block0 has no shortcut: the early return's branch was chosen at Prepare, so no op of block0 is
            // named shortcut, and its add took the block input directly (add + relu_ fused).
            Assert.DoesNotContain(names, n => n.StartsWith("blocks.block0.shortcut", StringComparison.Ordinal));
            Assert.Contains(ops, o => o.Name.StartsWith("blocks.block0.add", StringComparison.Ordinal) && o.Kind == BoundKind.Add && o.FusedRelu is not null);
        }
    }

    [Fact]
    public void Ops_without_an_int8_op_run_in_float_and_are_listed_with_why()
    {
        (IdiomNet _, IdiomNet.Observed observed) = CalibratedIdiomNet();
        using (observed)
        {
            var floatOps = observed.FloatOps;
            Assert.Contains(floatOps, f => f.Layer == "act" && f.Type == "LogSoftmax" && f.Reason.Contains("no int8 op", StringComparison.Ordinal));
            Assert.Contains(floatOps, f => f.Type == "function" && f.Reason.Contains("permute", StringComparison.Ordinal));
            string summary = observed.Summary();
            Assert.Contains("LogSoftmax", summary, StringComparison.Ordinal);
            Assert.Contains("in float", summary, StringComparison.Ordinal);

            IdiomNet.Quantized int8 = observed.Convert();
            Assert.Contains(int8.Graph.Nodes, n => n.Name == "act" && n.Op == GraphOp.FloatIsland);
            Assert.Contains(int8.Graph.Nodes, n => n.Name == "stem.conv-1" && n.Op == GraphOp.Conv2d && n.IsFused);
            Assert.Contains(int8.Graph.Nodes, n => n.Op == GraphOp.Cat);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Patterns_from_public_models_bind_to_int8(bool useDown)
    {
        torch.manual_seed(17);
        using var model = new SurveyPatternsNet(useDown);
        RandomizeBatchNorm(model, 17);
        model.eval();
        using SurveyPatternsNet.Observed observed = model.Prepare();
        BoundOp[] ops = observed.Graph.Ops.ToArray();

        // The private nested Block is captured (registered inside its partial container) and inlined.
        Assert.Contains(ops, o => o.Name == "encoder.conv" && o.Kind == BoundKind.Conv2d && o.FusedBatchNorm is not null && o.FusedRelu is not null);
        // The plain bool field decides the branch at Prepare; ConvTranspose2d folds its BatchNorm and ReLU.
        Assert.Equal(useDown, ops.Any(o => o.Name == "up" && o.Kind == BoundKind.ConvTranspose2d && o.FusedBatchNorm is not null && o.FusedRelu is not null));
        Assert.Contains(ops, o => o.Kind == BoundKind.Cat && o.Inputs.Length == 2);
        Assert.Contains(ops, o => o.Kind == BoundKind.Reshape && o.Ints.SequenceEqual(new[] { -1, 256 }));
        // eval(): 'training == false' holds, so the head's ReLU is part of the graph (fused into the Linear).
        Assert.Contains(ops, o => o.Name == "head" && o.FusedRelu is not null);
        Assert.Empty(observed.FloatOps);

        using var noGrad = torch.no_grad();
        for (int i = 0; i < 3; i++)
        {
            observed.forward(torch.randn(2, 3, 8, 8)).Dispose();
        }

        SurveyPatternsNet.Quantized int8 = observed.Convert();
        using Tensor x = torch.randn(3, 3, 8, 8);
        double sqnr = SqnrDb(model.forward(x), int8.forward(x));
        Assert.True(sqnr >= 25, $"int8 vs float SQNR {sqnr:F1} dB");
    }

    [Fact]
    public void Unary_activations_run_in_int8_by_table_with_fixed_qparams_where_PyTorch_fixes_them()
    {
        torch.manual_seed(23);
        using var model = new ActivationsNet();
        model.eval();
        using ActivationsNet.Observed observed = model.Prepare();
        Assert.Empty(observed.FloatOps);
        Assert.Equal(new[] { "LeakyReLU", "Hardswish", "SiLU", "Sigmoid" }, observed.Graph.Ops.Where(o => o.Kind == BoundKind.Elementwise).Select(o => o.TypeName).ToArray());
        using var noGrad = torch.no_grad();
        for (int i = 0; i < 3; i++)
        {
            observed.forward(torch.randn(2, 3, 8, 8)).Dispose();
        }

        ActivationsNet.Quantized int8 = observed.Convert();
        var gate = int8.Layers.OfType<QuantGen.Modules.QuantizedElementwise>().Single(l => l.Layer == "gate");
        Assert.Equal((1f / 256f, 0), (gate.OutputQParams.Scale, gate.OutputQParams.ZeroPoint));
        using Tensor x = torch.randn(3, 3, 8, 8);
        double sqnr = SqnrDb(model.forward(x), int8.forward(x));
        Assert.True(sqnr >= 25, $"int8 vs float SQNR {sqnr:F1} dB");

        using var stream = new System.IO.MemoryStream();
        int8.Save(stream);
        var loaded = ActivationsNet.Quantized.Load(new System.IO.MemoryStream(stream.ToArray()));
        QTensor q = int8.Input.Forward(x.data<float>().ToArray(), [3, 3, 8, 8]);
        Assert.Equal(int8.forward(q).IntRepr(), loaded.forward(q).IntRepr());
    }

    [Fact]
    public void NoQuantize_keeps_any_member_in_float_as_one_op()
    {
        torch.manual_seed(29);
        using var model = new NoQuantizeMemberNet();
        model.eval();
        using NoQuantizeMemberNet.Observed observed = model.Prepare();
        var floatOp = Assert.Single(observed.FloatOps);
        Assert.Equal(("sensitive", "Sequential", "[NoQuantize]"), (floatOp.Layer, floatOp.Type, floatOp.Reason));
        using var noGrad = torch.no_grad();
        observed.forward(torch.randn(2, 3, 8, 8)).Dispose();
        NoQuantizeMemberNet.Quantized int8 = observed.Convert();
        using Tensor x = torch.randn(2, 3, 8, 8);
        Assert.True(SqnrDb(model.forward(x), int8.forward(x)) >= 25);
    }

    [Fact]
    public void Appending_to_a_container_after_Prepare_changes_neither_the_observed_nor_the_converted_model()
    {
        torch.manual_seed(30);
        using var model = new AppendNet();
        model.eval();
        using AppendNet.Observed observed = model.Prepare();
        int ops = observed.Graph.Ops.Count;
        using var noGrad = torch.no_grad();
        observed.forward(torch.randn(2, 3, 8, 8)).Dispose();
        AppendNet.Quantized int8 = observed.Convert();
        using Tensor x = torch.randn(1, 3, 8, 8);
        float[] before = int8.forward(x).data<float>().ToArray();

        var features = (TorchSharp.Modules.Sequential)model.named_children().Single(c => c.name == "features").module;
        features.append(nn.ReLU());
        Assert.Equal(ops, observed.Graph.Ops.Count);
        Assert.Equal(before, int8.forward(x).data<float>().ToArray());
    }

    [Fact]
    public void A_Sequential_filled_with_append_in_the_constructor_is_part_of_forward()
    {
        torch.manual_seed(3);
        using var model = new AppendNet();
        model.eval();
        using AppendNet.Observed observed = model.Prepare();
        Assert.Equal(new[] { "features.0", "features.pool-1", "features.3", "classifier.0", "classifier.1" }, observed.Graph.Ops.Select(o => o.Name).ToArray());
        using var noGrad = torch.no_grad();
        for (int i = 0; i < 4; i++)
        {
            observed.forward(torch.randn(2, 3, 8, 8)).Dispose();
        }

        AppendNet.Quantized int8 = observed.Convert();
        using Tensor x = torch.randn(3, 3, 8, 8);
        double sqnr = SqnrDb(model.forward(x), int8.forward(x));
        Assert.True(sqnr >= 25, $"int8 vs float SQNR {sqnr:F1} dB (the appended Sequential must not be dropped)");
    }

    [Fact]
    public void Changing_a_container_after_Prepare_does_not_change_the_converted_model()
    {
        torch.manual_seed(5);
        using var model = new AppendNet();
        model.eval();
        using AppendNet.Observed observed = model.Prepare();
        using var noGrad = torch.no_grad();
        observed.forward(torch.randn(2, 3, 8, 8)).Dispose();
        AppendNet.Quantized int8 = observed.Convert();
        using Tensor x = torch.randn(1, 3, 8, 8);
        float[] before = int8.forward(x).data<float>().ToArray();
        foreach ((string _, Tensor p) in model.named_parameters())
        {
            p.add_(1.0f);
        }

        float[] after = int8.forward(x).data<float>().ToArray();
        Assert.Equal(before, after);
    }

    [Fact]
    public void A_bound_model_is_bit_identical_from_many_threads()
    {
        (IdiomNet _, IdiomNet.Observed observed) = CalibratedIdiomNet();
        using (observed)
        {
            IdiomNet.Quantized int8 = observed.Convert();
            var inputs = Enumerable.Range(0, 8).Select(i => torch.randn(1, 3, 16, 16)).ToArray();
            float[][] expected = inputs.Select(x => int8.forward(x).data<float>().ToArray()).ToArray();
            int mismatches = 0;
            Parallel.For(0, 400, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
            {
                float[] actual = int8.forward(inputs[i % inputs.Length]).data<float>().ToArray();
                if (!actual.SequenceEqual(expected[i % inputs.Length]))
                {
                    System.Threading.Interlocked.Increment(ref mismatches);
                }
            });
            Assert.Equal(0, mismatches);
        }
    }

    private sealed class CollectingTap : QuantGen.Reports.IQuantizedTap
    {
        public int Layers { get; private set; }

        public void OnLayer(string layer, QTensor output) => Layers++;
    }

    [Fact]
    public void The_buffer_plan_shares_slots_and_changes_no_bit()
    {
        (IdiomNet _, IdiomNet.Observed observed) = CalibratedIdiomNet();
        using (observed)
        {
            IdiomNet.Quantized int8 = observed.Convert();
            int int8Values = observed.Graph.Ops.Count - observed.FloatOps.Count;
            Assert.InRange(int8.ActivationSlots, 1, int8Values - 1);

            QTensor input = int8.Input.Forward(torch.randn(1, 3, 16, 16).data<float>().ToArray(), [1, 3, 16, 16]);
            var tap = new CollectingTap();
            int[] withSlots = int8.forward(input).IntRepr();
            int[] again = int8.forward(input).IntRepr();
            int[] withoutSlots = int8.forward(input, tap).IntRepr();   // a tap gets new tensors, no slots
            Assert.Equal(withoutSlots, withSlots);
            Assert.Equal(withSlots, again);
            Assert.True(tap.Layers > 0);
        }
    }

    [Fact]
    public void A_steady_state_int8_forward_allocates_only_its_result()
    {
        torch.manual_seed(12);
        using var model = new AppendNet();
        model.eval();
        using AppendNet.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            observed.forward(torch.randn(2, 3, 8, 8)).Dispose();
        }

        AppendNet.Quantized int8 = observed.Convert();
        QTensor input = int8.Input.Forward(new float[3 * 8 * 8], [1, 3, 8, 8]);
        for (int i = 0; i < 3; i++)
        {
            int8.forward(input);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        QTensor result = int8.forward(input);
        long bytes = GC.GetAllocatedBytesForCurrentThread() - before;

        // The result's storage, its shape and the QTensor object; the steps' values, arguments and slots are reused.
        Assert.InRange(bytes, result.Count, result.Count + 512);
    }

    [Fact]
    public void A_null_member_called_without_a_guard_is_an_error_at_Prepare_naming_model_path_and_line()
    {
        using var model = new UnguardedNet(withExtra: false);
        model.eval();
        var error = Assert.ThrowsAny<InvalidOperationException>(() => model.Prepare());
        Assert.Contains("UnguardedNet", error.Message, StringComparison.Ordinal);
        Assert.Contains("extra", error.Message, StringComparison.Ordinal);
        Assert.Contains("BoundModels.cs(", error.Message, StringComparison.Ordinal);

        using var complete = new UnguardedNet(withExtra: true);
        complete.eval();
        using UnguardedNet.Observed observed = complete.Prepare();
        Assert.Equal(new[] { "conv", "extra" }, observed.Graph.Ops.Select(o => o.Name).ToArray());
    }

    [Fact]
    public void Prepare_in_training_mode_is_refused_as_PyTorch_refuses_it()
    {
        using var model = new AppendNet();
        model.train();
        var error = Assert.Throws<InvalidOperationException>(() => model.Prepare());
        Assert.StartsWith("AppendNet.Prepare(): the model is in training mode.", error.Message, StringComparison.Ordinal);
        Assert.Contains("model.eval()", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Convert_before_calibration_names_the_observer()
    {
        using var model = new AppendNet();
        model.eval();
        using AppendNet.Observed observed = model.Prepare();
        var error = Assert.Throws<InvalidOperationException>(() => observed.Convert());
        Assert.Contains("AppendNet", error.Message, StringComparison.Ordinal);
        Assert.Contains("calibration", error.Message, StringComparison.Ordinal);
    }
}
