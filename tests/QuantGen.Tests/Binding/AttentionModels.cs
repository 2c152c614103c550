using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// The padding mask, the squeeze and the indexing stay float by design: said once here, not at every line.
#pragma warning disable QG0023

namespace QuantGen.Tests.Binding;

/// <summary>
/// A pre-norm Transformer block as TorchSharp users write one around the MultiheadAttention module (sequence first):
/// <c>x + attn(norm1(x))</c>, then <c>x + ff(norm2(x))</c> with a Linear–ReLU–Linear feed-forward.
/// </summary>
[Quantize]
public sealed partial class PreNormAttentionBlock : Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly MultiheadAttention attn;
    private readonly LayerNorm norm2;
    private readonly Linear ff1;
    private readonly Linear ff2;

    public PreNormAttentionBlock(long dim, long heads, long feedForward)
        : base(nameof(PreNormAttentionBlock))
    {
        norm1 = LayerNorm(dim);
        attn = MultiheadAttention(dim, heads);
        norm2 = LayerNorm(dim);
        ff1 = Linear(dim, feedForward);
        ff2 = Linear(feedForward, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor h = norm1.forward(x);
        var (attended, _) = attn.call(h, h, h, null, false, null);
        x = x + attended;
        Tensor f = ff2.forward(functional.relu(ff1.forward(norm2.forward(x))));
        return x + f;
    }
}

/// <summary>
/// Cross-attention: the queries are the input, the keys and values a memory computed from it in forward; padded
/// positions (all-zero rows of the input) are masked out of the keys.
/// </summary>
[Quantize]
public sealed partial class CrossAttentionBlock : Module<Tensor, Tensor>
{
    private readonly Linear memory;
    private readonly MultiheadAttention attn;
    private readonly Linear head;

    public CrossAttentionBlock(long dim, long heads, long classes)
        : base(nameof(CrossAttentionBlock))
    {
        memory = Linear(dim, dim);
        attn = MultiheadAttention(dim, heads);
        head = Linear(dim, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor padding = x.abs().sum(-1).eq(0).t();
        Tensor keys = functional.relu(memory.forward(x));
        Tensor attended = attn.call(x, keys, keys, key_padding_mask: padding).Item1;
        return head.forward(attended);
    }
}

/// <summary>
/// Attention pooling: one query (the mean over time) attends over the sequence; the pooled vector goes to a Linear head
/// and the head-averaged attention weights are returned beside it. The attention member is typed as the module
/// interface TorchSharp's MultiheadAttention derives from.
/// </summary>
[Quantize]
public sealed partial class AttentionPooling : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor, Tensor, Tensor?, bool, Tensor?, Tuple<Tensor, Tensor>> pool;
    private readonly Linear head;

    public AttentionPooling(long dim, long heads, long classes)
        : base(nameof(AttentionPooling))
    {
        pool = MultiheadAttention(dim, heads);
        head = Linear(dim, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor query = x.mean(new long[] { 0 }, keepdim: true);
        var (pooled, weights) = pool.call(query, x, x, null, true, null);
        return torch.cat(new[] { head.forward(pooled.squeeze(0)), weights.squeeze(1) }, 1);
    }
}
