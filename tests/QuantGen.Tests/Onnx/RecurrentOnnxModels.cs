using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Onnx;

// Sequence and token models for the ONNX export of dynamic LSTMs and Embeddings: every op around the LSTM or the
// Embedding is one ONNX writes as a plain float operator (reshape, cat, mean, Linear, Tanh), so what the tests
// measure is the LSTM's and the Embedding's export.

/// <summary>An LSTM whose three elements are all read, flattened and concatenated: output, h_n and c_n in one result.</summary>
[Quantize]
public sealed partial class LstmAllElements : Module<Tensor, Tensor>
{
    private readonly LSTM lstm;

    public LstmAllElements(long features, long hidden, long layers, bool bidirectional, bool batchFirst)
        : base(nameof(LstmAllElements))
    {
        lstm = LSTM(features, hidden, numLayers: layers, batchFirst: batchFirst, bidirectional: bidirectional);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var (output, h, c) = lstm.forward(x);
        return torch.cat(new[] { output.reshape(-1), h.reshape(-1), c.reshape(-1) }, 0);
    }
}

/// <summary>
/// A batch-first LSTM of two cells (two layers, or one bidirectional layer) whose initial states are computed from the
/// input — the sequence's mean through a Linear per cell, Tanh for h0 — and passed as (h0, c0); all three elements read.
/// </summary>
[Quantize]
public sealed partial class LstmWithComputedState : Module<Tensor, Tensor>
{
    public const int Hidden = 5;

    private readonly LSTM lstm;
    private readonly Linear h0First;
    private readonly Linear h0Second;
    private readonly Linear c0First;
    private readonly Linear c0Second;
    private readonly Module<Tensor, Tensor> tanhFirst = Tanh();
    private readonly Module<Tensor, Tensor> tanhSecond = Tanh();

    public LstmWithComputedState(long features, bool bidirectional)
        : base(nameof(LstmWithComputedState))
    {
        lstm = LSTM(features, Hidden, numLayers: bidirectional ? 1 : 2, batchFirst: true, bidirectional: bidirectional);
        h0First = Linear(features, Hidden);
        h0Second = Linear(features, Hidden);
        c0First = Linear(features, Hidden);
        c0Second = Linear(features, Hidden);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor summary = x.mean(new long[] { 1 });
        Tensor h0 = torch.cat(new[] { tanhFirst.forward(h0First.forward(summary)).reshape(1, -1, Hidden), tanhSecond.forward(h0Second.forward(summary)).reshape(1, -1, Hidden) }, 0);
        Tensor c0 = torch.cat(new[] { c0First.forward(summary).reshape(1, -1, Hidden), c0Second.forward(summary).reshape(1, -1, Hidden) }, 0);
        var (output, hN, cN) = lstm.forward(x, (h0, c0));
        return torch.cat(new[] { output.reshape(-1), hN.reshape(-1), cN.reshape(-1) }, 0);
    }
}

/// <summary>A GRU's final state: what ONNX export refuses (ONNX Runtime has no dynamic int8 GRU).</summary>
[Quantize]
public sealed partial class GruFinalState : Module<Tensor, Tensor>
{
    private readonly GRU gru;

    public GruFinalState(long features, long hidden)
        : base(nameof(GruFinalState))
    {
        gru = GRU(features, hidden);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var (_, h) = gru.forward(x);
        return h.reshape(-1);
    }
}

/// <summary>Token indices to their embeddings, nothing else: the Embedding's rows as they come out.</summary>
[Quantize]
public sealed partial class TokenEmbedding : Module<Tensor, Tensor>
{
    private readonly Embedding embedding;

    public TokenEmbedding(long vocabulary, long dim)
        : base(nameof(TokenEmbedding))
    {
        embedding = Embedding(vocabulary, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor tokens) => embedding.forward(tokens);
}

/// <summary>Token indices → Embedding → mean over the sequence → Linear (a bag-of-words classifier).</summary>
[Quantize]
public sealed partial class TokenMeanClassifier : Module<Tensor, Tensor>
{
    private readonly Embedding embedding;
    private readonly Linear head;

    public TokenMeanClassifier(long vocabulary, long dim, long classes)
        : base(nameof(TokenMeanClassifier))
    {
        embedding = Embedding(vocabulary, dim);
        head = Linear(dim, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor tokens) => head.forward(embedding.forward(tokens).mean(new long[] { 1 }));
}

/// <summary>A GRU whose two elements are both read, flattened and concatenated: output and h_n in one result.</summary>
[Quantize]
public sealed partial class GruAllElements : Module<Tensor, Tensor>
{
    private readonly GRU gru;

    public GruAllElements(long features, long hidden, long layers, bool bidirectional, bool batchFirst)
        : base(nameof(GruAllElements))
    {
        gru = GRU(features, hidden, numLayers: layers, batchFirst: batchFirst, bidirectional: bidirectional);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var (output, h) = gru.forward(x);
        return torch.cat(new[] { output.reshape(-1), h.reshape(-1) }, 0);
    }
}
