using System;
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

/// <summary>Sinusoidal positions added to a sequence-first input, held in a registered buffer (the TorchSharp examples' PositionalEncoding).</summary>
public sealed class PositionalEncoding : Module<Tensor, Tensor>
{
    private readonly Tensor pe;

    public PositionalEncoding(long dim, long maxLength = 64)
        : base(nameof(PositionalEncoding))
    {
        using var position = torch.arange(0, maxLength, dtype: ScalarType.Float32).unsqueeze(1);
        using var divide = (torch.arange(0, dim, 2, dtype: ScalarType.Float32) * (-System.Math.Log(10000.0) / dim)).exp();
        Tensor table = torch.zeros(maxLength, dim);
        table[TensorIndex.Colon, TensorIndex.Slice(0, null, 2)] = (position * divide).sin();
        table[TensorIndex.Colon, TensorIndex.Slice(1, null, 2)] = (position * divide).cos();
        pe = table.unsqueeze(1);
        register_buffer("pe", pe);
    }

    public override Tensor forward(Tensor x) => x + pe[TensorIndex.Slice(null, x.shape[0])];
}

/// <summary>
/// A language model in the form of TorchSharp's SequenceToSequence example: embedding × √d_model, positions, a
/// TransformerEncoder (a stack built by TorchSharp from one layer) given a causal mask built in forward, a decoder.
/// </summary>
[Quantize]
public sealed partial class TinyLanguageModel : Module<Tensor, Tensor>
{
    private readonly long ninputs;
    private readonly Embedding encoder;
    private readonly PositionalEncoding pos_encoder;
    private readonly TransformerEncoder transformer_encoder;
    private readonly Linear decoder;

    public TinyLanguageModel(long vocabulary, long ninputs, long heads, long hidden, long layers)
        : base(nameof(TinyLanguageModel))
    {
        this.ninputs = ninputs;
        encoder = Embedding(vocabulary, ninputs);
        pos_encoder = new PositionalEncoding(ninputs);
        transformer_encoder = TransformerEncoder(TransformerEncoderLayer(ninputs, heads, hidden, 0.2), layers);
        decoder = Linear(ninputs, vocabulary);
        RegisterComponents();
    }

    public override Tensor forward(Tensor t)
    {
        var src = pos_encoder.call(encoder.call(t) * MathF.Sqrt(ninputs));
        long length = t.shape[0];
        var mask = torch.ones(length, length, dtype: ScalarType.Bool).triu(1);
        var enc = transformer_encoder.call(src, mask);
        return decoder.call(enc);
    }
}
