using System;
using System.Collections.Generic;
using System.Linq;
using QuantGen.Graphs;
using QuantGen.Modules;
using TorchSharp;

namespace QuantGen.Reports;

/// <summary>A fused float layer's weight (batch norm folded in), in the int8 layer's logical layout.</summary>
/// <param name="Values">The weights in logical row-major order.</param>
/// <param name="Shape">Their logical shape (conv <c>[OutC, InC/groups, kH, kW]</c>, linear <c>[Out, In]</c>, conv-transpose <c>[InC, OutC/groups, kH, kW]</c>).</param>
/// <param name="Bias">The fused float bias per output channel, or null.</param>
public sealed record FloatWeight(float[] Values, int[] Shape, float[]? Bias);

/// <summary>
/// The float side of a comparison: the fused float model (the generated <c>M.Observed</c>), run with a tap that
/// sees every fused op's float output under the int8 layer names, and its fused float weights.
/// </summary>
public interface IFloatModel
{
    /// <summary>The model class's name (compared with the int8 model's, to refuse comparing different models).</summary>
    string Model { get; }

    /// <summary>Runs the fused float forward, reporting each layer's output to <paramref name="tap"/>.</summary>
    /// <param name="input">A float batch.</param>
    /// <param name="tap">Receives each layer's float output.</param>
    /// <returns>The float result (the caller disposes it).</returns>
    torch.Tensor Forward(torch.Tensor input, IFloatTap tap);

    /// <summary>The fused float weight of a conv, linear or conv-transpose layer; null for layers without weights.</summary>
    /// <param name="layer">The layer name (<c>layer1.0.conv1</c>).</param>
    /// <returns>The weight, or null.</returns>
    FloatWeight? Weight(string layer);
}

/// <summary>Ways to make an <see cref="IFloatModel"/> from what a generated model offers today.</summary>
public static class FloatModel
{
    /// <summary>
    /// The float side from the user's float model and the generated <c>Observed</c>'s tapped forward: the fused
    /// float weights are re-derived from <paramref name="module"/>'s members named in <paramref name="graph"/>
    /// with the same fusion code the generated <c>Observed</c> runs (<see cref="FusedConv2d.Create"/> and friends),
    /// so they are exactly the weights <c>Convert()</c> quantized.
    /// </summary>
    /// <param name="module">The user's float model (the one <c>Prepare()</c> was called on); only read.</param>
    /// <param name="graph">The int8 model's graph (<c>int8.Graph</c>): names each layer's members.</param>
    /// <param name="forward">The observed model's tapped forward, e.g. <c>observed.forward</c>.</param>
    /// <returns>The float side.</returns>
    /// <remarks>The generated <c>Observed</c> forward also feeds its observers: the report's inputs count as calibration data for it.</remarks>
    public static IFloatModel FromModule(torch.nn.Module module, ModelGraph graph, Func<torch.Tensor, IFloatTap?, torch.Tensor> forward)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(forward);
        IReadOnlyDictionary<string, torch.nn.Module> index = ModuleLookup.Index(module);
        var weights = new Dictionary<string, FloatWeight>(StringComparer.Ordinal);
        foreach (GraphNode node in graph.Nodes)
        {
            FloatWeight? weight = FusedWeight(graph.Model, node, index);
            if (weight is not null)
            {
                weights[node.Name] = weight;
            }
        }

        return new DelegateFloatModel(graph.Model, forward, layer => weights.GetValueOrDefault(layer));
    }

    /// <summary>The float side from delegates (any model, or a test double).</summary>
    /// <param name="model">The model class's name.</param>
    /// <param name="forward">Runs the fused float forward with a tap.</param>
    /// <param name="weights">The fused float weight of a layer, or null (no weight error for it).</param>
    /// <returns>The float side.</returns>
    public static IFloatModel Create(string model, Func<torch.Tensor, IFloatTap?, torch.Tensor> forward, Func<string, FloatWeight?>? weights = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentNullException.ThrowIfNull(forward);
        return new DelegateFloatModel(model, forward, weights ?? (_ => null));
    }

    private static FloatWeight? FusedWeight(string model, GraphNode node, IReadOnlyDictionary<string, torch.nn.Module> index)
    {
        if (node.Op is not (GraphOp.Conv2d or GraphOp.Linear or GraphOp.ConvTranspose2d) || node.Members.Count == 0)
        {
            return null;
        }

        torch.nn.Module Member(GraphMember member) =>
            ModuleLookup.Find(index, member.Path)
            ?? throw new ArgumentException($"{model}.{node.Name}: the float model has no member '{member.Path}' ({member.ModuleType}); is it the model the int8 model was converted from?");
        torch.nn.Module head = Member(node.Members[0]);
        GraphMember? batchNormMember = node.Members.Skip(1).FirstOrDefault(m => m.ModuleType.StartsWith("BatchNorm", StringComparison.Ordinal));
        torch.nn.Module? batchNorm = batchNormMember is null ? null : Member(batchNormMember);
        bool relu = node.Members.Skip(1).Any(m => m.ModuleType.Contains("relu", StringComparison.OrdinalIgnoreCase));
        switch (head)
        {
            case TorchSharp.Modules.Conv2d conv when node.Op == GraphOp.Conv2d:
                using (FusedConv2d fused = FusedConv2d.Create(model, node.Name, conv, batchNorm as TorchSharp.Modules.BatchNorm2d, relu))
                {
                    return new FloatWeight(fused.Weight, fused.WeightShape, fused.Bias);
                }

            case TorchSharp.Modules.Linear linear when node.Op == GraphOp.Linear:
                using (FusedLinear fused = FusedLinear.Create(model, node.Name, linear, batchNorm as TorchSharp.Modules.BatchNorm1d, relu))
                {
                    return new FloatWeight(fused.Weight, [fused.OutFeatures, fused.InFeatures], fused.Bias);
                }

            case TorchSharp.Modules.ConvTranspose2d convTranspose when node.Op == GraphOp.ConvTranspose2d:
                using (FusedConvTranspose2d fused = FusedConvTranspose2d.Create(model, node.Name, convTranspose, batchNorm as TorchSharp.Modules.BatchNorm2d, relu))
                {
                    return new FloatWeight(fused.Weight, fused.WeightShape, fused.Bias);
                }

            default:
                throw new ArgumentException($"{model}.{node.Name}: the float model's member '{node.Members[0].Path}' is a {head.GetType().Name}, the int8 graph has a {node.Op} there; is it the model the int8 model was converted from?");
        }
    }

    private sealed class DelegateFloatModel(string model, Func<torch.Tensor, IFloatTap?, torch.Tensor> forward, Func<string, FloatWeight?> weights) : IFloatModel
    {
        public string Model => model;

        public torch.Tensor Forward(torch.Tensor input, IFloatTap tap) => forward(input, tap);

        public FloatWeight? Weight(string layer) => weights(layer);
    }
}
