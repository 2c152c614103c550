using System;
using System.Linq;
using System.Threading.Tasks;
using QuantGen.Dynamic;
using QuantGen.Tests.Binding;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Dynamic;

/// <summary>
/// The attention and encoder layers keep their working memory per thread (<c>AttentionScratch</c>): calls of different
/// lengths from many threads at once give each call's sequential result, bit for bit, and a shorter call after a longer
/// one is not disturbed by what the longer one left in the buffers.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class AttentionScratchTests
{
    [Fact]
    public void Concurrent_calls_of_different_lengths_give_their_sequential_results()
    {
        torch.manual_seed(41);
        using var module = nn.TransformerEncoderLayer(16, 2, 32, 0.0);
        module.eval();
        DynamicQuantizedTransformerEncoderLayer layer = DynamicQuantizedTransformerEncoderLayer.FromModule("M", "layer", module, QuantBackend.X86);

        // Longest first, so every later call runs on buffers a longer call has filled.
        int[] lengths = [23, 9, 17, 1, 12, 5, 20, 3];
        Tensor[] inputs = lengths.Select(l => torch.randn(l, 2, 16)).ToArray();
        // The last key of each sequence is padding (none for a sequence of one: a query with every key masked gives NaN).
        Tensor[] paddings = lengths.Select(l => torch.arange(l).ge(Math.Max(l - 1, 1)).unsqueeze(0).expand(2, l).contiguous()).ToArray();
        float[][] expected = inputs.Select((x, i) => layer.Forward(x, null, paddings[i]).data<float>().ToArray()).ToArray();

        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 64, new ParallelOptions { MaxDegreeOfParallelism = 4 }, k =>
        {
            int i = (k * 5) % lengths.Length;
            using Tensor output = layer.Forward(inputs[i], null, paddings[i]);
            if (!output.data<float>().ToArray().AsSpan().SequenceEqual(expected[i]))
            {
                failures.Add($"call {k}: length {lengths[i]} differs from its sequential result");
            }
        });

        Assert.Empty(failures);
    }
}
