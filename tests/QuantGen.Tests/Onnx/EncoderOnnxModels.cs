using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// The generator warns that a TransformerEncoder stack runs in float (it knows no int8 op for it); the tests give it
// QConfig.Dynamic(), which makes its layers dynamic at Prepare.
#pragma warning disable QG0023

namespace QuantGen.Tests.Onnx;

// Encoder models for the ONNX export of dynamic TransformerEncoderLayers, written as TorchSharp users write them and
// called without a mask (Binding/EncoderModels.cs has the masked forms, whose masks forward computes in C#).

/// <summary>A sequence-first input through one TorchSharp TransformerEncoderLayer, then a Linear per position (a tagger).</summary>
[Quantize]
public sealed partial class EncoderTagger : Module<Tensor, Tensor>
{
    private readonly TransformerEncoderLayer encoder;
    private readonly Linear head;

    public EncoderTagger(long dim, long heads, long feedForward, long tags, Activations activation)
        : base(nameof(EncoderTagger))
    {
        encoder = TransformerEncoderLayer(dim, heads, feedForward, 0.1, activation);
        head = Linear(dim, tags);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => head.forward(encoder.call(x));
}

/// <summary>
/// Sequence-first token indices [length, batch] → Embedding → TorchSharp's TransformerEncoder (a stack of one layer's
/// copies) → Linear decoder: TinyLanguageModel without its positional encoding and causal mask.
/// </summary>
[Quantize]
public sealed partial class TokenEncoderStack : Module<Tensor, Tensor>
{
    private readonly Embedding embedding;
    private readonly TransformerEncoder transformer_encoder;
    private readonly Linear decoder;

    public TokenEncoderStack(long vocabulary, long dim, long heads, long hidden, long layers)
        : base(nameof(TokenEncoderStack))
    {
        embedding = Embedding(vocabulary, dim);
        transformer_encoder = TransformerEncoder(TransformerEncoderLayer(dim, heads, hidden, 0.2), layers);
        decoder = Linear(dim, vocabulary);
        RegisterComponents();
    }

    public override Tensor forward(Tensor tokens) => decoder.call(transformer_encoder.call(embedding.call(tokens)));
}

/// <summary>
/// A [length, length] input that is both the encoder's source (one sequence of d_model = length, by a constant reshape)
/// and its additive attention mask: the mask form ONNX export writes, the model's own input.
/// </summary>
[Quantize]
public sealed partial class InputMaskedEncoder : Module<Tensor, Tensor>
{
    public const int Length = 6;

    private readonly TransformerEncoderLayer encoder;

    public InputMaskedEncoder(long heads)
        : base(nameof(InputMaskedEncoder))
    {
        encoder = TransformerEncoderLayer(Length, heads, 2 * Length, 0.0);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => encoder.call(x.reshape(6, 1, 6), x);
}
