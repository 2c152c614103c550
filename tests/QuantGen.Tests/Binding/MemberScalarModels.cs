using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// The scaled embedding and the reshapes by member sizes stay float by design.
#pragma warning disable QG0023

namespace QuantGen.Tests.Binding;

/// <summary>
/// Number members read in forward's float expressions, as TorchSharp models write them: the embedding scaled by
/// √d_model (TorchSharp's SequenceToSequence example), a view by a readonly size field, a get-only property and a
/// readonly bool, and `this.` access.
/// </summary>
[Quantize]
public sealed partial class MemberScalarNet : Module<Tensor, Tensor>
{
    private readonly long ninputs;
    private readonly int tokensPerRow;
    private readonly bool doubled;
    private readonly Embedding encoder;
    private readonly Linear decoder;

    public MemberScalarNet(long vocabulary, long ninputs, int tokensPerRow, bool doubled)
        : base(nameof(MemberScalarNet))
    {
        this.ninputs = ninputs;
        this.tokensPerRow = tokensPerRow;
        this.doubled = doubled;
        encoder = Embedding(vocabulary, ninputs);
        decoder = Linear(ninputs * tokensPerRow, 3);
        RegisterComponents();
    }

    private float Bias { get; } = 0.25f;

    public override Tensor forward(Tensor tokens)
    {
        Tensor src = encoder.forward(tokens) * MathF.Sqrt(ninputs);
        Tensor rows = src.view(-1, this.tokensPerRow * ninputs) + Bias;
        return decoder.forward(doubled ? rows * 2 : rows);
    }
}
