using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// The float expressions (indexing, permute) are meant to run in float: their QG0023 warnings are expected (the LSTM,
// GRU and Embedding calls get the QG0026 info).
#pragma warning disable QG0023

namespace QuantGen.Tests.Binding;

// Sequence models written as TorchSharp users write them (see examples/TextClassifier and public TorchSharp
// LSTM taggers): only [Quantize] and partial are QuantGen's.

/// <summary>
/// Token indices → Embedding → LSTM (batch_first) → mean over time → Linear: the tuple taken apart with a typed
/// declaration and discards, inside a dispose scope.
/// </summary>
[Quantize]
public sealed partial class LstmTextClassifier : Module<Tensor, Tensor>
{
    private readonly Embedding embedding;
    private readonly LSTM lstm;
    private readonly Linear head;

    public LstmTextClassifier(long vocabulary, long embeddingDim, long hidden, long classes)
        : base(nameof(LstmTextClassifier))
    {
        embedding = Embedding(vocabulary, embeddingDim);
        lstm = LSTM(embeddingDim, hidden, numLayers: 1, batchFirst: true);
        head = Linear(hidden, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor tokens)
    {
        using var scope = torch.NewDisposeScope();
        Tensor x = embedding.forward(tokens);
        (Tensor output, _, _) = lstm.forward(x);
        return head.forward(output.mean(new long[] { 1 })).MoveToOuterDisposeScope();
    }
}

/// <summary>Features → two-layer GRU → the last layer's final state (h_n[-1]) → Linear → ReLU → Linear.</summary>
[Quantize]
public sealed partial class GruLastState : Module<Tensor, Tensor>
{
    private readonly GRU gru;
    private readonly Module<Tensor, Tensor> fc1;
    private readonly Module<Tensor, Tensor> relu = ReLU();
    private readonly Module<Tensor, Tensor> fc2;

    public GruLastState(long features, long hidden, long classes)
        : base(nameof(GruLastState))
    {
        gru = GRU(features, hidden, numLayers: 2);
        fc1 = Linear(hidden, hidden);
        fc2 = Linear(hidden, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var (_, h) = gru.forward(x);
        var last = h[-1];
        return fc2.forward(relu.forward(fc1.forward(last)));
    }
}

/// <summary>Both the outputs and the final state of one LSTM call, read from a tuple local with .Item1 and .Item2.</summary>
[Quantize]
public sealed partial class LstmOutputsAndState : Module<Tensor, Tensor>
{
    private readonly LSTM lstm;
    private readonly Linear head;

    public LstmOutputsAndState(long features, long hidden, long classes)
        : base(nameof(LstmOutputsAndState))
    {
        lstm = LSTM(features, hidden, batchFirst: true, bidirectional: true);
        head = Linear(4 * hidden, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var result = lstm.forward(x, null);
        Tensor pooled = result.Item1.mean(new long[] { 1 });
        Tensor state = result.Item2.permute(1, 0, 2).flatten(1);
        return head.forward(torch.cat(new[] { pooled, state }, 1));
    }
}

/// <summary>
/// Initial states built in forward from the batch size (the PyTorch tutorials' <c>h0 = zeros(layers, batch, hidden)</c>),
/// passed as the LSTM's (h0, c0) pair; Dropout, a Linear and a Sigmoid after the last step.
/// </summary>
[Quantize]
public sealed partial class LstmWithInitialState : Module<Tensor, Tensor>
{
    public const int Hidden = 10;

    private readonly Module<Tensor, Tensor> embedding;
    private readonly LSTM lstm;
    private readonly Module<Tensor, Tensor> dropout;
    private readonly Module<Tensor, Tensor> dense;
    private readonly Module<Tensor, Tensor> sigmoid;

    public LstmWithInitialState(long vocabulary, long embeddingDim)
        : base(nameof(LstmWithInitialState))
    {
        embedding = Embedding(vocabulary, embeddingDim);
        lstm = LSTM(embeddingDim, Hidden, batchFirst: true);
        dropout = Dropout(0.5);
        dense = Linear(Hidden, 1);
        sigmoid = Sigmoid();
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        var xEmbed = embedding.forward(input);
        long batch = input.shape[0];
        var h0 = torch.full(1, batch, Hidden, 0.25f);
        var c0 = torch.full(1, batch, Hidden, -0.5f);
        var (xRnn, _, _) = lstm.forward(xEmbed, (h0, c0));
        var last = xRnn[.., -1, ..];
        last = dropout.forward(last);
        var logits = dense.forward(last);
        return sigmoid.forward(logits);
    }
}
