using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// The masks, the transpose and the embedding stay float by design: said once here, not at every line.
#pragma warning disable QG0023

namespace QuantGen.Tests.Binding;

/// <summary>
/// A small text encoder written the way TorchSharp users write one (its forward as the TorchSharp Transformer
/// tutorials'): token embedding, TorchSharp's TransformerEncoderLayer × N built in a loop and called with the key
/// padding mask (sequence first), the mean over time, a Linear head.
/// </summary>
[Quantize]
public sealed partial class TinyEncoderClassifier : Module<Tensor, Tensor>
{
    public const long Padding = 0;

    private readonly Embedding embedding;
    private readonly ModuleList<TransformerEncoderLayer> layers = new();
    private readonly Linear head;

    public TinyEncoderClassifier(long vocabulary, long dim, long heads, long feedForward, int count, long classes, Activations activation = Activations.ReLU)
        : base(nameof(TinyEncoderClassifier))
    {
        embedding = Embedding(vocabulary, dim);
        for (int i = 0; i < count; i++)
        {
            layers.Add(TransformerEncoderLayer(dim, heads, feedForward, 0.1, activation));
        }

        head = Linear(dim, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor tokens)
    {
        using var scope = torch.NewDisposeScope();
        Tensor padding = tokens.eq(Padding);
        Tensor x = embedding.forward(tokens).transpose(0, 1);
        foreach (TransformerEncoderLayer layer in layers)
        {
            x = layer.call(x, null, padding);
        }

        return head.forward(x.mean(new long[] { 0 })).MoveToOuterDisposeScope();
    }
}

/// <summary>One encoder layer given an attention mask (causal), called directly rather than in a loop.</summary>
[Quantize]
public sealed partial class CausalEncoder : Module<Tensor, Tensor>
{
    private readonly TransformerEncoderLayer encoder;
    private readonly Module<Tensor, Tensor> head;

    public CausalEncoder(long dim, long heads)
        : base(nameof(CausalEncoder))
    {
        encoder = TransformerEncoderLayer(dim, heads, 2 * dim, 0.0);
        head = Linear(dim, 3);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long length = x.shape[0];
        Tensor causal = torch.ones(length, length, dtype: ScalarType.Bool).triu(1);
        return head.forward(encoder.call(x, causal));
    }
}
