using System;
using System.IO;
using System.Linq;
using QuantGen.Binding;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Tests.Binding;

/// <summary>
/// User modules of several tensors (a UNet's <c>Up.forward(x, skip)</c>, a three-input merge block) are inlined at
/// Prepare from their captured forwards like one-tensor modules, so their convolutions, transposed convolutions and cats
/// run in int8; the int8 model tracks the float model (TorchSharp) and survives Save/Load bit for bit.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class SkipConnectionTests
{
    [Fact]
    public void Modules_of_several_tensors_are_inlined_and_every_op_runs_in_int8()
    {
        torch.manual_seed(31);
        using var model = new TinyUNet();
        BoundModelTests.RandomizeBatchNorm(model, 23);
        model.eval();
        using TinyUNet.Observed observed = model.Prepare();
        string summary = observed.Summary();
        Assert.Contains("0 in float", summary, StringComparison.Ordinal);
        Assert.Contains("2 x ConvTranspose2d", summary, StringComparison.Ordinal);

        // Paths as PyTorch names them: the stage's own members under the stage's name.
        string[] names = observed.Graph.Ops.Select(o => o.Name).ToArray();
        Assert.Contains("up1.up", names);
        Assert.Contains("up2.conv.block.0", names);
        Assert.Contains("merge.mix", names);

        using (torch.no_grad())
        {
            for (int i = 0; i < 4; i++)
            {
                using Tensor batch = torch.randn(2, 3, 16, 16);
                observed.forward(batch).Dispose();
            }
        }

        TinyUNet.Quantized int8 = observed.Convert();
        using var noGrad = torch.no_grad();
        using Tensor x = torch.randn(2, 3, 16, 16);
        using Tensor expected = model.forward(x);
        using Tensor actual = int8.forward(x);
        Assert.Equal(expected.shape, actual.shape);
        double sqnr = BoundModelTests.SqnrDb(expected, actual);
        Assert.True(sqnr >= 20, $"int8 vs float SQNR {sqnr:F1} dB");

        var file = new MemoryStream();
        int8.Save(file);
        TinyUNet.Quantized loaded = TinyUNet.Quantized.Load(new MemoryStream(file.ToArray()));
        Assert.Equal(actual.data<float>().ToArray(), loaded.forward(x).data<float>().ToArray());
    }

    [Fact]
    public void The_captured_forward_of_a_two_tensor_module_reads_its_second_parameter_as_a_parameter_node()
    {
        CapturedForward up = CapturedModules.Find(typeof(TinyUp)) ?? throw new InvalidOperationException("TinyUp's forward was not captured");
        Assert.Equal(2, up.ParameterCount);
        CapturedNode parameter = up.Nodes.Single(n => n.Op == CapturedOp.Parameter);
        Assert.Equal(new[] { 1 }, parameter.Ints);

        CapturedForward merge = CapturedModules.Find(typeof(TinyMerge3)) ?? throw new InvalidOperationException("TinyMerge3's forward was not captured");
        Assert.Equal(3, merge.ParameterCount);
        Assert.Equal(new[] { 1, 2 }, merge.Nodes.Where(n => n.Op == CapturedOp.Parameter).Select(n => n.Ints![0]));
    }
}
